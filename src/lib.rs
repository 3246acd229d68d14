//! # hcs — high-content-screening pipelines in Rust
//!
//! Processing functions declare their contracts with attributes that rustc checks; every
//! annotated function of every linked crate lands in one [`Registry`].
//!
//! ```
//! use hcs::prelude::*;
//!
//! /// Multiply every pixel by a gain.
//! #[memory(ndarray)]
//! pub fn gain(stack: NdarrayStack, #[param(default = 2.0, doc = "multiplier")] factor: f32) -> NdarrayStack {
//!     stack * factor
//! }
//!
//! // The function is still plain Rust...
//! let out = gain(ndarray::Array3::ones((1, 2, 2)), 3.0);
//! assert_eq!(out[[0, 1, 1]], 3.0);
//! // ...and its contract is registered.
//! let contract = hcs::Registry::global().get("gain", hcs::MemoryType::Ndarray).expect("registered");
//! assert_eq!(contract.params[0].name, "factor");
//! assert_eq!(gain::FUNC.doc, "Multiply every pixel by a gain.");
//! ```
//!
//! Whole pipelines can be written in Rust with [`pipeline!`]: rustc checks parameter names and
//! types, special-data wiring and dict routing, and the value equals the pipeline file's.
//!
//! ```
//! use hcs::kernels::projection::{ProjectionMethod, create_projection};
//! use hcs::kernels::stitch::{assemble::assemble_stack, positions::ashlar_compute_tile_positions};
//!
//! let pipeline = hcs::pipeline! {
//!     name = "mosaic";
//!     step "z flattening" {
//!         variable_components = [z_index];
//!         func = create_projection(method = ProjectionMethod::Max);
//!     }
//!     step "tile positions" { func = ashlar_compute_tile_positions; }
//!     step "assemble" { input_source = pipeline_start; func = assemble_stack; }
//! };
//! let (file, _) = hcs::plan::pipeline::Pipeline::from_toml(
//!     r#"
//!     name = "mosaic"
//!     [[steps]]
//!     name = "z flattening"
//!     variable_components = ["z_index"]
//!     func = { function = "create_projection", params = { method = "max_projection" } }
//!     [[steps]]
//!     name = "tile positions"
//!     func = "ashlar_compute_tile_positions"
//!     [[steps]]
//!     name = "assemble"
//!     input_source = "pipeline_start"
//!     func = "assemble_stack"
//!     "#,
//! )
//! .expect("valid pipeline file");
//! assert_eq!(pipeline, file);
//! ```
#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod report;
#[cfg(feature = "cli")]
pub mod slurm;

// Lets generated code name `::hcs::__private` inside this crate too.
extern crate self as hcs;

pub use hcs_core::params::parse_choice;
pub use hcs_core::{
    CheckOutcome, FunctionContract, ImageGeometry, InvokeError, InvokeOutput, MaterializeError, MaterializeResult,
    MaterializeTarget, MemoryEstimate, MemoryType, NdarrayStack, ParamCheck, ParamError, ParamMap, ParamSpec,
    ParamType, ParamValue, PipelineParam, PlaneCount, PlaneShape, Registry, RegistryError, SpecialData, SpecialInputs,
    SpecialKey, SpecialValue, Stack, ValueRule,
};
pub use hcs_core::{CudaStack, TorchStack};
#[cfg(feature = "runtime")]
pub use hcs_macros::pipeline;
pub use hcs_macros::{
    chain_breaker, check, memory, output_shape, peak_memory, pixel_origin, pixel_scale, special_inputs, special_outputs,
};

/// Contracts, parameters, special data, stack types and the registry (`hcs-core`).
pub use hcs_core as contracts;
/// GPU detection and stack conversions (`hcs-device`).
#[cfg(feature = "runtime")]
pub use hcs_device as device;
/// The executor (`hcs-exec`).
#[cfg(feature = "runtime")]
pub use hcs_exec as exec;
/// The processing functions shipped with hcs. Re-exported so their registrations are linked into
/// every binary that uses this crate.
#[cfg(feature = "runtime")]
pub use hcs_kernels as kernels;
/// Pipelines and the pipeline compiler (`hcs-plan`).
#[cfg(feature = "runtime")]
pub use hcs_plan as plan;
/// Plates and plate formats (`hcs-plate`).
#[cfg(feature = "runtime")]
pub use hcs_plate as plate;
/// Synthetic plates with ground truth (`hcs-synth`).
#[cfg(feature = "runtime")]
pub use hcs_synth as synth;
/// Storage (`hcs-vfs`).
#[cfg(feature = "runtime")]
pub use hcs_vfs as vfs;

/// Helpers for testing processing functions by registered name (`hcs-core`'s `testing`).
pub use hcs_core::testing;

/// `ndarray`, re-exported so plugin crates need not pin their own version.
pub use ndarray;
/// `serde`, re-exported so plugin crates need not pin their own version.
pub use serde;

#[doc(hidden)]
pub mod __private {
    pub use hcs_core::__private::*;
    #[cfg(feature = "runtime")]
    pub use hcs_plan::__private::*;
}

/// Everything needed to write a processing function: `use hcs::prelude::*;`.
pub mod prelude {
    pub use hcs_core::{
        CudaStack, MaterializeError, MaterializeResult, MaterializeTarget, NdarrayStack, PipelineParam, TorchStack,
    };
    pub use hcs_macros::{
        chain_breaker, check, memory, output_shape, peak_memory, pixel_origin, pixel_scale, special_inputs,
        special_outputs,
    };
    pub use ndarray;
    pub use serde;
}
