//! hcs's own plate format: `hcs_plate.json` at the plate root lists every plane (TIFF pages or
//! OME-Zarr planes) by component, with the plate metadata — so an output plate of hcs is a valid
//! input plate, and reading it needs no directory scan.

use std::path::{Component as PathComponent, Path};

use serde::{Deserialize, Serialize};

pub use hcs_vfs::Backend;

use super::FormatError;
use crate::{FormatKind, ImageKey, PlaneRef, Plate, PlateMetadata};

/// The metadata file name.
pub const METADATA_FILE: &str = "hcs_plate.json";
/// Version of the metadata file layout.
pub const FORMAT_VERSION: u32 = 1;

/// One sub-directory of an hcs plate (e.g. the final images, or a checkpoint of a step).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subdir {
    /// Directory name under the plate root.
    pub name: String,
    /// Storage backend.
    pub backend: Backend,
    /// Whether this is the sub-directory read when the plate is used as input.
    pub main: bool,
    /// Every plane, by component.
    pub planes: Vec<(ImageKey, PlaneRef)>,
}

/// The content of `hcs_plate.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HcsPlateFile {
    /// Layout version ([`FORMAT_VERSION`]).
    pub hcs_plate: u32,
    /// The format the plate was originally acquired in.
    pub source_format: FormatKind,
    /// Plate metadata (channels, grid, pixel size, …).
    pub metadata: PlateMetadata,
    /// Sub-directories and the planes they hold.
    pub subdirs: Vec<Subdir>,
}

/// Whether a path from metadata stays inside the plate: relative, only normal components.
pub fn is_safe_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, PathComponent::Normal(_)))
}

fn check_plane_path(root: &Path, plane: &PlaneRef) -> Result<(), FormatError> {
    let (path, extra) = match plane {
        PlaneRef::File { path, .. } => (path, None),
        PlaneRef::Zarr { store, well, .. } => (store, Some(Path::new(well))),
    };
    if is_safe_relative(path) && extra.is_none_or(is_safe_relative) {
        Ok(())
    } else {
        Err(FormatError::Image(hcs_vfs::VfsError::BadPath {
            path: root.join(path),
            reason: "a plane path in hcs_plate.json leaves the plate (absolute or with `..`)",
        }))
    }
}

/// Write `hcs_plate.json` atomically.
pub fn write(root: &Path, file: &HcsPlateFile) -> Result<(), FormatError> {
    let bytes = serde_json::to_vec_pretty(file)
        .map_err(|e| FormatError::BadMetadata { path: root.join(METADATA_FILE), message: e.to_string() })?;
    hcs_vfs::atomic::write_atomic(&root.join(METADATA_FILE), &bytes)?;
    Ok(())
}

/// Read an hcs plate: the `main` sub-directory (or the first one).
pub fn read(root: &Path) -> Result<Plate, FormatError> {
    let path = root.join(METADATA_FILE);
    let bad = |message: String| FormatError::BadMetadata { path: path.clone(), message };
    let size = std::fs::metadata(&path).map_err(|e| FormatError::io(&path, e))?.len();
    if size > 1 << 30 {
        return Err(bad(format!("{size} bytes is above the 1 GiB limit")));
    }
    let bytes = std::fs::read(&path).map_err(|e| FormatError::io(&path, e))?;
    let file: HcsPlateFile =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid hcs plate metadata: {e}")))?;
    if file.hcs_plate != FORMAT_VERSION {
        return Err(bad(format!("layout version {} (this build reads {FORMAT_VERSION})", file.hcs_plate)));
    }
    let subdir = file
        .subdirs
        .iter()
        .find(|s| s.main)
        .or_else(|| file.subdirs.first())
        .ok_or_else(|| bad("no sub-directories listed".into()))?;
    for (_, plane) in &subdir.planes {
        check_plane_path(root, plane)?;
    }
    let index = super::checked_index(root, subdir.planes.iter().cloned())?;
    let mut metadata = file.metadata.clone();
    metadata.format = FormatKind::Hcs;
    let mut disagreements = Vec::new();
    if let Some(p) = metadata.pixel_size_um.filter(|p| !(p.is_finite() && *p > 0.0)) {
        disagreements.push(format!("{METADATA_FILE} gives pixel_size_um {p}: not a size, taken as unknown"));
        metadata.pixel_size_um = None;
    }
    Ok(Plate { root: root.to_path_buf(), metadata, index, unmatched: Vec::new(), disagreements })
}
