//! `hcs run --executor slurm`: a pipeline error stops before `sbatch`; the submitted command lines
//! (with a stand-in `sbatch`); and, against a real one-node cluster (`scripts/slurm-local.sh`),
//! a 6-well plate whose outputs equal a local run's, and a cancelled task that a resubmission
//! reruns alone.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HCS: &str = env!("CARGO_BIN_EXE_hcs");
const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
const WELLS: [&str; 6] = ["A01", "A02", "A03", "B01", "B02", "B03"];

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn hcs(args: &[&str], path_prefix: Option<&Path>) -> Out {
    let mut cmd = Command::new(HCS);
    cmd.args(args);
    if let Some(dir) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", dir.display()));
    }
    let out = cmd.output().expect("hcs runs");
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-slurm-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn synth(dir: &Path) -> PathBuf {
    let plate = dir.join("plate");
    let out = hcs(&["synth", "--out", s(&plate), "--wells", &WELLS.join(","), "--tile", "64"], None);
    assert!(out.ok, "{}", out.stderr);
    plate
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::output_files(root)
}

fn run_args<'a>(plate: &'a Path, out: &'a Path) -> Vec<&'a str> {
    run_args_on(plate, out, "zarr")
}

fn run_args_on<'a>(plate: &'a Path, out: &'a Path, backend: &'a str) -> Vec<&'a str> {
    vec!["run", PIPELINE, "--plate", s(plate), "--out", s(out), "--backend", backend]
}

fn local_run(plate: &Path, out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let r = hcs(&run_args(plate, out), None);
    assert!(r.ok, "{}", r.stderr);
    let files = files(out);
    assert!(files.len() > 50, "the local run wrote {} files", files.len());
    files
}

/// A stand-in `sbatch` that records its arguments and answers with job ids 41, 42, …
fn fake_sbatch(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let log = dir.join("sbatch.log");
    let script =
        format!("#!/bin/sh\necho \"$*\" >> '{log}'\nn=$(wc -l < '{log}')\necho $((40 + n))\n", log = log.display());
    let path = bin.join("sbatch");
    std::fs::write(&path, script).expect("write sbatch");
    let status = Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
    assert!(status.success());
    (bin, log)
}

#[test]
fn a_pipeline_error_is_reported_before_sbatch_is_called() {
    let dir = scratch("error");
    let plate = synth(&dir);
    let (bin, log) = fake_sbatch(&dir);
    let broken = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/broken.toml");
    let out = dir.join("out");
    let r = hcs(&["run", broken, "--plate", s(&plate), "--out", s(&out), "--executor", "slurm"], Some(&bin));
    assert!(!r.ok, "a broken pipeline must fail");
    assert!(r.stderr.contains("unknown function `max_projectoin`"), "{}", r.stderr);
    assert!(!log.exists(), "sbatch was called for a broken pipeline: {:?}", std::fs::read_to_string(&log));
    assert!(!out.exists(), "nothing may be written for a broken pipeline");

    // The same stand-in is called for a valid pipeline: one array job, then the finalize job.
    let mut args = run_args(&plate, &out);
    args.extend([
        "--executor",
        "slurm",
        "--wells-per-task",
        "4",
        "--max-parallel",
        "1",
        "--partition",
        "short",
        "--sbatch-arg=--time=0:10:00",
    ]);
    let r = hcs(&args, Some(&bin));
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("submitted array job 41 (2 tasks, 6 wells; 0 already complete) and finalize job 42"),
        "{}",
        r.stdout
    );
    let calls = std::fs::read_to_string(&log).expect("sbatch log");
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for expected in ["--parsable", "--array=0-1%1", "--partition=short", "--time=0:10:00", "task.sh"] {
        assert!(calls[0].contains(expected), "array job lacks {expected}: {}", calls[0]);
    }
    for expected in ["--dependency=afterany:41", "--partition=short", "finalize.sh"] {
        assert!(calls[1].contains(expected), "finalize job lacks {expected}: {}", calls[1]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn job_ids(stdout: &str) -> (String, String) {
    let line = stdout.lines().find(|l| l.contains("submitted array job")).expect("submission line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| words.iter().position(|x| *x == w).map(|i| words[i + 1].to_string()).expect("job id");
    (after("job"), words.last().expect("finalize id").to_string())
}

fn slurm(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("slurm command runs");
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until_gone(jobs: &str) {
    let start = Instant::now();
    while !slurm("squeue", &["-h", "-j", jobs, "-o", "%i"]).trim().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(300), "jobs {jobs} still queued after 300 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn record(out: &Path, well: &str) -> PathBuf {
    out.join(".hcs/wells").join(format!("{well}.json"))
}

/// Modification time and bytes of the wells' completion records.
fn records(out: &Path, wells: &[&str]) -> Vec<(std::time::SystemTime, Vec<u8>)> {
    wells
        .iter()
        .map(|w| {
            let p = record(out, w);
            (std::fs::metadata(&p).and_then(|m| m.modified()).expect("mtime"), std::fs::read(&p).expect("record"))
        })
        .collect()
}

#[test]
#[ignore = "needs a running Slurm cluster: `bash scripts/slurm-local.sh start` and its SLURM_CONF; .ci/run runs it with --ignored"]
fn six_wells_on_slurm_equal_a_local_run() {
    let dir = scratch("six");
    let plate = synth(&dir);
    // Byte for byte, for both backends (OME-Zarr shards are written in a fixed inner-chunk order).
    for backend in ["zarr", "disk"] {
        let local_out = dir.join(format!("local-{backend}"));
        let r = hcs(&run_args_on(&plate, &local_out, backend), None);
        assert!(r.ok, "{}", r.stderr);
        let local = files(&local_out);
        assert!(local.len() > 50, "the local run wrote {} files", local.len());
        let out = dir.join(format!("slurm-{backend}"));
        let mut args = run_args_on(&plate, &out, backend);
        args.extend(["--executor", "slurm", "--wells-per-task", "2", "--wait"]);
        let r = hcs(&args, None);
        assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("6 of 6 wells complete"), "{}", r.stdout);
        assert_eq!(files(&out), local, "{backend}: Slurm outputs differ from the local run's");
        let summary = std::fs::read_to_string(out.join("summary.json")).expect("finalize wrote summary.json");
        assert!(summary.contains("\"missing\": []"), "{summary}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs a running Slurm cluster: `bash scripts/slurm-local.sh start` and its SLURM_CONF; .ci/run runs it with --ignored"]
fn a_cancelled_task_is_all_that_a_resubmission_reruns() {
    let dir = scratch("cancel");
    let plate = synth(&dir);
    let local = local_run(&plate, &dir.join("local"));
    let out = dir.join("slurm");

    // Held, so task 2 (wells B02, B03) can be cancelled before anything runs; then released.
    let mut args = run_args(&plate, &out);
    args.extend(["--executor", "slurm", "--wells-per-task", "2", "--sbatch-arg=--hold"]);
    let r = hcs(&args, None);
    assert!(r.ok, "{}", r.stderr);
    let (array, finalize) = job_ids(&r.stdout);
    // While those jobs are queued, resubmitting is refused (it would clean wells being written).
    let again = hcs(&args, None);
    assert!(!again.ok && again.stderr.contains("still queued or running"), "{}", again.stderr);
    slurm("scancel", &[&format!("{array}_2")]);
    // `--sbatch-arg`s go to both jobs, so the finalize job was held too.
    slurm("scontrol", &["release", &format!("{array},{finalize}")]);
    wait_until_gone(&format!("{array},{finalize}"));
    // Tasks 0 and 1 completed; the cancelled task 2 never ran.
    let states = slurm("scontrol", &["-o", "show", "job", &array]);
    let completed: Vec<&str> = states
        .lines()
        .filter(|l| l.contains("JobState=COMPLETED"))
        .filter_map(|l| l.split_whitespace().find(|kv| kv.starts_with("ArrayTaskId=")))
        .collect();
    assert_eq!(completed.len(), 2, "{states}");
    assert!(!completed.contains(&"ArrayTaskId=2"), "{states}");
    for w in ["A01", "A02", "A03", "B01"] {
        assert!(record(&out, w).is_file(), "{w} should be complete");
    }
    for w in ["B02", "B03"] {
        assert!(!record(&out, w).exists(), "{w} belonged to the cancelled task");
    }
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("finalize ran after the cancellation");
    assert!(summary.contains("B02") && summary.contains("\"missing\""), "{summary}");
    let before = records(&out, &["A01", "A02", "A03", "B01"]);

    // The same submission again (without the test's --hold) runs only the cancelled wells.
    let mut args = run_args(&plate, &out);
    args.extend(["--executor", "slurm", "--wells-per-task", "2", "--wait"]);
    let r = hcs(&args, None);
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(1 tasks, 2 wells; 4 already complete)"), "{}", r.stdout);
    assert!(r.stdout.contains("2 of 2 wells complete"), "{}", r.stdout);
    let after = records(&out, &["A01", "A02", "A03", "B01"]);
    assert_eq!(before, after, "wells finished before the cancellation were redone");
    assert_eq!(files(&out), local, "outputs after the resubmission differ from the local run's");

    // A submission of some wells (`--wells`) reports on the whole output plate, as a local run
    // does: the well it names is complete already, the others from earlier submissions.
    let mut args = run_args(&plate, &out);
    args.extend(["--executor", "slurm", "--wells", "A01", "--wait"]);
    let r = hcs(&args, None);
    assert!(r.ok, "{}\n{}", r.stdout, r.stderr);
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/run.json")).expect("run.json")).expect("json");
    let statuses: Vec<(String, String)> = run["wells"]
        .as_array()
        .expect("wells")
        .iter()
        .map(|w| (w["well"].as_str().unwrap_or("?").to_string(), w["status"].as_str().unwrap_or("?").to_string()))
        .collect();
    let want: Vec<(String, String)> = WELLS
        .iter()
        .map(|w| (w.to_string(), if *w == "A01" { "resumed" } else { "done_earlier" }.to_string()))
        .collect();
    assert_eq!(statuses, want);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
#[ignore = "needs a running Slurm cluster: `bash scripts/slurm-local.sh start` and its SLURM_CONF; .ci/run runs it with --ignored"]
fn a_failed_well_is_reported_with_its_error_and_task_log() {
    let dir = scratch("fail");
    let plate = synth(&dir);
    // Corrupt one image of well B01 (task 1 with two wells per task).
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = find(&path, name) {
                    return Some(found);
                }
            } else if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(name)) {
                return Some(path);
            }
        }
        None
    }
    let victim = find(&plate, "B01_s1_w1").expect("an image of B01");
    std::fs::write(&victim, b"not a TIFF").expect("corrupt");
    let out = dir.join("slurm");
    let mut args = run_args(&plate, &out);
    args.extend(["--executor", "slurm", "--wells-per-task", "2", "--wait"]);
    let r = hcs(&args, None);
    assert_eq!(r.code, Some(1), "a failed well fails the command with exit 1\n{}", r.stderr);
    assert!(r.stdout.contains("5 of 6 wells complete"), "{}", r.stdout);
    let line = r.stdout.lines().find(|l| l.contains("B01 FAILED (task 1)")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("B01_s1_w1") && line.contains("logs/task-1.out"), "{line}");
    let summary = std::fs::read_to_string(out.join("summary.json")).expect("summary");
    assert!(summary.contains("\"missing\": [\n    \"B01\"\n  ]"), "{summary}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A well whose stitching fell back to the nominal grid (a 30 % overlap where the canonical
/// pipeline expects 10 %): under the default `warn` the Slurm run succeeds and `summary.json`
/// names the well; under `on_stitch_fallback = "fail"` the finalize job exits 1 (the scheduler
/// shows it failed) and so does `hcs run --wait`, as a local run would.
#[test]
#[ignore = "needs a running Slurm cluster: `bash scripts/slurm-local.sh start` and its SLURM_CONF; .ci/run runs it with --ignored"]
fn a_stitching_fallback_under_fail_fails_the_finalize_job_and_the_waiting_run() {
    let dir = scratch("fallback");
    let plate = dir.join("plate");
    let made = hcs(&["synth", "--out", s(&plate), "--wells", "A01", "--tile", "128", "--overlap", "0.3"], None);
    assert!(made.ok, "{}", made.stderr);
    let summary = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("finalize wrote summary.json"))
            .expect("summary.json is JSON")
    };

    let warned = dir.join("warn");
    let mut args = run_args(&plate, &warned);
    args.extend(["--executor", "slurm", "--wait"]);
    let r = hcs(&args, None);
    assert!(r.ok, "warn is the default\n{}\n{}", r.stdout, r.stderr);
    let s_warn = summary(&warned);
    assert_eq!(s_warn["failed_on_stitch_fallback"], false, "{s_warn}");
    assert_eq!(s_warn["failing_wells"], serde_json::json!([]), "a fallback that only warns fails no well\n{s_warn}");
    let listed = s_warn["stitch_fallbacks"].as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{s_warn}");
    assert_eq!(listed[0]["well"], "A01");
    assert!(listed[0]["tiles"].as_u64().is_some_and(|n| n > 0), "{s_warn}");
    assert_eq!(listed[0]["step"], 4, "the canonical pipeline's tile positions step\n{s_warn}");

    let config = dir.join("config.toml");
    std::fs::write(&config, "on_stitch_fallback = \"fail\"\n").expect("config");
    let failed = dir.join("fail");
    let mut args = run_args(&plate, &failed);
    args.extend(["--config", s(&config), "--executor", "slurm", "--wait"]);
    let r = hcs(&args, None);
    let (stdout, stderr) = (&r.stdout, &r.stderr);
    assert_eq!(r.code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 of 1 well complete"), "{stdout}");
    assert!(stderr.contains("A01") && stderr.contains("on_stitch_fallback = \"fail\""), "{stderr}");
    let s_fail = summary(&failed);
    assert_eq!(s_fail["failed_on_stitch_fallback"], true, "{s_fail}");
    assert_eq!(s_fail["failing_wells"], serde_json::json!(["A01"]), "{s_fail}");
    assert_eq!(s_fail["stitch_fallbacks"], s_warn["stitch_fallbacks"]);
    // The finalize job itself failed, with the run's exit status.
    let (_, finalize) = job_ids(stdout);
    let job = slurm("scontrol", &["-o", "show", "job", &finalize]);
    assert!(job.contains("JobState=FAILED") && job.contains("ExitCode=1:0"), "{job}");
    // The same command again: nothing left to run, finalized on the spot, and still exit 1.
    let again = hcs(&args, None);
    assert_eq!(again.code, Some(1), "{}\n{}", again.stdout, again.stderr);
    assert!(again.stdout.contains("already complete") && !again.stdout.contains("submitted"), "{}", again.stdout);
    assert!(again.stderr.contains("on_stitch_fallback = \"fail\""), "{}", again.stderr);
    std::fs::remove_dir_all(&dir).ok();
}
