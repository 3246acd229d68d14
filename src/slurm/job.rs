//! The files of one submission: the frozen plan with the wells of each task, and each task's
//! report.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hcs_exec::WellReport;
use hcs_plan::compiler::CompiledPlate;
use hcs_plate::WellId;

use super::{SlurmError, file_error};

/// What every task and the finalize job of one submission read: the compiled plate and the
/// wells each array task runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlurmJob {
    /// The frozen per-well plans (compiled once, on the submit host).
    pub compiled: CompiledPlate,
    /// The wells of array task `k`, in plate order.
    pub tasks: Vec<Vec<WellId>>,
    /// Worker threads per task (`None`: every CPU Slurm gives the task).
    pub workers: Option<usize>,
    /// Wells a task runs at the same time (`None`: the executor's default,
    /// `hcs_exec::wells_at_once`).
    #[serde(default)]
    pub wells_at_once: Option<usize>,
    /// The plate's plan where the submission runs some of its wells (`--wells`), for the
    /// finalize job's report of the whole output plate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole: Option<CompiledPlate>,
}

/// What one task did, written by the task when it ends.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskReport {
    /// The task.
    pub task: usize,
    /// One report per well of the task.
    pub wells: Vec<TaskWell>,
}

/// One well of a [`TaskReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskWell {
    /// The well.
    pub well: WellId,
    /// `done`, `resumed`, `failed` or `not_run`.
    pub status: String,
    /// The error of a failed well.
    pub error: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl TaskWell {
    /// From the executor's report.
    pub fn of(report: &WellReport) -> Self {
        Self {
            well: report.well,
            status: report.status.name().into(),
            error: report.status.error().map(str::to_string),
            seconds: report.seconds,
        }
    }
}

/// The folder of one submission's files.
pub fn submission_dir(output_root: &Path, name: &str) -> PathBuf {
    output_root.join(".hcs").join("slurm").join(name)
}

impl SlurmJob {
    /// Split `wells` (indices into `compiled.wells`) into tasks of `per_task` wells.
    pub fn new(compiled: CompiledPlate, wells: &[usize], per_task: usize, workers: Option<usize>) -> Self {
        let ids: Vec<WellId> = wells.iter().filter_map(|&k| compiled.wells.get(k).map(|p| p.well)).collect();
        let tasks = ids.chunks(per_task.max(1)).map(<[WellId]>::to_vec).collect();
        Self { compiled, tasks, workers, wells_at_once: None, whole: None }
    }

    /// Write the plan atomically.
    pub fn write(&self, path: &Path) -> Result<(), SlurmError> {
        let bytes = serde_json::to_vec(self).map_err(|e| file_error(path, e))?;
        hcs_vfs::atomic::write_atomic(path, &bytes).map_err(|e| file_error(path, e))
    }

    /// Read a plan written by [`SlurmJob::write`].
    pub fn read(path: &Path) -> Result<Self, SlurmError> {
        let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| file_error(path, format!("not an hcs Slurm plan: {e}")))
    }

    /// The indices (into `compiled.wells`) of task `task`'s wells.
    pub fn task_wells(&self, task: usize) -> Result<Vec<usize>, SlurmError> {
        let wells = self.tasks.get(task).ok_or(SlurmError::NoSuchTask { task, tasks: self.tasks.len() })?;
        Ok(wells.iter().filter_map(|w| self.compiled.wells.iter().position(|p| p.well == *w)).collect())
    }
}

/// Where task `task` writes its report.
pub fn task_report_path(dir: &Path, task: usize) -> PathBuf {
    dir.join("tasks").join(format!("task-{task}.json"))
}

/// Where Slurm writes task `task`'s output (the `--output` pattern uses `%a`).
pub fn task_log_path(dir: &Path, task: usize) -> PathBuf {
    dir.join("logs").join(format!("task-{task}.out"))
}

impl TaskReport {
    /// Write atomically.
    pub fn write(&self, path: &Path) -> Result<(), SlurmError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| file_error(path, e))?;
        hcs_vfs::atomic::write_atomic(path, &bytes).map_err(|e| file_error(path, e))
    }

    /// Read, if the task wrote one.
    pub fn read(path: &Path) -> Option<Self> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compiled plate without wells.
    fn no_wells() -> CompiledPlate {
        CompiledPlate {
            pipeline: "p".into(),
            plate: "plate".into(),
            output_root: "out".into(),
            results_dir: "out/results".into(),
            viewers: Vec::new(),
            wells: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn an_empty_selection_has_no_tasks_and_paths_follow_the_task() {
        let job = SlurmJob::new(no_wells(), &[], 2, None);
        assert!(job.tasks.is_empty());
        assert!(matches!(job.task_wells(0), Err(SlurmError::NoSuchTask { task: 0, tasks: 0 })));
        assert_eq!(task_log_path(Path::new("d"), 3), Path::new("d/logs/task-3.out"));
    }

    #[test]
    fn wells_at_once_travel_in_the_job_file_and_older_files_read_as_the_default() {
        let job = SlurmJob { wells_at_once: Some(1), ..SlurmJob::new(no_wells(), &[], 2, Some(4)) };
        let mut value = serde_json::to_value(&job).expect("json");
        let back: SlurmJob = serde_json::from_value(value.clone()).expect("read back");
        assert_eq!(back, job);
        // A job file written before the setting existed has no such key.
        value.as_object_mut().expect("object").remove("wells_at_once");
        let older: SlurmJob = serde_json::from_value(value).expect("older file");
        assert_eq!((older.wells_at_once, older.workers), (None, Some(4)));
    }
}
