//! Image-sized heap blocks (2 MiB and more) as mappings of their own, their pages reused for
//! later blocks once freed — the part of [`crate::heap::Counting`] that serves planes and
//! stacks.
//!
//! The `hcs` binary tells glibc to keep freed memory in its heap
//! ([`crate::heap::keep_freed_memory`]), which suits the many small blocks of a run. Planes and
//! stacks of different sizes, allocated and freed by two wells at once, left holes in that heap
//! the next ones did not fit: the standard plate's RSS ran up to 250 MiB above the data in use
//! (in use 305–380 MiB, RSS up to 565 MiB). Here each block of [`MIN_BYTES`] or more is its own
//! anonymous mapping, aligned to 2 MiB and its length rounded up to 2 MiB, so it is backed by
//! whole huge pages ([`crate::huge_pages`]; 4 KiB pages where [`crate::huge_pages::decide`]
//! or the watch on fresh huge pages chose them). The RSS then follows the data in use. When this
//! was written, freeing a block unmapped it and the kernel zeroed every fresh block again; a
//! freed block's pages are now kept for the next blocks, within 1.25 × the heap's peak (the `kept`
//! module). Alternating runs, 2 workers (bench/RESULTS.md), the own mappings against the heap:
//! the standard plate's RSS median 402 → 363 MiB, at most 509 → 407, wall 0.94 → 0.93 s mean;
//! the scale plate (8 wells) RSS median 501 → 456 MiB, wall 3.40 → 3.39 s mean (user CPU 0.35 s
//! less, system CPU 0.4 s more); 24 wells of 512² tiles RSS median 161 → 152 MiB, wall 2.92 →
//! 3.00 s mean (+3 %).
//!
//! On a virtual machine whose balloon reports free memory to its host (the development
//! machines), a fresh block's first write may be the host backing it again, at a fraction of
//! memory's speed (`bench/first_touch.py`); a block unmapped and mapped again within a second
//! or two gets its pages back fast. What a run pays there follows its peak memory, so the pages kept for
//! reuse stay within 1.25 × the heap's peak (the `kept` module).
//!
//! Keeping freed blocks for reuse up to a fixed bound was tried first (the nineteenth
//! session): 64 MiB was ~4 % faster on the scale plate but 6 % slower on the 512² one, its RSS
//! 17–50 MiB higher; 128 and 256 MiB no faster and higher still. A kept block then served only
//! a request it was long enough for, and kept memory added to the peak; `kept` now moves the
//! pages of several kept blocks into one (`mremap`) and is bounded by the heap's own peak (with
//! the RSS ceiling's margin).
//!
//! Lengths rounded to 4 KiB pages instead of 2 MiB cost more system time (one huge-page fault
//! for the whole block is cheaper than one fault per 4 KiB of its tail), except where the tail
//! is short: a file of a 1024² 16-bit plane is 2 MiB and a header, and a huge page for the
//! header doubled what the kernel zeroed for it. Tails up to 256 KiB get base pages (the
//! standard plate: 2603 → 2278 huge-page faults per run, 650 MiB less zeroed).
//!
//! Linux only (elsewhere [`serves`] is false and every block goes to the system allocator).

mod kept;

use kept::Pool;
pub use kept::{kept_bytes, log, margin as kept_margin, reused_and_fresh_bytes, trim_to as trim_kept_to};

/// Blocks this long or longer are served here; also their alignment and length granule.
pub const MIN_BYTES: usize = crate::huge_pages::MIN_BYTES;

/// The largest alignment served here: a page. A block is mapped 2 MiB aligned, but one grown
/// by `mremap` may move to any page, so a stricter alignment would not survive a resize.
const MAX_ALIGN: usize = 4096;

/// Whether a block of `size` bytes aligned to `align` is served here.
pub fn serves(size: usize, align: usize) -> bool {
    cfg!(target_os = "linux") && size >= MIN_BYTES && align <= MAX_ALIGN
}

/// A block's bytes past its last whole huge page, up to this many, are mapped in base pages.
const SHORT_TAIL: usize = MIN_BYTES / 8;

/// The mapped length of a block of `size` bytes: whole huge pages, and a last one for the tail
/// unless the tail is short ([`SHORT_TAIL`]), when it gets base pages only. A file of one
/// 1024² 16-bit plane is 2 MiB and a header: a whole huge page for its header would double the
/// memory the kernel zeroes for it.
fn mapped_len(size: usize) -> usize {
    let whole = size / MIN_BYTES * MIN_BYTES;
    match size - whole {
        0 => whole,
        tail if tail <= SHORT_TAIL => whole + tail.next_multiple_of(base_page()),
        _ => whole + MIN_BYTES,
    }
}

/// A block of `size` bytes (`serves(size, _)` must hold), reading as zeros when `zeroed`; null
/// when the system has no memory for it. Pages of freed blocks serve it where there are some
/// (the `kept` module); the rest are fresh.
pub fn alloc(size: usize, zeroed: bool) -> *mut u8 {
    let len = mapped_len(size);
    let mut pool = Pool::lock();
    pool.grow_live(len);
    let (p, reused, fresh_from, evicted) = match pool.take(len) {
        Some(p) => (p, size, len, None),
        None => {
            let (p, moved) = pool.gather(len);
            let evicted = pool.bound();
            if p.is_null() {
                pool.live -= len;
            }
            (p, moved.min(size), moved, Some(evicted))
        }
    };
    drop(pool);
    drop(evicted);
    if !p.is_null() && fresh_from < len {
        // SAFETY: the block's pages past the kept ones moved in are fresh, unwritten, and its
        // own; they start at a whole huge page (kept pages are moved in whole ones).
        unsafe { crate::huge_pages::watch_fresh(p as usize + fresh_from, len - fresh_from) };
    }
    if zeroed && reused > 0 {
        // SAFETY: `p` starts a block of at least `size` mapped bytes, its own; its first
        // `reused` bytes are pages other blocks wrote, the rest fresh ones reading as zeros.
        unsafe { p.write_bytes(0, reused) };
    }
    p
}

/// A fresh mapping of `len` bytes (a [`mapped_len`]), 2 MiB aligned and marked for huge pages;
/// null when the system has no memory for it.
fn map_fresh(len: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    {
        let Some(span) = len.checked_add(MIN_BYTES) else {
            return std::ptr::null_mut();
        };
        let p = crate::huge_pages::map_anonymous(span);
        if p.is_null() {
            return p;
        }
        // Keep the aligned `len` bytes inside the span; give back the rest at both ends.
        let raw = p as usize;
        let start = raw.next_multiple_of(MIN_BYTES);
        unmap(raw, start - raw);
        unmap(start + len, raw + span - (start + len));
        crate::huge_pages::advise_block(start, len);
        start as *mut u8
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = len;
        std::ptr::null_mut()
    }
}

/// Give back a block [`alloc`] or [`resize`] returned for `size` bytes: kept for reuse
/// (the `kept` module), or unmapped.
///
/// # Safety
/// `ptr` must be such a block, not used afterwards.
pub unsafe fn free(ptr: *mut u8, size: usize) {
    let len = mapped_len(size);
    let mut pool = Pool::lock();
    pool.live -= len;
    if !pool.keep(ptr as usize, len) {
        drop(pool);
        unmap(ptr as usize, len);
    }
}

/// Resize a block [`alloc`] returned for `old_size` bytes to `new_size` (both served here),
/// keeping its contents up to the shorter; null (the old block untouched) when the system has
/// no memory for it.
///
/// # Safety
/// `ptr` must be such a block; on success it is not used afterwards.
pub unsafe fn resize(ptr: *mut u8, old_size: usize, new_size: usize) -> *mut u8 {
    let (old_len, new_len) = (mapped_len(old_size), mapped_len(new_size));
    if new_len == old_len {
        return ptr;
    }
    if new_len < old_len {
        // The freed tail is kept for reuse where it is whole huge pages.
        let mut pool = Pool::lock();
        pool.live -= old_len - new_len;
        pool.keep_or_unmap_tail(ptr as usize, old_len, new_len);
        return ptr;
    }
    #[cfg(target_os = "linux")]
    {
        let mut pool = Pool::lock();
        if pool.has_pages() {
            // Kept pages to grow into: a new block gathers them, cheaper than fresh pages for
            // the growth (the old contents are copied).
            drop(pool);
            // SAFETY: the caller's contract, passed on.
            return unsafe { copy_to_new(ptr, old_size, new_size) };
        }
        pool.grow_live(new_len - old_len);
        kept::count_fresh(new_len - old_len);
        drop(pool);
        // The kernel moves the pages (no copy) and, where the range after the block is free,
        // grows it in place.
        // SAFETY: `ptr` starts a mapping of `old_len` bytes that only this block uses.
        let p = unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            Pool::lock().live -= new_len - old_len;
            // A block gathered from kept pieces spans several mappings, which one `mremap`
            // cannot grow: copy it into a new block.
            // SAFETY: the caller's contract, passed on.
            return unsafe { copy_to_new(ptr, old_size, new_size) };
        }
        crate::huge_pages::advise_block(p as usize, new_len);
        p.cast()
    }
    #[cfg(not(target_os = "linux"))]
    std::ptr::null_mut()
}

/// Grow a block [`alloc`] returned for `old_size` bytes to `new_size` by copying it into a new
/// block; null (the old block untouched) when the system has no memory for it.
///
/// # Safety
/// As for [`resize`].
unsafe fn copy_to_new(ptr: *mut u8, old_size: usize, new_size: usize) -> *mut u8 {
    let q = alloc(new_size, false);
    if !q.is_null() {
        // SAFETY: both blocks are mapped for at least `old_size` bytes and distinct; the old one
        // is given back once, with its size.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr, q, old_size);
            free(ptr, old_size);
        }
    }
    q
}

/// The system's base page size.
fn base_page() -> usize {
    #[cfg(target_os = "linux")]
    return crate::huge_pages::page_bytes();
    #[cfg(not(target_os = "linux"))]
    4096
}

/// Unmap `[start, start + len)` (nothing when `len` is 0).
fn unmap(start: usize, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: every caller passes a range of a mapping made by `alloc` that no live block uses.
    unsafe {
        libc::munmap(start as *mut libc::c_void, len);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = start;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_zeroed_and_keep_their_contents_when_resized() {
        let mb = 1 << 20;
        let fresh = map_fresh(mapped_len(5 * mb));
        assert!(!fresh.is_null());
        assert_eq!(fresh as usize % MIN_BYTES, 0, "a fresh mapping is aligned to a huge page");
        unmap(fresh as usize, mapped_len(5 * mb));
        // The block may reuse pages other tests' blocks freed (the pool is the process's).
        let a = alloc(5 * mb, true);
        assert!(!a.is_null());
        assert_eq!(a as usize % base_page(), 0, "aligned to a page");
        // SAFETY: the block is used within its size and given back once, with its size.
        unsafe {
            assert!(std::slice::from_raw_parts(a, 5 * mb).iter().all(|&x| x == 0), "a zeroed block reads as zeros");
            // The length is rounded up to 6 MiB: the byte past the request is mapped too.
            a.write_bytes(3, 6 * mb);
            let b = resize(a, 5 * mb, 9 * mb);
            assert!(!b.is_null());
            assert!(std::slice::from_raw_parts(b, 5 * mb).iter().all(|&x| x == 3), "growing keeps the contents");
            b.add(9 * mb - 1).write(1);
            let c = resize(b, 9 * mb, 4 * mb);
            assert_eq!(c, b, "shrinking keeps the start");
            assert_eq!(*c.add(4 * mb - 1), 3);
            free(c, 4 * mb);
        }
    }

    #[test]
    fn short_tails_get_base_pages_and_longer_ones_a_huge_page() {
        let (mb, page) = (1 << 20, base_page());
        assert_eq!(mapped_len(2 * mb), 2 * mb);
        assert_eq!(mapped_len(2 * mb + 1), 2 * mb + page);
        assert_eq!(mapped_len(2 * mb + SHORT_TAIL), 2 * mb + SHORT_TAIL);
        assert_eq!(mapped_len(2 * mb + SHORT_TAIL + 1), 4 * mb);
        assert_eq!(mapped_len(5 * mb), 6 * mb);
        // A block with a short tail keeps its contents through a grow and a shrink.
        let a = alloc(2 * mb + 100, false);
        assert!(!a.is_null());
        // SAFETY: the block is used within its size and given back once, with its size.
        unsafe {
            a.write_bytes(5, 2 * mb + 100);
            let b = resize(a, 2 * mb + 100, 3 * mb);
            assert!(!b.is_null());
            assert!(std::slice::from_raw_parts(b, 2 * mb + 100).iter().all(|&x| x == 5));
            b.add(3 * mb - 1).write(6);
            let c = resize(b, 3 * mb, 2 * mb + 10);
            assert_eq!(c, b);
            assert_eq!(*c.add(2 * mb + 9), 5);
            free(c, 2 * mb + 10);
        }
    }

    /// Whatever freed blocks the (process-wide) pool keeps, a zeroed request reads as zeros and a
    /// block gathered from several grows and shrinks with its contents.
    #[test]
    fn reused_blocks_read_as_zeros_when_asked_and_gathered_ones_resize_with_their_contents() {
        let mb = 1 << 20;
        // SAFETY: each block is used within its size and given back once, with its last size.
        unsafe {
            let (a, b) = (alloc(4 * mb, false), alloc(4 * mb, false));
            assert!(!a.is_null() && !b.is_null());
            a.write_bytes(0xab, 4 * mb);
            b.write_bytes(0xcd, 4 * mb);
            free(a, 4 * mb);
            free(b, 4 * mb);
            let z = alloc(3 * mb, true);
            assert!(std::slice::from_raw_parts(z, 3 * mb).iter().all(|&x| x == 0));
            let c = alloc(8 * mb, false);
            assert!(!c.is_null());
            c.write_bytes(7, 8 * mb);
            let d = resize(c, 8 * mb, 20 * mb);
            assert!(!d.is_null());
            assert!(std::slice::from_raw_parts(d, 8 * mb).iter().all(|&x| x == 7));
            d.add(20 * mb - 1).write(8);
            let e = resize(d, 20 * mb, 6 * mb);
            assert!(std::slice::from_raw_parts(e, 6 * mb).iter().all(|&x| x == 7));
            free(e, 6 * mb);
            free(z, 3 * mb);
        }
    }

    #[test]
    fn small_or_overaligned_blocks_are_not_served() {
        assert!(!serves(MIN_BYTES - 1, 8));
        assert!(!serves(MIN_BYTES, 2 * MIN_BYTES));
        assert!(!serves(MIN_BYTES, 2 * MAX_ALIGN), "a resize could move it off that alignment");
        assert!(serves(MIN_BYTES, 64));
        assert!(serves(MIN_BYTES, MAX_ALIGN));
    }
}
