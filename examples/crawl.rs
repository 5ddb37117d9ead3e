//! A crawler-shaped program: at most `LIMIT` fetches at once, a timeout per fetch, and the
//! first error cancelling every fetch still in flight. The "web" is a table in memory and
//! fetching a page is a sleep, so the run is deterministic in what it prints.
//!
//! Run with `cargo run --example crawl`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use structured_async::{block_on, nursery, sleep, timeout};

/// How many fetches may be in flight at once.
const LIMIT: usize = 3;
/// How long one fetch may take.
const PER_FETCH: Duration = Duration::from_millis(40);

/// A page: how long it takes to fetch, what it links to, and whether fetching it fails.
struct Page {
    latency_ms: u64,
    links: &'static [&'static str],
    forbidden: bool,
}

type Web = HashMap<&'static str, Page>;

fn web(with_forbidden_page: bool) -> Web {
    let page = |latency_ms, links, forbidden| Page {
        latency_ms,
        links,
        forbidden,
    };
    HashMap::from([
        ("/", page(5, &["/a", "/b", "/c"][..], false)),
        ("/a", page(10, &["/a/1", "/a/2"][..], false)),
        ("/b", page(15, &["/b/1", "/slow"][..], false)),
        ("/c", page(5, &["/", "/a"][..], false)),
        ("/a/1", page(5, &[][..], false)),
        ("/a/2", page(20, &["/admin"][..], false)),
        ("/b/1", page(5, &[][..], false)),
        ("/slow", page(500, &["/never-seen"][..], false)),
        ("/admin", page(5, &[][..], with_forbidden_page)),
    ])
}

#[derive(Debug, PartialEq)]
enum CrawlError {
    Forbidden(&'static str),
}

/// Fetches one page: its links, `None` if it timed out, or an error that ends the crawl.
async fn fetch(
    web: &Web,
    url: &'static str,
    in_flight: &Cell<usize>,
) -> Result<Option<&'static [&'static str]>, CrawlError> {
    in_flight.set(in_flight.get() + 1);
    assert!(in_flight.get() <= LIMIT, "the limit holds");
    let page = &web[url];
    let fetched = timeout(PER_FETCH, sleep(Duration::from_millis(page.latency_ms))).await;
    in_flight.set(in_flight.get() - 1);
    match fetched {
        Err(_) => {
            println!("crawl:   {url} timed out after {PER_FETCH:?}, skipped");
            Ok(None)
        }
        Ok(()) if page.forbidden => Err(CrawlError::Forbidden(url)),
        Ok(()) => Ok(Some(page.links)),
    }
}

/// Crawls from "/" with at most `LIMIT` fetches in flight; returns the pages fetched.
async fn crawl(web: &Web) -> Result<Vec<&'static str>, CrawlError> {
    let in_flight = Cell::new(0);
    let in_flight = &in_flight;
    nursery!(|n| {
        let mut seen = HashSet::from(["/"]);
        let mut frontier = VecDeque::from(["/"]);
        let mut pending = VecDeque::new();
        let mut fetched = Vec::new();
        while !frontier.is_empty() || !pending.is_empty() {
            // Fill the free fetch slots, then wait for the oldest fetch.
            while pending.len() < LIMIT {
                let Some(url) = frontier.pop_front() else {
                    break;
                };
                pending.push_back((url, n.spawn(fetch(web, url, in_flight))));
            }
            let (url, handle) = pending.pop_front().expect("a fetch is in flight");
            // An `Err` never arrives here: it ends the nursery first, cancelling the rest.
            if let Some(links) = handle.await? {
                fetched.push(url);
                for link in links.iter().copied() {
                    if seen.insert(link) {
                        frontier.push_back(link);
                    }
                }
            }
        }
        Ok(fetched)
    })
    .await
}

fn main() {
    println!("crawl: a healthy site, {LIMIT} fetches at a time, {PER_FETCH:?} per fetch");
    let healthy = web(false);
    let mut pages = block_on(crawl(&healthy)).expect("no page is forbidden");
    pages.sort();
    println!("crawl:   fetched {} pages: {pages:?}", pages.len());
    assert_eq!(pages.len(), 8);

    println!("crawl: the same site where /admin is forbidden");
    let guarded = web(true);
    let out = block_on(crawl(&guarded));
    println!("crawl:   {out:?}: the first error cancelled every fetch in flight");
    assert_eq!(out, Err(CrawlError::Forbidden("/admin")));
}
