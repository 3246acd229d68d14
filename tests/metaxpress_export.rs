//! A plate in MetaXpress export form (plate-name prefix, a GUID straight after the wavelength,
//! `_thumb` thumbnails beside the images, MetaMorph XML in every TIFF) runs through the shipped
//! canonical pipeline; tifffile (not our reader) finds the pixel size and the `.HTD`'s channel
//! names in every OME-TIFF written, and the input plate is left byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    let status =
        Command::new("bash").arg(repo().join("scripts/setup-python.sh")).status().expect("run setup-python.sh");
    assert!(status.success(), "scripts/setup-python.sh failed");
    repo().join(".venv-py/bin/python")
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("inside").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn a_metaxpress_export_runs_and_its_calibration_and_channel_names_reach_the_ome_tiffs() {
    let dir = tempfile::tempdir().expect("tmp");
    let plate = dir.path().join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "-q", "--wells", "B02,C03", "--tile", "96", "--grid", "2", "2", "--z", "2", "--out"])
        .arg(&plate)
        .output()
        .expect("synth");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    // As MetaXpress exports: `<plate>_<well>_s<N>_w<N><GUID>.tif` and a thumbnail beside each.
    let guid = "7A3F9C11-0B2D-4E5F-8A6B-1C2D3E4F5A6B";
    let mut renamed = 0;
    for (rel, _) in tree(&plate) {
        let name = rel.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        if let Some(stem) = name.strip_suffix(".tif") {
            let path = plate.join(&rel);
            std::fs::rename(&path, path.with_file_name(format!("Screen1_{stem}{guid}.tif"))).expect("rename");
            std::fs::write(path.with_file_name(format!("Screen1_{stem}_thumb{guid}.tif")), b"thumbnail")
                .expect("thumbnail");
            renamed += 1;
        }
    }
    assert_eq!(renamed, 2 * 4 * 2 * 2, "wells × sites × z × channels");
    let before = tree(&plate);

    let out = dir.path().join("out");
    let run = Command::new(HCS)
        .arg("run")
        .arg(repo().join("examples/pipelines/canonical.toml"))
        .arg("--plate")
        .arg(&plate)
        .arg("--out")
        .arg(&out)
        .args(["--backend", "disk", "-q"])
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(tree(&plate), before, "the input plate is not changed");

    let check = Command::new(python())
        .arg(repo().join("scripts/check_ome_tiff.py"))
        .arg(out.join("images"))
        .args(["--expect-pixel-size-um", "0.65", "--expect-channels", "DAPI,FITC"])
        .output()
        .expect("check_ome_tiff.py");
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&check.stdout).expect("json");
    // The final mosaics: 2 wells × 2 channels (z projected).
    assert_eq!(summary["files"], 4, "{summary}");
    assert_eq!(summary["channels"]["DAPI"], 2, "{summary}");
    // Every plane says where it starts on the plate's pixel grid, in µm (the mosaics at 0, 0).
    assert_eq!(summary["positions"], serde_json::json!([[0.0, 0.0, "µm"]]), "{summary}");
}
