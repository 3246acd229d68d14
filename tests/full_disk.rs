//! A full disk fails the well, reports it, and leaves no planes behind (the output filesystem is
//! not left full). Needs a tmpfs mount (root, as in CI); where mounting is refused the test says
//! so on stderr and checks nothing else.

mod common;

use std::path::Path;
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Every regular file under `dir`, except the run's bookkeeping (`.hcs/`).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).map(|p| p.display().to_string()).unwrap_or_default();
            if rel.starts_with(".hcs") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(rel);
            }
        }
    }
    out
}

struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_well_that_fills_the_disk_fails_and_leaves_nothing_behind() {
    // Removed when the test ends (after the mount below is undone: declared first, dropped last).
    let scratch = tempfile::Builder::new().prefix("hcs-full-").tempdir().expect("scratch dir");
    let dir = scratch.path();
    let plate = dir.join("plate");
    let small = dir.join("small");
    std::fs::create_dir_all(&small).expect("mount point");
    let synth = Command::new(HCS)
        .args(["synth", "--out", s(&plate), "--wells", "A01", "--tile", "128"])
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    // 1 MiB: far less than one well's checkpoint (9 sites × 2 channels × 3 z × 128² u16 ≈ 1.7 MiB).
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs", s(&small)]).output();
    if !mounted.as_ref().is_ok_and(|m| m.status.success()) {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here ({}); the full-disk behaviour is tested where one can be mounted (CI)",
            mounted.map(|m| String::from_utf8_lossy(&m.stderr).trim().to_string()).unwrap_or_else(|e| e.to_string())
        );
        return;
    }
    let _unmount = Mounted(&small);
    let out = small.join("out");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let run = Command::new(HCS)
        .args(["run", pipeline, "--plate", s(&plate), "--out", s(&out), "--workers", "2"])
        .output()
        .expect("hcs runs");
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!run.status.success(), "a full disk fails the run: {text}");
    assert!(text.contains("A01 FAILED") && text.contains("No space left on device"), "{text}");
    // The run's report (it names the failed well) is the run's, not the well's.
    let left: Vec<_> = files_under(&out).into_iter().filter(|f| !common::RUN_REPORT.iter().any(|r| f == r)).collect();
    assert!(left.is_empty(), "the failed well left {left:?}");
}
