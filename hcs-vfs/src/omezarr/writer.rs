//! Writing an OME-Zarr plate, one well at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{Array2, IxDyn};
use zarrs::array::codec::{ShardingCodecOptions, SubchunkWriteOrder};
use zarrs::array::{Array, ArrayBuilder, ArrayMetadataV2, CodecSpecificOptions, data_type};
use zarrs::filesystem::FilesystemStore;

use super::metadata;
use super::pyramid;
use super::{NgffVersion, PlateLayout, ZarrCodec};
use crate::VfsError;
use crate::atomic::write_atomic;
use crate::plane::{Dtype, PlaneData};

pub(crate) fn zarr_err(path: &Path, e: impl std::fmt::Display) -> VfsError {
    VfsError::Zarr { path: path.to_path_buf(), message: e.to_string() }
}

/// `value` with the keys of every object in sorted order, so the bytes written do not depend on
/// insertion order or on whether some crate in the build enabled serde_json's `preserve_order`.
fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

fn write_json(dir: &Path, files: Vec<(&'static str, serde_json::Value)>) -> Result<(), VfsError> {
    for (name, value) in files {
        let bytes = serde_json::to_vec_pretty(&sorted_keys(value)).map_err(|e| zarr_err(dir, e))?;
        write_atomic(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// The group file that marks a finished group.
fn group_marker(version: NgffVersion) -> &'static str {
    match version {
        NgffVersion::V05 => "zarr.json",
        NgffVersion::V04 => ".zattrs",
    }
}

/// Writes an OME-Zarr HCS plate. Wells may be written concurrently (from threads or from
/// separate processes): each owns its directory, and only [`OmeZarrPlateWriter::finalize`]
/// writes plate metadata listing them.
#[derive(Debug)]
pub struct OmeZarrPlateWriter {
    root: PathBuf,
    layout: PlateLayout,
}

impl OmeZarrPlateWriter {
    /// Prepare the plate directory (row groups and plate metadata listing the wells already
    /// complete — none for a new plate).
    pub fn create(root: &Path, layout: PlateLayout) -> Result<Self, VfsError> {
        if layout.channels.is_empty() || layout.z_planes == 0 || layout.fields == 0 || layout.timepoints == 0 {
            return Err(zarr_err(root, "a plate needs at least one channel, z-plane, field and timepoint"));
        }
        if layout.plane_shape.0 == 0 || layout.plane_shape.1 == 0 {
            return Err(zarr_err(root, "empty plane shape"));
        }
        std::fs::create_dir_all(root).map_err(|e| VfsError::io(root, e))?;
        let writer = Self { root: root.to_path_buf(), layout };
        let mut rows: Vec<&String> = writer.layout.wells.iter().map(|(r, _)| r).collect();
        rows.dedup();
        for row in rows {
            let dir = writer.root.join(row);
            // Partial wells of an interrupted run are never published: remove them.
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().contains(".partial-") {
                    std::fs::remove_dir_all(entry.path()).map_err(|e| VfsError::io(entry.path(), e))?;
                }
            }
            if !dir.join(group_marker(writer.layout.version)).exists() {
                write_json(&dir, metadata::group_files(writer.layout.version, serde_json::json!({})))?;
            }
        }
        writer.finalize()?;
        Ok(writer)
    }

    /// Attach to a plate that [`OmeZarrPlateWriter::create`] prepared, touching nothing: what a
    /// cluster task uses while other tasks write their wells (no cleanup of their partial wells,
    /// no metadata writes).
    pub fn open(root: &Path, layout: PlateLayout) -> Result<Self, VfsError> {
        if !root.join(group_marker(layout.version)).is_file() {
            return Err(zarr_err(root, "not a prepared OME-Zarr plate (create it before its wells are written)"));
        }
        Ok(Self { root: root.to_path_buf(), layout })
    }

    /// The plate layout.
    pub fn layout(&self) -> &PlateLayout {
        &self.layout
    }

    /// The plate directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn well_dir(&self, row: &str, col: u32) -> PathBuf {
        self.root.join(row).join(col.to_string())
    }

    /// Every file of a published well (group metadata, array metadata, each chunk or shard), as
    /// absolute paths in sorted order; empty when the well is not there. What a completion record
    /// lists so that a resumed run notices a missing or altered chunk.
    pub fn well_files(&self, row: &str, col: u32) -> Result<Vec<PathBuf>, VfsError> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), VfsError> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(VfsError::io(dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| VfsError::io(dir, e))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|e| VfsError::io(&path, e))?;
                if kind.is_dir() {
                    walk(&path, out)?;
                } else {
                    out.push(path);
                }
            }
            Ok(())
        }
        let mut files = Vec::new();
        walk(&self.well_dir(row, col), &mut files)?;
        files.sort();
        Ok(files)
    }

    /// Whether a well was completely written (by this or an earlier run).
    pub fn is_well_complete(&self, row: &str, col: u32) -> bool {
        self.well_dir(row, col).join(group_marker(self.layout.version)).is_file()
    }

    /// Start writing a well into a temporary directory.
    pub fn open_well(&self, row: &str, col: u32) -> Result<WellWriter, VfsError> {
        self.open_well_shaped(row, col, self.layout.plane_shape)
    }

    /// Start writing a well whose planes have their own shape (mosaics differ from well to well):
    /// stored at [`PlateLayout::field_shape`], padded where that is larger.
    pub fn open_well_shaped(&self, row: &str, col: u32, plane_shape: (usize, usize)) -> Result<WellWriter, VfsError> {
        if plane_shape.0 == 0 || plane_shape.1 == 0 {
            return Err(zarr_err(&self.root, "empty plane shape"));
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        if !self.layout.wells.iter().any(|(r, c)| r == row && *c == col) {
            return Err(zarr_err(&self.root, format!("well {row}{col:02} is not in the plate layout")));
        }
        let final_dir = self.well_dir(row, col);
        let tmp_dir = self.root.join(row).join(format!(
            ".{col}.partial-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&tmp_dir).map_err(|e| VfsError::io(&tmp_dir, e))?;
        let layout = PlateLayout { plane_shape: self.layout.field_shape(plane_shape), ..self.layout.clone() };
        let store = Arc::new(FilesystemStore::new(&tmp_dir).map_err(|e| zarr_err(&tmp_dir, e))?);
        let mut writer = WellWriter {
            final_dir,
            tmp_dir,
            layout,
            valid: plane_shape,
            store,
            arrays: Vec::new(),
            labels: BTreeMap::new(),
            float_ranges: std::sync::Mutex::new(Vec::new()),
            finished: false,
        };
        writer.prepare()?;
        Ok(writer)
    }

    /// (Re)write the plate metadata listing every complete well. Run once after all wells
    /// (for a cluster run: by the finalize job).
    pub fn finalize(&self) -> Result<(), VfsError> {
        let present: Vec<(String, u32)> =
            self.layout.wells.iter().filter(|(r, c)| self.is_well_complete(r, *c)).cloned().collect();
        write_json(&self.root, metadata::group_files(self.layout.version, metadata::plate(&self.layout, &present)))
    }
}

/// Writes one well; nothing is visible at the well's path until [`WellWriter::finish`].
pub struct WellWriter {
    final_dir: PathBuf,
    tmp_dir: PathBuf,
    /// `plane_shape` is the field shape stored.
    layout: PlateLayout,
    /// Shape of the planes given to [`WellWriter::write_plane`] (smaller when padded).
    valid: (usize, usize),
    store: Arc<FilesystemStore>,
    /// Per field, one array per pyramid level.
    arrays: Vec<Vec<Array<FilesystemStore>>>,
    /// Per (field, label name), one array per pyramid level (created by the first label plane).
    labels: BTreeMap<(u32, String), Vec<Array<FilesystemStore>>>,
    /// Of a float plate: each channel's smallest and largest finite sample written, for the
    /// display windows (an integer plate's are its sample type's range).
    float_ranges: std::sync::Mutex<Vec<Option<(f32, f32)>>>,
    finished: bool,
}

/// What an array holds: the plate's images, or a label image (one channel of `uint32`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Content {
    Image,
    Labels,
}

/// A label image's name is a folder name of the plate: letters, digits, `_` and `-` only.
fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl std::fmt::Debug for WellWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WellWriter").field("final_dir", &self.final_dir).finish_non_exhaustive()
    }
}

/// The inner chunk edge: the largest divisor of `n` in 128..=512, else `n` (shards must be a
/// multiple of their inner chunks).
fn inner_chunk(n: usize) -> usize {
    if n <= 512 {
        return n;
    }
    (128..=512).rev().find(|d| n.is_multiple_of(*d)).unwrap_or(n)
}

impl WellWriter {
    fn prepare(&mut self) -> Result<(), VfsError> {
        let layout = &self.layout;
        write_json(&self.tmp_dir, metadata::group_files(layout.version, metadata::well(layout)))?;
        let levels = pyramid::levels(layout.plane_shape);
        for field in 0..layout.fields {
            let image_dir = self.tmp_dir.join(field.to_string());
            let attributes = metadata::image(layout, field, levels, self.valid, &[]);
            write_json(&image_dir, metadata::group_files(layout.version, attributes))?;
            let mut arrays = Vec::with_capacity(levels);
            for level in 0..levels {
                arrays.push(self.level_array(&format!("/{field}/{level}"), level, Content::Image)?);
            }
            self.arrays.push(arrays);
        }
        Ok(())
    }

    /// Create the array at `path` (in the well) of pyramid `level` (one shard per plane).
    fn level_array(&self, path: &str, level: usize, content: Content) -> Result<Array<FilesystemStore>, VfsError> {
        let layout = &self.layout;
        let store = &self.store;
        let image_dir = self.tmp_dir.join(path.trim_start_matches('/'));
        let (h, w) = pyramid::level_shape(layout.plane_shape, level);
        let mut shape = layout.array_shape();
        let n = shape.len();
        if content == Content::Labels {
            shape[n - 4] = 1;
        }
        shape[n - 2] = h as u64;
        shape[n - 1] = w as u64;
        let mut chunk: Vec<u64> = vec![1; n];
        chunk[n - 2] = h as u64;
        chunk[n - 1] = w as u64;
        {
            let array = match layout.version {
                NgffVersion::V05 => {
                    let mut inner = chunk.clone();
                    inner[n - 2] = inner_chunk(h) as u64;
                    inner[n - 1] = inner_chunk(w) as u64;
                    let mut names: Vec<&str> = Vec::new();
                    if layout.has_t() {
                        names.push("t");
                    }
                    names.extend(["c", "z", "y", "x"]);
                    let (dt, fill): (_, zarrs::array::FillValue) = match (content, layout.dtype) {
                        (Content::Labels, _) => (data_type::uint32(), 0u32.into()),
                        (Content::Image, Dtype::U8) => (data_type::uint8(), 0u8.into()),
                        (Content::Image, Dtype::U16) => (data_type::uint16(), 0u16.into()),
                        (Content::Image, Dtype::F32) => (data_type::float32(), 0f32.into()),
                    };
                    let mut builder = ArrayBuilder::new(shape.clone(), chunk.clone(), dt, fill);
                    builder.subchunk_shape(inner).dimension_names(Some(names));
                    // zarrs encodes a shard's inner chunks in parallel and by default lays them
                    // out in completion order, so the shard's bytes would follow thread timing.
                    // C order makes the bytes a function of the data alone.
                    builder.codec_specific_options(
                        CodecSpecificOptions::default().with_option(
                            ShardingCodecOptions::default().with_subchunk_write_order(SubchunkWriteOrder::C),
                        ),
                    );
                    if let ZarrCodec::Zstd(level) = layout.codec {
                        builder
                            .bytes_to_bytes_codecs(vec![Arc::new(zarrs::array::codec::ZstdCodec::new(level, false))]);
                    }
                    builder.build(store.clone(), path).map_err(|e| zarr_err(&image_dir, e))?
                }
                NgffVersion::V04 => {
                    let dtype = match (content, layout.dtype) {
                        (Content::Labels, _) => "<u4",
                        (Content::Image, Dtype::U8) => "|u1",
                        (Content::Image, Dtype::U16) => "<u2",
                        (Content::Image, Dtype::F32) => "<f4",
                    };
                    let compressor = match layout.codec {
                        ZarrCodec::Zstd(level) => {
                            serde_json::json!({ "id": "zstd", "level": level })
                        }
                        ZarrCodec::None => serde_json::Value::Null,
                    };
                    let meta: ArrayMetadataV2 = serde_json::from_value(serde_json::json!({
                        "zarr_format": 2, "shape": shape, "chunks": chunk, "dtype": dtype,
                        "compressor": compressor, "fill_value": 0, "order": "C", "filters": null,
                        "dimension_separator": "/",
                    }))
                    .map_err(|e| zarr_err(&image_dir, e))?;
                    Array::new_with_metadata(store.clone(), path, meta.into()).map_err(|e| zarr_err(&image_dir, e))?
                }
            };
            array.store_metadata().map_err(|e| zarr_err(&image_dir, e))?;
            Ok(array)
        }
    }

    /// Widen channel `c`'s range by the finite samples of `plane`.
    fn note_float_range(&self, c: usize, plane: &Array2<f32>) {
        let range = plane
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |r: Option<(f32, f32)>, &v| Some(r.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))));
        let Some((lo, hi)) = range else { return };
        if let Ok(mut ranges) = self.float_ranges.lock() {
            if ranges.len() <= c {
                ranges.resize(c + 1, None);
            }
            ranges[c] = Some(ranges[c].map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
    }

    /// A float plate's image metadata again, with each channel's display window the range of
    /// the samples written (see [`metadata::image`]).
    fn write_float_windows(&self) -> Result<(), VfsError> {
        let ranges = self.float_ranges.lock().map(|r| r.clone()).unwrap_or_default();
        if self.layout.dtype != Dtype::F32 || ranges.is_empty() {
            return Ok(());
        }
        let levels = pyramid::levels(self.layout.plane_shape);
        for field in 0..self.layout.fields {
            let attributes = metadata::image(&self.layout, field, levels, self.valid, &ranges);
            write_json(&self.tmp_dir.join(field.to_string()), metadata::group_files(self.layout.version, attributes))?;
        }
        Ok(())
    }

    /// Whether a plane of `shape` fits the well: no larger than the shape it was opened for
    /// (its planes' largest; a time-lapse's mosaics differ by a pixel or two from one timepoint
    /// to the next), and each is padded to the field shape.
    fn fits(&self, shape: (usize, usize)) -> bool {
        shape.0 <= self.valid.0 && shape.1 <= self.valid.1
    }

    /// Write one plane and its pyramid levels: `field`, `t`, `c`, `z` 0-based. The plane must
    /// fit the well's shape and have the layout's dtype; it is padded to the field shape.
    pub fn write_plane(&self, field: u32, t: u32, c: u32, z: u32, plane: &PlaneData) -> Result<(), VfsError> {
        let layout = &self.layout;
        let bad = |m: String| zarr_err(&self.final_dir, m);
        let arrays = self.arrays.get(field as usize).ok_or_else(|| bad(format!("field {field} out of range")))?;
        if t >= layout.timepoints || c as usize >= layout.channels.len() || z >= layout.z_planes {
            return Err(bad(format!("plane t={t} c={c} z={z} outside the layout")));
        }
        if !self.fits(plane.dim()) || plane.dtype() != layout.dtype {
            return Err(bad(format!(
                "plane is {:?} {}, the plate holds {:?} {}",
                plane.dim(),
                plane.dtype().name(),
                self.valid,
                layout.dtype.name()
            )));
        }
        if let PlaneData::F32(a) = plane {
            self.note_float_range(c as usize, a);
        }
        let padded;
        let mut level_plane = if plane.dim() == layout.plane_shape {
            plane
        } else {
            padded = pyramid::pad(plane, layout.plane_shape);
            &padded
        };
        let mut next;
        for (level, array) in arrays.iter().enumerate() {
            if level > 0 {
                next = pyramid::downsample(level_plane);
                level_plane = &next;
            }
            self.store_plane(array, t, c, z, level_plane)?;
        }
        Ok(())
    }

    /// Write one plane of label image `name` (an NGFF label of the field, `<field>/labels/<name>`)
    /// and its pyramid levels, nearest-neighbour: `field`, `t`, `z` 0-based; the plane has the
    /// well's shape and is padded with background (0) to the field shape.
    pub fn write_labels(
        &mut self,
        name: &str,
        field: u32,
        t: u32,
        z: u32,
        labels: &Array2<u32>,
    ) -> Result<(), VfsError> {
        let bad = |m: String| zarr_err(&self.final_dir, m);
        if !valid_label_name(name) {
            return Err(bad(format!("label name `{name}` is not letters, digits, `_` or `-`")));
        }
        if field >= self.layout.fields || t >= self.layout.timepoints || z >= self.layout.z_planes {
            return Err(bad(format!("label plane field={field} t={t} z={z} outside the layout")));
        }
        if !self.fits(labels.dim()) {
            return Err(bad(format!("label plane is {:?}, the well's planes are {:?}", labels.dim(), self.valid)));
        }
        let key = (field, name.to_string());
        if !self.labels.contains_key(&key) {
            let levels = pyramid::levels(self.layout.plane_shape);
            let arrays = (0..levels)
                .map(|level| self.level_array(&format!("/{field}/labels/{name}/{level}"), level, Content::Labels))
                .collect::<Result<Vec<_>, _>>()?;
            self.labels.insert(key.clone(), arrays);
        }
        let arrays = self.labels.get(&key).ok_or_else(|| bad(format!("label `{name}` has no arrays")))?;
        let mut level_plane = if labels.dim() == self.layout.plane_shape {
            labels.clone()
        } else {
            pyramid::pad_labels(labels, self.layout.plane_shape)
        };
        let index = self.layout.plane_index(t, 0, z);
        for (level, array) in arrays.iter().enumerate() {
            if level > 0 {
                level_plane = pyramid::downsample_labels(&level_plane);
            }
            let (h, w) = level_plane.dim();
            let mut shape = vec![1usize; index.len()];
            let n = shape.len();
            (shape[n - 2], shape[n - 1]) = (h, w);
            let chunk = level_plane.clone().into_shape_with_order(IxDyn(&shape)).map_err(|e| bad(e.to_string()))?;
            array.store_chunk(&index, chunk).map_err(|e| zarr_err(&self.final_dir, e))?;
        }
        Ok(())
    }

    /// The group metadata of every label image written: each field's `labels` group listing its
    /// names, and each label image's multiscales and `image-label`.
    fn write_label_groups(&self) -> Result<(), VfsError> {
        let levels = pyramid::levels(self.layout.plane_shape);
        let mut by_field: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (field, name) in self.labels.keys() {
            by_field.entry(*field).or_default().push(name.clone());
        }
        let version = self.layout.version;
        for (field, names) in by_field {
            let dir = self.tmp_dir.join(field.to_string()).join("labels");
            write_json(&dir, metadata::group_files(version, metadata::labels_group(version, &names)))?;
            for name in &names {
                let attributes = metadata::label_image(&self.layout, field, name, levels, self.valid);
                write_json(&dir.join(name), metadata::group_files(version, attributes))?;
            }
        }
        Ok(())
    }

    fn store_plane(
        &self,
        array: &Array<FilesystemStore>,
        t: u32,
        c: u32,
        z: u32,
        plane: &PlaneData,
    ) -> Result<(), VfsError> {
        let index = self.layout.plane_index(t, c, z);
        let chunk_index: Vec<u64> = index.clone();
        let (h, w) = plane.dim();
        let mut shape = vec![1usize; index.len()];
        let n = shape.len();
        shape[n - 2] = h;
        shape[n - 1] = w;
        let err = |e: zarrs::array::ArrayError| zarr_err(&self.final_dir, e);
        let reshape = |e: ndarray::ShapeError| zarr_err(&self.final_dir, e);
        match plane {
            PlaneData::U8(a) => array
                .store_chunk(&chunk_index, a.clone().into_shape_with_order(IxDyn(&shape)).map_err(reshape)?)
                .map_err(err),
            PlaneData::U16(a) => array
                .store_chunk(&chunk_index, a.clone().into_shape_with_order(IxDyn(&shape)).map_err(reshape)?)
                .map_err(err),
            PlaneData::F32(a) => array
                .store_chunk(&chunk_index, a.clone().into_shape_with_order(IxDyn(&shape)).map_err(reshape)?)
                .map_err(err),
        }
    }

    /// Publish the well: rename the temporary directory into place, replacing an older copy
    /// whole (the old copy is first moved aside under a `.partial-` name, which
    /// [`OmeZarrPlateWriter::create`] removes should the process die before it is deleted).
    pub fn finish(mut self) -> Result<(), VfsError> {
        self.write_label_groups()?;
        self.write_float_windows()?;
        let old = if self.final_dir.exists() {
            let mut name = self.tmp_dir.as_os_str().to_os_string();
            name.push("-old");
            let old = PathBuf::from(name);
            std::fs::rename(&self.final_dir, &old).map_err(|e| VfsError::io(&self.final_dir, e))?;
            Some(old)
        } else {
            None
        };
        std::fs::rename(&self.tmp_dir, &self.final_dir).map_err(|e| VfsError::io(&self.final_dir, e))?;
        self.finished = true;
        if let Some(old) = old {
            std::fs::remove_dir_all(&old).map_err(|e| VfsError::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for WellWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.tmp_dir);
        }
    }
}
