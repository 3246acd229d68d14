//! Microscope formats: detect a plate's format, read its metadata, and build its component
//! index. Reading never writes inside the input plate.

pub mod htd;
pub mod imagexpress;
pub mod metamorph;
pub mod native;
pub mod ome_zarr;
pub mod openhcs;
pub mod openhcs_write;
pub mod opera_phenix;

use std::path::{Path, PathBuf};

use crate::{FormatKind, IndexError, Plate};

/// A plate that cannot be read, naming the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The directory does not exist or is not a directory.
    #[error("{}: {}", .0.display(), if .0.exists() { "not a directory" } else { "no such folder" })]
    NotADirectory(PathBuf),
    /// No known format's marker files were found.
    #[error(
        "{}: no plate format recognised (looked for an ImageXpress .HTD, an Opera Phenix Images/Index.xml, hcs's metadata file, OME-Zarr plate metadata and OpenHCS's openhcs_metadata.json){hint}",
        path.display()
    )]
    Unrecognised {
        /// The folder given.
        path: PathBuf,
        /// Where a plate is instead (a folder one level down, the parent), as a sentence
        /// starting with `; `, or empty.
        hint: String,
    },
    /// A plate whose image folders hold TIFF files, none named like the format's images.
    #[error(
        "{}: {tiffs} TIFF file{} found, but none is named like an {format} image ({pattern}), e.g. {examples}",
        path.display(),
        if *tiffs == 1 { "" } else { "s" }
    )]
    NoImageNames {
        /// The plate root.
        path: PathBuf,
        /// The format.
        format: &'static str,
        /// The names it reads, in words.
        pattern: &'static str,
        /// How many TIFF files there are.
        tiffs: usize,
        /// The first few, relative to the plate root.
        examples: String,
    },
    /// The format's metadata file is missing.
    #[error("{path}: {format} plate has no {what}")]
    MissingMetadata {
        /// The plate root.
        path: PathBuf,
        /// The format asked for.
        format: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// The metadata file cannot be parsed.
    #[error("{path}: {message}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An OME-Zarr array or group that the metadata names is missing.
    #[error("{path}: named by the OME-Zarr metadata, but there is no Zarr array or group there")]
    MissingZarrNode {
        /// The missing array or group.
        path: PathBuf,
    },
    /// An image array whose sample type hcs does not read.
    #[error("{path}: unsupported data type {dtype} (hcs reads uint8, uint16 and float32)")]
    UnsupportedDtype {
        /// The array.
        path: PathBuf,
        /// The data type it declares.
        dtype: String,
    },
    /// An image whose axes hcs does not read.
    #[error("{path}: unsupported axes [{axes}]: {reason}")]
    UnsupportedAxes {
        /// The image group (or its array).
        path: PathBuf,
        /// The axis names, comma-separated.
        axes: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A directory entry cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The images do not form a consistent index.
    #[error("{path}: {source}")]
    Index {
        /// The plate root.
        path: PathBuf,
        /// The problem.
        source: IndexError,
    },
    /// An image file cannot be read.
    #[error(transparent)]
    Image(#[from] hcs_vfs::VfsError),
}

impl FormatError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FormatError::Io { path: path.into(), source }
    }
}

/// Which format a plate directory holds.
pub fn detect(root: &Path) -> Result<FormatKind, FormatError> {
    if !root.is_dir() {
        return Err(FormatError::NotADirectory(root.to_path_buf()));
    }
    // hcs's own metadata first: an output plate may sit beside (or inside a copy of) raw files.
    if root.join(native::METADATA_FILE).is_file() {
        return Ok(FormatKind::Hcs);
    }
    // A Zarr group with plate metadata at the root (ome-zarr-py, bioformats2raw, …). Unreadable
    // metadata is reported only if no other format matches either.
    let zarr = ome_zarr::is_plate(root);
    if let Ok(true) = zarr {
        return Ok(FormatKind::OmeZarr);
    }
    if htd::find_htd(root)?.is_some() {
        return Ok(FormatKind::Imagexpress);
    }
    if opera_phenix::find_index(root).is_some() {
        return Ok(FormatKind::OperaPhenix);
    }
    // After the microscopes' own files: OpenHCS also writes its metadata into the input plates
    // it processes, which are then still read as what they are.
    if openhcs::is_plate(root) {
        return Ok(FormatKind::Openhcs);
    }
    zarr?;
    Err(FormatError::Unrecognised { path: root.to_path_buf(), hint: where_a_plate_is(root) })
}

/// Whether `dir` holds a format's marker (what [`detect`] looks for), errors taken as no.
fn has_marker(dir: &Path) -> bool {
    dir.join(native::METADATA_FILE).is_file()
        || matches!(ome_zarr::is_plate(dir), Ok(true))
        || matches!(htd::find_htd(dir), Ok(Some(_)))
        || opera_phenix::find_index(dir).is_some()
        || openhcs::is_plate(dir)
}

/// Where a plate is when `root` is not one: folders one level down that are (the first few of
/// the first 1000 entries), else the parent folder if it is one — as `; …`, or empty.
fn where_a_plate_is(root: &Path) -> String {
    let mut below: Vec<String> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .take(1000)
                .map(|e| e.path())
                .filter(|p| p.is_dir() && has_marker(p))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    below.sort();
    if let Some(first) = below.first() {
        let more = if below.len() > 1 { format!(" (and {} more)", below.len() - 1) } else { String::new() };
        return format!("; one level down, {} is a plate{more}: pass that folder", root.join(first).display());
    }
    match root.parent().filter(|p| !p.as_os_str().is_empty() && has_marker(p)) {
        Some(parent) => format!("; the folder above, {}, is a plate: pass that folder", parent.display()),
        None => String::new(),
    }
}

/// Open a plate, detecting its format unless one is given.
pub fn open_plate(root: &Path, format: Option<FormatKind>) -> Result<Plate, FormatError> {
    let format = match format {
        Some(f) => f,
        None => detect(root)?,
    };
    match format {
        FormatKind::Imagexpress => imagexpress::read(root),
        FormatKind::OperaPhenix => opera_phenix::read(root),
        FormatKind::Hcs => native::read(root),
        FormatKind::OmeZarr => ome_zarr::read(root, true),
        FormatKind::Openhcs => openhcs::read(root, true),
    }
}

/// Open a plate from its metadata and file names alone, reading no image: the component index
/// is built as by [`open_plate`], but the tile shape and dtype are only what a metadata file
/// declares (`None` for ImageXpress and Opera Phenix; the level-0 array's for OME-Zarr). For checking a plate whose images may be
/// damaged (`hcs check --deep`): [`open_plate`] decodes the first image and fails if it is.
pub fn open_plate_unread(root: &Path, format: Option<FormatKind>) -> Result<Plate, FormatError> {
    let format = match format {
        Some(f) => f,
        None => detect(root)?,
    };
    match format {
        FormatKind::Imagexpress => imagexpress::read_with(root, false),
        FormatKind::OperaPhenix => opera_phenix::read_with(root, false),
        FormatKind::Hcs => native::read(root),
        FormatKind::OmeZarr => ome_zarr::read(root, false),
        FormatKind::Openhcs => openhcs::read(root, false),
    }
}

/// The entries of a directory, sorted by name, with errors naming the directory.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>, FormatError> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| FormatError::io(dir, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FormatError::io(dir, e))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    Ok(entries)
}

/// Shape and dtype of the first readable plane of an index (read once, to describe the
/// plate). A first image that cannot be read (a link to nowhere, a truncated file) fails its
/// well when the run reads it, not the whole plate here; only when none of the first
/// [`PLANES_TRIED`] can be read is the first one's error the plate's. Not silently: where the
/// first plane could not be read, its error comes back too, for the plate's disagreements.
pub(crate) fn first_plane_shape(
    root: &Path,
    index: &crate::ComponentIndex,
) -> Result<(FirstPlane, Option<String>), FormatError> {
    let mut first_error = None;
    for (_, plane) in index.iter().take(PLANES_TRIED) {
        match plane.load(root) {
            Ok(p) => {
                let skipped = first_error.map(|e: hcs_vfs::VfsError| {
                    format!("{e}: the plate is described from its first readable image, and this image's well fails when it is read")
                });
                return Ok(((Some(p.dim()), Some(p.dtype())), skipped));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(((None, None), None)), |e| Err(e.into()))
}

/// Planes [`first_plane_shape`] tries before it gives up on describing the plate.
const PLANES_TRIED: usize = 16;

/// `(tile shape, dtype)` of a plate's first plane.
pub(crate) type FirstPlane = (Option<(usize, usize)>, Option<hcs_vfs::Dtype>);

/// Build the index of a plate's planes and check that it is non-empty and complete; errors name
/// the plate.
pub(crate) fn checked_index(
    root: &Path,
    entries: impl IntoIterator<Item = (crate::ImageKey, crate::PlaneRef)>,
) -> Result<crate::ComponentIndex, FormatError> {
    let err = |source| FormatError::Index { path: root.to_path_buf(), source };
    let index = crate::ComponentIndex::build(entries).map_err(err)?;
    if index.is_empty() {
        return Err(err(IndexError::Empty(root.to_path_buf())));
    }
    index.check_complete().map_err(err)?;
    Ok(index)
}

/// A plate from its index and what the format's metadata says: channels named by
/// `channel_name`, tile shape and dtype read from the first plane (unless `read_first_plane` is
/// false: then they are `None`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_plate(
    root: &Path,
    read_first_plane: bool,
    index: crate::ComponentIndex,
    format: FormatKind,
    name: String,
    grid: Option<(u32, u32)>,
    pixel_size_um: Option<f64>,
    channel_name: impl Fn(u32) -> String,
) -> Result<Plate, FormatError> {
    let channels = index
        .values(crate::Component::Channel)
        .into_iter()
        .map(|c| crate::ChannelInfo { index: c, name: channel_name(c) })
        .collect();
    let ((tile_shape, dtype), skipped) =
        if read_first_plane { first_plane_shape(root, &index)? } else { ((None, None), None) };
    let disagreements: Vec<String> =
        if read_first_plane { skipped.into_iter().chain(unread_pages(root, &index)).collect() } else { Vec::new() };
    let metadata = crate::PlateMetadata {
        format,
        name,
        grid,
        pixel_size_um,
        z_spacing_um: None,
        site_step_um: (None, None),
        channels,
        tile_shape,
        dtype,
    };
    Ok(Plate { root: root.to_path_buf(), metadata, index, unmatched: Vec::new(), disagreements })
}

/// When the plate's first image file holds more full-size images than the plate reads from it
/// (a z-stack saved as one multi-page TIFF, in a format that names one image per file), what
/// is not read, in words. Only the first file is read here (its header); `hcs check --deep`
/// looks at every file.
fn unread_pages(root: &Path, index: &crate::ComponentIndex) -> Option<String> {
    let Some((_, crate::PlaneRef::File { path, .. })) = index.iter().next() else { return None };
    let header = hcs_vfs::tiff::read_tiff_header(&root.join(path)).ok()?;
    let read = index.iter().filter(|(_, p)| matches!(p, crate::PlaneRef::File { path: q, .. } if q == path)).count();
    let read = u32::try_from(read).unwrap_or(u32::MAX);
    (header.pages > read).then(|| {
        format!(
            "{} holds {} full-size images, but the plate's format reads {read} from it: the other pages are not read (a z-stack or time series saved as one multi-page TIFF?); `hcs check --plate DIR --deep` lists every such file",
            path.display(),
            header.pages
        )
    })
}
