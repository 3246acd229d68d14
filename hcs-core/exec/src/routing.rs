//! Calling a step's resolved pattern on one group's stack: each call gets its input converted as
//! the plan says and exactly the special inputs its contract declares — from an earlier call of
//! the same group, from the step the plan links, or from the plate value the plan holds.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hcs_core::registry::Registry;
use hcs_core::special::{SpecialData, SpecialInputs};
use hcs_core::stack::Stack;
use hcs_core::{DeviceError, FunctionContract, InvokeError, PlaneCount, ViewsInvoker};
use hcs_device::convert;
use hcs_plan::compiler::{ResolvedCall, ResolvedPattern, SpecialInputPlan, StepPlan};
use hcs_plate::ImageKey;
use hcs_vfs::{Data, Store};
use ndarray::ArrayView2;

use crate::error::StepError;

/// A special output as the well keeps it for later steps: one value, or one per group when the
/// step merges them.
pub enum Special {
    /// One value for the well.
    One(SpecialData),
    /// One value per group.
    PerGroup(Vec<GroupValue>),
}

/// One group's value of a special output kept per group.
pub struct GroupValue {
    /// The group's label (`t2`, `c1_z3`), for file names.
    pub label: String,
    /// The group's first input plane: a later step's group takes the value whose group has its
    /// values of the components the plan names.
    pub first: ImageKey,
    /// The value.
    pub value: SpecialData,
}

/// Special outputs made by the calls of one group so far, in call order.
pub type Produced = Vec<(&'static str, SpecialData)>;

/// Keep a step's special output in the well's memory store at the plan's `memory_key`.
pub fn keep_special(memory: &dyn Store, memory_key: &str, special: Special) -> Result<(), StepError> {
    Ok(memory.save(Data::Value(Arc::new(special)), Path::new(memory_key))?)
}

/// The special output kept at `memory_key`, if a step made it.
fn kept_special(memory: &dyn Store, memory_key: &str) -> Option<Arc<Special>> {
    match memory.load(Path::new(memory_key)).ok()? {
        Data::Value(v) => v.downcast::<Special>().ok(),
        _ => None,
    }
}

/// Why a call failed: out of device memory (the step may be retried), or anything else.
pub enum CallError {
    /// The device ran out of memory.
    OutOfMemory(StepError),
    /// Any other failure.
    Other(StepError),
}

impl From<StepError> for CallError {
    fn from(e: StepError) -> Self {
        CallError::Other(e)
    }
}

impl From<DeviceError> for CallError {
    fn from(e: DeviceError) -> Self {
        if e.is_out_of_memory() { CallError::OutOfMemory(e.into()) } else { CallError::Other(e.into()) }
    }
}

impl From<InvokeError> for CallError {
    /// A function's own error is an out-of-memory when a device said so anywhere in its chain.
    fn from(e: InvokeError) -> Self {
        let oom = matches!(&e, InvokeError::Function { source, .. } if DeviceError::chain_is_out_of_memory(&**source));
        if oom { CallError::OutOfMemory(e.into()) } else { CallError::Other(e.into()) }
    }
}

/// The value of a plate-supplied special input, decoded from the plan.
fn plate_special(key: &str, value: &serde_json::Value) -> Result<SpecialData, StepError> {
    Ok(hcs_plan::pipeline::wiring::PlateInput::decode_key(key, value)?)
}

/// A call must return the plane count its contract declares (`planes = same | one`): later steps'
/// component values were planned from it.
fn check_planes(contract: &FunctionContract, received: usize, returned: usize) -> Result<(), StepError> {
    let declared = match contract.output_planes {
        PlaneCount::Same => received,
        PlaneCount::One => 1,
        PlaneCount::Any => return Ok(()),
    };
    if returned == declared {
        return Ok(());
    }
    Err(StepError::PlaneContract { function: contract.name, declared: contract.output_planes, received, returned })
}

/// What a call of `contract` on `stack` returns by its `#[output_shape]`: (height, width,
/// planes when declared). The compiler planned the steps after it from this.
fn declared_shape(
    contract: &FunctionContract,
    params: &hcs_core::params::ParamMap,
    (planes, (height, width)): (usize, (usize, usize)),
) -> Option<(usize, usize, Option<usize>)> {
    let shape = contract.output_shape?;
    let input = hcs_core::ImageGeometry { height, width, planes: Some(planes), sites: None };
    let out = (shape.eval)(params, Some(&input)).ok().flatten()?;
    Some((out.height, out.width, out.planes))
}

/// A call must return the size its `#[output_shape]` declares.
fn check_shape(
    contract: &FunctionContract,
    declared: Option<(usize, usize, Option<usize>)>,
    out: &Stack,
) -> Result<(), StepError> {
    let Some((height, width, planes)) = declared else { return Ok(()) };
    let (h, w) = out.plane_shape();
    let n = out.planes();
    if (h, w) == (height, width) && planes.is_none_or(|p| p == n) {
        return Ok(());
    }
    let planes = planes.map_or("?".to_string(), |p| p.to_string());
    Err(StepError::ShapeContract {
        function: contract.name,
        declared: format!("{planes} planes of {height}×{width}"),
        returned: format!("{n} planes of {h}×{w}"),
        expr: contract.output_shape.map_or("", |s| s.expr),
    })
}

/// A call whose function has a plane-views form, with that form ([`Router::views_form`]).
pub struct ViewsForm<'p> {
    /// The resolved call (its parameters).
    pub call: &'p ResolvedCall,
    /// The function's contract.
    pub contract: &'static FunctionContract,
    /// Its plane-views form.
    pub invoke: ViewsInvoker,
}

/// Runs a pattern for one group of one step.
pub struct Router<'a> {
    /// The functions.
    pub registry: &'a Registry,
    /// The GPU the plan assigned (`None`: the host).
    pub device: Option<u32>,
    /// The step.
    pub step: &'a StepPlan,
    /// The well's memory store: special outputs of earlier steps are at the plan's memory keys.
    pub memory: &'a dyn Store,
    /// The group's first plane: its component values route dict patterns.
    pub group_values: &'a ImageKey,
}

impl Router<'_> {
    fn contract(&self, call: &ResolvedCall) -> Result<&'static FunctionContract, StepError> {
        self.registry
            .get(&call.function, call.input_memory)
            .ok_or_else(|| StepError::NotRegistered { function: call.function.clone(), memory: call.input_memory })
    }

    /// The special input `key` of a call: made earlier in this group, else as the plan links it.
    fn special_input(&self, key: &str, produced: &Produced) -> Result<SpecialData, StepError> {
        if let Some((_, v)) = produced.iter().rev().find(|(k, _)| *k == key) {
            return Ok(v.clone());
        }
        match self.step.special_inputs.get(key) {
            Some(SpecialInputPlan::Plate { value }) => plate_special(key, value),
            Some(SpecialInputPlan::Step { step, function, memory_key, by }) => {
                match kept_special(self.memory, memory_key) {
                    Some(special) => match &*special {
                        Special::One(v) => Ok(v.clone()),
                        Special::PerGroup(values) => {
                            let mine =
                                |g: &&GroupValue| by.iter().all(|c| g.first.get(*c) == self.group_values.get(*c));
                            let mut matching = values.iter().filter(mine);
                            match (matching.next(), matching.next()) {
                                (Some(g), None) => Ok(g.value.clone()),
                                (first, _) => Err(StepError::SpecialPerGroup {
                                    key: key.to_string(),
                                    step: *step,
                                    group: by
                                        .iter()
                                        .map(|c| format!("{c} {}", self.group_values.value_text(*c)))
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                    found: if first.is_some() { "there are several" } else { "there is none" },
                                }),
                            }
                        }
                    },
                    None => Err(StepError::SpecialNotProduced {
                        key: key.to_string(),
                        step: *step,
                        function: function.clone(),
                    }),
                }
            }
            None => Err(StepError::SpecialNotPlanned { key: key.to_string() }),
        }
    }

    /// Every special input `contract` declares.
    fn inputs(&self, contract: &FunctionContract, produced: &Produced) -> Result<SpecialInputs, StepError> {
        let mut inputs = SpecialInputs::new();
        for spec in contract.special_inputs {
            inputs.insert(spec.key, self.special_input(spec.key, produced)?);
        }
        Ok(inputs)
    }

    /// Run `pattern` on `stack`; special outputs are appended to `produced`.
    pub fn run(&self, pattern: &ResolvedPattern, stack: Stack, produced: &mut Produced) -> Result<Stack, CallError> {
        match pattern {
            ResolvedPattern::Call(call) => {
                let start = Instant::now();
                let stack = convert(stack, call.convert_input, self.device)?;
                let converted = start.elapsed();
                let contract = self.contract(call)?;
                let inputs = self.inputs(contract, produced)?;
                let received = stack.planes();
                let declared = declared_shape(contract, &call.params, (received, stack.plane_shape()));
                let out = contract.call(stack, &call.params, &inputs)?;
                // GPU kernels run asynchronously: their time shows where the stream next waits
                // (a copy to the host, usually).
                tracing::trace!(
                    step = self.step.index,
                    function = contract.name,
                    memory = %out.stack.memory_type(),
                    convert_seconds = converted.as_secs_f64(),
                    call_seconds = (start.elapsed() - converted).as_secs_f64(),
                    "call done"
                );
                check_planes(contract, received, out.stack.planes())?;
                check_shape(contract, declared, &out.stack)?;
                produced.extend(out.special_outputs);
                Ok(out.stack)
            }
            ResolvedPattern::Chain { members } => {
                members.iter().try_fold(stack, |stack, m| self.run(m, stack, produced))
            }
            ResolvedPattern::Dict { by, .. } => {
                match pattern.dict_entry(&self.group_values.value_text(*by)) {
                    Some(entry) => self.run(entry, stack, produced),
                    None => Ok(stack), // no entry for this value: the planes pass through
                }
            }
        }
    }

    /// Call a plane-views form ([`Router::views_form`] found it) on planes that lie apart, with
    /// the checks [`Router::run`] makes on a stacked call. `planes` are non-empty and of one
    /// shape.
    pub fn run_views(
        &self,
        form: &ViewsForm<'_>,
        planes: &[ArrayView2<'_, f32>],
        produced: &mut Produced,
    ) -> Result<Stack, CallError> {
        let start = Instant::now();
        let (call, contract) = (form.call, form.contract);
        let inputs = self.inputs(contract, produced)?;
        let shape = planes.first().map_or((0, 0), |p| p.dim());
        let declared = declared_shape(contract, &call.params, (planes.len(), shape));
        let out = (form.invoke)(planes, &call.params, &inputs)?;
        tracing::trace!(
            step = self.step.index,
            function = contract.name,
            call_seconds = start.elapsed().as_secs_f64(),
            "call done on plane views"
        );
        check_planes(contract, planes.len(), out.stack.planes())?;
        check_shape(contract, declared, &out.stack)?;
        produced.extend(out.special_outputs);
        Ok(out.stack)
    }

    /// The plane-views form of `pattern` when it is one host call, taking its stack as it is,
    /// of a function that declares one: a group whose planes lie apart can be handed to it in
    /// place. (Chains and dicts, GPU steps and converted inputs take the stacked path.)
    pub fn views_form<'p>(&self, pattern: &'p ResolvedPattern) -> Option<ViewsForm<'p>> {
        let ResolvedPattern::Call(call) = pattern else { return None };
        if call.convert_input.is_some() || !call.input_memory.is_ndarray() || self.device.is_some() {
            return None;
        }
        let contract = self.contract(call).ok()?;
        contract.invoke_views.map(|invoke| ViewsForm { call, contract, invoke })
    }
}
