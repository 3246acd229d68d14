//! TIFF files written by tifffile and imagecodecs (not by hcs) in the layouts microscopes and
//! their software use — big-endian, BigTIFF, tiled, strips of one or seven rows, LZW, Deflate and
//! PackBits with and without a predictor, zstd, multi-page stacks, ImageJ hyperstacks, 8-bit,
//! 32-bit float, photometric "min is white" — read by every hcs reader of pixels
//! (`read_tiff`, `read_tiff_page`, `read_tiff_page_f32`) and by the header reader `hcs check
//! --deep` uses. Each must give the stored values tifffile reads back, or, for samples and
//! compressions hcs does not read, an error that says what it found. The files and their truth
//! come from `scripts/make_tiff_variants.py`; the test sets up the Python venv itself
//! (`scripts/setup-python.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use hcs_vfs::PlaneData;
use hcs_vfs::tiff::{
    TiffLimits, read_tiff, read_tiff_descriptions, read_tiff_header, read_tiff_page, read_tiff_page_f32,
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn variants(out: &Path) -> Vec<serde_json::Value> {
    let status =
        Command::new("bash").arg(repo().join("scripts/setup-python.sh")).status().expect("run setup-python.sh");
    assert!(status.success(), "scripts/setup-python.sh failed");
    let made = Command::new(repo().join(".venv-py/bin/python"))
        .arg(repo().join("scripts/make_tiff_variants.py"))
        .arg(out)
        .output()
        .expect("run make_tiff_variants.py");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let manifest = std::fs::read(out.join("manifest.json")).expect("manifest.json");
    match serde_json::from_slice(&manifest).expect("manifest is JSON") {
        serde_json::Value::Array(files) => files,
        other => panic!("the manifest is a list, not {other}"),
    }
}

/// The truth's pages as f32, each `height × width` samples.
fn truth_pages(dir: &Path, file: &serde_json::Value) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(dir.join(file["truth"].as_str().expect("truth"))).expect("truth file");
    let samples: Vec<f32> = match file["dtype"].as_str().expect("dtype") {
        "u8" => bytes.iter().map(|&b| f32::from(b)).collect(),
        "u16" => bytes.chunks_exact(2).map(|b| f32::from(u16::from_le_bytes([b[0], b[1]]))).collect(),
        "f32" => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        other => panic!("dtype {other}"),
    };
    let pages = file["pages"].as_u64().expect("pages") as usize;
    assert_eq!(samples.len() % pages, 0);
    samples.chunks_exact(samples.len() / pages).map(<[f32]>::to_vec).collect()
}

fn dtype_of(plane: &PlaneData) -> &'static str {
    match plane {
        PlaneData::U8(_) => "u8",
        PlaneData::U16(_) => "u16",
        PlaneData::F32(_) => "f32",
    }
}

fn as_f32(plane: &PlaneData) -> Vec<f32> {
    match plane {
        PlaneData::U8(a) => a.iter().map(|&v| f32::from(v)).collect(),
        PlaneData::U16(a) => a.iter().map(|&v| f32::from(v)).collect(),
        PlaneData::F32(a) => a.iter().copied().collect(),
    }
}

/// Where two planes of samples first differ, for the failure message.
fn first_difference(got: &[f32], want: &[f32], width: usize) -> Option<String> {
    if got.len() != want.len() {
        return Some(format!("{} samples, the truth has {}", got.len(), want.len()));
    }
    let i = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits())?;
    let differing = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    Some(format!(
        "{differing} samples differ; the first at (y {}, x {}): {} ≠ {}",
        i / width,
        i % width,
        got[i],
        want[i]
    ))
}

#[test]
fn tiffs_written_by_tifffile_read_as_their_stored_values_or_fail_saying_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let files = variants(dir.path());
    assert!(files.len() >= 25, "{} variants", files.len());
    let limits = TiffLimits::default();
    let mut failures = Vec::new();
    for file in &files {
        let name = file["file"].as_str().expect("file");
        let path = dir.path().join(name);
        let mut fail = |what: String| failures.push(format!("{name} ({}): {what}", file["options"]));
        if file["expect"] == "error" {
            let wanted: Vec<&str> =
                file["error_contains"].as_array().expect("list").iter().filter_map(|s| s.as_str()).collect();
            let says = |e: &hcs_vfs::VfsError| {
                let text = e.to_string();
                text.contains(name) && wanted.iter().all(|w| text.contains(w))
            };
            match read_tiff(&path, limits) {
                Ok(planes) => fail(format!("read_tiff gave {} planes of {}", planes.len(), dtype_of(&planes[0]))),
                Err(e) if !says(&e) => fail(format!("read_tiff: {e} (wanted the file's name and {wanted:?})")),
                Err(_) => {}
            }
            let mut out: Vec<f32> = Vec::new();
            match read_tiff_page_f32(&path, 0, limits, &mut out, 1) {
                Ok(_) => fail("read_tiff_page_f32 read it".into()),
                Err(e) if !says(&e) => fail(format!("read_tiff_page_f32: {e}")),
                Err(_) if !out.is_empty() => fail(format!("read_tiff_page_f32 failed but left {} samples", out.len())),
                Err(_) => {}
            }
            // The deep check finds it before a run: unsupported samples by the header's dtype,
            // an unsupported compression by the header reader itself.
            match read_tiff_header(&path) {
                Ok(h) if h.dtype().is_some() => fail(format!("the header reader accepts it: {h:?}")),
                Ok(_) => {}
                Err(e) if !says(&e) => fail(format!("read_tiff_header: {e}")),
                Err(_) => {}
            }
            continue;
        }
        // Every ImageDescription, in the order tifffile lists them (the `tiff` crate keeps only
        // the last of repeated tags, which lost MetaMorph's XML behind tifffile's own JSON).
        let descriptions: Vec<&str> =
            file["descriptions"].as_array().expect("descriptions").iter().filter_map(|d| d.as_str()).collect();
        match read_tiff_descriptions(&path) {
            Ok(got) if got == descriptions => {}
            Ok(got) => fail(format!("descriptions {got:?}, tifffile reads {descriptions:?}")),
            Err(e) => fail(format!("read_tiff_descriptions: {e}")),
        }
        let truth = truth_pages(dir.path(), file);
        // Read as the one image of a one-image-per-file plate: a file of several full-size pages
        // is refused, a file of one is read.
        let sole = TiffLimits { sole_image: true, ..limits };
        let mut first: Vec<f32> = Vec::new();
        match (read_tiff_page_f32(&path, 0, sole, &mut first, 1), truth.len()) {
            (Ok(_), 1) => {}
            (Err(e), n) if n > 1 && e.to_string().contains(&format!("{n} full-size images in one file")) => {}
            (got, n) => fail(format!("read as a sole image ({n} pages): {got:?}")),
        }
        let (height, width) =
            (file["height"].as_u64().expect("h") as usize, file["width"].as_u64().expect("w") as usize);
        let dtype = file["dtype"].as_str().expect("dtype");
        match read_tiff(&path, limits) {
            Err(e) => fail(format!("read_tiff: {e}")),
            Ok(planes) if planes.len() != truth.len() => fail(format!("{} pages, not {}", planes.len(), truth.len())),
            Ok(planes) => {
                for (page, (plane, want)) in planes.iter().zip(&truth).enumerate() {
                    if dtype_of(plane) != dtype || plane.dim() != (height, width) {
                        fail(format!(
                            "page {page}: {} {:?}, not {dtype} {:?}",
                            dtype_of(plane),
                            plane.dim(),
                            (height, width)
                        ));
                    } else if let Some(d) = first_difference(&as_f32(plane), want, width) {
                        fail(format!("read_tiff page {page}: {d}"));
                    }
                }
            }
        }
        for (page, want) in truth.iter().enumerate() {
            match read_tiff_page(&path, page, limits) {
                Err(e) => fail(format!("read_tiff_page {page}: {e}")),
                Ok(plane) => {
                    if let Some(d) = first_difference(&as_f32(&plane), want, width) {
                        fail(format!("read_tiff_page {page}: {d}"));
                    }
                }
            }
            let mut out: Vec<f32> = vec![-7.0];
            match read_tiff_page_f32(&path, page, limits, &mut out, 1) {
                Err(e) => fail(format!("read_tiff_page_f32 {page}: {e}")),
                Ok((shape, _)) if shape != (height, width) => {
                    fail(format!("read_tiff_page_f32 {page}: shape {shape:?}"))
                }
                Ok((_, found)) if format!("{found:?}").to_lowercase() != dtype => {
                    fail(format!("read_tiff_page_f32 {page}: stored dtype {found:?}, the file's is {dtype}"))
                }
                Ok(_) if out[0] != -7.0 => fail("read_tiff_page_f32 overwrote what `out` held".into()),
                Ok(_) => {
                    if let Some(d) = first_difference(&out[1..], want, width) {
                        fail(format!("read_tiff_page_f32 {page}: {d}"));
                    }
                }
            }
        }
        match read_tiff_header(&path) {
            Err(e) => fail(format!("read_tiff_header: {e}")),
            Ok(h) => {
                let found = h.dtype().map(|d| format!("{d:?}").to_lowercase());
                if (h.height as usize, h.width as usize) != (height, width) || found.as_deref() != Some(dtype) {
                    fail(format!("read_tiff_header: {h:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} files:\n{}", failures.len(), files.len(), failures.join("\n"));
}
