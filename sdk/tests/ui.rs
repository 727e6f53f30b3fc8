//! Diagnostics of the macros (one case per message, with checked-in
//! `.stderr`) and expansions that must compile in unusual surroundings.
//! Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
