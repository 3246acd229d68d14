//! A time-lapse plate stitched per timepoint: the tile positions step keeps one result per
//! timepoint (`merge_outputs`), and the assembly of each timepoint takes its own. Checked
//! against the synthetic plate's ground-truth tile positions and the run report.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-timelapse-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// `site → (x, y)` relative to site 1, from a `site,row,col,x,y` table.
fn relative_positions(rows: impl Iterator<Item = (u32, f64, f64)>) -> Vec<(u32, f64, f64)> {
    let rows: Vec<_> = rows.collect();
    let (_, x0, y0) = rows.iter().find(|r| r.0 == 1).copied().expect("site 1");
    rows.into_iter().map(|(s, x, y)| (s, x - x0, y - y0)).collect()
}

fn measured(csv: &Path) -> Vec<(u32, f64, f64)> {
    let text = std::fs::read_to_string(csv).expect("positions table");
    relative_positions(text.lines().skip(1).map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (f[0].parse().expect("site"), f[3].parse().expect("x"), f[4].parse().expect("y"))
    }))
}

fn truth(plate: &Path) -> Vec<(u32, f64, f64)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plate.join("hcs_ground_truth.json")).expect("truth")).expect("json");
    let sites = v["positions"][0][1].as_array().expect("A01's sites").clone();
    relative_positions(
        sites.iter().map(|s| {
            (s["site"].as_u64().expect("site") as u32, s["x"].as_f64().expect("x"), s["y"].as_f64().expect("y"))
        }),
    )
}

#[test]
fn each_timepoint_is_stitched_from_its_own_tile_positions() {
    let dir = scratch("positions");
    let plate = dir.join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "-q", "--wells", "A01", "--tile", "256", "--grid", "2", "2"])
        .args(["--z", "1", "--channels", "1", "--timepoints", "2", "--out"])
        .arg(&plate)
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));

    // Without `merge_outputs` the compiler refuses, and says what to add.
    let steps = "[[steps]]\nname = \"tile positions\"\nfunc = \"ashlar_compute_tile_positions\"\n{merge}\n[[steps]]\nname = \"assemble\"\nfunc = \"assemble_stack\"\n";
    let refused = dir.join("refused.toml");
    std::fs::write(&refused, steps.replace("{merge}", "")).expect("pipeline");
    let o = Command::new(HCS).arg("check").arg(&refused).arg("--plate").arg(&plate).output().expect("check runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("2 groups per well (2 timepoint values)"), "{stderr}");
    assert!(stderr.contains("Add `merge_outputs = [\"positions\"]`"), "{stderr}");

    // With it the run stitches each timepoint, each from its own positions.
    let pipeline = dir.join("timelapse.toml");
    std::fs::write(&pipeline, steps.replace("{merge}", "merge_outputs = [\"positions\"]")).expect("pipeline");
    let out = dir.join("out");
    common::run_ok(&pipeline, &plate, &out, &[]);
    let expected = truth(&plate);
    for t in 1..=2 {
        let got = measured(&out.join(format!("results/A01_t{t}_positions.csv")));
        assert_eq!(got.len(), 4, "timepoint {t}: 4 sites");
        for ((site, x, y), (_, tx, ty)) in got.iter().zip(&expected) {
            assert!(
                (x - tx).abs() < 1.5 && (y - ty).abs() < 1.5,
                "timepoint {t} site {site}: ({x}, {y}) against ({tx}, {ty})"
            );
        }
        assert!(out.join(format!("images/A01_s001_w1_z001_t{t:03}.tif")).is_file(), "timepoint {t}'s mosaic");
    }
    assert!(!out.join("images/A01_s002_w1_z001_t001.tif").exists(), "one mosaic per timepoint, not the tiles");

    // The report counts both timepoints' edges: 4 neighbour pairs in a 2 × 2 grid, each.
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/run.json")).expect("run.json")).expect("json");
    let stitching = &run["wells"][0]["qc"]["stitching"];
    assert_eq!(stitching["edges"], 8, "{stitching}");
    assert_eq!(stitching["step"], 1, "{stitching}");

    // Into an OME-Zarr plate: the timepoints' mosaics differ by a pixel or so, and each is
    // padded to the plate's mosaic canvas (2 × 256 tiles side by side) in one array.
    let zarr = dir.join("zarr");
    common::run_ok(&pipeline, &plate, &zarr, &["--backend", "zarr"]);
    let image: serde_json::Value =
        serde_json::from_slice(&std::fs::read(zarr.join("images.ome.zarr/A/1/0/0/zarr.json")).expect("level 0"))
            .expect("json");
    assert_eq!(image["shape"], serde_json::json!([2, 1, 1, 512, 512]), "t, c, z, y, x");
    std::fs::remove_dir_all(&dir).ok();
}
