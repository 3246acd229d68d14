//! The JSON of OME-NGFF plate, well and image groups, for 0.4 and 0.5.

use serde_json::{Value, json};

use super::{NgffVersion, PlateLayout};

fn version_str(v: NgffVersion) -> &'static str {
    match v {
        NgffVersion::V04 => "0.4",
        NgffVersion::V05 => "0.5",
    }
}

/// Row names in order and column names in order, with each well's indices.
fn rows_and_columns(layout: &PlateLayout) -> (Vec<String>, Vec<u32>) {
    let mut rows: Vec<String> = layout.wells.iter().map(|(r, _)| r.clone()).collect();
    rows.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    rows.dedup();
    let mut cols: Vec<u32> = layout.wells.iter().map(|(_, c)| *c).collect();
    cols.sort_unstable();
    cols.dedup();
    (rows, cols)
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
    let mut plate = json!({
        "name": layout.name,
        "rows": rows.iter().map(|r| json!({ "name": r })).collect::<Vec<_>>(),
        "columns": cols.iter().map(|c| json!({ "name": c.to_string() })).collect::<Vec<_>>(),
        "wells": wells,
        "field_count": layout.fields,
        "acquisitions": [{ "id": 0, "name": layout.name }],
        "version": version_str(layout.version),
    });
    if layout.version == NgffVersion::V04 {
        // 0.4 keeps `version` inside `plate`; nothing else differs.
        return json!({ "plate": plate });
    }
    if let Some(obj) = plate.as_object_mut() {
        obj.insert("version".into(), json!("0.5"));
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

/// The image attributes (one multiscale level, `0`) with channel names for viewers.
pub fn image(layout: &PlateLayout, field: u32) -> Value {
    let space = |name: &str| {
        let mut axis = json!({ "name": name, "type": "space" });
        if layout.pixel_size_um.is_some() {
            axis["unit"] = json!("micrometer");
        }
        axis
    };
    let mut axes = Vec::new();
    let mut scale = Vec::new();
    if layout.has_t() {
        axes.push(json!({ "name": "t", "type": "time" }));
        scale.push(1.0);
    }
    axes.push(json!({ "name": "c", "type": "channel" }));
    scale.push(1.0);
    axes.extend([space("z"), space("y"), space("x")]);
    let px = layout.pixel_size_um.unwrap_or(1.0);
    scale.extend([1.0, px, px]);
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
        "datasets": [{ "path": "0", "coordinateTransformations": [{ "type": "scale", "scale": scale }] }],
    });
    let omero = json!({ "channels": channels, "rdefs": { "model": "color" } });
    match layout.version {
        NgffVersion::V04 => {
            let mut m = multiscale;
            m["version"] = json!("0.4");
            json!({ "multiscales": [m], "omero": omero })
        }
        NgffVersion::V05 => {
            json!({ "ome": { "version": "0.5", "multiscales": [multiscale], "omero": omero } })
        }
    }
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
