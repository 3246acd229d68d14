//! The [`Store`] trait: one API over the backends — `save` / `load` / batch forms / `exists` /
//! `list` / `delete`, keyed by path — so a plan can move a step's data between memory and storage
//! without the code that runs the step knowing. The executor reads and passes intermediates only
//! through stores, at the paths its frozen plan names.
//!
//! - **memory**: typed values and planes in a `BTreeMap` keyed by path — lookups and listings are
//!   ordered-map operations (a listing is a range scan over the prefix), never linear scans.
//! - **disk**: planes as TIFF files, bytes as files; every write atomic.
//! - **zarr**: planes of OME-Zarr plates, addressed as
//!   `<store>/<row>/<col>/<field>/<t>/<c>/<z>`. Reads are per plane. Writes go through
//!   [`crate::omezarr::WellWriter`], which publishes a whole well atomically; a single-plane
//!   `save` to zarr is refused rather than done non-atomically.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ndarray::ArcArray2;
use rayon::prelude::*;

use crate::VfsError;
use crate::atomic::write_atomic;
use crate::plane::{Dtype, PlaneData};
use crate::tiff::{TiffCompression, TiffLimits, read_tiff, write_tiff};

/// Where data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In-process.
    Memory,
    /// Files (TIFF for planes).
    Disk,
    /// OME-Zarr stores.
    Zarr,
}

impl Backend {
    /// The backend's name.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Disk => "disk",
            Backend::Zarr => "zarr",
        }
    }
}

/// What can be stored. Clones are cheap (shared).
#[derive(Clone)]
pub enum Data {
    /// One image plane.
    Plane(Arc<PlaneData>),
    /// Raw bytes (CSV, JSON, …).
    Bytes(Arc<[u8]>),
    /// Any in-process value (memory backend only).
    Value(Arc<dyn Any + Send + Sync>),
    /// One plane of raw `f32` samples, shared: the memory backend keeps it without a copy, the
    /// disk backend writes it as an uncompressed f32 TIFF.
    Samples(ArcArray2<f32>),
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Plane(p) => write!(f, "Plane({:?} {})", p.dim(), p.dtype().name()),
            Data::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            Data::Value(_) => f.write_str("Value(..)"),
            Data::Samples(s) => write!(f, "Samples({:?})", s.dim()),
        }
    }
}

impl Data {
    fn kind(&self) -> &'static str {
        match self {
            Data::Plane(_) => "an image plane",
            Data::Bytes(_) => "bytes",
            Data::Value(_) => "an in-process value",
            Data::Samples(_) => "an image plane",
        }
    }

    /// The plane as shared `f32` samples (a stored plane of another dtype is converted), or an
    /// error naming what is stored instead.
    pub fn into_samples(self, path: &Path) -> Result<ArcArray2<f32>, VfsError> {
        match self {
            Data::Samples(s) => Ok(s),
            Data::Plane(p) => Ok(p.to_f32().into_shared()),
            other => {
                Err(VfsError::WrongKind { path: path.to_path_buf(), expected: "an image plane", found: other.kind() })
            }
        }
    }

    /// The plane, or an error naming what is stored instead.
    pub fn into_plane(self, path: &Path) -> Result<Arc<PlaneData>, VfsError> {
        match self {
            Data::Plane(p) => Ok(p),
            other => {
                Err(VfsError::WrongKind { path: path.to_path_buf(), expected: "an image plane", found: other.kind() })
            }
        }
    }
}

/// Where data is kept, keyed by path: in memory ([`MemoryStore`]), as files ([`DiskStore`]) or
/// in OME-Zarr plates ([`ZarrStore`]).
pub trait Store: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Store `data` at `path` (replacing what was there).
    fn save(&self, data: Data, path: &Path) -> Result<(), VfsError>;

    /// Load what is stored at `path`.
    fn load(&self, path: &Path) -> Result<Data, VfsError>;

    /// Whether something is stored at `path`.
    fn exists(&self, path: &Path) -> bool;

    /// Everything stored directly or indirectly under `dir`, in order.
    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, VfsError>;

    /// Remove what is stored at `path`, and everything under it.
    fn delete(&self, path: &Path) -> Result<(), VfsError>;

    /// Store many items (in parallel where the backend allows).
    fn save_batch(&self, items: Vec<(Data, PathBuf)>) -> Result<(), VfsError> {
        items.into_par_iter().try_for_each(|(data, path)| self.save(data, &path))
    }

    /// Load many paths, in order (in parallel where the backend allows).
    fn load_batch(&self, paths: &[PathBuf]) -> Result<Vec<Data>, VfsError> {
        paths.par_iter().map(|p| self.load(p)).collect()
    }
}

/// In-process values and planes in an ordered map: lookups and listings are ordered-map
/// operations (a listing is a range scan over the prefix), never linear scans.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<PathBuf, Data>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn save(&self, data: Data, path: &Path) -> Result<(), VfsError> {
        self.map.write().map_err(|_| poisoned(path))?.insert(path.to_path_buf(), data);
        Ok(())
    }

    fn load(&self, path: &Path) -> Result<Data, VfsError> {
        self.map
            .read()
            .map_err(|_| poisoned(path))?
            .get(path)
            .cloned()
            .ok_or(VfsError::NotFound { path: path.to_path_buf(), backend: "memory" })
    }

    fn exists(&self, path: &Path) -> bool {
        self.map.read().is_ok_and(|m| m.contains_key(path))
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, VfsError> {
        let map = self.map.read().map_err(|_| poisoned(dir))?;
        Ok(map
            .range(dir.to_path_buf()..)
            .take_while(|(k, _)| k.starts_with(dir))
            .map(|(k, _)| k.clone())
            .filter(|k| k != dir)
            .collect())
    }

    fn delete(&self, path: &Path) -> Result<(), VfsError> {
        let mut map = self.map.write().map_err(|_| poisoned(path))?;
        let doomed: Vec<PathBuf> =
            map.range(path.to_path_buf()..).take_while(|(k, _)| k.starts_with(path)).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            map.remove(&k);
        }
        Ok(())
    }

    /// In memory there is nothing to overlap: one lock, in order.
    fn save_batch(&self, items: Vec<(Data, PathBuf)>) -> Result<(), VfsError> {
        let Some((_, first)) = items.first() else { return Ok(()) };
        let mut map = self.map.write().map_err(|_| poisoned(first))?;
        for (data, path) in items {
            map.insert(path, data);
        }
        Ok(())
    }
}

/// Files: planes as TIFFs (written with [`DiskStore::tiff_compression`]), bytes as they are;
/// every write atomic.
#[derive(Debug, Default)]
pub struct DiskStore {
    /// Compression for TIFFs written by `save`.
    pub tiff_compression: TiffCompression,
}

impl DiskStore {
    /// A store writing uncompressed TIFFs.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Store for DiskStore {
    fn backend(&self) -> Backend {
        Backend::Disk
    }

    fn save(&self, data: Data, path: &Path) -> Result<(), VfsError> {
        match data {
            Data::Plane(p) => write_tiff(path, std::slice::from_ref(&*p), self.tiff_compression),
            Data::Samples(s) => write_tiff(path, &[PlaneData::from_f32(s.view(), Dtype::F32)], self.tiff_compression),
            Data::Bytes(b) => write_atomic(path, &b),
            Data::Value(_) => Err(VfsError::WrongKind {
                path: path.to_path_buf(),
                expected: "a plane or bytes (serialize values before writing them to disk)",
                found: "an in-process value",
            }),
        }
    }

    fn load(&self, path: &Path) -> Result<Data, VfsError> {
        if !path.exists() {
            return Err(VfsError::NotFound { path: path.to_path_buf(), backend: "disk" });
        }
        let is_tiff = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
        if !is_tiff {
            let bytes = std::fs::read(path).map_err(|e| VfsError::io(path, e))?;
            return Ok(Data::Bytes(bytes.into()));
        }
        let mut pages = read_tiff(path, TiffLimits::default())?;
        if pages.len() != 1 {
            return Err(VfsError::CorruptTiff {
                path: path.to_path_buf(),
                message: format!("{} pages where one plane was expected", pages.len()),
            });
        }
        Ok(Data::Plane(Arc::new(pages.remove(0))))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, VfsError> {
        files_under(dir)
    }

    fn delete(&self, path: &Path) -> Result<(), VfsError> {
        delete_files(path)
    }
}

/// Planes of OME-Zarr plates, addressed as `<store>/<row>/<col>/<field>/<t>/<c>/<z>`. Reads are
/// per plane; writes go through [`crate::omezarr::WellWriter`], which publishes a whole well
/// atomically, so a single-plane `save` is refused rather than done non-atomically.
#[derive(Debug, Default)]
pub struct ZarrStore;

impl Store for ZarrStore {
    fn backend(&self) -> Backend {
        Backend::Zarr
    }

    fn save(&self, _data: Data, path: &Path) -> Result<(), VfsError> {
        Err(VfsError::Zarr {
            path: path.to_path_buf(),
            message: "zarr planes are written per well through omezarr::WellWriter (atomic publication)".into(),
        })
    }

    fn load(&self, path: &Path) -> Result<Data, VfsError> {
        let (store, well, [field, t, c, z]) = split_zarr_path(path)?;
        Ok(Data::Plane(Arc::new(crate::omezarr::read_plane(&store, &well, field, t, c, z)?)))
    }

    fn exists(&self, path: &Path) -> bool {
        split_zarr_path(path).is_ok_and(|(store, well, [field, ..])| store.join(well).join(field.to_string()).is_dir())
    }

    fn list(&self, dir: &Path) -> Result<Vec<PathBuf>, VfsError> {
        files_under(dir)
    }

    fn delete(&self, path: &Path) -> Result<(), VfsError> {
        delete_files(path)
    }
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, VfsError> {
    let mut out = Vec::new();
    walk(dir, &mut out, 0)?;
    out.sort();
    Ok(out)
}

/// Remove a file or a folder with everything under it; a missing one is no error.
fn delete_files(path: &Path) -> Result<(), VfsError> {
    let result = if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(VfsError::io(path, e)),
        _ => Ok(()),
    }
}

fn poisoned(path: &Path) -> VfsError {
    VfsError::Io { path: path.to_path_buf(), source: std::io::Error::other("memory backend lock poisoned by a panic") }
}

/// Files under `dir` (symlinked directories are not followed, so loops cannot recurse).
fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), VfsError> {
    if depth > 64 {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VfsError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| VfsError::io(dir, e))?;
        let kind = entry.file_type().map_err(|e| VfsError::io(entry.path(), e))?;
        if kind.is_dir() {
            walk(&entry.path(), out, depth + 1)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// `<store>/<row>/<col>/<field>/<t>/<c>/<z>` → (store, "row/col", [field, t, c, z]).
fn split_zarr_path(path: &Path) -> Result<(PathBuf, String, [u32; 4]), VfsError> {
    let bad =
        || VfsError::BadPath { path: path.to_path_buf(), reason: "expected <store>/<row>/<col>/<field>/<t>/<c>/<z>" };
    let parts: Vec<&str> = path.iter().filter_map(|c| c.to_str()).collect();
    if parts.len() < 7 {
        return Err(bad());
    }
    let n = parts.len();
    let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
    let idx = [num(parts[n - 4])?, num(parts[n - 3])?, num(parts[n - 2])?, num(parts[n - 1])?];
    let well = format!("{}/{}", parts[n - 6], parts[n - 5]);
    let store: PathBuf = path.iter().take(n - 6).collect();
    Ok((store, well, idx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn plane(v: u16) -> Data {
        Data::Plane(Arc::new(PlaneData::U16(Array2::from_elem((3, 4), v))))
    }

    #[test]
    fn memory_backend_stores_values_and_lists_by_prefix() {
        let vfs = MemoryStore::new();
        vfs.save(plane(1), Path::new("plate/A01/s1")).expect("save");
        vfs.save(plane(2), Path::new("plate/A01/s2")).expect("save");
        vfs.save(plane(3), Path::new("plate/A010/s1")).expect("save");
        vfs.save(Data::Value(Arc::new(vec![(1.0f64, 2.0f64)])), Path::new("plate/results/A01_positions"))
            .expect("save");
        let listed = vfs.list(Path::new("plate/A01")).expect("list");
        assert_eq!(listed, [PathBuf::from("plate/A01/s1"), PathBuf::from("plate/A01/s2")], "A010 is not under A01");
        let v = vfs.load(Path::new("plate/results/A01_positions")).expect("load");
        let Data::Value(v) = v else { panic!("value") };
        assert_eq!(v.downcast_ref::<Vec<(f64, f64)>>(), Some(&vec![(1.0, 2.0)]));
        vfs.delete(Path::new("plate/A01")).expect("delete");
        assert!(!vfs.exists(Path::new("plate/A01/s1")));
        assert!(vfs.exists(Path::new("plate/A010/s1")));
        let err = vfs.load(Path::new("plate/A01/s1")).expect_err("deleted");
        assert_eq!(err.to_string(), "plate/A01/s1: not found in the memory backend");
    }

    #[test]
    fn disk_backend_round_trips_planes_and_bytes_in_batches() {
        let dir = std::env::temp_dir().join(format!("hcs-store-{}", std::process::id()));
        let vfs = DiskStore::new();
        let items: Vec<(Data, PathBuf)> = (0..8).map(|i| (plane(i), dir.join(format!("p{i}.tif")))).collect();
        vfs.save_batch(items).expect("save batch");
        vfs.save(Data::Bytes(b"x,y\n".as_slice().into()), &dir.join("results/pos.csv")).expect("bytes");
        let paths: Vec<PathBuf> = (0..8).map(|i| dir.join(format!("p{i}.tif"))).collect();
        let loaded = vfs.load_batch(&paths).expect("load batch");
        for (i, d) in loaded.into_iter().enumerate() {
            let p = d.into_plane(&paths[i]).expect("plane");
            assert_eq!(*p, PlaneData::U16(Array2::from_elem((3, 4), i as u16)));
        }
        assert_eq!(vfs.list(&dir).expect("list").len(), 9);
        let err = vfs.save(Data::Value(Arc::new(1u8)), &dir.join("v")).expect_err("value on disk");
        assert!(err.to_string().contains("serialize values"), "{err}");
        let err = vfs.load(&dir.join("results/pos.csv")).expect("bytes").into_plane(&dir).expect_err("kind");
        assert!(err.to_string().contains("holds bytes, expected an image plane"), "{err}");
        vfs.delete(&dir).expect("delete");
        assert!(!dir.exists());
    }

    #[test]
    fn f32_samples_stay_shared_in_memory_and_round_trip_through_disk() {
        let samples = Array2::from_shape_fn((3, 4), |(y, x)| (y * 10 + x) as f32 + 0.5).into_shared();
        let memory = MemoryStore::new();
        memory.save(Data::Samples(samples.clone()), Path::new("ns/A01/p.tif")).expect("save");
        let back = memory.load(Path::new("ns/A01/p.tif")).and_then(|d| d.into_samples(Path::new("p"))).expect("load");
        assert_eq!(back.as_ptr(), samples.as_ptr(), "memory keeps the same buffer");
        let dir = std::env::temp_dir().join(format!("hcs-store-samples-{}", std::process::id()));
        let disk = DiskStore::new();
        let path = dir.join("A01/p.tif");
        disk.save(Data::Samples(samples.clone()), &path).expect("save to disk");
        let read = disk.load(&path).and_then(|d| d.into_samples(&path)).expect("read back");
        assert_eq!(read, samples);
        let bytes = Data::Bytes(b"x".as_slice().into());
        assert!(bytes.into_samples(&path).is_err_and(|e| e.to_string().contains("expected an image plane")));
        disk.delete(&dir).expect("delete");
        assert!(!disk.exists(&path));
    }

    #[test]
    fn zarr_paths_address_planes_of_a_plate() {
        use crate::omezarr::{NgffVersion, OmeZarrPlateWriter, PlateLayout, ZarrCodec};
        let dir = std::env::temp_dir().join(format!("hcs-store-zarr-{}", std::process::id()));
        let layout = PlateLayout {
            name: "p".into(),
            wells: vec![("B".into(), 2)],
            fields: 1,
            timepoints: 1,
            channels: vec!["a".into(), "b".into()],
            z_planes: 1,
            plane_shape: (3, 4),
            dtype: crate::Dtype::U16,
            pixel_size_um: None,
            z_spacing_um: None,
            version: NgffVersion::V05,
            codec: ZarrCodec::None,
            mosaic_canvas: None,
            origin: (0.0, 0.0),
        };
        let root = dir.join("p.ome.zarr");
        let writer = OmeZarrPlateWriter::create(&root, layout).expect("create");
        let well = writer.open_well("B", 2).expect("open");
        well.write_plane(0, 0, 1, 0, &PlaneData::U16(Array2::from_elem((3, 4), 9))).expect("write");
        well.finish().expect("finish");
        let vfs = ZarrStore;
        let path = root.join("B/2/0/0/1/0");
        assert!(vfs.exists(&path));
        let p = vfs.load(&path).expect("load").into_plane(&path).expect("plane");
        assert_eq!(*p, PlaneData::U16(Array2::from_elem((3, 4), 9)));
        assert!(vfs.save(plane(1), &path).is_err());
        assert!(vfs.load(&root.join("B/2")).is_err());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
