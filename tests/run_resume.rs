//! `hcs run` end to end: a run killed with SIGKILL mid-plate and resumed with the same command
//! gives outputs byte-identical to an uninterrupted run.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn hcs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(HCS).args(args).output().expect("hcs runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    common::output_files(root)
}

fn done_wells(out: &Path) -> usize {
    let records = std::fs::read_dir(out.join(".hcs/wells")).into_iter().flatten().flatten();
    records.filter(|e| !e.file_name().to_string_lossy().starts_with('.')).count()
}

#[test]
fn a_killed_run_resumes_to_byte_identical_outputs() {
    let dir = std::env::temp_dir().join(format!("hcs-resume-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let plate = dir.join("plate");
    let wells = "A01,A02,A03,A04,B01,B02,B03,B04";
    let (ok, _, err) = hcs(&["synth", "--out", plate.to_str().expect("utf-8"), "--wells", wells, "--tile", "96"]);
    assert!(ok, "{err}");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let run_args = |out: &Path| {
        vec![
            "run".to_string(),
            pipeline.to_string(),
            "--plate".into(),
            plate.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--workers".into(),
            "1".into(),
        ]
    };

    let reference = dir.join("uninterrupted");
    let status = Command::new(HCS).args(run_args(&reference)).stderr(Stdio::null()).status().expect("runs");
    assert!(status.success());
    assert_eq!(done_wells(&reference), 8);

    let resumed = dir.join("resumed");
    let mut child =
        Command::new(HCS).args(run_args(&resumed)).stderr(Stdio::null()).stdout(Stdio::null()).spawn().expect("spawn");
    let start = Instant::now();
    while done_wells(&resumed) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("reaped");
    let finished = done_wells(&resumed);
    assert!((2..8).contains(&finished), "killed mid-plate: {finished} of 8 wells finished");

    let out = Command::new(HCS).args(run_args(&resumed)).output().expect("resume");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("{} done, {finished} skipped", common::wells(8 - finished))), "{stdout}");
    let (a, b) = (files(&reference), files(&resumed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "same files, no leftovers");
    for (path, bytes) in &a {
        assert!(bytes == &b[path], "{} differs", path.display());
    }
    assert!(a.keys().any(|p| p.ends_with("A01_positions.csv")) && a.len() > 8 * 4, "{} files", a.len());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_canonical_pipeline_runs_on_an_opera_phenix_plate_into_ome_zarr_and_the_output_is_a_plate() {
    let dir = std::env::temp_dir().join(format!("hcs-run-zarr-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let plate = dir.join("plate");
    let plate_s = plate.display().to_string();
    let synth = ["synth", "--out", &plate_s, "--format", "opera-phenix", "--wells", "A01,B02", "--tile", "64"];
    let (ok, _, err) = hcs(&synth);
    assert!(ok, "{err}");
    let out = dir.join("out");
    let out_s = out.display().to_string();
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, stdout, err) = hcs(&["run", pipeline, "--plate", &plate_s, "--out", &out_s, "--backend", "zarr"]);
    assert!(ok, "{stdout}{err}");
    assert!(stdout.contains("2 wells done, 0 skipped"), "{stdout}");
    assert!(out.join("images.ome.zarr/zarr.json").is_file());
    assert!(out.join("images.ome.zarr/A/1/zarr.json").is_file() && out.join("images.ome.zarr/B/2/zarr.json").is_file());
    for well in ["A01", "B02"] {
        let csv = std::fs::read_to_string(out.join(format!("results/{well}_positions.csv"))).expect("positions CSV");
        assert_eq!(csv.lines().count(), 1 + 9, "a header and 9 tiles: {csv}");
    }
    // The output plate is an input plate: 2 wells × 1 mosaic × 2 channels × 1 z.
    let again = dir.join("again");
    let blur = dir.join("blur.toml");
    std::fs::write(&blur, "[[steps]]\nname = \"b\"\nfunc = \"gaussian_filter\"\n").expect("pipeline");
    let (ok, stdout, err) =
        hcs(&["run", blur.to_str().expect("utf-8"), "--plate", &out_s, "--out", again.to_str().expect("utf-8")]);
    assert!(ok && stdout.contains("2 wells done"), "{stdout}{err}");
    assert_eq!(std::fs::read_dir(again.join("images")).expect("images").count(), 2 * 2);
    std::fs::remove_dir_all(&dir).ok();
}
