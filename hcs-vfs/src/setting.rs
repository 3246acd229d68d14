//! On/off settings from the environment (`HCS_DIRECT_WRITES` here; the executor's
//! `HCS_HUGE_PAGES`, `HCS_KEEP_BLOCKS` and `HCS_PREFETCH`): one reading of their words for all
//! of them.

/// What an on/off setting's `value` says: on for `1`, `true`, `yes`, `on`; off for `0`,
/// `false`, `no`, `off` (any case, blanks around ignored); `None` for anything else, the empty
/// word included (the setting's default applies, and the run's log says the word was ignored).
/// Allocates nothing: the executor's allocator reads a setting through it.
///
/// ```
/// use hcs_vfs::setting::switch;
/// assert_eq!((switch(" Off "), switch("1"), switch("maybe"), switch("")), (Some(false), Some(true), None, None));
/// ```
pub fn switch(value: &str) -> Option<bool> {
    let value = value.trim();
    let is = |words: [&str; 4]| words.iter().any(|w| value.eq_ignore_ascii_case(w));
    if is(["1", "true", "yes", "on"]) {
        Some(true)
    } else if is(["0", "false", "no", "off"]) {
        Some(false)
    } else {
        None
    }
}

/// The value of environment variable `name` when it is set, not blank, and not a word
/// [`switch`] reads: what a run should warn about.
pub fn unrecognized(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty() && switch(v).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_of_either_side_in_any_case_and_nothing_else() {
        for word in ["1", "true", "YES", " On", "True\n"] {
            assert_eq!(switch(word), Some(true), "{word:?}");
        }
        for word in ["0", "FALSE", "no", "off ", "\tOff"] {
            assert_eq!(switch(word), Some(false), "{word:?}");
        }
        for word in ["", " ", "2", "enable", "o", "yes please", "0.0"] {
            assert_eq!(switch(word), None, "{word:?}");
        }
    }
}
