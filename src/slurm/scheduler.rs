//! The scheduler's command line: `sbatch`, `squeue`, `scontrol`, `scancel`, run as processes.

use std::path::PathBuf;
use std::process::Command;

use super::SlurmError;

/// Runs Slurm's commands (from `PATH`, or from `bin_dir` when set).
#[derive(Clone, Debug, Default)]
pub struct Scheduler {
    /// A folder holding the commands, instead of `PATH`.
    pub bin_dir: Option<PathBuf>,
}

/// The state of one array task as the scheduler reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// The array task id.
    pub task: usize,
    /// Slurm's state name (`PENDING`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELLED`, …).
    pub state: String,
}

impl Scheduler {
    fn command(&self, name: &str) -> Command {
        match &self.bin_dir {
            Some(dir) => Command::new(dir.join(name)),
            None => Command::new(name),
        }
    }

    fn run(&self, name: &str, args: &[String]) -> Result<String, SlurmError> {
        let shown = format!("{name} {}", args.join(" "));
        let out = self
            .command(name)
            .args(args)
            .output()
            .map_err(|source| SlurmError::Spawn { command: name.to_string(), source })?;
        if !out.status.success() {
            return Err(SlurmError::Command {
                command: shown,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `sbatch --parsable ARGS`: the job id.
    pub fn sbatch(&self, args: &[String]) -> Result<u64, SlurmError> {
        let mut all = vec!["--parsable".to_string()];
        all.extend(args.iter().cloned());
        let out = self.run("sbatch", &all)?;
        // `--parsable` prints `id` or `id;cluster`.
        out.trim()
            .split(';')
            .next()
            .and_then(|id| id.parse().ok())
            .ok_or(SlurmError::Parse { command: "sbatch".into(), output: out })
    }

    /// Whether any part of these jobs is still queued or running (`squeue`; a job the scheduler
    /// no longer knows is not).
    pub fn active(&self, jobs: &[u64]) -> Result<bool, SlurmError> {
        for job in jobs {
            match self.run("squeue", &["-h".into(), "-j".into(), job.to_string(), "-o".into(), "%i".into()]) {
                Ok(out) if out.lines().any(|l| !l.trim().is_empty()) => return Ok(true),
                Ok(_) => {}
                Err(SlurmError::Command { stderr, .. }) if stderr.contains("Invalid job id") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    /// The state of every task of array job `job` (`scontrol -o show job`).
    pub fn array_states(&self, job: u64) -> Result<Vec<TaskState>, SlurmError> {
        let out = self.run("scontrol", &["-o".into(), "show".into(), "job".into(), job.to_string()])?;
        Ok(parse_array_states(&out))
    }

    /// The state of a plain job (`scontrol -o show job`).
    pub fn job_state(&self, job: u64) -> Result<String, SlurmError> {
        let out = self.run("scontrol", &["-o".into(), "show".into(), "job".into(), job.to_string()])?;
        field(out.lines().next().unwrap_or(""), "JobState")
            .map(str::to_string)
            .ok_or(SlurmError::Parse { command: "scontrol show job".into(), output: out })
    }

    /// `scancel ID` (`12`, or `12_3` for one array task).
    pub fn scancel(&self, id: &str) -> Result<(), SlurmError> {
        self.run("scancel", &[id.to_string()]).map(|_| ())
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
}

/// Per-task states from `scontrol -o show job ARRAY` (one line per task, or per range of tasks
/// still pending as one record, e.g. `ArrayTaskId=2-5%1`).
pub fn parse_array_states(out: &str) -> Vec<TaskState> {
    let mut states = Vec::new();
    for line in out.lines() {
        let (Some(ids), Some(state)) = (field(line, "ArrayTaskId"), field(line, "JobState")) else { continue };
        let ids = ids.split('%').next().unwrap_or(ids);
        for part in ids.split(',') {
            let range: Vec<Option<usize>> = part.splitn(2, '-').map(|n| n.parse().ok()).collect();
            match range.as_slice() {
                [Some(a)] => states.push(TaskState { task: *a, state: state.to_string() }),
                [Some(a), Some(b)] => {
                    states.extend((*a..=*b).map(|task| TaskState { task, state: state.to_string() }));
                }
                _ => {}
            }
        }
    }
    states.sort_by_key(|s| s.task);
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_states_are_read_per_task_including_pending_ranges() {
        let out = "JobId=14 ArrayJobId=12 ArrayTaskId=2 JobName=hcs JobState=CANCELLED Reason=None\n\
                   JobId=13 ArrayJobId=12 ArrayTaskId=1 JobName=hcs JobState=FAILED Reason=NonZeroExitCode\n\
                   JobId=12 ArrayJobId=12 ArrayTaskId=3-4,6%1 JobName=hcs JobState=PENDING Reason=JobArrayTaskLimit\n\
                   JobId=15 ArrayJobId=12 ArrayTaskId=0 JobName=hcs JobState=COMPLETED Reason=None\n";
        let states = parse_array_states(out);
        let got: Vec<(usize, &str)> = states.iter().map(|s| (s.task, s.state.as_str())).collect();
        assert_eq!(
            got,
            [(0, "COMPLETED"), (1, "FAILED"), (2, "CANCELLED"), (3, "PENDING"), (4, "PENDING"), (6, "PENDING")]
        );
    }
}
