//! SIGINT during `hcs run`: wells in flight finish, no more start, the summary counts the
//! interrupted wells and the process exits 130; re-running the same command completes the plate
//! with outputs identical to an uninterrupted run.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HCS: &str = env!("CARGO_BIN_EXE_hcs");
const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
const WELLS: &str = "A01,A02,A03,A04,B01,B02,B03,B04";

fn records(out: &Path) -> usize {
    let records = std::fs::read_dir(out.join(".hcs/wells")).into_iter().flatten().flatten();
    records.filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()
}

fn run_command(plate: &Path, out: &Path) -> Command {
    let mut command = Command::new(HCS);
    command.args(["run", PIPELINE, "--plate"]).arg(plate).arg("--out").arg(out).args(["--workers", "1"]);
    command
}

#[test]
fn sigint_finishes_the_wells_in_flight_prints_the_summary_exits_130_and_a_rerun_completes_the_plate() {
    let dir = std::env::temp_dir().join(format!("hcs-graceful-stop-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let plate = dir.join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "--out"])
        .arg(&plate)
        .args(["--wells", WELLS, "--tile", "128"])
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));

    let reference = dir.join("uninterrupted");
    let clean = run_command(&plate, &reference).stderr(Stdio::null()).output().expect("runs");
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stdout));

    let out = dir.join("interrupted");
    let child = run_command(&plate, &out).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // Signal once the first well's record exists: the run is past preparing and mid-plate.
    let start = Instant::now();
    while records(&out) == 0 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success(), "the run was still going when signalled");
    let interrupted = child.wait_with_output().expect("reaped");
    let (stdout, stderr) = (String::from_utf8_lossy(&interrupted.stdout), String::from_utf8_lossy(&interrupted.stderr));
    assert_eq!(interrupted.status.code(), Some(130), "{stdout}{stderr}");
    assert!(stderr.contains("interrupt: finishing") && stderr.contains("starting no more"), "{stderr}");
    let finished = records(&out);
    assert!((1..8).contains(&finished), "{finished} of 8 wells finished: {stdout}");
    assert!(
        stdout.contains(&format!(
            "{} done, 0 skipped (already complete), {} interrupted",
            common::wells(finished),
            8 - finished
        )),
        "{stdout}"
    );

    let resumed = run_command(&plate, &out).output().expect("resume");
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{stdout}{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(stdout.contains(&format!("{} done, {finished} skipped", common::wells(8 - finished))), "{stdout}");
    assert!(!String::from_utf8_lossy(&resumed.stderr).contains("taking over"), "the interrupted run released its lock");
    let (a, b) = (common::output_files(&reference), common::output_files(&out));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same files, no leftovers");
    for (path, bytes) in &a {
        assert!(bytes == &b[path], "{} differs", path.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}
