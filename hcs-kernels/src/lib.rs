//! The processing functions scientists put in their pipelines, each annotated with its contract.
//!
//! CPU implementations take and return `ndarray::Array3<f32>` `[planes, y, x]` holding raw sample
//! values (see ARCHITECTURE.md, "Stacks and dtypes"). They are parallel over planes or rows with
//! rayon.
#![deny(missing_docs)]

pub mod binning;
mod boundary;
pub mod cells;
pub mod composite;
pub mod crop;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod equalize;
pub mod error;
pub mod flatfield;
pub mod gaussian;
pub mod morphology;
pub mod normalize;
pub mod projection;
mod separable;
pub mod sharpen;
pub mod stitch;
#[cfg(feature = "torch")]
pub mod torch;

pub use error::KernelError;
