//! Submitting a compiled plate as an array job plus a finalize job, and following it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use hcs_exec::output;
use hcs_plan::compiler::CompiledPlate;
use hcs_plate::{Plate, WellId};

use super::job::{SlurmJob, TaskReport, submission_dir, task_log_path, task_report_path};
use super::scheduler::{Scheduler, TaskState};
use super::{SlurmError, file_error};

/// How to submit.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// Wells per array task (≥ 1).
    pub wells_per_task: usize,
    /// At most this many tasks at once (`--array=0-M%N`).
    pub max_parallel: Option<usize>,
    /// More `sbatch` arguments, given to both jobs (`--time=1:00:00`, `--mem=8G`, `--hold`, …).
    pub sbatch_args: Vec<String>,
    /// Worker threads per task (default: the CPUs Slurm gives the task).
    pub workers: Option<usize>,
    /// Wells a task runs at the same time (default: the executor's).
    pub wells_at_once: Option<usize>,
    /// The `hcs` binary the jobs run (must be reachable from the compute nodes).
    pub exe: PathBuf,
    /// How the scheduler's commands are run.
    pub scheduler: Scheduler,
    /// The plate's plan where the submission runs some of its wells (`--wells`): the finalize
    /// job's report covers the whole output plate, the other wells `done_earlier` or `not_run`.
    pub whole: Option<CompiledPlate>,
}

/// A submission: its files and jobs.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The submission's folder (`<output>/.hcs/slurm/<name>`).
    pub dir: PathBuf,
    /// Its plan file.
    pub plan: PathBuf,
    /// The wells it runs (those not already complete).
    pub wells: Vec<WellId>,
    /// Wells of the plate already complete before it (skipped).
    pub already_complete: usize,
    /// The array job and the finalize job (`None`: nothing to run, finalized on the spot).
    pub jobs: Option<(u64, u64)>,
    /// Array tasks.
    pub tasks: usize,
    /// The summary written on the spot when nothing was left to run (`jobs` is `None`).
    pub summary: Option<Summary>,
}

/// Quote for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_script(path: &Path, command: &str) -> Result<(), SlurmError> {
    let text = format!("#!/bin/sh\n# Written by hcs; submitted with sbatch.\nexec {command}\n");
    hcs_vfs::atomic::write_atomic(path, text.as_bytes()).map_err(|e| file_error(path, e))
}

fn submission_name() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{secs}-{}", std::process::id())
}

/// Submit `compiled` (already checked by the compiler): prepare the output, write the plan of the
/// wells not yet complete, `sbatch` the array job and the finalize job depending on it.
///
/// Holds the output's lock ([`hcs_exec::lock`]) while it prepares and submits, so no local run
/// or other submission prepares the same output meanwhile, and leaves the lock file naming the
/// submission; the array tasks and the finalize job take no lock (they write concurrently by
/// design), and later submissions are refused while the jobs are alive.
pub fn submit(compiled: &CompiledPlate, plate: &Plate, options: &SlurmOptions) -> Result<Submission, SlurmError> {
    let root = &compiled.output_root;
    // Before the lock file is created: an output that lands in the input plate is refused first.
    hcs_exec::guard::check_outputs_outside_plate(compiled).map_err(hcs_exec::ExecError::from)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let lock = hcs_exec::lock::OutputLock::acquire(root, &command)?;
    if let Some(message) = lock.take_over_message() {
        eprintln!("{message}");
    }
    // Preparing removes half-written wells, so no earlier submission may still be writing.
    if let Some((name, jobs)) = active_submission(root, &options.scheduler)? {
        return Err(SlurmError::Command {
            command: format!("hcs run --executor slurm (submission {name})"),
            stderr: format!(
                "jobs {} of an earlier submission to this output are still queued or running; wait for them or `scancel` them, then re-run",
                jobs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    hcs_exec::prepare(compiled, plate)?;
    let pending: Vec<usize> =
        (0..compiled.wells.len()).filter(|&k| !output::is_done(root, &compiled.wells[k], plate)).collect();
    // Absolute, so the jobs find their files whatever directory Slurm starts them in.
    let name = submission_name();
    let dir = std::path::absolute(submission_dir(root, &name)).map_err(|e| file_error(root, e))?;
    for sub in ["logs", "tasks"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| file_error(&d, e))?;
    }
    let job = SlurmJob {
        wells_at_once: options.wells_at_once,
        whole: options.whole.clone(),
        ..SlurmJob::new(compiled.clone(), &pending, options.wells_per_task, options.workers)
    };
    let plan = dir.join("plan.json");
    job.write(&plan)?;
    let wells: Vec<WellId> = job.tasks.iter().flatten().copied().collect();
    let mut submission = Submission {
        dir: dir.clone(),
        plan: plan.clone(),
        already_complete: compiled.wells.len() - wells.len(),
        wells,
        jobs: None,
        tasks: job.tasks.len(),
        summary: None,
    };
    if job.tasks.is_empty() {
        submission.summary = Some(finalize_submission(&job, &dir, plate)?);
        return Ok(submission);
    }

    // The previous submission's summary goes: the one `wait` reads is this finalize job's.
    let summary = compiled.output_root.join(SUMMARY);
    match std::fs::remove_file(&summary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(&summary, e)),
        _ => {}
    }
    let (array, finalize) = sbatch_jobs(compiled, &job, &dir, &plan, options)?;
    submission.jobs = Some((array, finalize));
    let ids = serde_json::json!({ "array": array, "finalize": finalize }).to_string();
    let jobs_file = dir.join("jobs.json");
    hcs_vfs::atomic::write_atomic(&jobs_file, ids.as_bytes()).map_err(|e| file_error(&jobs_file, e))?;
    // The jobs are queued: failing to record them in the lock file is not worth failing for.
    if let Err(e) = lock.hand_over_to_submission(&name) {
        tracing::warn!("{e}");
    }
    Ok(submission)
}

/// Write the task and finalize scripts into the submission folder `dir` and `sbatch` the array
/// job and the finalize job that depends on it; returns their ids.
fn sbatch_jobs(
    compiled: &CompiledPlate,
    job: &SlurmJob,
    dir: &Path,
    plan: &Path,
    options: &SlurmOptions,
) -> Result<(u64, u64), SlurmError> {
    let exe = sh_quote(&options.exe.to_string_lossy());
    let plan_arg = sh_quote(&plan.to_string_lossy());
    let task_script = dir.join("task.sh");
    write_script(&task_script, &format!("{exe} run-well --plan {plan_arg} --task \"$SLURM_ARRAY_TASK_ID\""))?;
    let finalize_script = dir.join("finalize.sh");
    write_script(&finalize_script, &format!("{exe} finalize --plan {plan_arg}"))?;

    let common = |args: &mut Vec<String>| {
        if let Some(p) = &options.partition {
            args.push(format!("--partition={p}"));
        }
        args.extend(options.sbatch_args.iter().cloned());
    };
    let name: String =
        compiled.pipeline.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    let throttle = options.max_parallel.map(|n| format!("%{n}")).unwrap_or_default();
    let mut array_args = vec![
        format!("--job-name=hcs-{name}"),
        format!("--array=0-{}{throttle}", job.tasks.len() - 1),
        format!("--output={}", dir.join("logs").join("task-%a.out").display()),
    ];
    common(&mut array_args);
    array_args.push(task_script.display().to_string());
    let array = options.scheduler.sbatch(&array_args)?;

    let mut finalize_args = vec![
        format!("--job-name=hcs-{name}-finalize"),
        format!("--dependency=afterany:{array}"),
        format!("--output={}", dir.join("logs").join("finalize.out").display()),
    ];
    common(&mut finalize_args);
    finalize_args.push(finalize_script.display().to_string());
    match options.scheduler.sbatch(&finalize_args) {
        Ok(finalize) => Ok((array, finalize)),
        Err(e) => {
            // Do not leave an array behind whose results nobody would finalize.
            let _ = options.scheduler.scancel(&array.to_string());
            Err(e)
        }
    }
}

/// An earlier submission to `root` whose jobs are still queued or running: its name and jobs.
pub fn active_submission(root: &Path, scheduler: &Scheduler) -> Result<Option<(String, Vec<u64>)>, SlurmError> {
    let dir = root.join(".hcs").join("slurm");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("jobs.json")) else { continue };
        let Ok(ids) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let jobs: Vec<u64> = ["array", "finalize"].iter().filter_map(|k| ids[*k].as_u64()).collect();
        if scheduler.active(&jobs)? {
            return Ok(Some((entry.file_name().to_string_lossy().into_owned(), jobs)));
        }
    }
    Ok(None)
}

/// The plate-level summary the finalize job writes (`<output>/summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// The pipeline.
    pub pipeline: String,
    /// Complete wells.
    pub complete: Vec<WellId>,
    /// Wells without a complete, verified output.
    pub missing: Vec<WellId>,
    /// Wells whose stitching fell back to the nominal grid for some tiles, with how many.
    #[serde(default)]
    pub stitch_fallbacks: Vec<StitchFallback>,
    /// Those fallbacks fail the run: the pipeline's `on_stitch_fallback = "fail"` (see
    /// [`CompiledPlate::fails_on_stitch_fallback_at`]). The finalize job then exits 1.
    #[serde(default)]
    pub failed_on_stitch_fallback: bool,
    /// The wells whose fallbacks fail the run, each once (a fallback whose step only warns is
    /// listed in `stitch_fallbacks` but not here). Empty in summaries written before it was
    /// recorded: their error line names every fallback well.
    #[serde(default)]
    pub failing_wells: Vec<String>,
}

/// A well whose stitching fell back to the nominal grid (listed in `summary.json`).
pub use crate::report::StitchFallback;

impl Summary {
    /// The summary a finalize job wrote for the output plate `root` (`None`: none readable).
    pub fn read(root: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(root.join(SUMMARY)).ok()?).ok()
    }

    /// The error line of a run whose stitching fallbacks fail it (`None` where they do not).
    pub fn fallback_error(&self) -> Option<String> {
        self.failed_on_stitch_fallback.then(|| {
            let wells = if self.failing_wells.is_empty() {
                crate::report::distinct_wells(&self.stitch_fallbacks)
            } else {
                self.failing_wells.clone()
            };
            format!(
                "stitching fell back to the nominal grid in {} well{} ({}; on_stitch_fallback = \"fail\")",
                wells.len(),
                if wells.len() == 1 { "" } else { "s" },
                wells.join(", ")
            )
        })
    }
}

/// The summary's file name in the output plate.
pub const SUMMARY: &str = "summary.json";

/// What the finalize job does: the plate metadata (OME-Zarr plates listing their complete wells,
/// `hcs_plate.json`), `summary.json`, and the run report in `results/` (see [`crate::report`])
/// from the wells' records and the task reports in the submission's folder `dir`.
pub fn finalize_submission(job: &SlurmJob, dir: &Path, plate: &Plate) -> Result<Summary, SlurmError> {
    let compiled = &job.compiled;
    hcs_exec::finalize(compiled, plate)?;
    let (complete, missing): (Vec<_>, Vec<_>) =
        compiled.wells.iter().partition(|p| output::is_done(&compiled.output_root, p, plate));
    // The wells and the plate metadata are done: a report that cannot be written is a warning
    // (the stitching fallbacks are still read from the wells' records).
    let stitch_fallbacks: Vec<StitchFallback> = write_report(job, dir, plate);
    let failing_wells = crate::report::failing_wells(&stitch_fallbacks, compiled);
    let summary = Summary {
        pipeline: compiled.pipeline.clone(),
        complete: complete.iter().map(|p| p.well).collect(),
        missing: missing.iter().map(|p| p.well).collect(),
        failed_on_stitch_fallback: !failing_wells.is_empty(),
        failing_wells,
        stitch_fallbacks,
    };
    let path = compiled.output_root.join(SUMMARY);
    let bytes = serde_json::to_vec_pretty(&summary).map_err(|e| file_error(&path, e))?;
    hcs_vfs::atomic::write_atomic(&path, &bytes).map_err(|e| file_error(&path, e))?;
    Ok(summary)
}

/// The run report of a submission: wells this submission ran are `done` (from their records) or,
/// unfinished, `failed` with their task's error or `missing`; wells complete before it are
/// `resumed`. Returns the wells whose stitching fell back to the nominal grid, with how many
/// tiles, each named in a warning; a report that cannot be written is a warning too.
fn write_report(job: &SlurmJob, dir: &Path, plate: &Plate) -> Vec<StitchFallback> {
    let compiled = &job.compiled;
    let root = &compiled.output_root;
    let submitted: Vec<WellId> = job.tasks.iter().flatten().copied().collect();
    let errors: BTreeMap<WellId, String> = (0..job.tasks.len())
        .filter_map(|task| TaskReport::read(&task_report_path(dir, task)))
        .flat_map(|r| r.wells)
        .filter_map(|w| Some((w.well, w.error?)))
        .collect();
    let mut started = f64::INFINITY;
    let mut wells = Vec::new();
    // Each task numbers its threads from 0: a timeline lane per (task, thread).
    let mut lanes: Vec<(usize, usize)> = Vec::new();
    for plan in &compiled.wells {
        let trace = output::read_record(root, plan.well).and_then(|r| r.trace);
        let ran_here = submitted.contains(&plan.well);
        let task = job.tasks.iter().position(|t| t.contains(&plan.well));
        let lane = match (task, &trace) {
            (Some(task), Some(t)) if ran_here => {
                let key = (task, t.worker);
                Some(lanes.iter().position(|l| *l == key).unwrap_or_else(|| {
                    lanes.push(key);
                    lanes.len() - 1
                }))
            }
            _ => None,
        };
        if ran_here && let Some(t) = &trace {
            started = started.min(t.start_unix_s);
        }
        let (status, error) = match (output::is_done(root, plan, plate), ran_here) {
            (true, true) => ("done", None),
            (true, false) => ("resumed", None),
            (false, _) => match errors.get(&plan.well) {
                Some(e) => ("failed", Some(e.clone())),
                None => ("missing", None),
            },
        };
        let seconds = trace.as_ref().map_or(0.0, |t| t.seconds);
        wells.push(crate::report::WellEnd { well: plan.well, status, error, seconds, lane });
    }
    // A submission of some wells reports on the whole plate, as a local `--wells` run does.
    if let Some(whole) = &job.whole {
        wells.extend(crate::report::WellEnd::outside_the_run(whole, compiled, plate));
        wells.sort_by_key(|e| e.well);
    }
    let compiled = job.whole.as_ref().unwrap_or(compiled);
    let ended = hcs_exec::trace::unix_now();
    let facts = crate::report::RunFacts {
        kind: "slurm",
        command: crate::report::command_line(),
        pipeline_file: None,
        pipeline_text: None,
        compiled,
        plate,
        started_unix_s: if started.is_finite() { started } else { ended },
        ended_unix_s: ended,
        workers: job.tasks.len(),
        // Each task decides for its own cores.
        wells_at_once: None,
        wells,
        // The wells ran in other processes: the pictures read their planes back.
        shrunk_as_written: None,
    };
    let written = crate::report::write_or_warn(&facts);
    crate::report::warn_stitch_fallbacks(&written, compiled);
    written.stitch_fallbacks
}

/// A well a submission did not finish.
#[derive(Clone, Debug)]
pub struct WellFailure {
    /// The well.
    pub well: WellId,
    /// Its array task.
    pub task: usize,
    /// What happened (the well's error, or the task's state).
    pub message: String,
    /// The task's log.
    pub log: PathBuf,
}

/// How a followed submission ended.
#[derive(Clone, Debug, Default)]
pub struct Waited {
    /// The wells that did not complete.
    pub failures: Vec<WellFailure>,
    /// Set when the finalize job failed the run for its wells' stitching fallbacks
    /// (`on_stitch_fallback = "fail"`): the error to report ([`Summary::fallback_error`]).
    pub fallback_error: Option<String>,
}

/// Follow a submission until its jobs leave the queue: `progress(wells complete, task states)`
/// is called about twice a second. Returns the wells that did not complete, and whether the
/// finalize job failed the run by the stitching-fallback policy; a finalize job that ended
/// otherwise than completed, or failed by that policy, is an error.
pub fn wait(
    submission: &Submission,
    scheduler: &Scheduler,
    progress: &dyn Fn(usize, &[TaskState]),
) -> Result<Waited, SlurmError> {
    let Some((array, finalize)) = submission.jobs else { return Ok(Waited::default()) };
    let job = SlurmJob::read(&submission.plan)?;
    let root = &job.compiled.output_root;
    let complete = || submission.wells.iter().filter(|w| output::record_path(root, **w).is_file()).count();
    let mut states = Vec::new();
    loop {
        if let Ok(s) = scheduler.array_states(array) {
            states = s;
        }
        progress(complete(), &states);
        if !scheduler.active(&[array, finalize])? {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    if let Ok(s) = scheduler.array_states(array) {
        states = s;
    }
    progress(complete(), &states);
    let mut failures = Vec::new();
    for (task, wells) in job.tasks.iter().enumerate() {
        let report = TaskReport::read(&task_report_path(&submission.dir, task));
        let state = states.iter().find(|s| s.task == task).map(|s| s.state.as_str());
        for &well in wells {
            let Some(plan) = job.compiled.well(well) else { continue };
            // The records were just written by the array's tasks, each with the inputs it read.
            if output::completion(root, plan, None) == output::Completion::Done {
                continue;
            }
            let error =
                report.as_ref().and_then(|r| r.wells.iter().find(|w| w.well == well)).and_then(|w| w.error.clone());
            let message = error.unwrap_or_else(|| match state {
                Some(state) => format!("task {task} ended {state} before the well completed"),
                None => format!("task {task} did not run (cancelled, or no longer known to the scheduler)"),
            });
            failures.push(WellFailure { well, task, message, log: task_log_path(&submission.dir, task) });
        }
    }
    let finalize_state = scheduler.job_state(finalize).unwrap_or_else(|_| "UNKNOWN".into());
    // Completed: the policy did not fail the run. Failed after writing a summary that says the
    // stitching fallbacks fail it (`on_stitch_fallback = "fail"`): the job did its work, and
    // the caller reports the fallbacks (the submission removed any older summary).
    let fallback_error = match finalize_state.as_str() {
        "COMPLETED" => None,
        "FAILED" => Summary::read(root).and_then(|s| s.fallback_error()),
        _ => None,
    };
    if finalize_state != "COMPLETED" && fallback_error.is_none() {
        return Err(SlurmError::Command {
            command: format!("finalize job {finalize}"),
            stderr: format!("ended {finalize_state}; see {}", submission.dir.join("logs/finalize.out").display()),
        });
    }
    Ok(Waited { failures, fallback_error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_from_before_the_fallback_fields_reads_and_fails_nothing() {
        let old = r#"{ "pipeline": "canonical", "complete": ["A01"], "missing": [] }"#;
        let summary: Summary = serde_json::from_str(old).expect("an older summary.json reads");
        assert!(summary.stitch_fallbacks.is_empty() && !summary.failed_on_stitch_fallback);
        assert_eq!(summary.fallback_error(), None);
        // A fallback listed before its step was recorded reads without one.
        let listed = r#"{ "pipeline": "c", "complete": [], "missing": [], "stitch_fallbacks": [{ "well": "A01", "tiles": 2 }] }"#;
        let summary: Summary = serde_json::from_str(listed).expect("reads");
        assert_eq!(
            summary.stitch_fallbacks,
            [StitchFallback { well: "A01".into(), tiles: 2, step: None, groups: Vec::new() }]
        );
    }

    #[test]
    fn a_fallback_that_fails_the_run_names_its_wells() {
        let fallback = |well: &str| StitchFallback { well: well.into(), tiles: 3, step: Some(4), groups: Vec::new() };
        let mut summary = Summary {
            pipeline: "canonical".into(),
            complete: Vec::new(),
            missing: Vec::new(),
            stitch_fallbacks: vec![fallback("A01")],
            failed_on_stitch_fallback: false,
            failing_wells: Vec::new(),
        };
        assert_eq!(summary.fallback_error(), None, "warn: no error");
        summary.failed_on_stitch_fallback = true;
        assert_eq!(
            summary.fallback_error().as_deref(),
            Some("stitching fell back to the nominal grid in 1 well (A01; on_stitch_fallback = \"fail\")")
        );
        summary.stitch_fallbacks.push(fallback("B02"));
        let error = summary.fallback_error().expect("an error");
        assert!(error.contains("in 2 wells (A01, B02;"), "{error}");
        // A well with two placing steps is named once.
        summary.stitch_fallbacks.push(StitchFallback { step: Some(2), ..fallback("A01") });
        let error = summary.fallback_error().expect("an error");
        assert!(error.contains("in 2 wells (A01, B02;"), "{error}");
        // Where the summary lists the failing wells, only those are named: B02's fallback only
        // warned (its step's policy), A01's failed.
        summary.failing_wells = vec!["A01".into()];
        assert_eq!(
            summary.fallback_error().as_deref(),
            Some("stitching fell back to the nominal grid in 1 well (A01; on_stitch_fallback = \"fail\")")
        );
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(sh_quote("/a b/hcs"), "'/a b/hcs'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
