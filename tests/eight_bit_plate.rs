//! An 8-bit plate through the normalization: outputs are stored in the plate's type, so the
//! 16-bit default target (65535) clamped every pixel above the lowest percent to 255 — a white
//! image, with exit 0 and not a word. The compiler now runs it with the 8-bit maximum and says
//! so; a target the pipeline gives outside 0..=255 runs as given, with a note.

mod common;

use std::path::{Path, PathBuf};

use hcs::vfs::PlaneData;
use hcs::vfs::tiff::{TiffCompression, TiffLimits, read_tiff, write_tiff};

/// A synthetic plate (1 well, 2 sites) with every image rewritten as 8-bit (value / 257).
fn eight_bit_plate(dir: &Path) -> PathBuf {
    let plate = dir.join("plate");
    common::small_plate(&plate, "A01", 64);
    for tif in tifs(&plate.join("TimePoint_1")) {
        let planes = read_tiff(&tif, TiffLimits::default()).expect("read");
        let PlaneData::U16(plane) = &planes[0] else { panic!("synth writes 16-bit") };
        let narrow = plane.mapv(|v| (v / 257) as u8);
        write_tiff(&tif, &[PlaneData::U8(narrow)], TiffCompression::None).expect("write 8-bit");
    }
    plate
}

fn tifs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tif"))
        .collect();
    out.sort();
    out
}

/// Run a one-step normalization with `params`; its stderr and every output sample.
fn normalize(dir: &Path, name: &str, params: &str) -> (String, Vec<u8>) {
    let plate = eight_bit_plate(&dir.join(name));
    let pipeline = dir.join(format!("{name}.toml"));
    common::one_step_pipeline(&pipeline, "percentile_normalize", params);
    let out = dir.join(format!("out-{name}"));
    let stderr = common::run_ok(&pipeline, &plate, &out, &[]);
    let mut samples = Vec::new();
    let images = tifs(&out.join("images"));
    assert_eq!(images.len(), 2, "both sites written");
    for tif in images {
        match read_tiff(&tif, TiffLimits::default()).expect("read output").remove(0) {
            PlaneData::U8(plane) => samples.extend(plane.iter().copied()),
            other => panic!("{}: stored as {:?}, not as the plate's 8-bit", tif.display(), other.dtype()),
        }
    }
    (stderr, samples)
}

fn saturated(samples: &[u8]) -> f64 {
    samples.iter().filter(|&&v| v == u8::MAX).count() as f64 / samples.len() as f64
}

#[test]
fn the_default_target_fits_an_8_bit_plate_and_the_run_says_so() {
    let dir = tempfile::tempdir().expect("scratch");
    let (stderr, samples) = normalize(dir.path(), "default", "");
    assert!(stderr.contains("target_max = 255, not its default 65535"), "{stderr}");
    // The 99th percentile maps to 255: about 1 % of the samples are at the top, not 99 %.
    let top = saturated(&samples);
    assert!(top > 0.0 && top < 0.05, "{:.1} % of the samples are 255", top * 100.0);
    assert!(samples.iter().any(|&v| v > 0 && v < 255), "a stretched image, not a mask");
}

#[test]
fn a_given_16_bit_target_runs_as_given_and_the_clamp_is_said() {
    let dir = tempfile::tempdir().expect("scratch");
    let (stderr, samples) = normalize(dir.path(), "given", "target_max = 65535.0");
    assert!(stderr.contains("target_max = 65535") && stderr.contains("clamped to 255"), "{stderr}");
    assert!(saturated(&samples) > 0.5, "what the pipeline asked for: most samples clamped");
}
