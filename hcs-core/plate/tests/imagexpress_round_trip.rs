//! `synthesize` → `open_plate` → load: every plane comes back bit-identical, at the components
//! it was written for.

use std::path::PathBuf;

use hcs_plate::formats::{FormatError, detect, open_plate};
use hcs_plate::{Component, FormatKind, ImageKey, IndexError, PlaneRef};
use hcs_synth::{Scene, SynthConfig, render_tile, synthesize, tile_positions};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-ix-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small() -> SynthConfig {
    SynthConfig {
        wells: ["A01", "B03"].iter().map(|w| w.parse().expect("well")).collect(),
        grid: (2, 3),
        tile: 64,
        channels: 2,
        z_planes: 3,
        timepoints: 2,
        ..SynthConfig::default()
    }
}

#[test]
fn synthetic_imagexpress_plate_round_trips_exactly() {
    let dir = tmp("round-trip");
    let config = small();
    let truth = synthesize(&config, &dir).expect("synthesize");
    assert_eq!(detect(&dir).expect("detect"), FormatKind::Imagexpress);
    let plate = open_plate(&dir, None).expect("open");

    assert_eq!(plate.metadata.grid, Some((2, 3)));
    assert_eq!(plate.metadata.tile_shape, Some((64, 64)));
    let names: Vec<_> = plate.metadata.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["DAPI", "FITC"]);
    assert_eq!(plate.index.len(), 2 * 6 * 2 * 3 * 2);
    assert_eq!(plate.index.values(Component::Timepoint), [1, 2]);

    for well in &config.wells {
        let scene = Scene::generate(&config, *well);
        let tiles = tile_positions(&config, *well);
        assert_eq!(truth.positions.iter().find(|(w, _)| w == well).map(|(_, p)| p), Some(&tiles));
        for tile in &tiles {
            for (t, z, c) in [(1, 1, 1), (2, 3, 2), (1, 2, 2)] {
                let key = ImageKey { well: *well, timepoint: t, site: tile.site, channel: c, z };
                let plane = plate.index.get(&key).expect("indexed");
                let loaded = plane.load(&plate.root).expect("load");
                assert_eq!(loaded, render_tile(&config, &scene, *well, tile, t, z, c), "{key}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn the_same_seed_gives_the_same_plate_and_another_seed_does_not() {
    let config = small();
    let well = config.wells[0];
    let a = render_tile(&config, &Scene::generate(&config, well), well, &tile_positions(&config, well)[4], 1, 2, 1);
    let b = render_tile(&config, &Scene::generate(&config, well), well, &tile_positions(&config, well)[4], 1, 2, 1);
    assert_eq!(a, b);
    let other = SynthConfig { seed: 7, ..config.clone() };
    let c = render_tile(&other, &Scene::generate(&other, well), well, &tile_positions(&other, well)[4], 1, 2, 1);
    assert_ne!(a, c);
    // Jitter is sub-pixel and bounded.
    let tiles = tile_positions(&config, well);
    assert!(tiles.iter().any(|t| t.x.fract().abs() > 1e-6));
    for t in &tiles {
        let nominal_x = 18.0 + f64::from(t.col) * config.step();
        assert!((t.x - nominal_x).abs() <= config.jitter_px + 1e-9);
    }
}

#[test]
fn ragged_and_duplicated_plates_are_reported_precisely() {
    let dir = tmp("ragged");
    let config = SynthConfig { timepoints: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    std::fs::remove_file(dir.join("TimePoint_1/ZStep_2/B03_s4_w2.tif")).expect("remove one image");
    let err = open_plate(&dir, None).expect_err("ragged");
    match &err {
        FormatError::Index { source: IndexError::Ragged { missing, .. }, .. } => {
            assert_eq!(missing.len(), 1);
            assert_eq!(missing[0].to_string(), "B03 site 4 channel 2 z 2 t 1");
        }
        other => panic!("expected ragged, got {other}"),
    }
    assert!(err.to_string().contains("well B03 lacks 1 of 36 images (site 4 channel 2 z 2 t 1)"), "{err}");

    // Same components twice: once in a ZStep folder, once with an explicit _z in the name.
    std::fs::copy(dir.join("TimePoint_1/ZStep_1/A01_s1_w1.tif"), dir.join("TimePoint_1/ZStep_2/B03_s4_w2.tif"))
        .expect("restore");
    std::fs::copy(dir.join("TimePoint_1/ZStep_1/A01_s1_w1.tif"), dir.join("TimePoint_1/A01_s1_w1_z1.tif"))
        .expect("dup");
    let err = open_plate(&dir, None).expect_err("duplicate");
    assert!(
        err.to_string().contains("A01 site 1 channel 1 z 1 t 1 appears twice: TimePoint_1/A01_s1_w1_z1.tif and TimePoint_1/ZStep_1/A01_s1_w1.tif"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A second `.HTD` in the plate (another plate's, a backup) is reported with the one read, which
/// is the one with "plate" in its name, then the first by name.
#[test]
fn a_plate_with_two_htd_files_says_which_it_read() {
    let dir = tmp("two-htd");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, z_planes: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let plate = open_plate(&dir, None).expect("open");
    assert!(!plate.disagreements.iter().any(|d| d.contains(".HTD files")), "{:?}", plate.disagreements);
    let htd = std::fs::read_to_string(dir.join("synthetic_plate.HTD")).expect("read");
    std::fs::write(dir.join("a_backup.HTD"), htd.replace("\"XSites\", 3", "\"XSites\", 1")).expect("write");
    let plate = open_plate(&dir, None).expect("open");
    let said: Vec<&String> = plate.disagreements.iter().filter(|d| d.contains(".HTD files")).collect();
    assert!(
        said.len() == 1
            && said[0].contains("2 .HTD files (synthetic_plate.HTD, a_backup.HTD): synthetic_plate.HTD was read"),
        "{said:?}"
    );
    assert_eq!(plate.metadata.grid, Some((2, 3)), "the plate's own .HTD, not the backup's");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn unreadable_htd_and_missing_plate_are_typed_errors() {
    let dir = tmp("bad-htd");
    std::fs::create_dir_all(dir.join("TimePoint_1")).expect("mkdir");
    std::fs::write(dir.join("plate.HTD"), [0u8, 159, 146, 150, 255, 0, 1]).expect("write");
    let err = open_plate(&dir, None).expect_err("bad htd");
    assert!(matches!(err, FormatError::BadMetadata { .. }), "{err}");
    assert!(err.to_string().contains("plate.HTD: unreadable HTD"), "{err}");

    let err = open_plate(&dir.join("does-not-exist"), None).expect_err("missing");
    assert!(matches!(err, FormatError::NotADirectory(_)), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn symlink_loops_do_not_hang_the_scan() {
    let dir = tmp("loop");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, z_planes: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    std::os::unix::fs::symlink(&dir, dir.join("TimePoint_1").join("loop")).expect("symlink");
    std::os::unix::fs::symlink(&dir, dir.join("TimePoint_2")).expect("symlink");
    // The loop folders are entered at most once (fixed depth), so this terminates; the
    // TimePoint_2 link adds nothing because its images sit one level deeper than a timepoint.
    let plate = open_plate(&dir, None).expect("open");
    assert_eq!(plate.index.len(), 6 * 2);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn an_image_that_links_to_nowhere_is_named_not_called_a_ragged_plate() {
    let dir = tmp("dangling");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, z_planes: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let image = dir.join("TimePoint_1/A01_s2_w1.tif");
    std::fs::remove_file(&image).expect("remove");
    std::os::unix::fs::symlink(dir.join("gone/elsewhere.tif"), &image).expect("symlink");
    // Skipped, it made the plate ragged ("well A01 lacks 1 of 12 images"); indexed, reading it
    // says what is wrong with it.
    let plate = open_plate(&dir, None).expect("a complete plate");
    assert_eq!(plate.index.len(), 6 * 2);
    let key = ImageKey { well: config.wells[0], timepoint: 1, site: 2, channel: 1, z: 1 };
    let err = plate.load_plane(&key).expect_err("dangling").to_string();
    assert!(
        err.contains("A01_s2_w1.tif: a symbolic link to") && err.contains("gone/elsewhere.tif, which does not exist"),
        "{err}"
    );
    // The plate's first image too: the plate is described from the next readable one, and only
    // that image's well fails when it is read.
    let first = dir.join("TimePoint_1/A01_s1_w1.tif");
    std::fs::remove_file(&first).expect("remove");
    std::os::unix::fs::symlink(dir.join("gone/first.tif"), &first).expect("symlink");
    let plate = open_plate(&dir, None).expect("opens from the next readable image");
    assert_eq!(plate.metadata.tile_shape, Some((64, 64)));
    // Not silently: the unreadable first image is among the plate's disagreements (warned on
    // `run` and `check`, refused by `--strict`).
    assert!(
        plate
            .disagreements
            .iter()
            .any(|d| d.contains("A01_s1_w1.tif: a symbolic link") && d.contains("first readable image")),
        "{:?}",
        plate.disagreements
    );
    let first_key = ImageKey { site: 1, ..key };
    assert!(plate.load_plane(&first_key).expect_err("dangling").to_string().contains("A01_s1_w1.tif: a symbolic link"));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn stacks_load_in_order_and_bad_planes_fail_with_the_file_named() {
    use hcs_plate::LoadError;
    let dir = tmp("stack");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let plate = open_plate(&dir, None).expect("open");
    let well = config.wells[0];
    let keys: Vec<ImageKey> = (1..=3).map(|z| ImageKey { well, timepoint: 1, site: 2, channel: 1, z }).collect();
    let stack = plate.load_stack(&keys).expect("stack");
    assert_eq!(stack.dim(), (3, 64, 64));
    // Each plane is handed over as it is read, in order, equal to its place in the stack.
    let (with, seen) = plate.load_stack_with(&keys, |i, plane| Some((i, plane.to_owned()))).expect("stack");
    assert_eq!(with, stack);
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 1, 2]);
    for (i, plane) in &seen {
        assert_eq!(stack.index_axis(ndarray::Axis(0), *i), plane);
    }
    let z2 = plate.index.get(&keys[1]).expect("indexed").load(&plate.root).expect("load").to_f32();
    assert_eq!(stack.index_axis(ndarray::Axis(0), 1), z2);
    // One plane as stored: the 16-bit samples the stack holds as f32.
    let Ok(hcs_vfs::PlaneData::U16(stored)) = plate.load_plane(&keys[1]) else { panic!("a u16 plane") };
    assert_eq!(stored.mapv(f32::from), z2);
    let missing = ImageKey { z: 9, ..keys[0] };
    let err = plate.load_plane(&missing).expect_err("not indexed");
    assert!(matches!(err, LoadError::NotIndexed(k) if k == missing), "{err}");

    // One plane of another size.
    let odd = dir.join("TimePoint_1/ZStep_3/A01_s2_w1.tif");
    hcs_vfs::tiff::write_tiff(&odd, &[hcs_vfs::PlaneData::U16(ndarray::Array2::zeros((60, 64)))], Default::default())
        .expect("write");
    let err = plate.load_stack(&keys).expect_err("mismatch");
    assert!(matches!(err, LoadError::ShapeMismatch { found_h: 60, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "A01 site 2 channel 1 z 3 t 1 (TimePoint_1/ZStep_3/A01_s2_w1.tif) is 60×64, but the other planes of this stack are 64×64"
    );

    // Larger than the others: refused, nothing written past its part of the stack.
    hcs_vfs::tiff::write_tiff(&odd, &[hcs_vfs::PlaneData::U16(ndarray::Array2::zeros((70, 64)))], Default::default())
        .expect("write");
    let err = plate.load_stack(&keys).expect_err("mismatch");
    assert!(matches!(err, LoadError::ShapeMismatch { found_h: 70, found_w: 64, .. }), "{err}");

    // One plane of another sample type (8-bit among 16-bit; float among 16-bit), first in its
    // stack or not: refused naming it, not read as if it were of the plate's type.
    let first = dir.join("TimePoint_1/ZStep_1/A01_s2_w1.tif");
    let kept = std::fs::read(&first).expect("read");
    for (at, plane) in [
        (&odd, hcs_vfs::PlaneData::U8(ndarray::Array2::from_elem((64, 64), 200u8))),
        (&first, hcs_vfs::PlaneData::U8(ndarray::Array2::from_elem((64, 64), 200u8))),
        (&odd, hcs_vfs::PlaneData::F32(ndarray::Array2::from_elem((64, 64), 0.5f32))),
    ] {
        std::fs::copy(dir.join("TimePoint_1/ZStep_2/A01_s2_w1.tif"), &odd).expect("restore");
        std::fs::write(&first, &kept).expect("restore");
        let found = plane.dtype();
        hcs_vfs::tiff::write_tiff(at, &[plane], Default::default()).expect("write");
        let err = plate.load_stack(&keys).expect_err("mixed types");
        assert!(
            matches!(err, LoadError::DtypeMismatch { found: f, want: hcs_vfs::Dtype::U16, declared: false, .. } if f == found),
            "{err}"
        );
        let name = at.strip_prefix(&dir).expect("in the plate").display().to_string();
        assert!(err.to_string().contains(&name) && err.to_string().contains("as its first image is"), "{err}");
    }
    std::fs::write(&first, &kept).expect("restore");

    // A corrupt plane names its file.
    std::fs::write(&odd, b"II*\0garbage").expect("write");
    let err = plate.load_stack(&keys).expect_err("corrupt");
    assert!(err.to_string().contains("A01_s2_w1.tif"), "{err}");
    let err = plate.load_plane(&keys[2]).expect_err("corrupt");
    assert!(matches!(err, LoadError::Storage { .. }) && err.to_string().contains("A01_s2_w1.tif"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len(), m.modified().expect("mtime")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn reading_never_modifies_the_input_plate_and_explicit_formats_work() {
    let dir = tmp("untouched");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let before = snapshot(&dir);
    let plate = open_plate(&dir, Some(FormatKind::Imagexpress)).expect("explicit format");
    let keys: Vec<ImageKey> = plate.index.iter().map(|(k, _)| *k).take(3).collect();
    plate.load_stack(&keys).expect("load");
    assert_eq!(snapshot(&dir), before, "the input plate must not change");
    // Asking for the wrong format is a clear error, not a guess.
    let err = open_plate(&dir, Some(FormatKind::OperaPhenix)).expect_err("not opera");
    assert!(err.to_string().contains("Opera Phenix plate has no Images/Index.xml"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn oversized_metadata_files_are_refused_before_reading() {
    let dir = tmp("huge-meta");
    std::fs::create_dir_all(dir.join("Images")).expect("mkdir");
    // Sparse files: the size is claimed, nothing is allocated.
    std::fs::File::create(dir.join("Images/Index.xml")).expect("create").set_len(300 * 1024 * 1024).expect("len");
    let err = open_plate(&dir, None).expect_err("huge xml");
    assert!(err.to_string().contains("above the 268435456-byte limit"), "{err}");
    std::fs::remove_dir_all(dir.join("Images")).expect("rm");
    std::fs::File::create(dir.join("plate.HTD")).expect("create").set_len(32 * 1024 * 1024).expect("len");
    let err = open_plate(&dir, None).expect_err("huge htd");
    assert!(err.to_string().contains("HTD file larger than 16 MiB"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The pixel size comes from the MetaMorph XML in the first TIFF's ImageDescription (synthetic
/// plates write it as ImageXpress does); a plate whose TIFFs carry none has no pixel size.
#[test]
fn the_pixel_size_comes_from_the_metamorph_xml_of_the_images() {
    let dir = std::env::temp_dir().join(format!("hcs-ixm-calibration-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = hcs_synth::SynthConfig {
        wells: vec!["B02".parse().expect("well")],
        grid: (2, 2),
        tile: 32,
        jitter_px: 2.0,
        ..hcs_synth::SynthConfig::default()
    };
    hcs_synth::synthesize(&config, &dir).expect("synthesize");
    let plate = hcs_plate::formats::open_plate(&dir, None).expect("open");
    assert_eq!(plate.metadata.pixel_size_um, Some(0.65));
    // The stage step between neighbouring sites, from the MetaMorph stage-position-x/y (tiles 32 px of 0.65 µm at 10 %
    // overlap, ±2 px of stage error: 0.9 × 32 × 0.65 µm give or take the error's median).
    let nominal = 0.9 * 32.0 * 0.65;
    let (sx, sy) = plate.metadata.site_step_um;
    for s in [sx, sy] {
        assert!(s.is_some_and(|s| (s - nominal).abs() <= 2.0 * 0.65 * 2.0), "{:?} vs {nominal}", (sx, sy));
    }
    let overlap = hcs_plate::stage::overlap_from_step((sx, sy), plate.metadata.pixel_size_um, Some((32, 32)));
    assert!(overlap.is_some_and(|(x, y)| (x - 0.1).abs() < 0.2 && (y - 0.1).abs() < 0.2), "{overlap:?}");

    // The same plate with its descriptions stripped (rewritten without the tag).
    for path in hcs_synth::image_paths(&config, &dir) {
        let planes = hcs_vfs::tiff::read_tiff(&path, hcs_vfs::tiff::TiffLimits::default()).expect("read");
        hcs_vfs::tiff::write_tiff(&path, &planes, hcs_vfs::tiff::TiffCompression::None).expect("rewrite");
    }
    let plate = hcs_plate::formats::open_plate(&dir, None).expect("open");
    assert_eq!(plate.metadata.pixel_size_um, None, "no description, no pixel size");
    assert_eq!(plate.metadata.site_step_um, (None, None), "no description, no stage positions");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Files among the images that are not images of the plate are listed, never skipped silently:
/// a renamed z folder, a stray file. Thumbnails are expected and not listed; MetaXpress names
/// (plate prefix, GUID after the wavelength) are read as the same planes.
#[test]
fn files_that_match_no_image_name_are_listed_and_metaxpress_names_are_read() {
    let dir = std::env::temp_dir().join(format!("hcs-ixm-unmatched-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = hcs_synth::SynthConfig {
        wells: vec!["A01".parse().expect("well")],
        grid: (1, 2),
        tile: 16,
        z_planes: 2,
        ..hcs_synth::SynthConfig::default()
    };
    hcs_synth::synthesize(&config, &dir).expect("synthesize");
    let clean = hcs_plate::formats::open_plate(&dir, None).expect("open");
    assert!(clean.unmatched.is_empty(), "{:?}", clean.unmatched);
    assert!(clean.disagreements.is_empty(), "{:?}", clean.disagreements);

    // MetaXpress export names for every image: same planes.
    let guid = "C5C6F2A5-1234-4ABC-9DEF-0123456789AB";
    for path in hcs_synth::image_paths(&config, &dir) {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let renamed = name.replace("_w1.tif", &format!("_w1{guid}.tif")).replace("_w2.tif", &format!("_w2{guid}.tif"));
        std::fs::rename(&path, path.with_file_name(format!("Screen_{renamed}"))).expect("rename");
        std::fs::write(path.with_file_name(format!("Screen_{}", name.replace(".tif", "_thumb.tif"))), b"x")
            .expect("thumbnail");
        // A Mac's AppleDouble companion: neither the image a second time nor a stray file.
        std::fs::write(path.with_file_name(format!("._Screen_{renamed}")), b"\0\x05\x16\x07").expect("AppleDouble");
    }
    let exported = hcs_plate::formats::open_plate(&dir, None).expect("open");
    let keys = |p: &hcs_plate::Plate| p.index.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    assert_eq!(keys(&exported), keys(&clean));
    assert!(exported.unmatched.is_empty(), "thumbnails and `._` files are expected: {:?}", exported.unmatched);

    // A renamed z folder and a stray file: listed.
    let t1 = dir.join("TimePoint_1");
    std::fs::rename(t1.join("ZStep_1"), t1.join("ZStep_1_old")).expect("rename z folder");
    std::fs::write(t1.join("notes.txt"), b"x").expect("stray");
    let plate = hcs_plate::formats::open_plate(&dir, None).expect("open");
    let listed: Vec<String> = plate.unmatched.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(listed, ["TimePoint_1/ZStep_1_old", "TimePoint_1/notes.txt"]);
    // …and the .HTD's two z-steps disagree with the one left.
    assert_eq!(plate.disagreements, ["the .HTD announces 2 z-steps (ZSteps); the images have 1 (2)"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every image of `plate` with its components, relative path first.
fn files_by_key(plate: &hcs_plate::Plate) -> Vec<(ImageKey, PathBuf)> {
    plate
        .index
        .iter()
        .filter_map(|(k, p)| match p {
            hcs_plate::PlaneRef::File { path, .. } => Some((*k, path.clone())),
            hcs_plate::PlaneRef::Zarr { .. } => None,
        })
        .collect()
}

fn keys(plate: &hcs_plate::Plate) -> Vec<ImageKey> {
    plate.index.iter().map(|(k, _)| *k).collect()
}

/// Rewrite the synthetic plate's `.HTD`: each `(key, value)` replaces that key's line (`None`
/// removes it).
fn edit_htd(dir: &std::path::Path, edits: &[(&str, Option<&str>)]) {
    let path = hcs_plate::formats::htd::find_htd(dir).expect("list").expect("an .HTD");
    let text = std::fs::read_to_string(&path).expect("read htd");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("\"EndFile\""))
        .filter(|l| !edits.iter().any(|(k, _)| l.starts_with(&format!("\"{k}\","))))
        .map(str::to_owned)
        .collect();
    lines.extend(edits.iter().filter_map(|(k, v)| v.map(|v| format!("\"{k}\", {v}"))));
    lines.push("\"EndFile\", ".to_owned());
    std::fs::write(&path, lines.join("\r\n") + "\r\n").expect("write htd");
}

/// Single-site MetaXpress exports name no site (`Plate1_A01_w1<GUID>.tif`): every image is site 1,
/// whether the `.HTD` says one site (`XSites` = `YSites` = 1, or `"Sites", FALSE` over stale
/// counts) or says nothing about sites; an `.HTD` announcing more sites is reported.
#[test]
fn single_site_exports_without_a_site_part_are_site_1() {
    let dir = tmp("single-site");
    let config = SynthConfig { grid: (1, 1), z_planes: 1, timepoints: 1, tile: 16, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let clean = open_plate(&dir, None).expect("open");
    let guid = "3A741B01-366B-FA26-2EEB-B860EA267C9B";
    for (key, rel) in files_by_key(&clean) {
        let path = dir.join(&rel);
        let name = format!("Plate1_{}_w{}{guid}.tif", key.well, key.channel);
        std::fs::rename(&path, path.with_file_name(&name)).expect("rename");
        std::fs::write(path.with_file_name(format!("Plate1_{}_w{}_thumb{guid}.tif", key.well, key.channel)), b"x")
            .expect("thumbnail");
    }
    let names: Vec<String> = std::fs::read_dir(dir.join("TimePoint_1"))
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("_thumb"))
        .collect();
    assert!(names.iter().all(|n| !n.contains("_s")), "{names:?}");

    let check = |grid: Option<(u32, u32)>, disagreements: &[&str]| {
        let plate = open_plate(&dir, None).expect("open");
        assert_eq!(keys(&plate), keys(&clean));
        assert!(plate.index.iter().all(|(k, _)| k.site == 1));
        assert_eq!(plate.index.len(), 2 * 2, "two wells, two channels");
        assert!(plate.unmatched.is_empty(), "{:?}", plate.unmatched);
        assert_eq!(plate.metadata.grid, grid);
        assert_eq!(plate.disagreements, disagreements);
    };
    // The synthetic .HTD says XSites 1, YSites 1.
    check(Some((1, 1)), &[]);
    edit_htd(&dir, &[("XSites", None), ("YSites", None)]);
    check(None, &[]);
    edit_htd(&dir, &[("Sites", Some("FALSE")), ("XSites", Some("3")), ("YSites", Some("2"))]);
    check(Some((1, 1)), &[]);
    edit_htd(&dir, &[("Sites", Some("TRUE"))]);
    check(Some((2, 3)), &["the .HTD announces 6 sites per well (XSites × YSites / SiteSelection); the images have 1"]);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// `_z<N>` / `_t<N>` name parts give z and time where no folder does (images in the root), and
/// must agree with `ZStep_N` / `TimePoint_N` folders where both do: a disagreement is reported
/// once per component, with how many images and the first of them, and the folder's value is used.
#[test]
fn z_and_time_in_names_are_read_and_checked_against_their_folders() {
    let dir = tmp("z-t-names");
    let config =
        SynthConfig { wells: vec!["A01".parse().expect("well")], grid: (1, 2), tile: 16, channels: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let clean = open_plate(&dir, None).expect("open");
    assert_eq!(clean.index.len(), 2 * 3 * 2, "2 sites, 3 z, 2 timepoints");
    let files = files_by_key(&clean);

    // Folders with agreeing `_z` / `_t`: the same planes, nothing reported.
    for (key, rel) in &files {
        let path = dir.join(rel);
        let name = format!("{}_s{}_w{}_z{}_t{}.tif", key.well, key.site, key.channel, key.z, key.timepoint);
        std::fs::rename(&path, path.with_file_name(name)).expect("rename");
    }
    let agreeing = open_plate(&dir, None).expect("open");
    assert_eq!(keys(&agreeing), keys(&clean));
    assert!(agreeing.disagreements.is_empty(), "{:?}", agreeing.disagreements);

    // Names whose `_t` and `_z` their folders contradict: reported, the folders win.
    let moved =
        |key: &ImageKey| format!("{}_s{}_w{}_z{}_t{}.tif", key.well, key.site, key.channel, key.z, key.timepoint);
    let t2 = dir.join("TimePoint_2");
    for (key, _) in files.iter().filter(|(k, _)| k.timepoint == 2) {
        let from = t2.join(format!("ZStep_{}", key.z)).join(moved(key));
        let to = from.with_file_name(format!("{}_s{}_w{}_z{}_t7.tif", key.well, key.site, key.channel, key.z));
        std::fs::rename(&from, &to).expect("rename t");
    }
    std::fs::rename(t2.join("ZStep_3/A01_s2_w1_z3_t7.tif"), t2.join("ZStep_3/A01_s2_w1_z9_t7.tif")).expect("rename z");
    let contradicted = open_plate(&dir, None).expect("open");
    assert_eq!(keys(&contradicted), keys(&clean));
    assert_eq!(
        contradicted.disagreements,
        [
            "6 images' names give another timepoint than their TimePoint_N folder (the folder's is used), e.g. TimePoint_2/ZStep_1/A01_s1_w1_z1_t7.tif: timepoint 7 in the name, 2 by the folder",
            "1 image's name gives another z than its ZStep_N folder (the folder's is used), e.g. TimePoint_2/ZStep_3/A01_s2_w1_z9_t7.tif: z 9 in the name, 3 by the folder",
        ]
    );

    // No folders at all: `A01_s1_w1_z2_t3.tif` in the plate root.
    let root_form = tmp("z-t-root");
    std::fs::create_dir_all(&root_form).expect("mkdir");
    let htd = hcs_plate::formats::htd::find_htd(&dir).expect("list").expect("an .HTD");
    std::fs::copy(&htd, root_form.join(htd.file_name().expect("name"))).expect("htd");
    for (key, rel) in files_by_key(&contradicted) {
        std::fs::copy(dir.join(rel), root_form.join(moved(&key))).expect("copy");
    }
    let flat = open_plate(&root_form, None).expect("open");
    assert_eq!(keys(&flat), keys(&clean));
    assert!(
        flat.unmatched.is_empty() && flat.disagreements.is_empty(),
        "{:?} {:?}",
        flat.unmatched,
        flat.disagreements
    );
    for (key, rel) in files_by_key(&flat) {
        assert_eq!(rel, PathBuf::from(moved(&key)));
        assert_eq!(
            flat.index.get(&key).expect("indexed").load(&flat.root).expect("load"),
            contradicted.index.get(&key).expect("indexed").load(&dir).expect("load"),
            "{key}"
        );
    }
    std::fs::remove_dir_all(&root_form).expect("cleanup");

    // `_t` alone (one z-plane): `A01_s1_w1_t2.tif` in the root, and a `_t` that a TimePoint
    // folder contradicts.
    let t_only = tmp("t-only");
    let config = SynthConfig { z_planes: 1, ..config };
    synthesize(&config, &t_only).expect("synthesize");
    let folders = open_plate(&t_only, None).expect("open");
    for (key, rel) in files_by_key(&folders) {
        let name = format!("{}_s{}_w{}_t{}.tif", key.well, key.site, key.channel, key.timepoint);
        std::fs::rename(t_only.join(&rel), t_only.join(name)).expect("move to the root");
    }
    std::fs::remove_dir(t_only.join("TimePoint_1")).expect("rmdir");
    std::fs::remove_dir(t_only.join("TimePoint_2")).expect("rmdir");
    let flat = open_plate(&t_only, None).expect("open");
    assert_eq!(keys(&flat), keys(&folders));
    assert_eq!(flat.index.values(Component::Timepoint), [1, 2]);
    assert!(
        flat.unmatched.is_empty() && flat.disagreements.is_empty(),
        "{:?} {:?}",
        flat.unmatched,
        flat.disagreements
    );
    // The same names in swapped TimePoint folders: every `_t` contradicted.
    for t in [1, 2] {
        std::fs::create_dir(t_only.join(format!("TimePoint_{t}"))).expect("mkdir");
    }
    for (key, rel) in files_by_key(&flat) {
        let into = t_only.join(format!("TimePoint_{}", 3 - key.timepoint)).join(&rel);
        std::fs::rename(t_only.join(&rel), into).expect("move");
    }
    let crossed = open_plate(&t_only, None).expect("open");
    assert_eq!(
        crossed.disagreements,
        [
            "4 images' names give another timepoint than their TimePoint_N folder (the folder's is used), e.g. TimePoint_1/A01_s1_w1_t2.tif: timepoint 2 in the name, 1 by the folder"
        ]
    );
    std::fs::remove_dir_all(&t_only).expect("cleanup");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The `.HTD`'s `TimePoints`, `ZSeries` / `ZSteps`, `SiteSelection` and `WellsSelection` are
/// checked against the images (what they announce that the images lack is reported, and a site
/// selection with gaps is reported); `WaveName<N>` names the channels.
#[test]
fn htd_selections_series_and_wave_names_are_honoured() {
    let dir = tmp("htd-keys");
    let config = SynthConfig { grid: (1, 2), z_planes: 1, timepoints: 2, tile: 16, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let open = || open_plate(&dir, None).expect("open");
    let plate = open();
    assert!(plate.disagreements.is_empty(), "{:?}", plate.disagreements);

    // WaveName<N> names channel N; a channel without one is `w<N>`.
    edit_htd(&dir, &[("WaveName1", Some("\"Hoechst 33342\"")), ("WaveName2", None)]);
    let names: Vec<String> = open().metadata.channels.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names, ["Hoechst 33342", "w2"]);

    // TimePoints.
    edit_htd(&dir, &[("TimePoints", Some("3"))]);
    assert_eq!(open().disagreements, ["the .HTD announces 3 timepoints (TimePoints); the images have 2 (1, 2)"]);
    edit_htd(&dir, &[("TimePoints", Some("2"))]);

    // ZSeries FALSE: one z-step, whatever a stale ZSteps says; TRUE: ZSteps counts.
    edit_htd(&dir, &[("ZSeries", Some("FALSE")), ("ZSteps", Some("4"))]);
    assert!(open().disagreements.is_empty(), "{:?}", open().disagreements);
    edit_htd(&dir, &[("ZSeries", Some("TRUE"))]);
    assert_eq!(open().disagreements, ["the .HTD announces 4 z-steps (ZSteps); the images have 1 (1)"]);
    edit_htd(&dir, &[("ZSeries", Some("FALSE"))]);

    // WellsSelection<row>: the TRUEs are the wells (A01 and B03 here).
    edit_htd(&dir, &[("WellsSelection1", Some("TRUE, FALSE, FALSE")), ("WellsSelection2", Some("FALSE, FALSE, TRUE"))]);
    assert!(open().disagreements.is_empty(), "{:?}", open().disagreements);
    edit_htd(&dir, &[("WellsSelection2", Some("TRUE, FALSE, TRUE"))]);
    assert_eq!(open().disagreements, ["the .HTD announces 3 wells (WellsSelection); the images have 2"]);
    edit_htd(&dir, &[("WellsSelection2", Some("FALSE, FALSE, TRUE"))]);

    // SiteSelection<row>: the TRUEs are the sites per well (XSites 2 × YSites 1 here).
    edit_htd(&dir, &[("SiteSelection1", Some("TRUE, TRUE"))]);
    assert!(open().disagreements.is_empty(), "{:?}", open().disagreements);
    edit_htd(&dir, &[("SiteSelection1", Some("TRUE, FALSE"))]);
    let reported = open().disagreements;
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(reported[0], "the .HTD announces 1 sites per well (XSites × YSites / SiteSelection); the images have 2");
    assert!(
        reported[1].starts_with("the .HTD selects 1 of its 1 × 2 sites (SiteSelection): a site grid with gaps"),
        "{}",
        reported[1]
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn prefetching_a_well_hints_each_of_its_files_once_and_names_a_missing_one() {
    let dir = tmp("prefetch");
    let config = small();
    synthesize(&config, &dir).expect("synthesize");
    let plate = open_plate(&dir, None).expect("open");
    let a01: hcs_plate::WellId = "A01".parse().expect("well");
    let key = ImageKey { well: a01, timepoint: 2, site: 4, channel: 2, z: 3 };
    let before = plate.load_plane(&key).expect("load");
    // One file per plane here: 6 sites × 2 channels × 3 z × 2 timepoints.
    let done = plate.prefetch_well(a01, u64::MAX);
    assert_eq!((done.hinted, done.left, done.refused), (72, 0, 0), "{done:?}");
    assert!(done.first_refusal.is_none());
    // The files' sizes in the index's order (one file per plane here).
    let sizes: Vec<u64> = plate
        .index
        .well(a01)
        .map(|(_, r)| match r {
            PlaneRef::File { path, .. } => std::fs::metadata(plate.root.join(path)).expect("stat").len(),
            PlaneRef::Zarr { .. } => 0,
        })
        .collect();
    assert_eq!(done.bytes, sizes.iter().sum::<u64>(), "every byte of the well's files");
    assert_eq!(plate.load_plane(&key).expect("load"), before, "the hint changes no plane");
    // A budget stops the hints once spent: here after the tenth file, which reaches it.
    let ten: u64 = sizes[..10].iter().sum();
    let part = plate.prefetch_well(a01, ten - 1);
    assert_eq!((part.hinted, part.left, part.refused), (10, 62, 0), "{part:?}");
    assert_eq!(plate.prefetch_well(a01, 0).left, 72, "no budget, no hint");
    // A well the plate does not have: nothing to hint.
    let absent = plate.prefetch_well("H12".parse().expect("well"), u64::MAX);
    assert_eq!((absent.hinted, absent.refused), (0, 0));
    // A file gone since the plate was indexed: counted and named, the others still hinted.
    let PlaneRef::File { path, .. } = plate.index.get(&key).expect("indexed") else { panic!("a file plate") };
    std::fs::remove_file(plate.root.join(path)).expect("remove");
    let done = plate.prefetch_well(a01, u64::MAX);
    assert_eq!((done.hinted, done.refused), (71, 1), "{done:?}");
    let refusal = done.first_refusal.expect("the missing file").to_string();
    assert!(refusal.contains(&path.display().to_string()), "{refusal}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_multi_page_tiff_where_the_format_reads_one_image_is_reported_not_silently_cut() {
    let dir = tmp("pages");
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], timepoints: 1, z_planes: 1, ..small() };
    synthesize(&config, &dir).expect("synthesize");
    let plate = open_plate(&dir, None).expect("open");
    assert!(plate.disagreements.is_empty(), "{:?}", plate.disagreements);
    assert!(plate.check_image_headers().problems.is_empty());
    // Every site's file becomes a 3-page z-stack: the format names one image per file.
    let mut files: Vec<PathBuf> = plate
        .index
        .iter()
        .filter_map(|(_, p)| match p {
            hcs_plate::PlaneRef::File { path, .. } => Some(dir.join(path)),
            hcs_plate::PlaneRef::Zarr { .. } => None,
        })
        .collect();
    files.dedup();
    let page = |v: u16| hcs_vfs::PlaneData::U16(ndarray::Array2::from_elem((64, 64), v));
    for file in &files {
        hcs_vfs::tiff::write_tiff(file, &[page(1), page(2), page(3)], Default::default()).expect("write");
    }
    let plate = open_plate(&dir, None).expect("opens");
    assert_eq!(plate.disagreements.len(), 1, "{:?}", plate.disagreements);
    assert!(
        plate.disagreements[0].contains("holds 3 full-size images, but the plate's format reads 1 from it"),
        "{}",
        plate.disagreements[0]
    );
    let problems: Vec<String> = plate.check_image_headers().problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), files.len(), "every file: {problems:#?}");
    assert!(problems[0].contains("3 full-size images in one file") && problems[0].contains("the other 2 are not read"));
    // Reading the images refuses every multi-page file, not only the first (a run without
    // `--deep` read page 1 of the others without a word).
    let keys: Vec<ImageKey> = plate.index.iter().map(|(k, _)| *k).collect();
    let last = keys.last().copied().expect("images");
    let err = plate.load_stack(&[last]).expect_err("a 3-page file");
    assert!(err.to_string().contains("3 full-size images in one file, where the plate's format has one image per file: the other 2 would be left out"), "{err}");
    // A reduced-resolution page (a thumbnail the camera software adds) is no second image.
    let thumbnail = hcs_vfs::PlaneData::U16(ndarray::Array2::from_elem((16, 16), 9));
    for file in &files {
        hcs_vfs::tiff::write_tiff(file, &[page(1), thumbnail.clone()], Default::default()).expect("write");
    }
    let plate = open_plate(&dir, None).expect("opens");
    let stack = plate.load_stack(&[last]).expect("one full-size image and a smaller page");
    assert!(stack.iter().all(|v| *v == 1.0));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A folder that is not the plate says where the plate is; image folders whose TIFFs are all
/// named otherwise say how many there are and how they are named (not just "no images found").
#[test]
fn a_wrong_folder_and_unreadable_names_say_what_was_found() {
    let outer = tmp("nested");
    let dir = outer.join("Plate_0042");
    let config = SynthConfig {
        wells: vec!["A01".parse().expect("well")],
        grid: (1, 2),
        tile: 16,
        z_planes: 1,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir).expect("synthesize");
    let err = open_plate(&outer, None).expect_err("not the plate");
    assert!(
        err.to_string().ends_with(&format!("; one level down, {} is a plate: pass that folder", dir.display())),
        "{err}"
    );
    let err = open_plate(&dir.join("TimePoint_1"), None).expect_err("not the plate");
    assert!(
        err.to_string().ends_with(&format!("; the folder above, {}, is a plate: pass that folder", dir.display())),
        "{err}"
    );
    let empty = tmp("nothing-here");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let err = open_plate(&empty, None).expect_err("nothing");
    assert!(err.to_string().ends_with("OpenHCS's openhcs_metadata.json)"), "no hint where there is none: {err}");

    // Every image renamed to lower case: no name reads, and the error says so.
    let images = hcs_synth::image_paths(&config, &dir);
    for path in &images {
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_lowercase();
        std::fs::rename(path, path.with_file_name(name)).expect("rename");
    }
    let err = open_plate(&dir, None).expect_err("no image names");
    assert!(matches!(err, FormatError::NoImageNames { tiffs, .. } if tiffs == images.len()), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("{} TIFF files found, but none is named like an ImageXpress image", images.len())),
        "{err}"
    );
    assert!(err.to_string().contains("e.g. TimePoint_1/a01_s1_w1.tif"), "{err}");
    let _ = std::fs::remove_dir_all(&outer);
    let _ = std::fs::remove_dir_all(&empty);
}
