//! The `hcs` command-line tool. All of it lives in [`hcs::cli`], so a crate with its own kernels
//! can ship the same tool with its functions linked in (see `examples/plugin-kernels`).

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    hcs::cli::main()
}

/// Image stacks of tens of megabytes are allocated and freed per step and group. By default
/// glibc serves each from a fresh `mmap` and unmaps it on free, so every step pays the kernel
/// to zero the same pages again (measured: ~15 % of a plate run's CPU time). Raising the mmap and
/// trim thresholds keeps freed blocks in the heap for reuse; peak RSS is what it was, it is
/// just not handed back between steps.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
