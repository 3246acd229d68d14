//! One step of one well, in stages: gather the input keys, split them into groups, and per group
//! load → convert → call the pattern (special data routed) → unstack; retry after a device runs
//! out of memory as the plan allows; then keep the special outputs, and store the output planes
//! where the plan says.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use ndarray::{ArcArray2, ArcArray3, Array3, ArrayView2, Axis};
use rayon::prelude::*;

use hcs_core::MemoryType;
use hcs_core::labels::{LabelPlane, LabelStack};
use hcs_core::stack::{Conversion, Stack};
use hcs_device::{convert, split_planes};
use hcs_plan::compiler::{Location, ResolvedPattern, StepPlan};
use hcs_plate::{Component, ImageKey};

use crate::error::StepError;
use crate::groups::{GroupKey, groups, label, output_keys};
use crate::job::WellJob;
use crate::output::LabelPlanes;
use crate::parts::PartOf;
use crate::qc::{self, PlaneQc};
use crate::retry::{Mode, after_out_of_memory};
use crate::routing::{CallError, GroupValue, Produced, Router, Special, ViewsForm, keep_special};
use crate::state::{DevicePlanes, Planes, WellRun, load_from_device};
use crate::writes::{materialize, persist, publish_preview};

/// A group's planes as they lie, and the call of a plane-views form to hand them to.
type InPlace<'p> = (ViewsForm<'p>, Vec<ArcArray2<f32>>);

/// One group's output planes: on the host (with the stack they share, when the next step takes
/// the same groups), or kept on the device.
enum GroupPlanes {
    Host(Vec<(ImageKey, ArcArray2<f32>)>, Option<ArcArray3<f32>>),
    Device(Vec<(ImageKey, Stack)>),
}

/// A step's output, gathered from its groups.
struct StepOutput {
    planes: Planes,
    device_planes: DevicePlanes,
    labels: LabelPlanes,
    /// Each group's output stack with its planes' keys, for [`WellRun::keep_whole`].
    wholes: Vec<(Vec<ImageKey>, ArcArray3<f32>)>,
    /// Each group's shared first-call result with its planes' keys (the plan's `shares`).
    shared: Vec<(Vec<ImageKey>, ArcArray3<f32>)>,
}

/// One group's output planes, the special outputs it produced, and its label.
struct GroupResult {
    planes: GroupPlanes,
    produced: Produced,
    label: String,
    /// The group's first input plane: its component values pick this group's value of a
    /// per-group special output for a later step.
    first: ImageKey,
    /// The planes the first call of the chain returned, kept for a later step that reuses them
    /// (the plan's `shares`), with their keys.
    shared: Option<(Vec<ImageKey>, ArcArray3<f32>)>,
}

/// How many planes a step read and produced.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepCounts {
    /// Planes read.
    pub planes_in: usize,
    /// Planes produced.
    pub planes_out: usize,
}

/// Runs one step of one well.
pub struct StepRunner<'a, 'j> {
    /// The well's job.
    pub job: &'a WellJob<'j>,
    /// The step's plan.
    pub step: &'a StepPlan,
    /// Whether this is the pipeline's last step (its output is the final one).
    pub last: bool,
    /// In a segment: the part of the well this run of the step sees (`None`: the whole well).
    pub part: Option<PartOf<'a>>,
}

impl StepRunner<'_, '_> {
    /// Run the step: every stage in order.
    pub fn run(&self, run: &mut WellRun) -> Result<StepCounts, StepError> {
        let start = Instant::now();
        let keys = self.input_keys(run)?;
        let grouped: Vec<(GroupKey, Vec<ImageKey>)> =
            groups(&keys, &self.step.variable_components).into_iter().collect();
        let results = self.run_groups(run, &grouped)?;
        let output = self.keep_specials(run, results)?;
        let (planes, device_planes) = (&output.planes, &output.device_planes);
        tracing::debug!(
            well = %self.job.plan.well,
            step = self.step.index,
            name = %self.step.name,
            groups = grouped.len(),
            planes_out = planes.len() + device_planes.len(),
            seconds = start.elapsed().as_secs_f64(),
            "step done"
        );
        let counts = StepCounts { planes_in: keys.len(), planes_out: planes.len() + device_planes.len() };
        let storing = Instant::now();
        self.store(run, output)?;
        tracing::trace!(
            well = %self.job.plan.well,
            step = self.step.index,
            seconds = storing.elapsed().as_secs_f64(),
            "step stored"
        );
        Ok(counts)
    }

    /// The keys the step reads, from the plate's index or from what the previous step wrote (no
    /// listing); in a segment, those of the part. A part may be empty (an earlier step of the
    /// segment returned no plane for it): the segment's run tells when every part was.
    pub fn input_keys(&self, run: &WellRun) -> Result<Vec<ImageKey>, StepError> {
        let plan = self.job.plan;
        let mut keys = match &self.step.reads {
            Location::Plate { .. } => self.job.plate.index.well(plan.well).map(|(k, _)| *k).collect(),
            Location::Zarr { store } => return Err(StepError::ReadsZarr(store.clone())),
            at => run.keys_at(at),
        };
        if let Some(part) = self.part {
            keys.retain(|k| part.part.holds(k));
            return Ok(keys);
        }
        match &self.step.reads {
            Location::Memory { namespace } if keys.is_empty() => Err(StepError::EmptyInput(namespace.clone())),
            _ => Ok(keys),
        }
    }

    /// The components with more than one value in the step's input (they label per-group outputs).
    fn varying(&self) -> Vec<Component> {
        self.step
            .components_in
            .iter()
            .filter(|(_, v)| v.as_ref().is_some_and(|v| v.len() > 1))
            .map(|(c, _)| *c)
            .collect()
    }

    /// Every group through the pattern; after running out of memory, again one group at a time,
    /// then (a GPU step) on the plan's CPU fallback, as far as the step's policy allows.
    ///
    /// A retry runs only the groups that have not succeeded, except on a GPU step, which runs
    /// them all again (the fallback's outputs are then all on the host). A step that frees each
    /// group's input as it loads it ([`Self::releases_input`]) cannot load a failed group again:
    /// running out of memory there fails the step, saying why.
    fn run_groups(
        &self,
        run: &mut WellRun,
        grouped: &[(GroupKey, Vec<ImageKey>)],
    ) -> Result<Vec<GroupResult>, StepError> {
        let step = self.step;
        // A GPU step holds one of its device's slots while it runs.
        let _slot = step.gpu.map(|g| self.job.gpu_slots.acquire(g.device, g.slots));
        let cpu = step.gpu.and(step.cpu_fallback.as_ref());
        let varying = self.varying();
        let mut mode = Mode::Parallel;
        let mut done: Vec<Option<GroupResult>> = grouped.iter().map(|_| None).collect();
        loop {
            let (pattern, device) = match (mode, cpu) {
                (Mode::Cpu, Some(cpu)) => (cpu, None),
                _ => (&step.func, step.gpu.map(|g| g.device)),
            };
            let state: &WellRun = run;
            // After an error that no retry mends, the groups not started yet are not started.
            let failed = std::sync::atomic::AtomicBool::new(false);
            let one = |i: usize| {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return (i, Err(CallError::Other(StepError::Abandoned)));
                }
                let result = self.run_group(state, pattern, device, &grouped[i].1, mode, &varying);
                if matches!(result, Err(CallError::Other(_))) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                (i, result)
            };
            let todo: Vec<usize> = (0..grouped.len()).filter(|&i| done[i].is_none()).collect();
            let attempt: Vec<(usize, Result<GroupResult, CallError>)> = match mode {
                Mode::Parallel => todo.into_par_iter().map(one).collect(),
                // One at a time: stop at the first failure, as a smaller batch is the point.
                Mode::OneAtATime | Mode::Cpu => {
                    let mut out = Vec::new();
                    for i in todo {
                        let result = one(i);
                        let failed = result.1.is_err();
                        out.push(result);
                        if failed {
                            break;
                        }
                    }
                    out
                }
            };
            let mut failure = None;
            let mut error = None;
            for (i, result) in attempt {
                match result {
                    Ok(r) => done[i] = Some(r),
                    Err(CallError::Other(StepError::Abandoned)) => {}
                    Err(CallError::Other(e)) => error = error.or(Some(e)),
                    Err(CallError::OutOfMemory(e)) => failure = failure.or(Some(e.to_string())),
                }
            }
            if let Some(e) = error {
                return Err(e);
            }
            let Some(message) = failure else {
                return Ok(done.into_iter().flatten().collect());
            };
            if self.releases_input() {
                return Err(StepError::OutOfMemory { message, why: crate::error::NoRetry::InputFreed });
            }
            // A GPU step's retry runs every group again: the CPU fallback's outputs are then all
            // on the host, not some on the device. A CPU step keeps the groups that succeeded.
            if step.gpu.is_some() {
                done.iter_mut().for_each(|d| *d = None);
            }
            mode = after_out_of_memory(mode, grouped.len(), step.gpu.is_some(), step.config.gpu_policy, cpu.is_some())
                .map_err(|why| StepError::OutOfMemory { message: message.clone(), why })?;
            let what = if mode == Mode::OneAtATime {
                "retrying one group at a time"
            } else {
                "falling back to the CPU variants"
            };
            let note = format!("step {} `{}`: {message}; {what}", step.index, step.name);
            tracing::warn!(well = %self.job.plan.well, "{note}");
            run.notes.push(note);
        }
    }

    /// Whether each group's input planes are freed as soon as the group has loaded (copied)
    /// them: for a CPU step reading an in-memory intermediate, of which it is the last reader
    /// (the plan's `read_by`). Its input then shrinks while its output grows, instead of both
    /// being held whole until the step ends. (A GPU step keeps them: it may retry its groups.)
    fn releases_input(&self) -> bool {
        self.step.gpu.is_none() && matches!(self.step.reads, Location::Memory { .. })
    }

    /// Load one group's stack: from the device the previous step kept it on, from the plate, or
    /// from the intermediate store the plan names.
    fn load(&self, run: &WellRun, group: &[ImageKey], mode: Mode) -> Result<Stack, CallError> {
        let kept = match &self.step.reads {
            Location::Memory { namespace } => run.on_device.get(namespace),
            _ => None,
        };
        if let Some(planes) = kept {
            let stack = load_from_device(planes, group)?;
            // The CPU fallback starts from the host.
            let to_host = Conversion { from: stack.memory_type(), to: MemoryType::Ndarray };
            return Ok(if mode == Mode::Cpu { convert(stack, Some(to_host), None)? } else { stack });
        }
        let stack = match &self.step.reads {
            Location::Plate { .. } => {
                let stack = if mode == Mode::Parallel && self.groups_cover_workers() {
                    self.load_measuring(run, group)?
                } else {
                    let stack = self.job.plate.load_stack(group).map_err(StepError::from)?;
                    self.measure_quality(run, group, &stack);
                    stack
                };
                run.count_read((stack.len() * self.job.dtype.size()) as u64);
                stack
            }
            at => {
                let stack = if self.releases_input() {
                    run.take(self.job.plan, at, group)?
                } else {
                    run.load(self.job.plan, at, group)?
                };
                if matches!(at, Location::Disk { .. }) {
                    run.count_read((stack.len() * std::mem::size_of::<f32>()) as u64);
                }
                stack
            }
        };
        Ok(Stack::Ndarray(stack))
    }

    /// The group's planes where they lie, with the call to hand them to, when `pattern` is one
    /// host call of a function with a plane-views form and the planes are in this well's memory
    /// apart from each other (a step before stacked them differently): the call then reads them
    /// in place instead of a copy of them all stacked. `None`: load the stack as usual (planes
    /// from the plate, from scratch files or on a device, or kept whole for this group, which
    /// moves without a copy).
    fn planes_in_place<'p>(
        &self,
        run: &WellRun,
        router: &Router<'_>,
        pattern: &'p ResolvedPattern,
        group: &[ImageKey],
    ) -> Result<Option<InPlace<'p>>, StepError> {
        let at = &self.step.reads;
        let on_device = matches!(at, Location::Memory { namespace } if run.on_device.contains_key(namespace));
        if !matches!(at, Location::Memory { .. }) || on_device || group.is_empty() || run.has_whole(at, group) {
            return Ok(None);
        }
        let Some(form) = router.views_form(pattern) else { return Ok(None) };
        let planes = run.plane_handles(self.job.plan, at, group, self.releases_input())?;
        Ok(Some((form, planes)))
    }

    /// Whether the plan gives this step at least as many groups as there are workers, so the
    /// groups alone keep every worker busy.
    fn groups_cover_workers(&self) -> bool {
        self.step.calls_per_well.is_some_and(|groups| groups >= rayon::current_num_threads())
    }

    /// Load a group's raw planes, measuring the quality of each one not measured yet as soon as
    /// it is read, while it is still in the caches (a 1024² stack of nine planes is larger than
    /// the last-level cache: measured after the whole stack was read, every plane came from
    /// memory again).
    fn load_measuring(&self, run: &WellRun, group: &[ImageKey]) -> Result<Array3<f32>, StepError> {
        let todo = run.unmeasured(group);
        let (stack, measured) = self.job.plate.load_stack_with(group, |i, plane| {
            todo.contains(&i).then(|| qc::measure(group[i], plane, self.job.dtype))
        })?;
        run.keep_measured(measured);
        Ok(stack)
    }

    /// The quality measures of the raw planes in `stack` not measured yet (a plane read by two
    /// steps is measured once).
    fn measure_quality(&self, run: &WellRun, group: &[ImageKey], stack: &Array3<f32>) {
        // In parallel: a step with fewer groups than cores would otherwise measure on one.
        let measured: Vec<PlaneQc> = run
            .unmeasured(group)
            .into_par_iter()
            .map(|i| qc::measure(group[i], stack.index_axis(Axis(0), i), self.job.dtype))
            .collect();
        run.keep_measured(measured);
    }

    /// One group: load, call the pattern, keep the output where the plan says.
    fn run_group(
        &self,
        run: &WellRun,
        pattern: &ResolvedPattern,
        device: Option<u32>,
        group: &[ImageKey],
        mode: Mode,
        varying: &[Component],
    ) -> Result<GroupResult, CallError> {
        let start = Instant::now();
        let router = Router {
            registry: self.job.registry,
            device,
            step: self.step,
            memory: &run.memory,
            group_values: &group[0],
        };
        let mut produced = Vec::new();
        let mut shared = None;
        let (out, loaded) = if self.step.reuses.is_some() {
            // The step's call ran in the step that shared its result: these planes are its output.
            let stack = self.load(run, group, mode)?;
            (stack, start.elapsed())
        } else {
            match self.planes_in_place(run, &router, pattern, group)? {
                Some((form, planes)) => {
                    let loaded = start.elapsed();
                    let views: Vec<ArrayView2<'_, f32>> = planes.iter().map(|p| p.view()).collect();
                    (router.run_views(&form, &views, &mut produced)?, loaded)
                }
                None => {
                    let stack = self.load(run, group, mode)?;
                    let loaded = start.elapsed();
                    let (out, first) = self.run_sharing(&router, pattern, stack, &mut produced)?;
                    if let Some(first) = first {
                        shared = Some((output_keys(group, first.shape()[0])?, first));
                    }
                    (out, loaded)
                }
            }
        };
        // Where the plan keeps the output: the host, or the step's device for the next step.
        let keep = Conversion { from: out.memory_type(), to: self.step.output_memory };
        let called = start.elapsed();
        let out = convert(out, Some(keep), self.step.gpu.map(|g| g.device))?;
        let planes = self.unstack(group, out)?;
        tracing::trace!(
            well = %self.job.plan.well,
            step = self.step.index,
            load_seconds = loaded.as_secs_f64(),
            calls_seconds = (called - loaded).as_secs_f64(),
            keep_seconds = (start.elapsed() - called).as_secs_f64(),
            "group done"
        );
        Ok(GroupResult {
            planes,
            produced,
            label: label(group, &self.step.variable_components, varying),
            first: group[0],
            shared,
        })
    }

    /// Run `pattern` on `stack`. On a step that shares its first call's result with a later
    /// step (the plan's `shares`), that call's planes are kept and returned beside the output:
    /// the next call reads them in place through its plane-views form when it has one (it
    /// writes a new stack and leaves them as they are), else it gets a copy (it may change its
    /// stack in place).
    fn run_sharing(
        &self,
        router: &Router<'_>,
        pattern: &ResolvedPattern,
        stack: Stack,
        produced: &mut Produced,
    ) -> Result<(Stack, Option<ArcArray3<f32>>), CallError> {
        let (first, next, rest) = match (&self.step.shares, pattern) {
            (Some(_), ResolvedPattern::Chain { members }) if members.len() >= 2 => {
                (&members[0], &members[1], &members[2..])
            }
            _ => return Ok((router.run(pattern, stack, produced)?, None)),
        };
        #[allow(unreachable_patterns)] // more variants with the torch / cuda features
        let kept = match router.run(first, stack, produced)? {
            Stack::Ndarray(a) => a.into_shared(),
            other => return Err(StepError::DeviceStackInStorage(other.memory_type()).into()),
        };
        let out = match router.views_form(next) {
            Some(form) if kept.shape()[0] > 0 => {
                let views: Vec<ArrayView2<'_, f32>> = kept.outer_iter().collect();
                router.run_views(&form, &views, produced)?
            }
            _ => router.run(next, Stack::Ndarray(kept.to_owned()), produced)?,
        };
        let out = rest.iter().try_fold(out, |stack, m| router.run(m, stack, produced))?;
        Ok((out, Some(kept)))
    }

    /// Name a call's output planes by the group's components (see `groups`).
    fn unstack(&self, group: &[ImageKey], out: Stack) -> Result<GroupPlanes, CallError> {
        #[allow(unreachable_patterns)] // more variants with the torch / cuda features
        let array = match out {
            Stack::Ndarray(a) if self.step.output_memory.is_ndarray() => a,
            other if !self.step.output_memory.is_ndarray() => {
                let names = output_keys(group, other.planes())?;
                let planes = split_planes(other)?;
                return Ok(GroupPlanes::Device(names.into_iter().zip(planes).collect()));
            }
            other => return Err(StepError::DeviceStackInStorage(other.memory_type()).into()),
        };
        let names = output_keys(group, array.shape()[0])?;
        let shared = array.into_shared();
        let planes = planes_of(&names, &shared).collect();
        Ok(GroupPlanes::Host(planes, self.reader_takes_same_groups().then_some(shared)))
    }

    /// Whether the step reading this one's in-memory output is a CPU step that stacks the same
    /// components: its groups are this step's, so each can take a group's stack whole.
    fn reader_takes_same_groups(&self) -> bool {
        let step = self.step;
        matches!(step.writes, Location::Memory { .. })
            && !self.last
            && step.read_by.and_then(|i| self.job.plan.steps.iter().find(|s| s.index == i)).is_some_and(|reader| {
                reader.gpu.is_none()
                    && reader.reads == step.writes
                    && reader.variable_components == step.variable_components
            })
    }

    /// Gather the groups' planes, and keep (and materialize) their special outputs: one value
    /// per well, or one per group when the step merges them.
    fn keep_specials(&self, run: &mut WellRun, results: Vec<GroupResult>) -> Result<StepOutput, StepError> {
        let mut by_key: BTreeMap<&'static str, Vec<GroupValue>> = BTreeMap::new();
        let mut planes = Planes::new();
        let mut device_planes = DevicePlanes::new();
        let mut labels = LabelPlanes::new();
        let mut wholes = Vec::new();
        let mut shared = Vec::new();
        for mut result in results {
            self.label_planes(&result, &mut labels);
            shared.extend(result.shared.take());
            match result.planes {
                GroupPlanes::Host(outs, whole) => {
                    if let Some(whole) = whole {
                        wholes.push((outs.iter().map(|(k, _)| *k).collect(), whole));
                    }
                    planes.extend(outs);
                }
                GroupPlanes::Device(outs) => device_planes.extend(outs.into_iter().map(|(k, p)| (k, Mutex::new(p)))),
            }
            for (key, value) in result.produced {
                by_key.entry(key).or_default().push(GroupValue {
                    label: result.label.clone(),
                    first: result.first,
                    value,
                });
            }
        }
        for (key, mut values) in by_key {
            let per_group = self.step.special_outputs.get(key).is_some_and(|o| o.per_group);
            let special = match (per_group, values.len()) {
                (true, _) => Special::PerGroup(values),
                (false, 1) => Special::One(values.pop().map(|g| g.value).ok_or(StepError::NoPlanes)?),
                (false, groups) => return Err(StepError::ProducedByGroups { key: key.to_string(), groups }),
            };
            materialize(self.job, self.step, key, &special, &mut run.record)?;
            // Later steps find it where the plan links their special inputs; an output the plan
            // does not list has no reader.
            if let Some(out) = self.step.special_outputs.get(key) {
                keep_special(&run.memory, &out.memory_key, special)?;
            }
        }
        name_per_channel(&mut labels);
        Ok(StepOutput { planes, device_planes, labels, wholes, shared })
    }

    /// The label images among a group's special outputs, each paired with the image plane it
    /// labels (the group's planes, in order). Label images that cannot be paired are not
    /// dropped silently: a warning names the step, the well and the counts.
    fn label_planes(&self, result: &GroupResult, out: &mut LabelPlanes) {
        let keys: Vec<ImageKey> = match &result.planes {
            GroupPlanes::Host(p, _) => p.iter().map(|(k, _)| *k).collect(),
            GroupPlanes::Device(p) => p.iter().map(|(k, _)| *k).collect(),
        };
        for (key, value) in &result.produced {
            let Some(stack) = value.downcast_ref::<LabelStack>() else { continue };
            if stack.planes.is_empty() {
                continue;
            }
            let arrays: Option<Vec<_>> = stack.planes.iter().map(LabelPlane::to_array).collect();
            match arrays {
                Some(arrays) if arrays.len() == keys.len() => {
                    out.extend(keys.iter().zip(arrays).map(|(k, a)| ((*key).to_string(), *k, a)));
                }
                _ => tracing::warn!(
                    well = %self.job.plan.well,
                    step = %self.step.name,
                    "`{key}` of group {}: {} label images for {} image planes (or a label image of the wrong size); written to the results folder (`results_folder`) only, not as NGFF labels",
                    result.label,
                    stack.planes.len(),
                    keys.len()
                ),
            }
        }
    }

    /// Free the input once read, write the checkpoint and preview, and store the output where the
    /// plan says: an intermediate store, the device, or the final persistent location.
    fn store(&self, run: &mut WellRun, output: StepOutput) -> Result<(), StepError> {
        let (job, step) = (self.job, self.step);
        let StepOutput { planes, device_planes, labels, wholes, shared } = output;
        let labels = &labels;
        if self.part.is_none_or(|p| p.frees_input) {
            run.free(job.plan, &step.reads)?;
        }
        if let Some(sharing) = &step.shares {
            keep_shared(run, job.plan, &sharing.namespace, shared)?;
        }
        let persisted = |l: &Location| matches!(l, Location::Zarr { .. });
        let final_zarr = self.last && step.writes.persistent_path().is_some() && persisted(&step.writes);
        if !labels.is_empty() && !final_zarr && !step.checkpoint.as_ref().is_some_and(persisted) {
            tracing::warn!(
                well = %job.plan.well,
                step = %step.name,
                "{} written to the results folder (`results_folder`) only: the step's images are not stored as an OME-Zarr plate (set `materialize = true` on the step, with the zarr backend, for NGFF labels)",
                if labels.len() == 1 { "1 label image is".to_string() } else { format!("{} label images are", labels.len()) }
            );
        }
        if let Some(checkpoint) = &step.checkpoint {
            persist(job, checkpoint, &planes, labels, None, &mut run.record, &run.writes)?;
        }
        if let Some(preview) = &step.preview {
            publish_preview(job, preview, &planes)?;
        }
        match &step.writes {
            // No later step reads these planes (the plan's `read_by`): they were only kept for
            // the writes above, and go now instead of staying until the well ends.
            Location::Memory { .. } | Location::Disk { .. } if !self.last && step.read_by.is_none() => Ok(()),
            Location::Memory { namespace } if !device_planes.is_empty() => {
                run.on_device.insert(namespace.clone(), device_planes);
                Ok(())
            }
            location if self.last && location.persistent_path().is_some() => {
                persist(job, location, &planes, labels, job.on_output, &mut run.record, &run.writes)
            }
            location @ (Location::Memory { .. } | Location::Disk { .. }) => {
                run.save(job.plan, location, &planes)?;
                for (keys, stack) in wholes {
                    run.keep_whole(location, keys, stack);
                }
                Ok(())
            }
            other => Err(StepError::BadIntermediate(other.clone())),
        }
    }
}

/// The planes of `stack` named `keys` (in order), each sharing the stack's buffer: no copy.
fn planes_of<'s>(
    keys: &'s [ImageKey],
    stack: &'s ArcArray3<f32>,
) -> impl Iterator<Item = (ImageKey, ArcArray2<f32>)> + 's {
    keys.iter().enumerate().map(|(i, k)| (*k, stack.clone().index_axis_move(Axis(0), i)))
}

/// Keep the groups' shared first-call results in the well's memory at `namespace`, each group
/// whole, for the later step that reuses them: it takes each stack without a copy.
fn keep_shared(
    run: &mut WellRun,
    plan: &hcs_plan::compiler::WellPlan,
    namespace: &str,
    shared: Vec<(Vec<ImageKey>, ArcArray3<f32>)>,
) -> Result<(), StepError> {
    let at = Location::Memory { namespace: namespace.to_string() };
    let planes: Planes = shared.iter().flat_map(|(keys, stack)| planes_of(keys, stack)).collect();
    run.save(plan, &at, &planes)?;
    for (keys, stack) in shared {
        run.keep_whole(&at, keys, stack);
    }
    Ok(())
}

/// A label image holds one mask per field, timepoint and z: when masks of one name come from
/// several channels (a dict of counters, `merge_outputs` over channels), each channel's become a
/// label image of their own, `<name>_c<channel>`, instead of overwriting each other.
fn name_per_channel(labels: &mut LabelPlanes) {
    let mut channels: BTreeMap<String, std::collections::BTreeSet<u32>> = BTreeMap::new();
    for (name, key, _) in labels.iter() {
        channels.entry(name.clone()).or_default().insert(key.channel);
    }
    for (name, key, _) in labels.iter_mut() {
        if channels.get(name.as_str()).is_some_and(|c| c.len() > 1) {
            *name = format!("{name}_c{}", key.channel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_of_several_channels_get_a_label_image_each() {
        let key = |site, channel| ImageKey { well: "A01".parse().expect("well"), timepoint: 1, site, channel, z: 1 };
        let mask = || ndarray::Array2::<u32>::zeros((2, 2));
        let mut one = vec![("m".to_string(), key(1, 1), mask()), ("m".to_string(), key(2, 1), mask())];
        name_per_channel(&mut one);
        assert!(one.iter().all(|(n, ..)| n == "m"), "one channel keeps the name");
        let mut two = vec![("m".to_string(), key(1, 1), mask()), ("m".to_string(), key(1, 2), mask())];
        name_per_channel(&mut two);
        assert_eq!(two.iter().map(|(n, ..)| n.as_str()).collect::<Vec<_>>(), ["m_c1", "m_c2"]);
    }
}
