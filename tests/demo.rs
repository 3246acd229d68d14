//! `hcs demo` end to end on a small synthetic plate: the output plate, the overview, the text
//! summary and the plate summary CSV, whose numbers are checked against the synthetic ground
//! truth the demo itself does not see (tile jitter, true cell counts).

use std::path::PathBuf;
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-demo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_demo_writes_a_plate_an_overview_and_a_summary_that_match_the_ground_truth() {
    let out = out_dir("small");
    let status = Command::new(HCS)
        .args(["demo", "--tile", "256", "--wells", "A01,B02"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("hcs demo runs");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&status.stderr));

    // The OME-Zarr output plate with its metadata, the overview PNG and the summary.
    assert!(out.join("output/hcs_plate.json").is_file());
    let zarr: Vec<_> = std::fs::read_dir(out.join("output"))
        .expect("output")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ome.zarr"))
        .collect();
    assert!(!zarr.is_empty(), "no OME-Zarr store in the output plate");
    let png = std::fs::read(out.join("output/results/overview.png")).expect("overview.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    run_report(&out.join("output/results"));
    let text = std::fs::read_to_string(out.join("summary.txt")).expect("summary.txt");
    assert_eq!(text.trim_end(), stdout.lines().take(text.lines().count()).collect::<Vec<_>>().join("\n").trim_end());

    // One CSV row per well: stitched within a pixel of the true tile positions, and the counted
    // cells close to the true number (a threshold counter merges a few touching cells).
    let csv = std::fs::read_to_string(out.join("output/results/plate_summary.csv")).expect("plate summary");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("well,status,stitching_error_mean_px,stitching_error_max_px,cells,true_cells"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ["A01", "B02"]);
    for r in &rows {
        assert_eq!(r[1], "done");
        let (mean, max): (f64, f64) = (r[2].parse().expect("mean"), r[3].parse().expect("max"));
        assert!(mean <= max && max < 1.0, "stitching error {mean} / {max} px");
        let (cells, truth): (f64, f64) = (r[4].parse().expect("cells"), r[5].parse().expect("true cells"));
        assert!(truth > 0.0 && (cells - truth).abs() / truth < 0.25, "{cells} cells counted, {truth} true");
    }
    ngff_labels(&out.join("output"), &["A01", "B02"]);
    let _ = std::fs::remove_dir_all(&out);
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cell masks are NGFF labels of the output plate, read by zarr-python: every level of
/// `labels/segmentation_masks` has the image's y/x shape and an integer dtype, level 0 equals
/// the mask TIFF the materializer wrote (read by tifffile) and holds as many labels as cells
/// were counted, and every lower level holds only labels of the level above it.
fn ngff_labels(output: &std::path::Path, wells: &[&str]) {
    let status = Command::new("bash").arg(repo().join("scripts/setup-python.sh")).status().expect("setup-python.sh");
    assert!(status.success(), "scripts/setup-python.sh failed");
    let script = r#"
import json, sys, numpy as np, tifffile, zarr
out, wells = sys.argv[1], sys.argv[2:]
root = zarr.open_group(f"{out}/images.ome.zarr", mode="r")
for well in wells:
    row, col = well[0], str(int(well[1:]))
    image = root[f"{row}/{col}/0"]
    labels = image["labels"]
    assert list(labels.attrs["ome"]["labels"]) == ["segmentation_masks"], dict(labels.attrs)
    mask = labels["segmentation_masks"]
    meta = mask.attrs["ome"]
    assert meta["image-label"]["source"]["image"] == "../../", meta
    levels = [d["path"] for d in meta["multiscales"][0]["datasets"]]
    assert levels == [d["path"] for d in image.attrs["ome"]["multiscales"][0]["datasets"]]
    previous = None
    for lv in levels:
        a = mask[lv][...]
        assert a.dtype.kind == "u" and a.shape[-2:] == image[lv].shape[-2:], (lv, a.dtype, a.shape)
        if previous is not None:
            assert set(np.unique(a)) <= set(np.unique(previous)), f"level {lv} invents labels"
        previous = a
    tif = tifffile.imread(f"{out}/results/{well}_segmentation_masks_slice_000.tif")
    level0 = mask["0"][...].reshape(mask["0"].shape[-2:])
    h, w = tif.shape
    assert np.array_equal(level0[:h, :w], tif) and not level0[h:, :].any() and not level0[:, w:].any()
    cells = json.load(open(f"{out}/results/{well}_cell_counts.json"))["total_cells"]
    assert len(np.unique(level0)) - 1 == cells > 0, (len(np.unique(level0)) - 1, cells)
    print(well, cells, "labels")
"#;
    let check = Command::new(repo().join(".venv-py/bin/python"))
        .arg("-c")
        .arg(script)
        .arg(output)
        .args(wells)
        .output()
        .expect("python");
    assert!(
        check.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&check.stdout).lines().count(), wells.len());
}

/// The run report of the demo's two wells: `run.json` with each well's steps, QC and outputs;
/// `trace.tsv` with one row per well × step; `report.html` with the data and a thumbnail each.
fn run_report(results: &std::path::Path) {
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("run.json")).expect("run.json")).expect("json");
    assert_eq!(run["kind"], "demo");
    assert_eq!(run["pipeline"]["name"], "demo");
    assert_eq!(run["pipeline"]["hash"].as_str().map(str::len), Some(8));
    assert_eq!(run["counts"]["done"], 2);
    // The synthetic ImageXpress plate carries MetaMorph XML, as the instrument writes it.
    assert_eq!(run["plate"]["pixel_size_um"].as_f64(), Some(0.65));
    let steps = run["steps"].as_array().expect("steps").len();
    assert_eq!(steps, 8);
    let wells = run["wells"].as_array().expect("wells");
    assert_eq!(wells.iter().map(|w| w["well"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["A01", "B02"]);
    for w in wells {
        assert_eq!(w["status"], "done");
        assert_eq!(w["steps"].as_array().map(Vec::len), Some(steps));
        // 9 sites × 2 channels measured on the raw planes.
        assert_eq!(w["qc"]["sites"].as_array().map(Vec::len), Some(18), "{}", w["qc"]);
        assert!(w["qc"]["focus_min"].as_f64().is_some_and(|f| f > 0.0));
        // A 3 × 3 grid has 12 neighbour pairs; the demo's plate stitches without falling back.
        assert_eq!(w["qc"]["stitching"]["edges"], 12);
        assert_eq!(w["qc"]["stitching"]["model_placed"], 0);
        // No pipeline parameter names the overlap: the plate's stage positions give it (the
        // synthetic plate writes them into each TIFF's MetaMorph XML; 10 % here).
        let st = &w["qc"]["stitching"];
        assert!(
            st["overlap_source"].as_str().is_some_and(|s| s.starts_with("from the plate's stage positions")),
            "{st}"
        );
        for axis in 0..2 {
            assert!(st["overlap"][axis].as_f64().is_some_and(|o| (o - 0.1).abs() < 0.01), "{st}");
        }
        assert!(w["qc"]["cells"].as_u64().is_some_and(|c| c > 0));
        assert!(!w["outputs"].as_array().expect("outputs").is_empty());
        let first = &w["steps"][0];
        assert!(first["planes_in"].as_u64().is_some_and(|n| n == 54), "9 sites × 2 channels × 3 z: {first}");
        assert!(first["bytes_read"].as_u64().is_some_and(|b| b == 54 * 256 * 256 * 2), "{first}");
    }
    let tsv = std::fs::read_to_string(results.join("trace.tsv")).expect("trace.tsv");
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    assert_eq!(header[..4], ["well", "status", "step", "name"]);
    assert_eq!(lines.clone().count(), 2 * steps, "one row per well × step");
    assert!(lines.all(|l| l.split('\t').count() == header.len()));
    let html = std::fs::read_to_string(results.join("report.html")).expect("report.html");
    assert!(!html.contains("__HCS_REPORT_DATA__"), "the data is embedded");
    assert_eq!(html.matches("data:image/png;base64,").count(), 2, "a thumbnail per well");
    assert!(!html.contains("\"um_per_px\":null"), "thumbnails carry their scale (scale bars)");
}

#[test]
fn a_tile_too_small_for_the_demo_pipeline_says_which_file_and_what_to_change() {
    let out = out_dir("tiny");
    let run = Command::new(HCS)
        .args(["demo", "--tile", "16", "--wells", "A01"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    // The line numbers are the built-in file's: the message names it and the option to change.
    assert!(
        stderr
            .contains("the demo's built-in pipeline (examples/pipelines/demo.toml) does not fit a plate of --tile 16"),
        "{stderr}"
    );
    assert!(stderr.contains("selem_radius = 50") && stderr.contains("a larger --tile"), "{stderr}");
    let _ = std::fs::remove_dir_all(&out);
}
