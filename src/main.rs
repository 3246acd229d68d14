//! The `hcs` command-line tool. All of it lives in [`hcs::cli`], so a crate with its own kernels
//! can ship the same tool with its functions linked in (see `examples/plugin-kernels`).

/// Counts the heap bytes in use, so a run's trace can report the data it held beside its RSS
/// (see `hcs::exec::heap`); it passes every call on to the system allocator.
#[global_allocator]
static ALLOCATOR: hcs::exec::heap::Counting = hcs::exec::heap::Counting;

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    hcs::cli::main()
}

/// Image stacks of tens of megabytes are allocated and freed per step and group. By default
/// glibc serves each from a fresh `mmap` and unmaps it on free, so every step pays the kernel
/// to zero the same pages again (measured: ~15 % of a plate run's CPU time). Raising the mmap and
/// trim thresholds keeps freed blocks in the heap for reuse. The price: freed holes the next
/// allocations do not fit stay resident, so the peak RSS can exceed the peak of data in use
/// (the standard plate with 2 workers: heap in use 305–352 MiB, RSS 336–603 MiB). Handing free
/// memory back (`malloc_trim` when more than 16–128 MiB lay free) held the RSS at 321–410 MiB
/// but cost 25–55 % more CPU time on the development VM; see bench/RESULTS.md. So the executor
/// hands freed memory back only when the RSS passes the plan's bound (`hcs_exec::ceiling`).
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
