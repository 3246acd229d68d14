//! An OME-Zarr plate written by hcs passes ome-zarr-models validation (plus a completeness
//! check) and zarr-python reads back identical values, for NGFF 0.5 (Zarr v3, sharded + zstd)
//! and NGFF 0.4 (Zarr v2). The test sets up the Python venv itself (scripts/setup-python.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use hcs_vfs::omezarr::{NgffVersion, OmeZarrPlateWriter, PlateLayout, ZarrCodec};
use hcs_vfs::{Dtype, PlaneData};
use ndarray::Array2;
use sha2::{Digest, Sha256};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let status =
        Command::new("bash").arg(repo().join("scripts/setup-python.sh")).status().expect("run setup-python.sh");
    assert!(status.success(), "scripts/setup-python.sh failed");
    repo().join(".venv-py/bin/python")
}

fn plane(seed: u32, shape: (usize, usize)) -> PlaneData {
    PlaneData::U16(Array2::from_shape_fn(shape, |(y, x)| ((seed as usize * 7919 + y * 31 + x * 17) % 65536) as u16))
}

fn write_plate(root: &Path, version: NgffVersion, timepoints: u32, shape: (usize, usize)) -> Vec<(String, PlaneData)> {
    let _ = std::fs::remove_dir_all(root);
    let layout = PlateLayout {
        name: "python-check".into(),
        wells: vec![("A".into(), 1), ("C".into(), 12)],
        fields: 2,
        timepoints,
        channels: vec!["DAPI".into(), "FITC".into()],
        z_planes: 2,
        plane_shape: shape,
        dtype: Dtype::U16,
        pixel_size_um: Some(0.65),
        z_spacing_um: None,
        version,
        codec: ZarrCodec::Zstd(3),
        mosaic_canvas: None,
        origin: (0.0, 0.0),
    };
    let writer = OmeZarrPlateWriter::create(root, layout).expect("create");
    let mut expected = Vec::new();
    for (row, col) in [("A", 1u32), ("C", 12)] {
        let well = writer.open_well(row, col).expect("open");
        for f in 0..2 {
            for t in 0..timepoints {
                for c in 0..2 {
                    for z in 0..2 {
                        let p = plane(col * 1000 + f * 100 + t * 10 + c * 2 + z, shape);
                        well.write_plane(f, t, c, z, &p).expect("write");
                        expected.push((format!("{row}/{col}/{f}/{t}/{c}/{z}"), p));
                    }
                }
            }
        }
        well.finish().expect("finish");
    }
    writer.finalize().expect("finalize");
    expected
}

fn check(python: &Path, root: &Path, version: &str, expected: &[(String, PlaneData)]) {
    let out = Command::new(python)
        .arg(repo().join("scripts/check_omezarr.py"))
        .arg(root)
        .args(["--version", version])
        .output()
        .expect("run check_omezarr.py");
    assert!(out.status.success(), "validation failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["wells"], serde_json::json!(["A/1", "C/12"]));
    assert_eq!(report["planes"].as_object().map(|m| m.len()), Some(expected.len()));
    for (key, plane) in expected {
        let got = &report["planes"][key];
        assert_eq!(got["dtype"], "uint16", "{key}");
        let digest = format!("{:x}", Sha256::digest(plane.to_le_bytes()));
        assert_eq!(got["sha256"], serde_json::json!(digest), "{key}: zarr-python read different values");
    }
}

#[test]
fn hcs_plates_validate_and_read_back_identically_in_python() {
    let python = python();
    let base = std::env::temp_dir().join(format!("hcs-omezarr-py-{}", std::process::id()));
    // 0.5 with a t axis and a plane size that exercises inner chunking (1000 = 2 × 500 → 500² inner).
    let root = base.join("v05.ome.zarr");
    let expected = write_plate(&root, NgffVersion::V05, 2, (1000, 600));
    check(&python, &root, "0.5", &expected);
    let root = base.join("v04.ome.zarr");
    let expected = write_plate(&root, NgffVersion::V04, 1, (64, 48));
    check(&python, &root, "0.4", &expected);

    // The completeness check catches a listed but missing field (ome-zarr-models alone does not).
    std::fs::remove_dir_all(root.join("C/12/1")).expect("remove a field");
    let out = Command::new(&python).arg(repo().join("scripts/check_omezarr.py")).arg(&root).output().expect("run");
    assert!(!out.status.success(), "a missing field must fail validation");
    std::fs::remove_dir_all(&base).expect("cleanup");
}
