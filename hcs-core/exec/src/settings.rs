//! The on/off settings a run reads from the environment, and the warning when one of them holds
//! a word that is not on or off ([`hcs_vfs::setting::switch`]): the run then did what it does
//! without the setting, and the user is told so instead of finding out from the timings.

/// Each on/off setting a run reads, and what a run does without it.
const SETTINGS: [(&str, &str); 4] = [
    ("HCS_HUGE_PAGES", "the default choice of page size was made"),
    ("HCS_KEEP_BLOCKS", "freed image blocks were kept for reuse, as with 1"),
    ("HCS_DIRECT_WRITES", "plane files of 1 MiB and more were written past the page cache, as with 1"),
    ("HCS_PREFETCH", "the wells' raw files were read ahead, as with 1"),
];

/// Warn (in the run's log) of each setting whose value is neither on nor off.
pub fn warn_unrecognized() {
    for (name, instead) in SETTINGS {
        if let Some(value) = hcs_vfs::setting::unrecognized(name) {
            tracing::warn!(
                value = %value,
                "{name} is not 1, 0, true, false, yes, no, on or off: ignored ({instead})"
            );
        }
    }
}
