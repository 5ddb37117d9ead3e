//! A deterministic fuzz test of `#[structured]`: the macro never panics, whatever it is given.
//!
//! The corpus is every `async fn` in the lowering tests and the ui-tests, read from the files
//! at test time. A mutant is one of them changed by a few seeded mutations, either on token
//! trees ([`tokens`]: delete, duplicate, swap, replace an ident/punct/literal/delimiter,
//! truncate, splice a subtree from another body, wrap in a group, insert `.await`, `?`,
//! `yield_!`, `return`, labels, attributes...), or on the syntax tree ([`tree`]: the item stays
//! a fn the lowering has not seen), with arguments picked from valid and malformed ones. Every
//! mutant goes through the attribute's expansion and, separately, through the lowering
//! without its `catch_unwind`, under a panic hook that records any panic (also one caught
//! inside). The output must be a `compile_error!` or parse as Rust, and must parse when the
//! mutant is a valid `async fn` without `yield_!`.
//!
//! A failure prints the mutant's seed: `STRUCTURED_FUZZ_SEED=<seed>` replays that mutant
//! alone, `STRUCTURED_FUZZ_COUNT=<n>` runs more of them, and `STRUCTURED_FUZZ_DUMP=<file>`
//! writes an output that does not parse. What it found is in [`REGRESSIONS`] (and, for the
//! bodies that did not compile, in `tests/lowering_fuzz_found.rs`).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};

mod tokens;
mod tree;

use tokens::{ARGS, at_random_depth, mutate_seq, tokens};

const BASE_SEED: u64 = 0x5eed_f057_2c7e_d001;

/// Minimised mutants that once failed (arguments, item), replayed on every run.
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
    // The same with a `?` in the value, rewritten to `::core::convert::identity(match ..)`.
    (
        "",
        "async fn f() -> Option<usize> { \
         let s = 'a: loop { if tick(true).await { break 'a g(1)?; } }; h().await; Some(s) }",
    ),
    // A block's tail value inside the body (`if c { f() } else { f() };`, `{ ..; x };`) was
    // emitted without its `;`, right before the block's transition.
    (
        "",
        "async fn f(n: u32) -> u32 { let f = || n + 1; \
         if tick(true).await { f() } else { f() }; { let x = tick(n).await; x + 1 }; n }",
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
        "lowering_fuzz_found.rs",
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

/// The async fns to mutate, by file, and what mutations bring into them.
struct Corpus {
    files: Vec<Vec<Entry>>,
    /// Token trees to splice in: the corpus's fns, and some of the random programs (too slow
    /// to expand by the hundred in a debug build, but good material).
    donor_tokens: Vec<Vec<TokenTree>>,
    donor_tree: tree::Donors,
}

fn read_entries(path: &Path) -> Vec<Entry> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let tts: Vec<TokenTree> = text
        .parse::<TokenStream>()
        .unwrap_or_else(|e| panic!("tokenizing {}: {e}", path.display()))
        .into_iter()
        .collect();
    let mut entries = Vec::new();
    collect(&tts, &mut entries);
    entries
}

fn corpus() -> Corpus {
    let files: Vec<Vec<Entry>> = corpus_files()
        .iter()
        .map(|path| read_entries(path))
        .filter(|entries| !entries.is_empty())
        .collect();
    let random = read_entries(&repo_root().join("tests/lowering_random_generated.rs"));
    let mut donor_tokens = Vec::new();
    let mut donor_tree = tree::Donors::default();
    for entry in files.iter().flatten().chain(random.iter().step_by(20)) {
        donor_tokens.push(entry.item.clone());
        if let Ok(item) = syn::parse2::<syn::ItemFn>(entry.item.iter().cloned().collect()) {
            donor_tree.add(&item);
        }
    }
    Corpus {
        files,
        donor_tokens,
        donor_tree,
    }
}

/// What a mutant changes (each test runs one kind, so the two run in parallel).
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Token trees: anything goes (the test's name, for the replay hint).
    Tokens,
    /// The syntax tree (the item stays a fn), sometimes a token tree too.
    Tree,
}

/// The mutant for `seed`: arguments and item tokens.
fn mutant(corpus: &Corpus, seed: u64, mode: Mode) -> (TokenStream, TokenStream) {
    let mut rng = Rng(seed);
    let file = rng.pick(&corpus.files);
    let entry = rng.pick(file).clone();
    let mut args = match rng.below(3) {
        0 => tokens(rng.word(ARGS)),
        // Valid arguments on any body: generators and strict mode see every kind of body.
        1 if matches!(mode, Mode::Tree) => {
            tokens(rng.word(&["", "strict", "yields = u32", "yields = u64, strict"]))
        }
        _ => entry.args,
    };
    if rng.chance(10) {
        mutate_seq(&mut rng, &corpus.donor_tokens, &mut args);
    }
    let mut item = entry.item;
    let parsed = match mode {
        Mode::Tree => syn::parse2::<syn::ItemFn>(item.iter().cloned().collect()).ok(),
        Mode::Tokens => None,
    };
    let n = if let Some(mut parsed) = parsed {
        for _ in 0..1 + rng.below(3) + rng.below(3) {
            tree::mutate(&mut rng, &corpus.donor_tree, &mut parsed);
        }
        item = quote::ToTokens::to_token_stream(&parsed)
            .into_iter()
            .collect();
        usize::from(rng.chance(5))
    } else {
        1 + rng.below(3) + usize::from(rng.chance(4)) * rng.below(4)
    };
    for _ in 0..n {
        at_random_depth(&mut rng, &mut item, &mut |rng, seq| {
            mutate_seq(rng, &corpus.donor_tokens, seq)
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
    let head: TokenStream = out.clone().into_iter().take(7).collect();
    let head = head.to_string();
    head.starts_with(":: core :: compile_error !") || head.starts_with("compile_error !")
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
    // Generated code has no code of its own that needs the keyword below: any in the output
    // came from the input.
    // (The keyword is spelled in two halves so that macros/ holds no such token at all.)
    let keyword = concat!("un", "safe");
    let out_tts: Vec<TokenTree> = out.clone().into_iter().collect();
    if mentions(&out_tts, keyword)
        && !mentions(&item.clone().into_iter().collect::<Vec<_>>(), keyword)
    {
        return Err(format!(
            "the expansion contains `{keyword}` the input did not"
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
    if let Some(Err(f)) = &lowered
        && f.reason.starts_with("internal")
    {
        return Err(format!(
            "the lowering fell back on an internal error: {}",
            f.reason
        ));
    }
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

fn seed_of(mode: Mode, i: u64) -> u64 {
    Rng(BASE_SEED ^ (mode as u64) << 48 ^ i).next()
}

/// The harness must be able to fail: a panic is recorded even when something inside the
/// checked code catches it, and only a `compile_error!` counts as a rejection.
#[test]
fn the_harness_sees_caught_panics_and_rejections() {
    install_hook();
    let (out, panics) = recording(|| std::panic::catch_unwind(|| panic!("deep inside")).is_err());
    assert_eq!(out, Some(true));
    assert_eq!(panics.len(), 1);
    assert!(panics[0].contains("deep inside"), "{panics:?}");
    let (out, panics) = recording(|| -> u32 { panic!("uncaught") });
    assert_eq!((out, panics.len()), (None, 1));

    let error = syn::Error::new(proc_macro2::Span::call_site(), "no").to_compile_error();
    assert!(is_compile_error(&error));
    assert!(!is_compile_error(&"fn compile_error() {}".parse().unwrap()));
    // The lowering's own catch_unwind hides nothing from the hook: a checked input whose
    // expansion panics is a failure.
    let mut stats = Stats::default();
    assert!(
        check(
            &TokenStream::new(),
            &"async fn f() {}".parse().unwrap(),
            &mut stats
        )
        .is_ok()
    );
    assert_eq!((stats.lowered, stats.explicit, stats.parsed), (1, 1, 1));
}

#[test]
fn the_corpus_expands_without_panics() {
    install_hook();
    let corpus = corpus();
    let total: usize = corpus.files.iter().map(Vec::len).sum();
    assert!(total >= 100, "the corpus found only {total} async fns");
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    for entry in corpus.files.iter().flatten() {
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

/// Runs the mutants of `mode`: `count` of them, or the one `STRUCTURED_FUZZ_SEED` names.
fn run_mutants(mode: Mode, count: u64) {
    install_hook();
    let corpus = corpus();
    let seeds: Vec<u64> = match env_u64("STRUCTURED_FUZZ_SEED") {
        Some(seed) => vec![seed],
        None => {
            let count = env_u64("STRUCTURED_FUZZ_COUNT").unwrap_or(count);
            (0..count).map(|i| seed_of(mode, i)).collect()
        }
    };
    let mut failures = Vec::new();
    let mut stats = Stats::default();
    let mut slowest = (std::time::Duration::ZERO, 0);
    for &seed in &seeds {
        let (args, item) = mutant(&corpus, seed, mode);
        let start = std::time::Instant::now();
        let checked = check(&args, &item, &mut stats);
        slowest = slowest.max((start.elapsed(), seed));
        if let Err(e) = checked {
            failures.push(format!(
                "seed {seed:#x} (replay: STRUCTURED_FUZZ_SEED={seed:#x} cargo test -p \
                 structured-async-macros {mode:?})\n  #[structured({args})] {item}\n  {e}"
            ));
        }
    }
    // Not asserted (the machine is shared), but a blow-up shows here with its seed.
    eprintln!(
        "{} mutants: {} lowered ({} explicitly), {} valid async fns whose expansion parsed; \
         slowest: seed {:#x}, {:?}",
        seeds.len(),
        stats.lowered,
        stats.explicit,
        stats.parsed,
        slowest.1,
        slowest.0
    );
    if let Mode::Tree = mode
        && seeds.len() >= 100
    {
        assert!(
            stats.lowered * 4 > seeds.len() && stats.explicit * 4 > seeds.len(),
            "most tree mutants should reach the lowering and many lower explicitly"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} mutants failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

/// Mostly malformed input: the expansion answers with a `compile_error!`, never a panic.
#[test]
fn token_mutants_never_panic() {
    run_mutants(Mode::Tokens, 2000);
}

/// Mostly valid fns the lowering has not seen: it lowers them or falls back, never panics,
/// and what it emits parses.
#[test]
fn tree_mutants_never_panic() {
    run_mutants(Mode::Tree, 1500);
}
