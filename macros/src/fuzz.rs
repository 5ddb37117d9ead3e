//! A deterministic fuzz test of `#[structured]`: the macro never panics, whatever it is given.
//!
//! The corpus is every `async fn` in the lowering tests and the ui-tests, read from the files
//! at test time. Each mutant is one of them with a few seeded token-tree mutations (delete,
//! duplicate, swap, replace an ident/punct/literal/delimiter, truncate, splice a subtree from
//! another body, wrap in a group, insert `.await`, `?`, `yield_!`, `return`, labels, ...) and
//! arguments picked from a list of valid and malformed ones. Every mutant goes through the
//! attribute's expansion and, separately, through the lowering without its `catch_unwind`,
//! with a panic hook that records any panic. A failure prints the mutant's seed;
//! `STRUCTURED_FUZZ_SEED=<seed>` replays that mutant alone, `STRUCTURED_FUZZ_COUNT=<n>` runs
//! more of them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, TokenStream, TokenTree};

/// How many mutants the test runs by default (the test runs in CI: a few seconds in debug).
const DEFAULT_COUNT: u64 = 3000;
const BASE_SEED: u64 = 0x5eed_f057_2c7e_d001;

/// Minimised mutants that once panicked (arguments, item), replayed on every run.
const REGRESSIONS: &[(&str, &str)] = &[
    // A `let … else` whose initialiser awaits then goes on (`{ let __r = __r; … }`), or has a
    // `?` inside the awaited call (a `match`): the value ended in `}` before the `else`.
    (
        "",
        "async fn f(v: Vec<u32>) -> u32 { let mut s = 0; for x in v { \
         let Some(w) = tick(x).await.checked_sub(2) else { continue; }; s += w; } s }",
    ),
    (
        "",
        "async fn f(v: u64) -> Option<u64> { \
         let Some(w) = tick(v.checked_sub(g().await?)).await else { return None; }; Some(w) }",
    ),
    // A drop-flagged local as a labelled break's value: `break 'l ::…::flag_take(..) % 100`,
    // which syn reads as a label.
    (
        "",
        "async fn f(n: u64) -> u64 { let mut i = 0; let a = tick(1).await; \
         let v = 'l: loop { i += 1; if i > n { break 'l a % 100; } if i == 7 { drop(a); break 'l 0; } }; \
         tick(v).await }",
    ),
];

/// SplitMix64: small, seedable, the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word(&mut self, words: &[&'static str]) -> &'static str {
        words[self.below(words.len())]
    }
}

/// One `async fn` of the corpus: the attribute's arguments and the item's tokens.
#[derive(Clone)]
struct Entry {
    args: Vec<TokenTree>,
    item: Vec<TokenTree>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the macros crate lives in the workspace")
        .to_path_buf()
}

/// The corpus files: the lowering tests and every ui-test, sorted so the seeds replay.
fn corpus_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files: Vec<PathBuf> = [
        "lowering_basic.rs",
        "lowering_diff.rs",
        "lowering_generators.rs",
        "lowering_hygiene.rs",
    ]
    .iter()
    .map(|f| root.join("tests").join(f))
    .collect();
    let mut dirs = vec![root.join("ui-tests")];
    let mut ui = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("ui-tests is readable") {
            let path = entry.expect("ui-tests is readable").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                ui.push(path);
            }
        }
    }
    ui.sort();
    files.extend(ui);
    files
}

/// Every `async fn` in `tts` (at any depth), with the arguments of a `#[structured(..)]` just
/// before it, or `yields = u64` for a body that yields (the differential macros' generators).
fn collect(tts: &[TokenTree], out: &mut Vec<Entry>) {
    for (i, tt) in tts.iter().enumerate() {
        if let TokenTree::Group(g) = tt {
            collect(&g.stream().into_iter().collect::<Vec<_>>(), out);
        }
        let is =
            |k: usize, word: &str| matches!(tts.get(k), Some(TokenTree::Ident(id)) if id == word);
        if !(is(i, "async") && is(i + 1, "fn")) {
            continue;
        }
        let Some(end) = tts[i..]
            .iter()
            .position(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        else {
            continue;
        };
        let item: Vec<TokenTree> = tts[i..=i + end].to_vec();
        let mut args = attribute_args(&tts[..i]);
        if args.is_none() && mentions(&item, "yield_") {
            args = Some(
                "yields = u64"
                    .parse::<TokenStream>()
                    .unwrap()
                    .into_iter()
                    .collect(),
            );
        }
        out.push(Entry {
            args: args.unwrap_or_default(),
            item,
        });
    }
}

/// The arguments of `#[structured(..)]` when `before` ends with it (and maybe `pub`).
fn attribute_args(before: &[TokenTree]) -> Option<Vec<TokenTree>> {
    let mut end = before.len();
    if matches!(before.last(), Some(TokenTree::Ident(id)) if id == "pub") {
        end -= 1;
    }
    let TokenTree::Group(attr) = before.get(end.checked_sub(1)?)? else {
        return None;
    };
    let inner: Vec<TokenTree> = attr.stream().into_iter().collect();
    match inner.as_slice() {
        [TokenTree::Ident(id)] if id == "structured" => Some(Vec::new()),
        [TokenTree::Ident(id), TokenTree::Group(a)] if id == "structured" => {
            Some(a.stream().into_iter().collect())
        }
        _ => None,
    }
}

fn mentions(tts: &[TokenTree], word: &str) -> bool {
    tts.iter().any(|t| match t {
        TokenTree::Ident(id) => id == word,
        TokenTree::Group(g) => mentions(&g.stream().into_iter().collect::<Vec<_>>(), word),
        _ => false,
    })
}

fn corpus() -> Vec<Vec<Entry>> {
    corpus_files()
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let tts: Vec<TokenTree> = text
                .parse::<TokenStream>()
                .unwrap_or_else(|e| panic!("tokenizing {}: {e}", path.display()))
                .into_iter()
                .collect();
            let mut entries = Vec::new();
            collect(&tts, &mut entries);
            entries
        })
        .filter(|entries: &Vec<Entry>| !entries.is_empty())
        .collect()
}

const IDENTS: &[&str] = &[
    "self",
    "Self",
    "async",
    "await",
    "return",
    "break",
    "continue",
    "loop",
    "while",
    "for",
    "in",
    "if",
    "else",
    "match",
    "let",
    "mut",
    "ref",
    "move",
    "fn",
    "impl",
    "dyn",
    "where",
    "struct",
    "const",
    "static",
    "yield_",
    "x",
    "a",
    "n",
    "_",
    "tick",
    "Some",
    "None",
    "Ok",
    "Err",
    "drop",
    "u32",
    "super",
    "crate",
    "macro_rules",
    "try",
    "gen",
    "yield",
    "box",
    "type",
    "union",
];

const PUNCTS: &[char] = &[
    ';', ',', '.', '?', '=', '&', '*', '!', ':', '<', '>', '#', '|', '+', '-', '@', '$', '~', '^',
    '%', '/',
];

const LITERALS: &[&str] = &[
    "0",
    "1",
    "4294967296",
    "1u8",
    "2.5",
    "1e3",
    "'c'",
    "\"s\"",
    "b\"b\"",
    "r#\"raw\"#",
    "b'b'",
    "c\"c\"",
    "0xff_u64",
];

/// Snippets to insert: awaits, `?`, yields, jumps, labels, attributes, lifetimes, `self`.
const SNIPPETS: &[&str] = &[
    ".await",
    ".await?",
    "?",
    "yield_!(1)",
    "yield_!(1);",
    "yield_!()",
    "yield_!(tick(1).await)",
    "yield_!(a, b)",
    "yield_!",
    "return",
    "return;",
    "return tick(1).await;",
    "return x?;",
    "break",
    "break 'a",
    "break 'a tick(2).await;",
    "continue 'a;",
    "'a:",
    "'a: loop { tick(1).await; break; }",
    "'a: { break 'a; }",
    "#[cfg(any())]",
    "#[allow(unused)]",
    "#![allow(unused)]",
    "#[inline]",
    "'a",
    "'static",
    "&'a",
    "self",
    "self.",
    "Self",
    "let x = tick(1).await;",
    "let _ = x;",
    "let (a, b) = (tick(1).await, 2);",
    "let Some(v) = x else { return; };",
    "if x { tick(1).await; }",
    "loop { tick(1).await; }",
    "while let Some(y) = x { tick(y).await; }",
    "for i in 0..3 { tick(i).await; }",
    "match x { _ => tick(1).await }",
    "async { tick(1).await }",
    "async move { yield_!(1) }",
    "|| tick(1).await",
    "move |z| z",
    "drop(x);",
    "{ tick(1).await }",
    "fn inner() {}",
    "macro_rules! m { () => {} }",
    "m!();",
    "println!(\"{}\", tick(1).await);",
    "x = tick(1).await;",
    "x += tick(1).await;",
    "&mut x",
    "*x",
    "(tick(1).await, tick(2).await)",
    "[tick(1).await; 3]",
    "S { f: tick(1).await }",
    "x as u8",
    "..",
    "=>",
    "::",
    "->",
    ";",
];

/// Arguments for the attribute: valid ones and malformed ones.
const ARGS: &[&str] = &[
    "",
    "strict",
    "yields = u32",
    "yields = u64, strict",
    "strict, yields = String",
    "yields = impl Fn()",
    "yields = &'static str",
    "yields",
    "yields =",
    "yields = ,",
    "yields u32",
    "strict strict",
    "strict, strict",
    "strict,",
    "yields = u32, yields = u8",
    "foo",
    "1",
    "= u32",
    "strict = true",
    "(strict)",
    "yields = u32 u8",
    "yields = Vec<",
    ",",
    "yields = (), strict,",
];

/// The sequence (the whole item, or the inside of some group) a mutation applies to: a random
/// group at a random depth, mostly inside the body.
fn at_random_depth(
    rng: &mut Rng,
    tts: &mut Vec<TokenTree>,
    f: &mut dyn FnMut(&mut Rng, &mut Vec<TokenTree>),
) {
    let groups: Vec<usize> = (0..tts.len())
        .filter(|&i| matches!(tts[i], TokenTree::Group(_)))
        .collect();
    if groups.is_empty() || rng.chance(4) {
        f(rng, tts);
        return;
    }
    let i = *rng.pick(&groups);
    let TokenTree::Group(g) = &tts[i] else {
        unreachable!("filtered to groups")
    };
    let mut inner: Vec<TokenTree> = g.stream().into_iter().collect();
    at_random_depth(rng, &mut inner, f);
    let mut new = Group::new(g.delimiter(), inner.into_iter().collect());
    new.set_span(g.span());
    tts[i] = new.into();
}

/// A random run of token trees from a random depth of `tts`.
fn random_subtree(rng: &mut Rng, tts: &[TokenTree]) -> Vec<TokenTree> {
    let mut seq: Vec<TokenTree> = tts.to_vec();
    loop {
        let groups: Vec<&Group> = seq
            .iter()
            .filter_map(|t| match t {
                TokenTree::Group(g) => Some(g),
                _ => None,
            })
            .collect();
        if groups.is_empty() || rng.chance(3) {
            break;
        }
        let g = *rng.pick(&groups);
        seq = g.stream().into_iter().collect();
    }
    if seq.is_empty() {
        return seq;
    }
    let start = rng.below(seq.len());
    let len = 1 + rng.below((seq.len() - start).min(6));
    seq[start..start + len].to_vec()
}

fn tokens(src: &str) -> Vec<TokenTree> {
    src.parse::<TokenStream>()
        .unwrap_or_else(|e| panic!("snippet `{src}`: {e}"))
        .into_iter()
        .collect()
}

fn random_delimiter(rng: &mut Rng) -> Delimiter {
    *rng.pick(&[
        Delimiter::Parenthesis,
        Delimiter::Brace,
        Delimiter::Bracket,
        Delimiter::None,
    ])
}

/// One mutation of `seq`, in place.
fn mutate_seq(rng: &mut Rng, corpus: &[Vec<Entry>], seq: &mut Vec<TokenTree>) {
    let len = seq.len();
    let pos = rng.below(len + 1);
    match rng.below(13) {
        // Delete a token tree.
        0 if len > 0 => {
            seq.remove(pos.min(len - 1));
        }
        // Duplicate one.
        1 if len > 0 => {
            let t = seq[pos.min(len - 1)].clone();
            seq.insert(pos.min(len - 1), t);
        }
        // Swap two.
        2 if len > 1 => {
            let (i, j) = (rng.below(len), rng.below(len));
            seq.swap(i, j);
        }
        // Replace an ident, a punct or a literal with another of any of the three kinds.
        3 | 4 if len > 0 => {
            let i = pos.min(len - 1);
            if !matches!(seq[i], TokenTree::Group(_)) {
                let span = seq[i].span();
                let mut new: TokenTree = match rng.below(3) {
                    0 => Ident::new(rng.word(IDENTS), span).into(),
                    1 => {
                        let spacing = if rng.chance(3) {
                            Spacing::Joint
                        } else {
                            Spacing::Alone
                        };
                        Punct::new(*rng.pick(PUNCTS), spacing).into()
                    }
                    _ => rng
                        .pick(LITERALS)
                        .parse::<Literal>()
                        .map_or_else(|_| Literal::u32_unsuffixed(7).into(), TokenTree::from),
                };
                new.set_span(span);
                seq[i] = new;
            }
        }
        // Change a group's delimiter.
        5 => {
            let groups: Vec<usize> = (0..len)
                .filter(|&i| matches!(seq[i], TokenTree::Group(_)))
                .collect();
            if !groups.is_empty() {
                let i = *rng.pick(&groups);
                if let TokenTree::Group(g) = &seq[i] {
                    let mut new = Group::new(random_delimiter(rng), g.stream());
                    new.set_span(g.span());
                    seq[i] = new.into();
                }
            }
        }
        // Truncate.
        6 => seq.truncate(pos),
        // Splice a subtree from another body, inserted or replacing a run.
        7 | 8 => {
            let file = rng.pick(corpus);
            let other = rng.pick(file);
            let sub = random_subtree(rng, &other.item);
            let remove = if rng.chance(2) {
                rng.below(len - pos + 1).min(4)
            } else {
                0
            };
            seq.splice(pos..pos + remove, sub);
        }
        // Wrap a run in a group.
        9 if len > 0 => {
            let start = rng.below(len);
            let end = start + 1 + rng.below((len - start).min(5));
            let inner: TokenStream = seq[start..end].iter().cloned().collect();
            let g = Group::new(random_delimiter(rng), inner);
            seq.splice(start..end, [TokenTree::Group(g)]);
        }
        // Insert a snippet.
        _ => {
            let snippet = tokens(rng.word(SNIPPETS));
            seq.splice(pos..pos, snippet);
        }
    }
}

/// The mutant for `seed`: arguments and item tokens.
fn mutant(corpus: &[Vec<Entry>], seed: u64) -> (TokenStream, TokenStream) {
    let mut rng = Rng(seed);
    let file = rng.pick(corpus);
    let entry = rng.pick(file).clone();
    let mut args = if rng.chance(3) {
        tokens(rng.word(ARGS))
    } else {
        entry.args
    };
    if rng.chance(10) {
        mutate_seq(&mut rng, corpus, &mut args);
    }
    let mut item = entry.item;
    let n = 1 + rng.below(3) + usize::from(rng.chance(4)) * rng.below(4);
    for _ in 0..n {
        at_random_depth(&mut rng, &mut item, &mut |rng, seq| {
            mutate_seq(rng, corpus, seq)
        });
    }
    (args.into_iter().collect(), item.into_iter().collect())
}

thread_local! {
    /// The panics seen on this thread while a check runs (`None`: not checking).
    static PANICS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records the panics of a running check and leaves every
/// other panic to the previous hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let recorded = PANICS.with(|p| match p.try_borrow_mut() {
                Ok(mut p) => match p.as_mut() {
                    Some(list) => {
                        list.push(info.to_string());
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            });
            if !recorded {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning its result (`None` if it panicked) and every panic seen meanwhile,
/// including ones caught inside it.
fn recording<T>(f: impl FnOnce() -> T) -> (Option<T>, Vec<String>) {
    PANICS.with(|p| *p.borrow_mut() = Some(Vec::new()));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    let panics = PANICS.with(|p| p.borrow_mut().take()).unwrap_or_default();
    (out, panics)
}

/// Whether `out` starts with a `compile_error!` (the form every rejection takes).
fn is_compile_error(out: &TokenStream) -> bool {
    let words: Vec<String> = out
        .clone()
        .into_iter()
        .take(6)
        .filter_map(|t| match t {
            TokenTree::Ident(id) => Some(id.to_string()),
            _ => None,
        })
        .collect();
    words.iter().take(2).any(|w| w == "compile_error")
}

/// How far a checked input went, for the summary a run prints.
#[derive(Default)]
struct Stats {
    /// The item parsed as a fn and the arguments parsed: the lowering ran.
    lowered: usize,
    /// Of those, the lowering built an explicit machine.
    explicit: usize,
    /// The item was a valid `async fn` without `yield_!`, and its expansion parsed.
    parsed: usize,
}

/// Checks one input; `Err` describes what went wrong.
fn check(args: &TokenStream, item: &TokenStream, stats: &mut Stats) -> Result<(), String> {
    let (out, panics) = recording(|| crate::expand::structured(args.clone(), item.clone()));
    if !panics.is_empty() {
        return Err(format!("the expansion panicked: {}", panics.join("; ")));
    }
    let out = out.ok_or("the expansion unwound without a panic message")?;
    let parsed = syn::parse2::<syn::File>(out.clone());
    if let (Err(_), Some(path)) = (&parsed, std::env::var_os("STRUCTURED_FUZZ_DUMP")) {
        std::fs::write(path, out.to_string()).expect("writing STRUCTURED_FUZZ_DUMP");
    }
    if parsed.is_err() && !is_compile_error(&out) {
        return Err(format!(
            "the output is neither Rust nor a compile_error!: {}",
            parsed.err().map(|e| e.to_string()).unwrap_or_default()
        ));
    }
    let item_fn = syn::parse2::<syn::ItemFn>(item.clone()).ok();
    let valid = item_fn.as_ref().is_some_and(|f| f.sig.asyncness.is_some());
    if valid && !mentions(&item.clone().into_iter().collect::<Vec<_>>(), "yield_") {
        if let Err(e) = &parsed {
            return Err(format!(
                "a valid async fn expanded to code that does not parse: {e}"
            ));
        }
        stats.parsed += 1;
    }
    // The lowering alone, without its catch_unwind, given what the expansion would give it.
    let (Some(item_fn), Ok(parsed_args)) = (item_fn, crate::args::parse(args.clone())) else {
        return Ok(());
    };
    if crate::sig::validate(&item_fn).is_err() || !yields_ok(&item_fn, &parsed_args) {
        return Ok(());
    }
    let parts = crate::sig::split(&item_fn);
    let (lowered, panics) =
        recording(|| crate::lower::lower_uncaught(&item_fn, &parts, &parsed_args));
    if !panics.is_empty() {
        return Err(format!("the lowering panicked: {}", panics.join("; ")));
    }
    stats.lowered += 1;
    stats.explicit += usize::from(matches!(lowered, Some(Ok(_))));
    Ok(())
}

/// Whether the body's `yield_!` invocations pass the expansion's check (as `expand` does).
fn yields_ok(item: &syn::ItemFn, args: &crate::args::Args) -> bool {
    use syn::visit_mut::VisitMut;
    let generator = args.yields.is_some();
    let mut check = crate::yields::YieldRewriter::new(|mac| {
        if generator {
            crate::yields::value(mac).map(|_| syn::parse_quote!(()))
        } else {
            Err(crate::yields::not_a_generator(mac))
        }
    });
    let mut probe = item.block.clone();
    check.visit_block_mut(&mut probe);
    check.errors.is_none()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

fn seed_of(i: u64) -> u64 {
    Rng(BASE_SEED ^ i).next()
}

#[test]
fn the_corpus_expands_without_panics() {
    install_hook();
    let corpus = corpus();
    let total: usize = corpus.iter().map(Vec::len).sum();
    assert!(total >= 100, "the corpus found only {total} async fns");
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    for entry in corpus.iter().flatten() {
        let args: TokenStream = entry.args.iter().cloned().collect();
        let item: TokenStream = entry.item.iter().cloned().collect();
        if let Err(e) = check(&args, &item, &mut stats) {
            failures.push(format!("#[structured({args})] {item}\n  {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fixed_regressions_do_not_panic() {
    install_hook();
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    for (args, item) in REGRESSIONS {
        let (args, item): (TokenStream, TokenStream) =
            (args.parse().unwrap(), item.parse().unwrap());
        if let Err(e) = check(&args, &item, &mut stats) {
            failures.push(format!("#[structured({args})] {item}\n  {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mutants_never_panic() {
    install_hook();
    let corpus = corpus();
    let seeds: Vec<u64> = match env_u64("STRUCTURED_FUZZ_SEED") {
        Some(seed) => vec![seed],
        None => {
            let count = env_u64("STRUCTURED_FUZZ_COUNT").unwrap_or(DEFAULT_COUNT);
            (0..count).map(seed_of).collect()
        }
    };
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    for &seed in &seeds {
        let (args, item) = mutant(&corpus, seed);
        if let Err(e) = check(&args, &item, &mut stats) {
            failures.push(format!(
                "seed {seed:#x} (replay: STRUCTURED_FUZZ_SEED={seed:#x})\n  #[structured({args})] {item}\n  {e}"
            ));
        }
    }
    eprintln!(
        "{} mutants: {} lowered ({} explicitly), {} valid async fns whose expansion parsed",
        seeds.len(),
        stats.lowered,
        stats.explicit,
        stats.parsed
    );
    assert!(
        failures.is_empty(),
        "{} of {} mutants failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}
