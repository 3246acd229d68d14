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
//! One kind of machine gets base pages instead ([`decide`]): a virtual machine whose balloon
//! reports free memory to its host (virtio-balloon free page reporting). The guest reports its
//! free huge-page-sized blocks, so every fresh huge page is one the host must back again, while
//! base pages mostly come from smaller free blocks it never reported: `bench/first_touch.py`
//! wrote fresh huge pages at 0.1 GiB/s and fresh base pages at 0.9–1.4 GiB/s on the
//! development machine. Once freed image blocks were reused instead of faulted in again
//! ([`crate::blocks`]), first writes were most of what huge pages still cost there: standard
//! plate 1.75 → 1.42 s mean (8 + 8 alternating runs) and, 10 s after the previous run, 2.11 →
//! 1.43 s (5 + 5), for 0.1 s more user time. `HCS_HUGE_PAGES=1` or `0` overrides the choice.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Blocks this large or larger are marked: one x86-64 / arm64 (4 KiB base pages) huge page.
pub const MIN_BYTES: usize = 2 << 20;

static ADVISED: AtomicUsize = AtomicUsize::new(0);

/// Whether blocks are marked, as [`decide`] chose ([`Decision`] as a number; marked until then).
static DECISION: AtomicU8 = AtomicU8::new(Decision::Marked as u8);

/// Whether image buffers are marked for huge pages, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Marked: the default.
    Marked = 0,
    /// Marked because `HCS_HUGE_PAGES` says so.
    MarkedBySetting = 1,
    /// Not marked because `HCS_HUGE_PAGES` says so.
    OffBySetting = 2,
    /// Not marked: a virtual machine whose balloon reports free memory to its host.
    OffOnReportingGuest = 3,
}

impl Decision {
    /// Whether blocks are marked.
    pub fn marks(self) -> bool {
        matches!(self, Decision::Marked | Decision::MarkedBySetting)
    }
}

/// Decide whether image buffers are marked for huge pages, once, first thing in `main` (before
/// it, and in a program that never calls it, they are): `HCS_HUGE_PAGES=1` (`true`, `yes`,
/// `on`) or `0` (`false`, `no`, `off`) decides; otherwise they are, except on a virtual machine
/// whose balloon reports free memory to its host, where fresh huge pages were an order of
/// magnitude slower to first write than base pages (see the module docs). [`log`] says which.
pub fn decide() -> Decision {
    let decision = decision_for(std::env::var("HCS_HUGE_PAGES").ok().as_deref(), reporting_balloon());
    DECISION.store(decision as u8, Ordering::Relaxed);
    decision
}

/// The choice for a value of `HCS_HUGE_PAGES` (unset, empty or another word: the default) on a
/// system whose balloon does or does not report free memory.
fn decision_for(setting: Option<&str>, reporting: bool) -> Decision {
    match setting.and_then(hcs_vfs::setting::switch) {
        Some(true) => Decision::MarkedBySetting,
        Some(false) => Decision::OffBySetting,
        None if reporting => Decision::OffOnReportingGuest,
        None => Decision::Marked,
    }
}

/// The choice [`decide`] made ([`Decision::Marked`] before it).
pub fn decision() -> Decision {
    match DECISION.load(Ordering::Relaxed) {
        1 => Decision::MarkedBySetting,
        2 => Decision::OffBySetting,
        3 => Decision::OffOnReportingGuest,
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
static REFUSED: AtomicUsize = AtomicUsize::new(0);

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
    match decision() {
        Decision::OffOnReportingGuest => tracing::info!(
            "large image buffers use 4 KiB pages: this virtual machine's balloon reports free memory to its host \
             (virtio-balloon free page reporting), where a fresh huge page was ~10× slower to write first than \
             4 KiB pages; HCS_HUGE_PAGES=1 uses huge pages anyway"
        ),
        Decision::OffBySetting => tracing::info!("large image buffers use 4 KiB pages (HCS_HUGE_PAGES=0)"),
        Decision::Marked | Decision::MarkedBySetting => {}
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
    fn the_setting_decides_and_a_reporting_balloon_turns_huge_pages_off_by_default() {
        assert_eq!(decision_for(None, false), Decision::Marked);
        assert_eq!(decision_for(Some(""), false), Decision::Marked);
        assert_eq!(decision_for(None, true), Decision::OffOnReportingGuest);
        assert_eq!(decision_for(Some("maybe"), true), Decision::OffOnReportingGuest);
        assert_eq!(decision_for(Some(" On"), true), Decision::MarkedBySetting);
        assert_eq!(decision_for(Some("1"), true), Decision::MarkedBySetting);
        assert_eq!(decision_for(Some("0"), false), Decision::OffBySetting);
        assert_eq!(decision_for(Some("NO"), false), Decision::OffBySetting);
        assert!(Decision::MarkedBySetting.marks() && !Decision::OffOnReportingGuest.marks());
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
