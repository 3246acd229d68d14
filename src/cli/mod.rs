//! The `hcs` command line, one module per subcommand.
//!
//! A crate that registers its own functions builds the same tool by linking itself in:
//!
//! ```no_run
//! // src/bin/hcs-with-plugins.rs of a plugin crate
//! // use my_plugin as _;   // keeps the plugin's registrations in the binary
//! fn main() -> std::process::ExitCode {
//!     hcs::cli::main()
//! }
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod compile_args;
pub mod demo;
pub mod devices;
pub mod finalize;
pub mod functions;
pub mod logging;
pub mod output_guard;
pub mod plan;
pub mod run;
pub mod run_well;
pub mod slurm_run;
pub mod snippet;
pub mod synth;

/// Exit status of a run (`hcs run`, `hcs demo`) in which some wells failed; the others finished.
pub const EXIT_WELLS_FAILED: u8 = 1;
/// Exit status when nothing could be run, or the command stopped before its end: a bad command
/// line, an invalid pipeline, plate or configuration, a refused output folder, an error outside
/// any well (clap's usage errors have the same code).
pub const EXIT_REFUSED: u8 = 2;

/// The exit statuses, as `hcs --help` and README.md list them.
pub const EXIT_STATUS_HELP: &str = "Exit status:
  0        success: every well done (or already complete); `--executor slurm` without `--wait`: the jobs were queued
  1        the run ended, but some wells failed or did not run, or a well's stitching fell back under
           on_stitch_fallback = \"fail\" (see the summary and report.html in the results folder)
  2        nothing was run or the command stopped: bad arguments, an invalid pipeline, plate or
           configuration, a refused output folder, an error outside any well
  130/143  interrupted by SIGINT / SIGTERM (wells in flight finished; re-run the command to resume)";

/// High-content-screening pipelines: contracts checked by rustc, plans checked before any pixel moves.
#[derive(Parser)]
#[command(name = "hcs", version, about, after_help = EXIT_STATUS_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Errors only on stderr (results still go to stdout).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More diagnostics on stderr: -v info, -vv debug (`HCS_LOG` / `RUST_LOG` take precedence).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline file against the registry (and a plate), or with `--deep` every image
    /// header of the plate, and report every mistake.
    Check(check::Args),
    /// Synthesize a plate and run a pipeline over it, end to end, on built-in defaults.
    Demo(demo::Args),
    /// Show the memory types of this build and the GPUs it can use on this machine.
    Devices(devices::Args),
    /// List every registered processing function and its contract.
    Functions(functions::Args),
    /// Compile a pipeline for a plate and show the frozen per-well plans (`--json` for all of it).
    Plan(plan::Args),
    /// Compile a pipeline and run it over a plate (resumable; wells in parallel, or on Slurm).
    Run(run::Args),
    /// Run one Slurm array task of a submitted plan (what `hcs run --executor slurm` queues).
    RunWell(run_well::Args),
    /// Write a Slurm run's plate-level metadata and summary (what its finalize job runs).
    Finalize(finalize::Args),
    /// Write a seeded synthetic plate with ground-truth tile positions.
    Synth(synth::Args),
}

/// Say, after the wells ran, that a filesystem refused direct writes and the output files went
/// through the page cache instead (printed with the summary and logged as a warning, so it is in
/// `results/hcs.log`), once per process.
pub fn tell_direct_write_refusal() {
    if let Some(note) = crate::vfs::atomic::take_direct_write_refusal() {
        tracing::warn!("{note}");
        println!("  note: {note}");
    }
}

/// `1 well`, `2 wells`: a count of wells in a message.
pub fn wells(n: usize) -> String {
    counted(n, "well")
}

/// "1 worker", "2 workers": `n` and a noun that takes an s in the plural.
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `--workers N`: a whole number of threads from 1 to [`Workers::MAX`](crate::plan::pipeline::Workers::MAX),
/// refused as a bad option (not as a problem of the pipeline file).
pub fn workers_value(text: &str) -> Result<usize, String> {
    let max = crate::plan::pipeline::Workers::MAX;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} is outside 1–{max} (leave `--workers` out for one per core)")),
        Err(_) => Err(format!("expected a whole number of threads from 1 to {max}")),
    }
}

/// `--backend disk|zarr` (clap has checked the word) as the configuration's backend.
pub fn backend_option(word: Option<&str>) -> Option<crate::vfs::Backend> {
    word.map(|b| if b == "zarr" { crate::vfs::Backend::Zarr } else { crate::vfs::Backend::Disk })
}

/// Parse the process arguments and run the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(if cli.quiet { -1 } else { i8::try_from(cli.verbose).unwrap_or(i8::MAX) });
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Demo(args) => match demo::run(&args) {
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(message) => Err(message),
        },
        Command::Devices(args) => devices::run(&args),
        Command::Functions(args) => functions::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => match run::run(&args) {
            // Interrupted by a signal: the summary is printed; exit 128 + the signal.
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(message) => Err(message),
        },
        Command::RunWell(args) => run_well::run(&args),
        Command::Finalize(args) => match finalize::run(&args) {
            // Stitching fell back and the pipeline says that fails the run.
            Ok(Some(code)) => return ExitCode::from(code),
            Ok(None) => Ok(()),
            Err(message) => Err(message),
        },
        Command::Synth(args) => synth::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}
