//! `hcs run` takes an exclusive lock on its output: a second run on the same output is refused at
//! once, naming the holder, and touches nothing; the lock file of a run that died is taken over.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hcs::exec::lock::{LockHolder, OutputLock, lock_path, read_holder};

const HCS: &str = env!("CARGO_BIN_EXE_hcs");
const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");

fn hcs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(HCS).args(args).output().expect("hcs runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn synth(plate: &Path) {
    let (code, _, err) =
        hcs(&["synth", "--out", &plate.display().to_string(), "--wells", "A01,A02,B01,B02", "--tile", "128"]);
    assert_eq!(code, 0, "{err}");
}

/// Every file under `root`, `.hcs/` included, with its bytes.
fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("inside").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn run(plate: &Path, out: &Path, backend: &str) -> (i32, String, String) {
    let (plate, out) = (plate.display().to_string(), out.display().to_string());
    hcs(&["run", PIPELINE, "--plate", &plate, "--out", &out, "--backend", backend, "--workers", "1"])
}

fn a_second_run_is_refused_while_the_output_is_locked(backend: &str) {
    let dir = scratch(&format!("lock-{backend}"));
    let plate = dir.join("plate");
    synth(&plate);
    let out = dir.join("out");
    let (code, stdout, err) = run(&plate, &out, backend);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("4 wells done"), "{stdout}");
    let complete = all_files(&out);

    // This test process holds the lock, as a running `hcs run` would.
    let lock = OutputLock::acquire(&out, "hcs run (the test holding the lock)").expect("the lock is free");
    let before = all_files(&out);
    let (code, stdout, err) = run(&plate, &out, backend);
    assert_ne!(code, 0, "a second run on a locked output must fail: {stdout}{err}");
    assert!(err.contains(&format!("pid {}", std::process::id())), "the message names the holder's pid: {err}");
    assert!(err.contains("in use by another hcs run") && err.contains("Wait"), "{err}");
    assert!(!stdout.contains("wells done"), "no well ran: {stdout}");
    assert!(all_files(&out) == before, "the refused run touched the output");
    drop(lock);

    // Released: the same command runs again (every well verified and skipped), output unchanged.
    let (code, stdout, err) = run(&plate, &out, backend);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("0 wells done, 4 skipped"), "{stdout}");
    assert!(!err.contains("taking over"), "a released lock is not a dead run's: {err}");
    assert_eq!(common::output_files(&out), {
        let mut c = complete;
        c.retain(|p, _| {
            !p.starts_with(".hcs")
                && p != Path::new("summary.json")
                && !common::RUN_REPORT.iter().any(|r| p == Path::new(r))
        });
        c
    });
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_second_run_on_a_locked_disk_output_is_refused_and_names_the_holder() {
    a_second_run_is_refused_while_the_output_is_locked("disk");
}

#[test]
fn a_second_run_on_a_locked_zarr_output_is_refused_and_names_the_holder() {
    a_second_run_is_refused_while_the_output_is_locked("zarr");
}

#[test]
fn the_lock_file_of_a_dead_run_is_taken_over() {
    let dir = scratch("lock-dead");
    let plate = dir.join("plate");
    synth(&plate);
    let out = dir.join("out");
    // A process that has ended: its pid names no live process (pids are not reused this soon).
    let mut child = Command::new("true").spawn().expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("reaped");
    let host = {
        let lock = OutputLock::acquire(&out, "probe").expect("free");
        lock.holder().host.clone()
    };
    let dead = LockHolder { pid: dead_pid, host, started: 1, command: "hcs run (killed)".into(), submission: None };
    std::fs::write(lock_path(&out), serde_json::to_vec(&dead).expect("json")).expect("write the lock file");

    let (code, stdout, err) = run(&plate, &out, "disk");
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(err.contains(&format!("taking over the lock of a dead run (pid {dead_pid})")), "{err}");
    assert!(stdout.contains("4 wells done"), "{stdout}");
    assert_eq!(read_holder(&out), None, "the run released its lock");
    std::fs::remove_dir_all(&dir).ok();
}
