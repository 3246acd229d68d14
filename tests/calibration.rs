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

/// Run `pipeline` (written to `<name>.toml`) with `backend` on a small synthetic plate in `dir`
/// (made on first use); returns the output folder.
fn run(dir: &Path, name: &str, pipeline: &str, backend: &str) -> std::path::PathBuf {
    let plate = dir.join("plate");
    if !plate.exists() {
        let synth = Command::new(HCS)
            .args(["synth", "-q", "--wells", "A01", "--tile", "96", "--grid", "1", "2", "--z", "1", "--out"])
            .arg(&plate)
            .output()
            .expect("synth");
        assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    }
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, pipeline).expect("pipeline");
    let out = dir.join(format!("out-{name}-{backend}"));
    let run = Command::new(HCS)
        .arg("run")
        .arg(&file)
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

/// The number in attribute `name` of the OME-XML of `tiff`.
fn ome_attribute(tiff: &Path, name: &str) -> f64 {
    let xml = hcs::vfs::tiff::read_tiff_description(tiff).expect("read").expect("OME-XML");
    let key = format!("{name}=\"");
    let at = xml.find(&key).unwrap_or_else(|| panic!("no {name} in {xml}")) + key.len();
    xml[at..].split('"').next().and_then(|v| v.parse().ok()).expect("number")
}

fn physical_size(tiff: &Path) -> f64 {
    ome_attribute(tiff, "PhysicalSizeX")
}

/// The first `.tif` in `dir` (by name).
fn first_tif(dir: &Path) -> std::path::PathBuf {
    let mut tifs: Vec<_> = std::fs::read_dir(dir).expect("dir").flatten().map(|e| e.path()).collect();
    tifs.sort();
    tifs.into_iter().find(|p| p.extension().is_some_and(|e| e == "tif")).expect("a tif")
}

#[test]
fn binning_scales_the_pixel_size_of_every_later_output() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(dir.path(), "binned", PIPELINE, "disk");
    // The synthetic ImageXpress plate says 0.65 µm (MetaMorph XML); the checkpoint of the first
    // binning is at 1.3 µm, the final output (binned 2 then 3) at 3.9 µm.
    assert!((physical_size(&first_tif(&out.join("checkpoints/step1"))) - 1.3).abs() < 1e-9);
    assert!((physical_size(&first_tif(&out.join("images"))) - 3.9).abs() < 1e-9);

    let out = run(dir.path(), "binned", PIPELINE, "zarr");
    let attrs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("images.ome.zarr/A/1/0/zarr.json")).expect("image group of well A01"),
    )
    .expect("json");
    let datasets = &attrs["attributes"]["ome"]["multiscales"][0]["datasets"];
    let scale = |level: usize| datasets[level]["coordinateTransformations"][0]["scale"][3].as_f64().expect("y scale");
    assert!((scale(0) - 3.9).abs() < 1e-9, "{datasets}");
    assert!((scale(1) - 7.8).abs() < 1e-9, "each level doubles it: {datasets}");
}

const CROPS: &str = r#"
name = "crops"

[[steps]]
name = "crop"
materialize = true
func = { function = "crop", params = { start_y = 4, start_x = 10, height = 60, width = 70, depth = 2 } }

[[steps]]
name = "bin"
func = { function = "spatial_bin_2d", params = { bin_size = 2 } }

[[steps]]
name = "crop again"
func = { function = "crop", params = { start_y = 5, start_x = 3, height = 20, width = 20, depth = 2 } }
"#;

/// A crop (`#[pixel_origin((start_y, start_x))]`) moves its output's origin: the OME-Zarr
/// translation, and the OME-TIFF planes' position, of every later output say where its first
/// pixel lies on the plate, in µm — offsets after a binning count binned pixels.
#[test]
fn crops_translate_every_later_output() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(dir.path(), "crops", CROPS, "zarr");
    let translation = |store: &Path, level: usize| -> (f64, f64, f64) {
        let attrs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(store.join("A/1/0/zarr.json")).expect("image group")).expect("json");
        let t = &attrs["attributes"]["ome"]["multiscales"][0]["datasets"][level]["coordinateTransformations"];
        let scale = t[0]["scale"][3].as_f64().expect("y scale");
        let shift = &t[1]["translation"];
        (shift[2].as_f64().expect("y"), shift[3].as_f64().expect("x"), scale)
    };
    let close = |a: (f64, f64, f64), b: (f64, f64, f64)| {
        // NGFF stores scale and translation as f32.
        (a.0 - b.0).abs() < 1e-5 && (a.1 - b.1).abs() < 1e-5 && (a.2 - b.2).abs() < 1e-5
    };
    let stores: Vec<_> = std::fs::read_dir(&out).expect("out").flatten().map(|e| e.path()).collect();
    let checkpoint = std::fs::read_dir(out.join("checkpoints"))
        .expect("checkpoints")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".ome.zarr"))
        .expect("the first crop's checkpoint plate");
    // The first crop starts at row 4, column 10 of 0.65 µm plate pixels.
    let got = translation(&checkpoint, 0);
    assert!(close(got, (4.0 * 0.65, 10.0 * 0.65, 0.65)), "{got:?}");
    // Binned by 2 (a binned pixel's centre is half a plate pixel in), then cropped from row 5,
    // column 3 of 1.3 µm pixels: (4 + 0.5 + 10, 10 + 0.5 + 6) plate pixels.
    let final_store = stores.iter().find(|p| p.to_string_lossy().ends_with("images.ome.zarr")).expect("final plate");
    let got = translation(final_store, 0);
    assert!(close(got, (14.5 * 0.65, 16.5 * 0.65, 1.3)), "{got:?}");
    // Level 1 averages 2 × 2 of those pixels: its origin is half a level-0 pixel further on.
    let got = translation(final_store, 1);
    assert!(close(got, (14.5 * 0.65 + 0.65, 16.5 * 0.65 + 0.65, 2.6)), "{got:?}");

    // The OME-TIFFs of the same pipeline give each plane the same origin (`PositionY`/`X`, µm).
    let out = run(dir.path(), "crops", CROPS, "disk");
    let position = |tiff: &Path| (ome_attribute(tiff, "PositionY"), ome_attribute(tiff, "PositionX"));
    let near = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9;
    let got = position(&first_tif(&out.join("checkpoints/step1")));
    assert!(near(got, (4.0 * 0.65, 10.0 * 0.65)), "{got:?}");
    let got = position(&first_tif(&out.join("images")));
    assert!(near(got, (14.5 * 0.65, 16.5 * 0.65)), "{got:?}");
}

/// Tile positions found on full-size tiles and applied to binned ones (or the reverse) would
/// place every tile at the wrong offset, with nothing failing at run time: the compiler refuses
/// the link, and accepts the same steps when both see one pixel size.
#[test]
fn special_values_are_not_handed_across_a_change_of_pixel_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let plate = dir.path().join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "-q", "--wells", "A01", "--tile", "64", "--grid", "2", "2", "--z", "1", "--out"])
        .arg(&plate)
        .output()
        .expect("synth");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    let check = |name: &str, steps: &[&str]| {
        let step = |s: &&str| match *s {
            "bin" => "[[steps]]\nname = \"bin\"\nfunc = { function = \"spatial_bin_2d\", params = { bin_size = 2 } }\n",
            "composite" => {
                "[[steps]]\nname = \"composite\"\nvariable_components = [\"channel\"]\nfunc = \"create_composite\"\n"
            }
            "positions" => "[[steps]]\nname = \"positions\"\nfunc = \"ashlar_compute_tile_positions\"\n",
            "raw" => "[[steps]]\nname = \"raw\"\ninput_source = \"pipeline_start\"\nfunc = \"gaussian_filter\"\n",
            "assemble" => "[[steps]]\nname = \"assemble\"\nfunc = \"assemble_stack\"\n",
            other => panic!("{other}"),
        };
        let text: String = format!("name = \"{name}\"\n\n{}", steps.iter().map(step).collect::<Vec<_>>().join("\n"));
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, text).expect("pipeline");
        let out = Command::new(HCS).arg("check").arg(&file).arg("--plate").arg(&plate).output().expect("check");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, stderr) = check("binned after", &["composite", "positions", "bin", "assemble"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("step 4 `assemble`: special input `positions` was made by `ashlar_compute_tile_positions` of step 2 `positions` on images of the plate's pixel size, but this step's images are 2× the plate's pixel size"),
        "{stderr}"
    );
    let (code, stderr) = check("binned before", &["bin", "composite", "positions", "raw", "assemble"]);
    assert_eq!(code, Some(2), "the positions are of binned tiles, the raw tiles are not: {stderr}");
    assert!(
        stderr.contains("on images of 2× the plate's pixel size, but this step's images are the plate's pixel size"),
        "{stderr}"
    );
    let (code, stderr) = check("binned both", &["bin", "composite", "positions", "assemble"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = check("full size", &["composite", "positions", "raw", "assemble"]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// Only values measured in pixels are kept from steps of another pixel size: a count is handed
/// on across a binning.
#[test]
fn values_not_in_pixels_cross_a_change_of_pixel_size() {
    use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
    use hcs::plan::pipeline::{FunctionCall, FunctionStep, Pipeline};
    use hcs::{FunctionContract, MemoryType, NdarrayStack, Registry};
    /// Special output `count`, a number of things: not in pixels.
    #[hcs::memory(ndarray)]
    #[hcs::special_outputs(count)]
    fn count_things(stack: NdarrayStack) -> (NdarrayStack, f64) {
        (stack, 3.0)
    }
    /// Reads `count`.
    #[hcs::memory(ndarray)]
    #[hcs::special_inputs(count)]
    fn use_count(stack: NdarrayStack, count: &f64) -> NdarrayStack {
        stack + *count as f32
    }
    let registry = Registry::from_contracts(
        [count_things::FUNC, use_count::FUNC]
            .into_iter()
            .chain(["spatial_bin_2d"].iter().filter_map(|n| Registry::global().get(n, MemoryType::Ndarray)))
            .collect::<Vec<&'static FunctionContract>>(),
    );
    let plate = PlateInfo::regular("/data/plate", 1, 1, (2, 2), 1, 1, 1, (64, 64));
    let pipeline = Pipeline::new("counts")
        .step(FunctionStep::new("count", "count_things"))
        .step(FunctionStep::new("bin", FunctionCall::new("spatial_bin_2d").param("bin_size", 2)))
        .step(FunctionStep::new("use", "use_count"));
    let compiled = compile(&pipeline, &plate, &CompileOptions::new(&registry));
    assert!(compiled.is_ok(), "{:?}", compiled.err());
}
