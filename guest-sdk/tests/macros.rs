//! The attribute macros reject wrong signatures with an error at the offending span and the
//! expected form.

#[test]
fn wrong_signatures_are_clear_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
