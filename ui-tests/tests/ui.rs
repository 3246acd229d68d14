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

#[test]
fn pipeline_wiring_mistakes_are_rejected_by_rustc() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/pipeline_fail/*.rs");
}

#[test]
fn pipelines_of_every_pattern_form_compile_and_equal_their_file_twins() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pipeline_pass/*.rs");
}
