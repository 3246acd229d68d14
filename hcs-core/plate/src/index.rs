//! The component index: one scan of a plate maps every (well, site, channel, z, timepoint) to a
//! file and page. Later stages look images up here and never re-list directories.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::well::{Component, ImageKey, WellId};

/// Where one plane is stored, relative to the plate root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlaneRef {
    /// A page of an image file.
    File {
        /// Path relative to the plate root.
        path: PathBuf,
        /// Page within a multi-page file (0 for single-page files).
        page: u32,
    },
    /// A plane of an OME-Zarr plate.
    Zarr {
        /// The OME-Zarr store, relative to the plate root (empty when the plate is the store).
        store: PathBuf,
        /// Well path inside the store (`A/1`).
        well: String,
        /// Field (0-based).
        field: u32,
        /// Time index (0-based).
        t: u32,
        /// Channel index (0-based).
        c: u32,
        /// Z index (0-based).
        z: u32,
    },
}

impl PlaneRef {
    /// A single-page file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        PlaneRef::File { path: path.into(), page: 0 }
    }

    /// A short description for messages (`TimePoint_1/A01_s1_w1.tif`, `plate.ome.zarr/A/1/0 [t0 c1 z0]`).
    pub fn describe(&self) -> String {
        match self {
            PlaneRef::File { path, page: 0 } => path.display().to_string(),
            PlaneRef::File { path, page } => format!("{} page {page}", path.display()),
            PlaneRef::Zarr { store, well, field, t, c, z } if store.as_os_str().is_empty() => {
                format!("{well}/{field} [t{t} c{c} z{z}]")
            }
            PlaneRef::Zarr { store, well, field, t, c, z } => {
                format!("{}/{well}/{field} [t{t} c{c} z{z}]", store.display())
            }
        }
    }

    /// Read the plane (`root` is the plate root) and append its samples as f32, row-major, to
    /// `out` (a `Vec`, or one plane's part of a stack filled by several threads:
    /// [`hcs_vfs::fill`]); its (height, width). A TIFF page goes from the file's bytes into `out`
    /// with no plane in between ([`hcs_vfs::tiff::read_tiff_page_f32`]); its shape and the dtype
    /// it is stored in. When `out` is a `Vec`
    /// with no room for the plane, it is given room for `planes` planes of its shape. On error
    /// `out` is as it was. `one_per_file`: the plate's format has one image per file, so a
    /// file with more full-size pages is refused ([`hcs_vfs::tiff::TiffLimits::sole_image`]).
    pub fn load_f32_into(
        &self,
        root: &std::path::Path,
        out: &mut impl hcs_vfs::fill::F32Out,
        planes: usize,
        one_per_file: bool,
    ) -> Result<((usize, usize), hcs_vfs::Dtype), hcs_vfs::VfsError> {
        match self {
            PlaneRef::File { path, page } => hcs_vfs::tiff::read_tiff_page_f32(
                &root.join(path),
                *page as usize,
                hcs_vfs::tiff::TiffLimits { sole_image: one_per_file, ..Default::default() },
                out,
                planes,
            ),
            PlaneRef::Zarr { .. } => {
                let plane = self.load(root)?;
                let (h, w) = plane.dim();
                out.make_room(h * w, planes);
                plane.extend_f32(out);
                Ok((plane.dim(), plane.dtype()))
            }
        }
    }

    /// Read the plane (`root` is the plate root).
    pub fn load(&self, root: &std::path::Path) -> Result<hcs_vfs::PlaneData, hcs_vfs::VfsError> {
        match self {
            PlaneRef::File { path, page } => {
                hcs_vfs::tiff::read_tiff_page(&root.join(path), *page as usize, hcs_vfs::tiff::TiffLimits::default())
            }
            PlaneRef::Zarr { store, well, field, t, c, z } => {
                hcs_vfs::omezarr::read_plane(&root.join(store), well, *field, *t, *c, *z)
            }
        }
    }
}

/// A plate whose images do not form a consistent index.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// Two files claim the same components.
    #[error("{key} appears twice: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The components.
        key: ImageKey,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// No images at all.
    #[error("no images found")]
    Empty(PathBuf),
    /// Some wells lack some combinations of site/channel/z/timepoint that others have.
    #[error("ragged plate: {summary}")]
    Ragged {
        /// Per well, how many images are missing and the first few of them.
        summary: String,
        /// Every missing combination.
        missing: Vec<ImageKey>,
    },
}

/// Every image plane of a plate, by component, in natural order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentIndex {
    entries: BTreeMap<ImageKey, PlaneRef>,
}

impl ComponentIndex {
    /// Build an index; two entries for one key are an error naming both files.
    pub fn build(entries: impl IntoIterator<Item = (ImageKey, PlaneRef)>) -> Result<Self, IndexError> {
        let mut map = BTreeMap::new();
        for (key, plane) in entries {
            if let Some(first) = map.get(&key) {
                let first: &PlaneRef = first;
                let (a, b) = if *first <= plane {
                    (first.describe(), plane.describe())
                } else {
                    (plane.describe(), first.describe())
                };
                return Err(IndexError::Duplicate { key, first: a.into(), second: b.into() });
            }
            map.insert(key, plane);
        }
        Ok(Self { entries: map })
    }

    /// Number of planes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no planes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Look one plane up.
    pub fn get(&self, key: &ImageKey) -> Option<&PlaneRef> {
        self.entries.get(key)
    }

    /// Every plane in order.
    pub fn iter(&self) -> impl Iterator<Item = (&ImageKey, &PlaneRef)> {
        self.entries.iter()
    }

    /// Every plane of one well, in order (a range scan, not a filter over the plate).
    pub fn well(&self, well: WellId) -> impl Iterator<Item = (&ImageKey, &PlaneRef)> {
        let lo = ImageKey { well, timepoint: 0, site: 0, channel: 0, z: 0 };
        let hi = ImageKey { well, timepoint: u32::MAX, site: u32::MAX, channel: u32::MAX, z: u32::MAX };
        self.entries.range(lo..=hi)
    }

    /// The wells present, in order.
    pub fn wells(&self) -> Vec<WellId> {
        let set: BTreeSet<WellId> = self.entries.keys().map(|k| k.well).collect();
        set.into_iter().collect()
    }

    /// The distinct values of a component across the plate, in natural (numeric) order.
    pub fn values(&self, component: Component) -> Vec<u32> {
        let set: BTreeSet<u32> = self.entries.keys().map(|k| k.get(component)).collect();
        set.into_iter().collect()
    }

    /// Check that every well has every combination of the sites, channels, z-planes and
    /// timepoints seen anywhere on the plate.
    pub fn check_complete(&self) -> Result<(), IndexError> {
        let sites = self.values(Component::Site);
        let channels = self.values(Component::Channel);
        let zs = self.values(Component::Z);
        let ts = self.values(Component::Timepoint);
        let mut missing = Vec::new();
        for well in self.wells() {
            for &timepoint in &ts {
                for &site in &sites {
                    for &channel in &channels {
                        for &z in &zs {
                            let key = ImageKey { well, timepoint, site, channel, z };
                            if !self.entries.contains_key(&key) {
                                missing.push(key);
                            }
                        }
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let per_well = sites.len() * channels.len() * zs.len() * ts.len();
        let mut by_well: BTreeMap<WellId, Vec<&ImageKey>> = BTreeMap::new();
        for key in &missing {
            by_well.entry(key.well).or_default().push(key);
        }
        let mut summary = String::new();
        for (i, (well, keys)) in by_well.iter().enumerate() {
            if i > 0 {
                summary.push_str("; ");
            }
            let _ = write!(summary, "well {well} lacks {} of {per_well} images (", keys.len());
            for (j, k) in keys.iter().take(3).enumerate() {
                if j > 0 {
                    summary.push_str(", ");
                }
                let _ = write!(summary, "site {} channel {} z {} t {}", k.site, k.channel, k.z, k.timepoint);
            }
            if keys.len() > 3 {
                let _ = write!(summary, ", …");
            }
            summary.push(')');
        }
        Err(IndexError::Ragged { summary, missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(well: &str, site: u32, channel: u32, z: u32) -> ImageKey {
        ImageKey { well: well.parse().expect("well"), timepoint: 1, site, channel, z }
    }

    fn plane(name: &str) -> PlaneRef {
        PlaneRef::file(name)
    }

    #[test]
    fn natural_order_puts_channel_10_after_2() {
        let idx = ComponentIndex::build([
            (key("A01", 1, 10, 1), plane("w10")),
            (key("A01", 1, 2, 1), plane("w2")),
            (key("A01", 1, 1, 1), plane("w1")),
        ])
        .expect("index");
        assert_eq!(idx.values(Component::Channel), [1, 2, 10]);
        let order: Vec<_> = idx.iter().map(|(_, p)| p.describe()).collect();
        assert_eq!(order, ["w1", "w2", "w10"]);
    }

    #[test]
    fn duplicates_name_both_files() {
        let err = ComponentIndex::build([(key("A01", 1, 1, 1), plane("b.tif")), (key("A01", 1, 1, 1), plane("a.tif"))])
            .expect_err("duplicate");
        assert_eq!(err.to_string(), "A01 site 1 channel 1 z 1 t 1 appears twice: a.tif and b.tif");
    }

    #[test]
    fn ragged_plates_list_what_is_missing_per_well() {
        let mut entries = Vec::new();
        for well in ["A01", "B02"] {
            for site in 1..=2 {
                for ch in 1..=2 {
                    if !(well == "B02" && site == 2 && ch == 2) {
                        entries.push((key(well, site, ch, 1), plane(&format!("{well}_{site}_{ch}"))));
                    }
                }
            }
        }
        let idx = ComponentIndex::build(entries).expect("index");
        let err = idx.check_complete().expect_err("ragged");
        assert_eq!(err.to_string(), "ragged plate: well B02 lacks 1 of 4 images (site 2 channel 2 z 1 t 1)");
        assert_eq!(idx.well("B02".parse().expect("well")).count(), 3);
    }
}
