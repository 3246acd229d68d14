//! hcs-plate: the plate model (wells, the components of an image, the component index, plate
//! metadata) and the plate formats that read it ([`formats`]: ImageXpress, Opera Phenix, hcs's
//! own output plates, OME-Zarr).
#![deny(missing_docs)]

pub mod formats;
pub mod headers;
pub mod index;
pub mod load;
pub mod metadata;
pub mod stage;
pub mod well;

pub use headers::{HeaderCheck, ImageProblem};
pub use index::{ComponentIndex, IndexError, PlaneRef};
pub use load::{LoadError, Prefetched};
pub use metadata::{ChannelInfo, FormatKind, PlateMetadata};
pub use well::{Component, ImageKey, WellId, WellParseError};

use std::path::PathBuf;

/// An input plate: where it is, what it holds, and the index of its images.
#[derive(Clone, Debug)]
pub struct Plate {
    /// The plate directory (never written to).
    pub root: PathBuf,
    /// Metadata read from the format's files.
    pub metadata: PlateMetadata,
    /// Every image plane, by component.
    pub index: ComponentIndex,
    /// Files and folders among the images that the format's names do not match, relative to
    /// the root: not read, and reported (`hcs check --plate` lists them; `--strict` refuses).
    pub unmatched: Vec<PathBuf>,
    /// Where the plate's metadata and its image files disagree (an `.HTD` naming 3 z-steps
    /// over images of 2): reported like [`Plate::unmatched`].
    pub disagreements: Vec<String>,
}
