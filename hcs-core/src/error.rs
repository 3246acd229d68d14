//! Error types of hcs-core.

use crate::memory_type::MemoryType;

/// A parameter value that does not fit the parameter's type.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The value has the wrong kind.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the parameter accepts.
        expected: String,
        /// The value given.
        found: String,
    },
    /// The value has the right kind but is out of range.
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange {
        /// The value given.
        value: String,
        /// What the parameter accepts.
        expected: String,
    },
    /// A rule needs a parameter that has no value and no default.
    #[error("parameter `{param}` has no value")]
    Missing {
        /// The parameter.
        param: String,
    },
}

/// A failure while calling a function through its erased invoker.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The stack handed to the function has another memory type (a planning bug: the compiler
    /// inserts conversions).
    #[error("function `{function}` takes a {expected} stack, but was given a {found} stack")]
    WrongMemoryType {
        /// The function.
        function: &'static str,
        /// Its input memory type.
        expected: MemoryType,
        /// The stack's memory type.
        found: MemoryType,
    },
    /// A required parameter has no value.
    #[error("function `{function}` needs parameter `{param}`, which has no default")]
    MissingParam {
        /// The function.
        function: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// A parameter value does not fit its type.
    #[error("function `{function}`, parameter `{param}`: {source}")]
    BadParam {
        /// The function.
        function: &'static str,
        /// The parameter.
        param: String,
        /// What is wrong with the value.
        source: ParamError,
    },
    /// The parameters break one of the function's `#[check]` rules.
    #[error("function `{function}`: {rule}")]
    RuleBroken {
        /// The function.
        function: &'static str,
        /// The rule and its message.
        rule: String,
    },
    /// A parameter the function does not have.
    #[error("function `{function}` has no parameter `{param}`")]
    UnknownParam {
        /// The function.
        function: &'static str,
        /// The parameter given.
        param: String,
    },
    /// A declared special input was not provided.
    #[error("function `{function}` needs special input `{key}`, but none was provided")]
    MissingSpecialInput {
        /// The function.
        function: &'static str,
        /// The key.
        key: &'static str,
    },
    /// A special input has another type than the function declares.
    #[error("function `{function}`: special input `{key}` should be `{expected}`, but is `{found}`")]
    SpecialInputType {
        /// The function.
        function: &'static str,
        /// The key.
        key: &'static str,
        /// The declared type.
        expected: &'static str,
        /// The provided type.
        found: &'static str,
    },
    /// A plane-views form was handed no planes, or planes of different shapes (no stack could
    /// hold them).
    #[error("function `{function}`: its plane-views form needs planes of one shape, got {shapes}")]
    UnequalPlanes {
        /// The function.
        function: &'static str,
        /// The planes' shapes, as `h×w` (or `none`).
        shapes: String,
    },
    /// The function itself returned an error.
    #[error("function `{function}` failed: {source}")]
    Function {
        /// The function.
        function: &'static str,
        /// Its error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A failure while writing a special output to storage.
#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The value could not be encoded.
    #[error("cannot encode special output: {0}")]
    Encode(String),
}
