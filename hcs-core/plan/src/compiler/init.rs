//! Phase 1, step-plan initialization: resolve each step's configuration layers, apply chain
//! breakers to input sources, plan the persistent locations (final output, checkpoints, results),
//! and link every special input to the latest earlier producer — or, for `grid_dimensions` and
//! `pixel_size`, to a value read from the plate's metadata now. A link to a call of the same step
//! in a dict entry the consumer does not run in is an error ([`entry_reaches`]): each group runs
//! only its own entry, so such a value would never arrive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::pipeline::error::EntryLink;
use crate::pipeline::wiring::{entry_reaches, link};
use crate::pipeline::{
    Config, ConfigLayer, InputSource, Line, Link, Pipeline, PipelineError, SourceMap, StepRef, StepShape, step_calls,
};
use crate::pipeline::{config_errors, pipeline_config_errors, step_config_errors};
use hcs_core::contract::FunctionContract;
use hcs_core::registry::Registry;
use hcs_plate::WellId;
use hcs_vfs::Backend;

use super::plan::{Location, SpecialInputPlan};
use super::plate_info::PlateInfo;

/// A special output as planned before the well is known.
#[derive(Clone, Debug)]
pub struct OutputTemplate {
    /// The producer.
    pub function: String,
    /// Its materializer.
    pub materializer: Option<String>,
    /// Kept per group (`merge_outputs`).
    pub per_group: bool,
}

/// A step's checkpoint before the well is known.
#[derive(Clone, Debug)]
pub struct CheckpointTemplate {
    /// Where.
    pub location: Location,
    /// For these wells only (all when `None`).
    pub wells: Option<Vec<WellId>>,
}

/// Phase-1 result for one step.
#[derive(Clone, Debug)]
pub struct StepInit {
    /// Resolved configuration.
    pub config: Config,
    /// Effective input source.
    pub input_source: InputSource,
    /// The step's checkpoint, if it materializes.
    pub checkpoint: Option<CheckpointTemplate>,
    /// Results folder of its special outputs.
    pub results_dir: PathBuf,
    /// Special inputs, linked.
    pub special_inputs: BTreeMap<String, SpecialInputPlan>,
    /// Special outputs.
    pub special_outputs: BTreeMap<String, OutputTemplate>,
}

/// Phase-1 result.
#[derive(Clone, Debug)]
pub struct Init {
    /// The run-level configuration (defaults → global → run).
    pub run_config: Config,
    /// The final output's storage: the run's, with the last step's own `sub_dir`, `backend`,
    /// `zarr_codec` and `zarr_level` over it where it sets them (the command line over all).
    pub final_config: Config,
    /// The output plate folder.
    pub output_root: PathBuf,
    /// Where the last step writes.
    pub final_location: Location,
    /// Per step.
    pub steps: Vec<StepInit>,
}

/// Input sources after chain breakers: a step after a `#[chain_breaker]` function reads the plate.
pub fn effective_sources(pipeline: &Pipeline, registry: &Registry) -> Vec<InputSource> {
    let mut out = Vec::with_capacity(pipeline.steps.len());
    let mut breaks = false;
    for step in &pipeline.steps {
        out.push(if breaks { InputSource::PipelineStart } else { step.input_source });
        breaks =
            step.func.calls().iter().any(|(_, c)| registry.variants(&c.name).first().is_some_and(|k| k.chain_breaker));
    }
    out
}

/// The persistent location of images written with `config` under `root/sub_dir`. (A `memory`
/// backend is refused by [`ConfigLayer::validate`], so no plan is made with it; it stands for
/// `disk` here.)
pub fn persistent_location(config: &Config, root: &Path, sub_dir: &str) -> Location {
    match config.backend {
        Backend::Disk | Backend::Memory => Location::Disk { dir: root.join(sub_dir) },
        Backend::Zarr => Location::Zarr { store: root.join(format!("{sub_dir}.ome.zarr")) },
    }
}

/// The keys of a step's layer that say how images are stored, alone.
fn storage_keys(layer: &ConfigLayer) -> ConfigLayer {
    ConfigLayer {
        sub_dir: layer.sub_dir.clone(),
        backend: layer.backend,
        zarr_codec: layer.zarr_codec,
        zarr_level: layer.zarr_level,
        ..ConfigLayer::default()
    }
}

/// Run phase 1. Errors are collected, not returned early.
pub fn initialize(
    pipeline: &Pipeline,
    plate: &PlateInfo,
    registry: &Registry,
    [global, overrides]: [&ConfigLayer; 2],
    source: Option<&SourceMap>,
) -> (Init, Vec<PipelineError>) {
    let mut errors = config_errors(global, |_| Line(None), None, "global config: ");
    errors.extend(pipeline_config_errors(pipeline, source));
    errors.extend(config_errors(overrides, |_| Line(None), None, "command line: "));
    let run_config = Config::resolve([global, &pipeline.config, overrides]);
    let output_root = run_config.output_root(&plate.root);
    // The last step's storage keys choose where the final output goes (before this, they were
    // taken for a checkpoint only and ignored without a word on the last step).
    let final_config = match pipeline.steps.last() {
        Some(last) => Config::resolve([global, &pipeline.config, &storage_keys(&last.config), overrides]),
        None => run_config.clone(),
    };
    let final_location = persistent_location(&final_config, &output_root, &final_config.sub_dir);
    let sources = effective_sources(pipeline, registry);

    // Every special input is linked by the rule `pipeline!` checks at compile time.
    let calls = step_calls(pipeline, registry);
    let contracts: Vec<Vec<&FunctionContract>> = calls.iter().map(|s| s.iter().map(|c| c.1).collect()).collect();
    let shapes: Vec<StepShape<'_>> =
        pipeline.steps.iter().zip(&contracts).map(|(step, calls)| StepShape { name: &step.name, calls }).collect();
    let mut steps = Vec::with_capacity(pipeline.steps.len());
    for (i, step) in pipeline.steps.iter().enumerate() {
        let step_ref = StepRef { index: i + 1, name: step.name.clone() };
        let at = Line(source.and_then(|s| s.step_line(i)));
        errors.extend(step_config_errors(&step.config, source, &step_ref));
        let config = Config::resolve([global, &pipeline.config, overrides, &step.config]);
        let root = output_root.clone();
        let checkpoint = step.materialize.as_ref().map(|m| {
            let sub_dir = step.config.sub_dir.clone().unwrap_or_else(|| format!("checkpoints/step{}", i + 1));
            CheckpointTemplate { location: persistent_location(&config, &root, &sub_dir), wells: m.wells.clone() }
        });
        let results_dir = root.join(&config.results_folder);

        let mut special_inputs = BTreeMap::new();
        let mut special_outputs = BTreeMap::new();
        // The dict keys on each call's path (indexed like `step.func.calls()`).
        let paths: Vec<Vec<&str>> = step.func.calls().into_iter().map(|(path, _)| path).collect();
        for (c, &(k, contract, name)) in calls[i].iter().enumerate() {
            let call_at = Line(source.and_then(|s| s.call_line(i, k)).or(at.0));
            for input in contract.special_inputs {
                let ty = (input.type_id)();
                let plan = match link(&shapes, i, c, input.key) {
                    // A call of this step in a dict entry this call does not run in: the rule
                    // `pipeline!` checks with `StepShape::const_check_entry_link`.
                    Link::Produced { step: p, call: pc, .. }
                        if p == i && !entry_reaches(&paths[calls[p][pc].0], &paths[k]) =>
                    {
                        let path = |k: usize| paths[k].iter().map(|s| s.to_string()).collect();
                        errors.push(PipelineError::DictEntryLink {
                            at: call_at,
                            step: step_ref.clone(),
                            link: Box::new(EntryLink {
                                key: input.key.to_string(),
                                producer: calls[p][pc].2.to_string(),
                                producer_path: path(calls[p][pc].0),
                                consumer: name.to_string(),
                                consumer_path: path(k),
                            }),
                        });
                        continue;
                    }
                    Link::Produced { step: p, call: pc, slot } => {
                        let (_, producer, function) = calls[p][pc];
                        let output = &producer.special_outputs[slot];
                        if (output.type_id)() != ty {
                            errors.push(PipelineError::Special {
                                at: call_at,
                                step: step_ref.clone(),
                                message: format!(
                                    "`{name}` takes special input `{}` as `{}`, but `{function}` (step {}) produces `{}`",
                                    input.key,
                                    input.rust_type,
                                    p + 1,
                                    output.rust_type
                                ),
                            });
                        }
                        SpecialInputPlan::Step {
                            step: p + 1,
                            function: function.to_string(),
                            memory_key: format!("special/{}", input.key),
                            by: Vec::new(),
                        }
                    }
                    Link::Plate(supplied) => match supplied.plate_value(plate, ty) {
                        Ok(value) => SpecialInputPlan::Plate { value },
                        Err(why) => {
                            errors.push(PipelineError::Special {
                                at: call_at,
                                step: step_ref.clone(),
                                message: format!(
                                    "`{name}` needs special input `{}` from the plate, but {why}",
                                    input.key
                                ),
                            });
                            continue;
                        }
                    },
                    // Reported by `check_special_io` (no producer / produced only later).
                    Link::Missing { .. } => continue,
                };
                special_inputs.insert(input.key.to_string(), plan);
            }
            for output in contract.special_outputs {
                special_outputs.insert(
                    output.key.to_string(),
                    OutputTemplate {
                        function: name.to_string(),
                        materializer: output.materializer.map(|m| m.name.to_string()),
                        per_group: step.merge_outputs.iter().any(|m| m == output.key),
                    },
                );
            }
        }
        steps.push(StepInit {
            config,
            input_source: sources[i],
            checkpoint,
            results_dir,
            special_inputs,
            special_outputs,
        });
    }
    let init = Init { run_config, final_config, output_root, final_location, steps };
    errors.extend(check_collisions(pipeline, plate, &init, source));
    (init, errors)
}

/// Whether one path lies in the other, both made absolute with `.` and `..` taken lexically
/// (`plate/../results` is beside the plate, not in it; links are the executor's guard's, which
/// follows them).
fn overlaps(a: &Path, b: &Path) -> bool {
    let (a, b) = (lexical(a), lexical(b));
    a.starts_with(&b) || b.starts_with(&a)
}

/// `path` made absolute with `.` and `..` taken lexically (no link followed: planning never
/// touches the file system).
pub fn lexical(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Persistent outputs must not land in (or around) the input plate, nor share a folder.
pub fn check_collisions(
    pipeline: &Pipeline,
    plate: &PlateInfo,
    init: &Init,
    source: Option<&SourceMap>,
) -> Vec<PipelineError> {
    let last = pipeline.steps.len().saturating_sub(1);
    // (step index, what, path)
    let mut outputs: Vec<(usize, String, PathBuf)> = Vec::new();
    if let Some(p) = init.final_location.persistent_path() {
        outputs.push((last, "the final output".into(), p.clone()));
    }
    for (i, s) in init.steps.iter().enumerate() {
        if let Some(p) = s.checkpoint.as_ref().and_then(|c| c.location.persistent_path()) {
            outputs.push((i, format!("the checkpoint of step {}", i + 1), p.clone()));
        }
    }
    let mut errors = Vec::new();
    let error = |i: usize, message: String| PipelineError::OutputCollision {
        at: Line(source.and_then(|s| s.step_line(i))),
        step: StepRef { index: i + 1, name: pipeline.steps.get(i).map(|s| s.name.clone()).unwrap_or_default() },
        message,
    };
    for (n, (i, what, path)) in outputs.iter().enumerate() {
        if overlaps(path, &plate.root) {
            errors.push(error(
                *i,
                format!(
                    "{what} ({}) would be written in or around the input plate {}; choose an output folder outside it (`hcs run --out`, or without it the `output_folder` / `output_suffix` keys)",
                    path.display(),
                    plate.root.display()
                ),
            ));
        }
        if let Some((_, other, _)) = outputs[..n].iter().find(|(_, _, p)| overlaps(p, path)) {
            errors.push(error(
                *i,
                format!(
                    "{what} ({}) collides with {other}; give step {} its own `sub_dir` (`config = {{ sub_dir = \"…\" }}` on the step)",
                    path.display(),
                    i + 1
                ),
            ));
        }
    }
    // Every step's, not only those with special outputs: the run's report (report.html,
    // run.json, trace.tsv) is written to the results folder whatever the steps make. Each
    // folder is judged once: at the first step writing special outputs there, else the first
    // step that has it.
    let mut judged = std::collections::BTreeSet::new();
    let steps = init.steps.iter().enumerate();
    let (writing, others): (Vec<_>, Vec<_>) = steps.partition(|(_, s)| !s.special_outputs.is_empty());
    for (i, s) in writing.into_iter().chain(others).filter(|(_, s)| judged.insert(s.results_dir.clone())) {
        if let Some((_, what, _)) = outputs.iter().find(|(_, _, p)| overlaps(p, &s.results_dir)) {
            errors.push(error(
                i,
                format!(
                    "the results folder {} collides with {what}; choose another `results_folder`",
                    s.results_dir.display()
                ),
            ));
        }
        if overlaps(&s.results_dir, &plate.root) {
            errors.push(error(
                i,
                format!("the results folder {} is in or around the input plate", s.results_dir.display()),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistent_locations_follow_the_backend() {
        let mut c = Config::default();
        assert_eq!(persistent_location(&c, Path::new("/o"), "images"), Location::Disk { dir: "/o/images".into() });
        c.backend = Backend::Zarr;
        assert_eq!(
            persistent_location(&c, Path::new("/o"), "images"),
            Location::Zarr { store: "/o/images.ome.zarr".into() }
        );
    }

    #[test]
    fn overlap_is_by_path_components_not_by_text() {
        assert!(overlaps(Path::new("/d/plate"), Path::new("/d/plate/images")));
        assert!(overlaps(Path::new("/d/plate/images"), Path::new("/d/plate")));
        assert!(!overlaps(Path::new("/d/plate_outputs/images"), Path::new("/d/plate")));
    }
}
