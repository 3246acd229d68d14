//! `hcs check --plate PLATE --deep`: a clean synthetic plate passes; truncated, non-TIFF, empty,
//! mis-sized and wrongly typed image files are each reported on one line naming the file, and the
//! command fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use hcs::vfs::PlaneData;
use hcs::vfs::tiff::{TiffCompression, write_tiff};
use ndarray::Array2;

fn hcs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcs")).args(args).output().expect("hcs runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn synth(plate: &Path, tile: &str) {
    let plate = plate.to_str().expect("utf-8");
    let args = ["synth", "--out", plate, "--wells", "A01,A02,B01,B02", "--grid", "2", "2", "--tile", tile];
    let (ok, _, stderr) = hcs(&[&args[..], &["--z", "1", "--channels", "1", "--noise", "0"]].concat());
    assert!(ok, "{stderr}");
}

/// The plate's `.tif` files, sorted.
fn images(plate: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "tif") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(plate, &mut out);
    out.sort();
    out
}

/// A little-endian grey TIFF whose IFD comes before the pixels (as many microscopes write it).
fn ifd_first_tiff(w: u32, h: u32, bits: u16, sample_format: u16) -> Vec<u8> {
    let bytes = w * h * u32::from(bits) / 8;
    let entries: [(u16, u16, u32); 10] = [
        (256, 4, w),
        (257, 4, h),
        (258, 3, u32::from(bits)),
        (259, 3, 1),
        (262, 3, 1),
        (273, 4, 8 + 2 + 10 * 12 + 4),
        (277, 3, 1),
        (278, 4, h),
        (279, 4, bytes),
        (339, 3, u32::from(sample_format)),
    ];
    let mut out = b"II*\0".to_vec();
    out.extend(8u32.to_le_bytes());
    out.extend(10u16.to_le_bytes());
    for (tag, typ, value) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(typ.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend(value.to_le_bytes()); // a SHORT sits in the low two bytes (little-endian)
    }
    out.extend(0u32.to_le_bytes());
    out.resize(out.len() + bytes as usize, 9);
    out
}

#[test]
fn a_clean_plate_passes_the_deep_check() {
    let dir = std::env::temp_dir().join(format!("hcs-check-deep-clean-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plate = dir.join("plate");
    synth(&plate, "32");
    let (ok, stdout, stderr) = hcs(&["check", "--plate", plate.to_str().expect("utf-8"), "--deep"]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("16 image files checked (headers only), all 32×32 uint16: no problems"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_damaged_image_is_reported_with_its_file_and_the_check_fails() {
    let dir = std::env::temp_dir().join(format!("hcs-check-deep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plate = dir.join("plate");
    let other = dir.join("other-size");
    synth(&plate, "32");
    synth(&other, "48");
    let files = images(&plate);
    assert_eq!(files.len(), 16, "{files:?}");

    // The first file in plate order too: the deep check must not need to decode any image.
    let truncated = &files[0];
    let bytes = std::fs::read(truncated).expect("read");
    std::fs::write(truncated, &bytes[..bytes.len() / 2]).expect("truncate");
    // The header is whole (IFD before the pixels) but the pixels are cut short.
    let cut_pixels = &files[2];
    let whole = ifd_first_tiff(32, 32, 16, 1);
    std::fs::write(cut_pixels, &whole[..whole.len() - 300]).expect("cut pixels");
    let text = &files[4];
    std::fs::write(text, "this is a text file, not an image\n").expect("text");
    let resized = &files[6];
    std::fs::copy(&images(&other)[6], resized).expect("copy a 48×48 image");
    let empty = &files[8];
    std::fs::write(empty, b"").expect("empty");
    let signed = &files[10];
    std::fs::write(signed, ifd_first_tiff(32, 32, 16, 2)).expect("signed");
    let eight_bit = &files[12];
    write_tiff(eight_bit, &[PlaneData::U8(Array2::zeros((32, 32)))], TiffCompression::None).expect("8-bit");
    let float = &files[14];
    write_tiff(float, &[PlaneData::F32(Array2::zeros((32, 32)))], TiffCompression::None).expect("float");

    let plate_s = plate.to_str().expect("utf-8");
    let (ok, stdout, stderr) = hcs(&["check", "--plate", plate_s, "--deep"]);
    assert!(!ok, "{stdout}");
    let line = |file: &Path, problem: &str| {
        let want = format!("{}: {problem}", file.display());
        assert!(stderr.lines().any(|l| l.starts_with(&want)), "no line starting `{want}` in:\n{stderr}");
    };
    line(truncated, "truncated TIFF");
    line(
        cut_pixels,
        &format!(
            "truncated TIFF: the file is {} bytes, but its header places image data up to byte {}",
            whole.len() - 300,
            whole.len()
        ),
    );
    line(text, "not a TIFF file");
    line(resized, "wrong size: 48×48 pixels (width×height), but the plate's other images are 32×32");
    line(empty, "empty file (0 bytes)");
    line(signed, "wrong sample type: 16-bit signed samples");
    line(eight_bit, "wrong bit depth: 8-bit unsigned samples, but the plate's other images are 16-bit unsigned");
    line(float, "wrong bit depth: 32-bit float samples, but the plate's other images are 16-bit unsigned");
    assert_eq!(stderr.lines().count(), 9, "one line per problem and the summary:\n{stderr}");
    assert!(
        stderr.contains(&format!("error: 8 problems in 16 image files of {plate_s} (headers checked)")),
        "{stderr}"
    );
    for clean in [&files[1], &files[3], &files[15]] {
        assert!(!stderr.contains(&clean.display().to_string()), "{} is clean:\n{stderr}", clean.display());
    }

    // `--deep` needs a plate; without `--deep` a pipeline is still required, as before.
    let (ok, _, stderr) = hcs(&["check", "--deep"]);
    assert!(!ok && stderr.contains("--plate"), "{stderr}");
    let (ok, _, stderr) = hcs(&["check", "--plate", plate_s]);
    assert!(!ok && stderr.contains("PIPELINE"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_plate_with_a_pipeline_and_deep_is_said_once() {
    let missing = std::env::temp_dir().join(format!("hcs-check-deep-missing-{}", std::process::id()));
    let missing = missing.to_str().expect("utf-8");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, _, stderr) = hcs(&["check", pipeline, "--plate", missing, "--deep"]);
    assert!(!ok);
    assert_eq!(stderr.matches("no such folder").count(), 1, "{stderr}");
}
