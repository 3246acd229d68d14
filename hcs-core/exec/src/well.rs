//! One well, step by step, following its frozen plan: a [`WellRun`] carries the state between
//! steps (see [`crate::state`]) and each step runs through its [`StepRunner`] (see
//! [`crate::step`]).

use crate::ExecError;
use crate::job::WellJob;
use crate::output::WellRecord;
use crate::state::WellRun;
use crate::step::StepRunner;

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
    let last = job.plan.steps.len().saturating_sub(1);
    for (i, step) in job.plan.steps.iter().enumerate() {
        let start = std::time::Instant::now();
        StepRunner { job, step, last: i == last }.run(&mut run).map_err(|error| ExecError::Step {
            step: step.index,
            name: step.name.clone(),
            error: Box::new(error),
        })?;
        run.step_seconds.push(start.elapsed().as_secs_f64());
    }
    let (record, step_seconds, notes) = run.finish();
    Ok(WellOutcome { record, step_seconds, notes })
}
