//! Loading planes of an indexed plate, into a stack or one at a time as stored, with errors that
//! name the file.

use std::path::PathBuf;

use ndarray::{Array3, ArrayView2};

use super::{ImageKey, PlaneRef, Plate, WellId};

/// A plane that cannot be loaded (into a stack, or as stored).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The components are not in the plate.
    #[error("{0}: not in the plate")]
    NotIndexed(ImageKey),
    /// Storage failed (corrupt, truncated, missing file…).
    #[error("{key}: {source}")]
    Storage {
        /// The plane.
        key: ImageKey,
        /// The storage error (names the file).
        source: hcs_vfs::VfsError,
    },
    /// Planes of one stack have different shapes.
    #[error("{key} ({file}) is {found_h}×{found_w}, but the other planes of this stack are {want_h}×{want_w}")]
    ShapeMismatch {
        /// The odd plane.
        key: ImageKey,
        /// Where it is stored.
        file: PathBuf,
        /// Its height.
        found_h: usize,
        /// Its width.
        found_w: usize,
        /// The stack's height.
        want_h: usize,
        /// The stack's width.
        want_w: usize,
    },
    /// A plane's reader gave a number of samples its shape does not account for.
    #[error("{key}: read {samples} samples where the stack's planes have {wanted}")]
    Incomplete {
        /// The plane.
        key: ImageKey,
        /// Samples read.
        samples: usize,
        /// Samples of one of the stack's planes.
        wanted: usize,
    },
    /// A plane stores samples of another type than the plate's images: read on, its values
    /// would pass for the plate's type (8-bit samples as dark 16-bit ones, floats as counts),
    /// and the outputs, written in the plate's type, would silently be wrong.
    #[error(
        "{key} ({file}) stores {} samples, but the plate's images are {} ({}): its values would be \
         read as the plate's; convert it, or list every image of another type with `hcs check --plate PLATE --deep`",
        found.name(), want.name(), if *declared { "as its metadata declares" } else { "as its first image is" }
    )]
    DtypeMismatch {
        /// The odd plane.
        key: ImageKey,
        /// Where it is stored.
        file: PathBuf,
        /// The type its samples are stored in.
        found: hcs_vfs::Dtype,
        /// The plate's type.
        want: hcs_vfs::Dtype,
        /// Whether the plate's metadata declares `want` (else it is its first image's).
        declared: bool,
    },
    /// An empty list of planes.
    #[error("no planes to stack")]
    Empty,
}

/// What [`Plate::prefetch_well`] did: files hinted, files left to be read when needed (past
/// the byte budget), and the first file that could not be hinted (it is read, and its error
/// reported, by the step that needs it).
#[derive(Debug, Default)]
pub struct Prefetched {
    /// Image files the kernel was asked to read ahead.
    pub hinted: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Image files not hinted: the budget was spent.
    pub left: usize,
    /// Image files that could not be hinted.
    pub refused: usize,
    /// The first of them, and why.
    pub first_refusal: Option<hcs_vfs::VfsError>,
}

impl Plate {
    /// A fingerprint of what `well`'s inputs hold on disk now: the path, size and modification
    /// time of each of its image files, and of every file under each OME-Zarr well folder its
    /// planes lie in (the chunks). A run records it with a finished well and redoes the well
    /// when it has changed (images re-acquired or replaced in place), rather than keep outputs
    /// made from other pixels. A file that cannot be read counts as changed (it is fingerprinted
    /// as absent). Reads no pixel: one `stat` per file.
    pub fn inputs_fingerprint(&self, well: WellId) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut files: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        let mut zarr_wells: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
        for (_, plane_ref) in self.index.well(well) {
            match plane_ref {
                PlaneRef::File { path, .. } => {
                    files.insert(self.root.join(path));
                }
                PlaneRef::Zarr { store, well, .. } => {
                    zarr_wells.insert(self.root.join(store).join(well));
                }
            }
        }
        for dir in zarr_wells {
            let mut stack = vec![dir];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    match entry.file_type() {
                        Ok(t) if t.is_dir() => stack.push(entry.path()),
                        _ => {
                            files.insert(entry.path());
                        }
                    }
                }
            }
        }
        // SipHash with fixed keys: the same files give the same value in every run of one hcs
        // build (a record is only compared within one version: its plan fingerprint names it).
        // Paths are hashed relative to the plate, so `--plate p` and `--plate $PWD/p` (or the
        // plate folder moved) are the same inputs, as they are the same plan.
        let mut hasher = std::hash::DefaultHasher::new();
        for file in files {
            file.strip_prefix(&self.root).unwrap_or(&file).hash(&mut hasher);
            let stamp = std::fs::metadata(&file).ok().map(|m| {
                let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                (m.len(), modified.map(|d| d.as_nanos()))
            });
            stamp.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Ask the kernel to read `well`'s image files ahead, each file once
    /// ([`hcs_vfs::prefetch::will_need`]), in the index's order until `budget` bytes are hinted
    /// (a well larger than the page cache would otherwise evict its own first files), so the
    /// steps that read them find them in the page cache. Planes of an OME-Zarr store are not
    /// hinted (their chunks are found as they are read). Changes no plane a later load returns.
    pub fn prefetch_well(&self, well: WellId, budget: u64) -> Prefetched {
        let mut done = Prefetched::default();
        let mut seen = std::collections::BTreeSet::new();
        for (_, plane_ref) in self.index.well(well) {
            // A multi-page file holds several planes: hinted once.
            let PlaneRef::File { path, .. } = plane_ref else { continue };
            if !seen.insert(path) {
                continue;
            }
            if done.bytes >= budget {
                done.left += 1;
                continue;
            }
            match hcs_vfs::prefetch::will_need(&self.root.join(path)) {
                Ok(bytes) => {
                    done.hinted += 1;
                    done.bytes = done.bytes.saturating_add(bytes);
                }
                Err(e) => {
                    done.refused += 1;
                    done.first_refusal.get_or_insert(e);
                }
            }
        }
        done
    }

    /// Load one plane as stored (`u8`, `u16` or `f32` samples), without a float copy: for
    /// readers that only look at it (a whole-plate mosaic is hundreds of MiB as f32).
    pub fn load_plane(&self, key: &ImageKey) -> Result<hcs_vfs::PlaneData, LoadError> {
        let plane_ref = self.index.get(key).ok_or(LoadError::NotIndexed(*key))?;
        plane_ref.load(&self.root).map_err(|source| LoadError::Storage { key: *key, source })
    }

    /// Load planes (in the given order) into a `[planes, y, x]` f32 stack of raw values.
    pub fn load_stack(&self, keys: &[ImageKey]) -> Result<Array3<f32>, LoadError> {
        self.load_stack_with(keys, |_, _| None::<()>).map(|(stack, _)| stack)
    }

    /// [`Plate::load_stack`], handing each plane to `each` (its index in `keys` and its samples)
    /// as soon as it is read, while it is still in the caches; what `each` returns is kept, in
    /// plane order. One plane is read alone (its shape sizes the stack), the others by rayon's
    /// workers at once, each straight into its part of the stack ([`hcs_vfs::fill`]): a step's
    /// last group no longer reads its planes on one core while the others wait. When the first
    /// plane is a file's, that plane is the first; when it is a Zarr plane (Zarr planes may share
    /// a chunk with the planes of other stacks read at once), it is a staggered one
    /// (`stagger_start`), and the workers go on from there. A plane of another shape than the
    /// one read alone is refused naming it, so in a stack of mixed shapes the plane named may
    /// differ from one reading to the next.
    pub fn load_stack_with<M: Send>(
        &self,
        keys: &[ImageKey],
        each: impl Fn(usize, ArrayView2<'_, f32>) -> Option<M> + Sync,
    ) -> Result<(Array3<f32>, Vec<M>), LoadError> {
        let Some(first) = keys.first() else {
            return Err(LoadError::Empty);
        };
        let (data, (h, w), kept) = match self.plane_ref(first)? {
            PlaneRef::File { .. } => self.fill_from_first(keys, &each)?,
            PlaneRef::Zarr { .. } => self.fill_from_plane(keys, stagger_start(keys.len()), &each)?,
        };
        // The data holds exactly keys × h × w samples, so the shape always fits.
        let stack = Array3::from_shape_vec((keys.len(), h, w), data).map_err(|_| LoadError::Empty)?;
        Ok((stack, kept))
    }

    /// The stack's samples, plane shape and kept values, its first plane read alone, converted
    /// from its file's bytes straight into the stack's memory (no zeroing pass, no plane in
    /// between), room reserved for all once its shape is known.
    fn fill_from_first<M: Send>(
        &self,
        keys: &[ImageKey],
        each: &(impl Fn(usize, ArrayView2<'_, f32>) -> Option<M> + Sync),
    ) -> Result<Filled<M>, LoadError> {
        let first = &keys[0];
        let mut data: Vec<f32> = Vec::new();
        let ((h, w), dtype) = self
            .plane_ref(first)?
            .load_f32_into(&self.root, &mut data, keys.len(), self.one_image_per_file())
            .map_err(|source| LoadError::Storage { key: *first, source })?;
        self.check_dtype(first, dtype)?;
        let mut kept: Vec<M> =
            ArrayView2::from_shape((h, w), &data[..]).ok().and_then(|p| each(0, p)).into_iter().collect();
        let rest = &keys[1..];
        let others = hcs_vfs::fill::fill_planes(
            &mut data,
            h * w,
            rest.len(),
            |i, slot| {
                self.read_into(&rest[i], slot, (h, w))?;
                Ok(ArrayView2::from_shape((h, w), slot.filled()).ok().and_then(|p| each(i + 1, p)))
            },
            |i, samples| LoadError::Incomplete { key: rest[i], samples, wanted: h * w },
        )?;
        kept.extend(others.into_iter().flatten());
        Ok((data, (h, w), kept))
    }

    /// [`Self::fill_from_first`] for Zarr planes, whose plane read alone is a staggered one: the
    /// stack's samples, plane shape and kept values, plane `start` of `keys` read alone first
    /// and kept as read until the worker that starts there puts it in its place, the workers
    /// going on from it round the stack ([`hcs_vfs::fill::fill_planes_from`]).
    fn fill_from_plane<M: Send>(
        &self,
        keys: &[ImageKey],
        start: usize,
        each: &(impl Fn(usize, ArrayView2<'_, f32>) -> Option<M> + Sync),
    ) -> Result<Filled<M>, LoadError> {
        let lead = self.load_plane(&keys[start])?;
        self.check_dtype(&keys[start], lead.dtype())?;
        let (h, w) = lead.dim();
        let lead = std::sync::Mutex::new(Some(lead));
        let mut data: Vec<f32> = Vec::new();
        let kept = hcs_vfs::fill::fill_planes_from(
            &mut data,
            h * w,
            keys.len(),
            start,
            |i, slot| {
                let read = if i == start { lead.lock().ok().and_then(|mut l| l.take()) } else { None };
                match read {
                    Some(plane) => plane.extend_f32(slot),
                    None => self.read_into(&keys[i], slot, (h, w))?,
                }
                Ok(ArrayView2::from_shape((h, w), slot.filled()).ok().and_then(|p| each(i, p)))
            },
            |i, samples| LoadError::Incomplete { key: keys[i], samples, wanted: h * w },
        )?;
        Ok((data, (h, w), kept.into_iter().flatten().collect()))
    }

    /// Read the plane `key` into `out`, which must be of shape `want` and of the plate's dtype.
    fn read_into(
        &self,
        key: &ImageKey,
        out: &mut impl hcs_vfs::fill::F32Out,
        want: (usize, usize),
    ) -> Result<(), LoadError> {
        let plane_ref = self.plane_ref(key)?;
        let (found, dtype) = plane_ref
            .load_f32_into(&self.root, out, 1, self.one_image_per_file())
            .map_err(|source| LoadError::Storage { key: *key, source })?;
        self.check_dtype(key, dtype)?;
        if found != want {
            return Err(LoadError::ShapeMismatch {
                key: *key,
                file: PathBuf::from(plane_ref.describe()),
                found_h: found.0,
                found_w: found.1,
                want_h: want.0,
                want_w: want.1,
            });
        }
        Ok(())
    }

    /// Whether the plate's format has one image per file (ImageXpress, Opera, OpenHCS): then a
    /// file holding several full-size images is refused as it is read, not read as its first.
    /// hcs's own plates name each image's page.
    fn one_image_per_file(&self) -> bool {
        self.metadata.format != crate::FormatKind::Hcs
    }

    /// Refuse a plane stored as `found` in a plate whose images are of another dtype (declared
    /// by its metadata, else its first image's; a plate opened without reading an image has
    /// none, and its planes are not compared).
    fn check_dtype(&self, key: &ImageKey, found: hcs_vfs::Dtype) -> Result<(), LoadError> {
        match self.metadata.dtype {
            Some(want) if want != found => Err(LoadError::DtypeMismatch {
                key: *key,
                file: self.plane_ref(key).map(|r| PathBuf::from(r.describe())).unwrap_or_default(),
                found,
                want,
                declared: self.metadata.format == crate::FormatKind::Hcs,
            }),
            _ => Ok(()),
        }
    }

    fn plane_ref(&self, key: &ImageKey) -> Result<&PlaneRef, LoadError> {
        self.index.get(key).ok_or(LoadError::NotIndexed(*key))
    }
}

/// A stack's samples, its plane shape and what `each` kept, in plane order.
type Filled<M> = (Vec<f32>, (usize, usize), Vec<M>);

/// The plane of a stack of `count` Zarr planes to read first, the workers going on from there.
///
/// The groups of one step are read at once, each in the same plane order, and planes of a Zarr
/// store may share a chunk that is decoded whole: OpenHCS packs a field's channels and z-planes
/// in one zlib chunk, so the groups `z 1` and `z 2` of a step need the same chunks, site after
/// site. Read in step, one group waited for every chunk the other was decoding (2 workers made
/// a run 1.17× faster than 1, bench/RESULTS.md). Each stack of Zarr planes therefore starts at
/// a place of its own, spread by the golden ratio over the stacks read one after another (0,
/// 0.62, 0.24, 0.85, … of the way in: [`stagger_of`]), so stacks read at once decode different
/// chunks and find the rest decoded. Files are read from the first plane: each is its own
/// unit, there is nothing to share.
fn stagger_start(count: usize) -> usize {
    static STACKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    stagger_of(STACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed), count)
}

/// The start of the `k`th stack of `count` planes: `count` × the fraction of `k` × the golden
/// ratio, inside the stack.
fn stagger_of(k: u64, count: usize) -> usize {
    let fraction = (k as f64 * 0.618_033_988_749_894_9).fract();
    ((fraction * count as f64) as usize).min(count.saturating_sub(1))
}

#[cfg(test)]
mod stagger_tests {
    use super::{stagger_of, stagger_start};
    use crate::formats::open_plate;

    /// Read from each of its planes in turn, a stack of Zarr planes (a plate ome-zarr-py wrote,
    /// 2 × 2 × 2 planes of a field, chunks holding 2 × 2 of them) holds every plane in its place,
    /// and what each plane's reader kept comes in plane order with the plane's index.
    #[test]
    fn a_stack_read_from_any_plane_holds_every_plane_in_its_place() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/foreign/tczyx_v0.5.ome.zarr");
        let plate = open_plate(&root, None).expect("open");
        let keys: Vec<_> = plate.index.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys.len(), 8);
        let planes: Vec<ndarray::Array2<f32>> = keys
            .iter()
            .map(|k| {
                let mut samples = Vec::new();
                let ((h, w), _) = plate
                    .index
                    .get(k)
                    .expect("indexed")
                    .load_f32_into(&plate.root, &mut samples, 1, true)
                    .expect("load");
                ndarray::Array2::from_shape_vec((h, w), samples).expect("plane")
            })
            .collect();
        assert!(planes.windows(2).any(|p| p[0] != p[1]), "the planes differ, so a misplaced one is seen");
        for start in 0..keys.len() {
            let (data, (h, w), kept) =
                plate.fill_from_plane(&keys, start, &|i, p| Some((i, p.to_owned()))).expect("stack");
            assert_eq!((h, w), planes[0].dim());
            for (i, want) in planes.iter().enumerate() {
                assert!(
                    data[i * h * w..(i + 1) * h * w] == *want.as_slice().expect("contiguous"),
                    "start {start}: plane {i}"
                );
            }
            assert_eq!(kept.len(), keys.len(), "start {start}");
            for (n, (i, plane)) in kept.iter().enumerate() {
                assert_eq!((*i, plane), (n, &planes[n]), "start {start}: kept value {n}");
            }
        }
    }

    #[test]
    fn stacks_read_one_after_another_start_far_apart_and_inside_the_stack() {
        // The first five stacks of 8 planes start at five different planes, ones read one
        // after the other far apart.
        let starts: Vec<usize> = (0..5).map(|k| stagger_of(k, 8)).collect();
        assert_eq!(starts, [0, 4, 1, 6, 3]);
        assert!((0..10_000).all(|k| stagger_of(k, 9) < 9));
        assert_eq!(stagger_of(7, 1), 0);
        assert_eq!(stagger_of(7, 0), 0);
        assert!(stagger_start(3) < 3);
    }
}
