//! The `hcs` command-line tool. All of it lives in [`hcs::cli`], so a crate with its own kernels
//! can ship the same tool with its functions linked in (see `examples/plugin-kernels`).

/// Counts the heap bytes in use, so a run's trace can report the data it held beside its RSS
/// (see `hcs::exec::heap`); it passes every call on to the system allocator.
#[global_allocator]
static ALLOCATOR: hcs::exec::heap::Counting = hcs::exec::heap::Counting;

fn main() -> std::process::ExitCode {
    // Freed image stacks stay in the heap for reuse (see its docs).
    hcs::exec::heap::keep_freed_memory();
    // Huge pages for image buffers, or base pages where those are dear (see its docs).
    hcs::exec::huge_pages::decide();
    hcs::cli::main()
}
