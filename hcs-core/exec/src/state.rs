//! A well's state between its steps: where each step's output planes are (a store at the paths
//! the plan names, or a GPU), the special outputs kept for later steps, and what the well has
//! written so far.
//!
//! **The data plane.** Intermediate planes move between steps only through [`Store`]s, at paths
//! derived from the plan's locations: `Memory { namespace }` → `<namespace>/<plane file>` in a
//! [`MemoryStore`] (the planes are shared, not copied), `Disk { dir }` → `<dir>/<well>/<plane file>`
//! in a [`DiskStore`] (f32 TIFF scratch files). Moving an intermediate from memory to disk is a
//! plan change; this code does not change with it. Planes kept on a GPU for the next GPU step
//! stay in device memory ([`DevicePlanes`]). Special outputs are kept in the same memory store,
//! at the `memory_key` the plan gives each (`special/<key>`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArcArray2, ArcArray3, Array3};

use hcs_core::stack::Stack;
use hcs_device::join_planes;
use hcs_plan::compiler::{Location, WellPlan};
use hcs_plate::ImageKey;
use hcs_vfs::{Data, DiskStore, MemoryStore, Store};

use crate::error::StepError;
use crate::output::{WellRecord, plane_file_name};
use crate::qc::PlaneQc;
use crate::trace::WellTrace;

/// A well's planes at one point of the pipeline, on the host.
pub type Planes = BTreeMap<ImageKey, ArcArray2<f32>>;

/// A step's output planes kept on its device for the next step (one stack of one plane each).
pub type DevicePlanes = BTreeMap<ImageKey, Mutex<Stack>>;

/// Everything a well carries from one step to the next.
#[derive(Default)]
pub struct WellRun {
    /// In-memory intermediates.
    pub memory: MemoryStore,
    /// Scratch files (intermediates planned on disk).
    pub scratch: DiskStore,
    /// The planes each intermediate location holds for this well, in order (a step reads one
    /// location and writes one, so this holds one or two entries).
    pub written: Vec<(Location, Vec<ImageKey>)>,
    /// Intermediates kept on a device, by memory namespace.
    pub on_device: BTreeMap<String, DevicePlanes>,
    /// The completion record so far.
    pub record: WellRecord,
    /// What the well measured so far (steps, quality of the raw planes); goes into the record.
    pub trace: WellTrace,
    /// Quality measures of the raw planes read so far (groups load in parallel).
    pub qc: Mutex<BTreeMap<ImageKey, PlaneQc>>,
    /// Bytes of image data read from storage by the current step (groups load in parallel).
    pub bytes_read: AtomicU64,
    /// What the user should know (out-of-memory retries, CPU fallbacks).
    pub notes: Vec<String>,
    /// The well's plane files being written behind its computation.
    pub writes: crate::write_behind::WriteBehind,
    /// Where a failed well's files are removed from (`None`: keep them, `--keep-failed`; or the
    /// well finished).
    pub litter: Option<Litter>,
    /// Group outputs kept whole beside their planes, for a reader that takes the same groups.
    wholes: Mutex<Vec<WholeStack>>,
}

/// One group's output stack, whose planes (`keys`, in order) are saved at `location`: a reader
/// that takes exactly those keys gets the buffer back without a copy ([`WellRun::take`]).
struct WholeStack {
    location: Location,
    keys: Vec<ImageKey>,
    stack: ArcArray3<f32>,
}

/// What a well that does not finish leaves behind, removed when its [`WellRun`] is dropped
/// unfinished (an error or a panic): every file its record lists so far and its scratch folders.
/// A well redone later starts from nothing; the disk is not left full of a failed well's planes.
#[derive(Debug, Default)]
pub struct Litter {
    output_root: PathBuf,
    scratch: Vec<PathBuf>,
    /// Folders every well shares (made once, before any well runs): never removed, even when
    /// empty, since another well may be about to write into them.
    shared: Vec<PathBuf>,
}

/// The folders a plan's wells share: each persistent location, results folder and store root.
fn shared_dirs(plan: &WellPlan) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for step in &plan.steps {
        for loc in [Some(&step.writes), step.checkpoint.as_ref()].into_iter().flatten() {
            if let Some(p) = loc.persistent_path() {
                dirs.push(p.to_path_buf());
            }
        }
        dirs.extend(step.special_outputs.values().map(|o| o.results_dir.clone()));
        let stores =
            [step.zarr_store.as_ref(), step.checkpoint_zarr_store.as_ref(), step.preview.as_ref().map(|p| &p.store)];
        dirs.extend(stores.into_iter().flatten().map(|z| z.store.clone()));
    }
    dirs
}

impl Drop for WellRun {
    /// An unfinished well goes as an unsettled one: files still queued are written (or fail)
    /// before its litter goes, so none is left behind.
    fn drop(&mut self) {
        drop(self.unsettled());
    }
}

impl Litter {
    /// Remove `files` (relative to the output root), the folders they leave empty and the
    /// scratch folders.
    fn remove(&self, files: &[PathBuf], scratch: &DiskStore) {
        for file in files {
            let path = self.output_root.join(file);
            if std::fs::remove_file(&path).is_ok() {
                remove_empty_parents(&path, &self.output_root, &self.shared);
            }
        }
        for dir in &self.scratch {
            let _ = scratch.delete(dir);
        }
    }
}

/// A finished well whose last plane files may still be on their way to the disk: the well
/// thread hands it on and starts the next well, and whoever writes the well's record calls
/// [`Settling::settle`] first. Dropped unsettled, or when a write failed, it removes what the
/// well wrote, as an unfinished [`WellRun`] does.
pub struct Settling {
    writes: crate::write_behind::WriteBehind,
    litter: Option<Litter>,
    /// Every file the well's record lists (relative to the output root).
    files: Vec<PathBuf>,
    scratch: DiskStore,
}

impl Settling {
    /// Wait for the well's writer: its error (a plane file that could not be written) is the
    /// well's, and then the well is not complete: what it wrote is removed. On success the
    /// well's files are kept.
    pub fn settle(mut self) -> Result<(), hcs_vfs::VfsError> {
        self.writes.finish()?;
        self.litter = None;
        Ok(())
    }
}

impl Drop for Settling {
    fn drop(&mut self) {
        // Files still queued are written (or fail) before the litter goes.
        let _ = self.writes.finish();
        if let Some(litter) = self.litter.take() {
            litter.remove(&self.files, &self.scratch);
        }
    }
}

/// Remove the folders above `path` that are now empty, up to (not including) `root` or a folder
/// the wells share.
fn remove_empty_parents(path: &Path, root: &Path, shared: &[PathBuf]) {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(root) && *d != root && !shared.iter().any(|s| s == d)) {
        if std::fs::remove_dir(d).is_err() {
            break; // not empty, or gone
        }
        dir = d.parent();
    }
}

impl WellRun {
    /// A fresh well whose record carries the plan's fingerprint. Unless `finish` is called, what
    /// it wrote is removed when it is dropped; see [`WellRun::keep_litter`].
    pub fn new(plan: &WellPlan) -> Self {
        let record = WellRecord { plan_crc32: crate::output::plan_crc(plan), ..WellRecord::default() };
        let litter = Litter { output_root: plan.output_root.clone(), scratch: Vec::new(), shared: shared_dirs(plan) };
        Self {
            memory: MemoryStore::new(),
            scratch: DiskStore::new(),
            written: Vec::new(),
            on_device: BTreeMap::new(),
            record,
            trace: WellTrace::default(),
            qc: Mutex::new(BTreeMap::new()),
            bytes_read: AtomicU64::new(0),
            notes: Vec::new(),
            writes: crate::write_behind::WriteBehind::with_budget(plan.write_behind_bytes),
            litter: Some(litter),
            wholes: Mutex::new(Vec::new()),
        }
    }

    /// Keep what this well writes even if it fails (`--keep-failed`, for debugging).
    pub fn keep_litter(&mut self) {
        self.litter = None;
    }

    /// The well's steps are done: hand back its record (with the trace, the quality measures in
    /// plane order), its notes, and what keeps or removes its files once its last ones are
    /// written ([`Settling::settle`]: the record vouches for files that are in place).
    pub fn finish(mut self) -> (WellRecord, Vec<String>, Settling) {
        let settling = self.unsettled();
        let mut trace = std::mem::take(&mut self.trace);
        trace.qc = self.qc.lock().map(|mut q| std::mem::take(&mut *q).into_values().collect()).unwrap_or_default();
        let mut record = std::mem::take(&mut self.record);
        // In plane order, however the well was cut into parts.
        record.subdirs.values_mut().for_each(|planes| planes.sort_by_key(|(k, _)| *k));
        record.trace = Some(trace);
        (record, std::mem::take(&mut self.notes), settling)
    }

    /// The well's writer, litter, file list and scratch store, moved out (this well then
    /// removes nothing when dropped).
    fn unsettled(&mut self) -> Settling {
        Settling {
            writes: std::mem::take(&mut self.writes),
            litter: self.litter.take(),
            files: self.record.files.iter().map(|f| f.path.clone()).collect(),
            scratch: std::mem::take(&mut self.scratch),
        }
    }

    /// The places in `group` of the raw planes whose quality is not measured yet (a plane read
    /// by two steps is measured once); none when the measures were lost to a panic elsewhere.
    pub fn unmeasured(&self, group: &[ImageKey]) -> Vec<usize> {
        match self.qc.lock() {
            Ok(done) => (0..group.len()).filter(|&i| !done.contains_key(&group[i])).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Keep the quality measures of raw planes just measured.
    pub fn keep_measured(&self, measured: Vec<PlaneQc>) {
        if let Ok(mut done) = self.qc.lock() {
            done.extend(measured.into_iter().map(|m| (m.key, m)));
        }
    }

    /// Count `bytes` of image data read from storage by the current step.
    pub fn count_read(&self, bytes: u64) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The bytes read by the step now ending; the count starts again for the next.
    pub fn take_bytes_read(&self) -> u64 {
        self.bytes_read.swap(0, Ordering::Relaxed)
    }

    /// The store an intermediate location lives in (`None`: the plate, a persistent store).
    pub fn store(&self, location: &Location) -> Option<&dyn Store> {
        match location {
            Location::Memory { .. } => Some(&self.memory),
            Location::Disk { .. } => Some(&self.scratch),
            Location::Plate { .. } | Location::Zarr { .. } => None,
        }
    }

    /// Save a step's host output planes at `location`, beside those saved there before (the
    /// parts of a segment).
    pub fn save(&mut self, plan: &WellPlan, location: &Location, planes: &Planes) -> Result<(), StepError> {
        let store = self.store(location).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
        let items = planes
            .iter()
            .filter_map(|(k, p)| Some((Data::Samples(p.clone()), plane_path(plan, location, k)?)))
            .collect();
        store.save_batch(items)?;
        if let (Location::Disk { .. }, Some(litter), Some(prefix)) =
            (location, self.litter.as_mut(), well_prefix(plan, location))
        {
            litter.scratch.push(prefix);
        }
        // A segment saves one part after another at the same location: the keys add up.
        match self.written.iter_mut().find(|(l, _)| l == location) {
            Some((_, keys)) => {
                keys.extend(planes.keys().copied());
                keys.sort();
                keys.dedup();
            }
            None => self.written.push((location.clone(), planes.keys().copied().collect())),
        }
        Ok(())
    }

    /// Load the planes `keys` from `location` into one stack.
    pub fn load(&self, plan: &WellPlan, location: &Location, keys: &[ImageKey]) -> Result<Array3<f32>, StepError> {
        let store = self.store(location).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
        let paths: Vec<PathBuf> = keys
            .iter()
            .map(|k| plane_path(plan, location, k).ok_or_else(|| StepError::BadIntermediate(location.clone())))
            .collect::<Result<_, _>>()?;
        let planes = store
            .load_batch(&paths)
            .map_err(|e| match e {
                hcs_vfs::VfsError::NotFound { .. } => keys
                    .iter()
                    .zip(&paths)
                    .find(|(_, p)| !store.exists(p))
                    .map_or(StepError::Storage(e), |(k, _)| StepError::MissingPlane(*k)),
                e => StepError::Storage(e),
            })?
            .into_iter()
            .zip(&paths)
            .map(|(d, p)| d.into_samples(p))
            .collect::<Result<Vec<_>, _>>()?;
        // The odd plane named by its key (stack_of knows none).
        let shapes: Vec<(Option<ImageKey>, (usize, usize))> =
            keys.iter().zip(&planes).map(|(k, p)| (Some(*k), p.dim())).collect();
        odd_plane(&shapes)?;
        stack_of(&planes)
    }

    /// Load the planes `keys` of the in-memory `location` into one stack for their last reader,
    /// removing each from the store as soon as it is copied: a plane no other group shares (a
    /// mosaic, a projection) is freed before the next is copied, so the group does not hold its
    /// input twice. (Other locations: [`WellRun::load`], then [`WellRun::release`].)
    pub fn take(&self, plan: &WellPlan, location: &Location, keys: &[ImageKey]) -> Result<Array3<f32>, StepError> {
        if !matches!(location, Location::Memory { .. }) {
            let stack = self.load(plan, location, keys)?;
            self.release(plan, location, keys)?;
            return Ok(stack);
        }
        let store = self.store(location).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
        if let Some(whole) = self.take_whole(location, keys) {
            for key in keys {
                let path =
                    plane_path(plan, location, key).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
                if !store.exists(&path) {
                    return Err(StepError::MissingPlane(*key));
                }
                store.delete(&path)?;
            }
            // The store's planes are gone: unless another holder (a file still being encoded)
            // shares the buffer, it is this group's alone and moves without a copy.
            return Ok(whole.try_into_owned_nocopy().unwrap_or_else(|shared| shared.to_owned()));
        }
        let mut planes = Vec::with_capacity(keys.len());
        for key in keys {
            let (plane, path) = load_plane(store, plan, location, key)?;
            store.delete(&path)?;
            planes.push((*key, plane));
        }
        stack_taking(planes)
    }

    /// The planes `keys` of the in-memory `location` as they lie, shared rather than copied into
    /// one stack, for a function's plane-views form; `release`: they leave the store (and any
    /// stack kept whole with them is forgotten), as [`WellRun::take`] would remove them, so they
    /// go when the caller drops them. The planes must have one shape, as in a stack.
    pub fn plane_handles(
        &self,
        plan: &WellPlan,
        location: &Location,
        keys: &[ImageKey],
        release: bool,
    ) -> Result<Vec<ArcArray2<f32>>, StepError> {
        let store = self.store(location).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
        if release {
            self.forget_wholes(location, Some(keys));
        }
        let mut planes: Vec<ArcArray2<f32>> = Vec::with_capacity(keys.len());
        for key in keys {
            let (plane, path) = load_plane(store, plan, location, key)?;
            if release {
                store.delete(&path)?;
            }
            planes.push(plane);
        }
        if !planes.is_empty() {
            let shapes: Vec<(Option<ImageKey>, (usize, usize))> =
                keys.iter().zip(&planes).map(|(k, p)| (Some(*k), p.dim())).collect();
            odd_plane(&shapes)?;
        }
        Ok(planes)
    }

    /// Whether a stack is kept whole for exactly `keys` at `location` ([`WellRun::keep_whole`]):
    /// taking it moves the buffer, so the stacked call costs no copy.
    pub fn has_whole(&self, location: &Location, keys: &[ImageKey]) -> bool {
        self.wholes.lock().is_ok_and(|w| w.iter().any(|w| &w.location == location && w.keys == keys))
    }

    /// Free the planes `keys` of `location` (the group of the step that reads them last has its copy),
    /// so a step's input shrinks as its output grows instead of both being held whole.
    pub fn release(&self, plan: &WellPlan, location: &Location, keys: &[ImageKey]) -> Result<(), StepError> {
        let Some(store) = self.store(location) else { return Ok(()) };
        if !matches!(location, Location::Memory { .. }) {
            return Ok(()); // scratch files are removed with the location, after the step
        }
        self.forget_wholes(location, Some(keys));
        for key in keys {
            if let Some(path) = plane_path(plan, location, key) {
                store.delete(&path)?;
            }
        }
        Ok(())
    }

    /// Free what `location` holds for this well (its reader is done with it).
    pub fn free(&mut self, plan: &WellPlan, location: &Location) -> Result<(), StepError> {
        self.written.retain(|(l, _)| l != location);
        self.forget_wholes(location, None);
        if let Location::Memory { namespace } = location {
            self.on_device.remove(namespace);
        }
        match (self.store(location), well_prefix(plan, location)) {
            (Some(store), Some(prefix)) => Ok(store.delete(&prefix)?),
            _ => Ok(()),
        }
    }

    /// Keep a group's output `stack`, whose planes `keys` (in order) were just saved at the
    /// in-memory `location`, for a reader that takes exactly those keys ([`WellRun::take`]): it
    /// then gets the buffer without a copy. Keeping it holds no memory the planes do not: the
    /// entry goes as soon as any of its planes is taken, released or freed.
    pub fn keep_whole(&self, location: &Location, keys: Vec<ImageKey>, stack: ArcArray3<f32>) {
        if !matches!(location, Location::Memory { .. }) || stack.shape()[0] != keys.len() {
            return;
        }
        if let Ok(mut wholes) = self.wholes.lock() {
            wholes.push(WholeStack { location: location.clone(), keys, stack });
        }
    }

    /// The stack kept whole for exactly `keys` at `location`, removed from the kept ones; any
    /// other kept stack sharing a key is forgotten (its planes are going one by one).
    fn take_whole(&self, location: &Location, keys: &[ImageKey]) -> Option<ArcArray3<f32>> {
        let mut wholes = self.wholes.lock().ok()?;
        let found = wholes.iter().position(|w| &w.location == location && w.keys == keys);
        let whole = found.map(|i| wholes.swap_remove(i).stack);
        if whole.is_none() {
            wholes.retain(|w| &w.location != location || !w.keys.iter().any(|k| keys.contains(k)));
        }
        whole
    }

    /// Forget the stacks kept whole at `location` that hold any of `keys` (`None`: all of them).
    fn forget_wholes(&self, location: &Location, keys: Option<&[ImageKey]>) {
        if let Ok(mut wholes) = self.wholes.lock() {
            wholes.retain(|w| &w.location != location || keys.is_some_and(|k| !w.keys.iter().any(|x| k.contains(x))));
        }
    }

    /// The keys a location holds for this well (none when nothing was written there).
    pub fn keys_at(&self, location: &Location) -> Vec<ImageKey> {
        if let Location::Memory { namespace } = location
            && let Some(planes) = self.on_device.get(namespace)
        {
            return planes.keys().copied().collect();
        }
        self.written.iter().find(|(l, _)| l == location).map(|(_, k)| k.clone()).unwrap_or_default()
    }
}

/// The host plane `key` of the intermediate `location` in `store`, shared (not copied), with
/// its path there.
fn load_plane(
    store: &dyn Store,
    plan: &WellPlan,
    location: &Location,
    key: &ImageKey,
) -> Result<(ArcArray2<f32>, PathBuf), StepError> {
    let path = plane_path(plan, location, key).ok_or_else(|| StepError::BadIntermediate(location.clone()))?;
    let plane = store
        .load(&path)
        .map_err(|e| match e {
            hcs_vfs::VfsError::NotFound { .. } => StepError::MissingPlane(*key),
            e => StepError::Storage(e),
        })?
        .into_samples(&path)?;
    Ok((plane, path))
}

/// Where this well's planes of an intermediate location live in its store.
fn well_prefix(plan: &WellPlan, location: &Location) -> Option<PathBuf> {
    match location {
        Location::Memory { namespace } => Some(PathBuf::from(namespace)),
        Location::Disk { dir } => Some(dir.join(plan.well.to_string())),
        Location::Plate { .. } | Location::Zarr { .. } => None,
    }
}

/// The path of one plane of an intermediate location.
fn plane_path(plan: &WellPlan, location: &Location, key: &ImageKey) -> Option<PathBuf> {
    well_prefix(plan, location).map(|p| p.join(plane_file_name(key)))
}

/// One stack from planes of equal shape, copied into reserved memory (no zeroing pass before the
/// copy), a plane to each worker at once.
pub fn stack_of(planes: &[ArcArray2<f32>]) -> Result<Array3<f32>, StepError> {
    let (h, w) = shape_of(planes.iter().map(|p| (None, p)))?;
    fill_stack(h, w, planes.len(), |i, slot| {
        append_plane(slot, &planes[i]);
        Ok(())
    })
}

/// One stack from `planes` (each with its key), which are the caller's to drop: copied by every worker
/// at once, each plane dropped as soon as it is copied, so a plane no one else holds (the store
/// has let it go) is freed then, and the group never holds its input twice. The registration's
/// one group copied its nine tiles on one thread while the other core waited (7 ms a part).
fn stack_taking(planes: Vec<(ImageKey, ArcArray2<f32>)>) -> Result<Array3<f32>, StepError> {
    let (h, w) = shape_of(planes.iter().map(|(k, p)| (Some(*k), p)))?;
    let count = planes.len();
    let held: Vec<(ImageKey, Mutex<Option<ArcArray2<f32>>>)> =
        planes.into_iter().map(|(k, p)| (k, Mutex::new(Some(p)))).collect();
    fill_stack(h, w, count, |i, slot| {
        let (key, place) = &held[i];
        let poisoned = || StepError::PoisonedPlane(*key);
        let plane = place.lock().map_err(|_| poisoned())?.take().ok_or_else(poisoned)?;
        append_plane(slot, &plane);
        Ok(())
    })
}

/// The shape every one of `planes` has: that of the first, or the first plane of another shape
/// as the error; [`StepError::NoPlanes`] for none.
fn shape_of<'a>(
    planes: impl Iterator<Item = (Option<ImageKey>, &'a ArcArray2<f32>)>,
) -> Result<(usize, usize), StepError> {
    let planes: Vec<(Option<ImageKey>, (usize, usize))> = planes.map(|(k, p)| (k, p.dim())).collect();
    odd_plane(&planes)
}

/// The shape most of `planes` have, or the first plane of another shape as the error (so a
/// stack whose first plane is the odd one names that plane, not the next); ties go to the
/// shape seen first. [`StepError::NoPlanes`] for none.
fn odd_plane(planes: &[(Option<ImageKey>, (usize, usize))]) -> Result<(usize, usize), StepError> {
    let mut counts: Vec<((usize, usize), usize)> = Vec::new();
    for (_, shape) in planes {
        match counts.iter_mut().find(|(s, _)| s == shape) {
            Some((_, n)) => *n += 1,
            None => counts.push((*shape, 1)),
        }
    }
    let expected = counts
        .iter()
        .enumerate()
        .max_by_key(|(i, (_, n))| (*n, std::cmp::Reverse(*i)))
        .map(|(_, (s, _))| *s)
        .ok_or(StepError::NoPlanes)?;
    match planes.iter().find(|(_, s)| *s != expected) {
        Some((key, found)) => Err(StepError::ShapeMismatch { key: *key, found: *found, expected }),
        None => Ok(expected),
    }
}

/// A stack of `count` planes of `h` × `w`, each filled by `fill` (plane index, its slot) on
/// whichever worker takes it.
fn fill_stack(
    h: usize,
    w: usize,
    count: usize,
    fill: impl Fn(usize, &mut hcs_vfs::fill::PlaneSlot<'_>) -> Result<(), StepError> + Sync,
) -> Result<Array3<f32>, StepError> {
    let mut data = Vec::new();
    hcs_vfs::fill::fill_planes(&mut data, h * w, count, fill, |_, n| StepError::ShapeMismatch {
        key: None,
        found: (n / w.max(1), w),
        expected: (h, w),
    })?;
    Ok(Array3::from_shape_vec((count, h, w), data)?)
}

/// Append `plane`'s samples to its slot (a strided plane through a copy in order).
fn append_plane(slot: &mut hcs_vfs::fill::PlaneSlot<'_>, plane: &ArcArray2<f32>) {
    use hcs_vfs::fill::F32Out;
    match plane.as_slice() {
        Some(s) => slot.append(s, |v| v),
        None => slot.append(&plane.iter().copied().collect::<Vec<f32>>(), |v| v),
    }
}

/// Join the planes of `keys` kept on a device by the previous step (no host round trip).
pub fn load_from_device(planes: &DevicePlanes, keys: &[ImageKey]) -> Result<Stack, StepError> {
    let guards: Vec<_> = keys
        .iter()
        .map(|k| {
            let plane = planes.get(k).ok_or(StepError::MissingPlane(*k))?;
            plane.lock().map_err(|_| StepError::PoisonedPlane(*k))
        })
        .collect::<Result<_, StepError>>()?;
    let refs: Vec<&Stack> = guards.iter().map(|g| &**g).collect();
    Ok(join_planes(&refs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_plate::WellId;
    use ndarray::Array2;

    fn key(site: u32) -> ImageKey {
        ImageKey { well: WellId::new(0, 1), site, channel: 1, z: 1, timepoint: 1 }
    }

    fn planes(n: u32) -> Planes {
        (1..=n).map(|s| (key(s), Array2::from_elem((2, 3), s as f32 + 0.5).into_shared())).collect()
    }

    /// A well's run holding `planes(n)` at `at`, and those planes.
    fn saved(plan: &WellPlan, at: &Location, n: u32) -> (WellRun, Planes) {
        let mut run = WellRun::new(plan);
        let out = planes(n);
        run.save(plan, at, &out).expect("save");
        (run, out)
    }

    fn plan() -> WellPlan {
        WellPlan {
            well: WellId::new(0, 1),
            pipeline: String::new(),
            plate: PathBuf::new(),
            output_root: PathBuf::new(),
            estimated_peak_bytes: None,
            write_behind_bytes: 0,
            spill_reason: None,
            steps: Vec::new(),
            segments: Vec::new(),
        }
    }

    #[test]
    fn planes_taken_into_a_stack_are_copied_in_order_and_let_go() {
        let (h, w) = (37, 41);
        let planes: Vec<ArcArray2<f32>> = (0..5)
            .map(|p| Array2::from_shape_fn((h, w), |(y, x)| (p * 1000 + y * 50 + x) as f32).into_shared())
            .collect();
        // One plane not in standard layout (transposed): copied sample by sample.
        let transposed = Array2::from_shape_fn((w, h), |(x, y)| planes[2][[y, x]]).reversed_axes().into_shared();
        assert!(transposed.as_slice().is_none());
        let mut given: Vec<(ImageKey, ArcArray2<f32>)> =
            planes.iter().enumerate().map(|(i, p)| (key(i as u32 + 1), p.clone())).collect();
        given[2].1 = transposed.clone();
        let stack = stack_taking(given).expect("stack");
        assert_eq!(stack.dim(), (5, h, w));
        for (p, plane) in planes.iter().enumerate() {
            assert_eq!(stack.index_axis(ndarray::Axis(0), p), plane.view(), "plane {p}");
        }
        // Every handle given was dropped: the ones kept here are the last.
        assert!(planes.iter().all(ArcArray2::is_unique) && transposed.is_unique());
        let ragged = vec![(key(1), planes[0].clone()), (key(2), Array2::zeros((h, w + 1)).into_shared())];
        // The first plane the odd one: it is named, against the shape the others share.
        let first_odd = vec![
            (key(1), Array2::zeros((h, w + 1)).into_shared()),
            (key(2), planes[0].clone()),
            (key(3), planes[1].clone()),
        ];
        let err = stack_taking(first_odd).expect_err("ragged");
        assert!(
            matches!(err, StepError::ShapeMismatch { key: Some(k), found, expected } if k == key(1) && found == (h, w + 1) && expected == (h, w)),
            "{err}"
        );
        let err = stack_taking(ragged).expect_err("ragged");
        assert!(matches!(err, StepError::ShapeMismatch { key: Some(k), .. } if k == key(2)), "{err}");
        assert!(
            err.to_string().contains(&format!(
                "{}: a plane of {}×{h} (width×height), where the other planes of this stack are {w}×{h}",
                key(2),
                w + 1
            )),
            "{err}"
        );
        assert!(matches!(stack_taking(Vec::new()), Err(StepError::NoPlanes)));
    }

    #[test]
    fn a_stack_of_mosaics_copied_in_parallel_holds_each_plane_in_order() {
        let (h, w) = (1500, 1501);
        let mut planes: Vec<ArcArray2<f32>> =
            (0..3).map(|p| Array2::from_shape_fn((h, w), |(y, x)| (p * 7 + y * 3 + x) as f32).into_shared()).collect();
        // One plane not in standard layout: copied sample by sample, in order.
        planes[1] = Array2::from_shape_fn((w, h), |(x, y)| (7 + y * 3 + x) as f32).reversed_axes().into_shared();
        assert!(planes[1].as_slice().is_none());
        let stack = stack_of(&planes).expect("stack");
        assert_eq!(stack.dim(), (3, h, w));
        for (p, plane) in planes.iter().enumerate() {
            assert_eq!(stack.index_axis(ndarray::Axis(0), p), plane.view(), "plane {p}");
        }
        // A ragged set is refused, naming the odd shape.
        let ragged = [planes[0].clone(), Array2::zeros((h, w + 1)).into_shared()];
        assert!(matches!(stack_of(&ragged), Err(StepError::ShapeMismatch { found, .. }) if found == (h, w + 1)));
    }

    #[test]
    fn memory_intermediates_round_trip_without_a_copy_and_are_freed() {
        let (plan, at) = (plan(), Location::Memory { namespace: "step1".into() });
        let (mut run, out) = saved(&plan, &at, 3);
        assert_eq!(run.keys_at(&at), [key(1), key(2), key(3)]);
        let stack = run.load(&plan, &at, &[key(2), key(3)]).expect("load");
        assert_eq!(stack.dim(), (2, 2, 3));
        assert_eq!(stack[[1, 0, 0]], 3.5);
        let kept = run.memory.load(&PathBuf::from("step1").join(plane_file_name(&key(1)))).expect("stored");
        let Data::Samples(s) = kept else { panic!("samples") };
        assert_eq!(s.as_ptr(), out[&key(1)].as_ptr(), "the store shares the step's buffer");
        run.free(&plan, &at).expect("free");
        assert!(run.keys_at(&at).is_empty());
        assert!(matches!(run.load(&plan, &at, &[key(1)]), Err(StepError::MissingPlane(k)) if k == key(1)));
    }

    #[test]
    fn released_planes_leave_the_store_and_the_rest_stay() {
        let (plan, at) = (plan(), Location::Memory { namespace: "step1".into() });
        let (mut run, out) = saved(&plan, &at, 3);
        let stack = run.load(&plan, &at, &[key(1), key(2)]).expect("load");
        run.release(&plan, &at, &[key(1), key(2)]).expect("release");
        assert_eq!(stack[[1, 0, 0]], 2.5, "the group's copy outlives the release");
        assert!(matches!(run.load(&plan, &at, &[key(1)]), Err(StepError::MissingPlane(k)) if k == key(1)));
        assert_eq!(run.load(&plan, &at, &[key(3)]).expect("kept")[[0, 0, 0]], 3.5);
        drop(out);
        let left = run.memory.list(&PathBuf::from("step1")).expect("list");
        assert_eq!(left, [PathBuf::from("step1").join(plane_file_name(&key(3)))]);
        // Scratch files are not released plane by plane (the step frees the whole location).
        let dir = std::env::temp_dir().join(format!("hcs-release-{}", std::process::id()));
        let scratch = Location::Disk { dir: dir.clone() };
        run.save(&plan, &scratch, &planes(1)).expect("scratch");
        run.release(&plan, &scratch, &[key(1)]).expect("no-op");
        assert!(dir.join("A01").join(plane_file_name(&key(1))).is_file());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn plane_handles_share_the_stores_planes_and_release_them_only_when_asked() {
        let (plan, at) = (plan(), Location::Memory { namespace: "step1".into() });
        let (mut run, out) = saved(&plan, &at, 3);
        // Kept: the handles are the store's buffers, not copies, and the planes stay.
        let kept = run.plane_handles(&plan, &at, &[key(1), key(2)], false).expect("handles");
        assert_eq!(kept[1].as_ptr(), out[&key(2)].as_ptr(), "the store's buffer, shared");
        assert_eq!(run.load(&plan, &at, &[key(1)]).expect("still there")[[0, 0, 0]], 1.5);
        // A stack kept whole for planes 2 and 3 is forgotten once they are released one by one.
        let whole = ndarray::Array3::from_elem((2, 2, 3), 9.0f32).into_shared();
        run.keep_whole(&at, vec![key(2), key(3)], whole);
        assert!(run.has_whole(&at, &[key(2), key(3)]) && !run.has_whole(&at, &[key(2)]));
        let taken = run.plane_handles(&plan, &at, &[key(2), key(3)], true).expect("handles");
        assert_eq!((taken[0][[0, 0]], taken[1][[1, 2]]), (2.5, 3.5));
        assert!(!run.has_whole(&at, &[key(2), key(3)]), "the kept stack is forgotten");
        assert!(matches!(run.load(&plan, &at, &[key(2)]), Err(StepError::MissingPlane(k)) if k == key(2)));
        drop((kept, out));
        assert!(taken[1].is_unique(), "released: the handle is the buffer's last holder");
        // A plane no longer there, and planes of two shapes, are refused as `take` refuses them.
        assert!(
            matches!(run.plane_handles(&plan, &at, &[key(3)], false), Err(StepError::MissingPlane(k)) if k == key(3))
        );
        let odd: Planes = [(key(4), Array2::from_elem((3, 3), 4.0).into_shared())].into_iter().collect();
        run.save(&plan, &at, &odd).expect("save");
        assert!(matches!(
            run.plane_handles(&plan, &at, &[key(1), key(4)], false),
            Err(StepError::ShapeMismatch { key: Some(k), found: (3, 3), expected: (2, 3) }) if k == key(4)
        ));
    }

    #[test]
    fn taken_planes_leave_the_store_one_by_one_and_their_buffers_go() {
        let (plan, at) = (plan(), Location::Memory { namespace: "step1".into() });
        let (run, out) = saved(&plan, &at, 3);
        // The store's copies are the only ones left: taking a plane frees its buffer.
        let first = out[&key(1)].clone();
        drop(out);
        let stack = run.take(&plan, &at, &[key(1), key(2)]).expect("take");
        assert_eq!((stack.dim(), stack[[0, 0, 0]], stack[[1, 1, 2]]), ((2, 2, 3), 1.5, 2.5));
        assert!(matches!(run.load(&plan, &at, &[key(2)]), Err(StepError::MissingPlane(k)) if k == key(2)));
        assert_eq!(run.load(&plan, &at, &[key(3)]).expect("kept")[[0, 0, 0]], 3.5);
        assert!(first.is_unique(), "the store no longer shares plane 1's buffer");
        assert!(matches!(run.take(&plan, &at, &[key(1)]), Err(StepError::MissingPlane(k)) if k == key(1)));
    }

    #[test]
    fn disk_intermediates_are_scratch_tiffs_under_the_well() {
        let dir = std::env::temp_dir().join(format!("hcs-state-{}", std::process::id()));
        let (plan, at) = (plan(), Location::Disk { dir: dir.clone() });
        let mut run = WellRun::new(&plan);
        run.save(&plan, &at, &planes(2)).expect("save");
        assert!(dir.join("A01").join(plane_file_name(&key(2))).is_file());
        let stack = run.load(&plan, &at, &[key(1), key(2)]).expect("load");
        assert_eq!(stack[[0, 1, 2]], 1.5);
        run.free(&plan, &at).expect("free");
        assert!(!dir.join("A01").exists());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn an_unfinished_well_removes_its_files_and_a_finished_one_keeps_them() {
        let dir = std::env::temp_dir().join(format!("hcs-litter-{}", std::process::id()));
        let mut p = plan();
        p.output_root = dir.join("out");
        let scratch_at = Location::Disk { dir: dir.join("out/.scratch") };
        let written = |run: &mut WellRun, name: &str| {
            let rel = PathBuf::from("checkpoints/step1").join(name);
            std::fs::create_dir_all(dir.join("out/checkpoints/step1")).expect("dir");
            std::fs::write(dir.join("out").join(&rel), b"plane").expect("write");
            run.record.files.push(crate::output::WrittenFile { path: rel, bytes: 5, crc32: 0 });
        };
        let mut failed = WellRun::new(&p);
        written(&mut failed, "A01_a.tif");
        failed.save(&p, &scratch_at, &planes(1)).expect("scratch");
        drop(failed);
        assert!(!dir.join("out/checkpoints/step1/A01_a.tif").exists(), "the failed well's file is gone");
        assert!(!dir.join("out/checkpoints").exists(), "and its now empty folders");
        assert!(!dir.join("out/.scratch/A01").exists(), "and its scratch planes");
        assert!(dir.join("out").exists(), "the output root stays");

        let mut kept = WellRun::new(&p);
        kept.keep_litter();
        written(&mut kept, "A01_b.tif");
        drop(kept);
        assert!(dir.join("out/checkpoints/step1/A01_b.tif").exists(), "--keep-failed keeps it");

        // The well thread hands the finished well on while its last file is still queued; the
        // write fails, and settling the well then fails it and removes what it wrote.
        let mut late = WellRun::new(&p);
        written(&mut late, "A01_d.tif");
        let blocked = dir.join("out/checkpoints/step1/A01_d.tif/under-a-file.tif");
        late.writes.submit(blocked, vec![1; 64]).expect("queued");
        let (_, _, settling) = late.finish();
        let err = settling.settle().expect_err("the queued write fails");
        assert!(err.to_string().contains("A01_d.tif"), "names the file: {err}");
        assert!(!dir.join("out/checkpoints/step1/A01_d.tif").exists(), "the unsettled well's file is gone");

        let mut done = WellRun::new(&p);
        written(&mut done, "A01_c.tif");
        let (record, _, settling) = done.finish();
        settling.settle().expect("nothing failed");
        assert_eq!(record.files.len(), 1);
        assert!(dir.join("out/checkpoints/step1/A01_c.tif").exists(), "a finished well keeps its files");
        std::fs::remove_dir_all(&dir).ok();
    }

    /// One group's output as the step runner leaves it: planes sharing the stack's buffer, saved
    /// at `at`, the stack kept whole beside them.
    fn group_output(run: &mut WellRun, plan: &WellPlan, at: &Location, sites: u32) -> (Vec<ImageKey>, *const f32) {
        let stack =
            Array3::from_shape_fn((sites as usize, 2, 3), |(p, y, x)| (p * 10 + y * 3 + x) as f32).into_shared();
        let keys: Vec<ImageKey> = (1..=sites).map(key).collect();
        let planes: Planes =
            keys.iter().enumerate().map(|(i, k)| (*k, stack.clone().index_axis_move(ndarray::Axis(0), i))).collect();
        run.save(plan, at, &planes).expect("save");
        let ptr = stack.as_ptr();
        run.keep_whole(at, keys.clone(), stack);
        (keys, ptr)
    }

    #[test]
    fn a_group_kept_whole_is_taken_without_a_copy_by_a_reader_of_the_same_keys() {
        let (plan, at) = (plan(), Location::Memory { namespace: "step5".into() });
        let mut run = WellRun::new(&plan);
        let (keys, ptr) = group_output(&mut run, &plan, &at, 3);
        let stack = run.take(&plan, &at, &keys).expect("take");
        assert_eq!(stack.as_ptr(), ptr, "the group's buffer, not a copy");
        assert_eq!(stack[[2, 1, 2]], 25.0);
        assert!(matches!(run.take(&plan, &at, &keys[..1]), Err(StepError::MissingPlane(k)) if k == keys[0]));
        assert!(run.wholes.lock().expect("lock").is_empty());

        // Other keys: a copy, and the kept stack is forgotten (it would hold the planes' memory).
        let (keys, ptr) = group_output(&mut run, &plan, &at, 3);
        let two = run.take(&plan, &at, &keys[..2]).expect("take two");
        assert_ne!(two.as_ptr(), ptr);
        assert_eq!(two[[1, 0, 0]], 10.0);
        assert!(run.wholes.lock().expect("lock").is_empty(), "forgotten when its planes go one by one");
        let last = run.take(&plan, &at, &keys[2..]).expect("the last plane is still there");
        assert_eq!(last[[0, 1, 2]], 25.0);

        // Released or freed planes take their kept stack with them.
        let (keys, _) = group_output(&mut run, &plan, &at, 2);
        run.release(&plan, &at, &keys[1..]).expect("release");
        assert!(run.wholes.lock().expect("lock").is_empty());
        group_output(&mut run, &plan, &at, 2);
        run.free(&plan, &at).expect("free");
        assert!(run.wholes.lock().expect("lock").is_empty());
        // A stack whose buffer is shared elsewhere is copied, and the holder's data is intact.
        let (keys, ptr) = group_output(&mut run, &plan, &at, 2);
        let held = run.memory.load(&plane_path(&plan, &at, &keys[0]).expect("path")).expect("held");
        let stack = run.take(&plan, &at, &keys).expect("take");
        assert_ne!(stack.as_ptr(), ptr, "copied: another holder shares the buffer");
        let Data::Samples(held) = held else { panic!("samples") };
        assert_eq!((held[[1, 2]], stack[[1, 1, 2]]), (5.0, 15.0));
    }

    #[test]
    fn a_persistent_location_is_not_an_intermediate_store() {
        let plan = plan();
        let mut run = WellRun::new(&plan);
        let at = Location::Zarr { store: "x.ome.zarr".into() };
        assert!(matches!(run.save(&plan, &at, &planes(1)), Err(StepError::BadIntermediate(_))));
        assert!(matches!(stack_of(&[]), Err(StepError::NoPlanes)));
    }
}
