//! The JSON of OME-NGFF plate, well and image groups, for 0.4 and 0.5.

use serde_json::{Value, json};

use super::{NgffVersion, PlateLayout};

fn version_str(v: NgffVersion) -> &'static str {
    match v {
        NgffVersion::V04 => "0.4",
        NgffVersion::V05 => "0.5",
    }
}

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

/// The plate attributes listing only `present` wells (those fully written).
pub fn plate(layout: &PlateLayout, present: &[(String, u32)]) -> Value {
    let (rows, cols) = rows_and_columns(layout);
    let wells: Vec<Value> = present
        .iter()
        .filter_map(|(r, c)| {
            let ri = rows.iter().position(|x| x == r)?;
            let ci = cols.iter().position(|x| x == c)?;
            Some(json!({ "path": format!("{r}/{c}"), "rowIndex": ri, "columnIndex": ci }))
        })
        .collect();
    let plate = json!({
        "name": layout.name,
        "rows": rows.iter().map(|r| json!({ "name": r })).collect::<Vec<_>>(),
        "columns": cols.iter().map(|c| json!({ "name": c.to_string() })).collect::<Vec<_>>(),
        "wells": wells,
        "field_count": layout.fields,
        "acquisitions": [{ "id": 0, "name": layout.name }],
        // 0.4 requires it here; for 0.5 `ome.version` says it, but ome-zarr-models' HCS
        // validator warns (and fails) without it, so both carry it.
        "version": version_str(layout.version),
    });
    if layout.version == NgffVersion::V04 {
        return json!({ "plate": plate });
    }
    json!({ "ome": { "version": "0.5", "plate": plate } })
}

/// The well attributes.
pub fn well(layout: &PlateLayout) -> Value {
    let images: Vec<Value> = (0..layout.fields).map(|f| json!({ "path": f.to_string(), "acquisition": 0 })).collect();
    match layout.version {
        NgffVersion::V04 => json!({ "well": { "images": images, "version": "0.4" } }),
        NgffVersion::V05 => json!({ "ome": { "version": "0.5", "well": { "images": images } } }),
    }
}

/// The image attributes: `levels` multiscale levels (`0`, `1`, … each half the one before, its
/// pixel size doubled and its origin moved to the centre of the pixels it averages), channel
/// names and colours for viewers, and — when the field is padded — the `valid` extent of the
/// data under `hcs`.
pub fn image(layout: &PlateLayout, field: u32, levels: usize, valid: (usize, usize)) -> Value {
    let space = |name: &str, known: bool| {
        let mut axis = json!({ "name": name, "type": "space" });
        if known {
            axis["unit"] = json!("micrometer");
        }
        axis
    };
    let (xy_known, z_known) = (layout.pixel_size_um.is_some(), layout.z_spacing_um.is_some());
    let mut axes = Vec::new();
    let mut scale = Vec::new();
    if layout.has_t() {
        axes.push(json!({ "name": "t", "type": "time" }));
        scale.push(1.0);
    }
    axes.push(json!({ "name": "c", "type": "channel" }));
    scale.push(1.0);
    axes.extend([space("z", z_known), space("y", xy_known), space("x", xy_known)]);
    let px = layout.pixel_size_um.unwrap_or(1.0);
    scale.extend([layout.z_spacing_um.unwrap_or(1.0), px, px]);
    let datasets: Vec<Value> = (0..levels)
        .map(|level| {
            let factor = f64::from(1u32 << level.min(31));
            let mut level_scale = scale.clone();
            let n = level_scale.len();
            level_scale[n - 2] = px * factor;
            level_scale[n - 1] = px * factor;
            let mut shift = vec![0.0; n];
            shift[n - 2] = px * (factor - 1.0) / 2.0;
            shift[n - 1] = px * (factor - 1.0) / 2.0;
            let mut transforms = vec![json!({ "type": "scale", "scale": level_scale })];
            if level > 0 {
                transforms.push(json!({ "type": "translation", "translation": shift }));
            }
            json!({ "path": level.to_string(), "coordinateTransformations": transforms })
        })
        .collect();
    let (max, colors) = (
        match layout.dtype {
            crate::plane::Dtype::U8 => 255.0,
            crate::plane::Dtype::U16 => 65535.0,
            crate::plane::Dtype::F32 => 1.0,
        },
        ["0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF"],
    );
    let channels: Vec<Value> = layout
        .channels
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({
                "label": name,
                "color": colors[i % colors.len()],
                "active": true,
                "window": { "min": 0.0, "max": max, "start": 0.0, "end": max },
            })
        })
        .collect();
    let multiscale = json!({
        "name": format!("field {field}"),
        "axes": axes,
        "datasets": datasets,
    });
    let omero = json!({ "channels": channels, "rdefs": { "model": "color" } });
    let mut attributes = match layout.version {
        NgffVersion::V04 => {
            let mut m = multiscale;
            m["version"] = json!("0.4");
            json!({ "multiscales": [m], "omero": omero })
        }
        NgffVersion::V05 => {
            json!({ "ome": { "version": "0.5", "multiscales": [multiscale], "omero": omero } })
        }
    };
    if valid != layout.plane_shape {
        attributes["hcs"] = json!({
            "valid_shape": [valid.0, valid.1],
            "padding": "the field is padded with zeros at the bottom and right to the plate's mosaic canvas",
        });
    }
    attributes
}

/// The attributes of a field's `labels` group: the names of its label images.
pub fn labels_group(version: NgffVersion, names: &[String]) -> Value {
    match version {
        NgffVersion::V04 => json!({ "labels": names }),
        NgffVersion::V05 => json!({ "ome": { "version": "0.5", "labels": names } }),
    }
}

/// The attributes of label image `name` of a field: the field image's multiscales (same levels,
/// scale and translation; one channel) and `image-label` pointing back at the image. Label 0 is
/// the transparent background; viewers colour the others themselves.
pub fn label_image(layout: &PlateLayout, field: u32, name: &str, levels: usize, valid: (usize, usize)) -> Value {
    let one_channel = PlateLayout { channels: vec![name.to_string()], ..layout.clone() };
    let mut attributes = image(&one_channel, field, levels, valid);
    let ngff = match layout.version {
        NgffVersion::V04 => &mut attributes,
        NgffVersion::V05 => &mut attributes["ome"],
    };
    if let Some(obj) = ngff.as_object_mut() {
        obj.remove("omero");
        let mut label = json!({
            "colors": [{ "label-value": 0, "rgba": [0, 0, 0, 0] }],
            "source": { "image": "../../" },
        });
        if layout.version == NgffVersion::V04 {
            label["version"] = json!("0.4");
        }
        obj.insert("image-label".into(), label);
    }
    if let Some(m) = ngff["multiscales"].get_mut(0) {
        m["name"] = json!(name);
    }
    attributes
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
}
