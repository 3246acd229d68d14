//! The processing functions scientists put in their pipelines, each annotated with its contract.
//!
//! CPU implementations take and return `ndarray::Array3<f32>` `[planes, y, x]` holding raw sample
//! values (see ARCHITECTURE.md, "Stacks and dtypes"). They are parallel over planes or rows with
//! rayon.
//!
//! Each family is a module holding its backend twins side by side: the ndarray version in
//! `<family>/mod.rs` (with the shared types and parameter docs), its torch variant in
//! `<family>/torch.rs` (feature `torch`) and its cuda variant in `<family>/cuda.rs` (feature
//! `cuda`), all registered under the same names. Plumbing the device variants share lives in
//! `torch_support.rs` and `cuda_support/` (with the CUDA C source, `kernels.cu`).
#![deny(missing_docs)]

pub mod binning;
mod boundary;
pub mod cells;
mod checks;
pub mod composite;
pub mod crop;
mod csv_table;
#[cfg(feature = "cuda")]
mod cuda_support;
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
mod torch_support;
pub mod vector;

pub use error::KernelError;
