//! Opera Phenix: `synthesize` → detect → index → load, bit-identical, with fields renumbered from
//! stage positions into the raster sites of the ground truth.

use hcs_plate::formats::{FormatError, detect, open_plate};
use hcs_plate::{FormatKind, ImageKey};
use hcs_synth::{Scene, SynthConfig, SynthFormat, render_tile, synthesize, tile_positions};

fn config() -> SynthConfig {
    SynthConfig {
        wells: ["A01", "C02"].iter().map(|w| w.parse().expect("well")).collect(),
        grid: (3, 3),
        tile: 48,
        z_planes: 2,
        timepoints: 2,
        jitter_px: 3.0,
        format: SynthFormat::OperaPhenix,
        ..SynthConfig::default()
    }
}

#[test]
fn opera_plate_round_trips_with_raster_sites() {
    let dir = std::env::temp_dir().join(format!("hcs-opera-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = config();
    synthesize(&config, &dir).expect("synthesize");
    assert_eq!(detect(&dir).expect("detect"), FormatKind::OperaPhenix);
    let plate = open_plate(&dir, None).expect("open");
    assert!(plate.unmatched.is_empty(), "every file of the images folder is listed: {:?}", plate.unmatched);
    assert_eq!(plate.metadata.grid, Some((3, 3)));
    assert_eq!(plate.metadata.pixel_size_um.map(|p| (p * 1000.0).round()), Some(650.0));
    // z spacing from the planes' AbsPositionZ (2 µm apart, on top of the stage's 0.135 m).
    assert!(plate.metadata.z_spacing_um.is_some_and(|z| (z - 2.0).abs() < 1e-6), "{:?}", plate.metadata.z_spacing_um);
    let names: Vec<_> = plate.metadata.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["HOECHST 33342", "Calcein"]);
    // The stage step between neighbouring sites, from the fields' PositionX/Y (tiles 48 px of 0.65 µm at 10 %
    // overlap, ±3 px of stage error: 0.9 × 48 × 0.65 µm give or take the error's median).
    let nominal = 0.9 * 48.0 * 0.65;
    let (sx, sy) = plate.metadata.site_step_um;
    for s in [sx, sy] {
        assert!(s.is_some_and(|s| (s - nominal).abs() <= 3.0 * 0.65 * 2.0), "{:?} vs {nominal}", (sx, sy));
    }
    let overlap = hcs_plate::stage::overlap_from_step((sx, sy), plate.metadata.pixel_size_um, Some((48, 48)));
    assert!(overlap.is_some_and(|(x, y)| (x - 0.1).abs() < 0.2 && (y - 0.1).abs() < 0.2), "{overlap:?}");

    assert_eq!(plate.index.len(), 2 * 9 * 2 * 2 * 2);

    for well in &config.wells {
        let scene = Scene::generate(&config, *well);
        for tile in tile_positions(&config, *well) {
            for (t, z, c) in [(1, 1, 1), (2, 2, 2)] {
                let key = ImageKey { well: *well, timepoint: t, site: tile.site, channel: c, z };
                let plane = plate.index.get(&key).expect("indexed");
                let loaded = plane.load(&plate.root).expect("load");
                assert_eq!(
                    loaded,
                    render_tile(&config, &scene, *well, &tile, t, z, c),
                    "{key} from {}",
                    plane.describe()
                );
            }
        }
    }

    // A missing listed image is named.
    let victim = dir.join("Images/r03c02f05p01-ch1sk1fk1fl1.tiff");
    std::fs::remove_file(&victim).expect("remove");
    let err = open_plate(&dir, None).expect_err("missing file");
    assert!(matches!(err, FormatError::BadMetadata { .. }), "{err}");
    assert!(err.to_string().contains("r03c02f05p01-ch1sk1fk1fl1.tiff but the file is missing"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn oversized_or_hostile_index_xml_is_refused() {
    let dir = std::env::temp_dir().join(format!("hcs-opera-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("Images")).expect("mkdir");
    std::fs::write(
        dir.join("Images/Index.xml"),
        r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>"#,
    )
    .expect("write");
    let err = open_plate(&dir, None).expect_err("external entity");
    assert!(err.to_string().contains("invalid Index.xml"), "{err}");

    std::fs::write(dir.join("Images/Index.xml"), "<EvaluationInputData><Images></Images></EvaluationInputData>")
        .expect("write");
    let err = open_plate(&dir, None).expect_err("no images");
    assert!(err.to_string().contains("lists no images"), "{err}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Images Index.xml does not list (a well missing from a stale index) and stray files are not
/// read, and are listed as such, as an ImageXpress plate's misnamed files are (they were
/// skipped without a word).
#[test]
fn files_the_index_does_not_list_are_listed_as_not_read() {
    let dir = std::env::temp_dir().join(format!("hcs-opera-unlisted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    synthesize(&config(), &dir).expect("synthesize");
    let images = dir.join("Images");
    std::fs::copy(images.join("r01c01f01p01-ch1sk1fk1fl1.tiff"), images.join("r05c05f01p01-ch1sk1fk1fl1.tiff"))
        .expect("an unlisted image");
    std::fs::write(images.join("notes.txt"), b"x").expect("stray");
    // Hidden files and folders are not listed.
    std::fs::write(images.join(".DS_Store"), b"x").expect("hidden");
    std::fs::create_dir_all(images.join("old")).expect("folder");
    let plate = open_plate(&dir, None).expect("open");
    let listed: Vec<String> = plate.unmatched.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(listed, ["Images/notes.txt", "Images/r05c05f01p01-ch1sk1fk1fl1.tiff"]);
    assert_eq!(plate.index.wells().len(), 2, "the unlisted well is not read");
    let _ = std::fs::remove_dir_all(&dir);
}
