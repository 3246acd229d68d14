//! Drives the trybuild cases; part of the normal `cargo test`.
//!
//! One `TestCases` for all four folders: trybuild compiles the crate's dependencies in its own
//! target folder, with `cargo check` for a run of only compile-fail cases and `cargo build` for a
//! run with a pass case. Separate runs for the fail and pass folders compiled the whole runtime
//! dependency tree twice (checked, then built); one run builds it once.
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
