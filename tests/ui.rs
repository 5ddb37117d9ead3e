//! Compile-time guarantees: every kind of rejection fails with a readable error, and the pass
//! cases compile and run.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui-tests/**/fail/*.rs");
    t.pass("ui-tests/**/pass/*.rs");
}
