//! `hcs run PIPELINE --plate DIR [--out DIR] [--workers N] [--wells A01,B02] [--backend disk|zarr]
//! [--executor local|slurm ...]`: compile, then execute every well — here, in parallel
//! (`local`), or as a Slurm array job (`slurm`, see [`crate::slurm`]) — with a progress bar on a
//! terminal and one line per well otherwise; a per-well report at the end, and a non-zero exit if
//! any well failed. Re-running the same command resumes: finished wells are verified and skipped.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::Registry;
use crate::exec::{RunOptions, WellReport, WellStatus, run as execute};
use crate::plan::pipeline::{ConfigLayer, Workers};
use crate::plate::WellId;
use crate::vfs::Backend;

use super::compile_args::compile_file;

/// Options of `hcs run`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The input plate.
    #[arg(long)]
    pub plate: PathBuf,
    /// The output plate folder (default: `<plate>_outputs` beside the plate).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Only these wells, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub wells: Option<Vec<WellId>>,
    /// Storage of the output images.
    #[arg(long, value_parser = ["disk", "zarr"])]
    pub backend: Option<String>,
    /// Stop starting wells after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Publish every step's output as it is produced (preview OME-Zarr stores for napari, PNG
    /// thumbnails) under `<out>/previews/`.
    #[arg(long)]
    pub visualize: bool,
    /// Global configuration file (default `$HCS_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the wells run: on this machine's cores, or as a Slurm array job.
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// Slurm: the partition to submit to.
    #[arg(long, help_heading = "Slurm")]
    pub partition: Option<String>,
    /// Slurm: wells per array task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Slurm")]
    pub wells_per_task: u64,
    /// Slurm: at most this many tasks at once (`--array=0-M%N`).
    #[arg(long, help_heading = "Slurm")]
    pub max_parallel: Option<usize>,
    /// Slurm: one more `sbatch` argument for both jobs (repeatable), e.g. `--sbatch-arg=--time=2:00:00`.
    #[arg(long, allow_hyphen_values = true, help_heading = "Slurm")]
    pub sbatch_arg: Vec<String>,
    /// Slurm: follow the jobs until they end, with the same progress display as a local run, and
    /// report the wells that failed with their task's log.
    #[arg(long, help_heading = "Slurm")]
    pub wait: bool,
}

/// Where the wells of `hcs run` execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorKind {
    /// This machine: a pool of worker threads.
    Local,
    /// A Slurm cluster: one array job, then a finalize job.
    Slurm,
}

fn status_text(r: &WellReport) -> String {
    match &r.status {
        WellStatus::Done => format!("{} done in {:.2} s", r.well, r.seconds),
        WellStatus::Resumed => format!("{} already complete (verified), skipped", r.well),
        WellStatus::Failed(e) => format!("{} FAILED: {e}", r.well),
        WellStatus::NotRun => format!("{} not run (--fail-fast)", r.well),
    }
}

/// Compile and run.
pub fn run(args: &Args) -> Result<(), String> {
    let overrides = ConfigLayer {
        output_root: args.out.clone(),
        workers: args.workers.map(Workers::Count),
        backend: args.backend.as_deref().map(|b| if b == "zarr" { Backend::Zarr } else { Backend::Disk }),
        visualize: args.visualize.then_some(true),
        ..ConfigLayer::default()
    };
    let (_, plate, compiled) =
        compile_file(&args.pipeline, &args.plate, args.config.as_deref(), overrides, args.wells.clone())?;
    let registry = Registry::global();

    for viewer in &compiled.viewers {
        eprintln!("previews need: {viewer}");
    }
    if args.executor == ExecutorKind::Slurm {
        return super::slurm_run::run(args, &compiled, &plate);
    }
    let bar = progress_bar(compiled.wells.len() as u64);
    let on_well = |r: &WellReport| {
        if let Some(b) = &bar {
            b.set_message(status_text(r));
            b.inc(1);
        }
    };
    let run_options = RunOptions { workers: args.workers, fail_fast: args.fail_fast, on_well: Some(&on_well) };
    let result = execute(&compiled, &plate, registry, &run_options).map_err(|e| e.to_string())?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let failed: Vec<&WellReport> =
        result.wells.iter().filter(|w| matches!(w.status, WellStatus::Failed(_) | WellStatus::NotRun)).collect();
    let done = result.wells.iter().filter(|w| w.status == WellStatus::Done).count();
    let resumed = result.wells.iter().filter(|w| w.status == WellStatus::Resumed).count();
    println!(
        "`{}`: {done} wells done, {resumed} skipped (already complete), {} failed in {:.2} s → {}",
        compiled.pipeline,
        failed.len(),
        result.seconds,
        result.output_root.display()
    );
    for w in &failed {
        println!("  {}", status_text(w));
    }
    for w in &result.wells {
        for note in &w.notes {
            println!("  {}: {note}", w.well);
        }
    }
    let gpu_steps: Vec<String> = compiled
        .wells
        .first()
        .map(|w| w.steps.iter().filter(|s| s.gpu.is_some()).map(|s| s.index.to_string()).collect())
        .unwrap_or_default();
    if !gpu_steps.is_empty() {
        let kept: Vec<String> = compiled
            .wells
            .first()
            .map(|w| w.steps.iter().filter(|s| !s.output_memory.is_ndarray()).map(|s| s.index.to_string()).collect())
            .unwrap_or_default();
        let kept = if kept.is_empty() { "none".to_string() } else { kept.join(", ") };
        println!("  steps on a GPU: {}; output kept on the device for the next step: {kept}", gpu_steps.join(", "));
    }
    if failed.is_empty() { Ok(()) } else { Err(format!("{} of {} wells failed", failed.len(), result.wells.len())) }
}

/// A progress bar over `len` wells on a terminal; otherwise `None`, and structured log lines
/// (one per event; `HCS_LOG=debug` adds one per step and well) go to stderr instead.
pub fn progress_bar(len: u64) -> Option<indicatif::ProgressBar> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} wells {per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    if bar.is_none() {
        let level = match std::env::var("HCS_LOG").as_deref() {
            Ok("debug") => tracing::Level::DEBUG,
            Ok("warn") => tracing::Level::WARN,
            _ => tracing::Level::INFO,
        };
        let _ =
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(false).with_max_level(level).try_init();
    }
    bar
}
