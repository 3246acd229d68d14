//! trybuild tests of hcs contract misuse: `tests/ui/fail/*.rs` must fail to compile with the
//! message in the sibling `.stderr`; `tests/ui/pass/*.rs` must compile and run.
//! Refresh snapshots with `TRYBUILD=overwrite cargo test -p ui-tests` and read every diff.
