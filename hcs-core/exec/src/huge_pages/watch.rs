//! The watch on fresh huge pages: the first write of a few huge pages of each fresh image block,
//! timed, against the same bytes in base pages, timed once per run.
//!
//! Whether huge pages pay depends on what the host charges for a fresh one, which no system file
//! tells: two virtual machines with the same balloon (virtio free page reporting) differed by an
//! order of magnitude. On one, a fresh huge page was written at ~0.1 GiB/s against ~1 GiB/s for
//! base pages, and base pages made the standard plate ~20 % faster; on the other, fresh huge pages
//! ran at 0.7–7 GiB/s against 1.2 GiB/s, and huge pages made it ~27 % faster (bench/RESULTS.md).
//! So the run measures: [`Watch::verdict`] gives up huge pages once the median of the last
//! [`WINDOW`] samples costs more than [`SLOWER_THAN_BASE`] × the base pages' cost.
//! [`Watch::verdict`] returns the median that decided, for the run's log.
//!
//! Everything here runs inside the allocator: no allocation, no lock, no logging.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// Huge pages timed at the start of a fresh block until the window is full: enough for a verdict
/// on the run's first block, whose other pages fault in before the next block is asked for. Then
/// one per block, so the allocating thread faults few pages ahead of the threads that write the
/// block.
pub(super) const PAGES_PER_BLOCK: usize = 3;

/// The samples a verdict reads: the median of the last this many, so one slow fault (a
/// compaction, a busy host) does not decide.
pub const WINDOW: usize = 5;

/// Fewest samples for a verdict: a full window, so from two blocks at least (three of the run's
/// first block are taken back to back, at one moment of the host's).
const FEWEST: usize = WINDOW;

/// Huge pages are given up when a fresh one's first write costs more than this many times the
/// same bytes in base pages. The two machines measured: 5–14× (base pages won) and 0.1–2.2× at
/// the median of a run's samples (huge pages won).
pub const SLOWER_THAN_BASE: u32 = 4;

/// The samples taken so far and the base pages' cost (nanoseconds per huge page's bytes).
pub(super) struct Watch {
    samples: [AtomicU32; WINDOW],
    taken: AtomicUsize,
    base_ns: AtomicU32,
}

impl Watch {
    /// No samples; the base cost not yet measured.
    pub(super) const fn new() -> Self {
        Watch { samples: [const { AtomicU32::new(0) }; WINDOW], taken: AtomicUsize::new(0), base_ns: AtomicU32::new(0) }
    }

    /// How many huge pages to time at the start of the next fresh block: [`PAGES_PER_BLOCK`]
    /// until the window is full, then one.
    pub(super) fn pages_per_block(&self) -> usize {
        if self.taken.load(Ordering::Relaxed) < WINDOW { PAGES_PER_BLOCK } else { 1 }
    }

    /// Add one sample: a fresh huge page's first write took `ns` nanoseconds.
    pub(super) fn record(&self, ns: u32) {
        let i = self.taken.fetch_add(1, Ordering::Relaxed) % WINDOW;
        self.samples[i].store(ns, Ordering::Relaxed);
    }

    /// The base pages' cost for a huge page's bytes, measured by `measure` the first time
    /// (two threads may both measure; either result stands).
    pub(super) fn base_ns(&self, measure: impl FnOnce() -> u32) -> u32 {
        match self.base_ns.load(Ordering::Relaxed) {
            0 => {
                let ns = measure().max(1);
                self.base_ns.store(ns, Ordering::Relaxed);
                ns
            }
            ns => ns,
        }
    }

    /// Samples taken, the median of the last [`WINDOW`] (0 before any) and the base cost (0
    /// before it was measured), for the run's log.
    pub fn figures(&self) -> (usize, u32, u32) {
        let taken = self.taken.load(Ordering::Relaxed);
        let (window, n) = self.window();
        (taken, median(&mut { window }[..n]), self.base_ns.load(Ordering::Relaxed))
    }

    /// The median of the last samples when fresh huge pages cost too much ([`verdict`]).
    pub(super) fn verdict(&self) -> Option<u32> {
        let (mut window, n) = self.window();
        verdict(&mut window[..n], self.base_ns.load(Ordering::Relaxed)).then(|| median(&mut window[..n]))
    }

    /// The last samples (at most [`WINDOW`]) and how many there are.
    fn window(&self) -> ([u32; WINDOW], usize) {
        let n = self.taken.load(Ordering::Relaxed).min(WINDOW);
        let mut window = [0; WINDOW];
        for (w, s) in window.iter_mut().zip(&self.samples).take(n) {
            *w = s.load(Ordering::Relaxed);
        }
        (window, n)
    }
}

/// Whether huge pages whose first writes took `samples` nanoseconds each cost more than
/// [`SLOWER_THAN_BASE`] × `base_ns` (the same bytes in base pages) at the median; never with
/// fewer than [`WINDOW`] samples or no base cost.
pub(super) fn verdict(samples: &mut [u32], base_ns: u32) -> bool {
    samples.len() >= FEWEST
        && base_ns > 0
        && u64::from(median(samples)) > u64::from(base_ns) * u64::from(SLOWER_THAN_BASE)
}

/// The median of `samples` (the upper one of an even count; 0 for none), sorting them.
fn median(samples: &mut [u32]) -> u32 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u32 = 1_000_000;

    #[test]
    fn slow_fresh_huge_pages_are_given_up_at_the_median_and_not_before_three_samples() {
        // The machine where base pages won: ~20 ms per fresh huge page, ~2 ms in base pages.
        assert!(verdict(&mut [20 * MS, 18 * MS, 25 * MS, 19 * MS, 22 * MS], 2 * MS));
        // The machine where huge pages won: 0.2–3.5 ms against 1.2–1.8 ms.
        assert!(!verdict(&mut [MS / 5, 3 * MS, 2 * MS, MS / 4, 7 * MS / 2], 12 * MS / 10));
        // One slow fault among fast ones does not decide; three of five do.
        assert!(!verdict(&mut [40 * MS, MS / 4, MS / 4, MS / 4, MS / 4], MS));
        assert!(verdict(&mut [40 * MS, MS / 4, 40 * MS, MS / 4, 40 * MS], MS));
        // Too few samples (the first block's three), or no base cost yet: no verdict.
        assert!(!verdict(&mut [40 * MS, 40 * MS, 40 * MS, 40 * MS], MS));
        assert!(!verdict(&mut [40 * MS; 5], 0));
        // Exactly at the bound is not over it.
        assert!(!verdict(&mut [4 * MS; 5], MS));
        assert!(verdict(&mut [4 * MS + 1; 5], MS));
    }

    #[test]
    fn the_watch_keeps_the_last_samples_and_measures_the_base_once() {
        let watch = Watch::new();
        assert_eq!(watch.figures(), (0, 0, 0));
        assert_eq!(watch.verdict(), None);
        assert_eq!(watch.pages_per_block(), PAGES_PER_BLOCK);
        assert_eq!(watch.base_ns(|| 2 * MS), 2 * MS);
        assert_eq!(watch.base_ns(|| unreachable!("measured once")), 2 * MS);
        for _ in 0..4 {
            watch.record(MS / 2);
        }
        assert_eq!(watch.verdict(), None);
        assert_eq!(watch.pages_per_block(), PAGES_PER_BLOCK, "four samples: the window is not full");
        watch.record(MS / 2);
        assert_eq!(watch.pages_per_block(), 1, "the window is full: one sample per block");
        // Slow samples push the fast ones out of the window.
        for _ in 0..3 {
            watch.record(10 * MS);
        }
        assert_eq!(watch.verdict(), Some(10 * MS));
        assert_eq!(watch.figures(), (8, 10 * MS, 2 * MS));
        // A base cost measured as 0 ns counts as 1.
        assert_eq!(Watch::new().base_ns(|| 0), 1);
    }
}
