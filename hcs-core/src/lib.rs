//! hcs-core: the contracts behind the hcs attributes — all a processing function compiles against.
//!
//! Data flows one way: an attribute (`hcs-macros`) generates a static [`FunctionContract`] and a
//! type-erased invoker; `linkme` gathers the contracts of every linked crate into
//! [`registry::FUNCTIONS`]; the [`Registry`] indexes them by name and memory type for the
//! pipeline compiler (`hcs-plan`). Planning, plates, devices, execution and storage live in the
//! crates beside this one; none of them is a dependency of this crate. See ARCHITECTURE.md at the repository root.
#![deny(missing_docs)]

// Lets generated code name `::hcs_core::__private` inside this crate too.
extern crate self as hcs_core;

pub mod contract;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device_error;
pub mod error;
pub mod gpu;
pub mod labels;
pub mod memory_type;
pub mod params;
pub mod registry;
pub mod rules;
pub mod special;
pub mod stack;
pub mod testing;
#[cfg(feature = "torch")]
pub mod torch;
pub mod value_rule;

pub use contract::{FunctionContract, InvokeOutput, Invoker, PlaneCount, SourceLocation, ViewsInvoker};
pub use device_error::DeviceError;
pub use error::{InvokeError, MaterializeError, ParamError};
pub use gpu::{GpuDevice, GpuInventory};
pub use params::{ParamMap, ParamSpec, ParamType, ParamValue, PipelineParam};
pub use registry::{Registry, RegistryError};
pub use rules::{
    CheckOutcome, ImageGeometry, MemoryEstimate, OutputShape, ParamCheck, PixelOrigin, PixelScale, PlaneShape,
};
pub use special::{
    ByteSink, FileSink, MaterializeResult, MaterializeTarget, SpecialData, SpecialInputs, SpecialKey, SpecialValue,
};
pub use stack::{Conversion, CudaStack, MemoryType, NdarrayStack, Stack, TorchStack};
pub use value_rule::ValueRule;

/// Items the generated code refers to. Not a public API: names and signatures change freely.
#[doc(hidden)]
pub mod __private;
