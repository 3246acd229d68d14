//! `hcs run PIPELINE --plate DIR [--out DIR] [--workers N] [--wells A01,B02] [--backend disk|zarr]
//! [--executor local|slurm ...]`: compile, then execute every well — here, in parallel
//! (`local`), or as a Slurm array job (`slurm`, see [`crate::slurm`]) — with a progress bar on a
//! terminal and one line per well otherwise; a per-well report at the end, and a non-zero exit if
//! any well failed. Re-running the same command resumes: finished wells are verified and skipped.
//!
//! A local run holds the output's lock ([`crate::exec::lock`]) from before it prepares the output
//! to its end, so a second run on the same output is refused at once, naming the holder. The first
//! SIGINT or SIGTERM stops starting wells (those in flight finish and write their records), prints
//! the summary and exits 130 (SIGINT) or 143 (SIGTERM); a second signal exits at once.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::Registry;
use crate::exec::lock::OutputLock;
use crate::exec::{RunOptions, WellReport, WellStatus, run as execute};
use crate::plan::pipeline::{ConfigLayer, Workers};
use crate::plate::WellId;

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
    #[arg(long, value_parser = super::workers_value)]
    pub workers: Option<usize>,
    /// Wells processed at the same time (default: as many as the pipeline's steps need for
    /// their groups to keep every worker busy, counting only the steps on the CPU when some are
    /// on a GPU; fewer wells use less memory).
    #[arg(long, value_parser = at_least_one)]
    pub wells_at_once: Option<std::num::NonZeroUsize>,
    /// Only these wells, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub wells: Option<Vec<WellId>>,
    /// Storage of the output images.
    #[arg(long, value_parser = ["disk", "zarr"])]
    pub backend: Option<String>,
    /// Stop starting wells after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Write into an output folder that holds another pipeline's or plate's outputs (they are
    /// removed first), or files hcs did not write (they are left as they are).
    #[arg(long)]
    pub force: bool,
    /// Keep the checkpoint, output and scratch files of a well that fails (by default they are
    /// removed, so a failed well does not leave the disk full).
    #[arg(long)]
    pub keep_failed: bool,
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
    #[arg(long, default_value_t = 1, value_parser = at_least_one_u64, help_heading = "Slurm")]
    pub wells_per_task: u64,
    /// Slurm: at most this many tasks at once (`--array=0-M%N`).
    #[arg(long, help_heading = "Slurm")]
    pub max_parallel: Option<usize>,
    /// Slurm: one more `sbatch` argument for both jobs (repeatable), e.g. `--sbatch-arg=--time=2:00:00`.
    #[arg(long, allow_hyphen_values = true, help_heading = "Slurm")]
    pub sbatch_arg: Vec<String>,
    /// Slurm: follow the jobs until they end, with the same progress display as a local run, and
    /// report the wells that failed with their task's log; exits 1 when a well failed or its
    /// stitching fell back under `on_stitch_fallback = "fail"` (without it, the command exits 0
    /// once the jobs are queued).
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

/// A count of 1 or more, with a message a user reads (clap's says "number would be zero for
/// non-zero type").
fn at_least_one(text: &str) -> Result<std::num::NonZeroUsize, String> {
    let n: usize = text.trim().parse().map_err(|_| format!("`{text}` is not a whole number"))?;
    std::num::NonZeroUsize::new(n).ok_or_else(|| "must be 1 or more".to_string())
}

/// [`at_least_one`] as a `u64`.
fn at_least_one_u64(text: &str) -> Result<u64, String> {
    at_least_one(text).map(|n| n.get() as u64)
}

fn status_text(r: &WellReport) -> String {
    match &r.status {
        WellStatus::Done => format!("{} done in {:.2} s", r.well, r.seconds),
        WellStatus::Resumed => format!("{} already complete (verified), skipped", r.well),
        WellStatus::Failed(e) => format!("{} FAILED: {e}", r.well),
        WellStatus::NotRun => format!("{} not run (--fail-fast)", r.well),
        WellStatus::Interrupted => format!("{} not started (interrupted)", r.well),
    }
}

/// This process's command line, as the output's lock file records it.
pub fn command_line() -> String {
    crate::report::command_line()
}

/// Take the lock on `output_root` for this process, telling the user when it takes over the lock
/// of a run that died.
pub fn lock_output(output_root: &std::path::Path) -> Result<OutputLock, String> {
    let lock = OutputLock::acquire(output_root, &command_line()).map_err(|e| e.to_string())?;
    if let Some(message) = lock.take_over_message() {
        eprintln!("{message}; its unfinished wells are redone");
    }
    Ok(lock)
}

/// A local run must not prepare (and so clean) an output whose Slurm jobs are still writing it.
/// Checked only where a submission was made; without a reachable scheduler, a warning.
fn refuse_active_submission(output_root: &std::path::Path) -> Result<(), String> {
    if !output_root.join(".hcs").join("slurm").is_dir() {
        return Ok(());
    }
    match crate::slurm::submit::active_submission(output_root, &crate::slurm::Scheduler::default()) {
        Ok(None) => Ok(()),
        Ok(Some((name, jobs))) => Err(format!(
            "jobs {} of Slurm submission {name} are still writing this output; wait for them or `scancel` them, then re-run",
            jobs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )),
        Err(e) => {
            super::logging::say(
                "warning",
                format_args!("cannot check whether earlier Slurm submissions to this output are still running: {e}"),
            );
            Ok(())
        }
    }
}

/// Warn about every well whose stitching fell back to the nominal grid (naming it), and return
/// the wells whose fallback fails the run under the configuration's `on_stitch_fallback`
/// (empty: none does).
pub fn stitch_fallbacks(
    report: &crate::report::Written,
    compiled: &crate::plan::compiler::CompiledPlate,
) -> Vec<String> {
    crate::report::warn_stitch_fallbacks(report, compiled);
    crate::report::failing_wells(&report.stitch_fallbacks, compiled)
}

/// The progress bar's message: the step each well in flight is on, then the last well that
/// ended — so a long plate shows where every worker is.
pub struct WellProgress {
    bar: Option<indicatif::ProgressBar>,
    steps: std::sync::Mutex<std::collections::BTreeMap<WellId, String>>,
}

impl WellProgress {
    /// Progress drawn on `bar` (nothing without one).
    pub fn new(bar: Option<indicatif::ProgressBar>) -> Self {
        WellProgress { bar, steps: std::sync::Mutex::default() }
    }

    fn in_flight(steps: &std::collections::BTreeMap<WellId, String>) -> String {
        steps.iter().map(|(w, s)| format!("{w} {s}")).collect::<Vec<_>>().join(" · ")
    }

    /// `well` starts step `index` of `total`, `name`.
    pub fn step(&self, well: WellId, index: usize, total: usize, name: &str) {
        if let (Some(bar), Ok(mut steps)) = (&self.bar, self.steps.lock()) {
            steps.insert(well, format!("step {index}/{total} {name}"));
            bar.set_message(Self::in_flight(&steps));
        }
    }

    /// `well` ended (`how`, shown after the wells still in flight); the bar advances.
    pub fn well_ended(&self, well: WellId, how: &str) {
        if let (Some(bar), Ok(mut steps)) = (&self.bar, self.steps.lock()) {
            steps.remove(&well);
            let rest = Self::in_flight(&steps);
            bar.set_message(if rest.is_empty() { how.to_string() } else { format!("{rest} · {how}") });
            bar.inc(1);
        }
    }
}

/// `--out` that is the input plate or inside it: an error about the option (the compiler's would
/// name the pipeline file's step, which the user did not get wrong). A folder around the plate is
/// the compiler's to judge: its outputs may lie beside the plate.
fn refuse_out_around_plate(out: &std::path::Path, plate: &std::path::Path) -> Result<(), String> {
    let (o, p) = (resolved(out), resolved(plate));
    let where_ = if o == p {
        "is the input plate"
    } else if o.starts_with(&p) {
        "is inside the input plate"
    } else {
        return Ok(());
    };
    Err(format!(
        "--out {}: the output folder {where_} ({}); choose a folder outside it, so the plate is never written to",
        out.display(),
        p.display()
    ))
}

/// Where `path` leads: absolute, `.` and `..` taken lexically, and its longest existing part
/// with the links followed (an `--out` that does not exist yet may pass through a link).
fn resolved(path: &std::path::Path) -> PathBuf {
    let lexical = crate::plan::compiler::init::lexical(path);
    let mut existing = lexical.as_path();
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

/// Wells executing now (kept by the executor), for the interrupt message.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Compile and run. `Ok(Some(code))`: the process should exit with `code` after the summary —
/// 130 / 143 when a SIGINT / SIGTERM interrupted the run, [`super::EXIT_WELLS_FAILED`] when
/// wells failed.
pub fn run(args: &Args) -> Result<Option<u8>, String> {
    if let Some(out) = &args.out {
        refuse_out_around_plate(out, &args.plate)?;
    }
    let overrides = ConfigLayer {
        output_root: args.out.clone(),
        workers: args.workers.map(Workers::Count),
        backend: super::backend_option(args.backend.as_deref()),
        visualize: args.visualize.then_some(true),
        ..ConfigLayer::default()
    };
    let (pipeline, plate, compiled) =
        compile_file(&args.pipeline, &args.plate, args.config.as_deref(), overrides.clone(), args.wells.clone())?;
    let registry = Registry::global();

    for viewer in &compiled.viewers {
        eprintln!("previews need: {viewer}");
    }
    let identity = super::output_guard::identity(&compiled);
    // Read now: the report names the pipeline as it ran, even if the file is edited meanwhile.
    let pipeline_text = std::fs::read_to_string(&args.pipeline).ok();
    if args.executor == ExecutorKind::Slurm {
        crate::exec::guard::check_outputs_outside_plate(&compiled).map_err(|e| e.to_string())?;
        {
            // Nothing is removed (--force) while another run or live jobs write this output;
            // without --force nothing is removed, and the submission itself refuses live jobs.
            let _lock = lock_output(&compiled.output_root)?;
            if args.force {
                refuse_active_submission(&compiled.output_root)?;
            }
            super::output_guard::claim(&compiled.output_root, &identity, args.force)?;
        }
        // A submission of some wells (`--wells`) reports on the whole output plate, as a local
        // run does: its finalize job needs the plate's plan.
        let whole = args.wells.as_ref().and_then(|_| {
            super::compile_args::compile_whole_plate(&pipeline, &plate, args.config.as_deref(), overrides.clone())
        });
        // The submission takes the output's lock itself while it prepares and submits.
        return super::slurm_run::run(args, &compiled, whole, &plate);
    }
    // Before the lock file is created: an output that lands in the input plate is refused first.
    crate::exec::guard::check_outputs_outside_plate(&compiled).map_err(|e| e.to_string())?;
    let lock = lock_output(&compiled.output_root)?;
    refuse_active_submission(&compiled.output_root)?;
    super::output_guard::claim(&compiled.output_root, &identity, args.force)?;
    super::logging::log_to(&crate::report::results_dir(&compiled).join(super::logging::LOG_FILE));
    interrupt::install()?;
    let bar = progress_bar(compiled.wells.len() as u64);
    let bar_for_message = bar.clone();
    interrupt::on_first(move || {
        let message = format!(
            "interrupt: finishing {} in flight, starting no more (press Ctrl-C again to exit now)",
            super::wells(IN_FLIGHT.load(Ordering::SeqCst))
        );
        match &bar_for_message {
            Some(b) => b.println(message),
            None => eprintln!("{message}"),
        }
    });
    let progress = WellProgress::new(bar.clone());
    let on_step = |well: WellId, index: usize, total: usize, name: &str| progress.step(well, index, total, name);
    let on_well = |r: &WellReport| progress.well_ended(r.well, &status_text(r));
    let shrunk = crate::report::overview::ShrunkAsWritten::new(compiled.wells.len());
    let on_output = |key: &crate::plate::ImageKey, plane: &crate::vfs::PlaneData| shrunk.observe(key, plane);
    let run_options = RunOptions {
        workers: args.workers,
        fail_fast: args.fail_fast,
        keep_failed: args.keep_failed,
        wells_at_once: args.wells_at_once.map(std::num::NonZeroUsize::get),
        on_well: Some(&on_well),
        on_step: Some(&on_step),
        on_output: Some(&on_output),
        stop: Some(interrupt::stop_flag()),
        in_flight: Some(&IN_FLIGHT),
    };
    let started_unix_s = crate::exec::trace::unix_now();
    let result = execute(&compiled, &plate, registry, &run_options).map_err(|e| e.to_string())?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // A run of some wells (`--wells`) reports on the whole output plate: the wells it did not
    // take up are complete from an earlier run (their record says so) or not run.
    let whole = args
        .wells
        .as_ref()
        .and_then(|_| super::compile_args::compile_whole_plate(&pipeline, &plate, args.config.as_deref(), overrides));
    let mut ends: Vec<crate::report::WellEnd> = result.wells.iter().map(crate::report::WellEnd::of).collect();
    if let Some(whole) = &whole {
        ends.extend(crate::report::WellEnd::outside_the_run(whole, &compiled, &plate));
        ends.sort_by_key(|e| e.well);
    }
    let facts = crate::report::RunFacts {
        kind: "local",
        command: command_line(),
        pipeline_file: Some(args.pipeline.clone()),
        pipeline_text,
        compiled: whole.as_ref().unwrap_or(&compiled),
        plate: &plate,
        started_unix_s,
        ended_unix_s: crate::exec::trace::unix_now(),
        workers: result.concurrency.workers,
        wells_at_once: result.concurrency.wells_at_once,
        wells: ends,
        shrunk_as_written: Some(&shrunk),
    };
    let report = crate::report::write_or_warn(&facts);
    let failed: Vec<&WellReport> =
        result.wells.iter().filter(|w| matches!(w.status, WellStatus::Failed(_) | WellStatus::NotRun)).collect();
    let done = result.wells.iter().filter(|w| w.status == WellStatus::Done).count();
    let resumed = result.wells.iter().filter(|w| w.status == WellStatus::Resumed).count();
    let interrupted = result.wells.iter().filter(|w| w.status == WellStatus::Interrupted).count();
    let interrupted_text = if interrupted > 0 { format!(", {interrupted} interrupted") } else { String::new() };
    // Wells `--fail-fast` left unstarted did not fail: counted apart (the exit status is 1
    // for both, as the README says).
    let not_run = failed.iter().filter(|w| w.status == WellStatus::NotRun).count();
    let failed_count = failed.len() - not_run;
    let not_run_text = if not_run > 0 { format!(", {not_run} not run") } else { String::new() };
    println!(
        "`{}`: {} done, {resumed} skipped (already complete){interrupted_text}, {failed_count} failed{not_run_text} in {:.2} s → {}",
        compiled.pipeline,
        super::wells(done),
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
    super::tell_direct_write_refusal();
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
    if let Some(page) = report.files.iter().find(|p| p.ends_with(crate::report::html::FILE)) {
        println!("  report: {}", page.display());
    }
    let fallback_fails = stitch_fallbacks(&report, &compiled);
    drop(lock);
    if let Some(signal) = interrupt::received() {
        if interrupted == 0 && failed.is_empty() {
            // Nothing was cut short: the run ends as it would have (a stitching fallback under
            // `on_stitch_fallback = "fail"` still fails it, below).
            eprintln!("interrupted after every well of this run had finished: nothing is left to resume");
        } else {
            eprintln!(
                "interrupted: {} not started{}; re-run the same command to finish the plate",
                super::wells(interrupted),
                if failed_count == 0 { String::new() } else { format!(", {failed_count} failed") }
            );
            return Ok(Some(128u8.saturating_add(signal)));
        }
    }
    if !fallback_fails.is_empty() {
        eprintln!(
            "error: stitching fell back to the nominal grid in {} ({}; on_stitch_fallback = \"fail\")",
            super::wells(fallback_fails.len()),
            fallback_fails.join(", ")
        );
    }
    if !failed.is_empty() {
        let not_started =
            if not_run > 0 { format!(" ({not_run} not run after it: --fail-fast)") } else { String::new() };
        eprintln!("error: {failed_count} of {} failed{not_started}", super::wells(result.wells.len()));
    }
    Ok((!fallback_fails.is_empty() || !failed.is_empty()).then_some(super::EXIT_WELLS_FAILED))
}

/// SIGINT / SIGTERM during a local run: the first sets the stop flag the executor checks before
/// each well and wakes a thread that prints the interrupt message; a second exits at once.
#[cfg(unix)]
mod interrupt {
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

    static STOP: AtomicBool = AtomicBool::new(false);
    /// The first signal received (0: none).
    static SIGNAL: AtomicI32 = AtomicI32::new(0);
    /// Read and write ends of the pipe that wakes the message thread (-1: none).
    static PIPE: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

    /// Only async-signal-safe calls: atomics, `write`, `_exit`.
    extern "C" fn handle(signal: libc::c_int) {
        if SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            // SAFETY: `_exit` is async-signal-safe; the second signal ends the process now.
            unsafe { libc::_exit(128 + signal) }
        }
        STOP.store(true, Ordering::SeqCst);
        let fd = PIPE[1].load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: `write` is async-signal-safe; the buffer is one valid byte.
            unsafe {
                libc::write(fd, (&raw const byte).cast(), 1);
            }
        }
    }

    /// Install the handlers for SIGINT and SIGTERM.
    pub fn install() -> Result<(), String> {
        let mut fds = [-1 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors `pipe` writes.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return Err(format!("cannot create a pipe for signal handling: {}", std::io::Error::last_os_error()));
        }
        PIPE[0].store(fds[0], Ordering::SeqCst);
        PIPE[1].store(fds[1], Ordering::SeqCst);
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler only makes async-signal-safe calls.
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handle as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&raw mut action.sa_mask);
                libc::sigaction(signal, &raw const action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(format!("cannot install a signal handler: {}", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    /// Run `message` on a background thread once the first signal arrives.
    pub fn on_first(message: impl FnOnce() + Send + 'static) {
        let fd = PIPE[0].load(Ordering::SeqCst);
        if fd < 0 {
            return;
        }
        std::thread::spawn(move || {
            let mut byte = 0u8;
            loop {
                // SAFETY: reads one byte into a valid buffer from the pipe this module owns.
                let n = unsafe { libc::read(fd, (&raw mut byte).cast(), 1) };
                if n == 1 {
                    message();
                    return;
                }
                if n == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    return;
                }
            }
        });
    }

    /// The flag the executor checks before starting each well.
    pub fn stop_flag() -> &'static AtomicBool {
        &STOP
    }

    /// The signal that stopped the run, if one did.
    pub fn received() -> Option<u8> {
        u8::try_from(SIGNAL.load(Ordering::SeqCst)).ok().filter(|&s| s != 0)
    }
}

/// Without Unix signals a run is not interruptible gracefully.
#[cfg(not(unix))]
mod interrupt {
    use std::sync::atomic::AtomicBool;

    static STOP: AtomicBool = AtomicBool::new(false);

    pub fn install() -> Result<(), String> {
        Ok(())
    }

    pub fn on_first(_message: impl FnOnce() + Send + 'static) {}

    pub fn stop_flag() -> &'static AtomicBool {
        &STOP
    }

    pub fn received() -> Option<u8> {
        None
    }
}

/// A progress bar over `len` wells on a terminal (log lines are drawn around it); otherwise
/// `None`, and the log lines (info by default; `HCS_LOG=debug` or `-vv` adds one per step and
/// well) are the progress.
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
    if let Some(bar) = &bar {
        super::logging::attach(bar);
    }
    bar
}
