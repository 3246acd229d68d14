//! A resident-memory ceiling for a run, derived from the plan: when the process's RSS passes it
//! and much of that RSS is freed memory the allocator keeps, the freed memory is handed back.
//!
//! The `hcs` binary tells glibc to keep freed small blocks for reuse (faulting pages in again is
//! dear), so the RSS can run past the data in use by the heap's free holes. Image planes and
//! stacks no longer go there ([`crate::blocks`] maps and unmaps them on their own), which took
//! the standard plate's worst RSS from 565 to 436 MiB; the ceiling remains the bound on what
//! the heap can still hold free. Handing free memory back whenever some lay free held the RSS
//! down but cost 25–55 % more CPU (bench/RESULTS.md); handing it back only when the RSS passes
//! the plan's bound costs only the runs that pass it.
//!
//! The ceiling is `1.25 × wells in flight × the plan's per-well estimate + the process` (the
//! estimate is within 25 % of the heap a well holds; the process without images: its RSS before
//! the first well, at least 32 MiB). A watcher
//! thread reads `/proc/self/statm` every 5 ms; above the ceiling, with more than 32 MiB of the
//! RSS neither heap in use nor what the process held outside its heap before the first well
//! (code, libraries), it calls glibc's `malloc_trim`. When that leaves the RSS above the
//! ceiling (data in use), the next hand-back waits until the RSS has grown 32 MiB more, so data
//! over the ceiling is not trimmed again and again. The run's log says how often it fired.
//! Where `malloc_trim` does not exist (not glibc) or the RSS cannot be read, the run says once
//! that the ceiling is not held; so it does when hand-backs free next to nothing (the RSS is
//! held by data in use, libraries, or an allocator other than glibc's, which `malloc_trim`
//! cannot reach), and, when the binary does not count its heap ([`crate::heap::Counting`]),
//! that the RSS's growth alone decided.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::rss::RssReader;

/// How often the watcher reads the RSS.
const POLL: Duration = Duration::from_millis(5);

/// What the process holds besides its image data (code, libraries, thread stacks, the plan).
const PROCESS_BYTES: u64 = 32 << 20;

/// Freed memory worth handing back: less is left to the allocator.
const MIN_FREE_BYTES: u64 = 32 << 20;

/// The RSS ceiling of a run with `wells_in_flight` wells at once, each estimated to hold at most
/// `per_well_bytes` (`None` when no well's estimate is known: no ceiling), in a process whose RSS
/// is `rss_at_start` before its first well (a build with libtorch or a CUDA context starts far
/// above the 32 MiB allowed for the process otherwise).
pub fn ceiling_bytes(wells_in_flight: usize, per_well_bytes: Option<u64>, rss_at_start: Option<u64>) -> Option<u64> {
    let data = per_well_bytes?.saturating_mul(wells_in_flight as u64);
    let process = rss_at_start.unwrap_or(0).max(PROCESS_BYTES);
    Some(data.saturating_add(data / 4).saturating_add(process))
}

/// Sets `stop` when dropped, so the watcher ends however the run's scope is left (a well thread
/// that could not be started panics out of it).
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the watcher did during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CeilingReport {
    /// The ceiling, bytes.
    pub ceiling: u64,
    /// How many times freed memory was handed back.
    pub trims: usize,
    /// The RSS bytes those hand-backs freed, in all.
    pub freed: u64,
    /// Whether the ceiling could be held here (glibc, `/proc/self/statm`).
    pub held: bool,
    /// Whether the heap in use was known ([`crate::heap::Counting`] installed), so that only
    /// freed memory beyond it counted; without it the RSS's growth alone decides.
    pub heap_counted: bool,
}

impl CeilingReport {
    /// Whether the hand-backs freed next to nothing (under 1 MiB each on average): what holds
    /// the RSS above the ceiling is not free memory of glibc's heap (data in use beyond the
    /// estimate, memory of libraries, or a binary allocator other than glibc's malloc).
    pub fn freed_nothing(&self) -> bool {
        self.trims > 0 && self.freed < (self.trims as u64) << 20
    }

    /// Log what the watcher did: how often it handed memory back, or that it could not
    /// hold the ceiling here.
    pub fn log(&self) {
        let mib = |b: u64| b as f64 / 1_048_576.0;
        if !self.held {
            tracing::warn!(
                ceiling_mib = mib(self.ceiling),
                "the resident-memory ceiling is not held on this system (no glibc malloc_trim or no /proc/self/statm): \
             freed memory the allocator keeps can raise the RSS above the plan's estimate"
            );
            return;
        }
        if self.freed_nothing() {
            tracing::warn!(
                ceiling_mib = mib(self.ceiling),
                times = self.trims,
                freed_mib = mib(self.freed),
                "the RSS passed its ceiling but handing freed memory back (glibc's malloc_trim) freed next to nothing: \
             what holds it is data in use beyond the plan's estimate, memory of libraries, or an allocator other \
             than glibc's malloc, so the ceiling is not held"
            );
        } else if self.trims > 0 {
            tracing::info!(
                ceiling_mib = mib(self.ceiling),
                times = self.trims,
                freed_mib = mib(self.freed),
                "the RSS passed its ceiling (1.25 × wells in flight × the plan's estimate + the process's RSS before the first well, at least 32 MiB): freed memory handed back"
            );
        } else {
            tracing::debug!(ceiling_mib = mib(self.ceiling), "the RSS stayed under its ceiling");
        }
        if !self.heap_counted && self.trims > 0 {
            tracing::info!(
                "the binary does not count its heap (no hcs_exec::heap::Counting allocator): the RSS's growth alone \
             decided when to hand freed memory back, so some hand-backs may have found data in use, not freed memory"
            );
        }
    }
}

/// A run's ceiling and what the process held outside its heap when it was set, just before the
/// first well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ceiling {
    /// The ceiling, bytes ([`ceiling_bytes`]).
    pub bytes: u64,
    /// What the process held outside its heap before the first well (code, libraries; all of
    /// its RSS where the heap is not counted): never counted as freed memory.
    pub outside_heap_at_start: u64,
}

impl Ceiling {
    /// Set the ceiling of a run with `wells_in_flight` wells at once, each estimated to hold at
    /// most `per_well_bytes`; `None` (said in the log) when no well's estimate is known. What
    /// planning freed is handed back first, so it neither raises the ceiling nor counts as held
    /// outside the heap.
    pub fn start(wells_in_flight: usize, per_well_bytes: Option<u64>) -> Option<Self> {
        trim();
        let rss_at_start = crate::rss::rss_bytes();
        let Some(bytes) = ceiling_bytes(wells_in_flight, per_well_bytes, rss_at_start) else {
            tracing::debug!("no RSS ceiling: the plan has no per-well memory estimate");
            return None;
        };
        Some(Ceiling { bytes, outside_heap_at_start: outside_heap(rss_at_start) })
    }

    /// Watch the RSS until `stop` is set, handing freed memory back whenever it passes the
    /// ceiling with more than 32 MiB of it neither heap in use nor held outside the heap at the
    /// start.
    pub fn watch(self, stop: &AtomicBool) -> CeilingReport {
        watch(self.bytes, self.outside_heap_at_start, stop)
    }
}

/// Of an RSS of `rss` bytes, what is not heap in use: code, libraries, thread stacks (and what
/// the heap keeps freed); all of it where the heap is not counted ([`crate::heap::Counting`]).
fn outside_heap(rss: Option<u64>) -> u64 {
    rss.unwrap_or(0).saturating_sub(held_in_heap())
}

/// Heap bytes held: in use, and the freed image blocks kept for reuse, which stay within 1.25 ×
/// the heap's peak ([`crate::blocks`]) and which `malloc_trim` does not reach.
fn held_in_heap() -> u64 {
    crate::heap::in_use_bytes().map_or(0, |b| b as u64) + crate::blocks::kept_bytes() as u64
}

/// [`Ceiling::watch`] of a ceiling of `ceiling` bytes, `outside_heap_at_start` held outside the
/// heap before the first well.
fn watch(ceiling: u64, outside_heap_at_start: u64, stop: &AtomicBool) -> CeilingReport {
    let mut report = CeilingReport { ceiling, ..CeilingReport::default() };
    let Some(rss) = RssReader::open() else { return report };
    if !can_trim() {
        return report;
    }
    report.held = true;
    report.heap_counted = crate::heap::installed();
    let in_use = held_in_heap;
    // The RSS after the last hand-back: data above the ceiling is not trimmed again and again,
    // only once the RSS has grown by `MIN_FREE_BYTES` since.
    let mut after_trim = 0u64;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let Some(before) = rss.bytes() else { continue };
        if before <= ceiling.max(after_trim.saturating_add(MIN_FREE_BYTES)) {
            continue;
        }
        // Without the counting allocator the heap in use is unknown: the RSS's growth alone decides.
        if before.saturating_sub(in_use()).saturating_sub(outside_heap_at_start) > MIN_FREE_BYTES {
            trim();
            after_trim = rss.bytes().unwrap_or(before);
            report.trims += 1;
            report.freed += before.saturating_sub(after_trim);
        }
    }
    report
}

fn can_trim() -> bool {
    cfg!(all(target_os = "linux", target_env = "gnu"))
}

/// Hand the heap's free memory back to the system now (glibc's `malloc_trim`; nothing elsewhere).
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's heaps to the system; it is
    // thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_a_quarter_above_the_wells_estimate_plus_the_process() {
        assert_eq!(ceiling_bytes(2, Some(180 << 20), Some(12 << 20)), Some((450 + 32) << 20));
        assert_eq!(ceiling_bytes(2, Some(180 << 20), None), Some((450 + 32) << 20));
        // A process that starts large (libtorch, a CUDA context) keeps what it started with.
        assert_eq!(ceiling_bytes(2, Some(180 << 20), Some(600 << 20)), Some((450 + 600) << 20));
        assert_eq!(ceiling_bytes(1, Some(0), None), Some(32 << 20));
        assert_eq!(ceiling_bytes(3, None, Some(1 << 30)), None);
        assert_eq!(ceiling_bytes(usize::MAX, Some(u64::MAX), None), Some(u64::MAX));
    }

    #[test]
    fn a_run_without_a_per_well_estimate_has_no_ceiling() {
        assert_eq!(Ceiling::start(2, None), None);
        let ceiling = Ceiling::start(2, Some(100 << 20)).expect("a ceiling");
        // The process's own RSS (at least 32 MiB) above 1.25 × the two wells' estimate.
        assert!(ceiling.bytes >= (250 + 32) << 20, "{ceiling:?}");
    }

    #[test]
    fn hand_backs_that_free_under_a_mib_each_free_nothing() {
        let report = |trims, freed| CeilingReport { ceiling: 1, trims, freed, held: true, heap_counted: true };
        assert!(!report(0, 0).freed_nothing(), "no hand-back: nothing to say");
        assert!(report(3, (3 << 20) - 1).freed_nothing());
        assert!(!report(3, 3 << 20).freed_nothing());
        assert!(!report(1, 200 << 20).freed_nothing());
    }

    #[test]
    fn freed_memory_above_the_ceiling_is_handed_back_and_data_in_use_is_not() {
        if !can_trim() || RssReader::open().is_none() {
            // Not glibc on Linux: the ceiling cannot be held, and `watch` says so.
            let report = watch(0, 0, &AtomicBool::new(true));
            assert!(!report.held && report.trims == 0, "{report:?}");
            return;
        }
        let watch_for = |ceiling, outside| {
            let stop = AtomicBool::new(false);
            std::thread::scope(|s| {
                let watcher = s.spawn(|| watch(ceiling, outside, &stop));
                std::thread::sleep(Duration::from_millis(300));
                stop.store(true, Ordering::Relaxed);
                watcher.join().expect("watcher")
            })
        };
        trim(); // what earlier tests left freed is not this test's to find
        // The RSS before: tests do not count the heap, so all of it is outside the heap.
        let outside = outside_heap(crate::rss::rss_bytes());
        // 96 MiB touched, in blocks below glibc's default mmap threshold, so in the heap (the
        // `hcs` binary's thresholds are not set in tests).
        let blocks: Vec<Vec<u8>> = (0..96 * 16).map(|_| vec![1u8; 64 << 10]).collect();
        let keep = vec![1u8; 1 << 10]; // above the blocks: the heap cannot shrink from its top
        let rss = || crate::rss::rss_bytes().expect("RSS");
        // Above the ceiling with data in use: a hand-back does not free it (other tests of this
        // binary may free a few MiB meanwhile, which the process-wide RSS drop counts).
        let in_use = watch_for(rss() / 2, outside);
        assert!(in_use.held && in_use.trims >= 1 && in_use.freed < 32 << 20, "{in_use:?}");
        // Freed: glibc keeps it, and the hand-back returns it.
        drop(blocks);
        let freed = watch_for(rss() / 2, outside);
        assert!(freed.held && freed.trims >= 1, "{freed:?}");
        assert!(freed.freed > 32 << 20 && !freed.freed_nothing(), "{freed:?}");
        // Tests do not install the counting allocator: the RSS's growth alone decided, and the
        // report says so.
        assert!(!freed.heap_counted, "{freed:?}");
        assert_eq!(keep.len(), 1 << 10);
    }
}
