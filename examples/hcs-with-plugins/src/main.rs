//! The `hcs` tool with this crate's functions linked in:
//! `cargo run -p hcs-with-plugins -- functions --json`.

use plugin_kernels as _;

fn main() -> std::process::ExitCode {
    hcs::cli::main()
}
