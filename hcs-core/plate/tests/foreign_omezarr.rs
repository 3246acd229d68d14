//! OME-Zarr HCS plates that hcs did not write open as input plates: the fixtures under
//! `tests/fixtures/foreign/` were written by ome-zarr-py's writer (`scripts/make_foreign_plates.py`),
//! with zstd (zarr-python 3's default) or blosc (zarr-python 2's, bioformats2raw's), and every
//! sample is checked against the formula that script used.

use std::path::{Path, PathBuf};

use hcs_plate::formats::{FormatError, detect, open_plate, open_plate_unread};
use hcs_plate::{Component, FormatKind, ImageKey, Plate, WellId};
use hcs_vfs::{Dtype, PlaneData, VfsError};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/foreign").join(name)
}

/// The sample `scripts/make_foreign_plates.py` wrote at these 0-based indices (row 0 = A, `col`
/// the column number).
#[allow(clippy::too_many_arguments)]
fn value(row: u32, col: u32, field: u32, t: u32, c: u32, z: u32, y: u32, x: u32) -> u16 {
    ((row * 4099 + col * 1031 + field * 521 + t * 211 + c * 97 + z * 31 + y * 67 + x * 3) % 65536) as u16
}

/// Every plane of the plate, through the plate's stack loader and the plane reader, against the
/// formula; the fields are `h`×`w`.
fn check_every_sample(plate: &Plate, (h, w): (usize, usize)) {
    for (key, plane) in plate.index.iter() {
        let (row, col) = (u32::from(key.well.row), u32::from(key.well.col));
        let (f, t, c, z) = (key.site - 1, key.timepoint - 1, key.channel - 1, key.z - 1);
        let stack = plate.load_stack(&[*key]).expect("load_stack");
        assert_eq!(stack.dim(), (1, h, w), "{key}");
        let PlaneData::U16(raw) = plane.load(&plate.root).expect("load") else { panic!("{key}: not uint16") };
        for y in 0..h {
            for x in 0..w {
                let want = value(row, col, f, t, c, z, y as u32, x as u32);
                assert_eq!(raw[[y, x]], want, "{key} y={y} x={x}");
                assert_eq!(stack[[0, y, x]], f32::from(want), "{key} y={y} x={x}");
            }
        }
    }
}

fn check_two_well_plate(dir: &Path, name: &str) {
    assert_eq!(detect(dir).expect("detect"), FormatKind::OmeZarr);
    let plate = open_plate(dir, None).expect("open");
    let m = &plate.metadata;
    assert_eq!(m.format, FormatKind::OmeZarr);
    assert_eq!(m.name, name);
    assert_eq!(m.grid, None, "NGFF plates record no site grid");
    assert!(m.pixel_size_um.is_some_and(|p| (p - 0.65).abs() < 1e-9), "{:?}", m.pixel_size_um);
    assert!(m.z_spacing_um.is_some_and(|z| (z - 2.0).abs() < 1e-9), "z scale: {:?}", m.z_spacing_um);
    assert_eq!(m.channels.iter().map(|c| (c.index, c.name.as_str())).collect::<Vec<_>>(), [(1, "DAPI"), (2, "GFP")]);
    assert_eq!(m.tile_shape, Some((48, 64)));
    assert_eq!(m.dtype, Some(Dtype::U16));
    assert_eq!(plate.index.wells(), [WellId::new(0, 1), WellId::new(1, 3)], "A01 and B03 of a sparse 3×4 plate");
    assert_eq!(plate.index.values(Component::Site), [1, 2]);
    assert_eq!(plate.index.values(Component::Channel), [1, 2]);
    assert_eq!(plate.index.values(Component::Z), [1, 2]);
    assert_eq!(plate.index.values(Component::Timepoint), [1]);
    assert_eq!(plate.index.len(), 2 * 2 * 2 * 2);
    check_every_sample(&plate, (48, 64));
    // The same plate without reading a pixel: the shape and dtype are those the array declares.
    let unread = open_plate_unread(dir, None).expect("open unread");
    assert_eq!(unread.index, plate.index);
    assert_eq!(unread.metadata, plate.metadata);
}

#[test]
fn an_ngff_0_5_zarr_v3_plate_from_ome_zarr_py_reads_sample_for_sample() {
    check_two_well_plate(&fixture("plate_v0.5.ome.zarr"), "plate_v0.5");
}

#[test]
fn an_ngff_0_4_zarr_v2_plate_from_ome_zarr_py_reads_sample_for_sample() {
    check_two_well_plate(&fixture("plate_v0.4.ome.zarr"), "plate_v0.4");
}

#[test]
fn a_tczyx_plate_in_nanometers_has_time_points_and_a_pixel_size_in_micrometers() {
    let dir = fixture("tczyx_v0.5.ome.zarr");
    let plate = open_plate(&dir, Some(FormatKind::OmeZarr)).expect("open");
    assert!(plate.metadata.pixel_size_um.is_some_and(|p| (p - 0.65).abs() < 1e-9), "650 nm");
    assert!(plate.metadata.z_spacing_um.is_some_and(|z| (z - 2.0).abs() < 1e-9), "2000 nm");
    assert_eq!(plate.index.wells(), [WellId::new(1, 2)]);
    assert_eq!(plate.index.values(Component::Timepoint), [1, 2]);
    assert_eq!(plate.index.values(Component::Site), [1]);
    assert_eq!(plate.index.len(), 2 * 2 * 2);
    let key = ImageKey { well: WellId::new(1, 2), timepoint: 2, site: 1, channel: 2, z: 1 };
    assert_eq!(plate.index.get(&key).expect("indexed").describe(), "B/2/0 [t1 c1 z0]");
    check_every_sample(&plate, (48, 64));
}

/// A copy of a fixture in a temporary directory, to break.
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    copy(&fixture(name), &dir);
    (tmp, dir)
}

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    edit(&mut doc);
    std::fs::write(path, serde_json::to_vec_pretty(&doc).expect("json")).expect("write");
}

#[test]
fn a_well_path_leaving_the_plate_is_refused_naming_it() {
    let (_tmp, dir) = copy_fixture("plate_v0.5.ome.zarr");
    edit_json(&dir.join("zarr.json"), |d| d["attributes"]["ome"]["plate"]["wells"][1]["path"] = "../B/3".into());
    let err = open_plate(&dir, None).expect_err("path trick");
    let FormatError::Image(VfsError::BadPath { path, .. }) = &err else { panic!("{err}") };
    assert!(path.ends_with("../B/3"), "{err}");
    // An image path of a well and a dataset path are checked the same way.
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join("A/1/.zattrs"), |d| d["well"]["images"][0]["path"] = "/etc".into());
    assert!(matches!(open_plate(&dir, None), Err(FormatError::Image(VfsError::BadPath { .. }))));
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join("B/3/1/.zattrs"), |d| d["multiscales"][0]["datasets"][0]["path"] = "../0/s0".into());
    assert!(matches!(open_plate(&dir, None), Err(FormatError::Image(VfsError::BadPath { .. }))));
}

#[test]
fn a_missing_level_0_array_is_refused_naming_it() {
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    std::fs::remove_dir_all(dir.join("B/3/1/s0")).expect("remove");
    let err = open_plate_unread(&dir, None).expect_err("missing array");
    let FormatError::MissingZarrNode { path } = &err else { panic!("{err}") };
    assert!(path.ends_with("B/3/1/s0"), "{err}");
    assert!(err.to_string().contains("B/3/1/s0"), "{err}");
}

#[test]
fn an_unsupported_dtype_is_refused_naming_the_array() {
    let (_tmp, dir) = copy_fixture("plate_v0.5.ome.zarr");
    edit_json(&dir.join("A/1/1/s0/zarr.json"), |d| d["data_type"] = "int32".into());
    let err = open_plate(&dir, None).expect_err("int32");
    let FormatError::UnsupportedDtype { path, dtype } = &err else { panic!("{err}") };
    assert!(path.ends_with("A/1/1/s0"), "{err}");
    assert!(dtype.contains("int32"), "{err}");
    // Zarr v2 spells it `<f8`.
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join("A/1/0/s0/.zarray"), |d| d["dtype"] = "<f8".into());
    let err = open_plate(&dir, None).expect_err("float64");
    assert!(matches!(&err, FormatError::UnsupportedDtype { path, .. } if path.ends_with("A/1/0/s0")), "{err}");
}

#[test]
fn broken_image_metadata_is_a_typed_error_naming_the_file() {
    // Axes out of the NGFF order.
    let (_tmp, dir) = copy_fixture("plate_v0.5.ome.zarr");
    edit_json(&dir.join("B/3/0/zarr.json"), |d| {
        d["attributes"]["ome"]["multiscales"][0]["axes"][2]["name"] = "x".into();
        d["attributes"]["ome"]["multiscales"][0]["axes"][3]["name"] = "y".into();
    });
    let err = open_plate(&dir, None).expect_err("x before y");
    let FormatError::UnsupportedAxes { path, axes, .. } = &err else { panic!("{err}") };
    assert!(path.ends_with("B/3/0"), "{err}");
    assert_eq!(axes, "c,z,x,y");
    // No multiscales.
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join("A/1/1/.zattrs"), |d| d["multiscales"] = Value::Null);
    let err = open_plate(&dir, None).expect_err("no multiscales");
    let FormatError::BadMetadata { path, message } = &err else { panic!("{err}") };
    assert!(path.ends_with("A/1/1/.zattrs") && message.contains("multiscales"), "{err}");
    // Not JSON.
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    std::fs::write(dir.join("B/3/.zattrs"), b"{ not json").expect("write");
    let err = open_plate(&dir, None).expect_err("bad json");
    assert!(matches!(&err, FormatError::BadMetadata { path, .. } if path.ends_with("B/3/.zattrs")), "{err}");
}

#[test]
fn a_damaged_first_chunk_fails_its_planes_not_the_plate() {
    let (_tmp, dir) = copy_fixture("plate_v0.5.ome.zarr");
    // The first plane of the plate (A/1 field 0, c 0, z 0) lies in this chunk. The plate is
    // described from the next readable plane; reading that one fails, naming the array.
    std::fs::write(dir.join("A/1/0/s0/c/0/0/0/0"), b"not zstd").expect("write");
    let plate = open_plate(&dir, None).expect("described from the next readable plane");
    assert_eq!(plate.metadata.tile_shape, Some((48, 64)));
    assert!(plate.disagreements.iter().any(|d| d.contains("first readable image")), "said: {:?}", plate.disagreements);
    let (first, _) = plate.index.iter().next().expect("a plane");
    let err = plate.load_plane(first).expect_err("damaged chunk");
    assert!(err.to_string().contains("A/1/0/s0"), "{err}");
    let plate = open_plate_unread(&dir, None).expect("metadata only");
    assert_eq!(plate.metadata.tile_shape, Some((48, 64)));
    assert_eq!(plate.metadata.dtype, Some(Dtype::U16));
}

#[test]
fn a_bioformats2raw_layout_opens_by_its_plate_metadata_and_is_refused_without_one() {
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join(".zattrs"), |d| d["bioformats2raw.layout"] = 3.into());
    let plate = open_plate(&dir, None).expect("bioformats2raw plate");
    assert_eq!(plate.index.len(), 16);
    edit_json(&dir.join(".zattrs"), |d| {
        d.as_object_mut().expect("object").remove("plate");
    });
    assert_eq!(detect(&dir).expect("detect"), FormatKind::OmeZarr);
    let err = open_plate(&dir, None).expect_err("no plate");
    assert!(err.to_string().contains("bioformats2raw"), "{err}");
}

#[test]
fn reading_writes_nothing_inside_the_plate() {
    let (_tmp, dir) = copy_fixture("plate_v0.5.ome.zarr");
    fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            if entry.path().is_dir() {
                out.extend(listing(&entry.path()));
            } else {
                out.push((entry.path(), entry.metadata().expect("metadata").len()));
            }
        }
        out.sort();
        out
    }
    let before = listing(&dir);
    let plate = open_plate(&dir, None).expect("open");
    check_every_sample(&plate, (48, 64));
    assert_eq!(listing(&dir), before);
}

/// The codec of the level-0 array of `A/2/0` in a blosc fixture: Zarr v2's `compressor` or Zarr v3's
/// last codec.
fn level0_codec(dir: &Path) -> Value {
    let v2 = dir.join("A/2/0/s0/.zarray");
    if v2.is_file() {
        let doc: Value = serde_json::from_slice(&std::fs::read(v2).expect("read")).expect("json");
        return doc["compressor"].clone();
    }
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("A/2/0/s0/zarr.json")).expect("read")).expect("json");
    doc["codecs"].as_array().and_then(|c| c.last()).cloned().expect("codecs")
}

/// A blosc plate of `make_foreign_plates.py`: wells A/2 and C/4 of a 3×4 plate, one 12×20 field,
/// channels DAPI and GFP, one z-plane, one level in 8×16 chunks (partial in y and x).
fn check_blosc_plate(dir: &Path, name: &str) {
    assert_eq!(detect(dir).expect("detect"), FormatKind::OmeZarr);
    let plate = open_plate(dir, None).expect("open");
    let m = &plate.metadata;
    assert_eq!(m.name, name);
    assert_eq!(m.channels.iter().map(|c| (c.index, c.name.as_str())).collect::<Vec<_>>(), [(1, "DAPI"), (2, "GFP")]);
    assert_eq!(m.tile_shape, Some((12, 20)));
    assert_eq!(m.dtype, Some(Dtype::U16));
    assert!(m.pixel_size_um.is_some_and(|p| (p - 0.65).abs() < 1e-9), "{:?}", m.pixel_size_um);
    assert_eq!(plate.index.wells(), [WellId::new(0, 2), WellId::new(2, 4)], "A02 and C04");
    assert_eq!(plate.index.values(Component::Site), [1]);
    assert_eq!(plate.index.values(Component::Channel), [1, 2]);
    assert_eq!(plate.index.values(Component::Z), [1]);
    assert_eq!(plate.index.values(Component::Timepoint), [1]);
    assert_eq!(plate.index.len(), 2 * 2);
    check_every_sample(&plate, (12, 20));
    let unread = open_plate_unread(dir, None).expect("open unread");
    assert_eq!(unread.index, plate.index);
    assert_eq!(unread.metadata, plate.metadata);
}

#[test]
fn an_ngff_0_4_plate_compressed_with_blosc_lz4_reads_sample_for_sample() {
    // What zarr-python 2, bioformats2raw and ome-zarr-py before zarr-python 3 write.
    let dir = fixture("blosc_lz4_v0.4.ome.zarr");
    let codec = level0_codec(&dir);
    assert_eq!(
        (codec["id"].as_str(), codec["cname"].as_str(), codec["shuffle"].as_i64()),
        (Some("blosc"), Some("lz4"), Some(1))
    );
    check_blosc_plate(&dir, "blosc_lz4_v0.4");
}

#[test]
fn an_ngff_0_5_plate_compressed_with_the_blosc_codec_reads_sample_for_sample() {
    let dir = fixture("blosc_zstd_v0.5.ome.zarr");
    let codec = level0_codec(&dir);
    let conf = &codec["configuration"];
    assert_eq!(
        (codec["name"].as_str(), conf["cname"].as_str(), conf["shuffle"].as_str()),
        (Some("blosc"), Some("zstd"), Some("bitshuffle"))
    );
    check_blosc_plate(&dir, "blosc_zstd_v0.5");
}

#[test]
fn an_unsupported_codec_is_refused_naming_the_array() {
    // Zarr v2: an unknown `compressor`.
    let (_tmp, dir) = copy_fixture("plate_v0.4.ome.zarr");
    edit_json(&dir.join("B/3/0/s0/.zarray"), |d| {
        d["compressor"] = serde_json::json!({ "id": "made-up-codec", "level": 3 });
    });
    let err = open_plate_unread(&dir, None).expect_err("made-up codec");
    let FormatError::BadMetadata { path, message } = &err else { panic!("{err}") };
    assert!(path.ends_with("B/3/0/s0"), "{err}");
    assert!(message.contains("made-up-codec"), "{err}");
    assert!(err.to_string().contains("B/3/0/s0"), "{err}");
    // Zarr v3: an unknown codec after `bytes`.
    let (_tmp, dir) = copy_fixture("blosc_zstd_v0.5.ome.zarr");
    edit_json(&dir.join("C/4/0/s0/zarr.json"), |d| {
        d["codecs"][1] = serde_json::json!({ "name": "made-up-codec", "configuration": {} });
    });
    let err = open_plate(&dir, None).expect_err("made-up codec");
    let FormatError::BadMetadata { path, message } = &err else { panic!("{err}") };
    assert!(path.ends_with("C/4/0/s0"), "{err}");
    assert!(message.contains("made-up-codec"), "{err}");
}
