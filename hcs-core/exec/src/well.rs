//! One well, step by step, following its frozen plan: a [`WellRun`] carries the state between
//! steps (see [`crate::state`]) and each step runs through its [`StepRunner`] (see
//! [`crate::step`]). The steps of a segment of the plan run one part of the well at a time
//! (see [`crate::parts`]); the well's trace then has one entry per step, summing its parts.

use hcs_plan::compiler::{Location, Segment, StepPlan};

use crate::ExecError;
use crate::error::StepError;
use crate::job::WellJob;
use crate::output::WellRecord;
use crate::parts::{Part, PartOf, parts};
use crate::rss::memory_mib;
use crate::state::{Settling, WellRun};
use crate::step::{StepCounts, StepRunner};
use crate::trace::{StepTrace, unix_now};

/// What a well's run gives back: its completion record (the caller settles the well's files,
/// then writes it), each step's seconds, and notes worth a warning (out-of-memory retries, CPU fallbacks).
pub struct WellOutcome {
    /// The completion record.
    pub record: WellRecord,
    /// Seconds per step.
    pub step_seconds: Vec<f64>,
    /// What happened that the user should know.
    pub notes: Vec<String>,
    /// The well's last files on their way to the disk: settled before the record is written.
    pub settling: Settling,
}

/// Run one well: each step through its [`StepRunner`]; the steps of a segment one part at a
/// time (see [`crate::parts`]).
pub fn run_well(job: &WellJob<'_>) -> Result<WellOutcome, ExecError> {
    let mut run = WellRun::new(job.plan);
    if job.keep_failed {
        run.keep_litter();
    }
    let well_start = std::time::Instant::now();
    run.trace.start_unix_s = unix_now();
    run.trace.heap_at_start_mib = crate::heap::in_use_and_peak_mib().0;
    let steps = &job.plan.steps;
    // Every segment is checked before the first step: one the loop below would skip (out of
    // range, overlapping another) is refused, not quietly run on whole wells.
    for segment in &job.plan.segments {
        check_segment(steps, &job.plan.segments, segment)?;
    }
    let mut i = 0;
    while i < steps.len() {
        match job.plan.segments.iter().find(|s| s.first == i + 1) {
            Some(segment) => {
                run_segment(job, &mut run, segment)?;
                i = segment.last;
            }
            _ => {
                run_step(job, &mut run, i, None)?;
                i += 1;
            }
        }
    }
    run.trace.seconds = well_start.elapsed().as_secs_f64();
    run.trace.peak_rss_mib = memory_mib().1;
    run.trace.peak_heap_mib = crate::heap::in_use_and_peak_mib().1;
    // Every file has been handed over by now, so the queue's high-water mark is final.
    run.trace.peak_write_behind_mib = run.writes.peak_waiting_bytes() as f64 / 1_048_576.0;
    let step_seconds = run.trace.steps.iter().map(|s| s.seconds).collect();
    // The record vouches for every file: whoever writes it settles the well first, waiting
    // for the queued ones, while this thread goes on to the next well.
    let (record, notes, settling) = run.finish();
    Ok(WellOutcome { record, step_seconds, notes, settling })
}

/// The steps of `segment`, one part of the well after another. The parts are those of the
/// first step's input; each step's trace sums its parts.
fn run_segment(job: &WellJob<'_>, run: &mut WellRun, segment: &Segment) -> Result<(), ExecError> {
    let first = &job.plan.steps[segment.first - 1];
    let whole = StepRunner { job, step: first, last: false, part: None };
    let keys = whole.input_keys(run).map_err(|error| step_error(first, error))?;
    let parts = parts(&keys, &segment.by);
    let mut planes_in = vec![0usize; segment.last + 1 - segment.first];
    for (p, part) in parts.iter().enumerate() {
        for (k, i) in (segment.first - 1..segment.last).enumerate() {
            let frees_input = i + 1 > segment.first || p + 1 == parts.len();
            let counts = run_step(job, run, i, Some((PartOf { part, frees_input }, p)))?;
            planes_in[k] += counts.planes_in;
        }
    }
    // A step reading what the one before it wrote, with nothing in any part: as on the whole well.
    for (k, i) in (segment.first - 1..segment.last).enumerate() {
        let step = &job.plan.steps[i];
        if let (0, Location::Memory { namespace }) = (planes_in[k], &step.reads) {
            return Err(step_error(step, StepError::EmptyInput(namespace.clone())));
        }
    }
    tracing::debug!(
        well = %job.plan.well,
        steps = format!("{}-{}", segment.first, segment.last),
        parts = parts.len(),
        "segment done, one part at a time: {}",
        parts.iter().map(Part::describe).collect::<Vec<_>>().join("; ")
    );
    Ok(())
}

/// What makes part-by-part running give the same bytes, checked on the plan as read (it may
/// come from a file): no step of the segment stacks a component it is cut along, each step reads
/// what the one before it wrote, and none keeps data beside its planes (special outputs,
/// previews, zarr stores, a GPU).
fn check_segment(steps: &[StepPlan], all: &[Segment], segment: &Segment) -> Result<(), ExecError> {
    let bad = |why: String| ExecError::BadSegment { first: segment.first, last: segment.last, why };
    if segment.first == 0 || segment.last <= segment.first || segment.last > steps.len() {
        return Err(bad(format!("the plan has steps 1-{}, and a segment spans two or more of them", steps.len())));
    }
    if let Some(other) = all.iter().find(|o| *o != segment && o.first <= segment.last && segment.first <= o.last) {
        return Err(bad(format!("it overlaps steps {}-{}", other.first, other.last)));
    }
    if segment.by.is_empty() {
        return Err(bad("it names no component to cut along".into()));
    }
    let members = steps.get(segment.first - 1..segment.last).unwrap_or_default();
    for (k, step) in members.iter().enumerate() {
        if let Some(c) = segment.by.iter().find(|c| step.variable_components.contains(c)) {
            return Err(bad(format!("step {} stacks {}", step.index, c.name())));
        }
        if step.gpu.is_some()
            || !step.special_outputs.is_empty()
            || step.preview.is_some()
            || step.zarr_store.is_some()
            || step.checkpoint_zarr_store.is_some()
        {
            return Err(bad(format!(
                "step {} keeps more than its planes (a GPU, special outputs, a preview or a zarr store)",
                step.index
            )));
        }
        if k > 0 && (members[k - 1].read_by != Some(step.index) || members[k - 1].writes != step.reads) {
            return Err(bad(format!("step {} does not read what step {} wrote", step.index, step.index - 1)));
        }
    }
    Ok(())
}

fn step_error(step: &StepPlan, error: StepError) -> ExecError {
    ExecError::Step { step: step.index, name: step.name.clone(), error: Box::new(error) }
}

/// Run step `i` (0-based) on the whole well, or on one part (the part and its position among
/// the segment's parts), and add what it measured to the well's trace.
fn run_step(
    job: &WellJob<'_>,
    run: &mut WellRun,
    i: usize,
    part: Option<(PartOf<'_>, usize)>,
) -> Result<StepCounts, ExecError> {
    let step = &job.plan.steps[i];
    let steps = job.plan.steps.len();
    if let Some(f) = job.on_step
        && part.is_none_or(|(_, p)| p == 0)
    {
        f(job.plan.well, step.index, steps, &step.name);
    }
    let start = std::time::Instant::now();
    let start_unix_s = unix_now();
    let (files_before, notes_before) = (run.record.files.len(), run.notes.len());
    let runner = StepRunner { job, step, last: i + 1 == steps, part: part.map(|(p, _)| p) };
    let counts = runner.run(run).map_err(|error| step_error(step, error))?;
    // A plane file that could not be written (a full disk) fails the well now, at the step
    // that wrote it, not after the steps that follow.
    run.writes.check().map_err(|error| step_error(step, error.into()))?;
    let (rss_mib, peak_rss_mib) = memory_mib();
    let bytes_written = run.record.files.get(files_before..).map_or(0, |f| f.iter().map(|f| f.bytes).sum());
    let measured = StepTrace {
        index: step.index,
        name: step.name.clone(),
        start_unix_s,
        seconds: start.elapsed().as_secs_f64(),
        device: step.gpu.map_or_else(|| "cpu".to_string(), |g| format!("gpu:{}", g.device)),
        planes_in: counts.planes_in,
        planes_out: counts.planes_out,
        bytes_read: run.take_bytes_read(),
        bytes_written,
        rss_mib,
        peak_rss_mib,
        retries: u32::try_from(run.notes.len().saturating_sub(notes_before)).unwrap_or(u32::MAX),
        parts: Vec::new(),
    };
    match run.trace.steps.iter_mut().find(|t| t.index == step.index) {
        Some(sum) => sum.add_part(&measured),
        None => run.trace.steps.push(measured),
    }
    Ok(counts)
}
