//! Writing a well's planes to persistent storage, and the per-well completion record that makes
//! runs resumable.
//!
//! Disk planes are TIFF files named by components — `A01_s001_w1_z001_t001.tif` — in the
//! location's folder, in the input plate's storage dtype (rounded and clamped). Zarr planes go
//! into the well of the declared OME-Zarr store, published atomically when the well is complete;
//! the record then lists every file of the published well group (metadata, chunks, shards).
//!
//! A well is *done* only when `<output>/.hcs/wells/<well>.json` exists: it is written atomically
//! after every output of the well, and lists each file with its size and CRC-32 together with a
//! fingerprint of the well's plan. A resumed run skips a well only if that record matches the plan
//! and every file still has its recorded size and checksum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use hcs_vfs::atomic::write_atomic_unsynced;

use crate::write_behind::WriteBehind;
use hcs_vfs::ome_tiff::{OmePlane, Origin, ome_xml};
use hcs_vfs::omezarr::OmeZarrPlateWriter;
use hcs_vfs::tiff::{PageTags, TiffCompression, encode_f32_plane_described, encode_tiff_described};
use hcs_vfs::{Dtype, PlaneData, VfsError};
use rayon::prelude::*;

use hcs_plan::compiler::{Location, WellPlan};
use hcs_plate::{ImageKey, PlaneRef, WellId};

/// The file name of a plane.
pub fn plane_file_name(key: &ImageKey) -> String {
    format!("{}_s{:03}_w{}_z{:03}_t{:03}.tif", key.well, key.site, key.channel, key.z, key.timepoint)
}

/// One written file, for verification on resume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Path relative to the output plate.
    pub path: PathBuf,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of the content.
    pub crc32: u32,
}

/// The completion record of a well.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WellRecord {
    /// Fingerprint of the well's plan (a changed pipeline redoes the well).
    pub plan_crc32: u32,
    /// Every file written: each TIFF of a disk location; every file of the well's group in each
    /// zarr store (metadata and every chunk or shard).
    pub files: Vec<WrittenFile>,
    /// The planes of each persistent sub-directory (relative name → planes), for `hcs_plate.json`.
    pub subdirs: BTreeMap<String, Vec<(ImageKey, PlaneRef)>>,
    /// What the well's run measured (absent in records of earlier hcs versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::WellTrace>,
    /// What the well's input files held when it ran ([`hcs_plate::Plate::inputs_fingerprint`]):
    /// inputs changed since redo the well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<u64>,
}

/// Whether a well's output is complete ([`completion`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Its record matches the plan and its inputs, and every file it vouches for verifies.
    Done,
    /// Its record matches the plan, but its input files changed since (their size or time).
    InputsChanged,
    /// No record, another plan's, or a file missing or changed.
    NotDone,
}

/// The record's path.
pub fn record_path(output_root: &Path, well: WellId) -> PathBuf {
    output_root.join(".hcs").join("wells").join(format!("{well}.json"))
}

/// Fingerprint of what decides a well's output bytes: the plan (functions, variants,
/// parameters, resolved config, component values, file names) and the hcs version — not the
/// worker count, the memory estimate or the writer queue's bound (they change how a well runs,
/// not its bytes), nor how the output and plate paths are spelled (`o` and `$PWD/o` are one
/// output), so changing any of them does not redo finished wells.
pub fn plan_crc(plan: &WellPlan) -> u32 {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    // How a well is cut into parts changes the order of work, not the bytes.
    if let serde_json::Value::Object(map) = &mut value {
        map.remove("segments");
    }
    let out = plan.output_root.to_string_lossy().into_owned();
    let plate = plan.plate.to_string_lossy().into_owned();
    normalize_for_fingerprint(&mut value, &out, &plate);
    let text = format!("hcs {}\n{value}", env!("CARGO_PKG_VERSION"));
    crc32fast::hash(text.as_bytes())
}

/// Drop what does not change the bytes written (`workers`, GPU slots) and spell every path
/// relative to the output (or the plate) it lies in.
fn normalize_for_fingerprint(value: &mut serde_json::Value, out: &str, plate: &str) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            map.remove("workers");
            map.remove("gpu_slots");
            map.remove("slots");
            map.remove("estimated_peak_bytes");
            map.remove("write_behind_bytes");
            map.values_mut().for_each(|v| normalize_for_fingerprint(v, out, plate));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalize_for_fingerprint(v, out, plate)),
        Value::String(s) => {
            for (root, name) in [(out, "$OUT"), (plate, "$PLATE")] {
                if !root.is_empty() && Path::new(s.as_str()).starts_with(root) {
                    let rest = Path::new(s.as_str()).strip_prefix(root).map(Path::to_path_buf).unwrap_or_default();
                    *s = Path::new(name).join(rest).to_string_lossy().into_owned();
                    break;
                }
            }
        }
        _ => {}
    }
}

/// A CRC-32 and size of a file.
pub fn file_crc(path: &Path) -> Option<(u64, u32)> {
    let bytes = std::fs::read(path).ok()?;
    Some((bytes.len() as u64, checksum(&bytes)))
}

/// Bytes above which [`checksum`] hashes parts of them on every worker.
const PARALLEL_CRC_BYTES: usize = 4 << 20;

/// The CRC-32 of `bytes`: in parts on every worker, combined in order, for a large file (a
/// mosaic is checksummed by its step's thread, the other cores otherwise idle) — the same CRC
/// as one pass gives.
pub fn checksum(bytes: &[u8]) -> u32 {
    if bytes.len() <= PARALLEL_CRC_BYTES {
        return crc32fast::hash(bytes);
    }
    let parts: Vec<crc32fast::Hasher> = bytes
        .par_chunks(PARALLEL_CRC_BYTES / 2)
        .map(|part| {
            let mut h = crc32fast::Hasher::new();
            h.update(part);
            h
        })
        .collect();
    let mut whole = crc32fast::Hasher::new();
    parts.iter().for_each(|h| whole.combine(h));
    whole.finalize()
}

/// Whether the well is complete in the output of `plate`: [`completion`] with its inputs'
/// fingerprint now.
pub fn is_done(output_root: &Path, plan: &WellPlan, plate: &hcs_plate::Plate) -> bool {
    completion(output_root, plan, Some(plate.inputs_fingerprint(plan.well))) == Completion::Done
}

/// Whether the well's record matches `plan` and `inputs` (the well's
/// [`hcs_plate::Plate::inputs_fingerprint`] now; `None`: the record's are taken as they are,
/// by a caller that follows the jobs writing the records) and all its files verify.
pub fn completion(output_root: &Path, plan: &WellPlan, inputs: Option<u64>) -> Completion {
    let Ok(bytes) = std::fs::read(record_path(output_root, plan.well)) else { return Completion::NotDone };
    let Ok(record) = serde_json::from_slice::<WellRecord>(&bytes) else { return Completion::NotDone };
    if record.plan_crc32 != plan_crc(plan) {
        Completion::NotDone
    } else if inputs.is_some_and(|now| record.inputs != Some(now)) {
        Completion::InputsChanged
    } else if record.files.iter().all(|f| file_crc(&output_root.join(&f.path)) == Some((f.bytes, f.crc32))) {
        Completion::Done
    } else {
        Completion::NotDone
    }
}

/// Whether the well's record says it is complete for `plan` and `inputs` (the well's inputs'
/// fingerprint now) and its files are there at their recorded sizes, without reading them back:
/// what a report says of a well the run did not take up (`hcs run --wells`), and what the
/// read-ahead skips, where [`completion`] would read every file of it.
pub fn recorded_complete(output_root: &Path, plan: &WellPlan, inputs: u64) -> bool {
    read_record(output_root, plan.well).is_some_and(|r| {
        r.plan_crc32 == plan_crc(plan)
            && r.inputs == Some(inputs)
            && r.files.iter().all(|f| std::fs::metadata(output_root.join(&f.path)).is_ok_and(|m| m.len() == f.bytes))
    })
}

/// Read a well's record (for the output plate's metadata).
pub fn read_record(output_root: &Path, well: WellId) -> Option<WellRecord> {
    let bytes = std::fs::read(record_path(output_root, well)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write the record atomically (the well is done from this moment).
pub fn write_record(output_root: &Path, well: WellId, record: &WellRecord) -> Result<(), VfsError> {
    // Every file the record vouches for reaches the disk before the record does.
    hcs_vfs::atomic::sync_files(record.files.iter().map(|f| output_root.join(&f.path)))?;
    // Plain data: serializing it cannot fail.
    let bytes = serde_json::to_vec_pretty(record).unwrap_or_default();
    hcs_vfs::atomic::write_atomic(&record_path(output_root, well), &bytes)
}

/// Remove a well's record before the well is run again: from then on it is not complete, and
/// should it fail, the output plate's metadata ([`read_record`]) does not list what its earlier
/// run wrote (some of which the new run may already have replaced or removed). A record that is
/// not there is fine.
pub fn withdraw_record(output_root: &Path, well: WellId) -> Result<(), VfsError> {
    let path = record_path(output_root, well);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VfsError::Io { path, source: e }),
        _ => Ok(()),
    }
}

/// One plane written to a file: the file for the record, and the plane's reference.
type WrittenPlane = (WrittenFile, (ImageKey, PlaneRef));

/// Planes with where they are stored.
pub type PlaneList = Vec<(ImageKey, PlaneRef)>;

/// Label images a step produced ([`hcs_core::labels::LabelStack`]), each with its label image's
/// name (the special output's key, `_c<channel>` added when several channels have masks) and
/// the key of the image plane it labels.
pub type LabelPlanes = Vec<(String, ImageKey, ndarray::Array2<u32>)>;

/// Storage of one persistent location, shared by the wells of a run.
pub enum Sink<'a> {
    /// OME-TIFF files in a folder, one plane each, calibrated from the facts given.
    Disk(&'a Path, &'a PlaneFacts),
    /// An OME-Zarr store, with the component values that map to field / channel / z / t indices.
    Zarr(&'a OmeZarrPlateWriter, &'a ZarrAxes),
}

/// What every written plane's OME-XML says beyond its key: the pixel size and channel names.
#[derive(Clone, Debug, Default)]
pub struct PlaneFacts {
    /// Pixel size in µm, when the plate records it.
    pub pixel_size_um: Option<f64>,
    /// Where the step's planes start on the plate's pixel grid, when the compiler could tell.
    pub origin: Option<Origin>,
    /// Channel value → name.
    pub channels: BTreeMap<u32, String>,
}

impl PlaneFacts {
    /// The OME-XML of the plane `key` of `shape` and `dtype`, stored as `file`.
    fn xml(&self, key: &ImageKey, file: &str, shape: (usize, usize), dtype: Dtype) -> String {
        ome_xml(&OmePlane {
            name: file.trim_end_matches(".tif").to_string(),
            shape,
            dtype,
            pixel_size_um: self.pixel_size_um,
            origin: self.origin,
            channel: self.channels.get(&key.channel).cloned().unwrap_or_else(|| format!("channel {}", key.channel)),
            well: key.well.to_string(),
            site: key.site,
            channel_index: key.channel,
            z: key.z,
            timepoint: key.timepoint,
        })
    }
}

/// Component value → 0-based index, per axis of a zarr store.
#[derive(Clone, Debug, Default)]
pub struct ZarrAxes {
    /// Site values (fields).
    pub sites: Vec<u32>,
    /// Channel values.
    pub channels: Vec<u32>,
    /// Z values.
    pub zs: Vec<u32>,
    /// Timepoint values.
    pub timepoints: Vec<u32>,
}

fn index_of(values: &[u32], v: u32, what: &str, path: &Path) -> Result<u32, VfsError> {
    values.iter().position(|x| *x == v).map(|i| i as u32).ok_or_else(|| VfsError::Zarr {
        path: path.to_path_buf(),
        message: format!("{what} {v} is not in the declared store (declared: {values:?})"),
    })
}

/// A plane of a well's final output, as stored in its TIFF file (the samples in the run's
/// dtype), before the file is written: the report shrinks its pictures from these instead of
/// reading the mosaics back after the run. Planes of an OME-Zarr output are not passed (the
/// store pads them to the plate's canvas), nor checkpoints.
///
/// Called from several pool threads at once, in no particular order. A well may still fail
/// after its planes were seen (a file that cannot be written, say): use a plane only for a well
/// that ended done. A panic in the callback fails the well.
pub type OnOutput<'a> = dyn Fn(&ImageKey, &PlaneData) + Sync + 'a;

/// Write one well's planes to a sink; returns the files written and the plane references.
/// `on_output` sees each plane of a TIFF sink as stored, before its file is written.
pub fn write_planes(
    sink: &Sink<'_>,
    output_root: &Path,
    planes: &BTreeMap<ImageKey, ndarray::ArcArray2<f32>>,
    labels: &LabelPlanes,
    dtype: Dtype,
    writes: Option<&WriteBehind>,
    on_output: Option<&OnOutput<'_>>,
) -> Result<(Vec<WrittenFile>, PlaneList), VfsError> {
    let rel = |p: &Path| relative(p, output_root);
    match sink {
        Sink::Disk(dir, facts) => {
            // Planes are independent files: encode, checksum and write them in parallel. They
            // are not fsynced one by one: `write_record` syncs all of a well's files before the
            // record that vouches for them, by which time most are already on disk. The CRC is
            // taken from the bytes written, not by reading the file back.
            let attempts: Vec<Result<WrittenPlane, VfsError>> = planes
                .par_iter()
                .map(|(key, plane)| {
                    let name = plane_file_name(key);
                    let path = dir.join(&name);
                    let xml = facts.xml(key, &name, plane.dim(), dtype);
                    let tags = PageTags { description: Some(&xml), pixel_size_um: facts.pixel_size_um };
                    let bytes = match on_output {
                        // Narrowed strip by strip as it is encoded: no narrowed copy of the plane.
                        None => encode_f32_plane_described(plane.view(), dtype, tags, &path)?,
                        Some(seen) => {
                            let data = PlaneData::from_f32(plane.view(), dtype);
                            seen(key, &data);
                            encode_tiff_described(&[data], TiffCompression::None, tags, &path)?
                        }
                    };
                    let file = WrittenFile { path: rel(&path), bytes: bytes.len() as u64, crc32: checksum(&bytes) };
                    // Synced with the well's other files before its record is written.
                    match writes {
                        Some(writes) => writes.submit(path.clone(), bytes)?,
                        None => write_atomic_unsynced(&path, &bytes)?,
                    }
                    Ok((file, (*key, PlaneRef::file(rel(&path)))))
                })
                .collect();
            // All or nothing: when one plane fails (a full disk), the planes written beside it
            // are removed too, so the well's record — which never lists them — leaves no litter.
            if let Some(position) = attempts.iter().position(Result::is_err) {
                // Files still queued are written (or not) before they are removed.
                let behind = writes.map(WriteBehind::finish);
                for (file, _) in attempts.iter().flatten() {
                    let _ = std::fs::remove_file(output_root.join(&file.path));
                }
                // The writer's own failure says more than "the writer has stopped".
                if let Some(Err(e)) = behind {
                    return Err(e);
                }
                let error = attempts.into_iter().nth(position).and_then(Result::err);
                return Err(error.unwrap_or_else(|| VfsError::Io {
                    path: dir.to_path_buf(),
                    source: std::io::Error::other("a plane could not be written"),
                }));
            }
            Ok(attempts.into_iter().flatten().unzip())
        }
        Sink::Zarr(writer, axes) => {
            let Some((first_key, first)) = planes.iter().next() else { return Ok((Vec::new(), Vec::new())) };
            let well = first_key.well;
            let (row, col) = (well.row_letters(), u32::from(well.col));
            let root = writer.root().to_path_buf();
            let layout = writer.layout();
            // The planes' largest extent: a time-lapse's mosaics differ by a pixel or two
            // between timepoints, and each is padded to the well's field shape.
            let shape = planes.values().map(|p| p.dim()).fold(first.dim(), |(h, w), (a, b)| (h.max(a), w.max(b)));
            if planes.values().any(|p| p.dim() != shape) {
                tracing::info!(
                    well = %well,
                    "{}: the well's planes differ in size (up to {}×{}, width×height); each is stored padded with zeros at the bottom and right",
                    root.display(),
                    shape.1,
                    shape.0
                );
            }
            // Not silently: the plate's wells no longer share one field shape. Without a canvas
            // (a plate that records no tile shape or site grid, such as an hcs output) no shape
            // was promised, and nothing is said.
            if let Some((canvas_h, canvas_w)) = layout.mosaic_canvas
                && (shape.0 > layout.plane_shape.0 || shape.1 > layout.plane_shape.1)
                && layout.field_shape(shape) == shape
            {
                tracing::warn!(
                    well = %well,
                    "{}: {}×{} planes (width×height) exceed the plate's mosaic canvas of {canvas_w}×{canvas_h}; the well keeps its own field shape, and viewers that tile the plate (napari, ome-zarr-py) will refuse it",
                    root.display(),
                    shape.1,
                    shape.0
                );
            }
            let mut w = writer.open_well_shaped(&row, col, shape)?;
            let mut refs = Vec::with_capacity(planes.len());
            for (key, plane) in planes {
                let field = index_of(&axes.sites, key.site, "site", &root)?;
                let c = index_of(&axes.channels, key.channel, "channel", &root)?;
                let z = index_of(&axes.zs, key.z, "z", &root)?;
                let t = index_of(&axes.timepoints, key.timepoint, "timepoint", &root)?;
                w.write_plane(field, t, c, z, &PlaneData::from_f32(plane.view(), dtype))?;
                refs.push((*key, PlaneRef::Zarr { store: rel(&root), well: format!("{row}/{col}"), field, t, c, z }));
            }
            // NGFF labels beside the images they label (one label image per name and field).
            for (name, key, mask) in labels {
                // A mask must cover its plane pixel for pixel (a later call in the step may have
                // resized the planes): not a reason to lose the well, but said.
                if planes.get(key).map(|p| p.dim()) != Some(mask.dim()) {
                    tracing::warn!(
                        well = %well,
                        "{}: label image `{name}` of {:?} is {:?}, its plane {:?}; written to the results folder (`results_folder`) only",
                        root.display(),
                        key,
                        mask.dim(),
                        planes.get(key).map(|p| p.dim())
                    );
                    continue;
                }
                let field = index_of(&axes.sites, key.site, "site", &root)?;
                let z = index_of(&axes.zs, key.z, "z", &root)?;
                let t = index_of(&axes.timepoints, key.timepoint, "timepoint", &root)?;
                w.write_labels(name, field, t, z, mask)?;
            }
            w.finish()?;
            // The well is published: list every file of it (group and array metadata, each
            // shard) so that a resumed run redoes the well when one is missing or altered.
            let mut files = Vec::new();
            for path in writer.well_files(&row, col)? {
                let (bytes, crc32) = file_crc(&path).ok_or_else(|| VfsError::Zarr {
                    path: path.clone(),
                    message: "unreadable after publishing".into(),
                })?;
                files.push(WrittenFile { path: rel(&path), bytes, crc32 });
            }
            if files.is_empty() {
                return Err(VfsError::Zarr {
                    path: root,
                    message: format!("well {row}/{col} missing after publishing"),
                });
            }
            Ok((files, refs))
        }
    }
}

/// The folder a persistent location names, relative to the output plate (its sub-dir name).
pub fn subdir_name(location: &Location, output_root: &Path) -> Option<String> {
    let p = location.persistent_path()?;
    Some(p.strip_prefix(output_root).unwrap_or(p).display().to_string())
}

/// `path` relative to the output root (as the record lists files), or as it is when outside it.
pub(crate) fn relative(path: &Path, root: &Path) -> PathBuf {
    path.strip_prefix(root).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_files_checksum_in_parts_is_the_one_pass_crc() {
        // Sizes on both sides of the parallel bound, and parts that do not divide the bytes.
        for len in [0, 1, PARALLEL_CRC_BYTES, PARALLEL_CRC_BYTES + 1, 3 * PARALLEL_CRC_BYTES + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            assert_eq!(checksum(&bytes), crc32fast::hash(&bytes), "{len} bytes");
        }
    }
}
