//! Steps and pipelines, as built in Rust or read from a pipeline file.

use hcs_plate::{Component, WellId};

use super::config::ConfigLayer;
use super::pattern::FunctionPattern;

/// Where a step reads its input from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSource {
    /// The previous step's output (the plate for the first step).
    #[default]
    PreviousStep,
    /// The raw plate, whatever earlier steps wrote (their special outputs stay available).
    PipelineStart,
}

impl InputSource {
    /// The name used in pipeline files.
    pub const fn name(self) -> &'static str {
        match self {
            InputSource::PreviousStep => "previous_step",
            InputSource::PipelineStart => "pipeline_start",
        }
    }

    /// Parse a pipeline-file name.
    pub fn from_name(name: &str) -> Option<Self> {
        [InputSource::PreviousStep, InputSource::PipelineStart].into_iter().find(|s| s.name() == name)
    }
}

/// A checkpoint of a step's output to persistent storage.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Materialize {
    /// Only these wells (all when `None`).
    pub wells: Option<Vec<WellId>>,
}

/// One step: a function pattern applied to every group of planes of every well.
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionStep {
    /// A name for messages and output folders.
    pub name: String,
    /// What is called.
    pub func: FunctionPattern,
    /// The components stacked into one call (default `[site]`).
    pub variable_components: Vec<Component>,
    /// The component whose value routes a dict pattern.
    pub group_by: Option<Component>,
    /// Where the input comes from.
    pub input_source: InputSource,
    /// An optional checkpoint.
    pub materialize: Option<Materialize>,
    /// Special outputs this step may produce once per group (e.g. cell counts per channel): the
    /// values are kept one per group, each materialized to its own file, instead of one per well.
    /// Such a key cannot be a later step's special input.
    pub merge_outputs: Vec<String>,
    /// The step's configuration layer (on top of the global and run layers).
    pub config: ConfigLayer,
}

impl FunctionStep {
    /// A step with the defaults: variable over sites, reading the previous step.
    pub fn new(name: impl Into<String>, func: impl Into<FunctionPattern>) -> Self {
        Self {
            name: name.into(),
            func: func.into(),
            variable_components: vec![Component::Site],
            group_by: None,
            input_source: InputSource::PreviousStep,
            materialize: None,
            merge_outputs: Vec::new(),
            config: ConfigLayer::default(),
        }
    }

    /// Stack these components into one call.
    pub fn variable_components(mut self, components: impl IntoIterator<Item = Component>) -> Self {
        self.variable_components = components.into_iter().collect();
        self
    }

    /// Route dict patterns by this component.
    pub fn group_by(mut self, component: Component) -> Self {
        self.group_by = Some(component);
        self
    }

    /// Read from the raw plate instead of the previous step.
    pub fn from_pipeline_start(mut self) -> Self {
        self.input_source = InputSource::PipelineStart;
        self
    }

    /// Checkpoint this step's output (for `wells`, or all wells).
    pub fn materialize(mut self, wells: Option<Vec<WellId>>) -> Self {
        self.materialize = Some(Materialize { wells });
        self
    }

    /// Let these special outputs be produced once per group (see [`FunctionStep::merge_outputs`]).
    pub fn merge_outputs(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.merge_outputs = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Set the step's configuration layer.
    pub fn config(mut self, layer: ConfigLayer) -> Self {
        self.config = layer;
        self
    }
}

/// An ordered list of steps.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Pipeline {
    /// A name for messages.
    pub name: String,
    /// The steps in execution order.
    pub steps: Vec<FunctionStep>,
    /// The run configuration layer (the file's `[config]`).
    pub config: ConfigLayer,
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), steps: Vec::new(), config: ConfigLayer::default() }
    }

    /// Set the run configuration layer.
    pub fn config(mut self, layer: ConfigLayer) -> Self {
        self.config = layer;
        self
    }

    /// Append a step.
    pub fn step(mut self, step: FunctionStep) -> Self {
        self.steps.push(step);
        self
    }
}
