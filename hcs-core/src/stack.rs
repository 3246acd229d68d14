//! Memory types and the stack each one hands to a function.
//!
//! One decision for every memory type (see ARCHITECTURE.md, "Stacks and dtypes"):
//! a function receives a 3-D stack `[planes, y, x]` of `f32` holding the *raw* sample values of the
//! input (a u16 pixel of 1234 arrives as 1234.0, never rescaled), and returns a stack of the same
//! kind. Writers convert back to the plate's storage dtype by rounding and clamping to its range —
//! the same rule for every backend.

use ndarray::Array3;

use crate::error::InvokeError;

pub use crate::memory_type::MemoryType;

/// The stack an `#[memory(ndarray)]` function receives: `[planes, y, x]`, f32, raw sample values.
pub type NdarrayStack = Array3<f32>;

/// The stack an `#[memory(torch)]` function receives: a `tch::Tensor` `[N, Y, X]`, f32, on the
/// device the plan assigned (the CPU when the step has no GPU).
#[cfg(feature = "torch")]
pub type TorchStack = tch::Tensor;

/// The stack an `#[memory(torch)]` function receives.
///
/// Without the `torch` feature this is an uninhabited placeholder: code naming it still
/// type-checks, and `#[memory(torch)]` gives one error naming the feature.
#[cfg(not(feature = "torch"))]
#[derive(Debug)]
pub enum TorchStack {}

/// The stack an `#[memory(cuda)]` function receives: device buffer + shape + stream.
#[cfg(feature = "cuda")]
pub use crate::cuda::CudaStack;

/// The stack an `#[memory(cuda)]` function receives.
///
/// Without the `cuda` feature this is an uninhabited placeholder: code naming it still
/// type-checks, and `#[memory(cuda)]` gives one error naming the feature.
#[cfg(not(feature = "cuda"))]
#[derive(Debug)]
pub enum CudaStack {}

/// A memory-type conversion the executor performs (planned by the compiler, done by
/// `hcs-device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conversion {
    /// From this memory type.
    pub from: MemoryType,
    /// To this one.
    pub to: MemoryType,
}

/// A stack of any memory type, as it travels between steps.
#[derive(Debug)]
pub enum Stack {
    /// Host ndarray stack.
    Ndarray(NdarrayStack),
    /// torch tensor on the CPU or a GPU.
    #[cfg(feature = "torch")]
    Torch(TorchStack),
    /// cuda device buffer.
    #[cfg(feature = "cuda")]
    Cuda(CudaStack),
}

impl Stack {
    /// The memory type of this stack.
    pub fn memory_type(&self) -> MemoryType {
        match self {
            Stack::Ndarray(_) => MemoryType::Ndarray,
            #[cfg(feature = "torch")]
            Stack::Torch(_) => MemoryType::Torch,
            #[cfg(feature = "cuda")]
            Stack::Cuda(_) => MemoryType::Cuda,
        }
    }

    /// Number of planes in the stack.
    pub fn planes(&self) -> usize {
        match self {
            Stack::Ndarray(a) => a.shape()[0],
            #[cfg(feature = "torch")]
            Stack::Torch(t) => t.size().first().map_or(0, |&n| n as usize),
            #[cfg(feature = "cuda")]
            Stack::Cuda(c) => c.shape()[0],
        }
    }

    /// Rows and columns of each plane.
    pub fn plane_shape(&self) -> (usize, usize) {
        let dims: Vec<usize> = match self {
            Stack::Ndarray(a) => a.shape().to_vec(),
            #[cfg(feature = "torch")]
            Stack::Torch(t) => t.size().iter().map(|&d| d.max(0) as usize).collect(),
            #[cfg(feature = "cuda")]
            Stack::Cuda(c) => c.shape().to_vec(),
        };
        (dims.get(1).copied().unwrap_or(0), dims.get(2).copied().unwrap_or(0))
    }
}

/// Implemented by the one type an `#[memory(ndarray)]` function takes and returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the stack type of `#[memory(ndarray)]`",
    label = "expected `ndarray::Array3<f32>` here",
    note = "an ndarray function takes and returns `ndarray::Array3<f32>` with axes [planes, y, x] (alias `hcs::NdarrayStack`)"
)]
pub trait NdarrayStackType: Sized {
    /// Take the stack out of the erased form.
    fn from_stack(stack: Stack, function: &'static str) -> Result<Self, InvokeError>;
    /// Put the stack into the erased form.
    fn into_stack(self) -> Stack;
}

/// Implemented by the one type an `#[memory(torch)]` function takes and returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the stack type of `#[memory(torch)]`",
    label = "expected `tch::Tensor` here",
    note = "a torch function takes and returns a `tch::Tensor` of shape [N, Y, X], f32 (alias `hcs::TorchStack`)"
)]
pub trait TorchStackType: Sized {
    /// Take the stack out of the erased form.
    fn from_stack(stack: Stack, function: &'static str) -> Result<Self, InvokeError>;
    /// Put the stack into the erased form.
    fn into_stack(self) -> Stack;
}

/// Implemented by the one type an `#[memory(cuda)]` function takes and returns.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not the stack type of `#[memory(cuda)]`",
    label = "expected `hcs::CudaStack` here",
    note = "a cuda function takes and returns `hcs::CudaStack` (device buffer + shape + stream)"
)]
pub trait CudaStackType: Sized {
    /// Take the stack out of the erased form.
    fn from_stack(stack: Stack, function: &'static str) -> Result<Self, InvokeError>;
    /// Put the stack into the erased form.
    fn into_stack(self) -> Stack;
}

#[cfg(any(feature = "torch", feature = "cuda"))]
macro_rules! erased_stack_type {
    ($trait:ident, $ty:ty, $variant:ident, $memory:expr) => {
        impl $trait for $ty {
            fn from_stack(stack: Stack, function: &'static str) -> Result<Self, InvokeError> {
                #[allow(unreachable_patterns)]
                match stack {
                    Stack::$variant(a) => Ok(a),
                    other => {
                        Err(InvokeError::WrongMemoryType { function, expected: $memory, found: other.memory_type() })
                    }
                }
            }

            fn into_stack(self) -> Stack {
                Stack::$variant(self)
            }
        }
    };
}

// Written out (not through the macro) so rustc's "implemented for" hint points at this line.
impl NdarrayStackType for NdarrayStack {
    fn from_stack(stack: Stack, function: &'static str) -> Result<Self, InvokeError> {
        #[allow(unreachable_patterns)] // more variants exist with the torch / cuda features
        match stack {
            Stack::Ndarray(a) => Ok(a),
            other => Err(InvokeError::WrongMemoryType {
                function,
                expected: MemoryType::Ndarray,
                found: other.memory_type(),
            }),
        }
    }

    fn into_stack(self) -> Stack {
        Stack::Ndarray(self)
    }
}

#[cfg(feature = "torch")]
erased_stack_type!(TorchStackType, TorchStack, Torch, MemoryType::Torch);
#[cfg(feature = "cuda")]
erased_stack_type!(CudaStackType, CudaStack, Cuda, MemoryType::Cuda);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndarray_stack_round_trips_through_the_erased_form() {
        let a = Array3::<f32>::from_shape_fn((2, 3, 4), |(p, y, x)| (p * 100 + y * 10 + x) as f32);
        let erased = a.clone().into_stack();
        assert_eq!(erased.memory_type(), MemoryType::Ndarray);
        assert_eq!(erased.planes(), 2);
        let back = NdarrayStack::from_stack(erased, "f").expect("same memory type");
        assert_eq!(back, a);
    }

    #[test]
    fn memory_type_names_match_attribute_spelling() {
        let names: Vec<_> = MemoryType::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, ["ndarray", "torch", "cuda"]);
        assert_eq!(serde_json::to_string(&MemoryType::Torch).ok().as_deref(), Some("\"torch\""));
    }
}
