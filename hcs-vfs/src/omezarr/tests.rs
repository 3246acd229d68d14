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
        version,
        codec: ZarrCodec::Zstd(3),
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
    let small = PlaneData::U16(Array2::zeros((4, 4)));
    assert!(well.write_plane(0, 0, 0, 0, &small).expect_err("shape").to_string().contains("(4, 4)"));
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
