//! One well, step by step, following its frozen plan: a [`WellRun`] carries the state between
//! steps (see [`crate::state`]) and each step runs through its [`StepRunner`] (see
//! [`crate::step`]).

use crate::ExecError;
use crate::job::WellJob;
use crate::output::WellRecord;
use crate::state::WellRun;
use crate::step::StepRunner;
use crate::trace::{StepTrace, memory_mib, unix_now};

/// What a well's run gives back: its completion record (the caller writes it), each step's
/// seconds, and notes worth a warning (out-of-memory retries, CPU fallbacks).
pub struct WellOutcome {
    /// The completion record.
    pub record: WellRecord,
    /// Seconds per step.
    pub step_seconds: Vec<f64>,
    /// What happened that the user should know.
    pub notes: Vec<String>,
}

/// Run one well: each step through its [`StepRunner`].
pub fn run_well(job: &WellJob<'_>) -> Result<WellOutcome, ExecError> {
    let mut run = WellRun::new(job.plan);
    if job.keep_failed {
        run.keep_litter();
    }
    let well_start = std::time::Instant::now();
    run.trace.start_unix_s = unix_now();
    let last = job.plan.steps.len().saturating_sub(1);
    for (i, step) in job.plan.steps.iter().enumerate() {
        if let Some(f) = job.on_step {
            f(job.plan.well, step.index, job.plan.steps.len(), &step.name);
        }
        let start = std::time::Instant::now();
        let start_unix_s = unix_now();
        let (files_before, notes_before) = (run.record.files.len(), run.notes.len());
        let counts = StepRunner { job, step, last: i == last }.run(&mut run).map_err(|error| ExecError::Step {
            step: step.index,
            name: step.name.clone(),
            error: Box::new(error),
        })?;
        // A plane file that could not be written (a full disk) fails the well now, at the step
        // that wrote it, not after the steps that follow.
        run.writes.check().map_err(|error| ExecError::Step {
            step: step.index,
            name: step.name.clone(),
            error: Box::new(error.into()),
        })?;
        let (rss_mib, peak_rss_mib) = memory_mib();
        let bytes_written = run.record.files.get(files_before..).map_or(0, |f| f.iter().map(|f| f.bytes).sum());
        run.trace.steps.push(StepTrace {
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
        });
    }
    run.trace.seconds = well_start.elapsed().as_secs_f64();
    run.trace.peak_rss_mib = memory_mib().1;
    let step_seconds = run.trace.steps.iter().map(|s| s.seconds).collect();
    // The record written next vouches for every file: `finish` waits for the queued ones.
    let (record, notes) = run.finish()?;
    Ok(WellOutcome { record, step_seconds, notes })
}
