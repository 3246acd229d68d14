//! Huge pages for image buffers: the heap blocks of 2 MiB and more (image planes and stacks)
//! are marked for transparent huge pages (`madvise(MADV_HUGEPAGE)`), so the kernel backs them
//! with 2 MiB pages instead of 4 KiB ones where it can.
//!
//! A plate run allocates and fills hundreds of megabytes of planes; with 4 KiB pages every
//! page of a fresh block costs a fault and the stacks' sweeps miss the TLB. Marking the large
//! blocks cut the standard plate's wall time by ~10 % (median 2.99 → 2.59 s over 5 alternating
//! runs, system CPU 0.62–1.38 → 0.36–0.60 s; the scale plate 9.57 → 8.45 s, bench/RESULTS.md),
//! outputs byte-identical; the peak RSS is still decided by the run's ceiling
//! ([`crate::ceiling`]). Most Linux systems ship transparent huge pages in `madvise` mode,
//! where only marked memory gets them; glibc does the same for its own heap with
//! `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`, which a program cannot set for itself once started.
//!
//! [`crate::heap::Counting`] serves these blocks as mappings of their own, 2 MiB aligned
//! ([`crate::blocks`]), and marks each ([`advise`]); nothing else changes:
//! where the kernel has no huge pages (switched off, another OS) the blocks stay as they were,
//! and [`log`] says so once per run, so a slower run is explained.
//!
//! Fresh huge pages can cost more than they save: on a virtual machine whose balloon reports
//! free memory to its host (virtio-balloon free page reporting), a fresh huge page may be one the
//! host must back again. How much that costs differs by host, and no system file tells: on one
//! (an Intel guest) `bench/first_touch.py` wrote fresh huge pages at 0.1 GiB/s and fresh base
//! pages at 0.9–1.4 GiB/s, and base pages made the standard plate ~20 % faster (1.75 → 1.42 s);
//! on another (an AMD guest with the same balloon feature) fresh huge pages ran at 0.7–7 GiB/s
//! against 1.2 GiB/s, and huge pages made it ~27 % faster (1.39 → 1.01 s, 8 + 8 alternating runs).
//! So the run measures (`watch_fresh`, the `watch` module): it times the first write of the
//! first huge pages of each fresh block, and gives up huge pages for the rest of the run once they
//! cost over 4× the same bytes in base pages. [`log`] says so. `HCS_HUGE_PAGES=1` or `0` decides
//! instead.

mod watch;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Blocks this large or larger are marked: one x86-64 / arm64 (4 KiB base pages) huge page.
pub const MIN_BYTES: usize = 2 << 20;

static ADVISED: AtomicUsize = AtomicUsize::new(0);

/// Whether blocks are marked, as [`decide`] chose ([`Decision`] as a number; marked until then).
static DECISION: AtomicU8 = AtomicU8::new(Decision::Marked as u8);

/// Whether image buffers are marked for huge pages, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Marked, unwatched: before [`decide`], and in a program that never calls it.
    Marked = 0,
    /// Marked because `HCS_HUGE_PAGES` says so.
    MarkedBySetting = 1,
    /// Not marked because `HCS_HUGE_PAGES` says so.
    OffBySetting = 2,
    /// No longer marked: fresh huge pages proved slow during the run (timed as blocks were
    /// mapped).
    OffAfterSlowFreshPages = 3,
    /// Marked while fresh huge pages stay cheap (timed as blocks are mapped): what [`decide`]
    /// chooses by default.
    Watched = 4,
}

impl Decision {
    /// Whether blocks are marked.
    pub fn marks(self) -> bool {
        matches!(self, Decision::Marked | Decision::MarkedBySetting | Decision::Watched)
    }
}

/// Decide whether image buffers are marked for huge pages, once, first thing in `main` (before
/// it, and in a program that never calls it, they are): `HCS_HUGE_PAGES=1` (`true`, `yes`,
/// `on`) or `0` (`false`, `no`, `off`) decides; otherwise they are, until fresh ones prove slow
/// (the run times them as blocks are mapped). [`log`] says which.
pub fn decide() -> Decision {
    let decision = decision_for(std::env::var("HCS_HUGE_PAGES").ok().as_deref());
    DECISION.store(decision as u8, Ordering::Relaxed);
    decision
}

/// The choice for a value of `HCS_HUGE_PAGES` (unset, empty or another word: the default).
fn decision_for(setting: Option<&str>) -> Decision {
    match setting.and_then(hcs_vfs::setting::switch) {
        Some(true) => Decision::MarkedBySetting,
        Some(false) => Decision::OffBySetting,
        None => Decision::Watched,
    }
}

/// The choice [`decide`] made ([`Decision::Marked`] before it).
pub fn decision() -> Decision {
    match DECISION.load(Ordering::Relaxed) {
        1 => Decision::MarkedBySetting,
        2 => Decision::OffBySetting,
        3 => Decision::OffAfterSlowFreshPages,
        4 => Decision::Watched,
        _ => Decision::Marked,
    }
}

/// Whether a virtio balloon device of this system reports free pages to its host (feature bit
/// 5, `VIRTIO_BALLOON_F_REPORTING`, in its sysfs `features` string of 0s and 1s).
fn reporting_balloon() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/drivers/virtio_balloon") else { return false };
    devices
        .flatten()
        .any(|d| std::fs::read_to_string(d.path().join("features")).is_ok_and(|bits| reports_free_pages(&bits)))
}

/// Whether a virtio `features` string has bit 5 (free page reporting) set.
fn reports_free_pages(features: &str) -> bool {
    features.trim().as_bytes().get(5) == Some(&b'1')
}

/// The samples of fresh huge pages taken by [`watch_fresh`].
static WATCH: watch::Watch = watch::Watch::new();

/// The median first write of a fresh huge page (nanoseconds) that made [`watch_fresh`] give them
/// up (0: it did not).
static GIVEN_UP_AT_NS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Watch the fresh pages `[start, start + len)` of a new image block (`start` 2 MiB aligned): on
/// [`decide`]'s default choice ([`Decision::Watched`]), time the first write of its first huge
/// pages and, once fresh huge pages cost over [`watch::SLOWER_THAN_BASE`] × the same bytes in
/// base pages (the median of the last [`watch::WINDOW`]), stop marking blocks and give this
/// block's unwritten rest base pages ([`sample_fresh`]). Runs inside the allocator.
///
/// # Safety
/// `[start, start + len)` must be fresh pages of an anonymous mapping the caller owns, not yet
/// written (they read as zeros).
pub(crate) unsafe fn watch_fresh(start: usize, len: usize) {
    if decision() != Decision::Watched {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the caller's contract, passed on.
    if let Some(median_ns) = unsafe { sample_fresh(&WATCH, start, len) } {
        DECISION.store(Decision::OffAfterSlowFreshPages as u8, Ordering::Relaxed);
        GIVEN_UP_AT_NS.store(median_ns, Ordering::Relaxed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// Time the first write of up to [`watch::PAGES_PER_BLOCK`] huge pages (one once the watch's
/// window is full) at the start of the fresh pages `[start, start + len)` (`start` 2 MiB
/// aligned) into `watch`, writing a zero, which a fresh page already reads as. When the watch's
/// verdict is that fresh huge pages cost too much, give the range's unwritten rest base pages and
/// return the median that decided.
///
/// # Safety
/// As for [`watch_fresh`].
#[cfg(target_os = "linux")]
unsafe fn sample_fresh(watch: &watch::Watch, start: usize, len: usize) -> Option<u32> {
    let pages = (len / MIN_BYTES).min(watch.pages_per_block());
    if pages == 0 || !start.is_multiple_of(MIN_BYTES) {
        return None;
    }
    // The base pages' cost, measured once, before the first verdict needs it.
    watch.base_ns(base_pages_ns);
    for page in 0..pages {
        let at = start + page * MIN_BYTES;
        let t0 = std::time::Instant::now();
        // SAFETY: `at` lies in the caller's fresh, unwritten pages (the contract); a fresh page
        // reads as zeros, so writing one changes nothing.
        unsafe { std::ptr::write_volatile(at as *mut u8, 0) };
        watch.record(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
    }
    let median_ns = watch.verdict()?;
    let rest = start + pages * MIN_BYTES;
    // SAFETY: the rest of the same fresh block; MADV_NOHUGEPAGE changes no data, only the page
    // size of pages not yet written.
    unsafe { libc::madvise(rest as *mut libc::c_void, len - pages * MIN_BYTES, libc::MADV_NOHUGEPAGE) };
    Some(median_ns)
}

/// A fresh anonymous private mapping of `len` bytes (read and write) at an address of the
/// kernel's choosing; null when the system has no memory for it. Runs inside the allocator.
#[cfg(target_os = "linux")]
pub(crate) fn map_anonymous(len: usize) -> *mut u8 {
    // SAFETY: a new anonymous mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED { std::ptr::null_mut() } else { p.cast() }
}

/// The first write of one huge page's bytes in base pages, in nanoseconds (0 where it could not
/// be mapped). Runs inside the allocator: a mapping of its own, unmapped after.
#[cfg(target_os = "linux")]
fn base_pages_ns() -> u32 {
    let p = map_anonymous(MIN_BYTES).cast::<libc::c_void>();
    if p.is_null() {
        return 0;
    }
    // SAFETY: the mapping just made, written within its length and unmapped once.
    unsafe {
        libc::madvise(p, MIN_BYTES, libc::MADV_NOHUGEPAGE);
        let t0 = std::time::Instant::now();
        for page in (0..MIN_BYTES).step_by(page_bytes()) {
            std::ptr::write_volatile(p.cast::<u8>().add(page), 0);
        }
        let ns = u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX);
        libc::munmap(p, MIN_BYTES);
        ns
    }
}

static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Mark a mapping of the image blocks' own, `[start, start + len)` (page aligned): for huge pages
/// where [`advise`] would, and where huge pages are off (by setting or after the watch gave them
/// up) for base pages explicitly (`MADV_NOHUGEPAGE`), so a system whose transparent huge pages
/// are `always` on does not give them anyway. Runs inside the allocator.
pub(crate) fn advise_block(start: usize, len: usize) {
    if decision().marks() {
        advise(start as *mut u8, len);
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: a hint on the caller's own mapping; it changes no data.
    unsafe {
        libc::madvise(start as *mut libc::c_void, len, libc::MADV_NOHUGEPAGE);
    }
}

/// Mark the block `[ptr, ptr + size)` for huge pages when it is at least [`MIN_BYTES`] long
/// (and [`decide`] did not choose base pages).
/// It only sets a hint on the pages' mapping; the block's contents and ownership are untouched.
/// `None`: not asked (a small or null block, not Linux); else whether the kernel took the mark.
pub fn advise(ptr: *mut u8, size: usize) -> Option<bool> {
    if ptr.is_null() || size < MIN_BYTES || !decision().marks() {
        return None;
    }
    #[cfg(not(target_os = "linux"))]
    return None;
    #[cfg(target_os = "linux")]
    {
        // madvise wants a page-aligned start; the page the block starts in is the block's
        // allocator header's too, and a hint on it is harmless.
        let page = page_bytes();
        let start = (ptr as usize) & !(page - 1);
        let len = size + (ptr as usize - start);
        // SAFETY: the range lies in a block the allocator just handed out (or the page its
        // header shares); MADV_HUGEPAGE changes no data and no mapping's protection, only which
        // page size the kernel may use for it.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        let counter = if r == 0 { &ADVISED } else { &REFUSED };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(r == 0)
    }
}

/// The system's base page size (4 KiB where it cannot be read), read once.
#[cfg(target_os = "linux")]
pub(crate) fn page_bytes() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: sysconf reads a constant of the system; it allocates nothing (this runs
            // inside the allocator).
            let bytes = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(0);
            let bytes = if bytes.is_power_of_two() { bytes } else { 4096 };
            PAGE.store(bytes, Ordering::Relaxed);
            bytes
        }
        bytes => bytes,
    }
}

/// How many blocks were marked, and how many marks the kernel refused (a kernel without
/// transparent huge pages).
pub fn counts() -> (usize, usize) {
    (ADVISED.load(Ordering::Relaxed), REFUSED.load(Ordering::Relaxed))
}

/// The system's transparent-huge-page mode (`always`, `madvise` or `never`; `None` where it
/// cannot be read: not Linux, or a kernel without them).
pub fn system_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    mode_of(&text)
}

/// The bracketed word of a `/sys/kernel/mm/transparent_hugepage/enabled` line.
fn mode_of(text: &str) -> Option<String> {
    let open = text.find('[')?;
    let close = text[open..].find(']')? + open;
    Some(text[open + 1..close].to_string())
}

/// Say once, after a run, when its large buffers could not have huge pages: the kernel refused
/// the marks, or the system has them switched off (`never`). Silent when they were used, or
/// when no block was marked (the binary's allocator is not [`crate::heap::Counting`]).
pub fn log() {
    let (samples, median_ns, base_ns) = WATCH.figures();
    tracing::debug!(
        samples,
        median_us = median_ns / 1000,
        base_us = base_ns / 1000,
        "fresh huge pages' first writes timed"
    );
    match decision() {
        Decision::OffAfterSlowFreshPages => tracing::info!(
            "large image buffers mapped after this point of the run use 4 KiB pages: a fresh huge page took {:.1} ms \
             to write first (the median of the last {}), {:.1} ms in 4 KiB pages{}; HCS_HUGE_PAGES=1 keeps huge pages",
            f64::from(GIVEN_UP_AT_NS.load(Ordering::Relaxed)) / 1e6,
            watch::WINDOW,
            f64::from(base_ns) / 1e6,
            if reporting_balloon() {
                " (this virtual machine's balloon reports free memory to its host, which must back each fresh huge \
                 page again)"
            } else {
                ""
            }
        ),
        Decision::OffBySetting => tracing::info!("large image buffers use 4 KiB pages (HCS_HUGE_PAGES=0)"),
        Decision::Marked | Decision::MarkedBySetting | Decision::Watched => {}
    }
    let (advised, refused) = counts();
    if refused > 0 {
        tracing::info!(
            refused,
            "the kernel refused huge pages for large image buffers (no transparent huge pages): they use 4 KiB \
             pages, which made plate runs ~10 % slower where measured"
        );
    } else if advised > 0 && system_mode().as_deref() == Some("never") {
        tracing::info!(
            "transparent huge pages are switched off on this system (/sys/kernel/mm/transparent_hugepage/enabled \
             is `never`): large image buffers use 4 KiB pages, which made plate runs ~10 % slower where measured; \
             `madvise` mode lets hcs use them"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_decides_and_huge_pages_are_marked_by_default() {
        assert_eq!(decision_for(None), Decision::Watched);
        assert_eq!(decision_for(Some("")), Decision::Watched);
        assert_eq!(decision_for(Some("maybe")), Decision::Watched);
        assert_eq!(decision_for(Some(" On")), Decision::MarkedBySetting);
        assert_eq!(decision_for(Some("1")), Decision::MarkedBySetting);
        assert_eq!(decision_for(Some("0")), Decision::OffBySetting);
        assert_eq!(decision_for(Some("NO")), Decision::OffBySetting);
        assert!(Decision::MarkedBySetting.marks() && Decision::Watched.marks());
        assert!(!Decision::OffAfterSlowFreshPages.marks() && !Decision::OffBySetting.marks());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn base_pages_are_timed_on_a_mapping_of_their_own() {
        assert!(base_pages_ns() > 0, "the first write of 512 base pages takes some time");
    }

    /// A fresh marked mapping of `len` bytes, 2 MiB aligned (its span and start).
    #[cfg(target_os = "linux")]
    fn fresh_marked(len: usize) -> (usize, usize) {
        let raw = map_anonymous(len + MIN_BYTES);
        assert!(!raw.is_null());
        let start = (raw as usize).next_multiple_of(MIN_BYTES);
        // SAFETY: within the mapping just made. (A kernel without transparent huge pages
        // refuses the mark: the test then checks the rest without it.)
        unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
        (raw as usize, start)
    }

    /// Sampling writes only zeros. A watch whose base pages cost next to nothing gives no verdict
    /// on one block's three samples, gives up huge pages on the second block's, and that block's
    /// rest is then marked for base pages (`nh` in its mapping's `VmFlags`); one whose base pages
    /// cost a second keeps them.
    #[cfg(target_os = "linux")]
    #[test]
    fn sampling_fresh_blocks_keeps_them_zero_and_a_verdict_gives_the_rest_base_pages() {
        let len = 8 * MIN_BYTES;
        let blocks = [fresh_marked(len), fresh_marked(len), fresh_marked(len)];
        let [(_, first), (_, second), (_, third)] = blocks;
        let cheap_base = watch::Watch::new();
        cheap_base.base_ns(|| 1);
        // SAFETY (here and below): fresh, unwritten pages of the test's own mappings; each range
        // is sampled once.
        assert_eq!(unsafe { sample_fresh(&cheap_base, first, len) }, None, "one block: no verdict yet");
        assert_eq!(cheap_base.figures().0, watch::PAGES_PER_BLOCK, "three huge pages timed");
        let median = unsafe { sample_fresh(&cheap_base, second, len) }.expect("a fault costs more than 4 ns");
        assert!(median > 4, "the median that decided: {median} ns");
        assert_eq!(cheap_base.figures().0, 2 * watch::PAGES_PER_BLOCK);
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let rest = second + watch::PAGES_PER_BLOCK * MIN_BYTES;
        let flags = vm_flags_at(&smaps, rest).expect("the rest's mapping is listed");
        if system_mode().is_some() {
            assert!(flags.split_whitespace().any(|f| f == "nh"), "VmFlags of the block's rest: {flags}");
        }
        for start in [first, second] {
            // SAFETY: the mapping is this test's, `len` bytes from `start`.
            assert!(unsafe { std::slice::from_raw_parts(start as *const u8, len) }.iter().all(|&b| b == 0));
        }

        let dear_base = watch::Watch::new();
        dear_base.base_ns(|| 1_000_000_000);
        let sampled = watch::PAGES_PER_BLOCK * MIN_BYTES;
        assert_eq!(unsafe { sample_fresh(&dear_base, third, sampled) }, None);
        assert_eq!(unsafe { sample_fresh(&dear_base, third + sampled, len - sampled) }, None);
        assert_eq!(dear_base.figures().0, 2 * watch::PAGES_PER_BLOCK, "a full window, no verdict");
        // Unaligned or shorter than a huge page: nothing sampled.
        assert_eq!(unsafe { sample_fresh(&cheap_base, third + 4096, len - MIN_BYTES) }, None);
        assert_eq!(unsafe { sample_fresh(&cheap_base, third, MIN_BYTES - 1) }, None);
        assert_eq!(cheap_base.figures().0, 2 * watch::PAGES_PER_BLOCK);
        for (raw, _) in blocks {
            // SAFETY: the test's own mapping, unmapped once.
            unsafe { libc::munmap(raw as *mut libc::c_void, len + MIN_BYTES) };
        }
    }

    #[test]
    fn free_page_reporting_is_feature_bit_5() {
        // The development machine's balloon: bits 1, 2, 5 and 7.
        assert!(reports_free_pages("0110010100000000000000000000000010000000\n"));
        assert!(!reports_free_pages("0110000100000000"));
        assert!(!reports_free_pages("0110"));
    }

    #[test]
    fn the_mode_is_the_bracketed_word() {
        assert_eq!(mode_of("always [madvise] never\n").as_deref(), Some("madvise"));
        assert_eq!(mode_of("[always] madvise never").as_deref(), Some("always"));
        assert_eq!(mode_of("always madvise never"), None);
    }

    #[test]
    fn small_or_null_blocks_are_not_marked_and_large_ones_keep_their_contents() {
        assert_eq!(advise(std::ptr::null_mut(), MIN_BYTES * 4), None, "a null block is not marked");
        let mut small = vec![7u8; MIN_BYTES - 1];
        assert_eq!(advise(small.as_mut_ptr(), small.len()), None, "nothing below MIN_BYTES is marked");
        let mut large = vec![3u8; MIN_BYTES * 2 + 12345];
        let marked = advise(large.as_mut_ptr(), large.len());
        assert_eq!(marked.is_some(), cfg!(target_os = "linux"), "a large block is marked on Linux");
        assert!(large.iter().all(|&b| b == 3), "the hint changes no data");
        assert!(small.iter().all(|&b| b == 7));
    }

    /// The kernel's own account of the mark: the mapping holding a marked block lists `hg`
    /// (huge pages advised) among its `VmFlags` in `/proc/self/smaps`. A kernel may refuse the
    /// mark only when it has no transparent huge pages at all (no mode file).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_kernel_records_the_mark_on_the_blocks_mapping() {
        let mut block = vec![1u8; MIN_BYTES * 4];
        let inner = block.as_ptr() as usize + MIN_BYTES;
        match advise(block.as_mut_ptr(), block.len()) {
            Some(true) => {
                let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
                let flags = vm_flags_at(&smaps, inner).expect("the block's mapping is listed");
                assert!(flags.split_whitespace().any(|f| f == "hg"), "VmFlags of the block's mapping: {flags}");
            }
            Some(false) => assert!(
                system_mode().is_none(),
                "the kernel refused the mark although it has transparent huge pages ({:?})",
                system_mode()
            ),
            None => panic!("a block of {} bytes must be asked for", block.len()),
        }
        assert!(block.iter().all(|&b| b == 1));
    }

    /// The `VmFlags` line of the `/proc/self/smaps` mapping containing `address`.
    #[cfg(target_os = "linux")]
    fn vm_flags_at(smaps: &str, address: usize) -> Option<String> {
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
            if let Some((lo, hi)) = range
                && let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&address);
            } else if inside && let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(flags.trim().to_string());
            }
        }
        None
    }
}
