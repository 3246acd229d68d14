//! What can be wrong with a pipeline before any plate is involved.

use std::fmt;

/// A line in a pipeline file, or nothing for pipelines built in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Line(pub Option<usize>);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "line {n}: "),
            None => Ok(()),
        }
    }
}

/// A step, named for messages: its 1-based position and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRef {
    /// 1-based position in the pipeline.
    pub index: usize,
    /// The step's name.
    pub name: String,
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} `{}`", self.index, self.name)
    }
}

/// A mistake in a pipeline, found without looking at a plate.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline file is not valid TOML or not shaped like a pipeline.
    #[error("{at}{message}")]
    File {
        /// Where.
        at: Line,
        /// What.
        message: String,
    },
    /// No steps.
    #[error("the pipeline has no steps")]
    Empty,
    /// No function of that name is registered.
    #[error("{at}{step}: unknown function `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownFunction {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The name given.
        name: String,
        /// The closest registered name, if one is close.
        suggestion: Option<String>,
    },
    /// The function has no parameter of that name.
    #[error("{at}{step}: `{function}` has no parameter `{param}` (it takes: {known})")]
    UnknownParameter {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The function.
        function: String,
        /// The parameter given.
        param: String,
        /// The parameters it has, comma-separated.
        known: String,
    },
    /// A value the parameter does not accept.
    #[error("{at}{step}: `{function}` parameter `{param}`: {message}")]
    BadParameter {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The function.
        function: String,
        /// The parameter.
        param: String,
        /// Why the value is not accepted.
        message: String,
    },
    /// A parameter without default was not given.
    #[error("{at}{step}: `{function}` needs parameter `{param}` ({ty}), which has no default")]
    MissingParameter {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The function.
        function: String,
        /// The parameter.
        param: String,
        /// Its type, for the message.
        ty: String,
    },
    /// A dict pattern needs `group_by`, and `group_by` must not be stacked into the call.
    #[error("{at}{step}: {message}")]
    Grouping {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// What is wrong.
        message: String,
    },
    /// A well filter names a well the plate does not have.
    #[error("{at}{step}: materialize names well {well}, which the plate does not have")]
    UnknownWell {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The well.
        well: String,
    },
    /// A special input nothing earlier produces.
    #[error("{at}{step}: `{function}` needs special input `{key}`, but no earlier step produces it{}", later.as_ref().map(|l| format!(" (it is produced only later, by {l})")).unwrap_or_default())]
    MissingSpecialInput {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The consumer.
        function: String,
        /// The key.
        key: String,
        /// A later step that produces it, if any (as `step K `name``).
        later: Option<String>,
    },
    /// Two functions of one step produce the same special output.
    #[error("{at}{step}: special output `{key}` is produced twice in this step (by `{first}` and `{second}`)")]
    DuplicateProducer {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The key.
        key: String,
        /// The first producer.
        first: String,
        /// The second producer.
        second: String,
    },
}
