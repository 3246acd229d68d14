//! An hcs plate (hcs_plate.json + TIFFs, or + OME-Zarr) is a valid input plate: written from a
//! synthetic ImageXpress plate, it reads back with identical planes at identical components.

use std::path::Path;

use hcs_plate::formats::native::{Backend, FORMAT_VERSION, HcsPlateFile, Subdir, write};
use hcs_plate::formats::{FormatError, detect, open_plate};
use hcs_plate::{Component, FormatKind, PlaneRef, Plate};
use hcs_synth::{SynthConfig, synthesize};
use hcs_vfs::omezarr::{NgffVersion, OmeZarrPlateWriter, PlateLayout, ZarrCodec};
use hcs_vfs::tiff::{TiffCompression, write_tiff};

fn source(dir: &Path) -> Plate {
    let config = SynthConfig {
        wells: ["A01", "B02"].iter().map(|w| w.parse().expect("well")).collect(),
        grid: (2, 2),
        tile: 32,
        ..SynthConfig::default()
    };
    synthesize(&config, dir).expect("synthesize");
    open_plate(dir, None).expect("open source")
}

fn copy_as_tiff(src: &Plate, out: &Path) -> Vec<(hcs_plate::ImageKey, PlaneRef)> {
    src.index
        .iter()
        .map(|(key, plane)| {
            let rel = Path::new("images")
                .join(format!("{}_s{}_c{}_z{}_t{}.tif", key.well, key.site, key.channel, key.z, key.timepoint));
            write_tiff(&out.join(&rel), &[plane.load(&src.root).expect("load")], TiffCompression::Deflate)
                .expect("write");
            (*key, PlaneRef::file(rel))
        })
        .collect()
}

fn copy_as_zarr(src: &Plate, out: &Path) -> Vec<(hcs_plate::ImageKey, PlaneRef)> {
    let channels: Vec<String> = src.metadata.channels.iter().map(|c| c.name.clone()).collect();
    let wells = src.index.wells();
    let layout = PlateLayout {
        name: "copy".into(),
        wells: wells.iter().map(|w| (w.row_letters(), u32::from(w.col))).collect(),
        fields: src.index.values(Component::Site).len() as u32,
        timepoints: 1,
        channels,
        z_planes: src.index.values(Component::Z).len() as u32,
        plane_shape: src.metadata.tile_shape.expect("shape"),
        dtype: src.metadata.dtype.expect("dtype"),
        pixel_size_um: None,
        z_spacing_um: None,
        version: NgffVersion::V05,
        codec: ZarrCodec::Zstd(3),
        mosaic_canvas: None,
        origin: (0.0, 0.0),
    };
    let writer = OmeZarrPlateWriter::create(&out.join("images.ome.zarr"), layout).expect("create");
    let mut planes = Vec::new();
    for well in wells {
        let (row, col) = (well.row_letters(), u32::from(well.col));
        let w = writer.open_well(&row, col).expect("open");
        for (key, plane) in src.index.well(well) {
            let (f, c, z) = (key.site - 1, key.channel - 1, key.z - 1);
            w.write_plane(f, 0, c, z, &plane.load(&src.root).expect("load")).expect("write");
            planes.push((
                *key,
                PlaneRef::Zarr { store: "images.ome.zarr".into(), well: format!("{row}/{col}"), field: f, t: 0, c, z },
            ));
        }
        w.finish().expect("finish");
    }
    writer.finalize().expect("finalize");
    planes
}

#[test]
fn hcs_plates_on_disk_and_in_zarr_are_input_plates() {
    let base = std::env::temp_dir().join(format!("hcs-own-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let src = source(&base.join("src"));
    for (name, backend) in [("tiff", Backend::Disk), ("zarr", Backend::Zarr)] {
        let out = base.join(name);
        let planes = if backend == Backend::Disk { copy_as_tiff(&src, &out) } else { copy_as_zarr(&src, &out) };
        let file = HcsPlateFile {
            hcs_plate: FORMAT_VERSION,
            source_format: FormatKind::Imagexpress,
            metadata: src.metadata.clone(),
            subdirs: vec![Subdir { name: "images".into(), backend, main: true, planes }],
        };
        write(&out, &file).expect("write metadata");
        assert_eq!(detect(&out).expect("detect"), FormatKind::Hcs);
        let plate = open_plate(&out, None).expect("open hcs plate");
        assert_eq!(plate.metadata.channels, src.metadata.channels);
        assert_eq!(plate.metadata.grid, src.metadata.grid);
        assert_eq!(plate.index.len(), src.index.len());
        for (key, plane) in src.index.iter() {
            let copy = plate.index.get(key).expect("same components");
            assert_eq!(
                copy.load(&plate.root).expect("load copy"),
                plane.load(&src.root).expect("load"),
                "{name} {key}"
            );
        }
    }

    // A pixel size that is no size is not passed on: taken as unknown, and said.
    let out = base.join("tiff");
    let mut file: HcsPlateFile =
        serde_json::from_slice(&std::fs::read(out.join("hcs_plate.json")).expect("read")).expect("parse");
    let kept = file.clone();
    for bad in [-1.0, 0.0] {
        file.metadata.pixel_size_um = Some(bad);
        write(&out, &file).expect("write");
        let plate = open_plate(&out, None).expect("open");
        assert_eq!(plate.metadata.pixel_size_um, None, "{bad}");
        assert!(plate.disagreements.iter().any(|d| d.contains("not a size, taken as unknown")), "{bad}");
    }
    file = kept;

    // Path tricks in the metadata are refused.
    file.subdirs[0].planes[0].1 = PlaneRef::file("../src/synthetic_plate.HTD");
    write(&out, &file).expect("write");
    let err = open_plate(&out, None).expect_err("path trick");
    assert!(err.to_string().contains("leaves the plate"), "{err}");
    file.subdirs[0].planes[0].1 = PlaneRef::file("/etc/passwd");
    write(&out, &file).expect("write");
    assert!(matches!(open_plate(&out, None), Err(FormatError::Image(_))));
    std::fs::write(out.join("hcs_plate.json"), b"{ not json").expect("write");
    let err = open_plate(&out, None).expect_err("bad json");
    assert!(err.to_string().contains("invalid hcs plate metadata"), "{err}");
    std::fs::remove_dir_all(&base).expect("cleanup");
}

/// The `openhcs_metadata.json` written beside `hcs_plate.json` describes the same plate: read
/// through the OpenHCS format alone (hcs's reader of OpenHCS plates), it gives every plane at the
/// same components, the channel names, the grid and the pixel size. (OpenHCS itself opening it
/// is `scripts/check_openhcs_reads.py`, run by CI.)
#[test]
fn the_openhcs_metadata_of_an_hcs_plate_reads_back_as_the_same_plate() {
    use hcs_plate::formats::openhcs_write::{Companion, write as write_companion};
    let base = std::env::temp_dir().join(format!("hcs-own-openhcs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let src = source(&base.join("src"));
    let out = base.join("out");
    let planes: Vec<_> = src
        .index
        .iter()
        .map(|(key, plane)| {
            let name =
                format!("{}_s{:03}_w{}_z{:03}_t{:03}.tif", key.well, key.site, key.channel, key.z, key.timepoint);
            let rel = Path::new("images").join(name);
            write_tiff(&out.join(&rel), &[plane.load(&src.root).expect("load")], TiffCompression::None).expect("write");
            (*key, PlaneRef::file(rel))
        })
        .collect();
    let mut metadata = src.metadata.clone();
    metadata.pixel_size_um = Some(0.65);
    let file = HcsPlateFile {
        hcs_plate: FORMAT_VERSION,
        source_format: FormatKind::Imagexpress,
        metadata,
        subdirs: vec![Subdir { name: "images".into(), backend: Backend::Disk, main: true, planes }],
    };
    let written = write_companion(&out, &file).expect("write openhcs_metadata.json");
    assert_eq!(written, Companion::Written { subdirs: vec!["images".into()] });
    let plate = hcs_plate::formats::openhcs::read(&out, true).expect("read as an OpenHCS plate");
    assert_eq!(plate.metadata.format, FormatKind::Openhcs);
    assert_eq!(plate.metadata.channels, src.metadata.channels);
    assert_eq!(plate.metadata.grid, src.metadata.grid);
    assert_eq!(plate.metadata.pixel_size_um, Some(0.65));
    assert!(plate.unmatched.is_empty(), "{:?}", plate.unmatched);
    assert_eq!(plate.index.len(), src.index.len());
    for (key, plane) in src.index.iter() {
        let copy = plate.index.get(key).expect("same components");
        assert_eq!(copy.load(&plate.root).expect("load copy"), plane.load(&src.root).expect("load"), "{key}");
    }
    std::fs::remove_dir_all(&base).expect("cleanup");
}
