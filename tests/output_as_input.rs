//! An hcs output plate read as the next run's input: its metadata records no tile shape (its
//! planes may be mosaics of any size), which once made every plane "exceed the plate's mosaic
//! canvas None" in a warning about viewers refusing the plate.

mod common;

use std::path::Path;

fn run(pipeline: &Path, plate: &Path, out: &Path, backend: &str) -> String {
    common::run_ok(pipeline, plate, out, &["--backend", backend])
}

#[test]
fn an_hcs_output_runs_again_into_zarr_without_a_false_canvas_warning() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    common::small_plate(&plate, "A01,A02", 48);
    let pipeline = dir.path().join("stretch.toml");
    common::one_step_pipeline(&pipeline, "percentile_normalize", "");
    let first = dir.path().join("first");
    run(&pipeline, &plate, &first, "disk");
    let second = dir.path().join("second");
    let stderr = run(&pipeline, &first, &second, "zarr");
    assert!(!stderr.contains("mosaic canvas"), "{stderr}");
    assert!(!stderr.contains("WARN"), "nothing to warn about: {stderr}");
    // Both wells' fields, 48×48, in the store.
    let store = std::fs::read_dir(&second)
        .expect("output")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".ome.zarr"))
        .expect("an OME-Zarr store");
    for well in ["A/1/0", "A/2/0"] {
        let meta = std::fs::read_to_string(store.join(well).join("0/zarr.json")).expect("array metadata");
        let json: serde_json::Value = serde_json::from_str(&meta).expect("json");
        let shape: Vec<u64> = serde_json::from_value(json["shape"].clone()).expect("shape");
        assert_eq!(shape[shape.len() - 2..], [48, 48], "{well}: {shape:?}");
    }
}
