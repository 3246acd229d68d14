//! Drives the trybuild cases; part of the normal `cargo test`.
//!
//! One `TestCases` for all four folders: trybuild compiles the crate's dependencies once per
//! `TestCases` run, with `cargo check` when a run has only compile-fail cases and `cargo build`
//! when it has a pass case. Four runs meant the whole runtime dependency tree compiled twice more
//! (once per mode) in trybuild's own target folder; one run compiles it once.
//!
//! - `ui/fail`: contract misuse is rejected by rustc (attributes on processing functions);
//! - `ui/pass`: valid contracts compile and register;
//! - `ui/pipeline_fail`: `pipeline!` wiring mistakes are rejected by rustc;
//! - `ui/pipeline_pass`: pipelines of every pattern form compile and equal their file twins.

#[test]
fn contracts_and_pipelines_compile_or_are_rejected_as_their_snapshots_say() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/pipeline_fail/*.rs");
    t.pass("tests/ui/pipeline_pass/*.rs");
}
