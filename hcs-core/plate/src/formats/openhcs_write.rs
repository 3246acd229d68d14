//! `openhcs_metadata.json` for a plate hcs wrote, so that OpenHCS opens hcs's output as a plate
//! (a pipeline started in hcs can go on in OpenHCS, which has functions hcs lacks).
//!
//! OpenHCS 0.8.6 opens a folder it did not write only through this file: without it, a folder of
//! ImageXpress-named TIFFs and no `.HTD` is taken for no format it reads. What it needs, found by
//! running it (the `scripts/check_openhcs_reads.py` check runs it on hcs's output):
//!
//! - one entry per sub-directory under `subdirectories`, keyed by the folder's own name: a key
//!   with a `/` (hcs's `checkpoints/step1`) is opened once but then written back under its last
//!   component, which breaks the next opening; such sub-directories are left out;
//! - in each: `source_filename_parser_name`, `image_files` (read only as a list), the first key
//!   of `available_backends` (`disk`), a number for `pixel_size` (OpenHCS writes 1.0 when it does
//!   not know it) and `grid_dimensions` (`[rows, cols]`, or `[]` when unknown, which only its
//!   stitching refuses);
//! - a non-empty `channels` map, else OpenHCS rewrites the file the first time it opens the
//!   plate (and changes its mode); with one, it writes nothing into the plate;
//! - exactly one entry with `main: true` when there are several.
//!
//! OpenHCS finds the planes by listing the folder and parsing the names, not from `image_files`:
//! only a folder whose every plane is a whole file named as ImageXpress names files (hcs's own
//! `A01_s001_w1_z001_t001.tif`; one row letter, as OpenHCS parses them, so not the rows `AA` to
//! `AF` of a 1536-well plate), with the components hcs gives it, is listed. A plate whose main
//! sub-directory is not such a folder (OME-Zarr output: OpenHCS reads only its own Zarr layout)
//! gets no file, and [`write()`] says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathComponent, Path};

use serde_json::{Value, json};

use super::FormatError;
use super::native::{Backend, HcsPlateFile, Subdir};
use super::openhcs::METADATA_FILE;
use crate::{ImageKey, PlaneRef};

/// The pixel size OpenHCS writes, and reads, when the pixel size is not known.
const UNKNOWN_PIXEL_SIZE: f64 = 1.0;

/// What [`write()`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Companion {
    /// Written, listing these sub-directories (the main one first).
    Written {
        /// The sub-directories listed.
        subdirs: Vec<String>,
    },
    /// Not written (and an earlier one removed), for this reason.
    NotWritten(String),
}

/// Write `openhcs_metadata.json` at `root` for the plate `file` describes (atomically), or, when
/// OpenHCS could not open its main sub-directory, remove an earlier one and say why.
pub fn write(root: &Path, file: &HcsPlateFile) -> Result<Companion, FormatError> {
    let path = root.join(METADATA_FILE);
    match metadata(file) {
        Ok((value, subdirs)) => {
            let bytes = serde_json::to_vec_pretty(&value)
                .map_err(|e| FormatError::BadMetadata { path: path.clone(), message: e.to_string() })?;
            hcs_vfs::atomic::write_atomic(&path, &bytes)?;
            Ok(Companion::Written { subdirs })
        }
        Err(why) => {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(FormatError::io(&path, e)),
                _ => {}
            }
            Ok(Companion::NotWritten(why))
        }
    }
}

/// The file's content and the sub-directories it lists (main first), or why the main one cannot
/// be listed.
pub fn metadata(file: &HcsPlateFile) -> Result<(Value, Vec<String>), String> {
    let main = file.subdirs.iter().find(|s| s.main).ok_or("the plate names no main sub-directory")?;
    let main_planes = listable(main).map_err(|why| format!("its main sub-directory {:?} {why}", main.name))?;
    let mut listed = vec![(main, main_planes)];
    listed.extend(file.subdirs.iter().filter(|s| !s.main).filter_map(|s| listable(s).ok().map(|p| (s, p))));
    let names = listed.iter().map(|(s, _)| s.name.clone()).collect();
    let subdirectories: serde_json::Map<String, Value> =
        listed.into_iter().map(|(s, planes)| (s.name.clone(), entry(file, s, &planes))).collect();
    Ok((json!({ "subdirectories": subdirectories }), names))
}

/// A sub-directory's planes with their file names, when OpenHCS can open it: stored on disk in a
/// folder directly under the plate root, each plane a whole file there whose ImageXpress name
/// gives its components; else why not.
fn listable(sub: &Subdir) -> Result<Vec<(ImageKey, String)>, String> {
    if sub.backend != Backend::Disk {
        return Err("is stored in OME-Zarr, which OpenHCS reads only in the layout it writes itself".into());
    }
    let folder = Path::new(&sub.name);
    if !matches!(folder.components().collect::<Vec<_>>()[..], [PathComponent::Normal(_)]) {
        return Err("is not a folder directly under the plate root, which OpenHCS needs".into());
    }
    if sub.planes.is_empty() {
        return Err("holds no planes".into());
    }
    sub.planes
        .iter()
        .map(|(key, plane)| {
            let PlaneRef::File { path, page: 0 } = plane else {
                return Err(format!("holds {plane:?}, not a whole image file"));
            };
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.parent() != Some(folder) {
                return Err(format!("holds {}, outside the folder itself", path.display()));
            }
            if !named_as(&name, key) {
                return Err(format!("holds {name}, whose ImageXpress name does not give {key:?}"));
            }
            if key.well.row >= 26 {
                // OpenHCS's ImageXpress names take one row letter: `AA01_s001…` is no name to it.
                return Err(format!(
                    "holds well {}, whose two row letters OpenHCS's ImageXpress names do not take",
                    key.well
                ));
            }
            Ok((*key, name))
        })
        .collect()
}

/// Whether `name` is an ImageXpress image name with every component and they are `key`'s.
fn named_as(name: &str, key: &ImageKey) -> bool {
    super::imagexpress::parse_name(name).is_some_and(|p| {
        p.well == key.well
            && p.site == Some(key.site)
            && p.channel == Some(key.channel)
            && p.z == Some(key.z)
            && p.timepoint == Some(key.timepoint)
    })
}

/// One sub-directory's entry.
fn entry(file: &HcsPlateFile, sub: &Subdir, planes: &[(ImageKey, String)]) -> Value {
    let values = |f: fn(&ImageKey) -> String| -> BTreeMap<String, Value> {
        planes.iter().map(|(k, _)| (f(k), Value::Null)).collect()
    };
    let channel_numbers: BTreeSet<u32> = planes.iter().map(|(k, _)| k.channel).collect();
    let channels: BTreeMap<String, Value> = channel_numbers
        .iter()
        .map(|&c| {
            let name = file.metadata.channels.iter().find(|i| i.index == c).map(|i| i.name.clone());
            (c.to_string(), name.map_or(Value::Null, Value::String))
        })
        .collect();
    let sites = planes.iter().map(|(k, _)| k.site).collect::<BTreeSet<_>>().len();
    json!({
        "microscope_handler_name": "openhcsdata",
        "source_filename_parser_name": "ImageXpressFilenameParser",
        "grid_dimensions": grid(file.metadata.grid, sites),
        "pixel_size": file.metadata.pixel_size_um.unwrap_or(UNKNOWN_PIXEL_SIZE),
        "image_files": planes.iter().map(|(_, name)| format!("{}/{name}", sub.name)).collect::<Vec<_>>(),
        "channels": channels,
        "wells": values(|k| k.well.to_string()),
        "sites": values(|k| k.site.to_string()),
        "z_indexes": values(|k| k.z.to_string()),
        "timepoints": values(|k| k.timepoint.to_string()),
        "available_backends": { "disk": true },
        "main": sub.main,
    })
}

/// `[rows, cols]` of a folder holding `sites` sites: the plate's grid when it holds that many,
/// `[1, 1]` for one site (a mosaic), else `[]` (OpenHCS's "unknown").
fn grid(plate_grid: Option<(u32, u32)>, sites: usize) -> Vec<u32> {
    match plate_grid {
        Some((rows, cols)) if (rows as usize).checked_mul(cols as usize) == Some(sites) => vec![rows, cols],
        _ if sites == 1 => vec![1, 1],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{ChannelInfo, PlateMetadata};
    use crate::{FormatKind, WellId};

    fn key(well: &str, site: u32, channel: u32, z: u32) -> ImageKey {
        ImageKey { well: well.parse::<WellId>().expect("well"), timepoint: 1, site, channel, z }
    }

    fn file_of(folder: &str, key: ImageKey) -> (ImageKey, PlaneRef) {
        let name = format!("{}_s{:03}_w{}_z{:03}_t{:03}.tif", key.well, key.site, key.channel, key.z, key.timepoint);
        (key, PlaneRef::File { path: Path::new(folder).join(name), page: 0 })
    }

    fn subdir(name: &str, main: bool, sites: u32) -> Subdir {
        let planes = ["A01", "B02"]
            .iter()
            .flat_map(|w| (1..=sites).flat_map(move |s| (1..=2).map(move |c| file_of(name, key(w, s, c, 1)))))
            .collect();
        Subdir { name: name.into(), backend: Backend::Disk, main, planes }
    }

    fn plate(subdirs: Vec<Subdir>, grid: Option<(u32, u32)>) -> HcsPlateFile {
        HcsPlateFile {
            hcs_plate: 1,
            source_format: FormatKind::Imagexpress,
            metadata: PlateMetadata {
                format: FormatKind::Imagexpress,
                name: "p".into(),
                grid,
                pixel_size_um: Some(0.65),
                z_spacing_um: None,
                site_step_um: (None, None),
                channels: vec![
                    ChannelInfo { index: 1, name: "DAPI".into() },
                    ChannelInfo { index: 2, name: "FITC".into() },
                ],
                tile_shape: None,
                dtype: None,
            },
            subdirs,
        }
    }

    #[test]
    fn the_main_folder_is_listed_with_everything_openhcs_needs_and_nested_checkpoints_are_not() {
        let file = plate(vec![subdir("checkpoints/step1", false, 4), subdir("images", true, 1)], Some((2, 2)));
        let (value, names) = metadata(&file).expect("listable");
        assert_eq!(names, ["images"]);
        let images = &value["subdirectories"]["images"];
        assert_eq!(value["subdirectories"].as_object().map(|m| m.len()), Some(1));
        assert_eq!(images["source_filename_parser_name"], "ImageXpressFilenameParser");
        assert_eq!(images["available_backends"], json!({ "disk": true }));
        assert_eq!(images["main"], true);
        assert_eq!(images["grid_dimensions"], json!([1, 1]), "one site: a mosaic");
        assert_eq!(images["pixel_size"], 0.65);
        assert_eq!(images["channels"], json!({ "1": "DAPI", "2": "FITC" }));
        assert_eq!(images["wells"], json!({ "A01": null, "B02": null }));
        assert_eq!(images["sites"], json!({ "1": null }));
        assert_eq!(images["z_indexes"], json!({ "1": null }));
        assert_eq!(images["timepoints"], json!({ "1": null }));
        let listed = images["image_files"].as_array().expect("list");
        assert_eq!(listed.len(), 4);
        assert_eq!(listed[0], "images/A01_s001_w1_z001_t001.tif");
    }

    #[test]
    fn other_top_level_folders_are_listed_after_the_main_one_and_not_main() {
        let file = plate(vec![subdir("raw", false, 4), subdir("images", true, 4)], Some((2, 2)));
        let (value, names) = metadata(&file).expect("listable");
        assert_eq!(names, ["images", "raw"]);
        assert_eq!(value["subdirectories"]["raw"]["main"], false);
        assert_eq!(value["subdirectories"]["images"]["grid_dimensions"], json!([2, 2]));
    }

    #[test]
    fn the_grid_is_the_plates_only_where_it_holds_the_folders_sites() {
        assert_eq!(grid(Some((3, 3)), 9), [3, 3]);
        assert_eq!(grid(Some((2, 3)), 6), [2, 3]);
        assert_eq!(grid(Some((3, 3)), 4), Vec::<u32>::new());
        assert_eq!(grid(None, 9), Vec::<u32>::new());
        assert_eq!(grid(None, 1), [1, 1]);
        assert_eq!(grid(Some((3, 3)), 1), [1, 1]);
    }

    #[test]
    fn an_unknown_pixel_size_is_written_as_openhcs_writes_it() {
        let mut file = plate(vec![subdir("images", true, 1)], None);
        file.metadata.pixel_size_um = None;
        let (value, _) = metadata(&file).expect("listable");
        assert_eq!(value["subdirectories"]["images"]["pixel_size"], 1.0);
    }

    #[test]
    fn a_main_folder_openhcs_cannot_open_gives_the_reason() {
        let mut zarr = subdir("images.ome.zarr", true, 1);
        zarr.backend = Backend::Zarr;
        let why = metadata(&plate(vec![zarr], None)).expect_err("zarr");
        assert!(why.contains("\"images.ome.zarr\"") && why.contains("OME-Zarr"), "{why}");

        let nested = metadata(&plate(vec![subdir("out/images", true, 1)], None)).expect_err("nested");
        assert!(nested.contains("directly under the plate root"), "{nested}");

        let mut renamed = subdir("images", true, 1);
        renamed.planes[0].1 = PlaneRef::File { path: "images/mosaic.tif".into(), page: 0 };
        let why = metadata(&plate(vec![renamed], None)).expect_err("not an ImageXpress name");
        assert!(why.contains("mosaic.tif"), "{why}");

        let mut wrong = subdir("images", true, 1);
        wrong.planes[0].0.z = 2;
        let why = metadata(&plate(vec![wrong], None)).expect_err("name and key disagree");
        assert!(why.contains("does not give"), "{why}");

        let mut paged = subdir("images", true, 1);
        paged.planes[0].1 = PlaneRef::File { path: "images/A01_s001_w1_z001_t001.tif".into(), page: 1 };
        assert!(metadata(&plate(vec![paged], None)).is_err(), "one page of a stack");

        assert!(metadata(&plate(vec![subdir("images", false, 1)], None)).is_err(), "no main");

        // A 1536-well plate's rows AA to AF: OpenHCS parses one row letter only.
        let mut deep_rows = subdir("images", true, 1);
        deep_rows.planes.push(file_of("images", key("AF48", 1, 1, 1)));
        let why = metadata(&plate(vec![deep_rows], None)).expect_err("two row letters");
        assert!(why.contains("AF48") && why.contains("two row letters"), "{why}");
    }

    #[test]
    fn writing_replaces_and_not_writing_removes_an_earlier_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(METADATA_FILE);
        let written = write(dir.path(), &plate(vec![subdir("images", true, 1)], None)).expect("write");
        assert_eq!(written, Companion::Written { subdirs: vec!["images".into()] });
        let back: Value = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(back["subdirectories"]["images"]["main"], true);

        let mut zarr = subdir("images.ome.zarr", true, 1);
        zarr.backend = Backend::Zarr;
        let skipped = write(dir.path(), &plate(vec![zarr], None)).expect("skip");
        assert!(matches!(skipped, Companion::NotWritten(ref why) if why.contains("OME-Zarr")), "{skipped:?}");
        assert!(!path.exists(), "the earlier file describes another output");
        // Nothing to remove is no error.
        let mut zarr = subdir("images.ome.zarr", true, 1);
        zarr.backend = Backend::Zarr;
        assert!(matches!(write(dir.path(), &plate(vec![zarr], None)), Ok(Companion::NotWritten(_))));
    }
}
