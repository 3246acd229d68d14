//! A plate another tool wrote — NGFF 0.4 and 0.5 plates from ome-zarr-py's writer
//! (`tests/fixtures/foreign`, made by `scripts/make_foreign_plates.py`), and a plate the peer
//! OpenHCS wrote (`tests/fixtures/openhcs`, made by `scripts/make_openhcs_output.sh`) — runs
//! through a pipeline end to end: its wells, channel names and pixel size reach the output
//! plate, and the input is left byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

const PIPELINE: &str = r#"
name = "foreign"

[[steps]]
name = "normalize"
func = { function = "stack_percentile_normalize", params = { low_percentile = 1.0, high_percentile = 99.0 } }

[[steps]]
name = "z max"
variable_components = ["z_index"]
func = { function = "create_projection", params = { method = "max_projection" } }
"#;

const NORMALIZE: &str = r#"
name = "normalize"

[[steps]]
name = "normalize"
func = { function = "stack_percentile_normalize", params = { low_percentile = 1.0, high_percentile = 99.0 } }
"#;

fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}

/// `hcs run` of `dir/foreign.toml` over `plate` into `out`, with `more` arguments.
fn run_foreign(dir: &Path, plate: &Path, out: &Path, more: &[&str]) -> std::process::Output {
    Command::new(HCS)
        .arg("run")
        .arg(dir.join("foreign.toml"))
        .arg("--plate")
        .arg(plate)
        .arg("--out")
        .arg(out)
        .args(more)
        .output()
        .expect("run")
}

#[test]
fn ome_zarr_py_plates_of_both_versions_run_and_keep_their_names_and_scale() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("foreign.toml"), PIPELINE).expect("pipeline");
    for fixture in ["plate_v0.4.ome.zarr", "plate_v0.5.ome.zarr"] {
        let plate = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/foreign").join(fixture);
        let before = tree(&plate);
        let out = dir.path().join(fixture);
        let run = run_foreign(dir.path(), &plate, &out, &["--backend", "zarr", "-q"]);
        assert!(run.status.success(), "{fixture}: {}", String::from_utf8_lossy(&run.stderr));
        assert_eq!(tree(&plate), before, "{fixture}: the input plate is not changed");
        let meta = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&std::fs::read(out.join("images.ome.zarr").join(p)).expect(p)).expect("json")
        };
        let wells: Vec<String> = meta("zarr.json")["attributes"]["ome"]["plate"]["wells"]
            .as_array()
            .expect("wells")
            .iter()
            .filter_map(|w| w["path"].as_str().map(String::from))
            .collect();
        assert_eq!(wells, ["A/1", "B/3"], "{fixture}");
        let image = meta("A/1/0/zarr.json");
        let ome = &image["attributes"]["ome"];
        let labels: Vec<&str> =
            ome["omero"]["channels"].as_array().expect("channels").iter().filter_map(|c| c["label"].as_str()).collect();
        assert_eq!(labels, ["DAPI", "GFP"], "{fixture}");
        let scale = &ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"];
        assert_eq!(scale[3].as_f64(), Some(0.65), "{fixture}: {scale}");
        assert_eq!(scale[1].as_f64(), Some(2.0), "{fixture}: the z spacing too: {scale}");
        assert_eq!(ome["multiscales"][0]["axes"][1]["unit"], "micrometer", "{fixture}");
    }
}

/// The peer's own output plate (its canonical pipeline's final mosaics, `openhcs_metadata.json`)
/// runs through hcs: both wells, the peer's channel name, and the pixel size the peer did not
/// know reported as unknown, not written as 1 µm. Its twins that OpenHCS stored in Zarr (with
/// zlib, its default, and with each of its other compressors: LZ4, Zstd, Blosc, none) run to the
/// same output images and measurements, byte for byte.
#[test]
fn a_plate_openhcs_wrote_runs_and_its_unknown_pixel_size_is_said() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("foreign.toml"), PIPELINE).expect("pipeline");
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openhcs");
    let mut outputs = Vec::new();
    let twins = [
        ("plate_ix_openhcs", "tiff"),
        ("plate_ix_openhcs_zarr", "zarr"),
        ("plate_ix_openhcs_zarr_lz4", "zarr-lz4"),
        ("plate_ix_openhcs_zarr_zstd", "zarr-zstd"),
        ("plate_ix_openhcs_zarr_blosc", "zarr-blosc"),
        ("plate_ix_openhcs_zarr_none", "zarr-none"),
    ];
    for (fixture, stored) in twins {
        let out = dir.path().join(stored).join("out");
        openhcs_plate_runs(dir.path(), &fixtures.join(fixture), &out);
        // Images and measurements: the run's records name the plates' planes, which differ.
        let measured = |p: &PathBuf| p.extension().is_some_and(|e| e == "tif" || e == "csv");
        let files: BTreeMap<PathBuf, Vec<u8>> = tree(&out)
            .into_iter()
            .filter(|(p, _)| measured(p))
            .map(|(p, bytes)| (p.strip_prefix(&out).expect("inside").to_path_buf(), bytes))
            .collect();
        assert!(files.keys().any(|p| p.extension().is_some_and(|e| e == "tif")), "{stored}: {:?}", files.keys());
        outputs.push(files);
    }
    for (twin, (fixture, _)) in outputs[1..].iter().zip(&twins[1..]) {
        assert_eq!(outputs[0].keys().collect::<Vec<_>>(), twin.keys().collect::<Vec<_>>(), "{fixture}");
        for (path, bytes) in &outputs[0] {
            assert!(twin[path] == *bytes, "{fixture}: {}: the Zarr twin's run wrote other bytes", path.display());
        }
    }
}

/// `hcs run` of the pipeline over the OpenHCS plate `plate` into `out`, and what it must say
/// and write.
fn openhcs_plate_runs(dir: &Path, plate: &Path, out: &Path) {
    let before = tree(plate);
    let run = run_foreign(dir, plate, out, &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(tree(plate), before, "the input plate is not changed");
    assert!(stderr.contains("pixel_size 1.0") && stderr.contains("taken as unknown"), "{stderr}");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("hcs_plate.json")).expect("hcs_plate.json")).expect("JSON");
    assert_eq!(written["source_format"], "openhcs");
    assert_eq!(written["metadata"]["pixel_size_um"], serde_json::Value::Null);
    let peer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plate.join("openhcs_metadata.json")).expect("metadata")).expect("JSON");
    let channel = &written["metadata"]["channels"][0]["name"];
    assert_eq!(channel, &peer["subdirectories"]["images"]["channels"]["1"], "the peer's channel name");
    let main = written["subdirs"].as_array().expect("subdirs").iter().find(|s| s["main"] == true).expect("main");
    let wells: std::collections::BTreeSet<String> = main["planes"]
        .as_array()
        .expect("planes")
        .iter()
        .filter_map(|p| p[0]["well"].as_str().map(String::from))
        .collect();
    assert_eq!(wells.into_iter().collect::<Vec<_>>(), ["A01", "B02"]);
}

/// hcs's output is an OpenHCS plate too: beside `hcs_plate.json` it writes the
/// `openhcs_metadata.json` OpenHCS needs to open a folder it did not write (OpenHCS itself
/// opening it is `scripts/check_openhcs_reads.py`, run by CI). With only that file, hcs reads
/// the output back with the same planes; an OME-Zarr output gets none, and `-v` says why.
#[test]
fn the_output_plate_carries_openhcs_metadata_that_names_its_images() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("foreign.toml"), PIPELINE).expect("pipeline");
    let plate = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openhcs/plate_ix_openhcs");
    let out = dir.path().join("out");
    let run = run_foreign(dir.path(), &plate, &out, &["--backend", "disk", "-q"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("openhcs_metadata.json")).expect("written")).expect("JSON");
    let subdirs = written["subdirectories"].as_object().expect("subdirectories");
    assert_eq!(subdirs.keys().collect::<Vec<_>>(), ["images"], "nested checkpoint folders are not listed");
    let images = &subdirs["images"];
    assert_eq!(images["main"], true);
    assert_eq!(images["available_backends"], serde_json::json!({ "disk": true }));
    assert_eq!(images["source_filename_parser_name"], "ImageXpressFilenameParser");
    let mut on_disk: Vec<String> = std::fs::read_dir(out.join("images"))
        .expect("images")
        .flatten()
        .map(|e| format!("images/{}", e.file_name().to_string_lossy()))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> =
        images["image_files"].as_array().expect("list").iter().filter_map(|f| f.as_str().map(String::from)).collect();
    listed.sort();
    assert_eq!(listed, on_disk);
    let peer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plate.join("openhcs_metadata.json")).expect("peer's")).expect("JSON");
    assert_eq!(images["channels"], peer["subdirectories"]["images"]["channels"], "the channel names go on");
    assert_eq!(images["z_indexes"], serde_json::json!({ "1": null }), "the z max leaves one plane");
    assert_eq!(images["pixel_size"], 1.0, "unknown, as OpenHCS writes it");

    // Read through that file alone, the output is the same plate to hcs.
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(copy.join("images")).expect("copy");
    std::fs::copy(out.join("openhcs_metadata.json"), copy.join("openhcs_metadata.json")).expect("copy");
    for f in &on_disk {
        std::fs::copy(out.join(f), copy.join(f)).expect("copy");
    }
    std::fs::write(dir.path().join("normalize.toml"), NORMALIZE).expect("pipeline");
    let again = dir.path().join("again");
    let run = Command::new(HCS)
        .arg("run")
        .arg(dir.path().join("normalize.toml"))
        .arg("--plate")
        .arg(&copy)
        .arg("--out")
        .arg(&again)
        .args(["--backend", "disk"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let reread: serde_json::Value =
        serde_json::from_slice(&std::fs::read(again.join("hcs_plate.json")).expect("hcs_plate.json")).expect("JSON");
    assert_eq!(reread["source_format"], "openhcs");
    let main = reread["subdirs"].as_array().expect("subdirs").iter().find(|s| s["main"] == true).expect("main");
    assert_eq!(main["planes"].as_array().map(Vec::len), Some(on_disk.len()), "every plane read");
    let channel = &reread["metadata"]["channels"][0]["name"];
    assert_eq!(channel, &peer["subdirectories"]["images"]["channels"]["1"]);

    // An OME-Zarr output gets none (OpenHCS reads only its own Zarr layout), and is told so.
    let zarr = dir.path().join("zarr");
    let run = run_foreign(dir.path(), &plate, &zarr, &["--backend", "zarr", "-v"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!zarr.join("openhcs_metadata.json").exists());
    assert!(stderr.contains("openhcs_metadata.json not written") && stderr.contains("OME-Zarr"), "{stderr}");
}
