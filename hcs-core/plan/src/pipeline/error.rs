//! What can be wrong with a pipeline before any plate is involved.

use std::fmt;

/// A place in a pipeline file: its 1-based line and byte range, from the TOML parser's spans
/// (32-bit: a pipeline file is small, and errors stay small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// 1-based line of the start.
    pub line: u32,
    /// Byte offset of the start.
    pub start: u32,
    /// Byte offset just past the end.
    pub end: u32,
}

/// Where in a pipeline file a problem is, or nothing for pipelines built in Rust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Line(pub Option<Span>);

impl Line {
    /// The 1-based line, if known.
    pub fn number(&self) -> Option<usize> {
        self.0.map(|s| s.line as usize)
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(span) => write!(f, "line {}: ", span.line),
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
    /// Parameter values that break one of the function's rules (`#[check(..)]`), checked on the
    /// values alone or, with a plate, on the images the step receives.
    #[error("{at}{step}: `{function}` {}: {rule}", parameters(params))]
    BrokenRule {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The function.
        function: String,
        /// The parameters the rule reads, with their values (`low_percentile = 99, high_percentile = 1`).
        params: String,
        /// The rule and its message.
        rule: String,
    },
    /// One call of a step needs more memory than the step may use (`memory_budget_mib`, or the
    /// smallest GPU's memory for a step that may run on one).
    #[error("{at}{step}: `{function}` {message}")]
    OverBudget {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The function.
        function: String,
        /// The estimate, what it depends on, and the limit.
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
    /// A special input linked to a call of the same step that runs in another dict entry: each
    /// group runs only the entries its `group_by` value selects, in no defined order, so one
    /// entry's special outputs never reach another entry (nor a call after the dict).
    #[error("{at}{step}: {link}")]
    DictEntryLink {
        /// Where (the consumer's line).
        at: Line,
        /// The step.
        step: StepRef,
        /// The two calls and the key.
        link: Box<EntryLink>,
    },
    /// A configuration value that cannot be used (`step` is `None` for the run and global layers).
    #[error("{at}{}{message}", step.as_ref().map(|s| format!("{s}: ")).unwrap_or_default())]
    Config {
        /// Where.
        at: Line,
        /// The step whose layer it is, if any.
        step: Option<StepRef>,
        /// What is wrong.
        message: String,
    },
    /// A special output would be produced by several calls of one well without `merge_outputs`.
    #[error(
        "{at}{step}: `{function}` produces special output `{key}` once per group, and this step runs {groups}; the values would overwrite each other. Add `merge_outputs = [\"{key}\"]` to keep one per group, or stack those components with `variable_components`"
    )]
    MultiGroupProducer {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The producer.
        function: String,
        /// The key.
        key: String,
        /// How many groups per well, and why (e.g. `6 groups per well (2 channel values × 3 z_index values)`).
        groups: String,
    },
    /// A dict pattern key that is not a value of the routing component at that step.
    #[error("{at}{step}: dict key \"{key}\" is not a {component} value at this step (present: {present}){}", note.as_ref().map(|n| format!("; {n}")).unwrap_or_default())]
    DictKey {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The key.
        key: String,
        /// The routing component.
        component: hcs_plate::Component,
        /// The values present, comma-separated.
        present: String,
        /// Why the values differ from the plate's (an earlier collapsing step).
        note: Option<String>,
    },
    /// A special output declared in `merge_outputs` is not produced by the step, or is consumed.
    #[error("{at}{step}: {message}")]
    Special {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// What is wrong.
        message: String,
    },
    /// Two connected calls whose memory types have no conversion in this build.
    #[error("{at}{step}: `{function}` takes {to} stacks, but gets {from} from {source_desc}, and this build has no {from} → {to} conversion{}", hint(*from, *to))]
    NoConversion {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// The consumer.
        function: String,
        /// The source's memory type.
        from: hcs_core::stack::MemoryType,
        /// The consumer's memory type.
        to: hcs_core::stack::MemoryType,
        /// What produces the stack (`tophat` or `storage`).
        source_desc: String,
    },
    /// A function needs a GPU (or its CPU variant) that the policy and the machine do not give.
    #[error("{at}{step}: {message}")]
    Gpu {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// What is missing.
        message: String,
    },
    /// Two persistent outputs would share a folder, or one would land inside the input plate.
    #[error("{at}{step}: {message}")]
    OutputCollision {
        /// Where.
        at: Line,
        /// The step.
        step: StepRef,
        /// Which paths collide.
        message: String,
    },
}

impl PipelineError {
    /// Where in the pipeline file the problem is (for a source snippet).
    pub fn at(&self) -> Line {
        match self {
            PipelineError::File { at, .. } => *at,
            PipelineError::Empty => Line(None),
            PipelineError::UnknownFunction { at, .. } => *at,
            PipelineError::UnknownParameter { at, .. } => *at,
            PipelineError::BadParameter { at, .. } => *at,
            PipelineError::BrokenRule { at, .. } => *at,
            PipelineError::OverBudget { at, .. } => *at,
            PipelineError::MissingParameter { at, .. } => *at,
            PipelineError::Grouping { at, .. } => *at,
            PipelineError::UnknownWell { at, .. } => *at,
            PipelineError::MissingSpecialInput { at, .. } => *at,
            PipelineError::DuplicateProducer { at, .. } => *at,
            PipelineError::DictEntryLink { at, .. } => *at,
            PipelineError::Config { at, .. } => *at,
            PipelineError::MultiGroupProducer { at, .. } => *at,
            PipelineError::DictKey { at, .. } => *at,
            PipelineError::Special { at, .. } => *at,
            PipelineError::NoConversion { at, .. } => *at,
            PipelineError::Gpu { at, .. } => *at,
            PipelineError::OutputCollision { at, .. } => *at,
        }
    }
}

/// A special input of one call linked to another call of the same step that runs in a dict
/// entry the consumer does not run in ([`PipelineError::DictEntryLink`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryLink {
    /// The special key.
    pub key: String,
    /// The producing function.
    pub producer: String,
    /// The producer's dict path: the dict keys on its way through the pattern, outermost first.
    pub producer_path: Vec<String>,
    /// The consuming function.
    pub consumer: String,
    /// The consumer's dict path (empty when it runs outside every dict).
    pub consumer_path: Vec<String>,
}

impl fmt::Display for EntryLink {
    /// The shared wiring rule's text, as `pipeline!` reports it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn path(p: &[String]) -> Vec<&str> {
            p.iter().map(String::as_str).collect()
        }
        let (producer_path, consumer_path) = (path(&self.producer_path), path(&self.consumer_path));
        let text = super::wiring::entry_link_message(
            &self.key,
            &self.producer,
            &producer_path,
            &self.consumer,
            &consumer_path,
        );
        f.write_str(text.as_str())
    }
}

fn hint(from: hcs_core::stack::MemoryType, to: hcs_core::stack::MemoryType) -> String {
    let features: Vec<&str> = [from, to]
        .iter()
        .filter(|m| m.is_gpu_capable())
        .map(|m| m.name())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if features.is_empty() {
        String::new()
    } else {
        format!(" (build with feature{} {})", if features.len() > 1 { "s" } else { "" }, features.join(", "))
    }
}

/// `parameters a = 1, b = 2 on 64×64 images`, or `on 3 planes per call` for a rule that reads
/// no parameter (its `params` then starts with `on`).
fn parameters(params: &str) -> String {
    if params.starts_with("on ") { params.to_string() } else { format!("parameters {params}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broken(params: &str) -> String {
        PipelineError::BrokenRule {
            at: Line(None),
            step: StepRef { index: 4, name: "tile positions".into() },
            function: "ashlar_compute_tile_positions".into(),
            params: params.into(),
            rule: "one call must receive exactly the well's tiles".into(),
        }
        .to_string()
    }

    #[test]
    fn a_broken_rule_names_its_parameters_or_only_what_the_call_receives() {
        assert_eq!(
            broken("on 3 planes per call"),
            "step 4 `tile positions`: `ashlar_compute_tile_positions` on 3 planes per call: one call must receive exactly the well's tiles"
        );
        assert!(broken("overlap = 0.1 on 3 planes per call").contains("` parameters overlap = 0.1 on 3 planes"));
    }
}
