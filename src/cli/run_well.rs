//! `hcs run-well --plan PLAN --task N`: what one Slurm array task runs — the wells the plan lists
//! for task `N`, skipping those already complete. Writes the task's report beside the plan and
//! exits non-zero if one of its wells failed.

use std::path::PathBuf;

use crate::Registry;
use crate::exec::{RunOptions, WellStatus, run_wells};
use crate::plate::formats::open_plate;
use crate::slurm::job::{TaskWell, task_report_path};
use crate::slurm::{SlurmJob, TaskReport};

/// Options of `hcs run-well`.
#[derive(clap::Args)]
pub struct Args {
    /// The submission's plan (`<output>/.hcs/slurm/<submission>/plan.json`).
    #[arg(long)]
    pub plan: PathBuf,
    /// The array task (`$SLURM_ARRAY_TASK_ID`).
    #[arg(long)]
    pub task: usize,
    /// Worker threads (default: the plan's, else `$SLURM_CPUS_PER_TASK`, else every core).
    #[arg(long, value_parser = super::workers_value)]
    pub workers: Option<usize>,
}

fn slurm_cpus() -> Option<usize> {
    std::env::var("SLURM_CPUS_PER_TASK").ok().and_then(|v| v.parse().ok())
}

/// Run the task's wells.
pub fn run(args: &Args) -> Result<(), String> {
    let job = SlurmJob::read(&args.plan).map_err(|e| e.to_string())?;
    let wells = job.task_wells(args.task).map_err(|e| e.to_string())?;
    let compiled = &job.compiled;
    let plate = open_plate(&compiled.plate, None).map_err(|e| e.to_string())?;
    let options = RunOptions {
        workers: args.workers.or(job.workers).or_else(slurm_cpus),
        wells_at_once: job.wells_at_once,
        ..RunOptions::default()
    };
    let reports = run_wells(compiled, &plate, Registry::global(), &options, &wells).map_err(|e| e.to_string())?;
    let dir = args.plan.parent().unwrap_or(std::path::Path::new("."));
    let report = TaskReport { task: args.task, wells: reports.iter().map(TaskWell::of).collect() };
    report.write(&task_report_path(dir, args.task)).map_err(|e| e.to_string())?;
    let mut failed = 0;
    for r in &reports {
        match &r.status {
            WellStatus::Failed(e) => {
                failed += 1;
                println!("{} FAILED: {e}", r.well);
            }
            status => println!("{} {status:?} in {:.2} s", r.well, r.seconds),
        }
        for note in &r.notes {
            println!("  {}: {note}", r.well);
        }
    }
    super::tell_direct_write_refusal();
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} of {} of task {} failed", super::wells(reports.len()), args.task))
    }
}
