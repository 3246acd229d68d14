//! hcs-plan: pipelines and the pipeline compiler.
//!
//! [`pipeline`] holds the model (steps of function patterns, built in Rust or read from TOML
//! files), layered configuration, the wiring rules and the checks that need no plate;
//! [`compiler`] runs the five phases that turn a pipeline, a plate's facts and a GPU inventory
//! into one frozen plan per well. Planning is pure: nothing here probes hardware, reads pixels
//! or runs a function.
#![deny(missing_docs)]

// Lets generated code name `::hcs_plan::__private` inside this crate too.
extern crate self as hcs_plan;

pub mod compiler;
pub mod pipeline;

#[doc(hidden)]
pub mod __private;
