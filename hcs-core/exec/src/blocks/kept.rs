//! Freed image blocks kept for reuse, so the pages a well has freed serve its next blocks
//! instead of going back to the system and being faulted in, and zeroed, again.
//!
//! When each freed block was unmapped, a standard plate run (2 wells) faulted in 3 GiB of huge
//! pages for a heap peak of 220 MiB: every plane and stack was a fresh mapping, and the kernel's
//! page clearing was the run's largest single cost. A freed block is kept here instead; a
//! request takes the shortest kept block long enough for it (the rest of it kept from the next
//! whole huge page on), or else a fresh mapping into which the pages of kept blocks are moved
//! (`mremap`: the kernel moves page tables; nothing is copied or zeroed), whole huge pages at a
//! time. A block shrunk in place keeps its freed tail the same way. Only the pages handed out
//! again to a request for zeroed memory are cleared (`memset`, far cheaper than a fault).
//!
//! Kept memory is bounded by the peak of the memory in use, with the margin of the run's RSS
//! ceiling ([`margin`]: 1.25 ×): the blocks in use plus the kept ones map at most 1.25 × the
//! most the blocks in use ever mapped ([`Pool::bound`], before fresh pages), and the whole heap
//! in use plus the kept blocks stays within 1.25 × the heap's peak ([`trim_to`], which
//! [`crate::heap::Counting`] calls as the heap grows: the small blocks of a registration step
//! otherwise stacked on top of kept planes). Without the margin (kept + in use ≤ the peak) the
//! scale plate still evicted and faulted in again 1 GiB per run (6.08 s, RSS 274 MiB); with
//! 32 / 64 MiB of slack 718 / 381 MiB (4.93 / 4.60 s, RSS 301 / 314 MiB). The oldest kept
//! blocks go first. `HCS_KEEP_BLOCKS=0` turns keeping off (every freed block is unmapped at once), to
//! compare: bench/RESULTS.md has the measurements.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{MIN_BYTES, map_fresh, unmap};

/// How many freed blocks are kept at most.
const SLOTS: usize = 64;

/// Kept blocks and the mapped bytes of the blocks in use.
pub(super) struct Pool {
    /// `(start, mapped length)` of each kept block, oldest first.
    blocks: [(usize, usize); SLOTS],
    /// How many of `blocks` are kept.
    count: usize,
    /// Their mapped bytes.
    bytes: usize,
    /// Mapped bytes of the blocks in use.
    pub(super) live: usize,
    /// The most `live` has been.
    peak_live: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// `Pool::bytes`, readable without the lock (every allocation reads it: [`trim_to`]).
static KEPT_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes handed out from kept pages, and bytes handed out as fresh pages.
static REUSED: AtomicUsize = AtomicUsize::new(0);
static FRESH: AtomicUsize = AtomicUsize::new(0);

impl Pool {
    /// An empty pool.
    const fn new() -> Self {
        Pool { blocks: [(0, 0); SLOTS], count: 0, bytes: 0, live: 0, peak_live: 0 }
    }

    /// The pool, locked. Nothing panics while holding it, so a poisoned lock still guards
    /// consistent numbers.
    pub(super) fn lock() -> MutexGuard<'static, Pool> {
        POOL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Count `len` more mapped bytes in use.
    pub(super) fn grow_live(&mut self, len: usize) {
        self.live += len;
        self.peak_live = self.peak_live.max(self.live);
    }

    /// Whether kept pages could serve a request (whole huge pages are kept).
    pub(super) fn has_pages(&self) -> bool {
        self.bytes >= MIN_BYTES
    }

    /// Keep the block `[start, start + len)`; false when keeping is off or every slot is taken
    /// (the caller unmaps it).
    pub(super) fn keep(&mut self, start: usize, len: usize) -> bool {
        if !keeping() || self.count == SLOTS {
            return false;
        }
        self.blocks[self.count] = (start, len);
        self.count += 1;
        self.bytes += len;
        KEPT_BYTES.store(self.bytes, Ordering::Relaxed);
        true
    }

    /// The start of a kept block of `len` bytes: the shortest kept block at least that long,
    /// its tail past `len` kept (whole huge pages) or unmapped. `None` when none is that long.
    pub(super) fn take(&mut self, len: usize) -> Option<*mut u8> {
        let (i, &(start, have)) =
            self.blocks[..self.count].iter().enumerate().filter(|(_, b)| b.1 >= len).min_by_key(|(_, b)| b.1)?;
        self.remove(i);
        self.keep_or_unmap_tail(start, have, len);
        REUSED.fetch_add(len, Ordering::Relaxed);
        Some(start as *mut u8)
    }

    /// A fresh mapping of `len` bytes with as many kept pages moved into its start as fit,
    /// whole huge pages at a time, and how many bytes were moved (the rest are fresh pages,
    /// reading as zeros). Null when the system has no memory for the mapping. The caller then
    /// bounds what stays kept ([`Pool::evict_to`]).
    pub(super) fn gather(&mut self, len: usize) -> (*mut u8, usize) {
        let dst = map_fresh(len);
        if dst.is_null() {
            return (dst, 0);
        }
        let mut at = 0;
        while len - at >= MIN_BYTES && self.count > 0 {
            let room = (len - at) / MIN_BYTES * MIN_BYTES;
            let whole = |have: usize| (have / MIN_BYTES * MIN_BYTES).min(room);
            let Some((i, &(start, have))) =
                self.blocks[..self.count].iter().enumerate().max_by_key(|(_, b)| whole(b.1))
            else {
                break;
            };
            let piece = whole(have);
            if piece == 0 {
                break;
            }
            self.remove(i);
            let to = dst as usize + at;
            let moved = move_pages(start, piece, to);
            at += moved;
            if moved == piece {
                self.keep_or_unmap_tail(start, have, piece);
            } else {
                // The kernel refused a move (it may have unmapped that destination page first):
                // give back the source's unmoved rest (its moved part is no longer ours) and map
                // fresh pages where the move failed.
                unmap(start + moved, have - moved);
                if !map_at(to + moved, piece - moved) {
                    unmap(dst as usize, len);
                    return (std::ptr::null_mut(), 0);
                }
                break;
            }
        }
        REUSED.fetch_add(at, Ordering::Relaxed);
        FRESH.fetch_add(len - at, Ordering::Relaxed);
        (dst, at)
    }

    /// Take the oldest kept blocks out of the pool until at most `bytes` are kept; they are
    /// unmapped when the returned [`Evicted`] is dropped, which the caller does after letting go
    /// of the lock.
    #[must_use = "the evicted blocks are unmapped when this is dropped, after the pool's lock"]
    pub(super) fn evict_to(&mut self, bytes: usize) -> Evicted {
        let mut evicted = Evicted { blocks: [(0, 0); SLOTS], count: 0 };
        while self.bytes > bytes && self.count > 0 {
            evicted.blocks[evicted.count] = self.blocks[0];
            evicted.count += 1;
            self.remove(0);
        }
        evicted
    }

    /// Evict kept blocks until the blocks in use and the kept ones map at most the live peak's
    /// [`margin`] (unmapped when the result is dropped, as for [`Pool::evict_to`]).
    #[must_use = "the evicted blocks are unmapped when this is dropped, after the pool's lock"]
    pub(super) fn bound(&mut self) -> Evicted {
        let room = margin(self.peak_live) - self.live;
        self.evict_to(room)
    }

    /// Of a block `[start, start + have)` whose first `used` bytes were handed out: keep the
    /// rest from the next whole huge page on when at least one is left, unmap the rest.
    pub(super) fn keep_or_unmap_tail(&mut self, start: usize, have: usize, used: usize) {
        let from = used.next_multiple_of(MIN_BYTES).min(have);
        if from > used {
            unmap(start + used, from - used);
        }
        let tail = have - from;
        if tail > 0 && !(tail >= MIN_BYTES && self.keep(start + from, tail)) {
            unmap(start + from, tail);
        }
    }

    /// Forget kept block `i`, keeping the others in order.
    fn remove(&mut self, i: usize) {
        self.bytes -= self.blocks[i].1;
        KEPT_BYTES.store(self.bytes, Ordering::Relaxed);
        self.blocks.copy_within(i + 1..self.count, i);
        self.count -= 1;
    }

    /// The pool's invariant: kept blocks and blocks in use map at most the live peak's margin.
    #[cfg(test)]
    fn within_bound(&self) -> bool {
        self.live + self.bytes <= margin(self.peak_live)
    }
}

/// Kept blocks taken out of the pool, unmapped when this is dropped: after the pool's lock is
/// let go, so a thread giving back hundreds of megabytes (the run's end, a grown heap) does not
/// make every other thread's image block wait for the kernel to free the pages (the report is
/// written while the pages kept for the wells are handed back, ~20 ms of unmapping on the
/// standard plate).
/// A fixed array: this runs inside the allocator, where it must not allocate.
pub(super) struct Evicted {
    blocks: [(usize, usize); SLOTS],
    count: usize,
}

impl Drop for Evicted {
    fn drop(&mut self) {
        for &(start, len) in &self.blocks[..self.count] {
            unmap(start, len);
        }
    }
}

/// What kept blocks may fill up to, with the memory in use, for a peak of `peak` bytes in use:
/// 1.25 × the peak, the margin of the run's RSS ceiling ([`crate::ceiling`]).
pub fn margin(peak: usize) -> usize {
    peak.saturating_add(peak / 4)
}

/// Count `len` bytes handed out as fresh pages (a request no kept pages served).
pub(super) fn count_fresh(len: usize) {
    FRESH.fetch_add(len, Ordering::Relaxed);
}

/// Whether freed blocks are kept: yes unless the environment says `HCS_KEEP_BLOCKS=0` (or
/// `false`, `no`, `off`: [`hcs_vfs::setting::switch`]; read once, by `getenv`: this runs
/// inside the allocator, where reading it through `std` would allocate).
fn keeping() -> bool {
    static KEEPING: AtomicU8 = AtomicU8::new(0);
    match KEEPING.load(Ordering::Relaxed) {
        0 => {
            #[cfg(unix)]
            // SAFETY: getenv returns null or a NUL-terminated string of the environment, read at
            // once; nothing in hcs changes the environment while a run allocates.
            let off = unsafe {
                let v = libc::getenv(c"HCS_KEEP_BLOCKS".as_ptr());
                !v.is_null()
                    && std::ffi::CStr::from_ptr(v).to_str().is_ok_and(|v| hcs_vfs::setting::switch(v) == Some(false))
            };
            #[cfg(not(unix))]
            let off = false;
            KEEPING.store(if off { 2 } else { 1 }, Ordering::Relaxed);
            !off
        }
        v => v == 1,
    }
}

/// Move the pages of `[from, from + len)` to `[to, to + len)` (whole huge pages), one huge page
/// at a time: a block gathered from pieces of others spans several mappings, and one `mremap`
/// moves within one mapping only. Returns the bytes moved: `len`, or where the kernel refused
/// (the destination's page there may be unmapped then).
fn move_pages(from: usize, len: usize, to: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        (0..len)
            .step_by(MIN_BYTES)
            .find(|&off| {
                // SAFETY: `[from, from + len)` is a kept block's, out of the pool (no one else
                // uses it), and `[to, to + len)` lies in the caller's fresh mapping, which
                // nothing uses yet; MREMAP_FIXED replaces what is mapped there.
                let p = unsafe {
                    libc::mremap(
                        (from + off) as *mut libc::c_void,
                        MIN_BYTES,
                        MIN_BYTES,
                        libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                        (to + off) as *mut libc::c_void,
                    )
                };
                p == libc::MAP_FAILED
            })
            .unwrap_or(len)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (from, len, to);
        0
    }
}

/// Map fresh pages at `[start, start + len)`, replacing what is there, marked for huge pages;
/// false when the system has no memory for them.
fn map_at(start: usize, len: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the caller owns `[start, start + len)` (part of a fresh block it is building).
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        crate::huge_pages::advise_block(start, len);
        true
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (start, len);
        false
    }
}

/// Mapped bytes of the freed blocks kept now.
pub fn kept_bytes() -> usize {
    KEPT_BYTES.load(Ordering::Relaxed)
}

/// Unmap the oldest kept blocks until at most `bytes` are kept: the heap's data grew, and the
/// data in use plus the kept blocks must not pass the heap's peak ([`crate::heap::Counting`]
/// calls it).
pub fn trim_to(bytes: usize) {
    if kept_bytes() > bytes {
        // The guard is a temporary, let go at the end of the statement; the blocks are unmapped
        // after it, when `evicted` goes.
        let evicted = Pool::lock().evict_to(bytes);
        drop(evicted);
    }
}

/// Bytes of image blocks handed out so far from kept pages, and as fresh pages.
pub fn reused_and_fresh_bytes() -> (usize, usize) {
    (REUSED.load(Ordering::Relaxed), FRESH.load(Ordering::Relaxed))
}

/// Log (at debug level) how much of the image blocks handed out so far reused kept pages.
pub fn log() {
    let (reused, fresh) = reused_and_fresh_bytes();
    let mib = |b: usize| b >> 20;
    tracing::debug!(
        reused_mib = mib(reused),
        fresh_mib = mib(fresh),
        kept_mib = mib(kept_bytes()),
        keeping = keeping(),
        "image blocks: pages of freed blocks reused, fresh pages mapped"
    );
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    /// A fresh block of `len` bytes filled with `byte`.
    fn filled(len: usize, byte: u8) -> usize {
        let p = map_fresh(len);
        assert!(!p.is_null());
        // SAFETY: a fresh mapping of `len` bytes, this test's own.
        unsafe { p.write_bytes(byte, len) };
        p as usize
    }

    /// The bytes of `[start, start + len)`.
    fn bytes(start: usize, len: usize) -> &'static [u8] {
        // SAFETY: every caller passes a range it mapped and has not unmapped.
        unsafe { std::slice::from_raw_parts(start as *const u8, len) }
    }

    #[test]
    fn a_request_takes_the_shortest_kept_block_and_the_rest_stays_kept_from_a_whole_huge_page() {
        let mut pool = Pool::new();
        let (big, small) = (filled(36 * MB, 1), filled(4 * MB, 2));
        assert!(pool.keep(big, 36 * MB) && pool.keep(small, 4 * MB));
        assert_eq!(pool.take(4 * MB), Some(small as *mut u8), "the exact fit, not the 36 MiB block");
        assert_eq!(pool.take(40 * MB), None, "no kept block is that long");
        // A plane file's length (2 MiB and a page): its start, and the big block's rest from
        // 4 MiB on stays kept (the partial huge page after the request is unmapped).
        let file = 2 * MB + 4096;
        assert_eq!(pool.take(file), Some(big as *mut u8));
        assert_eq!((pool.count, pool.bytes), (1, 32 * MB));
        assert_eq!(pool.blocks[0], (big + 4 * MB, 32 * MB));
        assert!(bytes(big, file).iter().all(|&b| b == 1) && bytes(big + 4 * MB, 32 * MB).iter().all(|&b| b == 1));
        drop(pool.evict_to(0));
        assert_eq!((pool.count, pool.bytes), (0, 0));
        unmap(big, file);
        unmap(small, 4 * MB);
    }

    #[test]
    fn a_longer_request_gathers_the_pages_of_several_kept_blocks() {
        let mut pool = Pool::new();
        let parts = [filled(4 * MB, 1), filled(4 * MB, 2), filled(4 * MB + 4096, 3)];
        for (i, &p) in parts.iter().enumerate() {
            assert!(pool.keep(p, if i == 2 { 4 * MB + 4096 } else { 4 * MB }));
        }
        let (dst, moved) = pool.gather(10 * MB);
        assert!(!dst.is_null());
        assert_eq!(moved, 10 * MB, "two whole blocks and a huge page of the third");
        // Each whole huge page of the block holds one source's bytes; the three appear.
        let dst = dst as usize;
        let seen: Vec<u8> = (0..5).map(|i| bytes(dst + i * 2 * MB, 2 * MB)[0]).collect();
        for (i, &byte) in seen.iter().enumerate() {
            assert!(bytes(dst + i * 2 * MB, 2 * MB).iter().all(|&b| b == byte), "huge page {i} is one source's");
        }
        let mut sources = seen.clone();
        sources.sort_unstable();
        sources.dedup();
        assert_eq!(sources, [1, 2, 3]);
        // The third block's second huge page stays kept (its last page is unmapped).
        assert_eq!((pool.count, pool.bytes), (1, 2 * MB));
        // The gathered block spans several mappings and is still one block to write and unmap.
        // SAFETY: the block's 10 MiB are this test's.
        unsafe { (dst as *mut u8).write_bytes(9, 10 * MB) };
        assert!(bytes(dst, 10 * MB).iter().all(|&b| b == 9));
        unmap(dst, 10 * MB);
        drop(pool.evict_to(0));
    }

    #[test]
    fn the_bound_evicts_the_oldest_kept_blocks_first() {
        let mut pool = Pool::new();
        pool.grow_live(12 * MB);
        let blocks = [filled(4 * MB, 1), filled(4 * MB, 2), filled(4 * MB, 3)];
        for &b in &blocks {
            pool.live -= 4 * MB;
            assert!(pool.keep(b, 4 * MB));
        }
        assert!(pool.within_bound());
        // In use 8 MiB of a 12 MiB peak: 15 MiB with the margin leaves room for 7 MiB kept.
        pool.grow_live(8 * MB);
        drop(pool.bound());
        assert!(pool.within_bound());
        assert_eq!((pool.count, pool.bytes), (1, 4 * MB));
        assert_eq!(pool.blocks[0].0, blocks[2], "the newest is kept");
        drop(pool.evict_to(0));
    }
}
