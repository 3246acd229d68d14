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

/// Wells listed by the output plate's metadata: `hcs_plate.json`'s planes (by well) and, for an
/// OME-Zarr output, its NGFF plate's wells.
fn listed_wells(out: &Path) -> (Vec<String>, Vec<String>) {
    let read = |p: PathBuf| -> serde_json::Value {
        std::fs::read(&p).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    };
    let plate = read(out.join("hcs_plate.json"));
    let mut wells: Vec<String> = plate["subdirs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["planes"].as_array().into_iter().flatten())
        .map(|p| p[0]["well"].as_str().unwrap_or_default().to_string())
        .collect();
    wells.sort();
    wells.dedup();
    let zarr = read(out.join("images.ome.zarr/zarr.json"));
    let ngff = zarr["attributes"]["ome"]["plate"]["wells"].as_array().into_iter().flatten();
    (wells, ngff.map(|w| w["path"].as_str().unwrap_or_default().to_string()).collect())
}

/// Rerunning some wells (`--wells`) into an output that holds all of them neither forgets the
/// others in the output plate's metadata nor redoes the complete ones; a well redone that fails
/// leaves no plane of its earlier run listed (its old record withdrawn), so the output still
/// opens as a plate of the wells that are complete; a complete well whose input images changed
/// since is run again, and the run says why.
#[test]
fn reruns_of_some_wells_keep_the_others_listed_and_a_failed_redo_lists_none_of_its_old_planes() {
    let dir = tempfile::Builder::new().prefix("hcs-subset-").tempdir().expect("tmp");
    let plate = dir.path().join("plate");
    let plate_s = plate.display().to_string();
    let synth = ["synth", "--out", &plate_s, "--wells", "A01,B02,C03,D04", "--grid", "2", "2", "--tile", "64"];
    let (ok, _, err) = hcs(&synth);
    assert!(ok, "{err}");
    let zmax = dir.path().join("zmax.toml");
    std::fs::write(
        &zmax,
        "[[steps]]\nname = \"z max\"\nvariable_components = [\"z_index\"]\nfunc = { function = \"create_projection\", params = { method = \"max_projection\" } }\n",
    )
    .expect("pipeline");
    let run = |out: &Path, extra: &[&str]| {
        let mut args =
            vec!["run", zmax.to_str().expect("utf-8"), "--plate", &plate_s, "--out", out.to_str().expect("utf-8")];
        args.extend_from_slice(extra);
        hcs(&args)
    };
    let all: Vec<String> = ["A01", "B02", "C03", "D04"].map(String::from).to_vec();

    for backend in ["disk", "zarr"] {
        let out = dir.path().join(format!("out-{backend}"));
        let (ok, stdout, err) = run(&out, &["--backend", backend]);
        assert!(ok && stdout.contains("4 wells done"), "{stdout}{err}");
        let before = listed_wells(&out);
        let metadata = std::fs::read(out.join("hcs_plate.json")).expect("hcs_plate.json");
        let (ok, stdout, err) = run(&out, &["--backend", backend, "--wells", "C03"]);
        assert!(
            ok && stdout.contains("0 wells done, 1 skipped"),
            "{backend}: C03 is complete, not redone: {stdout}{err}"
        );
        assert_eq!(listed_wells(&out), before, "{backend}: the other wells are still listed");
        assert_eq!(before.0, all, "{backend}");
        if backend == "zarr" {
            assert_eq!(before.1, ["A/1", "B/2", "C/3", "D/4"], "the NGFF plate lists every complete well");
        }
        assert_eq!(std::fs::read(out.join("hcs_plate.json")).expect("hcs_plate.json"), metadata, "{backend}");
    }

    // C03 redone (one of its outputs lost) on a plate where one of its inputs is now cut short.
    let out = dir.path().join("out-disk");
    std::fs::remove_file(out.join("images/C03_s001_w1_z001_t001.tif")).expect("lose an output");
    let input = plate.join("TimePoint_1/ZStep_2/C03_s3_w1.tif");
    let bytes = std::fs::read(&input).expect("input");
    std::fs::write(&input, &bytes[..3000]).expect("truncate");
    let (ok, stdout, err) = run(&out, &[]);
    assert!(!ok && stdout.contains("C03 FAILED") && stdout.contains("C03_s3_w1.tif"), "{stdout}{err}");
    assert!(!out.join(".hcs/wells/C03.json").exists(), "C03's old record is withdrawn");
    assert_eq!(listed_wells(&out).0, ["A01", "B02", "D04"], "no plane of C03 is listed");
    let openhcs = std::fs::read_to_string(out.join("openhcs_metadata.json")).expect("openhcs_metadata.json");
    assert!(openhcs.contains("A01_s") && !openhcs.contains("C03_s"), "{openhcs}");
    // The output opens as the plate of its three complete wells.
    let again = dir.path().join("again");
    let (ok, stdout, err) = hcs(&[
        "run",
        zmax.to_str().expect("utf-8"),
        "--plate",
        out.to_str().expect("utf-8"),
        "--out",
        again.to_str().expect("utf-8"),
    ]);
    assert!(ok && stdout.contains("3 wells done"), "{stdout}{err}");

    // C03's input restored, and one of B02's replaced in place (a re-acquired image): both are
    // run again, B02 saying why; A01 and D04 are not.
    std::fs::write(&input, &bytes).expect("restore");
    let b02 = plate.join("TimePoint_1/ZStep_1/B02_s1_w2.tif");
    let old = std::fs::metadata(&b02).and_then(|m| m.modified()).expect("mtime");
    let image = std::fs::read(&b02).expect("input");
    while std::fs::metadata(&b02).and_then(|m| m.modified()).expect("mtime") == old {
        std::thread::sleep(Duration::from_millis(10));
        std::fs::write(&b02, &image).expect("rewrite");
    }
    let (ok, stdout, err) = run(&out, &[]);
    assert!(ok && stdout.contains("2 wells done, 2 skipped"), "{stdout}{err}");
    assert!(
        stdout.contains(
            "B02: its input images changed (size or time) since its outputs were written, so it was run again"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("C03: its input"), "C03 was not complete: {stdout}");
    assert_eq!(listed_wells(&out).0, all);
    let (ok, stdout, err) = run(&out, &[]);
    assert!(ok && stdout.contains("0 wells done, 4 skipped"), "{stdout}{err}");
    // The same plate spelled another way (through `..`) is the same inputs: nothing is redone.
    let spelled = plate.join("TimePoint_1").join("..").display().to_string();
    let (ok, stdout, err) =
        hcs(&["run", zmax.to_str().expect("utf-8"), "--plate", &spelled, "--out", out.to_str().expect("utf-8")]);
    assert!(ok && stdout.contains("0 wells done, 4 skipped"), "{stdout}{err}");
}
