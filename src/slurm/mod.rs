//! Running a plate on a Slurm cluster through the scheduler's command line (`sbatch`, `squeue`,
//! `scontrol`, `scancel`) — no libslurm binding.
//!
//! The submit host compiles the pipeline once (every error surfaces before anything is queued),
//! prepares the output (folders, OME-Zarr plates), writes the frozen plan of this submission to
//! `<output>/.hcs/slurm/<submission>/plan.json`, and submits one array job whose task `k` runs
//! `hcs run-well --plan PLAN --task k` on the wells the plan lists for it, then a finalize job
//! (`--dependency=afterany:<array>`) running `hcs finalize --plan PLAN`, which writes the
//! plate-level metadata and `summary.json` once (and exits 1 when the wells' stitching fell back
//! to the nominal grid under `on_stitch_fallback = "fail"`, as a local run would; the summary
//! says so, and `hcs run --wait` reports it). Tasks only write their own wells' files (a
//! well's OME-Zarr group is written aside and renamed into place; records per well), so no two
//! tasks write the same chunk or metadata file.
//!
//! A submission lists only the wells not already complete (verified by their records), so
//! re-running the same command after failures or cancellations runs only the unfinished wells.

pub mod job;
pub mod scheduler;
pub mod submit;

pub use job::{SlurmJob, TaskReport};
pub use scheduler::{Scheduler, TaskState};
pub use submit::{SUMMARY, SlurmOptions, StitchFallback, Submission, Summary, Waited, submit, wait};

/// What can go wrong talking to Slurm or with a submission's files.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// A scheduler command could not be started (not installed, not on `PATH`).
    #[error("cannot run `{command}`: {source} (is Slurm's client installed and on PATH?)")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A scheduler command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        stderr: String,
    },
    /// A scheduler command printed something unexpected.
    #[error("cannot read the output of `{command}`: {output:?}")]
    Parse {
        /// The command.
        command: String,
        /// What it printed.
        output: String,
    },
    /// A submission file cannot be read or written.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        message: String,
    },
    /// The executor failed (preparing or finalizing the output).
    #[error(transparent)]
    Exec(#[from] hcs_exec::ExecError),
    /// The output is locked by another run (or its lock file cannot be written).
    #[error(transparent)]
    Lock(#[from] hcs_exec::lock::LockError),
    /// The task number is not in the plan.
    #[error("task {task} is not in this plan (it has {tasks} tasks)")]
    NoSuchTask {
        /// The task asked for.
        task: usize,
        /// How many there are.
        tasks: usize,
    },
}

/// A submission file's error.
pub(crate) fn file_error(path: &std::path::Path, e: impl std::fmt::Display) -> SlurmError {
    SlurmError::File { path: path.to_path_buf(), message: e.to_string() }
}
