//! Mutations on token trees: anything goes, the item need not stay Rust.

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, TokenStream, TokenTree};

use super::Rng;

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
pub(super) const ARGS: &[&str] = &[
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
pub(super) fn at_random_depth(
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

pub(super) fn tokens(src: &str) -> Vec<TokenTree> {
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
pub(super) fn mutate_seq(rng: &mut Rng, donors: &[Vec<TokenTree>], seq: &mut Vec<TokenTree>) {
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
            let donor = rng.pick(donors);
            let sub = random_subtree(rng, donor);
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
