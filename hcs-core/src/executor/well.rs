//! One well, step by step, following its frozen plan: gather the groups, load → stack → call the
//! pattern → unstack → store where the plan says, hand special inputs only to the functions that
//! declare them, materialize special outputs, and free each intermediate once its reader is done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ndarray::{ArcArray2, Array3, Axis};
use rayon::prelude::*;

use hcs_vfs::Dtype;
use hcs_vfs::tiff::{TiffCompression, TiffLimits, read_tiff, write_tiff};

use crate::compiler::{Conversion, Location, ResolvedCall, ResolvedPattern, SpecialInputPlan, StepPlan, WellPlan};
use crate::device::{DeviceError, convert, join_planes, split_planes};
use crate::memory::Stack;
use crate::plate::{Component, ImageKey, Plate};
use crate::registry::Registry;
use crate::special::{MaterializeTarget, SpecialData, SpecialInputs};

use super::ExecError;
use super::device::{DeviceSlots, Mode, after_out_of_memory, cpu_pattern};
use super::groups::{GroupKey, groups, label, output_keys};
use super::output::{Sink, WellRecord, WrittenFile, file_crc, plane_file_name, subdir_name, write_planes};

/// A well's planes at one point of the pipeline.
pub type Planes = BTreeMap<ImageKey, ArcArray2<f32>>;

/// Where a step's persistent writes go (built once per run, shared by the wells).
pub trait Sinks: Sync {
    /// The sink of a persistent location.
    fn sink<'s>(&'s self, location: &'s Location) -> Option<Sink<'s>>;
}

/// Everything one well needs.
pub struct WellJob<'a> {
    /// The frozen plan.
    pub plan: &'a WellPlan,
    /// The input plate.
    pub plate: &'a Plate,
    /// The functions.
    pub registry: &'a Registry,
    /// Persistent outputs.
    pub sinks: &'a dyn Sinks,
    /// Storage dtype of persistent planes.
    pub dtype: Dtype,
    /// Wells in flight per GPU.
    pub gpu_slots: &'a DeviceSlots,
}

/// What a well's run gives back: its completion record (the caller writes it), each step's
/// seconds, and notes worth a warning (out-of-memory retries, CPU fallbacks).
pub struct WellOutcome {
    /// The completion record.
    pub record: WellRecord,
    /// Seconds per step.
    pub step_seconds: Vec<f64>,
    /// What happened that the user should know.
    pub notes: Vec<String>,
}

/// A step's output planes kept on its device for the next step (one stack of one plane each).
type DevicePlanes = BTreeMap<ImageKey, Mutex<Stack>>;

/// One group's output planes: on the host, or kept on the device.
enum GroupPlanes {
    Host(Vec<(ImageKey, ArcArray2<f32>)>),
    Device(Vec<(ImageKey, Stack)>),
}

/// One group's output planes, the special outputs it produced, and its label.
type GroupResult = (GroupPlanes, Vec<(&'static str, SpecialData)>, String);

enum Special {
    One(SpecialData),
    PerGroup(Vec<(String, SpecialData)>),
}

fn step_error(step: &StepPlan, message: impl Into<String>) -> ExecError {
    ExecError::Step { step: step.index, name: step.name.clone(), message: message.into() }
}

fn plate_special(key: &str, value: &serde_json::Value) -> Result<SpecialData, String> {
    let bad = |e: serde_json::Error| format!("plate value of `{key}`: {e}");
    match key {
        "grid_dimensions" => Ok(SpecialData::new(serde_json::from_value::<(u32, u32)>(value.clone()).map_err(bad)?)),
        "pixel_size" => Ok(SpecialData::new(serde_json::from_value::<f64>(value.clone()).map_err(bad)?)),
        other => Err(format!("no plate value for `{other}`")),
    }
}

/// Why a call failed: out of device memory (the step is retried), or anything else.
enum CallError {
    OutOfMemory(String),
    Other(String),
}

impl From<DeviceError> for CallError {
    fn from(e: DeviceError) -> Self {
        if e.is_out_of_memory() { CallError::OutOfMemory(e.to_string()) } else { CallError::Other(e.to_string()) }
    }
}

impl From<crate::InvokeError> for CallError {
    /// A function's own error is an out-of-memory when a device said so anywhere in its chain.
    fn from(e: crate::InvokeError) -> Self {
        match &e {
            crate::InvokeError::Function { source, .. } if DeviceError::chain_is_out_of_memory(&**source) => {
                CallError::OutOfMemory(e.to_string())
            }
            _ => CallError::Other(e.to_string()),
        }
    }
}

impl From<String> for CallError {
    fn from(m: String) -> Self {
        CallError::Other(m)
    }
}

struct CallCtx<'a> {
    registry: &'a Registry,
    device: Option<u32>,
    step: &'a StepPlan,
    store: &'a BTreeMap<String, Special>,
    group_values: &'a ImageKey,
}

impl CallCtx<'_> {
    fn inputs(&self, call: &ResolvedCall, produced: &[(&'static str, SpecialData)]) -> Result<SpecialInputs, String> {
        let contract = self
            .registry
            .get(&call.function, call.input_memory)
            .ok_or_else(|| format!("`{}` ({}) is not registered in this binary", call.function, call.input_memory))?;
        let mut inputs = SpecialInputs::new();
        for spec in contract.special_inputs {
            let value = if let Some((_, v)) = produced.iter().rev().find(|(k, _)| *k == spec.key) {
                v.clone()
            } else {
                match self.step.special_inputs.get(spec.key) {
                    Some(SpecialInputPlan::Plate { value }) => plate_special(spec.key, value)?,
                    Some(SpecialInputPlan::Step { step, function, .. }) => match self.store.get(spec.key) {
                        Some(Special::One(v)) => v.clone(),
                        Some(Special::PerGroup(_)) => {
                            return Err(format!("special input `{}` is kept per group", spec.key));
                        }
                        None => {
                            return Err(format!(
                                "special input `{}` from step {step} `{function}` was not produced",
                                spec.key
                            ));
                        }
                    },
                    None => return Err(format!("special input `{}` is not in the plan", spec.key)),
                }
            };
            inputs.insert(spec.key, value);
        }
        Ok(inputs)
    }

    fn run(
        &self,
        p: &ResolvedPattern,
        stack: Stack,
        produced: &mut Vec<(&'static str, SpecialData)>,
    ) -> Result<Stack, CallError> {
        match p {
            ResolvedPattern::Call(call) => {
                let stack = convert(stack, call.convert_input, self.device)?;
                let contract = self
                    .registry
                    .get(&call.function, call.input_memory)
                    .ok_or_else(|| format!("`{}` is not registered in this binary", call.function))?;
                let inputs = self.inputs(call, produced)?;
                let out = contract.call(stack, &call.params, &inputs)?;
                produced.extend(out.special_outputs);
                Ok(out.stack)
            }
            ResolvedPattern::Chain { members } => {
                members.iter().try_fold(stack, |stack, m| self.run(m, stack, produced))
            }
            ResolvedPattern::Dict { by, entries } => {
                let value = self.group_values.get(*by).to_string();
                let entry = entries.iter().find(|(k, _)| {
                    let k = k.trim_start_matches('0');
                    *k == value || (k.is_empty() && value == "0")
                });
                match entry {
                    Some((_, pattern)) => self.run(pattern, stack, produced),
                    None => Ok(stack), // no entry for this value: the planes pass through
                }
            }
        }
    }
}

fn stack_of(planes: &[ArcArray2<f32>]) -> Result<Array3<f32>, String> {
    let Some(first) = planes.first() else { return Err("no planes".into()) };
    let (h, w) = first.dim();
    // Filled plane by plane into reserved memory: no zeroing pass before the copy.
    let mut data = Vec::with_capacity(planes.len() * h * w);
    for p in planes {
        if p.dim() != (h, w) {
            return Err(format!("planes of one stack differ in shape: {:?} vs {:?}", p.dim(), (h, w)));
        }
        match p.as_slice() {
            Some(s) => data.extend_from_slice(s),
            None => data.extend(p.iter().copied()),
        }
    }
    Array3::from_shape_vec((planes.len(), h, w), data).map_err(|e| e.to_string())
}

fn scratch_dir(dir: &Path, plan: &WellPlan) -> PathBuf {
    dir.join(plan.well.to_string())
}

/// Join the planes of `keys` kept on a device by the previous step (no host round trip).
fn load_from_device(planes: &DevicePlanes, keys: &[ImageKey]) -> Result<Stack, String> {
    let guards: Vec<_> = keys
        .iter()
        .map(|k| {
            let plane = planes.get(k).ok_or_else(|| format!("{k}: missing"))?;
            plane.lock().map_err(|_| format!("{k}: a group panicked while holding it"))
        })
        .collect::<Result<_, String>>()?;
    let refs: Vec<&Stack> = guards.iter().map(|g| &**g).collect();
    join_planes(&refs).map_err(|e| e.to_string())
}

/// Load the planes of `keys` from where the step reads.
fn load(job: &WellJob<'_>, reads: &Location, source: &Planes, keys: &[ImageKey]) -> Result<Array3<f32>, String> {
    match reads {
        Location::Plate { .. } => job.plate.load_stack(keys).map_err(|e| e.to_string()),
        Location::Memory { .. } => {
            let planes: Vec<ArcArray2<f32>> = keys
                .iter()
                .map(|k| source.get(k).cloned().ok_or_else(|| format!("{k}: missing")))
                .collect::<Result<_, _>>()?;
            stack_of(&planes)
        }
        Location::Disk { dir } => {
            let planes: Vec<ArcArray2<f32>> = keys
                .iter()
                .map(|k| {
                    let path = scratch_dir(dir, job.plan).join(plane_file_name(k));
                    let mut pages = read_tiff(&path, TiffLimits::default()).map_err(|e| e.to_string())?;
                    pages.pop().map(|p| p.to_f32().into_shared()).ok_or_else(|| format!("{}: no image", path.display()))
                })
                .collect::<Result<_, String>>()?;
            stack_of(&planes)
        }
        Location::Zarr { store } => Err(format!("{}: steps do not read zarr stores back", store.display())),
    }
}

/// Run one well.
pub fn run_well(job: &WellJob<'_>) -> Result<WellOutcome, ExecError> {
    let plan = job.plan;
    let mut memory: BTreeMap<String, Planes> = BTreeMap::new();
    let mut scratch_keys: BTreeMap<PathBuf, Vec<ImageKey>> = BTreeMap::new();
    let mut store: BTreeMap<String, Special> = BTreeMap::new();
    let mut on_device: BTreeMap<String, DevicePlanes> = BTreeMap::new();
    let mut record = WellRecord { plan_crc32: super::output::plan_crc(plan), ..WellRecord::default() };
    let last = plan.steps.len().saturating_sub(1);
    let mut step_seconds = Vec::with_capacity(plan.steps.len());
    let mut notes = Vec::new();

    for (i, step) in plan.steps.iter().enumerate() {
        // Gather the input keys (from the index or the previous step's output; no listing).
        let empty = Planes::new();
        let (keys, source): (Vec<ImageKey>, &Planes) = match &step.reads {
            Location::Plate { .. } => (job.plate.index.well(plan.well).map(|(k, _)| *k).collect(), &empty),
            Location::Memory { namespace } if on_device.contains_key(namespace) => {
                (on_device.get(namespace).map(|d| d.keys().copied().collect()).unwrap_or_default(), &empty)
            }
            Location::Memory { namespace } => {
                let planes = memory.get(namespace).ok_or_else(|| step_error(step, format!("{namespace} is empty")))?;
                (planes.keys().copied().collect(), planes)
            }
            Location::Disk { dir } => (scratch_keys.get(dir).cloned().unwrap_or_default(), &empty),
            Location::Zarr { store } => {
                return Err(step_error(step, format!("{}: steps do not read zarr stores back", store.display())));
            }
        };
        let grouped: Vec<(GroupKey, Vec<ImageKey>)> = groups(&keys, &step.variable_components).into_iter().collect();
        let step_start = std::time::Instant::now();
        let varying: Vec<Component> = step
            .components_in
            .iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| v.len() > 1))
            .map(|(c, _)| *c)
            .collect();

        // A GPU step holds one of its device's slots while it runs.
        let _slot = step.gpu.map(|g| job.gpu_slots.acquire(g.device, g.slots));
        let device = step.gpu.map(|g| g.device);
        let cpu = step.gpu.is_some().then(|| cpu_pattern(&step.func, job.registry)).flatten();
        let mut mode = Mode::Parallel;
        let results: Vec<GroupResult> = loop {
            let (pattern, device) = match (&mode, &cpu) {
                (Mode::Cpu, Some(cpu)) => (cpu, None),
                _ => (&step.func, device),
            };
            let kept = match &step.reads {
                Location::Memory { namespace } => on_device.get(namespace),
                _ => None,
            };
            let run_group = |group: &Vec<ImageKey>| -> Result<GroupResult, CallError> {
                let stack = match kept {
                    Some(planes) => {
                        let stack = load_from_device(planes, group)?;
                        // The CPU fallback starts from the host.
                        let to_host = Conversion { from: stack.memory_type(), to: crate::MemoryType::Ndarray };
                        if mode == Mode::Cpu { convert(stack, Some(to_host), None)? } else { stack }
                    }
                    None => Stack::Ndarray(load(job, &step.reads, source, group)?),
                };
                let ctx = CallCtx { registry: job.registry, device, step, store: &store, group_values: &group[0] };
                let mut produced = Vec::new();
                let out = ctx.run(pattern, stack, &mut produced)?;
                // Where the plan keeps the output: the host, or the step's device for the next step.
                let keep = Conversion { from: out.memory_type(), to: step.output_memory };
                let out = convert(out, Some(keep), step.gpu.map(|g| g.device))?;
                let label = label(group, &step.variable_components, &varying);
                #[allow(unreachable_patterns)] // more variants with the torch / cuda features
                let array = match out {
                    Stack::Ndarray(a) if step.output_memory.is_ndarray() => a,
                    other if !step.output_memory.is_ndarray() => {
                        let names = output_keys(group, other.planes())?;
                        let planes = split_planes(other)?;
                        return Ok((GroupPlanes::Device(names.into_iter().zip(planes).collect()), produced, label));
                    }
                    other => return Err(format!("a {} stack reached storage", other.memory_type()).into()),
                };
                let names = output_keys(group, array.shape()[0])?;
                // Each plane shares the output stack's buffer: no copy.
                let shared = array.into_shared();
                let planes = names
                    .into_iter()
                    .enumerate()
                    .map(|(i, k)| (k, shared.clone().index_axis_move(Axis(0), i)))
                    .collect();
                Ok((GroupPlanes::Host(planes), produced, label))
            };
            let attempt: Result<Vec<GroupResult>, CallError> = match mode {
                Mode::Parallel => grouped.par_iter().map(|(_, g)| run_group(g)).collect(),
                Mode::OneAtATime | Mode::Cpu => grouped.iter().map(|(_, g)| run_group(g)).collect(),
            };
            match attempt {
                Ok(results) => break results,
                Err(CallError::Other(m)) => return Err(step_error(step, m)),
                Err(CallError::OutOfMemory(m)) => {
                    match after_out_of_memory(
                        mode,
                        grouped.len(),
                        step.gpu.is_some(),
                        step.config.gpu_policy,
                        cpu.is_some(),
                    ) {
                        Ok(next) => {
                            let what = match next {
                                Mode::OneAtATime => "retrying one group at a time",
                                _ => "falling back to the CPU variants",
                            };
                            let note = format!("step {} `{}`: {m}; {what}", step.index, step.name);
                            tracing::warn!(well = %plan.well, "{note}");
                            notes.push(note);
                            mode = next;
                        }
                        Err(why) => return Err(step_error(step, format!("{m}; {why}"))),
                    }
                }
            }
        };

        // Special outputs: one per well, or one per group when merged.
        let mut step_specials: BTreeMap<&'static str, Vec<(String, SpecialData)>> = BTreeMap::new();
        let mut planes = Planes::new();
        let mut device_planes = DevicePlanes::new();
        for (outs, produced, group_label) in results {
            match outs {
                GroupPlanes::Host(outs) => planes.extend(outs),
                GroupPlanes::Device(outs) => device_planes.extend(outs.into_iter().map(|(k, p)| (k, Mutex::new(p)))),
            }
            for (key, value) in produced {
                step_specials.entry(key).or_default().push((group_label.clone(), value));
            }
        }
        for (key, values) in step_specials {
            let per_group = step.special_outputs.get(key).is_some_and(|o| o.per_group);
            let special = if per_group {
                Special::PerGroup(values)
            } else if values.len() == 1 {
                Special::One(values.into_iter().map(|(_, v)| v).next_back().ok_or_else(|| step_error(step, "empty"))?)
            } else {
                return Err(step_error(step, format!("`{key}` was produced by {} groups", values.len())));
            };
            materialize(job, step, key, &special, &mut record)?;
            store.insert(key.to_string(), special);
        }

        tracing::debug!(
            well = %plan.well,
            step = step.index,
            name = %step.name,
            groups = grouped.len(),
            planes_out = planes.len() + device_planes.len(),
            seconds = step_start.elapsed().as_secs_f64(),
            "step done"
        );
        // Store the output where the plan says; free the input once read.
        if let Location::Memory { namespace } = &step.reads {
            memory.remove(namespace);
            on_device.remove(namespace);
        }
        if let Location::Disk { dir } = &step.reads {
            scratch_keys.remove(dir);
            std::fs::remove_dir_all(scratch_dir(dir, plan)).ok();
        }
        if let Some(checkpoint) = &step.checkpoint {
            persist(job, step, checkpoint, &planes, &mut record)?;
        }
        if let Some(preview) = &step.preview {
            publish_preview(job, step, preview, &planes)?;
        }
        match &step.writes {
            Location::Memory { namespace } if !device_planes.is_empty() => {
                on_device.insert(namespace.clone(), device_planes);
            }
            Location::Memory { namespace } => {
                memory.insert(namespace.clone(), planes);
            }
            location if i == last => persist(job, step, location, &planes, &mut record)?,
            Location::Disk { dir } => {
                let well_dir = scratch_dir(dir, plan);
                for (k, p) in &planes {
                    let data = hcs_vfs::PlaneData::from_f32(p.view(), Dtype::F32);
                    write_tiff(&well_dir.join(plane_file_name(k)), &[data], TiffCompression::None)?;
                }
                scratch_keys.insert(dir.clone(), planes.keys().copied().collect());
            }
            other => return Err(step_error(step, format!("cannot write an intermediate to {other:?}"))),
        }
        step_seconds.push(step_start.elapsed().as_secs_f64());
    }
    Ok(WellOutcome { record, step_seconds, notes })
}

/// Publish a step's output of this well to its preview store (the well appears in the plate
/// metadata at once) and write a thumbnail of its first plane.
fn publish_preview(
    job: &WellJob<'_>,
    step: &StepPlan,
    preview: &crate::compiler::PreviewPlan,
    planes: &Planes,
) -> Result<(), ExecError> {
    let location = Location::Zarr { store: preview.store.store.clone() };
    let sink = job.sinks.sink(&location).ok_or_else(|| step_error(step, "the preview store was not created"))?;
    write_planes(&sink, &job.plan.output_root, planes, job.dtype)?;
    if let Sink::Zarr(writer, _) = sink {
        writer.finalize()?;
    }
    if let Some(first) = planes.values().next() {
        let path = preview.thumbnails.join(format!("{}.png", job.plan.well));
        hcs_vfs::thumbnail::write_thumbnail(&path, first.view(), 256)?;
    }
    Ok(())
}

fn persist(
    job: &WellJob<'_>,
    step: &StepPlan,
    location: &Location,
    planes: &Planes,
    record: &mut WellRecord,
) -> Result<(), ExecError> {
    let sink = job.sinks.sink(location).ok_or_else(|| step_error(step, format!("no sink for {location:?}")))?;
    let root = &job.plan.output_root;
    let (files, refs) = write_planes(&sink, root, planes, job.dtype)?;
    record.files.extend(files);
    let name = subdir_name(location, root).unwrap_or_default();
    record.subdirs.entry(name).or_default().extend(refs);
    Ok(())
}

fn materialize(
    job: &WellJob<'_>,
    step: &StepPlan,
    key: &str,
    special: &Special,
    record: &mut WellRecord,
) -> Result<(), ExecError> {
    let Some(out) = step.special_outputs.get(key) else { return Ok(()) };
    let Some(spec) = job.registry.variants(&out.function).iter().find_map(|c| c.special_output(key)) else {
        return Ok(());
    };
    let Some(materializer) = spec.materializer else { return Ok(()) };
    let values: Vec<(String, &SpecialData)> = match special {
        Special::One(v) => vec![(out.stem.clone(), v)],
        Special::PerGroup(vs) => {
            let well = job.plan.well.to_string();
            vs.iter().map(|(g, v)| (format!("{well}_{g}_{key}"), v)).collect()
        }
    };
    for (stem, value) in values {
        let target = MaterializeTarget::new(&out.results_dir, stem);
        let paths = (materializer.run)(value, &target)
            .map_err(|e| step_error(step, format!("materializing `{key}` with {}: {e}", materializer.name)))?;
        for p in paths {
            let (bytes, crc32) =
                file_crc(&p).ok_or_else(|| step_error(step, format!("{}: not written", p.display())))?;
            let rel = p.strip_prefix(&job.plan.output_root).map(Path::to_path_buf).unwrap_or(p);
            record.files.push(WrittenFile { path: rel, bytes, crc32 });
        }
    }
    Ok(())
}
