use ndarray::Array2;

use super::*;
use crate::plane::PlaneData;

pub(crate) fn layout(version: NgffVersion, timepoints: u32) -> PlateLayout {
    PlateLayout {
        name: "test".into(),
        wells: vec![("A".into(), 1), ("B".into(), 3)],
        fields: 2,
        timepoints,
        channels: vec!["DAPI".into(), "FITC".into()],
        z_planes: 3,
        plane_shape: (40, 56),
        dtype: Dtype::U16,
        pixel_size_um: Some(0.65),
        z_spacing_um: None,
        version,
        codec: ZarrCodec::Zstd(3),
        mosaic_canvas: None,
        origin: (0.0, 0.0),
    }
}

fn plane(seed: u32) -> PlaneData {
    PlaneData::U16(Array2::from_shape_fn((40, 56), |(y, x)| (seed as usize * 977 + y * 56 + x) as u16))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hcs-omezarr-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn both_versions_round_trip_every_plane() {
    for (version, t_count) in [(NgffVersion::V05, 1), (NgffVersion::V05, 2), (NgffVersion::V04, 1)] {
        let root = tmp(&format!("rt-{version:?}-{t_count}"));
        let writer = OmeZarrPlateWriter::create(&root, layout(version, t_count)).expect("create");
        for (row, col) in [("A", 1u32), ("B", 3)] {
            let well = writer.open_well(row, col).expect("open well");
            for f in 0..2 {
                for t in 0..t_count {
                    for c in 0..2 {
                        for z in 0..3 {
                            well.write_plane(f, t, c, z, &plane(f * 100 + t * 50 + c * 10 + z + col)).expect("write");
                        }
                    }
                }
            }
            well.finish().expect("finish");
        }
        writer.finalize().expect("finalize");
        let plate = OmeZarrPlate::open(&root).expect("open");
        assert_eq!(plate.version, version);
        assert_eq!(plate.wells, ["A/1", "B/3"]);
        assert_eq!(plate.field_count, 2);
        for (path, col) in [("A/1", 1), ("B/3", 3)] {
            for (f, t, c, z) in [(0, 0, 0, 0), (1, t_count - 1, 1, 2), (0, 0, 1, 1)] {
                let got = read_plane(&root, path, f, t, c, z).expect("read");
                assert_eq!(got, plane(f * 100 + t * 50 + c * 10 + z + col), "{version:?} {path} {f} {t} {c} {z}");
            }
        }
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}

#[test]
fn an_unfinished_well_is_invisible_and_leaves_nothing_behind() {
    let root = tmp("crash");
    let writer = OmeZarrPlateWriter::create(&root, layout(NgffVersion::V05, 1)).expect("create");
    let done = writer.open_well("A", 1).expect("open");
    done.write_plane(0, 0, 0, 0, &plane(1)).expect("write");
    done.finish().expect("finish");
    {
        let partial = writer.open_well("B", 3).expect("open");
        partial.write_plane(0, 0, 0, 0, &plane(2)).expect("write");
        // dropped without finish: as if the process died before publishing the well
    }
    writer.finalize().expect("finalize");
    assert!(writer.is_well_complete("A", 1));
    assert!(!writer.is_well_complete("B", 3));
    assert_eq!(OmeZarrPlate::open(&root).expect("open").wells, ["A/1"]);
    let leftovers: Vec<_> =
        std::fs::read_dir(root.join("B")).expect("row B").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("zarr.json")], "only the row group remains");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn wrong_planes_and_hostile_metadata_are_errors() {
    let root = tmp("bad");
    let writer = OmeZarrPlateWriter::create(&root, layout(NgffVersion::V05, 1)).expect("create");
    let well = writer.open_well("A", 1).expect("open");
    // Larger than the well's planes: refused (a smaller one is padded, as mosaics are).
    let large = PlaneData::U16(Array2::zeros((50, 60)));
    assert!(well.write_plane(0, 0, 0, 0, &large).expect_err("shape").to_string().contains("(50, 60)"));
    let small = PlaneData::U8(Array2::zeros((4, 4)));
    assert!(well.write_plane(0, 0, 0, 0, &small).expect_err("dtype").to_string().contains("uint8"));
    assert!(well.write_plane(0, 0, 5, 0, &plane(0)).is_err());
    assert!(writer.open_well("H", 12).is_err(), "well not in the layout");
    drop(well);

    let doc = serde_json::json!({ "zarr_format": 3, "node_type": "group", "attributes": { "ome": { "version": "0.5",
        "plate": { "wells": [{ "path": "../../etc", "rowIndex": 0, "columnIndex": 0 }] } } } });
    std::fs::write(root.join("zarr.json"), serde_json::to_vec(&doc).expect("json")).expect("write");
    let err = OmeZarrPlate::open(&root).expect_err("path trick");
    assert!(matches!(err, crate::VfsError::BadPath { .. }), "{err}");
    assert!(read_plane(&root, "/etc", 0, 0, 0, 0).is_err());
    std::fs::remove_dir_all(&root).expect("cleanup");
}

/// A plate of one 1024² plane per well: each plane is one shard of 4 inner 512² chunks.
fn big_layout() -> PlateLayout {
    PlateLayout {
        fields: 1,
        channels: vec!["DAPI".into()],
        z_planes: 1,
        plane_shape: (1024, 1024),
        ..layout(NgffVersion::V05, 1)
    }
}

fn big_plane() -> PlaneData {
    // Inner chunks that compress to different sizes, so an order change moves bytes.
    PlaneData::U16(Array2::from_shape_fn((1024, 1024), |(y, x)| {
        let block = (y / 512) * 2 + x / 512;
        ((x * 31 + y * 17) % (block * 97 + 3)) as u16 + (block as u16) * 1000
    }))
}

/// Write well A1 of a new plate at `root` on a rayon pool of `threads` threads; the shard's bytes.
fn write_big(root: &std::path::Path, threads: usize) -> Vec<u8> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("pool");
    pool.install(|| {
        let writer = OmeZarrPlateWriter::create(root, big_layout()).expect("create");
        let well = writer.open_well("A", 1).expect("open");
        well.write_plane(0, 0, 0, 0, &big_plane()).expect("write");
        well.finish().expect("finish");
    });
    std::fs::read(root.join("A/1/0/0/c/0/0/0/0")).expect("shard")
}

#[test]
fn shards_hold_their_inner_chunks_in_index_order_whatever_the_thread_count() {
    let mut shards = Vec::new();
    for threads in [1, 4, 8, 4] {
        let root = tmp(&format!("order-{threads}-{}", shards.len()));
        let shard = write_big(&root, threads);
        // The index (4 × offset, size; little endian) sits at the end, before a 4-byte CRC-32C.
        let index = &shard[shard.len() - 4 - 4 * 16..shard.len() - 4];
        let entries: Vec<(u64, u64)> = index
            .chunks_exact(16)
            .map(|e| {
                let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
                (word(&e[..8]), word(&e[8..]))
            })
            .collect();
        let mut next = 0;
        for (i, (offset, size)) in entries.iter().enumerate() {
            assert_eq!(*offset, next, "inner chunk {i} is not where C order puts it ({threads} threads)");
            next = offset + size;
        }
        let got = read_plane(&root, "A/1", 0, 0, 0, 0).expect("read");
        assert_eq!(got, big_plane());
        shards.push(shard);
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
    assert!(shards.windows(2).all(|w| w[0] == w[1]), "the same plane gives the same shard bytes");
}

#[test]
fn well_files_lists_a_published_well_and_a_rewrite_replaces_it_whole() {
    let root = tmp("files");
    let writer = OmeZarrPlateWriter::create(&root, layout(NgffVersion::V05, 1)).expect("create");
    assert!(writer.well_files("A", 1).expect("list").is_empty(), "nothing before the well is published");
    let write = |seed: u32, planes: u32| {
        let well = writer.open_well("A", 1).expect("open");
        for z in 0..planes {
            well.write_plane(0, 0, 0, z, &plane(seed + z)).expect("write");
        }
        well.finish().expect("finish");
    };
    write(1, 3);
    let files = writer.well_files("A", 1).expect("list");
    let rel: Vec<String> = files.iter().map(|p| p.strip_prefix(&root).expect("inside").display().to_string()).collect();
    for expected in ["A/1/zarr.json", "A/1/0/zarr.json", "A/1/0/0/zarr.json", "A/1/0/0/c/0/2/0/0", "A/1/1/0/zarr.json"]
    {
        assert!(rel.iter().any(|r| r == expected), "{expected} in {rel:?}");
    }
    assert!(rel.windows(2).all(|w| w[0] < w[1]), "sorted");
    assert!(rel.iter().all(|r| r.starts_with("A/1/")), "only the well's own files: {rel:?}");

    // A rewrite with fewer planes leaves none of the old chunks behind, and no temporaries.
    std::fs::remove_file(root.join("A/1/0/0/c/0/0/0/0")).expect("tamper");
    write(7, 1);
    let after = writer.well_files("A", 1).expect("list");
    assert!(after.iter().any(|p| p.ends_with("A/1/0/0/c/0/0/0/0")), "the deleted chunk is back");
    assert!(!after.iter().any(|p| p.ends_with("A/1/0/0/c/0/2/0/0")), "old chunks are gone");
    assert_eq!(read_plane(&root, "A/1", 0, 0, 0, 0).expect("read"), plane(7));
    let row: Vec<_> = std::fs::read_dir(root.join("A")).expect("row").flatten().map(|e| e.file_name()).collect();
    assert_eq!(row.len(), 2, "row group and the well only: {row:?}");
    writer.finalize().expect("finalize");
    assert_eq!(OmeZarrPlate::open(&root).expect("open").wells, ["A/1"]);
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn metadata_files_have_sorted_keys() {
    let root = tmp("sorted");
    let writer = OmeZarrPlateWriter::create(&root, layout(NgffVersion::V05, 1)).expect("create");
    let well = writer.open_well("A", 1).expect("open");
    well.finish().expect("finish");
    writer.finalize().expect("finalize");
    for file in ["zarr.json", "A/1/zarr.json", "A/1/0/zarr.json"] {
        let text = std::fs::read_to_string(root.join(file)).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "{file}");
        assert!(text.find("\"attributes\"") < text.find("\"node_type\""), "{file}: {text}");
    }
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn mosaics_are_padded_to_one_canvas_and_every_image_has_a_pyramid() {
    let root = tmp("canvas");
    let layout = PlateLayout {
        fields: 1,
        channels: vec!["DAPI".into()],
        z_planes: 1,
        mosaic_canvas: Some((120, 168)),
        origin: (0.0, 0.0),
        ..layout(NgffVersion::V05, 1)
    };
    let writer = OmeZarrPlateWriter::create(&root, layout).expect("create");
    // Two mosaics of different sizes (both larger than a 40 × 56 tile), as two wells stitch.
    for (row, col, shape) in [("A", 1u32, (110, 150)), ("B", 3, (104, 161))] {
        let well = writer.open_well_shaped(row, col, shape).expect("open");
        let p = PlaneData::U16(Array2::from_shape_fn(shape, |(y, x)| (1 + y + x) as u16));
        well.write_plane(0, 0, 0, 0, &p).expect("write");
        well.finish().expect("finish");
        let got = read_plane(&root, &format!("{row}/{col}"), 0, 0, 0, 0).expect("read");
        assert_eq!(got.dim(), (120, 168), "{row}{col}: one field shape for the plate");
        let PlaneData::U16(got) = got else { panic!("u16") };
        assert_eq!(got[[shape.0 - 1, shape.1 - 1]], (shape.0 + shape.1 - 1) as u16, "data kept in place");
        assert_eq!(got[[shape.0, 0]], 0, "padded below");
        let attrs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(root.join(format!("{row}/{col}/0/zarr.json"))).expect("image group"))
                .expect("json");
        let attrs = &attrs["attributes"];
        assert_eq!(attrs["hcs"]["valid_shape"], serde_json::json!([shape.0, shape.1]));
        let datasets = attrs["ome"]["multiscales"][0]["datasets"].as_array().expect("datasets");
        assert_eq!(datasets.len(), 3, "at least 3 levels");
        for (level, d) in datasets.iter().enumerate() {
            let scale = d["coordinateTransformations"][0]["scale"].as_array().expect("scale");
            let want = 0.65 * f64::from(1u32 << level);
            assert!((scale[3].as_f64().expect("y") - want).abs() < 1e-12, "level {level}: {scale:?}");
            let meta: serde_json::Value = serde_json::from_slice(
                &std::fs::read(root.join(format!("{row}/{col}/0/{level}/zarr.json"))).expect("level array"),
            )
            .expect("json");
            let shape = meta["shape"].as_array().expect("shape");
            assert_eq!(shape[2].as_u64(), Some(120u64.div_ceil(1 << level)), "level {level}");
        }
    }
    // A field the canvas cannot hold keeps its own shape.
    let well = writer.open_well_shaped("A", 1, (130, 10)).expect("open");
    well.write_plane(0, 0, 0, 0, &PlaneData::U16(Array2::zeros((130, 10)))).expect("write");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn label_images_are_ngff_labels_with_the_image_pyramid() {
    for version in [NgffVersion::V05, NgffVersion::V04] {
        let root = tmp(&format!("labels-{version:?}"));
        let mut lay = layout(version, 1);
        lay.plane_shape = (1100, 600);
        let writer = OmeZarrPlateWriter::create(&root, lay).expect("create");
        let mut well = writer.open_well("A", 1).expect("open well");
        let labels = Array2::from_shape_fn((1100, 600), |(y, x)| ((y / 10) * 1000 + x / 10) as u32);
        for z in 0..3 {
            well.write_labels("cells", 1, 0, z, &labels).expect("labels");
        }
        assert!(well.write_labels("../x", 0, 0, 0, &labels).is_err(), "path tricks in a label name are refused");
        assert!(well.write_labels("cells", 0, 0, 3, &labels).is_err(), "z outside the layout");
        assert!(well.write_labels("cells", 0, 0, 0, &Array2::zeros((1101, 600))).is_err(), "larger than the planes");
        well.finish().expect("finish");
        let field = root.join("A/1/1");
        let attrs = |dir: &std::path::Path| -> serde_json::Value {
            let (file, pick): (&str, fn(serde_json::Value) -> serde_json::Value) = match version {
                NgffVersion::V05 => ("zarr.json", |v| v["attributes"]["ome"].clone()),
                NgffVersion::V04 => (".zattrs", |v| v),
            };
            pick(serde_json::from_slice(&std::fs::read(dir.join(file)).expect("read")).expect("json"))
        };
        assert_eq!(attrs(&field.join("labels"))["labels"], serde_json::json!(["cells"]));
        let label = attrs(&field.join("labels/cells"));
        assert_eq!(label["image-label"]["source"]["image"], "../../");
        let image = attrs(&field);
        // Same levels, scales and translations as the image it labels.
        assert_eq!(label["multiscales"][0]["datasets"], image["multiscales"][0]["datasets"]);
        assert_eq!(label["multiscales"][0]["datasets"].as_array().map(Vec::len), Some(3));
        assert!(label.get("omero").is_none());
        // Level 0 holds the labels; level 2 the nearest labels of every 4 × 4 block.
        let store = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(&root).expect("store"));
        for (level, step) in [(0usize, 1usize), (2, 4)] {
            let array =
                zarrs::array::Array::open(store.clone(), &format!("/A/1/1/labels/cells/{level}")).expect("open");
            let (h, w) = pyramid::level_shape((1100, 600), level);
            assert_eq!(array.shape(), &[1, 3, h as u64, w as u64][..], "{version:?} level {level}");
            let got: ndarray::ArrayD<u32> = array.retrieve_chunk(&[0, 1, 0, 0]).expect("chunk");
            let got = got.into_shape_with_order((h, w)).expect("2-d");
            for (y, x) in [(0, 0), (13, 7), (h - 1, w - 1)] {
                assert_eq!(got[[y, x]], labels[[y * step, x * step]], "{version:?} level {level} ({y}, {x})");
            }
        }
        let _ = std::fs::remove_dir_all(&root);
    }
}

/// Field 0 of well A/1 of a plate at `root` as OpenHCS stores it: NGFF 0.4 on Zarr v2, one
/// zlib chunk holding the field's 2 channels and 3 z-planes, sample `value(c, z, y, x)`.
fn write_packed_field(root: &std::path::Path, value: impl Fn(usize, usize, usize, usize) -> u16) {
    write_packed_field_with(root, serde_json::json!({"id": "zlib", "level": 3}), value);
}

/// [`write_packed_field`] with another numcodecs `compressor`.
fn write_packed_field_with(
    root: &std::path::Path,
    compressor: serde_json::Value,
    value: impl Fn(usize, usize, usize, usize) -> u16,
) {
    let json = |rel: &str, v: serde_json::Value| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, v.to_string()).expect("write");
    };
    json("A/1/.zattrs", serde_json::json!({"well": {"images": [{"path": "0"}]}}));
    let axes = serde_json::json!([{"name": "c", "type": "channel"}, {"name": "z", "type": "space"},
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]);
    json(
        "A/1/0/.zattrs",
        serde_json::json!({"multiscales": [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]}),
    );
    json(
        "A/1/0/0/.zarray",
        serde_json::json!({"zarr_format": 2, "shape": [2, 3, 40, 56], "chunks": [2, 3, 40, 56],
        "dtype": "<u2", "compressor": compressor, "fill_value": 0, "order": "C", "filters": null}),
    );
    let store = std::sync::Arc::new(zarrs::filesystem::FilesystemStore::new(root).expect("store"));
    let array = zarrs::array::Array::open(store, "/A/1/0/0").expect("array");
    let chunk = ndarray::ArrayD::from_shape_fn(vec![2, 3, 40, 56], |i| value(i[0], i[1], i[2], i[3]));
    array.store_chunk(&[0, 0, 0, 0], chunk).expect("chunk");
}

#[test]
fn a_chunk_holding_every_plane_of_a_field_is_decoded_once_and_again_when_its_file_changes() {
    let root = tmp("packed");
    let first = |c: usize, z: usize, y: usize, x: usize| (c * 1000 + z * 100 + y + x) as u16;
    write_packed_field(&root, first);
    let before = chunk_cache::decoded_count();
    for c in 0..2u32 {
        for z in 0..3u32 {
            let got = read_plane(&root, "A/1", 0, 0, c, z).expect("read");
            let want = Array2::from_shape_fn((40, 56), |(y, x)| first(c as usize, z as usize, y, x));
            assert_eq!(got, PlaneData::U16(want), "c {c} z {z}");
        }
    }
    // The count is this thread's: other tests decode chunks at the same time.
    assert_eq!(chunk_cache::decoded_count() - before, 1, "six planes, one decoding");
    // Read again (a later step reading the input anew): decoded again, once for its planes.
    let again = |c: u32, z: u32, decoded: u64| {
        let got = read_plane(&root, "A/1", 0, 0, c, z).expect("read again");
        let want = Array2::from_shape_fn((40, 56), |(y, x)| first(c as usize, z as usize, y, x));
        assert_eq!(got, PlaneData::U16(want), "c {c} z {z} again");
        assert_eq!(chunk_cache::decoded_count() - before, decoded, "decodings after c {c} z {z} again");
    };
    again(1, 0, 2);
    again(0, 2, 2);
    again(1, 0, 3);

    // Replaced by a chunk that compresses to another size: read afresh, not from the cache.
    let second = |c: usize, z: usize, y: usize, x: usize| {
        ((c * 7919 + z * 104_729 + y * 56 + x) * 2_654_435_761 % 65_521) as u16
    };
    write_packed_field(&root, second);
    let got = read_plane(&root, "A/1", 0, 0, 1, 2).expect("read");
    assert_eq!(got, PlaneData::U16(Array2::from_shape_fn((40, 56), |(y, x)| second(1, 2, y, x))));
    assert_eq!(chunk_cache::decoded_count() - before, 4, "the new file was decoded");
    assert!(read_plane(&root, "A/1", 0, 0, 2, 0).is_err(), "channel 2 of 2");
    std::fs::remove_dir_all(&root).expect("cleanup");
}

/// OpenHCS writes its Blosc compressor's `shuffle` as a JSON boolean, which numcodecs (and so
/// zarr-python) reads as the integer it stands for and zarrs refused ("invalid type: boolean").
#[test]
fn a_blosc_shuffle_written_as_a_boolean_reads_as_numcodecs_reads_it() {
    let value = |c: usize, z: usize, y: usize, x: usize| (c * 3000 + z * 700 + y * 56 + x) as u16;
    for (shuffle, written) in [(1, true), (0, false)] {
        let root = tmp(&format!("blosc-shuffle-{shuffle}"));
        let blosc = serde_json::json!({"id": "blosc", "cname": "lz4", "clevel": 3, "shuffle": shuffle, "blocksize": 0});
        write_packed_field_with(&root, blosc, value);
        let file = root.join("A/1/0/0/.zarray");
        let text = std::fs::read_to_string(&file).expect(".zarray");
        let boolean = text.replace(&format!("\"shuffle\":{shuffle}"), &format!("\"shuffle\":{written}"));
        assert_ne!(boolean, text, "{text}");
        std::fs::write(&file, boolean).expect("rewrite");
        let want = PlaneData::U16(Array2::from_shape_fn((40, 56), |(y, x)| value(1, 2, y, x)));
        assert_eq!(read_plane(&root, "A/1", 0, 0, 1, 2).expect("read"), want, "shuffle {written}");
        std::fs::remove_dir_all(&root).expect("cleanup");
    }
}

/// An uncompressed chunk is read in part by zarrs (only the plane's bytes): it does not go
/// through the cache. A `.zarray` whose compressor is not an object is an error, not a panic.
#[test]
fn uncompressed_chunks_are_read_in_part_and_a_malformed_compressor_is_an_error() {
    let root = tmp("uncompressed");
    let value = |c: usize, z: usize, y: usize, x: usize| (c * 5000 + z * 300 + y * 56 + x) as u16;
    write_packed_field_with(&root, serde_json::Value::Null, value);
    let before = chunk_cache::decoded_count();
    for (c, z) in [(0, 0), (1, 2), (0, 1)] {
        let want = PlaneData::U16(Array2::from_shape_fn((40, 56), |(y, x)| value(c, z, y, x)));
        assert_eq!(read_plane(&root, "A/1", 0, 0, c as u32, z as u32).expect("read"), want);
    }
    assert_eq!(chunk_cache::decoded_count(), before, "no chunk decoded through the cache");
    let file = root.join("A/1/0/0/.zarray");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    for bad in [serde_json::json!(1), serde_json::json!([]), serde_json::json!("blosc")] {
        meta["compressor"] = bad.clone();
        std::fs::write(&file, meta.to_string()).expect("write");
        assert!(read_plane(&root, "A/1", 0, 0, 0, 0).is_err(), "compressor {bad}");
    }
    std::fs::remove_dir_all(&root).expect("cleanup");
}

#[test]
fn a_wells_planes_of_different_sizes_are_each_padded_to_its_field_shape() {
    // A time-lapse's mosaics differ by a pixel between timepoints: the well is opened for the
    // largest, and each plane is kept in place, padded with zeros.
    let root = tmp("ragged-timepoints");
    let layout = PlateLayout {
        fields: 1,
        channels: vec!["DAPI".into()],
        z_planes: 1,
        mosaic_canvas: Some((120, 168)),
        ..layout(NgffVersion::V05, 2)
    };
    let writer = OmeZarrPlateWriter::create(&root, layout).expect("create");
    let well = writer.open_well_shaped("A", 1, (111, 150)).expect("open");
    for (t, shape) in [(0u32, (111usize, 149usize)), (1, (110, 150))] {
        let p = PlaneData::U16(Array2::from_shape_fn(shape, |(y, x)| (1 + t as usize + y + x) as u16));
        well.write_plane(0, t, 0, 0, &p).expect("write");
    }
    let too_large = PlaneData::U16(Array2::zeros((112, 150)));
    assert!(well.write_plane(0, 0, 0, 0, &too_large).is_err(), "larger than the well was opened for");
    well.finish().expect("finish");
    for (t, shape) in [(0u32, (111usize, 149usize)), (1, (110, 150))] {
        let PlaneData::U16(got) = read_plane(&root, "A/1", 0, t, 0, 0).expect("read") else { panic!("u16") };
        assert_eq!(got.dim(), (120, 168));
        assert_eq!(got[[shape.0 - 1, shape.1 - 1]], (t as usize + shape.0 + shape.1 - 1) as u16, "t {t}: in place");
        assert_eq!(got[[shape.0, 0]], 0, "t {t}: padded below");
        assert_eq!(got[[0, shape.1]], 0, "t {t}: padded right");
    }
}

#[test]
fn a_float_plates_display_window_is_each_channels_data_range() {
    let root = tmp("float-window");
    let layout = PlateLayout { fields: 1, z_planes: 1, dtype: Dtype::F32, ..layout(NgffVersion::V05, 1) };
    let writer = OmeZarrPlateWriter::create(&root, layout).expect("create");
    let well = writer.open_well("A", 1).expect("open");
    for (c, (lo, hi)) in [(0u32, (156.0f32, 19317.0f32)), (1, (-0.5, 0.25))] {
        let mut a =
            Array2::from_shape_fn((40, 56), |(y, x)| lo + (hi - lo) * ((y * 56 + x) as f32 / (40.0 * 56.0 - 1.0)));
        a[[3, 3]] = f32::NAN; // not a sample: no part of the range
        well.write_plane(0, 0, c, 0, &PlaneData::F32(a)).expect("write");
    }
    well.finish().expect("finish");
    let attrs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("A/1/0/zarr.json")).expect("image group")).expect("json");
    let channels = attrs["attributes"]["ome"]["omero"]["channels"].as_array().expect("channels").clone();
    for (channel, (lo, hi)) in channels.iter().zip([(156.0, 19317.0), (-0.5, 0.25)]) {
        let w = &channel["window"];
        for (key, want) in [("min", lo), ("start", lo), ("max", hi), ("end", hi)] {
            assert!((w[key].as_f64().expect(key) - want).abs() < 1e-3, "{key}: {w}");
        }
    }
}
