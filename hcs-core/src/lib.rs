//! hcs-core: the runtime behind the hcs attributes.
//!
//! Data flows one way: an attribute (`hcs-macros`) generates a static [`FunctionContract`] and a
//! type-erased invoker; `linkme` gathers the contracts of every linked crate into
//! [`registry::FUNCTIONS`]; the [`Registry`] indexes them by name and memory type for the
//! pipeline compiler. See ARCHITECTURE.md at the repository root.
#![deny(missing_docs)]

// Lets generated code name `::hcs_core::__private` inside this crate too.
extern crate self as hcs_core;

pub mod compiler;
pub mod contract;
pub mod device;
pub mod error;
pub mod executor;
pub mod formats;
pub mod memory;
pub mod params;
pub mod pipeline;
pub mod plate;
pub mod registry;
pub mod special;
pub mod synth;

pub use contract::{FunctionContract, InvokeOutput, Invoker, PlaneCount, SourceLocation};
pub use device::DeviceError;
pub use error::{InvokeError, MaterializeError, ParamError, RegistryError};
pub use memory::{CudaStack, MemoryType, NdarrayStack, Stack, TorchStack};
pub use params::{ParamMap, ParamSpec, ParamType, ParamValue, PipelineParam};
pub use registry::Registry;
pub use special::{MaterializeResult, MaterializeTarget, SpecialData, SpecialInputs, SpecialKey, SpecialValue};

/// Items the generated code refers to. Not a public API: names and signatures change freely.
#[doc(hidden)]
pub mod __private;
