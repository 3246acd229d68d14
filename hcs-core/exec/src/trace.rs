//! What a well's run measured, step by step — the source of a run's `trace.tsv`, `run.json` and
//! report. Kept in the well's completion record, so a resumed run or a cluster's finalize step
//! reports wells that ran in other processes.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::qc::PlaneQc;

/// One step of one well.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepTrace {
    /// The step's 1-based index in the pipeline.
    pub index: usize,
    /// The step's name.
    pub name: String,
    /// When it started (seconds since the Unix epoch).
    pub start_unix_s: f64,
    /// How long it took (seconds).
    pub seconds: f64,
    /// Where it ran: `cpu`, or `gpu:N` for a step placed on GPU `N`.
    pub device: String,
    /// Planes it read.
    pub planes_in: usize,
    /// Planes it produced.
    pub planes_out: usize,
    /// Bytes of image data read from storage (the input plate or scratch files; planes handed
    /// over in memory count 0).
    pub bytes_read: u64,
    /// Bytes of files written to the output (images, checkpoints, results).
    pub bytes_written: u64,
    /// The process's resident memory when the step ended (MiB; `None` where it cannot be read).
    pub rss_mib: Option<f64>,
    /// The process's peak resident memory so far when the step ended (MiB).
    pub peak_rss_mib: Option<f64>,
    /// Out-of-memory retries (one group at a time, then the CPU variants).
    pub retries: u32,
    /// For a step of a segment (run one part of the well at a time): when each part's run
    /// started and how long it took, in order; the figures above sum them. Empty for a step run
    /// on the whole well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartSpan>,
}

/// One part's run of a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartSpan {
    /// When it started (seconds since the Unix epoch).
    pub start_unix_s: f64,
    /// How long it took (seconds).
    pub seconds: f64,
}

impl StepTrace {
    /// Add another part's run of the same step (a segment runs its steps part by part): its
    /// times, planes, bytes and retries add up; the memory is the latest; the start stays the
    /// first part's; each part's span is kept in `parts` (for a timeline).
    pub fn add_part(&mut self, part: &StepTrace) {
        if self.parts.is_empty() {
            self.parts.push(PartSpan { start_unix_s: self.start_unix_s, seconds: self.seconds });
        }
        self.parts.push(PartSpan { start_unix_s: part.start_unix_s, seconds: part.seconds });
        self.seconds += part.seconds;
        self.planes_in += part.planes_in;
        self.planes_out += part.planes_out;
        self.bytes_read += part.bytes_read;
        self.bytes_written += part.bytes_written;
        self.rss_mib = part.rss_mib.or(self.rss_mib);
        self.peak_rss_mib = part.peak_rss_mib.or(self.peak_rss_mib);
        self.retries = self.retries.saturating_add(part.retries);
    }
}

/// One well's run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WellTrace {
    /// When the well started (seconds since the Unix epoch).
    pub start_unix_s: f64,
    /// Wall time of the well (seconds).
    pub seconds: f64,
    /// The well thread that ran it (0-based): wells over workers, for a timeline.
    pub worker: usize,
    /// The process's peak resident memory when the well ended (MiB).
    pub peak_rss_mib: Option<f64>,
    /// Heap bytes in use in the process when the well started (MiB; `None` unless the binary
    /// counts them, see [`crate::heap`]).
    #[serde(default)]
    pub heap_at_start_mib: Option<f64>,
    /// The most heap bytes in use at once in the process so far, when the well ended (MiB):
    /// the data the run really held, where the RSS also counts memory the allocator keeps
    /// for reuse. With one worker, the first well's figure less `heap_at_start_mib` is that
    /// well's peak, what the compiler estimates (for a later well it is at least its peak: the
    /// mark may have been set by an earlier one).
    #[serde(default)]
    pub peak_heap_mib: Option<f64>,
    /// The most bytes of the well's plane files that waited for the disk at once (MiB): part of
    /// the heap above, at most the plan's `write_behind_bytes` (which the estimate counts whole;
    /// a disk that keeps up leaves the queue near empty) or one file, if that is larger.
    #[serde(default)]
    pub peak_write_behind_mib: f64,
    /// Per step, in pipeline order.
    pub steps: Vec<StepTrace>,
    /// Quality measures of every raw plane the well read from the plate.
    pub qc: Vec<PlaneQc>,
}

/// Now, in seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_step_add_up_and_keep_their_spans() {
        let part = |start, seconds, planes| StepTrace {
            index: 1,
            start_unix_s: start,
            seconds,
            planes_in: planes,
            planes_out: planes,
            bytes_read: 10,
            rss_mib: Some(start),
            ..StepTrace::default()
        };
        let mut sum = part(100.0, 1.5, 27);
        assert!(sum.parts.is_empty(), "a step run whole has no spans");
        sum.add_part(&part(103.0, 0.5, 27));
        assert_eq!((sum.start_unix_s, sum.seconds, sum.planes_in, sum.bytes_read), (100.0, 2.0, 54, 20));
        assert_eq!(sum.rss_mib, Some(103.0), "the memory is the latest part's");
        assert_eq!(
            sum.parts,
            [PartSpan { start_unix_s: 100.0, seconds: 1.5 }, PartSpan { start_unix_s: 103.0, seconds: 0.5 }]
        );
        let json = serde_json::to_value(&sum).expect("json");
        assert_eq!(json["parts"][1]["seconds"], 0.5);
        assert!(serde_json::to_value(part(1.0, 1.0, 1)).expect("json").get("parts").is_none());
    }

    #[test]
    fn a_record_without_a_trace_still_reads() {
        let record: crate::output::WellRecord =
            serde_json::from_str(r#"{"plan_crc32": 1, "files": [], "subdirs": {}}"#).expect("old record");
        assert_eq!(record.trace, None);
    }
}
