//! A plate written by OpenHCS itself (`tests/fixtures/openhcs/plate_ix_openhcs`, made by the peer's
//! own canonical pipeline through `scripts/make_openhcs_output.sh`) opens as an input plate: its
//! main sub-directory, the components the peer parsed for every file, its channel names, and the
//! pixel size it did not know said so rather than taken as 1 µm. Damaged copies are refused
//! naming the file and the problem.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hcs_plate::formats::{detect, open_plate, open_plate_unread};
use hcs_plate::{Component, FormatKind, PlaneRef};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/openhcs/plate_ix_openhcs")
}

fn metadata(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("openhcs_metadata.json")).expect("metadata")).expect("JSON")
}

/// Its twin: the same input through the same pipeline, OpenHCS storing its outputs in Zarr
/// (the script checks with zarr-python and tifffile that every plane equals its TIFF).
fn zarr_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/openhcs/plate_ix_openhcs_zarr")
}

/// Its twins OpenHCS compressed with each of its other choices: `lz4` (numcodecs LZ4, which
/// zarrs lacks), `zstd`, `blosc` (its `"shuffle": true`, which zarrs refuses as written) and
/// `none` (chunks stored raw, which zarrs decodes in part).
fn other_zarr_fixtures() -> Vec<PathBuf> {
    ["lz4", "zstd", "blosc", "none"]
        .map(|c| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../tests/fixtures/openhcs/plate_ix_openhcs_zarr_{c}"))
        })
        .into()
}

/// A writable copy of the fixture, its metadata changed by `edit`.
fn copy_with(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    copy_of(&fixture(), dir, edit)
}

/// A writable copy of `fixture` in `dir/plate`, its metadata changed by `edit`.
fn copy_of(fixture: &Path, dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir").flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let root = dir.join("plate");
    copy(fixture, &root);
    let mut meta = metadata(&root);
    edit(&mut meta);
    std::fs::write(root.join("openhcs_metadata.json"), serde_json::to_vec(&meta).expect("JSON")).expect("write");
    root
}

#[test]
fn the_peers_output_plate_opens_with_the_components_it_parsed() {
    let root = fixture();
    assert_eq!(detect(&root).expect("detect"), FormatKind::Openhcs);
    let plate = open_plate(&root, None).expect("open");
    assert_eq!(plate.metadata.format, FormatKind::Openhcs);
    let meta = metadata(&root);
    let images = &meta["subdirectories"]["images"];
    assert_eq!(images["main"], true, "the peer marks its final images main");
    // Every file the peer listed, with the components the peer itself parsed from it.
    let mut expected = BTreeSet::new();
    for (path, parsed) in images["source_metadata"].as_object().expect("source_metadata") {
        let n = |k: &str| -> u32 {
            match &parsed[k] {
                serde_json::Value::String(s) => s.parse().expect("a number"),
                v => v.as_u64().expect("a number") as u32,
            }
        };
        let well = parsed["well"].as_str().expect("well").to_string();
        expected.insert((PathBuf::from(path), well, n("site"), n("channel"), n("z_index"), n("timepoint")));
    }
    assert_eq!(expected.len(), 2, "one mosaic per well");
    let found: BTreeSet<_> = plate
        .index
        .iter()
        .map(|(key, plane)| {
            let PlaneRef::File { path, .. } = plane else { panic!("a file plane: {plane:?}") };
            (path.clone(), key.well.to_string(), key.site, key.channel, key.z, key.timepoint)
        })
        .collect();
    assert_eq!(found, expected);
    assert_eq!(plate.index.values(Component::Channel), [1]);
    let names: Vec<&str> = plate.metadata.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [images["channels"]["1"].as_str().expect("the peer's channel name")]);
    // The peer wrote pixel_size 1.0 and no grid: it did not know them. Not passed on as 1 µm.
    assert_eq!(images["pixel_size"], 1.0);
    assert_eq!(plate.metadata.pixel_size_um, None);
    assert!(plate.disagreements.iter().any(|d| d.contains("pixel_size 1.0")), "{:?}", plate.disagreements);
    assert_eq!(plate.metadata.grid, None);
    assert!(plate.unmatched.is_empty(), "{:?}", plate.unmatched);
    let (h, w) = plate.metadata.tile_shape.expect("read from the first image");
    assert!(h > 96 && w > 96, "a mosaic of 2 × 2 tiles of 96²: {h} × {w}");
    // The deep check compares each well's images among themselves: the peer's two mosaics
    // differ in size (each is its well's stitched extent), which is no problem.
    let deep = plate.check_image_headers();
    assert!(deep.problems.is_empty(), "{:?}", deep.problems.iter().map(ToString::to_string).collect::<Vec<_>>());
    assert_eq!((deep.files, deep.dtype), (2, Some(hcs_vfs::Dtype::U16)));
    let shapes: BTreeSet<(usize, usize)> =
        plate.index.iter().map(|(key, _)| plate.load_plane(key).expect("read").dim()).collect();
    assert_eq!(shapes.len(), 2, "the fixture's mosaics differ in size: {shapes:?}");
    assert_eq!(deep.tile_shape, None, "no one size for the plate");
    // Opening without reading an image gives the same index.
    let unread = open_plate_unread(&root, None).expect("open unread");
    assert_eq!(unread.index.len(), plate.index.len());
    assert_eq!(unread.metadata.tile_shape, None);
}

#[test]
fn a_damaged_openhcs_plate_is_refused_naming_the_problem() {
    let listed = |m: &mut serde_json::Value| m["subdirectories"]["images"]["image_files"].clone();
    let refused = |edit: &dyn Fn(&mut serde_json::Value), wanted: &str| {
        let dir = tempfile::tempdir().expect("tmp");
        let root = copy_with(dir.path(), edit);
        let error = open_plate(&root, None).expect_err(wanted).to_string();
        assert!(error.contains(wanted), "wanted {wanted:?} in: {error}");
    };
    refused(
        &|m| m["subdirectories"]["images"]["image_files"][0] = "../../etc/passwd_A01_s1_w1.tif".into(),
        "leaves the plate",
    );
    refused(
        &|m| m["subdirectories"]["images"]["image_files"][0] = "images/A01_s009_w1_z001_t001.tif".into(),
        "1 listed image file is missing (the first: images/A01_s009_w1_z001_t001.tif)",
    );
    refused(
        &|m| m["subdirectories"]["images"]["available_backends"] = serde_json::json!({ "zarr": true }),
        "stored in Zarr by OpenHCS, but",
    );
    refused(&|m| m["subdirectories"]["images"]["source_filename_parser_name"] = "MyParser".into(), "\"MyParser\"");
    refused(
        &|m| m["subdirectories"]["images"]["image_files"][0] = "images/notes.txt".into(),
        "not an ImageXpress image name",
    );
    refused(&|m| m["subdirectories"] = serde_json::json!({}), "no sub-directories");
    refused(&|m| *m = serde_json::json!({ "wells": [] }), "invalid OpenHCS plate metadata");

    // A mapped address is checked as the listed path is; other backends and stack planes are
    // refused.
    let mapped = |m: &mut serde_json::Value, mapping: serde_json::Value| {
        let first = m["subdirectories"]["images"]["image_files"][0].as_str().expect("a path").to_string();
        m["subdirectories"]["images"]["workspace_mapping"][first] = mapping;
    };
    refused(
        &|m| mapped(m, serde_json::json!({ "backend": "disk", "backend_address": "/etc/passwd" })),
        "leaves the plate",
    );
    refused(
        &|m| mapped(m, serde_json::json!({ "backend": "bioformats", "backend_address": "{\"series\": 0}" })),
        "mapped to bioformats",
    );
    refused(
        &|m| {
            let first = m["subdirectories"]["images"]["image_files"][0].clone();
            mapped(m, serde_json::json!({ "backend": "disk", "backend_address": first, "source_axis_indices": [2] }))
        },
        "one plane of a stack",
    );

    // A virtual workspace: the listed name gives the components, the mapped address the file
    // (OpenHCS lists `A01_s001_w1_z002_t001.tif` for `ZStep_2/A01_s1_w1.tif`). Here A01's
    // mosaic lies under a name that parses as another well's.
    let dir = tempfile::tempdir().expect("tmp");
    let stored = "images/B02_s004_w1_z003_t001.tif";
    let root = copy_with(dir.path(), |m| {
        let images = &mut m["subdirectories"]["images"];
        images["image_files"][0] = "./A01_s001_w1_z001_t001.tif".into();
        images["workspace_mapping"] =
            serde_json::json!({ "./A01_s001_w1_z001_t001.tif": { "backend": "disk", "backend_address": stored } });
    });
    std::fs::rename(root.join("images/A01_s001_w1_z001_t001.tif"), root.join(stored)).expect("rename");
    let plate = open_plate(&root, None).expect("opens");
    let planes: Vec<(String, u32, u32, PathBuf)> = plate
        .index
        .iter()
        .map(|(k, p)| match p {
            PlaneRef::File { path, .. } => (k.well.to_string(), k.site, k.z, path.clone()),
            other => panic!("a file plane: {other:?}"),
        })
        .collect();
    assert_eq!(planes[0], ("A01".into(), 1, 1, PathBuf::from(stored)), "{planes:?}");

    // The deep check compares a well's images among themselves: a second A01 image of B02's
    // size is named, B02's second image (of B02's size) is not.
    let dir = tempfile::tempdir().expect("tmp");
    let root = copy_with(dir.path(), |m| {
        let images = &mut m["subdirectories"]["images"];
        let files = images["image_files"].as_array_mut().expect("list");
        files.push("images/A01_s002_w1_z001_t001.tif".into());
        files.push("images/B02_s002_w1_z001_t001.tif".into());
    });
    for site2 in ["A01", "B02"] {
        let to = root.join(format!("images/{site2}_s002_w1_z001_t001.tif"));
        std::fs::copy(root.join("images/B02_s001_w1_z001_t001.tif"), to).expect("copy");
    }
    let plate = open_plate(&root, None).expect("opens");
    let problems: Vec<String> = plate.check_image_headers().problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("A01_s002") && problems[0].contains("the well's other images are"), "{problems:?}");

    // What the metadata leaves out or gives malformed is said, not silently defaulted.
    let dir = tempfile::tempdir().expect("tmp");
    let root = copy_with(dir.path(), |m| {
        let images = m["subdirectories"]["images"].as_object_mut().expect("object");
        images.remove("source_filename_parser_name");
        images.insert("grid_dimensions".into(), serde_json::json!([3]));
    });
    let plate = open_plate(&root, None).expect("opens");
    let said = plate.disagreements.join("\n");
    assert!(said.contains("read as ImageXpress names") && said.contains("grid_dimensions [3]"), "{said}");
    assert_eq!(plate.metadata.grid, None);

    // A file in the folder that the list does not name is reported, not read.
    let dir = tempfile::tempdir().expect("tmp");
    let root = copy_with(dir.path(), |m| {
        let files = listed(m);
        m["subdirectories"]["images"]["image_files"] = serde_json::json!([files[0]]);
    });
    let plate = open_plate(&root, None).expect("opens");
    assert_eq!(plate.index.len(), 1);
    assert_eq!(plate.unmatched.len(), 1, "{:?}", plate.unmatched);
    assert!(plate.unmatched[0].starts_with("images"), "{:?}", plate.unmatched);
}

/// The plate OpenHCS stored in Zarr, compressed with zlib (its default) or any other of its
/// compressors (`lz4`, `zstd`, `blosc`, `none`), opens with the
/// planes of its TIFF twin, each equal to the twin's, for its main sub-directory (one mosaic per
/// well) and for its checkpoints (four fields, two z-planes): the store's fields, channels and
/// z-planes named by the listed file names.
#[test]
fn the_peers_zarr_output_plate_opens_with_the_planes_of_its_tiff_twin() {
    for (zarr_fixture, main) in std::iter::once(zarr_fixture())
        .chain(other_zarr_fixtures())
        .flat_map(|f| ["images", "checkpoints"].map(|main| (f.clone(), main)))
    {
        assert_eq!(detect(&zarr_fixture).expect("detect"), FormatKind::Openhcs);
        let dir = tempfile::tempdir().expect("tmp");
        let make_main = |m: &mut serde_json::Value| {
            for (name, sub) in m["subdirectories"].as_object_mut().expect("subdirectories") {
                sub["main"] = (name == main).into();
            }
        };
        let tiff = open_plate(&copy_of(&fixture(), &dir.path().join("tiff"), make_main), None).expect("TIFF twin");
        let root = copy_of(&zarr_fixture, &dir.path().join("zarr"), make_main);
        let zarr = open_plate(&root, None).expect("Zarr plate");
        assert_eq!(zarr.metadata.format, FormatKind::Openhcs);
        let keys = |p: &hcs_plate::Plate| p.index.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(&zarr), keys(&tiff), "{main}");
        assert_eq!(zarr.index.len(), if main == "images" { 2 } else { 16 }, "{main}");
        for ((key, plane), (_, twin)) in zarr.index.iter().zip(tiff.index.iter()) {
            let PlaneRef::Zarr { store, .. } = plane else { panic!("{main}: a Zarr plane: {plane:?}") };
            assert_eq!(store, Path::new(main));
            let (got, want) = (plane.load(&root).expect("Zarr plane"), twin.load(&tiff.root).expect("TIFF"));
            assert!(got == want, "{} {main} {key:?}: the planes differ", zarr_fixture.display());
        }
        let names = |p: &hcs_plate::Plate| p.metadata.channels.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&zarr), names(&tiff));
        assert_eq!(zarr.metadata.tile_shape, tiff.metadata.tile_shape, "{main}");
        assert_eq!(zarr.metadata.pixel_size_um, None);
        assert!(zarr.disagreements.iter().any(|d| d.contains("pixel_size 1.0")), "{:?}", zarr.disagreements);
        let unread = open_plate_unread(&root, None).expect("unread");
        assert_eq!(unread.index.len(), zarr.index.len());
        assert!(unread.metadata.tile_shape.is_some() && unread.metadata.dtype.is_some(), "{main}");
    }
}

/// A Zarr store and the names OpenHCS listed for it that disagree, or a missing store, are
/// refused naming the plane or the store.
#[test]
fn a_zarr_store_that_disagrees_with_the_listed_names_is_refused() {
    let refused = |edit: &dyn Fn(&mut serde_json::Value), wanted: &str| {
        let dir = tempfile::tempdir().expect("tmp");
        let root = copy_of(&zarr_fixture(), dir.path(), edit);
        let error = open_plate(&root, None).expect_err(wanted).to_string();
        assert!(error.contains(wanted), "wanted {wanted:?} in: {error}");
    };
    let images = |m: &mut serde_json::Value| -> Vec<serde_json::Value> {
        m["subdirectories"]["images"]["image_files"].as_array().expect("list").clone()
    };
    // A well the names leave out.
    refused(
        &|m| m["subdirectories"]["images"]["image_files"] = serde_json::json!([images(m)[0]]),
        "holds a plane that openhcs_metadata.json does not list: well B02, field 1",
    );
    // A plane the store lacks: a second z-plane of A01.
    refused(
        &|m| {
            let mut files = images(m);
            files.push("images/A01_s001_w1_z002_t001.tif".into());
            m["subdirectories"]["images"]["image_files"] = files.into();
        },
        "1 listed image is not in the Zarr store of sub-directory \"images\" (the first: well A01, site 1, channel 1, z 2",
    );
    refused(
        &|m| {
            let sub = m["subdirectories"]["images"].take();
            m["subdirectories"] = serde_json::json!({ "../images": sub });
        },
        "leaves the plate",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let root = copy_of(&zarr_fixture(), dir.path(), |_| {});
    std::fs::remove_dir_all(root.join("images")).expect("remove the store");
    let error = open_plate(&root, None).expect_err("no store").to_string();
    assert!(error.contains("holds no OME-Zarr plate"), "{error}");
}

/// OpenHCS writes its metadata into the input plates it processes too: an ImageXpress plate
/// holding `openhcs_metadata.json` is still read as ImageXpress.
#[test]
fn an_imagexpress_plate_openhcs_wrote_its_metadata_into_stays_imagexpress() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = hcs_synth::SynthConfig {
        wells: vec!["A01".parse().expect("well")],
        grid: (1, 2),
        tile: 32,
        channels: 1,
        z_planes: 1,
        ..hcs_synth::SynthConfig::default()
    };
    hcs_synth::synthesize(&config, dir.path()).expect("synthesize");
    std::fs::copy(fixture().join("openhcs_metadata.json"), dir.path().join("openhcs_metadata.json")).expect("copy");
    assert_eq!(detect(dir.path()).expect("detect"), FormatKind::Imagexpress);
    assert_eq!(open_plate(dir.path(), None).expect("open").index.len(), 2);
}

/// A stack of the Zarr twin's planes (two share each chunk) is read from a staggered plane, so
/// that stacks read at once decode different chunks: read 16 times, from the starts the
/// golden-ratio sequence gives (0, 9, 3, 13, … when this test reads alone; every start is
/// tried in `load.rs`'s own test), it equals the stack of the TIFF twin's planes, and what each
/// plane's reader kept comes in plane order. Planes of two shapes in one stack are refused
/// naming a plane, wherever the reading starts.
#[test]
fn stacks_of_zarr_planes_equal_their_tiff_twins_wherever_their_reading_starts() {
    let dir = tempfile::tempdir().expect("tmp");
    let checkpoints = |m: &mut serde_json::Value| {
        for (name, sub) in m["subdirectories"].as_object_mut().expect("subdirectories") {
            sub["main"] = (name == "checkpoints").into();
        }
    };
    let tiff = open_plate(&copy_of(&fixture(), &dir.path().join("tiff"), checkpoints), None).expect("TIFF twin");
    let zarr = open_plate(&copy_of(&zarr_fixture(), &dir.path().join("zarr"), checkpoints), None).expect("Zarr twin");
    let keys: Vec<_> = zarr.index.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), 16);
    let want = tiff.load_stack(&keys).expect("TIFF stack");
    for _ in 0..keys.len() {
        let (got, seen) = zarr.load_stack_with(&keys, |i, plane| Some((i, plane.sum()))).expect("Zarr stack");
        assert!(got == want, "the Zarr stack differs from the TIFF twin's");
        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), (0..keys.len()).collect::<Vec<_>>());
        for (i, sum) in seen {
            assert_eq!(sum, want.index_axis(ndarray::Axis(0), i).sum(), "plane {i}");
        }
    }
    // The main sub-directory holds one mosaic per well: 184×182 for A01, 183×183 for B02.
    let mosaics = open_plate(&zarr_fixture(), None).expect("mosaics");
    let keys: Vec<_> = mosaics.index.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys.len(), 2);
    for _ in 0..4 {
        let error = mosaics.load_stack(&keys).expect_err("two shapes").to_string();
        assert!(
            error.contains("is 184×182, but the other planes of this stack are 183×183")
                || error.contains("is 183×183, but the other planes of this stack are 184×182"),
            "{error}"
        );
    }
}

/// Which sub-directory is the plate's is said when the metadata leaves it open: two marked
/// `main`, or none of several (OpenHCS's own choice is read either way).
#[test]
fn an_ambiguous_main_sub_directory_is_reported_with_the_one_read() {
    let both = tempfile::tempdir().expect("tmp");
    let root = copy_with(both.path(), |m| m["subdirectories"]["checkpoints"]["main"] = true.into());
    let plate = open_plate(&root, None).expect("open");
    let said: Vec<&String> = plate.disagreements.iter().filter(|d| d.contains("main")).collect();
    assert!(said.len() == 1 && said[0].contains("marks 2 sub-directories main (checkpoints, images)"), "{said:?}");
    let neither = tempfile::tempdir().expect("tmp");
    let root = copy_with(neither.path(), |m| {
        m["subdirectories"]["images"].as_object_mut().expect("entry").remove("main");
    });
    let plate = open_plate(&root, None).expect("open");
    let said: Vec<&String> = plate.disagreements.iter().filter(|d| d.contains("main")).collect();
    assert!(said.len() == 1 && said[0].contains("none of its 2 sub-directories main: \"images\" was read"), "{said:?}");
    // The fixture as OpenHCS wrote it (one marked main) says nothing of the kind.
    let plate = open_plate(&fixture(), None).expect("open");
    assert!(!plate.disagreements.iter().any(|d| d.contains("main")), "{:?}", plate.disagreements);
}
