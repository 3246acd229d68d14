//! Reading an OME-Zarr plate written by hcs (or any NGFF 0.4/0.5 HCS plate with `c, z, y, x`
//! images, optionally with `t`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{ArrayD, Ix2};
use serde_json::Value;
use zarrs::array::{Array, ArraySubset};
use zarrs::filesystem::FilesystemStore;

use super::NgffVersion;
use super::writer::zarr_err;
use crate::VfsError;
use crate::plane::PlaneData;

/// What an OME-Zarr plate holds.
#[derive(Clone, Debug, PartialEq)]
pub struct OmeZarrPlate {
    /// The plate directory.
    pub root: PathBuf,
    /// NGFF version found.
    pub version: NgffVersion,
    /// Well paths listed in the plate metadata (`A/1`).
    pub wells: Vec<String>,
    /// Fields per well.
    pub field_count: u32,
}

fn read_json(path: &Path) -> Result<Value, VfsError> {
    let meta = std::fs::metadata(path).map_err(|e| VfsError::io(path, e))?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(zarr_err(path, "metadata file larger than 64 MiB"));
    }
    let bytes = std::fs::read(path).map_err(|e| VfsError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| zarr_err(path, e))
}

/// A relative path from metadata: plain components only (no `..`, no root, no empty parts).
fn safe_relative(root: &Path, rel: &str) -> Result<(), VfsError> {
    let ok = !rel.is_empty()
        && rel.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'))
        && !rel.starts_with('/');
    if ok { Ok(()) } else { Err(VfsError::BadPath { path: root.join(rel), reason: "metadata path escapes the plate" }) }
}

impl OmeZarrPlate {
    /// Open a plate and read its metadata.
    pub fn open(root: &Path) -> Result<Self, VfsError> {
        let (version, attrs) = if root.join("zarr.json").is_file() {
            let doc = read_json(&root.join("zarr.json"))?;
            (NgffVersion::V05, doc["attributes"]["ome"].clone())
        } else if root.join(".zattrs").is_file() {
            (NgffVersion::V04, read_json(&root.join(".zattrs"))?)
        } else {
            return Err(zarr_err(root, "not a Zarr group (no zarr.json or .zattrs)"));
        };
        let plate = attrs.get("plate").ok_or_else(|| zarr_err(root, "no OME-NGFF plate metadata"))?;
        let wells = plate["wells"]
            .as_array()
            .ok_or_else(|| zarr_err(root, "plate metadata has no wells list"))?
            .iter()
            .map(|w| {
                let p = w["path"].as_str().ok_or_else(|| zarr_err(root, "well without path"))?;
                safe_relative(root, p)?;
                Ok(p.to_owned())
            })
            .collect::<Result<Vec<_>, VfsError>>()?;
        let field_count = plate["field_count"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        Ok(Self { root: root.to_path_buf(), version, wells, field_count })
    }
}

/// Read plane (t, c, z) (0-based; `t` ignored for arrays without a `t` axis) of `field` of the
/// well at `well_path` (`A/1`).
pub fn read_plane(root: &Path, well_path: &str, field: u32, t: u32, c: u32, z: u32) -> Result<PlaneData, VfsError> {
    safe_relative(root, well_path)?;
    let store = Arc::new(FilesystemStore::new(root).map_err(|e| zarr_err(root, e))?);
    let path = format!("/{well_path}/{field}/0");
    let here = root.join(well_path).join(field.to_string());
    let array = Array::open(store, &path).map_err(|e| zarr_err(&here, e))?;
    let shape = array.shape().to_vec();
    let n = shape.len();
    if !(4..=5).contains(&n) {
        return Err(zarr_err(&here, format!("expected a [t,] c, z, y, x array, found {n} dimensions")));
    }
    let mut start = vec![0u64; n];
    let mut extent = vec![1u64; n];
    let lead = if n == 5 { vec![u64::from(t), u64::from(c), u64::from(z)] } else { vec![u64::from(c), u64::from(z)] };
    start[..lead.len()].copy_from_slice(&lead);
    extent[n - 2] = shape[n - 2];
    extent[n - 1] = shape[n - 1];
    for i in 0..n {
        if start[i] + extent[i] > shape[i] {
            return Err(zarr_err(&here, format!("plane t={t} c={c} z={z} is outside the array shape {shape:?}")));
        }
    }
    let subset = ArraySubset::new_with_start_shape(start, extent).map_err(|e| zarr_err(&here, e))?;
    let dims = (shape[n - 2] as usize, shape[n - 1] as usize);
    let to2 = |e: ndarray::ShapeError| zarr_err(&here, e);
    // Display is "uint16 / <u2" for v2 arrays: compare the name before any " / ".
    let dtype = array.data_type().to_string();
    let plane = match dtype.split(" / ").next().unwrap_or_default() {
        "uint8" => {
            let a: ArrayD<u8> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::U8(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
        "uint16" => {
            let a: ArrayD<u16> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::U16(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
        "float32" => {
            let a: ArrayD<f32> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::F32(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
        other => return Err(zarr_err(&here, format!("unsupported data type {other}"))),
    };
    Ok(plane)
}
