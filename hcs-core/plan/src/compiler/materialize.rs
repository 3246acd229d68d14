//! Phase 3, materialization planning: where each step reads and writes. The first step (and every
//! step reading the pipeline start) reads the plate through its format; the last step writes the
//! persistent output (disk or zarr); steps in between stay in memory — unless one well's
//! intermediates around that step would exceed the memory budget, in which case that step's
//! output goes to scratch files. Estimates count f32 planes (4 bytes per pixel); a step that
//! collapses sites into one plane (a mosaic) keeps all their pixels.
//!
//! **The host peak estimate** ([`host_peak`], after phase 4 knows which steps run on a GPU)
//! follows what the executor holds while a step runs: its output as it grows, and its input
//! until each group has run. A CPU step's in-memory input shrinks as its groups finish when every
//! buffer the previous step made (one per call) is read by one group (the same number of calls,
//! or one plane per call): then the step holds about the larger of input and output plus the
//! groups in flight. Otherwise (a GPU step, or buffers split across groups) the input is held
//! whole until the step ends. A step reading the plate or scratch files holds only the group
//! stacks being computed.

use crate::pipeline::InputSource;
use hcs_plate::Component;

use super::components::Flow;
use super::init::Init;
use super::plan::{ComponentValues, Location, Segment, StepPlan};
use super::plate_info::PlateInfo;

/// Phase-3 result for one step.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Where it reads.
    pub reads: Location,
    /// Where it writes.
    pub writes: Location,
    /// Estimated input bytes per well.
    pub input_bytes: Option<u64>,
    /// Estimated output bytes per well.
    pub output_bytes: Option<u64>,
    /// The step (1-based) that reads this step's output planes; `None` when no later step does
    /// (the last step, or the next one reads the pipeline start).
    pub read_by: Option<usize>,
    /// Bytes of a result the well holds while this step runs, for a later step that reuses it
    /// (phase 4c, [`super::reuse`]); 0 when none.
    pub holds_shared: u64,
    /// For a step that reuses an earlier step's result: that step (0-based), whose groups its
    /// input comes in.
    pub shared_from: Option<usize>,
}

/// Phase-3 result.
#[derive(Clone, Debug)]
pub struct StoragePlan {
    /// Per step.
    pub steps: Vec<Storage>,
    /// The largest input + output of one step per well, both held whole (what a GPU step
    /// holds; the GPU slot count is sized by it).
    pub peak_bytes: Option<u64>,
    /// The estimated peak of one well's image data on the host ([`host_peak`]; set once phase
    /// 4 has chosen the variants, `None` until then or when unknown).
    pub host_peak_bytes: Option<u64>,
    /// Why some outputs go to scratch files, if any do.
    pub spill_reason: Option<String>,
}

fn planes(values: &ComponentValues) -> Option<u64> {
    values.values().try_fold(1u64, |acc, v| v.as_ref().map(|v| acc * v.len() as u64))
}

fn count(values: &ComponentValues, c: Component) -> Option<u64> {
    super::components::count(values, c).map(|n| n as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Estimated peak of one well's image data on the host while it runs (see the module docs):
/// the most any step holds. `releases(i)`: whether step `i` frees each group's input once the
/// group has run (a CPU step; the executor's `releases_input`). A step in a [`Segment`] of `n`
/// parts holds a part's input and output at a time, plus what the segment's last step has kept
/// of the parts before. A step that holds a result for a later step ([`Storage::holds_shared`])
/// holds all of it.
pub fn host_peak(
    storage: &StoragePlan,
    flows: &[Flow],
    releases: impl Fn(usize) -> bool,
    segments: &[Segment],
) -> Option<u64> {
    storage.steps.iter().enumerate().try_fold(0u64, |peak, (i, step)| {
        let (mut input, mut output) = (step.input_bytes?, step.output_bytes?);
        let mut calls = flows[i].calls_per_well.unwrap_or(1).max(1) as u64;
        let mut kept = 0;
        if let Some(segment) = segments.iter().find(|s| s.contains(i + 1)) {
            let n = segment.parts.unwrap_or(1).max(1) as u64;
            let last = storage.steps.get(segment.last - 1);
            // Kept after the segment only when a later step reads it (else written and dropped).
            let last_output = last.filter(|s| s.read_by.is_some()).and_then(|s| s.output_bytes).unwrap_or(0);
            // An in-memory input written before the segment is held whole until its parts are read.
            if i + 1 > segment.first || !matches!(step.reads, Location::Memory { .. }) {
                input /= n;
            }
            calls = (calls / n).max(1);
            // At every step of the segment, the parts done so far stay for the step after it.
            kept = last_output - last_output / n;
            output /= n;
        }
        let held = match step.reads {
            // Not held in memory: only the group stacks being computed.
            Location::Plate { .. } | Location::Disk { .. } | Location::Zarr { .. } => output + input / calls,
            Location::Memory { .. } => {
                // The input's writer: the step before, or the step whose result this one reuses.
                let writer = step.shared_from.or(i.checked_sub(1));
                let shrinks = releases(i)
                    && writer.map(|p| &flows[p]).is_some_and(|p| {
                        let prev_calls = p.calls_per_well.unwrap_or(0) as u64;
                        let own_calls = flows[i].calls_per_well.unwrap_or(1).max(1) as u64;
                        prev_calls == own_calls || planes(&p.values_out).is_some_and(|n| n == prev_calls)
                    });
                let in_flight = (input + output) / calls;
                if shrinks { (input.max(output) + in_flight).min(input + output) } else { input + output }
            }
        };
        Some(peak.max(held + kept + step.holds_shared))
    })
}

/// The most bytes of encoded plane files one well lets wait for the disk
/// ([`write_behind_bytes`]).
pub const WRITE_BEHIND_BYTES: u64 = 64 << 20;

/// How many bytes of a well's plane files may wait for the disk while it computes on: the
/// largest output it writes to plane files (a checkpoint or the final output on disk), as 16-bit
/// samples (hcs's default; the executor holds the queue to this many bytes whatever the sample
/// type, so the figure is a bound either way), capped at [`WRITE_BEHIND_BYTES`]; 0 when it
/// writes none. Without such a buffer a step that writes its planes all at once waits for the
/// disk file by file while the cores idle (on the standard plate, 4–7 % of the run's wall
/// time). The bytes count in the well's estimated peak; one file larger than the bound still
/// waits alone.
pub fn write_behind_bytes(steps: &[StepPlan], storage: &StoragePlan) -> u64 {
    let last = steps.len().saturating_sub(1);
    steps
        .iter()
        .zip(&storage.steps)
        .enumerate()
        .filter(|(i, (step, _))| {
            matches!(step.checkpoint, Some(Location::Disk { .. }))
                || (*i == last && matches!(step.writes, Location::Disk { .. }))
        })
        .map(|(_, (_, s))| s.output_bytes.map_or(WRITE_BEHIND_BYTES, |b| b / 2).min(WRITE_BEHIND_BYTES))
        .max()
        .unwrap_or(0)
}

/// Run phase 3.
pub fn plan(init: &Init, flows: &[Flow], plate: &PlateInfo, names: &[String]) -> StoragePlan {
    let tile = plate.tile_shape.map(|(h, w)| (h * w) as u64);
    let last = init.steps.len().saturating_sub(1);
    let mut pixels = tile;
    let mut steps: Vec<Storage> = Vec::with_capacity(init.steps.len());
    let mut peak: Option<u64> = Some(0);
    let mut reasons = Vec::new();
    for (i, (step, flow)) in init.steps.iter().zip(flows).enumerate() {
        let reads = if i == 0 || step.input_source == InputSource::PipelineStart {
            pixels = tile;
            Location::Plate { root: plate.root.clone() }
        } else {
            steps[i - 1].writes.clone()
        };
        let in_bytes = planes(&flow.values_in).zip(pixels).map(|(n, p)| n * p * 4);
        if let (Some(before), Some(after)) =
            (count(&flow.values_in, Component::Site), count(&flow.values_out, Component::Site))
            && after < before
        {
            pixels = pixels.map(|p| p * before / after.max(1));
        }
        let out_bytes = planes(&flow.values_out).zip(pixels).map(|(n, p)| n * p * 4);
        let writes = if i == last {
            init.final_location.clone()
        } else {
            let budget = step.config.memory_budget_mib.saturating_mul(1024 * 1024);
            let held = in_bytes.zip(out_bytes).map(|(a, b)| a + b);
            peak = peak.zip(held).map(|(p, h)| p.max(h));
            match held {
                Some(h) if h > budget => {
                    reasons.push(format!(
                        "step {} `{}` holds ~{} per well (input + output), over memory_budget_mib = {}",
                        i + 1,
                        names[i],
                        mib(h),
                        step.config.memory_budget_mib
                    ));
                    Location::Disk { dir: init.output_root.join(".hcs").join("scratch").join(format!("step{}", i + 1)) }
                }
                _ => Location::Memory { namespace: format!("step{}", i + 1) },
            }
        };
        steps.push(Storage {
            reads,
            writes,
            input_bytes: in_bytes,
            output_bytes: out_bytes,
            read_by: None,
            holds_shared: 0,
            shared_from: None,
        });
    }
    // A linear pipeline: step i's output is read by step i + 1 unless that one starts over
    // from the plate.
    for (i, next) in init.steps.iter().enumerate().skip(1) {
        if next.input_source != InputSource::PipelineStart {
            steps[i - 1].read_by = Some(i + 1);
        }
    }
    StoragePlan {
        steps,
        peak_bytes: peak,
        host_peak_bytes: None,
        spill_reason: if reasons.is_empty() { None } else { Some(reasons.join("; ")) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_counts_multiply_and_unknown_stays_unknown() {
        let mut v = ComponentValues::new();
        v.insert(Component::Site, Some(vec![1, 2, 3]));
        v.insert(Component::Z, Some(vec![1, 2]));
        assert_eq!(planes(&v), Some(6));
        v.insert(Component::Channel, None);
        assert_eq!(planes(&v), None);
        assert_eq!(mib(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
