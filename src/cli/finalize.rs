//! `hcs finalize --plan PLAN`: what a Slurm run's finalize job runs once its array ends — the
//! plate-level metadata (OME-Zarr plate listing the complete wells, `hcs_plate.json`) and
//! `summary.json`, and the run report (`results/run.json`, `trace.tsv`, `overview.png`,
//! `report.html`). Exits 1 when the wells' stitching fell back to the nominal grid under
//! `on_stitch_fallback = "fail"` (`summary.json` lists them), so the scheduler shows the job
//! failed.

use std::path::PathBuf;

use crate::plate::formats::open_plate;
use crate::slurm::SlurmJob;
use crate::slurm::submit::finalize_submission;

/// Options of `hcs finalize`.
#[derive(clap::Args)]
pub struct Args {
    /// The submission's plan.
    #[arg(long)]
    pub plan: PathBuf,
}

/// Write the plate-level output. Exits 1 (`Some`) when the wells' stitching fell back to the
/// nominal grid and the pipeline says `on_stitch_fallback = "fail"`: the finalize job then
/// fails in the scheduler's accounting, as a local run would.
pub fn run(args: &Args) -> Result<Option<u8>, String> {
    let job = SlurmJob::read(&args.plan).map_err(|e| e.to_string())?;
    let plate = open_plate(&job.compiled.plate, None).map_err(|e| e.to_string())?;
    let dir = args.plan.parent().unwrap_or_else(|| std::path::Path::new("."));
    let summary = finalize_submission(&job, dir, &plate).map_err(|e| e.to_string())?;
    println!(
        "`{}`: {} complete, {} missing{}",
        summary.pipeline,
        super::wells(summary.complete.len()),
        summary.missing.len(),
        if summary.missing.is_empty() {
            String::new()
        } else {
            format!(" ({})", summary.missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
        }
    );
    if let Some(error) = summary.fallback_error() {
        eprintln!("error: {error}");
        return Ok(Some(super::EXIT_WELLS_FAILED));
    }
    Ok(None)
}
