//! The `hcs` tool with this crate's functions linked in:
//! `cargo run -p hcs-with-plugins -- functions --json`.

use plugin_kernels as _;

/// Counts the heap bytes in use, as the `hcs` binary does: a run's trace reports the data it
/// held, and its RSS ceiling knows how much of the RSS is freed memory.
#[global_allocator]
static ALLOCATOR: hcs::exec::heap::Counting = hcs::exec::heap::Counting;

fn main() -> std::process::ExitCode {
    hcs::exec::heap::keep_freed_memory();
    // Huge pages for image buffers, or base pages where those are dear (see its docs).
    hcs::exec::huge_pages::decide();
    hcs::cli::main()
}
