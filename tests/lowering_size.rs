//! The explicit machine is no larger than rustc's own future for these bodies (not for every
//! body: README.md, "Portable and small", names shapes where rustc's is smaller).
//!
//! Each body is written twice, as `#[structured]` and as a native `async fn`; the test prints
//! both sizes (`cargo test --test lowering_size -- --nocapture`) and asserts the machine is
//! not larger.

use std::mem::size_of_val;

use structured_async::structured;

async fn leaf(n: u64) -> u64 {
    std::future::ready(n).await
}

macro_rules! twice {
    ($structured:ident, $native:ident, ($($arg:ident: $ty:ty),*) -> $out:ty $body:block) => {
        #[structured]
        async fn $structured($($arg: $ty),*) -> $out $body
        async fn $native($($arg: $ty),*) -> $out $body
    };
}

twice!(chain_s, chain_n, (n: u64) -> u64 {
    let a = leaf(n).await;
    let b = leaf(a + 1).await;
    let c = leaf(b + 1).await;
    a + b + c
});

twice!(loop_s, loop_n, (n: u64) -> u64 {
    let mut total = 0;
    let mut i = 0;
    while i < n {
        total += leaf(i).await;
        i += 1;
    }
    total
});

twice!(branch_s, branch_n, (n: u64, name: String) -> usize {
    let buf = vec![0u8; 16];
    if n > 3 {
        let x = leaf(n).await;
        buf.len() + name.len() + usize::try_from(x).unwrap_or(0)
    } else {
        let y = leaf(n * 2).await;
        name.len() + usize::try_from(y).unwrap_or(0)
    }
});

twice!(matched_s, matched_n, (v: Option<u64>) -> u64 {
    match v {
        Some(x) => leaf(x).await,
        None => 0,
    }
});

/// `(structured, native)` sizes of each body, with its name.
fn sizes() -> Vec<(&'static str, usize, usize)> {
    vec![
        ("chain", size_of_val(&chain_s(1)), size_of_val(&chain_n(1))),
        ("loop", size_of_val(&loop_s(1)), size_of_val(&loop_n(1))),
        (
            "branch",
            size_of_val(&branch_s(1, String::new())),
            size_of_val(&branch_n(1, String::new())),
        ),
        (
            "match",
            size_of_val(&matched_s(None)),
            size_of_val(&matched_n(None)),
        ),
    ]
}

#[test]
fn machines_are_no_larger_than_native_futures() {
    for (name, ours, native) in sizes() {
        println!("{name:>8}: #[structured] {ours:>4} B, native {native:>4} B");
        assert!(ours <= native, "{name}: {ours} > {native}");
    }
}

#[test]
fn the_same_bodies_give_the_same_results() {
    use structured_async::block_on as b;
    assert_eq!(b(chain_s(1)), b(chain_n(1)));
    assert_eq!(b(loop_s(5)), b(loop_n(5)));
    assert_eq!(b(branch_s(5, "ab".into())), b(branch_n(5, "ab".into())));
    assert_eq!(b(matched_s(Some(4))), b(matched_n(Some(4))));
}
