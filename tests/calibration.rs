//! Outputs carry the pixel size they really have: a binning step (`#[pixel_scale(bin_size)]`)
//! doubles it in both the OME-Zarr scale and the OME-TIFF calibration; a step that reads the
//! pipeline's input again is back at the plate's.

use std::path::Path;
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

const PIPELINE: &str = r#"
name = "binned"

[[steps]]
name = "bin"
materialize = true
func = { function = "spatial_bin_2d", params = { bin_size = 2 } }

[[steps]]
name = "bin again"
func = { function = "spatial_bin_2d", params = { bin_size = 3 } }
"#;

fn run(dir: &Path, backend: &str) -> std::path::PathBuf {
    let plate = dir.join("plate");
    if !plate.exists() {
        let synth = Command::new(HCS)
            .args(["synth", "-q", "--wells", "A01", "--tile", "96", "--grid", "1", "2", "--z", "1", "--out"])
            .arg(&plate)
            .output()
            .expect("synth");
        assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
        std::fs::write(dir.join("binned.toml"), PIPELINE).expect("pipeline");
    }
    let out = dir.join(format!("out-{backend}"));
    let run = Command::new(HCS)
        .arg("run")
        .arg(dir.join("binned.toml"))
        .arg("--plate")
        .arg(&plate)
        .arg("--out")
        .arg(&out)
        .args(["--backend", backend, "-q"])
        .output()
        .expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    out
}

fn physical_size(tiff: &Path) -> f64 {
    let xml = hcs::vfs::tiff::read_tiff_description(tiff).expect("read").expect("OME-XML");
    let at = xml.find("PhysicalSizeX=\"").expect("calibrated") + "PhysicalSizeX=\"".len();
    xml[at..].split('"').next().and_then(|v| v.parse().ok()).expect("number")
}

#[test]
fn binning_scales_the_pixel_size_of_every_later_output() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(dir.path(), "disk");
    // The synthetic ImageXpress plate says 0.65 µm (MetaMorph XML); the checkpoint of the first
    // binning is at 1.3 µm, the final output (binned 2 then 3) at 3.9 µm.
    let first = |d: &Path| {
        let mut tifs: Vec<_> = std::fs::read_dir(d).expect("dir").flatten().map(|e| e.path()).collect();
        tifs.sort();
        tifs.into_iter().find(|p| p.extension().is_some_and(|e| e == "tif")).expect("a tif")
    };
    assert!((physical_size(&first(&out.join("checkpoints/step1"))) - 1.3).abs() < 1e-9);
    assert!((physical_size(&first(&out.join("images"))) - 3.9).abs() < 1e-9);

    let out = run(dir.path(), "zarr");
    let attrs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("images.ome.zarr/A/1/0/zarr.json")).expect("image group of well A01"),
    )
    .expect("json");
    let datasets = &attrs["attributes"]["ome"]["multiscales"][0]["datasets"];
    let scale = |level: usize| datasets[level]["coordinateTransformations"][0]["scale"][3].as_f64().expect("y scale");
    assert!((scale(0) - 3.9).abs() < 1e-9, "{datasets}");
    assert!((scale(1) - 7.8).abs() < 1e-9, "each level doubles it: {datasets}");
}
