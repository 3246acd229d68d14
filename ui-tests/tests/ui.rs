//! Drives the trybuild cases; part of the normal `cargo test`.

#[test]
fn contract_misuse_is_rejected_by_rustc() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
}

#[test]
fn valid_contracts_compile_and_register() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
}
