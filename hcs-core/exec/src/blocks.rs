//! Image-sized heap blocks (2 MiB and more) as mappings of their own, given back to the system
//! when freed — the part of [`crate::heap::Counting`] that serves planes and stacks.
//!
//! The `hcs` binary tells glibc to keep freed memory in its heap
//! ([`crate::heap::keep_freed_memory`]), which suits the many small blocks of a run. Planes and
//! stacks of different sizes, allocated and freed by two wells at once, left holes in that heap
//! the next ones did not fit: the standard plate's RSS ran up to 250 MiB above the data in use
//! (in use 305–380 MiB, RSS up to 565 MiB). Here each block of [`MIN_BYTES`] or more is its own
//! anonymous mapping, aligned to 2 MiB and its length rounded up to 2 MiB, so it is backed by
//! whole huge pages ([`crate::huge_pages`]); freeing it unmaps it. The RSS then follows the data
//! in use; the price is the kernel zeroing each fresh block (a few huge-page faults), which the
//! kept heap saved only while its holes fitted. Alternating runs, 2 workers (bench/RESULTS.md):
//! the standard plate's RSS median 402 → 363 MiB, at most 509 → 407, wall 0.94 → 0.93 s mean;
//! the scale plate (8 wells) RSS median 501 → 456 MiB, wall 3.40 → 3.39 s mean (user CPU 0.35 s
//! less, system CPU 0.4 s more); 24 wells of 512² tiles RSS median 161 → 152 MiB, wall 2.92 →
//! 3.00 s mean (+3 %).
//!
//! On a virtual machine whose balloon reports free memory to its host (the development
//! machine), a fresh block's first write is the host backing it again, at a fraction of memory's
//! speed (`bench/first_touch.py`); a block unmapped and mapped again within a second or two gets
//! its pages back fast. What a run pays there follows its peak memory, so nothing here keeps
//! freed blocks beyond what is in use.
//!
//! Keeping freed blocks for reuse up to a bound was tried too: 64 MiB was ~4 % faster on the
//! scale plate but 6 % slower on the 512² one, its RSS 17–50 MiB higher; 128 and 256 MiB no
//! faster and higher still.
//! Lengths rounded to 4 KiB pages instead of 2 MiB cost more system time (one huge-page fault
//! for the whole block is cheaper than one fault per 4 KiB of its tail), except where the tail
//! is short: a file of a 1024² 16-bit plane is 2 MiB and a header, and a huge page for the
//! header doubled what the kernel zeroed for it. Tails up to 256 KiB get base pages (the
//! standard plate: 2603 → 2278 huge-page faults per run, 650 MiB less zeroed).
//!
//! Linux only (elsewhere [`serves`] is false and every block goes to the system allocator).

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

/// A new block of `size` bytes (`serves(size, _)` must hold), reading as zeros; null when the
/// system has no memory for it.
pub fn alloc(size: usize) -> *mut u8 {
    #[cfg(target_os = "linux")]
    {
        let len = mapped_len(size);
        let Some(span) = len.checked_add(MIN_BYTES) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        // Keep the aligned `len` bytes inside the span; give back the rest at both ends.
        let raw = p as usize;
        let start = raw.next_multiple_of(MIN_BYTES);
        unmap(raw, start - raw);
        unmap(start + len, raw + span - (start + len));
        crate::huge_pages::advise(start as *mut u8, len);
        start as *mut u8
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = size;
        std::ptr::null_mut()
    }
}

/// Give back a block [`alloc`] or [`resize`] returned for `size` bytes.
///
/// # Safety
/// `ptr` must be such a block, not used afterwards.
pub unsafe fn free(ptr: *mut u8, size: usize) {
    unmap(ptr as usize, mapped_len(size));
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
        unmap(ptr as usize + new_len, old_len - new_len);
        return ptr;
    }
    #[cfg(target_os = "linux")]
    {
        // The kernel moves the pages (no copy) and, where the range after the block is free,
        // grows it in place.
        // SAFETY: `ptr` starts a mapping of `old_len` bytes that only this block uses.
        let p = unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        crate::huge_pages::advise(p.cast(), new_len);
        p.cast()
    }
    #[cfg(not(target_os = "linux"))]
    std::ptr::null_mut()
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
        let a = alloc(5 * mb);
        assert!(!a.is_null());
        assert_eq!(a as usize % MIN_BYTES, 0, "aligned to a huge page");
        // SAFETY: the block is used within its size and given back once, with its size.
        unsafe {
            assert!(std::slice::from_raw_parts(a, 5 * mb).iter().all(|&x| x == 0), "a fresh block reads as zeros");
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
        let a = alloc(2 * mb + 100);
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

    #[test]
    fn small_or_overaligned_blocks_are_not_served() {
        assert!(!serves(MIN_BYTES - 1, 8));
        assert!(!serves(MIN_BYTES, 2 * MIN_BYTES));
        assert!(!serves(MIN_BYTES, 2 * MAX_ALIGN), "a resize could move it off that alignment");
        assert!(serves(MIN_BYTES, 64));
        assert!(serves(MIN_BYTES, MAX_ALIGN));
    }
}
