//! What the process holds in memory, as the kernel reports it: the resident set (RSS) now and
//! its high-water mark. The run's trace records both per step; the RSS ceiling polls the RSS.

/// The process's resident and peak resident memory in MiB (`VmRSS`, `VmHWM` of
/// `/proc/self/status`); `None` where the system does not say.
pub fn memory_mib() -> (Option<f64>, Option<f64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return (None, None) };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The process's RSS now, bytes (`None` where `/proc/self/statm` cannot be read).
pub fn rss_bytes() -> Option<u64> {
    RssReader::open()?.bytes()
}

/// Reads the resident set size from `/proc/self/statm` (its second field, in pages).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))] // never opened without /proc
pub(crate) struct RssReader {
    statm: std::fs::File,
    page: u64,
}

impl RssReader {
    #[cfg(target_os = "linux")]
    pub(crate) fn open() -> Option<Self> {
        let page = crate::huge_pages::page_bytes() as u64;
        let reader = RssReader { statm: std::fs::File::open("/proc/self/statm").ok()?, page };
        reader.bytes().map(|_| reader)
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn open() -> Option<Self> {
        None
    }

    pub(crate) fn bytes(&self) -> Option<u64> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            let mut buf = [0u8; 128];
            let n = self.statm.read_at(&mut buf, 0).ok()?;
            let pages: u64 = std::str::from_utf8(&buf[..n]).ok()?.split_whitespace().nth(1)?.parse().ok()?;
            Some(pages * self.page)
        }
        #[cfg(not(unix))]
        {
            let _ = (&self.statm, self.page);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_read_on_linux_and_the_peak_is_at_least_the_current() {
        let (rss, peak) = memory_mib();
        if cfg!(target_os = "linux") {
            let (rss, peak) = (rss.expect("VmRSS"), peak.expect("VmHWM"));
            assert!(rss > 0.0 && peak >= rss, "{rss} {peak}");
        }
    }

    #[test]
    fn both_readers_see_the_same_resident_set() {
        // Other tests of this binary allocate and free tens of MiB meanwhile: the status line
        // read between two statm reads lies between them, give or take what changed.
        let (first, (rss, _), second) = (rss_bytes(), memory_mib(), rss_bytes());
        if !cfg!(target_os = "linux") {
            return; // no /proc: both say nothing
        }
        let mib = |b: Option<u64>| b.expect("/proc/self/statm") as f64 / 1_048_576.0;
        let (first, second, rss) = (mib(first), mib(second), rss.expect("VmRSS"));
        let (low, high) = (first.min(second) - 64.0, first.max(second) + 64.0);
        assert!(rss > 0.0 && (low..=high).contains(&rss), "statm {first}, {second} MiB, status {rss} MiB");
    }
}
