//! Heap bytes in use, counted by an allocator a binary can install: the memory a run's data
//! really takes, beside the resident memory (RSS) the kernel reports.
//!
//! The two differ because an allocator keeps freed memory for reuse: the `hcs` binary tells
//! glibc to keep freed image stacks in its heap (faulting the pages in again costs ~15 % of a
//! run's CPU time), and when two wells free and allocate stacks of different sizes at once the
//! heap's free holes add to the RSS. What the compiler's memory estimate models is the data in
//! use, so that is what [`Counting`] measures; a run's trace reports both.
//!
//! A binary that runs plates installs both, first thing in `main` (the `hcs` tool does):
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: hcs_exec::heap::Counting = hcs_exec::heap::Counting;
//!
//! fn main() {
//!     hcs_exec::heap::keep_freed_memory();
//!     // ... run plates
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes in use and their high-water mark. Install it with
/// `#[global_allocator]` in a binary (or a test) to get [`in_use_bytes`] and [`peak_bytes`].
/// It also marks blocks of 2 MiB and more for huge pages ([`crate::huge_pages`]).
pub struct Counting;

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed).wrapping_add(bytes);
    // Most allocations do not raise the mark: read before writing the shared line.
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    IN_USE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; the counters only observe sizes, and
// the huge-page hint changes no block's contents or bounds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
            crate::huge_pages::advise(p, layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
            crate::huge_pages::advise(p, layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
                crate::huge_pages::advise(p, new_size);
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Whether [`Counting`] has counted an allocation (it is the process's allocator).
pub fn installed() -> bool {
    PEAK.load(Ordering::Relaxed) > 0
}

/// Heap bytes in use now (`None` where [`Counting`] is not installed).
pub fn in_use_bytes() -> Option<usize> {
    installed().then(|| IN_USE.load(Ordering::Relaxed))
}

/// The most heap bytes in use at once since the process started (`None` where [`Counting`] is
/// not installed).
pub fn peak_bytes() -> Option<usize> {
    installed().then(|| PEAK.load(Ordering::Relaxed))
}

/// [`in_use_bytes`] and [`peak_bytes`] in MiB.
pub fn in_use_and_peak_mib() -> (Option<f64>, Option<f64>) {
    let mib = |b: usize| b as f64 / 1_048_576.0;
    (in_use_bytes().map(mib), peak_bytes().map(mib))
}

/// Tell glibc to keep freed image stacks in its heap for reuse; call it first thing in `main`,
/// so every allocation follows it (a no-op where the C library is not glibc).
///
/// Image stacks of tens of megabytes are allocated and freed per step and group. By default
/// glibc serves each from a fresh `mmap` and unmaps it on free, so every step pays the kernel
/// to zero the same pages again (measured: ~15 % of a plate run's CPU time). Raising the mmap
/// and trim thresholds keeps freed blocks in the heap for reuse, in one arena. The price: freed
/// holes the next allocations do not fit stay resident, so the peak RSS can exceed the peak of
/// data in use (the standard plate with 2 workers: heap in use 305–352 MiB, RSS 336–603 MiB).
/// Handing free memory back whenever 16–128 MiB lay free held the RSS at 321–410 MiB but cost
/// 25–55 % more CPU time (bench/RESULTS.md), so the executor hands it back only when the RSS
/// passes the plan's bound ([`crate::ceiling`]).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables, under glibc's arena lock (it is called first
    // in `main` so every allocation sees them, not for soundness).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
