//! Loading planes of an indexed plate, into a stack or one at a time as stored, with errors that
//! name the file.

use std::path::PathBuf;

use ndarray::{Array3, ArrayView2};

use super::{ImageKey, Plate};

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
    /// An empty list of planes.
    #[error("no planes to stack")]
    Empty,
}

impl Plate {
    /// Load one plane as stored (`u8`, `u16` or `f32` samples), without a float copy: for
    /// readers that only look at it (a whole-plate mosaic is hundreds of MiB as f32).
    pub fn load_plane(&self, key: &ImageKey) -> Result<hcs_vfs::PlaneData, LoadError> {
        let plane_ref = self.index.get(key).ok_or(LoadError::NotIndexed(*key))?;
        plane_ref.load(&self.root).map_err(|source| LoadError::Storage { key: *key, source })
    }

    /// Load planes (in the given order) into a `[planes, y, x]` f32 stack of raw values.
    pub fn load_stack(&self, keys: &[ImageKey]) -> Result<Array3<f32>, LoadError> {
        self.load_stack_with(keys, |_, _| {})
    }

    /// [`Plate::load_stack`], handing each plane to `each` (its index in `keys` and its samples)
    /// as soon as it is read, while it is still in the caches.
    pub fn load_stack_with(
        &self,
        keys: &[ImageKey],
        mut each: impl FnMut(usize, ArrayView2<'_, f32>),
    ) -> Result<Array3<f32>, LoadError> {
        if keys.is_empty() {
            return Err(LoadError::Empty);
        }
        // Planes are converted from their files' bytes straight into the stack's memory (no
        // zeroing pass, no plane in between), reserved for all when the first one's shape is known.
        let mut data: Vec<f32> = Vec::new();
        let mut shape: Option<(usize, usize)> = None;
        for (i, key) in keys.iter().enumerate() {
            let plane_ref = self.index.get(key).ok_or(LoadError::NotIndexed(*key))?;
            let start = data.len();
            let (h, w) = plane_ref
                .load_f32_into(&self.root, &mut data, keys.len() - i)
                .map_err(|source| LoadError::Storage { key: *key, source })?;
            let (want_h, want_w) = *shape.get_or_insert((h, w));
            if (h, w) != (want_h, want_w) {
                return Err(LoadError::ShapeMismatch {
                    key: *key,
                    file: PathBuf::from(plane_ref.describe()),
                    found_h: h,
                    found_w: w,
                    want_h,
                    want_w,
                });
            }
            if let Ok(plane) = ArrayView2::from_shape((h, w), &data[start..]) {
                each(i, plane);
            }
        }
        let (h, w) = shape.ok_or(LoadError::Empty)?;
        // The data holds exactly keys × h × w samples, so the shape always fits.
        Array3::from_shape_vec((keys.len(), h, w), data).map_err(|_| LoadError::Empty)
    }
}
