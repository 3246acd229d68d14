//! `hcs run --executor slurm`: submit the compiled plate to Slurm and, with `--wait`, follow it.

use crate::plan::compiler::CompiledPlate;
use crate::plate::Plate;
use crate::slurm::{Scheduler, SlurmOptions, Summary, TaskState, submit, wait};

use super::run::{Args, progress_bar};

fn task_summary(states: &[TaskState]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for s in states {
        *counts.entry(s.state.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(state, n)| format!("{n} {}", state.to_lowercase())).collect();
    if parts.is_empty() { String::new() } else { format!("tasks: {}", parts.join(", ")) }
}

/// Submit (compilation already succeeded: nothing is queued for a broken pipeline).
/// `whole`: the plate's plan where `--wells` selected some, for the report of the whole plate.
pub fn run(
    args: &Args,
    compiled: &CompiledPlate,
    whole: Option<CompiledPlate>,
    plate: &Plate,
) -> Result<Option<u8>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the hcs binary to submit: {e}"))?;
    let options = SlurmOptions {
        partition: args.partition.clone(),
        wells_per_task: usize::try_from(args.wells_per_task).unwrap_or(1),
        max_parallel: args.max_parallel,
        sbatch_args: args.sbatch_arg.clone(),
        workers: args.workers,
        wells_at_once: args.wells_at_once.map(std::num::NonZeroUsize::get),
        exe,
        scheduler: Scheduler::default(),
        whole,
    };
    let submission = submit(compiled, plate, &options).map_err(|e| e.to_string())?;
    let Some((array, finalize)) = submission.jobs else {
        println!(
            "`{}`: all {} already complete; plate metadata written → {}",
            compiled.pipeline,
            super::wells(submission.already_complete),
            compiled.output_root.display()
        );
        // Finalized on the spot: its summary applies the stitching-fallback policy as a
        // finalize job would.
        return Ok(fallback_exit(submission.summary.as_ref().and_then(Summary::fallback_error)));
    };
    println!(
        "`{}`: submitted array job {array} ({} tasks, {}; {} already complete) and finalize job {finalize}",
        compiled.pipeline,
        submission.tasks,
        super::wells(submission.wells.len()),
        submission.already_complete
    );
    println!("  plan: {}", submission.plan.display());
    println!("  logs: {}", submission.dir.join("logs").display());
    if !args.wait {
        println!("  follow with `squeue -j {array},{finalize}`; re-run this command to resubmit unfinished wells");
        return Ok(None);
    }
    let bar = progress_bar(submission.wells.len() as u64);
    let last = std::sync::Mutex::new(String::new());
    let progress = |done: usize, states: &[TaskState]| {
        let text = task_summary(states);
        match &bar {
            Some(b) => {
                b.set_position(done as u64);
                b.set_message(text);
            }
            None => {
                let line = format!("{done}/{} complete; {text}", super::wells(submission.wells.len()));
                if let Ok(mut l) = last.lock()
                    && *l != line
                {
                    tracing::info!("{line}");
                    *l = line;
                }
            }
        }
    };
    let waited = wait(&submission, &Scheduler::default(), &progress).map_err(|e| e.to_string())?;
    let failures = waited.failures;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    println!(
        "`{}`: {} of {} complete → {}",
        compiled.pipeline,
        submission.wells.len() - failures.len(),
        super::wells(submission.wells.len()),
        compiled.output_root.display()
    );
    for f in &failures {
        println!("  {} FAILED (task {}): {} — log: {}", f.well, f.task, f.message, f.log.display());
    }
    let fallback = fallback_exit(waited.fallback_error);
    if !failures.is_empty() {
        eprintln!(
            "error: {} of {} failed; re-run the same command to resubmit them",
            failures.len(),
            super::wells(submission.wells.len())
        );
        return Ok(Some(super::EXIT_WELLS_FAILED));
    }
    Ok(fallback)
}

/// The exit status for the finalize's verdict on the stitching fallbacks: `error` (the wells'
/// stitching fell back under `on_stitch_fallback = "fail"`) is said, and the run exits 1.
fn fallback_exit(error: Option<String>) -> Option<u8> {
    let error = error?;
    eprintln!("error: {error}");
    Some(super::EXIT_WELLS_FAILED)
}
