//! A plate of one site per well through the canonical pipeline: the "mosaic" of one tile is the
//! tile — the same size, no zero row or column — and a tile with no neighbour is not flagged
//! for an overlap it cannot have.

mod common;

use std::process::Command;

#[test]
fn one_tile_is_its_own_mosaic_and_no_overlap_is_flagged() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    let synth = Command::new(env!("CARGO_BIN_EXE_hcs"))
        .args(["synth", "-q", "--wells", "B03", "--grid", "1", "1", "--tile", "100", "--out"])
        .arg(&plate)
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    let out = dir.path().join("out");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    common::run_ok(std::path::Path::new(pipeline), &plate, &out, &[]);
    let mut mosaics = 0;
    for entry in std::fs::read_dir(out.join("images")).expect("images") {
        let path = entry.expect("entry").path();
        let pages = hcs::vfs::tiff::read_tiff(&path, hcs::vfs::tiff::TiffLimits::default()).expect("tiff");
        assert_eq!(pages[0].dim(), (100, 100), "{}: the tile's size", path.display());
        mosaics += 1;
    }
    assert_eq!(mosaics, 2, "one per channel");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/run.json")).expect("run.json")).expect("json");
    let flags = &run["wells"][0]["flags"];
    assert!(
        flags.as_array().expect("flags").iter().all(|f| !f.as_str().unwrap_or_default().contains("overlap")),
        "{flags}"
    );
}
