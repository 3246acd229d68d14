//! How many wells a run executes at the same time.
//!
//! The workers serve two kinds of parallelism: the groups of one well's step (run on the pool)
//! and wells side by side (one well thread each). Each well in flight holds its intermediates,
//! so wells side by side multiply the run's memory; more wells than the workers need to stay
//! busy only add memory. By default a run takes as many wells at once as it needs for the
//! steps' groups to cover the workers: `ceil(workers / median groups per step)`, between 1 and
//! `workers`. A step of a segment run part by part counts the groups of one part.
//!
//! Measured on the 2-core development machine (canonical pipeline, 1024² tiles, whose steps run
//! 3 groups at a time, median): one well at a time instead of two, the standard plate (2 wells)
//! ran in 1.00 s instead of 1.04–1.18 s (mean of 10 alternating runs, twice) at a peak RSS of
//! 270 MiB instead of 351, and the scale plate (8 wells) in 3.79–4.01 s instead of 3.87–4.14 s
//! at 287–291 MiB instead of 426–443 (bench/RESULTS.md). On that virtual machine fresh memory
//! is slow to touch, so a smaller peak is also less time.
//!
//! A plan with steps on a GPU counts only the steps left on the CPU: the GPU steps' kernels
//! take milliseconds, and the wells wait behind the CPU steps (the canonical pipeline's tile
//! registration, one group). Measured on an H200 with 16 workers (8-well plate, three
//! alternating rounds, bench/RESULTS.md): every well at once instead of the 3 the GPU steps'
//! groups asked for ran the plan in 3.14–3.44 s instead of 3.65–5.25 s (built-in `gpu_slots`)
//! and 3.65–3.82 s instead of 3.94–4.12 s (8 slots); this rule picks all 8 there. With the cuda
//! variants only, the assembly stays on the CPU (6 groups) and the rule still picks 3, though
//! all 8 ran faster there too (2.72–2.78 s instead of 2.74–3.47 s).

use hcs_plan::compiler::WellPlan;

/// Why a run takes the number of wells at once it does (for its log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Asked for (`--wells-at-once`).
    Asked,
    /// Enough for steps of this many groups (the median) to keep the workers busy.
    Groups(usize),
    /// Enough for the steps left on the CPU, of this many groups (the median), to keep the
    /// workers busy: the plan places other steps on a GPU.
    CpuGroups(usize),
    /// The plan does not say how many groups its steps run: one well per worker.
    Unknown,
}

/// The wells to run at once with `workers` workers for wells planned like `plan`, and why:
/// `asked` when given, else the default of this module; never more than `wells`, at least 1.
pub fn wells_at_once(asked: Option<usize>, workers: usize, plan: &WellPlan, wells: usize) -> (usize, Reason) {
    // A step on a GPU holds a worker only for its loads, stores and millisecond kernels: the
    // steps left on the CPU are what the workers must be kept busy with.
    let some_on_gpu = plan.steps.iter().any(|s| s.gpu.is_some());
    let cpu_only = some_on_gpu && plan.steps.iter().any(|s| s.gpu.is_none());
    let (n, reason) = match (asked, group_widths(plan, cpu_only)) {
        (Some(n), _) => (n, Reason::Asked),
        (None, Some(widths)) => {
            let groups = median(widths);
            let reason = if cpu_only { Reason::CpuGroups(groups) } else { Reason::Groups(groups) };
            (enough_for(workers, groups), reason)
        }
        (None, None) => (workers, Reason::Unknown),
    };
    (n.min(wells).max(1), reason)
}

/// Wells of steps that run `groups` groups each, enough to keep `workers` busy (1 to `workers`).
fn enough_for(workers: usize, groups: usize) -> usize {
    workers.div_ceil(groups.max(1)).clamp(1, workers.max(1))
}

/// The groups each step of `plan` runs at once (a segment's step: per part), of the steps on the
/// CPU only when `cpu_only`; `None` when a step's count is not known before the run.
fn group_widths(plan: &WellPlan, cpu_only: bool) -> Option<Vec<usize>> {
    plan.steps
        .iter()
        .filter(|step| !cpu_only || step.gpu.is_none())
        .map(|step| {
            let calls = step.calls_per_well?;
            let parts = plan.segments.iter().find(|s| s.contains(step.index)).map_or(Some(1), |s| s.parts)?;
            Some(calls.div_ceil(parts.max(1)).max(1))
        })
        .collect()
}

/// The median (the upper one of an even count; 1 for none).
fn median(mut values: Vec<usize>) -> usize {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wells_at_once_cover_the_workers_with_the_median_step() {
        // The canonical pipeline's steps per part: normalize + tophat 3 groups, z max 9,
        // composite 9, positions 1, normalize 3, assemble 3, z max of the mosaics 1.
        let canonical = median(vec![3, 9, 9, 1, 3, 3, 1]);
        assert_eq!(canonical, 3);
        assert_eq!(enough_for(2, canonical), 1, "two workers: one well's groups keep both busy");
        assert_eq!(enough_for(16, canonical), 6, "16 workers need six wells of three groups");
        assert_eq!(enough_for(8, 1), 8, "steps of one group: one well per worker");
        assert_eq!(enough_for(4, 100), 1, "wide steps never leave fewer than one well");
        assert_eq!(enough_for(0, 3), 1);
        assert_eq!(median(vec![1, 5]), 5);
        assert_eq!(median(Vec::new()), 1);
    }
}
