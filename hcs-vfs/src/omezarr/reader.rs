//! Reading OME-Zarr HCS plates (OME-NGFF 0.4 on Zarr v2, 0.5 on Zarr v3): those hcs writes and
//! those other tools write (ome-zarr-py, bioformats2raw).
//!
//! Every path comes from the metadata, never from hcs's own naming: the field from the well's
//! `images[i].path`, the level-0 array from `multiscales[0].datasets[0].path`, the axes from
//! `multiscales[0].axes` (any NGFF order of `t`, `c`, `z`, `y`, `x` ending in `y, x`). Paths that
//! leave the plate (`..`, absolute) are refused. Reading never writes inside the plate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{ArrayD, Ix2};
use serde_json::Value;
use zarrs::array::{Array, ArrayMetadata, ArraySubset};
use zarrs::filesystem::FilesystemStore;
use zarrs::metadata::v2::ArrayMetadataV2;

use super::NgffVersion;
use super::writer::zarr_err;
use crate::VfsError;
use crate::plane::{Dtype, PlaneData};

/// What an OME-Zarr plate holds.
#[derive(Clone, Debug, PartialEq)]
pub struct OmeZarrPlate {
    /// The plate directory.
    pub root: PathBuf,
    /// NGFF version found.
    pub version: NgffVersion,
    /// Well paths listed in the plate metadata (`A/1`).
    pub wells: Vec<String>,
    /// Row and column names of each well of [`Self::wells`] (`("A", "1")`): from the plate's
    /// `rows`/`columns` at the well's `rowIndex`/`columnIndex`, else from its path.
    pub well_positions: Vec<(String, String)>,
    /// Fields per well as the plate metadata declares (`field_count`, optional in NGFF: 1 when
    /// absent). The fields themselves are listed by each well ([`well_images`]).
    pub field_count: u32,
    /// The plate's `name`, if it has one.
    pub name: Option<String>,
}

fn read_json(path: &Path) -> Result<Value, VfsError> {
    let meta = std::fs::metadata(path).map_err(|e| VfsError::io(path, e))?;
    if meta.len() > 64 * 1024 * 1024 {
        return Err(zarr_err(path, "metadata file larger than 64 MiB"));
    }
    let bytes = std::fs::read(path).map_err(|e| VfsError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| zarr_err(path, format!("invalid JSON: {e}")))
}

/// A relative path from metadata: plain components only (no `..`, no root, no empty parts).
fn safe_relative(root: &Path, rel: &str) -> Result<(), VfsError> {
    let ok = !rel.is_empty()
        && rel.split('/').all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\') && !p.contains(':'))
        && !rel.starts_with('/');
    if ok { Ok(()) } else { Err(VfsError::BadPath { path: root.join(rel), reason: "metadata path escapes the plate" }) }
}

/// The OME attributes of the Zarr group at `dir` and the file they were read from: `attributes.ome`
/// of `zarr.json` (NGFF 0.5; the whole `attributes` when it has no `ome` key) or `.zattrs`
/// (NGFF ≤ 0.4). `None` when `dir` holds neither file.
pub fn group_attributes(dir: &Path) -> Result<Option<(NgffVersion, PathBuf, Value)>, VfsError> {
    let v3 = dir.join("zarr.json");
    if v3.is_file() {
        let doc = read_json(&v3)?;
        let attrs = &doc["attributes"];
        let attrs = if attrs.get("ome").is_some() { &attrs["ome"] } else { attrs };
        return Ok(Some((NgffVersion::V05, v3, attrs.clone())));
    }
    let v2 = dir.join(".zattrs");
    if v2.is_file() {
        let attrs = read_json(&v2)?;
        return Ok(Some((NgffVersion::V04, v2, attrs)));
    }
    Ok(None)
}

/// Whether `root` is the root group of an OME-Zarr HCS plate, or of a bioformats2raw layout
/// (which is refused with a clear message by [`OmeZarrPlate::open`] when it has no plate).
pub fn is_plate_root(root: &Path) -> Result<bool, VfsError> {
    Ok(group_attributes(root)?
        .is_some_and(|(_, _, attrs)| !attrs["plate"].is_null() || !attrs["bioformats2raw.layout"].is_null()))
}

impl OmeZarrPlate {
    /// Open a plate and read its metadata.
    pub fn open(root: &Path) -> Result<Self, VfsError> {
        let (version, file, attrs) =
            group_attributes(root)?.ok_or_else(|| zarr_err(root, "not a Zarr group (no zarr.json or .zattrs)"))?;
        let Some(plate) = attrs.get("plate").filter(|p| !p.is_null()) else {
            let message = if attrs.get("bioformats2raw.layout").is_some() {
                "a bioformats2raw layout without OME-NGFF plate metadata: not an HCS plate"
            } else {
                "no OME-NGFF plate metadata"
            };
            return Err(zarr_err(&file, message));
        };
        let names = |key: &str| -> Vec<Option<String>> {
            plate[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| match &r["name"] {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (rows, cols) = (names("rows"), names("columns"));
        let mut wells = Vec::new();
        let mut well_positions = Vec::new();
        for w in plate["wells"].as_array().ok_or_else(|| zarr_err(&file, "plate metadata has no wells list"))? {
            let p = w["path"].as_str().ok_or_else(|| zarr_err(&file, "a well without path"))?;
            safe_relative(root, p)?;
            let at = |list: &[Option<String>], key: &str| {
                w[key].as_u64().and_then(|i| usize::try_from(i).ok()).and_then(|i| list.get(i).cloned().flatten())
            };
            let (path_row, path_col) = p.split_once('/').unwrap_or((p, ""));
            let row = at(&rows, "rowIndex").unwrap_or_else(|| path_row.to_owned());
            let col = at(&cols, "columnIndex").unwrap_or_else(|| path_col.to_owned());
            wells.push(p.to_owned());
            well_positions.push((row, col));
        }
        let field_count = plate["field_count"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        let name = plate["name"].as_str().map(str::to_owned);
        Ok(Self { root: root.to_path_buf(), version, wells, well_positions, field_count, name })
    }
}

/// The image groups (fields) of the well at `well_path`, relative to the plate root (`A/1/0`), in
/// the order of the well's `images` list: field `i` (0-based) is the `i`-th.
pub fn well_images(root: &Path, well_path: &str) -> Result<Vec<String>, VfsError> {
    safe_relative(root, well_path)?;
    let dir = root.join(well_path);
    let (_, file, attrs) =
        group_attributes(&dir)?.ok_or_else(|| VfsError::NotFound { path: dir.clone(), backend: "zarr" })?;
    let images = attrs["well"]["images"].as_array().ok_or_else(|| zarr_err(&file, "no OME-NGFF well images list"))?;
    images
        .iter()
        .map(|image| {
            let p = image["path"].as_str().ok_or_else(|| zarr_err(&file, "a well image without path"))?;
            safe_relative(&dir, p)?;
            Ok(format!("{well_path}/{p}"))
        })
        .collect()
}

/// One field image of a plate: its level-0 array and what its metadata says.
#[derive(Clone, Debug, PartialEq)]
pub struct NgffImage {
    /// The image group, relative to the plate root (`A/1/0`).
    pub image: String,
    /// The level-0 array, relative to the plate root (`A/1/0/s0`).
    pub array: String,
    /// Axis names in array order, each one of `t`, `c`, `z`, `y`, `x`, ending in `y`, `x`.
    pub axes: Vec<char>,
    /// The level-0 array shape.
    pub shape: Vec<u64>,
    /// The sample type.
    pub dtype: Dtype,
    /// Pixel size in µm from the level-0 scale of `y` and `x` with their unit; `None` without a
    /// length unit, or when `y` and `x` differ.
    pub pixel_size_um: Option<f64>,
    /// Spacing of the z-planes in µm from the level-0 scale of `z` with its unit (`None`
    /// without a `z` axis or a length unit).
    pub z_spacing_um: Option<f64>,
    /// `omero.channels[].label`, in channel order (may be shorter than the channel axis).
    pub channel_names: Vec<Option<String>>,
}

/// The image metadata that says where the array is and how to index it.
struct ImageMeta {
    array: String,
    axes: Vec<char>,
    pixel_size_um: Option<f64>,
    z_spacing_um: Option<f64>,
    channel_names: Vec<Option<String>>,
}

const AXES: &str = "tczyx";

/// Axis names of `multiscales[0].axes` (NGFF 0.3 strings or 0.4+ objects), checked: each of
/// `t`, `c`, `z`, `y`, `x` at most once, in that order, ending in `y`, `x`. NGFF ≤ 0.2 images
/// have no axes and are `t, c, z, y, x`.
fn parse_axes(dir: &Path, axes: Option<&Value>) -> Result<Vec<char>, VfsError> {
    let Some(axes) = axes else { return Ok(AXES.chars().collect()) };
    let list = axes.as_array().ok_or_else(|| zarr_err(dir, "multiscales[0].axes is not a list"))?;
    let names: Vec<String> = list
        .iter()
        .map(|a| match a {
            Value::String(s) => s.clone(),
            other => other["name"].as_str().unwrap_or("?").to_owned(),
        })
        .collect();
    let unsupported = |reason: &str| VfsError::UnsupportedAxes {
        path: dir.to_path_buf(),
        axes: names.join(","),
        reason: reason.to_owned(),
    };
    let mut out: Vec<char> = Vec::with_capacity(names.len());
    for name in &names {
        let mut chars = name.chars();
        let axis = match (chars.next().map(|c| c.to_ascii_lowercase()), chars.next()) {
            (Some(c), None) if AXES.contains(c) => c,
            _ => return Err(unsupported("hcs reads the axes t, c, z, y and x only")),
        };
        if let Some(&last) = out.last()
            && AXES.find(last) >= AXES.find(axis)
        {
            return Err(unsupported("axes must be distinct and in the order t, c, z, y, x"));
        }
        out.push(axis);
    }
    if !out.ends_with(&['y', 'x']) {
        return Err(unsupported("the last two axes must be y, x"));
    }
    Ok(out)
}

/// A length unit's size in µm (NGFF units are UDUNITS-2 names).
fn unit_in_um(unit: &str) -> Option<f64> {
    Some(match unit {
        "angstrom" => 1e-4,
        "nanometer" => 1e-3,
        "micrometer" | "micron" => 1.0,
        "millimeter" => 1e3,
        "centimeter" => 1e4,
        "meter" => 1e6,
        _ => return None,
    })
}

/// The scale of a `coordinateTransformations` list (`None` when it has none inline, or when
/// its length is not `n`).
fn scale_of(transforms: &Value, n: usize) -> Option<Vec<f64>> {
    let t = transforms.as_array()?.iter().find(|t| t["type"] == "scale")?;
    let scale: Vec<f64> = t["scale"].as_array()?.iter().map(Value::as_f64).collect::<Option<_>>()?;
    (scale.len() == n).then_some(scale)
}

/// The level-0 size in µm along axis `i` (its scale times its unit).
fn axis_um(multiscale: &Value, n: usize, raw_axes: Option<&Value>, i: usize) -> Option<f64> {
    let mut scale = scale_of(&multiscale["datasets"][0]["coordinateTransformations"], n)?;
    // Transformations of the whole multiscale apply after those of each dataset.
    if let Some(global) = scale_of(&multiscale["coordinateTransformations"], n) {
        scale.iter_mut().zip(global).for_each(|(s, g)| *s *= g);
    }
    let unit = raw_axes?.get(i)?.get("unit")?.as_str()?;
    let v = scale.get(i)? * unit_in_um(unit)?;
    (v.is_finite() && v > 0.0).then_some(v)
}

fn pixel_size_um(multiscale: &Value, axes: &[char], raw_axes: Option<&Value>) -> Option<f64> {
    let n = axes.len();
    let (y, x) = (axis_um(multiscale, n, raw_axes, n - 2)?, axis_um(multiscale, n, raw_axes, n - 1)?);
    ((y - x).abs() <= 1e-9 * x.max(y)).then_some(x)
}

fn image_meta(root: &Path, image: &str) -> Result<ImageMeta, VfsError> {
    safe_relative(root, image)?;
    let dir = root.join(image);
    let (_, file, attrs) =
        group_attributes(&dir)?.ok_or_else(|| VfsError::NotFound { path: dir.clone(), backend: "zarr" })?;
    let multiscale = attrs["multiscales"]
        .as_array()
        .and_then(|m| m.first())
        .ok_or_else(|| zarr_err(&file, "no OME-NGFF multiscales"))?;
    let dataset = multiscale["datasets"]
        .as_array()
        .and_then(|d| d.first())
        .and_then(|d| d["path"].as_str())
        .ok_or_else(|| zarr_err(&file, "multiscales[0] has no datasets[0].path"))?;
    safe_relative(&dir, dataset)?;
    let raw_axes = multiscale.get("axes");
    let axes = parse_axes(&dir, raw_axes)?;
    let pixel_size_um = pixel_size_um(multiscale, &axes, raw_axes);
    let z_spacing_um = axes.iter().position(|&a| a == 'z').and_then(|i| axis_um(multiscale, axes.len(), raw_axes, i));
    let channel_names = attrs["omero"]["channels"]
        .as_array()
        .map(|chs| chs.iter().map(|c| c["label"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(ImageMeta { array: format!("{image}/{dataset}"), axes, pixel_size_um, z_spacing_um, channel_names })
}

/// The Zarr v2 metadata of the array at `dir` when it holds what numcodecs reads but zarrs
/// refuses, mended as numcodecs reads it; `None` when it needs no mending (or is not v2).
///
/// OpenHCS writes its `blosc` compressor's `shuffle` as a JSON boolean (`"shuffle": true`);
/// numcodecs passes it to Blosc as the integer it stands for (`true` = 1, byte shuffle), zarrs
/// expects the integer.
fn v2_metadata_as_numcodecs_reads_it(dir: &Path) -> Result<Option<ArrayMetadataV2>, VfsError> {
    let file = dir.join(".zarray");
    // zarrs opens `zarr.json` first where both exist.
    if !file.is_file() || dir.join("zarr.json").is_file() {
        return Ok(None);
    }
    let mut doc = read_json(&file)?;
    let Some(compressor) = doc.get_mut("compressor").and_then(Value::as_object_mut) else { return Ok(None) };
    if compressor.get("id").and_then(Value::as_str) != Some("blosc") {
        return Ok(None);
    }
    let Some(shuffle) = compressor.get("shuffle").and_then(Value::as_bool) else { return Ok(None) };
    compressor.insert("shuffle".into(), u8::from(shuffle).into());
    serde_json::from_value(doc).map(Some).map_err(|e| zarr_err(&file, format!("invalid Zarr v2 array metadata: {e}")))
}

/// Open the array at `rel` (relative to `root`): it must exist, have one dimension per axis and a
/// sample type hcs reads.
fn open_array(root: &Path, rel: &str, axes: &[char]) -> Result<(Array<FilesystemStore>, Vec<u64>, Dtype), VfsError> {
    let here = root.join(rel);
    if !here.join("zarr.json").is_file() && !here.join(".zarray").is_file() {
        return Err(VfsError::NotFound { path: here, backend: "zarr" });
    }
    let store = Arc::new(FilesystemStore::new(root).map_err(|e| zarr_err(root, e))?);
    let array = match v2_metadata_as_numcodecs_reads_it(&here)? {
        Some(metadata) => Array::new_with_metadata(store, &format!("/{rel}"), ArrayMetadata::V2(metadata)),
        None => Array::open(store, &format!("/{rel}")),
    }
    .map_err(|e| zarr_err(&here, e))?;
    let shape = array.shape().to_vec();
    if shape.len() != axes.len() {
        return Err(VfsError::UnsupportedAxes {
            path: here,
            axes: axes.iter().map(char::to_string).collect::<Vec<_>>().join(","),
            reason: format!("the array has {} dimensions (shape {shape:?})", shape.len()),
        });
    }
    // Display is "uint16 / <u2" for v2 arrays: compare the name before any " / ".
    let name = array.data_type().to_string();
    let dtype = Dtype::from_name(name.split(" / ").next().unwrap_or_default())
        .ok_or_else(|| VfsError::UnsupportedDtype { path: here.clone(), dtype: name.clone() })?;
    Ok((array, shape, dtype))
}

impl NgffImage {
    /// Read the metadata of the image group at `image` (relative to the plate root, `A/1/0`) and of
    /// its level-0 array, reading no pixel.
    pub fn open(root: &Path, image: &str) -> Result<Self, VfsError> {
        let meta = image_meta(root, image)?;
        let (_, shape, dtype) = open_array(root, &meta.array, &meta.axes)?;
        Ok(Self {
            image: image.to_owned(),
            array: meta.array,
            axes: meta.axes,
            shape,
            dtype,
            pixel_size_um: meta.pixel_size_um,
            z_spacing_um: meta.z_spacing_um,
            channel_names: meta.channel_names,
        })
    }

    /// The length of `axis` (`'t'`, `'c'`, `'z'`, …): 1 when the image has no such axis.
    pub fn extent(&self, axis: char) -> u64 {
        self.axes.iter().position(|&a| a == axis).and_then(|i| self.shape.get(i).copied()).unwrap_or(1)
    }

    /// The plane shape `(height, width)`.
    pub fn plane_shape(&self) -> (usize, usize) {
        (self.extent('y') as usize, self.extent('x') as usize)
    }
}

/// Read plane (t, c, z) (0-based) of `field` of the well at `well_path` (`A/1`). `t` is ignored
/// for images without a `t` axis; `c` and `z` must be 0 for images without that axis.
pub fn read_plane(root: &Path, well_path: &str, field: u32, t: u32, c: u32, z: u32) -> Result<PlaneData, VfsError> {
    let images = well_images(root, well_path)?;
    let image = images.get(field as usize).ok_or_else(|| {
        zarr_err(&root.join(well_path), format!("field {field} is not listed (the well lists {})", images.len()))
    })?;
    let meta = image_meta(root, image)?;
    let (array, shape, dtype) = open_array(root, &meta.array, &meta.axes)?;
    let here = root.join(&meta.array);
    let n = shape.len();
    let mut start = vec![0u64; n];
    let mut extent = vec![1u64; n];
    for (i, axis) in meta.axes.iter().enumerate() {
        match axis {
            't' => start[i] = u64::from(t),
            'c' => start[i] = u64::from(c),
            'z' => start[i] = u64::from(z),
            _ => extent[i] = shape[i],
        }
    }
    let absent = |a: char, v: u32| v != 0 && !meta.axes.contains(&a);
    if absent('c', c) || absent('z', z) || start.iter().zip(&extent).zip(&shape).any(|((s, e), n)| s + e > *n) {
        return Err(zarr_err(&here, format!("plane t={t} c={c} z={z} is outside the array shape {shape:?}")));
    }
    let subset = ArraySubset::new_with_start_shape(start, extent).map_err(|e| zarr_err(&here, e))?;
    if let Some(plane) = super::chunk_cache::cached_plane(&array, root, &here, &subset, dtype)? {
        return Ok(plane);
    }
    let dims = (shape[n - 2] as usize, shape[n - 1] as usize);
    let to2 = |e: ndarray::ShapeError| zarr_err(&here, e);
    let plane = match dtype {
        Dtype::U8 => {
            let a: ArrayD<u8> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::U8(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
        Dtype::U16 => {
            let a: ArrayD<u16> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::U16(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
        Dtype::F32 => {
            let a: ArrayD<f32> = array.retrieve_array_subset(&subset).map_err(|e| zarr_err(&here, e))?;
            PlaneData::F32(a.into_shape_with_order(dims).map_err(to2)?.into_dimensionality::<Ix2>().map_err(to2)?)
        }
    };
    Ok(plane)
}
