//! Heap bytes in use, counted by an allocator a binary can install: the memory a run's data
//! really takes, beside the resident memory (RSS) the kernel reports.
//!
//! The two differ because an allocator keeps freed memory for reuse: the `hcs` binary tells
//! glibc to keep freed small blocks in its heap, and what that heap holds free adds to the RSS.
//! Image planes and stacks (2 MiB and more) are mappings of their own ([`crate::blocks`]),
//! whose pages, once freed, serve the next blocks within 1.25 × the heap's peak, so they leave no
//! holes. What the compiler's memory estimate models is
//! the data in use, so that is what [`Counting`] measures; a run's trace reports both.
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
/// Blocks of 2 MiB and more are served as mappings of their own, backed by huge pages
/// ([`crate::blocks`], [`crate::huge_pages`]); the rest come from the system allocator.
pub struct Counting;

fn grew(bytes: usize) {
    let now = IN_USE.fetch_add(bytes, Ordering::Relaxed).wrapping_add(bytes);
    // Most allocations do not raise the mark: read before writing the shared line.
    let peak = PEAK.load(Ordering::Relaxed);
    if now > peak {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
    // Freed image blocks kept for reuse stay within the heap's margin: the data in use plus
    // the kept blocks within 1.25 × the heap's peak ([`crate::blocks`]).
    let room = crate::blocks::kept_margin(peak).saturating_sub(now);
    if crate::blocks::kept_bytes() > room {
        crate::blocks::trim_kept_to(room);
    }
}

fn shrank(bytes: usize) {
    IN_USE.fetch_sub(bytes, Ordering::Relaxed);
}

/// An uncounted block: image-sized ones from [`crate::blocks`], the rest from `System`.
///
/// # Safety
/// `GlobalAlloc::alloc`'s contract.
unsafe fn raw_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    if crate::blocks::serves(layout.size(), layout.align()) {
        // `raw_dealloc` gives it back to `blocks` by the same test on the layout.
        return crate::blocks::alloc(layout.size(), zeroed);
    }
    // SAFETY: the caller's contract for `alloc`, passed on.
    let p = unsafe { if zeroed { System.alloc_zeroed(layout) } else { System.alloc(layout) } };
    crate::huge_pages::advise(p, layout.size());
    p
}

/// Give back a block of [`raw_alloc`].
///
/// # Safety
/// `GlobalAlloc::dealloc`'s contract.
unsafe fn raw_dealloc(ptr: *mut u8, layout: Layout) {
    if crate::blocks::serves(layout.size(), layout.align()) {
        // SAFETY: `raw_alloc` served a block of this layout from `blocks`.
        unsafe { crate::blocks::free(ptr, layout.size()) }
    } else {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

// SAFETY: image-sized blocks come from `blocks` (own mappings, given back there by the same
// layout test), all others from `System` unchanged; a realloc across the 2 MiB line copies into
// a block of the other kind. The counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc`, passed on.
        let p = unsafe { raw_alloc(layout, false) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { raw_alloc(layout, true) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { raw_dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc`, passed on.
        let p = unsafe { raw_realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Resize a block of [`raw_alloc`]; a resize across the 2 MiB line copies into a block of the
/// other kind.
///
/// # Safety
/// `GlobalAlloc::realloc`'s contract.
unsafe fn raw_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    let old_big = crate::blocks::serves(layout.size(), layout.align());
    let new_big = crate::blocks::serves(new_size, layout.align());
    match (old_big, new_big) {
        (false, false) => {
            // SAFETY: the caller's contract for `realloc`, passed on.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            crate::huge_pages::advise(p, new_size);
            p
        }
        // SAFETY: both sizes are served by `blocks`, which made `ptr` for `layout.size()`.
        (true, true) => unsafe { crate::blocks::resize(ptr, layout.size(), new_size) },
        _ => {
            // SAFETY: `realloc`'s contract makes `new_size` with `layout.align()` a valid
            // layout; the new block is another one, at least as long as the bytes copied.
            unsafe {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let q = raw_alloc(new_layout, false);
                if !q.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                    raw_dealloc(ptr, layout);
                }
                q
            }
        }
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

/// Tell glibc to keep freed memory in its heap for reuse; call it first thing in `main`, so
/// every allocation follows it (a no-op where the C library is not glibc).
///
/// By default glibc serves each block of 128 KiB–32 MiB from a fresh `mmap` and unmaps it on
/// free, so every step paid the kernel to zero the same pages again in 4 KiB faults (measured:
/// ~15 % of a plate run's CPU time). Raising the mmap and trim thresholds keeps freed blocks in
/// one arena for reuse. Image-sized blocks (2 MiB and more) do not go there: [`Counting`] maps
/// them on their own, in huge pages ([`crate::blocks`]), because the holes stacks of different
/// sizes left in the heap kept the standard plate's RSS up to 250 MiB above the data in use.
/// What the heap still holds free is handed back when the RSS passes the plan's bound
/// ([`crate::ceiling`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A block grown and shrunk across the 2 MiB line (system heap ↔ own mapping) and within
    /// mappings keeps its contents and the alignment asked for. (The uncounted functions: the
    /// counters are the test process's, which other tests read.)
    #[test]
    fn realloc_across_and_within_mapped_blocks_keeps_contents() {
        let mb = 1 << 20;
        let align = 64;
        let layout = |size| Layout::from_size_align(size, align).expect("a valid layout");
        // SAFETY: each pointer is used within its current size and passed on or freed once, with
        // the layout it was last given.
        unsafe {
            let (mut p, mut size) = (raw_alloc(layout(mb), false), mb);
            assert!(!p.is_null());
            p.write_bytes(5, mb);
            for next in [3 * mb, 9 * mb, 5 * mb, mb / 2] {
                let q = raw_realloc(p, layout(size), next);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0);
                let kept = size.min(next);
                assert!(std::slice::from_raw_parts(q, kept).iter().all(|&x| x == 5), "{size} → {next}");
                if next > size {
                    q.add(size).write_bytes(5, next - size);
                }
                (p, size) = (q, next);
            }
            raw_dealloc(p, layout(size));
            let z = raw_alloc(layout(4 * mb), true);
            assert!(std::slice::from_raw_parts(z, 4 * mb).iter().all(|&x| x == 0));
            raw_dealloc(z, layout(4 * mb));
        }
    }
}
