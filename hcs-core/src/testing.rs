//! Helpers for testing processing functions the way a pipeline calls them: by registered name,
//! with parameters as a pipeline file gives them (defaults filled in by the function's own
//! invoker) and special inputs by key — so a test sees exactly the contract the compiler sees.
//!
//! ```
//! use hcs_core::testing::{call, params, ramp};
//!
//! // `max_projection` is not linked into this doc test; any registered name works the same way.
//! let err = call("no_such_function", ramp(2, 3, 4), &params(&[])).expect_err("unknown");
//! assert_eq!(err.to_string(), "no function `no_such_function` with an ndarray input is registered in this binary");
//! ```

use crate::contract::FunctionContract;
use crate::error::InvokeError;
use crate::memory_type::MemoryType;
use crate::params::{ParamMap, ParamValue};
use crate::registry::Registry;
use crate::special::{SpecialData, SpecialInputs};
use crate::stack::{NdarrayStack, Stack};

/// What a test call gives back: the output stack and the special outputs, in declaration order.
#[derive(Debug)]
pub struct Called {
    /// The output stack.
    pub stack: NdarrayStack,
    /// Special outputs by key.
    pub special_outputs: Vec<(&'static str, SpecialData)>,
}

/// Why a test call failed.
#[derive(Debug, thiserror::Error)]
pub enum TestCallError {
    /// No ndarray variant of that name is linked.
    #[error("no function `{0}` with an ndarray input is registered in this binary")]
    NotRegistered(String),
    /// The function (or its parameter handling) failed.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The function returned a stack that is not an ndarray stack.
    #[error("`{function}` returned a {memory} stack")]
    NotNdarray {
        /// The function.
        function: String,
        /// What it returned.
        memory: MemoryType,
    },
}

/// Parameters from `(name, value)` pairs, as a pipeline file would give them.
pub fn params(pairs: &[(&str, ParamValue)]) -> ParamMap {
    pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect()
}

/// A deterministic test stack `[planes, height, width]`: sample `(p, y, x)` is `p·1000 + y·10 + x`.
pub fn ramp(planes: usize, height: usize, width: usize) -> NdarrayStack {
    NdarrayStack::from_shape_fn((planes, height, width), |(p, y, x)| (p * 1000 + y * 10 + x) as f32)
}

/// The registered ndarray variant of `function`.
pub fn contract(function: &str) -> Result<&'static FunctionContract, TestCallError> {
    Registry::global().get(function, MemoryType::Ndarray).ok_or_else(|| TestCallError::NotRegistered(function.into()))
}

/// Call the registered ndarray function `function` on `stack`, without special inputs.
pub fn call(function: &str, stack: NdarrayStack, params: &ParamMap) -> Result<Called, TestCallError> {
    call_with(function, stack, params, SpecialInputs::new())
}

/// Call the registered ndarray function `function` on `stack` with special inputs.
pub fn call_with(
    function: &str,
    stack: NdarrayStack,
    params: &ParamMap,
    inputs: SpecialInputs,
) -> Result<Called, TestCallError> {
    let out = contract(function)?.call(Stack::Ndarray(stack), params, &inputs)?;
    #[allow(unreachable_patterns)] // more variants with the torch / cuda features
    match out.stack {
        Stack::Ndarray(stack) => Ok(Called { stack, special_outputs: out.special_outputs }),
        other => Err(TestCallError::NotNdarray { function: function.into(), memory: other.memory_type() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_is_what_its_doc_says_and_params_keep_their_values() {
        let r = ramp(2, 3, 4);
        assert_eq!(r[[1, 2, 3]], 1023.0);
        let p = params(&[("sigma", ParamValue::Float(2.0))]);
        assert_eq!(p.get("sigma"), Some(&ParamValue::Float(2.0)));
        assert!(matches!(call("nothing_here", r, &p), Err(TestCallError::NotRegistered(_))));
    }
}
