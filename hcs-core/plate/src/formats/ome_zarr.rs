//! OME-Zarr HCS plates written by other tools (ome-zarr-py, bioformats2raw, …): OME-NGFF 0.4 on
//! Zarr v2 and 0.5 on Zarr v3, the plate metadata at the root group.
//!
//! Wells are those the plate's `wells` list names (a plate's `rows` and `columns` may list more);
//! sites are the fields of each well's `images` list, in order (site 1 is `images[0]`); channels,
//! z-planes and time points are the extents of the level-0 array's `c`, `z` and `t` axes (1 for an
//! axis the image lacks). The pixel size is the level-0 scale of `y`/`x` in their length unit;
//! channel names are `omero.channels[].label`. NGFF plates have no site grid: `grid` is `None`.
//!
//! Every image's metadata and level-0 array header is read when the plate is opened, so an
//! unsupported data type or axis order, a missing array or a path leaving the plate is refused
//! then, with a typed [`FormatError`] naming the file, before any pixel is read.

use std::path::Path;

use hcs_vfs::VfsError;
use hcs_vfs::omezarr::{NgffImage, OmeZarrPlate, well_images};

use super::FormatError;
use crate::{FormatKind, ImageKey, PlaneRef, Plate, WellId};

/// Most planes one field may hold (`t` × `c` × `z`): a bound on the index a header can ask for.
const MAX_PLANES_PER_FIELD: u64 = 1 << 20;

/// Whether `root` is the root group of an OME-Zarr plate (plate metadata, or a bioformats2raw
/// layout).
pub fn is_plate(root: &Path) -> Result<bool, FormatError> {
    hcs_vfs::omezarr::is_plate_root(root).map_err(typed)
}

/// The [`FormatError`] for a metadata problem found by the OME-Zarr reader.
fn typed(e: VfsError) -> FormatError {
    match e {
        VfsError::Zarr { path, message } => FormatError::BadMetadata { path, message },
        VfsError::UnsupportedDtype { path, dtype } => FormatError::UnsupportedDtype { path, dtype },
        VfsError::UnsupportedAxes { path, axes, reason } => FormatError::UnsupportedAxes { path, axes, reason },
        VfsError::NotFound { path, .. } => FormatError::MissingZarrNode { path },
        other => FormatError::Image(other),
    }
}

/// The well at row and column names from the plate metadata (`"B"`, `"3"` → B03).
fn well_id(root: &Path, path: &str, (row, col): &(String, String)) -> Result<WellId, FormatError> {
    format!("{row}{col}").parse().map_err(|_| FormatError::BadMetadata {
        path: root.join(path),
        message: format!(
            "row `{row}` and column `{col}` do not name a well (expected a row letter and a column number)"
        ),
    })
}

/// The planes of the OME-Zarr plate at `store` (relative to `root`, the plate being read; empty
/// when the plate is the store), each under its key (site = field + 1, channel = c + 1, …).
pub(crate) struct StorePlanes {
    /// Every plane, its reference naming `store`.
    pub entries: Vec<(ImageKey, PlaneRef)>,
    /// The first image's metadata (`None` for a plate without images).
    pub first: Option<NgffImage>,
    /// The plate's `name`, if it has one.
    pub name: Option<String>,
}

/// List the planes of the OME-Zarr plate at `root/store`, reading every image's metadata and
/// level-0 array header but no pixel.
pub(crate) fn store_planes(root: &Path, store: &Path) -> Result<StorePlanes, FormatError> {
    let store_root = root.join(store);
    let plate = OmeZarrPlate::open(&store_root).map_err(typed)?;
    let mut entries = Vec::new();
    let mut first: Option<NgffImage> = None;
    for (well_path, position) in plate.wells.iter().zip(&plate.well_positions) {
        let well = well_id(&store_root, well_path, position)?;
        for (field, image_path) in well_images(&store_root, well_path).map_err(typed)?.iter().enumerate() {
            let image = NgffImage::open(&store_root, image_path).map_err(typed)?;
            let (ts, cs, zs) = (image.extent('t'), image.extent('c'), image.extent('z'));
            let too_many = ts.checked_mul(cs).and_then(|n| n.checked_mul(zs)).is_none_or(|n| n > MAX_PLANES_PER_FIELD);
            let (Ok(field), Ok(ts), Ok(cs), Ok(zs), false) =
                (u32::try_from(field), u32::try_from(ts), u32::try_from(cs), u32::try_from(zs), too_many)
            else {
                return Err(FormatError::BadMetadata {
                    path: store_root.join(&image.array),
                    message: format!(
                        "{ts} × {cs} × {zs} planes (t × c × z) is above the limit of {MAX_PLANES_PER_FIELD}"
                    ),
                });
            };
            for t in 0..ts {
                for c in 0..cs {
                    for z in 0..zs {
                        let key = ImageKey { well, timepoint: t + 1, site: field + 1, channel: c + 1, z: z + 1 };
                        let plane =
                            PlaneRef::Zarr { store: store.to_path_buf(), well: well_path.clone(), field, t, c, z };
                        entries.push((key, plane));
                    }
                }
            }
            first.get_or_insert(image);
        }
    }
    Ok(StorePlanes { entries, first, name: plate.name })
}

/// Read an OME-Zarr plate. With `read_first_plane`, the first plane is decoded (as for every
/// format, so a damaged plate fails here); without, the tile shape and dtype are those the first
/// level-0 array declares.
pub fn read(root: &Path, read_first_plane: bool) -> Result<Plate, FormatError> {
    let StorePlanes { entries, first, name } = store_planes(root, Path::new(""))?;
    let index = super::checked_index(root, entries)?;
    let name = name.unwrap_or_else(|| plate_name_from_dir(root));
    let (pixel_size_um, names) = first.as_ref().map(|i| (i.pixel_size_um, i.channel_names.clone())).unwrap_or_default();
    let z_spacing_um = first.as_ref().and_then(|i| i.z_spacing_um);
    let channel_name = |c: u32| {
        (c as usize)
            .checked_sub(1)
            .and_then(|i| names.get(i))
            .cloned()
            .flatten()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("channel {c}"))
    };
    let mut out = super::finish_plate(
        root,
        read_first_plane,
        index,
        FormatKind::OmeZarr,
        name,
        None,
        pixel_size_um,
        channel_name,
    )?;
    out.metadata.z_spacing_um = z_spacing_um;
    if !read_first_plane && let Some(image) = first {
        out.metadata.tile_shape = Some(image.plane_shape());
        out.metadata.dtype = Some(image.dtype);
    }
    Ok(out)
}

/// The directory name without `.ome.zarr` / `.zarr`.
fn plate_name_from_dir(root: &Path) -> String {
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = name.strip_suffix(".zarr").unwrap_or(&name);
    name.strip_suffix(".ome").unwrap_or(name).to_owned()
}
