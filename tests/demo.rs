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
    let png = std::fs::read(out.join("overview.png")).expect("overview.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
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
    let _ = std::fs::remove_dir_all(&out);
}
