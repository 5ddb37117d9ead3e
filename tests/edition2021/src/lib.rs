//! Nothing but tests: `tests/tail_temporaries.rs` compiles `#[structured]` bodies in an
//! edition 2021 crate and compares them with native `async fn`s.
