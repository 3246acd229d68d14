//! hcs-vfs: where hcs reads and writes. Every write goes through [`atomic`], so a crash never
//! leaves a file that looks complete but is not.
#![deny(missing_docs)]

pub mod ahead;
pub mod atomic;
mod error;
pub mod fill;
mod lzw_page;
pub mod ome_tiff;
pub mod omezarr;
pub mod plane;
pub mod prefetch;
pub mod setting;
pub mod store;
pub mod thumbnail;
pub mod tiff;
mod tiff_deflate;
mod tiff_tags;

pub use error::VfsError;
pub use plane::{Dtype, PlaneData};
pub use store::{Backend, Data, DiskStore, MemoryStore, Store, ZarrStore};
