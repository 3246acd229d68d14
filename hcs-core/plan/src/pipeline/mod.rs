//! Pipelines: steps of function patterns, built in Rust or read from TOML files, their layered
//! configuration, and the checks that need no plate. The compiler (`crate::compiler`) builds on
//! these.

pub mod check;
pub mod config;
pub mod const_text;
pub mod const_values;
pub mod error;
pub mod file;
pub mod pattern;
pub mod step;
pub mod wiring;

pub use check::{
    Broken, broken_rule, broken_rules, check_config, check_functions, check_special_io, check_wells, config_errors,
    describe_values, params_valid, pipeline_config_errors, step_calls, step_config_errors,
};
pub use config::{
    Config, ConfigError, ConfigLayer, ConfigReadError, FallbackPolicy, GpuPolicy, Workers, ZarrCompression,
};
pub use error::{Line, PipelineError, Span, StepRef};
pub use file::{SourceMap, line_of};
pub use pattern::{FunctionCall, FunctionPattern, dict_key_matches};
pub use step::{FunctionStep, InputSource, Materialize, Pipeline};
pub use wiring::{Link, PLATE_SUPPLIED_INPUTS, PlateInput, PlateInputError, StepShape};
