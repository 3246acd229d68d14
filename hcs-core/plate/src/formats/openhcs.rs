//! Plates written by OpenHCS (the peer): `openhcs_metadata.json` at the plate root lists, per
//! sub-directory, the image files, the file-name parser they follow (ImageXpress or Opera
//! Phenix names), the channel names, the site grid and the pixel size. So a plate OpenHCS
//! processed can be processed again by hcs, as OpenHCS itself re-reads it.
//!
//! The sub-directory read is the one marked `main`, else the only one, else `images`, else the
//! first (OpenHCS's own choice). Its files are those `image_files` lists, their components
//! parsed from the listed names as OpenHCS parses them (a virtual-workspace entry is read at its
//! `workspace_mapping` address; one mapped to another backend or to one plane of a stack is
//! refused); every path must stay inside the plate, and a listed file that is missing is an
//! error naming it. Files in the folder that the list does
//! not name are reported in [`Plate::unmatched`].
//!
//! A sub-directory OpenHCS stored in Zarr (`available_backends` `zarr` only) is an OME-Zarr HCS
//! plate (NGFF 0.4 on Zarr v2): one image per field, `t, c, z, y, x` arrays, zlib-compressed by
//! default. It is read as such ([`super::ome_zarr`]), its planes named by the components of
//! the file names `image_files` lists: the store's field, channel and z indices are the
//! positions of those values in sorted order, as OpenHCS packs them. A store whose planes and the
//! listed names disagree is refused, naming the first plane one has and the other lacks.
//!
//! OpenHCS writes `pixel_size` 1.0 when it did not know the pixel size, and an empty grid when
//! it did not know the grid: 1.0 is therefore taken as unknown, and that is said in
//! [`Plate::disagreements`] rather than silently passed on as 1 µm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use super::{FormatError, imagexpress, native::is_safe_relative, sorted_entries};
use crate::{FormatKind, ImageKey, PlaneRef, Plate, WellId};

/// The metadata file name.
pub const METADATA_FILE: &str = "openhcs_metadata.json";

/// Largest metadata file read (OpenHCS's grows with every plane's provenance).
const MAX_METADATA_BYTES: u64 = 1 << 30;

/// The pixel size OpenHCS writes when it has none.
const UNKNOWN_PIXEL_SIZE: f64 = 1.0;

/// `r01c01f01p01-ch1sk1fk1fl1.tiff`: row, column, field, plane, channel, then optionally the
/// timepoint (`sk`), the field stack and the focal level; anything after an underscore.
static OPERA_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"(?i)^r(\d{1,2})c(\d{1,2})f(\d+)p(\d+)-ch(\d+)(?:sk(\d+))?(?:fk\d+)?(?:fl\d+)?(?:_.*?)?\.tiff?$").ok()
});

#[derive(Deserialize)]
struct MetadataFile {
    subdirectories: BTreeMap<String, Subdirectory>,
}

#[derive(Deserialize)]
struct Subdirectory {
    #[serde(default)]
    source_filename_parser_name: Option<String>,
    #[serde(default)]
    grid_dimensions: Option<Vec<u32>>,
    #[serde(default)]
    pixel_size: Option<f64>,
    #[serde(default)]
    image_files: Vec<String>,
    #[serde(default)]
    channels: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    available_backends: BTreeMap<String, bool>,
    #[serde(default)]
    main: Option<bool>,
    #[serde(default)]
    workspace_mapping: BTreeMap<String, Mapping>,
}

#[derive(Deserialize)]
struct Mapping {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    backend_address: Option<String>,
    /// Set where the entry is one plane of a stack in its file.
    #[serde(default)]
    source_axis_indices: Vec<serde_json::Value>,
}

/// A sub-directory's planes, each under its key.
type Planes = Vec<(ImageKey, PlaneRef)>;

/// Which naming the image files follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Naming {
    Imagexpress,
    OperaPhenix,
}

impl Naming {
    /// The naming in words, for messages.
    fn words(self) -> &'static str {
        match self {
            Naming::Imagexpress => "an ImageXpress",
            Naming::OperaPhenix => "an Opera Phenix",
        }
    }

    fn of(parser: Option<&str>) -> Result<Self, String> {
        match parser {
            Some("ImageXpressFilenameParser") | None => Ok(Naming::Imagexpress),
            Some("OperaPhenixFilenameParser") => Ok(Naming::OperaPhenix),
            Some(other) => Err(format!(
                "file-name parser {other:?}: hcs reads OpenHCS plates named by ImageXpressFilenameParser or OperaPhenixFilenameParser"
            )),
        }
    }

    /// The components of an image file's name (`None`: it is not such a name).
    fn parse(self, name: &str) -> Option<ImageKey> {
        match self {
            Naming::Imagexpress => {
                let p = imagexpress::parse_name(name)?;
                Some(ImageKey {
                    well: p.well,
                    timepoint: p.timepoint.unwrap_or(1),
                    site: p.site.unwrap_or(1),
                    channel: p.channel.unwrap_or(1),
                    z: p.z.unwrap_or(1),
                })
            }
            Naming::OperaPhenix => {
                let caps = OPERA_NAME.as_ref()?.captures(name)?;
                let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
                let well: WellId = format!("R{}C{}", caps.get(1)?.as_str(), caps.get(2)?.as_str()).parse().ok()?;
                // `sk` may be left out (timepoint 1); named but past 32 bits, the name is no image's.
                let timepoint = match caps.get(6) {
                    None => 1,
                    Some(_) => num(6)?,
                };
                Some(ImageKey { well, timepoint, site: num(3)?, channel: num(5)?, z: num(4)? })
            }
        }
    }
}

/// Whether `root` holds an OpenHCS plate's metadata file.
pub fn is_plate(root: &Path) -> bool {
    root.join(METADATA_FILE).is_file()
}

/// Read a plate OpenHCS wrote; its tile shape and dtype are read from the first image only when
/// `read_first_plane` (else they are `None`).
pub fn read(root: &Path, read_first_plane: bool) -> Result<Plate, FormatError> {
    let path = root.join(METADATA_FILE);
    let bad = |message: String| FormatError::BadMetadata { path: path.clone(), message };
    let size = std::fs::metadata(&path).map_err(|e| FormatError::io(&path, e))?.len();
    if size > MAX_METADATA_BYTES {
        return Err(bad(format!("{size} bytes is above the 1 GiB limit")));
    }
    let bytes = std::fs::read(&path).map_err(|e| FormatError::io(&path, e))?;
    let file: MetadataFile =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid OpenHCS plate metadata: {e}")))?;
    let (name, sub) = main_subdirectory(&file).ok_or_else(|| bad("no sub-directories listed".into()))?;
    let in_zarr =
        sub.available_backends.get("zarr") == Some(&true) && sub.available_backends.get("disk") != Some(&true);
    let naming = Naming::of(sub.source_filename_parser_name.as_deref()).map_err(bad)?;
    let mut disagreements = Vec::new();
    let mains: Vec<&str> =
        file.subdirectories.iter().filter(|(_, s)| s.main == Some(true)).map(|(n, _)| n.as_str()).collect();
    if mains.len() > 1 {
        disagreements.push(format!(
            "{METADATA_FILE} marks {} sub-directories main ({}): {name:?} was read",
            mains.len(),
            mains.join(", ")
        ));
    } else if mains.is_empty() && file.subdirectories.len() > 1 {
        disagreements.push(format!(
            "{METADATA_FILE} marks none of its {} sub-directories main: {name:?} was read (`images` if listed, else the first)",
            file.subdirectories.len()
        ));
    }
    if sub.source_filename_parser_name.is_none() {
        disagreements.push(format!(
            "{METADATA_FILE} names no source_filename_parser_name for sub-directory {name:?}: its file names are read as ImageXpress names"
        ));
    }
    if sub.image_files.is_empty() {
        return Err(bad(format!("sub-directory {name:?} lists no image files")));
    }
    let (entries, unmatched, zarr_image) = if in_zarr {
        let (entries, first) = zarr_planes(root, name, sub, naming, &bad)?;
        (entries, Vec::new(), first)
    } else {
        let (entries, listed) = file_planes(root, name, sub, naming, &bad)?;
        (entries, unlisted_files(root, &listed)?, None)
    };
    let index = super::checked_index(root, entries)?;
    let pixel_size_um = match sub.pixel_size {
        Some(p) if p == UNKNOWN_PIXEL_SIZE => {
            disagreements.push(format!(
                "{METADATA_FILE} gives pixel_size 1.0, which OpenHCS writes when it does not know the pixel size: taken as unknown"
            ));
            None
        }
        Some(p) if p.is_finite() && p > 0.0 => Some(p),
        Some(p) => {
            disagreements.push(format!("{METADATA_FILE} gives pixel_size {p}: not a size, taken as unknown"));
            None
        }
        None => None,
    };
    let grid = match sub.grid_dimensions.as_deref() {
        Some([rows, cols]) if *rows > 0 && *cols > 0 => Some((*rows, *cols)),
        // OpenHCS writes an empty grid when it does not know it.
        None | Some([]) => None,
        Some(other) => {
            disagreements.push(format!(
                "{METADATA_FILE} gives grid_dimensions {other:?}: not rows and columns, taken as unknown"
            ));
            None
        }
    };
    let channels = sub.channels.clone().unwrap_or_default();
    let plate_name = root.file_name().map_or_else(|| "plate".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut plate = super::finish_plate(
        root,
        read_first_plane,
        index,
        FormatKind::Openhcs,
        plate_name,
        grid,
        pixel_size_um,
        |c| channels.get(&c.to_string()).cloned().flatten().unwrap_or_else(|| format!("w{c}")),
    )?;
    if let Some(image) = zarr_image.filter(|_| !read_first_plane) {
        plate.metadata.tile_shape = Some(image.plane_shape());
        plate.metadata.dtype = Some(image.dtype);
    }
    plate.unmatched = unmatched;
    plate.disagreements.extend(disagreements);
    Ok(plate)
}

/// The components a listed image path's file name gives, as OpenHCS parses it (the naming
/// sub-directory `name` declares).
fn listed_key(
    listed_path: &str,
    name: &str,
    naming: Naming,
    bad: &impl Fn(String) -> FormatError,
) -> Result<ImageKey, FormatError> {
    let file_name = Path::new(listed_path).file_name().map(|n| n.to_string_lossy().into_owned());
    file_name.as_deref().and_then(|n| naming.parse(n)).ok_or_else(|| {
        bad(format!("{listed_path:?}: not {} image name (the naming sub-directory {name:?} declares)", naming.words()))
    })
}

/// The planes of a sub-directory on disk: every listed file, and the set of their paths.
fn file_planes(
    root: &Path,
    name: &str,
    sub: &Subdirectory,
    naming: Naming,
    bad: &impl Fn(String) -> FormatError,
) -> Result<(Planes, BTreeSet<PathBuf>), FormatError> {
    let mut entries = Vec::with_capacity(sub.image_files.len());
    let mut listed = BTreeSet::new();
    let mut missing = Vec::new();
    for listed_path in &sub.image_files {
        // The listed name carries the components, as OpenHCS parses it; a virtual workspace's
        // entry is read at its mapped address (a `ZStep_2/A01_s1_w1.tif` whose z is the
        // folder's, named `A01_s001_w1_z002_t001.tif` in the list).
        let mapping = sub.workspace_mapping.get(listed_path);
        if let Some(m) = mapping
            && (m.backend.as_deref().is_some_and(|b| b != "disk") || !m.source_axis_indices.is_empty())
        {
            return Err(bad(format!(
                "{listed_path:?} is mapped to {} {:?}{}, which hcs does not read; only whole image files on disk",
                m.backend.as_deref().unwrap_or("a backend"),
                m.backend_address.as_deref().unwrap_or(""),
                if m.source_axis_indices.is_empty() { "" } else { " (one plane of a stack)" }
            )));
        }
        let address = mapping.and_then(|m| m.backend_address.as_deref()).unwrap_or(listed_path);
        let rel = PathBuf::from(address.trim_start_matches("./"));
        if !is_safe_relative(&rel) {
            return Err(FormatError::Image(hcs_vfs::VfsError::BadPath {
                path: root.join(&rel),
                reason: "an image path in openhcs_metadata.json leaves the plate (absolute or with `..`)",
            }));
        }
        let key = listed_key(listed_path, name, naming, bad)?;
        if !root.join(&rel).is_file() {
            missing.push(rel.display().to_string());
        }
        listed.insert(root.join(&rel));
        entries.push((key, PlaneRef::file(rel)));
    }
    if let Some(first) = missing.first() {
        return Err(bad(format!(
            "{} listed image file{} missing (the first: {first})",
            missing.len(),
            if missing.len() == 1 { " is" } else { "s are" }
        )));
    }
    Ok((entries, listed))
}

/// The planes of a sub-directory OpenHCS stored in Zarr: the OME-Zarr plate there, each plane
/// under the components the listed file names give (the store's indices are positions in the
/// sorted values of each well's names); and the first image's metadata.
fn zarr_planes(
    root: &Path,
    name: &str,
    sub: &Subdirectory,
    naming: Naming,
    bad: &impl Fn(String) -> FormatError,
) -> Result<(Planes, Option<hcs_vfs::omezarr::NgffImage>), FormatError> {
    let store = PathBuf::from(name);
    if !is_safe_relative(&store) {
        return Err(FormatError::Image(hcs_vfs::VfsError::BadPath {
            path: root.join(&store),
            reason: "a sub-directory name in openhcs_metadata.json leaves the plate (absolute or with `..`)",
        }));
    }
    if !super::ome_zarr::is_plate(&root.join(&store))? {
        return Err(bad(format!(
            "sub-directory {name:?} is stored in Zarr by OpenHCS, but {} holds no OME-Zarr plate",
            root.join(&store).display()
        )));
    }
    let mut listed = BTreeSet::new();
    for listed_path in &sub.image_files {
        listed.insert(listed_key(listed_path, name, naming, bad)?);
    }
    // Per well, the sorted values of each component the names give: index i of the store is the
    // i-th of them.
    let mut values: BTreeMap<WellId, [BTreeSet<u32>; 4]> = BTreeMap::new();
    for key in &listed {
        let v = values.entry(key.well).or_default();
        for (set, value) in v.iter_mut().zip([key.timepoint, key.site, key.channel, key.z]) {
            set.insert(value);
        }
    }
    let found = super::ome_zarr::store_planes(root, &store)?;
    let mut entries = Vec::with_capacity(found.entries.len());
    for (key, plane) in found.entries {
        let named = values.get(&key.well).and_then(|v| {
            let nth = |set: &BTreeSet<u32>, index: u32| set.iter().nth(index.checked_sub(1)? as usize).copied();
            Some(ImageKey {
                well: key.well,
                timepoint: nth(&v[0], key.timepoint)?,
                site: nth(&v[1], key.site)?,
                channel: nth(&v[2], key.channel)?,
                z: nth(&v[3], key.z)?,
            })
        });
        let Some(named) = named.filter(|k| listed.contains(k)) else {
            return Err(bad(format!(
                "the Zarr store of sub-directory {name:?} holds a plane that {METADATA_FILE} does not list: \
                 well {}, field {}, time point {}, channel {}, z {} (counted from 1)",
                key.well, key.site, key.timepoint, key.channel, key.z
            )));
        };
        listed.remove(&named);
        entries.push((named, plane));
    }
    if let Some(key) = listed.first() {
        return Err(bad(format!(
            "{} listed image{} not in the Zarr store of sub-directory {name:?} (the first: well {}, site {}, channel {}, z {}, time point {})",
            listed.len(),
            if listed.len() == 1 { " is" } else { "s are" },
            key.well,
            key.site,
            key.channel,
            key.z,
            key.timepoint
        )));
    }
    Ok((entries, found.first))
}

/// The sub-directory OpenHCS reads as the plate's input, and its name.
fn main_subdirectory(file: &MetadataFile) -> Option<(&str, &Subdirectory)> {
    let subs = &file.subdirectories;
    subs.iter()
        .find(|(_, s)| s.main == Some(true))
        .or_else(|| if subs.len() == 1 { subs.iter().next() } else { None })
        .or_else(|| subs.get_key_value("images"))
        .or_else(|| subs.iter().next())
        .map(|(name, s)| (name.as_str(), s))
}

/// Files in the folders of the listed images that the list does not name, relative to the root.
fn unlisted_files(root: &Path, listed: &BTreeSet<PathBuf>) -> Result<Vec<PathBuf>, FormatError> {
    let folders: BTreeSet<&Path> = listed.iter().filter_map(|p| p.parent()).collect();
    let mut unlisted = Vec::new();
    for folder in folders {
        for entry in sorted_entries(folder)? {
            let path = entry.path();
            let is_metadata = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(METADATA_FILE));
            // Files only: a plate whose images lie in its root has its sub-directories there.
            if path.is_file() && !listed.contains(&path) && !is_metadata {
                unlisted.push(path.strip_prefix(root).map_or_else(|_| path.clone(), Path::to_path_buf));
            }
        }
    }
    Ok(unlisted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_namings_parse_to_the_same_components() {
        let ix = Naming::Imagexpress.parse("B02_s003_w2_z001_t004.tif").expect("ImageXpress name");
        let opera = Naming::OperaPhenix.parse("r02c02f03p01-ch2sk4fk1fl1.tiff").expect("Opera name");
        assert_eq!(ix, opera);
        assert_eq!((ix.well.to_string(), ix.site, ix.channel, ix.z, ix.timepoint), ("B02".into(), 3, 2, 1, 4));
        assert_eq!(Naming::OperaPhenix.parse("r01c01f01p02-ch1.tif").map(|k| (k.z, k.timepoint)), Some((2, 1)));
        // As OpenHCS names its outputs of an Opera Phenix plate (three-digit field and plane).
        let written = Naming::OperaPhenix.parse("r02c02f001p003-ch1sk1fk1fl1.tiff").expect("OpenHCS's Opera name");
        assert_eq!((written.well.to_string(), written.site, written.z), ("B02".into(), 1, 3));
        assert_eq!(Naming::OperaPhenix.parse("A01_s1_w1.tif"), None);
        assert!(Naming::of(Some("SomeOtherParser")).is_err());
    }
}
