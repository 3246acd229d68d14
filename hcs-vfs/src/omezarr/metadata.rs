//! The JSON of OME-NGFF plate, well, image and label groups, for 0.4 and 0.5.
//!
//! Each document is built from the typed structs of the `ome_zarr_metadata` crate — as 0.4 types,
//! which carry every field, converted to 0.5 with the crate's own conversions — and serialised,
//! so the field names, nesting and per-version differences come from the crate, not from
//! hand-written JSON. What the crate cannot express is added to the serialised JSON by hand, with
//! the reason where it is added: hcs's own `hcs` key ([`with_valid_shape`]) and `plate.version` in
//! 0.5 ([`plate`]). Omero's `rdefs` and a channel's `label` and `active` go through the crate's
//! untyped `other` maps ([`omero`]).

use std::num::NonZeroU64;

use ome_zarr_metadata::{v0_4 as v4, v0_5 as v5};
use serde_json::{Map, Value, json};

use super::{NgffVersion, PlateLayout};

/// 0-based index of a row name (`A` = 0, `Z` = 25, `AA` = 26); `None` for a name that is not
/// upper-case letters.
fn row_index(name: &str) -> Option<u32> {
    name.bytes().try_fold(0u32, |n, b| b.is_ascii_uppercase().then(|| n * 26 + u32::from(b - b'A') + 1))?.checked_sub(1)
}

fn row_name(index: u32) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        letters.push(char::from(b'A' + ((n - 1) % 26) as u8));
        n = (n - 1) / 26;
    }
    letters.iter().rev().collect()
}

/// The smallest standard plate format (6 … 1536 wells) with at least `rows` × `cols`, as
/// (rows, columns); larger layouts are their own extent.
pub fn standard_format(rows: u32, cols: u32) -> (u32, u32) {
    [(2, 3), (3, 4), (4, 6), (6, 8), (8, 12), (16, 24), (32, 48)]
        .into_iter()
        .find(|&(r, c)| rows <= r && cols <= c)
        .unwrap_or((rows, cols))
}

/// Every row and column of the plate's format, in order — viewers draw the whole plate, not
/// only the rows that hold wells. Row names that are not letters are listed as written.
fn rows_and_columns(layout: &PlateLayout) -> (Vec<String>, Vec<u32>) {
    let max_row = layout.wells.iter().filter_map(|(r, _)| row_index(r)).max().map_or(0, |r| r + 1);
    let max_col = layout.wells.iter().map(|(_, c)| *c).max().unwrap_or(0);
    let (n_rows, n_cols) = standard_format(max_row, max_col);
    let mut rows: Vec<String> = (0..n_rows).map(row_name).collect();
    for (r, _) in &layout.wells {
        if !rows.contains(r) {
            rows.push(r.clone());
        }
    }
    (rows, (1..=n_cols).collect())
}

/// The group attributes of `version` for NGFF fields built as 0.4 types: as they are for 0.4
/// (`.zattrs`), or converted with the crate's own 0.4 → 0.5 conversions (which drop the per-field
/// `version`s) and namespaced under `ome` with `ome.version` for 0.5 (`zarr.json` attributes).
fn attributes(version: NgffVersion, fields: v4::OmeNgffGroupAttributes) -> Value {
    match version {
        NgffVersion::V04 => to_json(&fields),
        NgffVersion::V05 => to_json(&v5::OmeZarrGroupAttributes { ome: fields.into() }),
    }
}

/// `x` as JSON, through text: the crate stores scale and translation as `f32`, and
/// `serde_json::to_value` widens them to `f64` digit for digit (0.325 becomes
/// 0.32499998807907104), while `to_string` prints the shortest text that reads back as the same
/// `f32` (0.325), which then parses into the `f64` 0.325.
fn to_json<T: serde::Serialize>(x: &T) -> Value {
    // Cannot fail: every map key is a string, every path was built from a `String`, and the
    // crate's own serialisers (colours, versions) only print.
    let text = serde_json::to_string(x).expect("NGFF metadata serialises");
    serde_json::from_str(&text).expect("serde_json reads what it wrote")
}

/// The plate attributes listing only `present` wells (those fully written).
pub fn plate(layout: &PlateLayout, present: &[(String, u32)]) -> Value {
    let (rows, cols) = rows_and_columns(layout);
    let wells = present
        .iter()
        .filter_map(|(r, c)| {
            let row_index = rows.iter().position(|x| x == r)?;
            let column_index = cols.iter().position(|x| x == c)?;
            Some(v4::PlateWell { path: format!("{r}/{c}").into(), row_index, column_index })
        })
        .collect();
    let plate = v4::Plate {
        version: v4::ConstrainedVersion::default(),
        acquisitions: Some(vec![v4::PlateAcquisition {
            id: 0,
            name: Some(layout.name.clone()),
            maximum_field_count: None,
            description: None,
            start_time: None,
            end_time: None,
        }]),
        columns: cols.iter().map(|c| v4::PlateColumn { name: c.to_string() }).collect(),
        field_count: NonZeroU64::new(u64::from(layout.fields)),
        name: Some(layout.name.clone()),
        rows: rows.into_iter().map(|name| v4::PlateRow { name }).collect(),
        wells,
    };
    let mut attributes =
        attributes(layout.version, v4::OmeNgffGroupAttributes { plate: Some(plate), ..Default::default() });
    if layout.version == NgffVersion::V05 {
        // Added by hand: NGFF 0.5 puts the version in `ome.version` only, and the crate's
        // `v0_5::Plate` has no `version` field (it rejects one as unknown), but ome-zarr-models
        // (1.7, the validator CI runs) warns about — and fails — a 0.5 plate without
        // `plate.version`. So the 0.5 plate carries it too, as 0.4's does.
        if let Some(plate) = attributes["ome"]["plate"].as_object_mut() {
            plate.insert("version".into(), json!("0.5"));
        }
    }
    attributes
}

/// The well attributes.
pub fn well(layout: &PlateLayout) -> Value {
    let images =
        (0..layout.fields).map(|f| v4::WellImage { path: f.to_string().into(), acquisition: Some(0) }).collect();
    let well = v4::Well { version: v4::ConstrainedVersion::default(), images };
    attributes(layout.version, v4::OmeNgffGroupAttributes { well: Some(well), ..Default::default() })
}

/// The `multiscales` entry of a field image named `name`: axes `[t,] c, z, y, x` and `levels`
/// levels (`0`, `1`, … each half the one before, its pixel size doubled and its origin moved to
/// the centre of the pixels it averages).
fn multiscale(layout: &PlateLayout, name: String, levels: usize) -> v4::MultiscaleImage {
    let axis = |name: &str, r#type: v4::AxisType, micrometer: bool| v4::Axis {
        name: name.into(),
        r#type: Some(r#type),
        unit: micrometer.then(|| v4::AxisUnitSpace::Micrometer.into()),
    };
    let (xy_known, z_known) = (layout.pixel_size_um.is_some(), layout.z_spacing_um.is_some());
    let mut axes = Vec::new();
    let mut scale = Vec::new();
    if layout.has_t() {
        axes.push(axis("t", v4::AxisType::Time, false));
        scale.push(1.0);
    }
    axes.push(axis("c", v4::AxisType::Channel, false));
    scale.push(1.0);
    axes.extend([
        axis("z", v4::AxisType::Space, z_known),
        axis("y", v4::AxisType::Space, xy_known),
        axis("x", v4::AxisType::Space, xy_known),
    ]);
    let px = layout.pixel_size_um.unwrap_or(1.0);
    scale.extend([layout.z_spacing_um.unwrap_or(1.0), px, px]);
    // Computed in f64 as before; the crate stores f32 (about 7 significant digits, ample for
    // pixel sizes), and `to_json` prints each as its shortest f32 text.
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let datasets = (0..levels)
        .map(|level| {
            let factor = f64::from(1u32 << level.min(31));
            let mut level_scale = scale.clone();
            let n = level_scale.len();
            level_scale[n - 2] = px * factor;
            level_scale[n - 1] = px * factor;
            // A level's first pixel averages 2^level of level 0's: its centre is half of them
            // further on, from where the field's first pixel lies on the plate (`origin`).
            let mut shift = vec![0.0; n];
            shift[n - 2] = layout.origin.0 + px * (factor - 1.0) / 2.0;
            shift[n - 1] = layout.origin.1 + px * (factor - 1.0) / 2.0;
            let mut transforms =
                vec![v4::CoordinateTransform::Scale(v4::CoordinateTransformScale::List { scale: f32s(level_scale) })];
            if level > 0 || layout.origin != (0.0, 0.0) {
                transforms.push(v4::CoordinateTransform::Translation(v4::CoordinateTransformTranslation::List {
                    translation: f32s(shift),
                }));
            }
            v4::MultiscaleImageDataset { path: level.to_string(), coordinate_transformations: transforms }
        })
        .collect();
    v4::MultiscaleImage {
        version: v4::ConstrainedVersion::default(),
        name: Some(name),
        axes,
        datasets,
        coordinate_transformations: None,
        r#type: None,
        metadata: None,
    }
}

/// Channel names, colours and display windows for viewers (`omero`, transitional in NGFF). The
/// window is the sample type's range for integer images; a float image has none, so its window
/// is the data's own range per channel where `float_ranges` gives it (`0–1` otherwise).
fn omero(layout: &PlateLayout, float_ranges: &[Option<(f32, f32)>]) -> v4::Omero {
    let window = |i: usize| {
        let (min, max) = match layout.dtype {
            crate::plane::Dtype::U8 => (0.0, 255.0),
            crate::plane::Dtype::U16 => (0.0, 65535.0),
            crate::plane::Dtype::F32 => match float_ranges.get(i).copied().flatten() {
                Some((lo, hi)) if hi > lo => (f64::from(lo), f64::from(hi)),
                Some((lo, _)) => (f64::from(lo), f64::from(lo) + 1.0),
                None => (0.0, 1.0),
            },
        };
        v4::Window { min, max, start: min, end: max }
    };
    // Blue, green, red, magenta, cyan, yellow, white.
    let colors = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 255, 255)];
    let channels = layout
        .channels
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (r, g, b) = colors[i % colors.len()];
            v4::Channel {
                color: v4::Color { r, g, b },
                window: window(i),
                // The crate types only `color` and `window`; a channel's `label` (its name, which
                // napari and ome-zarr-py show) and `active` go in its untyped `other` map.
                other: Map::from_iter([("label".to_string(), json!(name)), ("active".to_string(), json!(true))]),
            }
        })
        .collect();
    // Likewise `rdefs` (render as colour, not greyscale) is outside the crate's typed fields.
    v4::Omero { channels, other: Map::from_iter([("rdefs".to_string(), json!({ "model": "color" }))]) }
}

/// Adds hcs's own `hcs` key when the field is padded: the `valid` extent of the data (the
/// largest of its planes'; a time-lapse's mosaics may each hold a row or column less). Merged into
/// the serialised attributes by hand, beside `ome` (0.5) or `multiscales` (0.4), as it is no NGFF
/// field; readers of NGFF ignore keys they do not know.
fn with_valid_shape(mut attributes: Value, layout: &PlateLayout, valid: (usize, usize)) -> Value {
    if valid != layout.plane_shape
        && let Some(obj) = attributes.as_object_mut()
    {
        obj.insert(
            "hcs".into(),
            json!({
                "valid_shape": [valid.0, valid.1],
                "padding": "the field is padded with zeros at the bottom and right to the plate's mosaic canvas",
            }),
        );
    }
    attributes
}

/// The image attributes: `levels` multiscale levels (`0`, `1`, … each half the one before, its
/// pixel size doubled and its origin moved to the centre of the pixels it averages), channel
/// names and colours for viewers, and — when the field is padded — the `valid` extent of the
/// data under `hcs`.
/// `float_ranges`: each channel's data range, for the display window of a float image (see
/// [`omero`]).
pub fn image(
    layout: &PlateLayout,
    field: u32,
    levels: usize,
    valid: (usize, usize),
    float_ranges: &[Option<(f32, f32)>],
) -> Value {
    let fields = v4::OmeNgffGroupAttributes {
        multiscales: Some(vec![multiscale(layout, format!("field {field}"), levels)]),
        omero: Some(omero(layout, float_ranges)),
        ..Default::default()
    };
    with_valid_shape(attributes(layout.version, fields), layout, valid)
}

/// The attributes of a field's `labels` group: the names of its label images.
pub fn labels_group(version: NgffVersion, names: &[String]) -> Value {
    attributes(version, v4::OmeNgffGroupAttributes { labels: Some(names.to_vec()), ..Default::default() })
}

/// The attributes of label image `name` of a field: the field image's multiscales (same levels,
/// scale and translation; one channel) and `image-label` pointing back at the image. Label 0 is
/// the transparent background; viewers colour the others themselves.
/// (`_field` is unused: the label's multiscale is named after the label, not the field.)
pub fn label_image(layout: &PlateLayout, _field: u32, name: &str, levels: usize, valid: (usize, usize)) -> Value {
    let one_channel = PlateLayout { channels: vec![name.to_string()], ..layout.clone() };
    let image_label = v4::ImageLabel {
        version: v4::ConstrainedVersion::default(),
        // Always `Some` and non-empty: the crate writes `None` as `"colors": null`, which the 0.5
        // schema rejects (an array of at least one entry).
        colors: Some(vec![v4::ImageLabelColor { label_value: 0, rgba: [0, 0, 0, 0] }]),
        properties: None,
        // `image: None` would likewise be written as `null`.
        source: Some(v4::ImageLabelSource { image: Some("../../".into()) }),
    };
    let fields = v4::OmeNgffGroupAttributes {
        multiscales: Some(vec![multiscale(&one_channel, name.to_string(), levels)]),
        image_label: Some(image_label),
        ..Default::default()
    };
    with_valid_shape(attributes(layout.version, fields), layout, valid)
}

/// The group document(s) to write for a group with `attributes`: (file name, JSON).
pub fn group_files(version: NgffVersion, attributes: Value) -> Vec<(&'static str, Value)> {
    match version {
        NgffVersion::V05 => {
            vec![("zarr.json", json!({ "zarr_format": 3, "node_type": "group", "attributes": attributes }))]
        }
        NgffVersion::V04 => vec![(".zgroup", json!({ "zarr_format": 2 })), (".zattrs", attributes)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_names_and_indices_round_trip_past_z() {
        for (i, name) in [(0, "A"), (7, "H"), (25, "Z"), (26, "AA"), (31, "AF")] {
            assert_eq!(row_name(i), name);
            assert_eq!(row_index(name), Some(i));
        }
        assert_eq!(row_index("a1"), None);
    }

    #[test]
    fn the_plate_lists_every_row_and_column_of_its_format() {
        let mut layout = crate::omezarr::tests::layout(NgffVersion::V05, 1);
        layout.wells = vec![("B".into(), 3), ("D".into(), 2)];
        let plate = plate(&layout, &layout.wells.clone());
        let plate = &plate["ome"]["plate"];
        let rows: Vec<&str> =
            plate["rows"].as_array().expect("rows").iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(rows, ["A", "B", "C", "D"], "a 24-well plate: 4 rows");
        assert_eq!(plate["columns"].as_array().map(Vec::len), Some(6));
        // Each well's indices point at its row and column.
        assert_eq!(plate["wells"][0]["rowIndex"], 1);
        assert_eq!(plate["wells"][0]["columnIndex"], 2);
        assert_eq!(plate["wells"][1]["rowIndex"], 3);
        assert_eq!(plate["wells"][1]["columnIndex"], 1);
        assert_eq!(standard_format(9, 1), (16, 24));
    }

    /// Every document this module writes — plate, well, image (padded, with a `t` axis), labels
    /// group and label image — read back into the crate's typed structs of its version, and
    /// valid by the crate's checks. Also pins the hand-added parts and the f32 → JSON text.
    #[test]
    fn every_document_parses_into_the_crates_typed_metadata_and_validates() {
        use ome_zarr_metadata::Validate;
        for version in [NgffVersion::V04, NgffVersion::V05] {
            let mut layout = crate::omezarr::tests::layout(version, 2);
            layout.z_spacing_um = Some(2.0);
            let levels = 3;
            let padded = (30, 50);
            let documents = [
                ("plate", plate(&layout, &layout.wells.clone())),
                ("well", well(&layout)),
                ("image", image(&layout, 1, levels, padded, &[])),
                ("labels group", labels_group(version, &["cells".into(), "nuclei".into()])),
                ("label image", label_image(&layout, 1, "cells", levels, padded)),
            ];
            for (what, attributes) in documents {
                let files = group_files(version, attributes);
                let ctx = format!("{what} {version:?}");
                match version {
                    NgffVersion::V04 => {
                        assert_eq!(files[0], (".zgroup", json!({ "zarr_format": 2 })), "{ctx}");
                        let (name, attrs) = &files[1];
                        assert_eq!(*name, ".zattrs", "{ctx}");
                        let typed: v4::OmeNgffGroupAttributes =
                            serde_json::from_value(attrs.clone()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        typed.validate().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        assert_eq!(typed.version(), "0.4", "{ctx}");
                    }
                    NgffVersion::V05 => {
                        let (name, mut doc) = files.into_iter().next().expect("one document");
                        assert_eq!(name, "zarr.json", "{ctx}");
                        assert_eq!(doc["attributes"]["ome"]["version"], "0.5", "{ctx}");
                        if what == "plate" {
                            // The one field hcs adds that the crate's strict `v0_5::Plate` rejects.
                            let plate = doc["attributes"]["ome"]["plate"].as_object_mut().expect("plate");
                            assert_eq!(plate.remove("version"), Some(json!("0.5")), "{ctx}");
                        }
                        let typed: v5::OmeZarrGroupMetadata =
                            serde_json::from_value(doc).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                        typed.validate().unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    }
                }
            }

            // The parts typed by hand or through the crate's untyped maps, and the numbers.
            let ngff = |v: Value| if version == NgffVersion::V05 { v["ome"].clone() } else { v };
            let img = image(&layout, 1, levels, padded, &[]);
            assert_eq!(img["hcs"]["valid_shape"], json!([30, 50]));
            assert!(image(&layout, 1, levels, layout.plane_shape, &[]).get("hcs").is_none(), "unpadded: no `hcs`");
            let img = ngff(img);
            assert_eq!(img["omero"]["rdefs"], json!({ "model": "color" }));
            assert_eq!(img["omero"]["channels"][0]["label"], "DAPI");
            assert_eq!(img["omero"]["channels"][0]["active"], true);
            assert_eq!(img["omero"]["channels"][1]["color"], "00FF00");
            assert_eq!(img["omero"]["channels"][0]["window"]["max"], 65535.0);
            let datasets = &img["multiscales"][0]["datasets"];
            // f32 printed as its shortest text: exactly 0.65, 1.3, 0.325, not 0.6499999761581421.
            assert_eq!(datasets[0]["coordinateTransformations"][0]["scale"], json!([1.0, 1.0, 2.0, 0.65, 0.65]));
            assert_eq!(datasets[1]["coordinateTransformations"][0]["scale"], json!([1.0, 1.0, 2.0, 1.3, 1.3]));
            assert_eq!(
                datasets[1]["coordinateTransformations"][1]["translation"],
                json!([0.0, 0.0, 0.0, 0.325, 0.325])
            );
            assert_eq!(datasets[0]["coordinateTransformations"].as_array().map(Vec::len), Some(1));
            let label = ngff(label_image(&layout, 1, "cells", levels, padded));
            assert!(label.get("omero").is_none());
            assert_eq!(label["multiscales"][0]["name"], "cells");
            assert_eq!(label["multiscales"][0]["datasets"], *datasets, "the image's levels and transforms");
            assert_eq!(label["image-label"]["colors"], json!([{ "label-value": 0, "rgba": [0, 0, 0, 0] }]));
            assert_eq!(label["image-label"]["source"], json!({ "image": "../../" }));
            let plate = ngff(plate(&layout, &layout.wells.clone()));
            let expected = if version == NgffVersion::V05 { "0.5" } else { "0.4" };
            assert_eq!(plate["plate"]["version"], expected, "both versions carry `plate.version`");
            assert_eq!(plate["plate"]["field_count"], 2);
            assert_eq!(plate["plate"]["wells"][1], json!({ "path": "B/3", "rowIndex": 1, "columnIndex": 2 }));
        }
    }
}
