//! What the compiler produces: one plan per well, every decision written down, serializable to
//! stable JSON, and frozen ([`FrozenWellPlan`]) so nothing can change it after compilation.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::pipeline::{Config, InputSource};
use hcs_core::params::ParamMap;
use hcs_core::stack::{Conversion, MemoryType};
use hcs_plate::{Component, WellId};

/// Where a step reads or writes its image planes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Location {
    /// The input plate, read through its microscope format (never written).
    Plate {
        /// The plate folder.
        root: PathBuf,
    },
    /// Process memory, under a namespace of the well's store.
    Memory {
        /// E.g. `step2`.
        namespace: String,
    },
    /// TIFF files in a folder (file names carry the well and components).
    Disk {
        /// The folder.
        dir: PathBuf,
    },
    /// An OME-Zarr plate store (the well is a group inside it).
    Zarr {
        /// The store folder.
        store: PathBuf,
    },
}

impl Location {
    /// The folder on disk, for persistent locations.
    pub fn persistent_path(&self) -> Option<&PathBuf> {
        match self {
            Location::Disk { dir } => Some(dir),
            Location::Zarr { store } => Some(store),
            Location::Plate { .. } | Location::Memory { .. } => None,
        }
    }
}

/// The values each component has at some point of the pipeline; `None` where a step with
/// `planes = any` made them unknowable before run time.
pub type ComponentValues = BTreeMap<Component, Option<Vec<u32>>>;

/// One resolved function call: the variant chosen, every parameter (defaults filled in), and the
/// conversion its input needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResolvedCall {
    /// Registry name.
    pub function: String,
    /// Memory type of the chosen variant's input.
    pub input_memory: MemoryType,
    /// Memory type of its output.
    pub output_memory: MemoryType,
    /// Every parameter, explicit or default.
    pub params: ParamMap,
    /// Conversion applied to the incoming stack before the call, if its memory type differs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub convert_input: Option<Conversion>,
}

/// A function pattern with every call resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ResolvedPattern {
    /// One call.
    Call(ResolvedCall),
    /// Calls in sequence.
    Chain {
        /// The members, in order.
        members: Vec<ResolvedPattern>,
    },
    /// One pattern per value of `by`; groups with no entry pass through unchanged.
    Dict {
        /// The routing component (the step's `group_by`).
        by: Component,
        /// Component value → pattern.
        entries: BTreeMap<String, ResolvedPattern>,
    },
}

impl ResolvedPattern {
    /// Every call, depth first.
    pub fn calls(&self) -> Vec<&ResolvedCall> {
        match self {
            ResolvedPattern::Call(c) => vec![c],
            ResolvedPattern::Chain { members } => members.iter().flat_map(ResolvedPattern::calls).collect(),
            ResolvedPattern::Dict { entries, .. } => entries.values().flat_map(ResolvedPattern::calls).collect(),
        }
    }

    /// For a dict: the entry that routes groups whose `by` component has `value` (by
    /// [`dict_key_matches`](crate::pipeline::dict_key_matches)); `None` when no entry does (the
    /// planes pass through) or the pattern is not a dict.
    pub fn dict_entry(&self, value: &str) -> Option<&ResolvedPattern> {
        match self {
            ResolvedPattern::Dict { entries, .. } => {
                entries.iter().find(|(k, _)| crate::pipeline::dict_key_matches(k, value)).map(|(_, p)| p)
            }
            ResolvedPattern::Call(_) | ResolvedPattern::Chain { .. } => None,
        }
    }
}

/// Where a special input comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum SpecialInputPlan {
    /// Plate metadata, resolved at compile time.
    Plate {
        /// The value (e.g. `[3, 3]` for `grid_dimensions`).
        value: serde_json::Value,
    },
    /// The latest earlier producer (an earlier step, or an earlier call of the same chain).
    Step {
        /// 1-based step index of the producer.
        step: usize,
        /// The producing function.
        function: String,
        /// Key of the value in the well's memory store.
        memory_key: String,
        /// Where the producer keeps one value per group (`merge_outputs`): the components its
        /// groups differ in. Each group of this step takes the value of the producer's group
        /// with its own values of these (the compiler checked that it fixes them all). Empty:
        /// the producer's only value.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        by: Vec<Component>,
    },
}

/// A special output of a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecialOutputPlan {
    /// The producing function.
    pub function: String,
    /// Key of the value in the well's memory store.
    pub memory_key: String,
    /// Results folder the materializer writes into.
    pub results_dir: PathBuf,
    /// File stem (`<well>_<key>`); a merged output adds the group: `<well>_<group>_<key>`.
    pub stem: String,
    /// The materializer, if the function declares one.
    pub materializer: Option<String>,
    /// Produced once per group (declared in `merge_outputs`) instead of once per well.
    pub per_group: bool,
}

/// The OME-Zarr store a step writes, declared at compile time and created at run time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZarrStorePlan {
    /// The store folder.
    pub store: PathBuf,
    /// Every well the store is laid out for: the plate's, whichever a run compiles (its plate
    /// metadata lists those complete).
    pub wells: Vec<WellId>,
    /// Fields (sites) per well, as the data is at that step (where a `planes = any` step made
    /// the count unknown: the most it can be, see `axis_values`).
    pub fields: usize,
    /// Channels.
    pub channels: usize,
    /// Z-planes.
    pub z_planes: usize,
    /// Time points.
    pub timepoints: usize,
    /// `zstd` or `none`.
    pub codec: crate::pipeline::ZarrCompression,
    /// zstd level.
    pub level: i32,
    /// Written as NGFF 0.5 (Zarr v3), one shard per plane.
    pub ngff: String,
    /// The component values each axis index stands for (field 0 = the first site value, …):
    /// every value a plane written here can carry. A well that produces fewer (after a
    /// `planes = any` step) leaves the others unwritten, read as zeros — the compiler says so
    /// in a note.
    #[serde(default)]
    pub axis_values: BTreeMap<Component, Vec<u32>>,
}

/// The GPU a step of this well runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuAssignment {
    /// Device ordinal.
    pub device: u32,
    /// Wells this device runs at once (the executor holds a slot while the step runs): the
    /// configured `gpu_slots`, capped by the memory estimate.
    pub slots: usize,
    /// The well's estimated peak memory in MiB, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub well_mib: Option<u64>,
}

/// What a step's plan is for every well (shared between the wells' plans).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepCommon {
    /// 1-based position.
    pub index: usize,
    /// The step's name.
    pub name: String,
    /// The resolved configuration (defaults → global → run → step).
    pub config: Config,
    /// Components stacked into one call.
    pub variable_components: Vec<Component>,
    /// Dict routing component.
    pub group_by: Option<Component>,
    /// Where the input comes from, after chain breakers.
    pub input_source: InputSource,
    /// Component values of the input.
    pub components_in: ComponentValues,
    /// Component values of the output.
    pub components_out: ComponentValues,
    /// Calls per well (`None` when unknowable before run time).
    pub calls_per_well: Option<usize>,
    /// Where the input planes are read.
    pub reads: Location,
    /// Where the output planes are written.
    pub writes: Location,
    /// The step (1-based) that reads this step's output planes: their last reader, after which
    /// they are freed. `None` when no later step reads them: the executor then keeps them only
    /// for this step's own writes (checkpoint, preview, final output). Required when a plan is
    /// read back: a plan written without it (an older hcs) is refused rather than read as "no
    /// reader", which would drop every intermediate.
    #[serde(deserialize_with = "present_option")]
    pub read_by: Option<usize>,
    /// The zarr store the output goes to, if the step writes one.
    pub zarr_store: Option<ZarrStorePlan>,
    /// The zarr store of the step's checkpoint, if it materializes to zarr.
    pub checkpoint_zarr_store: Option<ZarrStorePlan>,
    /// The function pattern, resolved: the variant of every call is chosen here.
    pub func: ResolvedPattern,
    /// For a pattern with GPU calls: the same pattern on the CPU variants (same parameters),
    /// which the executor switches to after a device runs out of memory when `gpu_policy`
    /// allows. `None`: no GPU call, or some GPU function has no ndarray twin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_fallback: Option<ResolvedPattern>,
    /// Conversion of the last call's output back to host memory for storage, if needed.
    pub convert_output: Option<Conversion>,
    /// Memory type the step's output is kept in: `ndarray`, or a GPU type when the next step
    /// continues on the device.
    #[serde(default, skip_serializing_if = "MemoryType::is_ndarray")]
    pub output_memory: MemoryType,
    /// Special inputs by key.
    pub special_inputs: BTreeMap<String, SpecialInputPlan>,
    /// Estimated bytes of the step's output for one well (f32 planes), if known.
    pub estimated_output_bytes: Option<u64>,
    /// Where the step's output is published while the run goes on (`visualize = true`).
    pub preview: Option<PreviewPlan>,
    /// Size of an output pixel in plate pixels (1 unless a call such as a binning changed it;
    /// `None` when it cannot be told before the run).
    #[serde(default = "unit_scale", skip_serializing_if = "is_unit_scale")]
    pub pixel_scale: Option<f64>,
    /// Where the output's first pixel lies, `(y, x)` in plate pixels: `(0, 0)` unless a call
    /// such as a crop moved it (also when it cannot be told before the run, said in a note).
    #[serde(default, skip_serializing_if = "is_origin")]
    pub pixel_origin: (f64, f64),
    /// On a step whose chain starts with a call a later step repeats: after that first call,
    /// each group's planes are also kept in memory for that step (see [`SharedResult`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<SharedResult>,
    /// On the step that repeats it: its output is the earlier step's first call's result, read
    /// from memory (its `reads`), and its own call does not run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuses: Option<SharedResult>,
}

/// A call's result shared between two steps: a later step's only call is the first call of an
/// earlier step's chain, with the same parameters, on the same planes in the same groups (both
/// read the plate). The earlier step keeps each group's planes as that call returns them, and
/// the later step takes them instead of reading the plate and computing them again. Its output
/// is the same by construction: the same call on the same input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedResult {
    /// The other step (1-based): the one that reuses the result (on the sharing step), or the
    /// one that shares it (on the reusing step).
    pub step: usize,
    /// Where the planes wait in the well's memory.
    pub namespace: String,
}

/// An `Option` field that must be present (`null` for `None`): serde lets a missing `Option`
/// field read as `None` unless the field has its own deserializer.
fn present_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    <Option<usize> as serde::Deserialize>::deserialize(d)
}

/// `(0, 0)`: the plate's own origin.
fn is_origin(o: &(f64, f64)) -> bool {
    *o == (0.0, 0.0)
}

/// A step's live preview: an OME-Zarr store (wells appear as they finish) and PNG thumbnails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PreviewPlan {
    /// The preview store, declared like any other.
    pub store: ZarrStorePlan,
    /// Folder of `<well>.png` thumbnails.
    pub thumbnails: PathBuf,
}

/// Everything decided about one step for one well: the shared part (reachable through `Deref`)
/// and what is the well's own. Serializes as one flat object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepPlan {
    /// The part every well shares.
    #[serde(flatten)]
    pub common: Arc<StepCommon>,
    /// A persistent checkpoint of the output, when the step materializes this well.
    pub checkpoint: Option<Location>,
    /// Special outputs by key (file names carry the well).
    pub special_outputs: BTreeMap<String, SpecialOutputPlan>,
    /// The GPU, for steps with GPU calls.
    pub gpu: Option<GpuAssignment>,
}

impl Deref for StepPlan {
    type Target = StepCommon;
    fn deref(&self) -> &StepCommon {
        &self.common
    }
}

/// Everything decided for one well.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WellPlan {
    /// The well.
    pub well: WellId,
    /// The pipeline's name.
    pub pipeline: String,
    /// The input plate.
    pub plate: PathBuf,
    /// The output plate folder.
    pub output_root: PathBuf,
    /// Estimated peak bytes of one well's in-memory intermediates, if known, including
    /// [`Self::write_behind_bytes`].
    pub estimated_peak_bytes: Option<u64>,
    /// How many bytes of encoded plane files may wait for the disk while the well computes on
    /// (its write-behind buffer; at least one file waits whatever this says). Plans written
    /// before the buffer was planned read as 0: one file at a time.
    #[serde(default)]
    pub write_behind_bytes: u64,
    /// Why intermediates go to scratch files instead of memory, if they do.
    pub spill_reason: Option<String>,
    /// The steps in order.
    pub steps: Vec<StepPlan>,
    /// Runs of consecutive steps that the executor takes one part of the well at a time (see
    /// [`Segment`]); steps outside every segment run on the whole well.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<Segment>,
}

impl WellPlan {
    /// The special outputs this well's steps write to files (those whose function declares a
    /// materializer), in step order: `(1-based step, key, output)`. The files lie in the
    /// output's `results_dir`, named by its `stem` (one per well) or `<well>_<group>_<key>` (one
    /// per group, `per_group`), each with the materializer's own suffixes.
    pub fn materialized_outputs(&self) -> impl Iterator<Item = (usize, &str, &SpecialOutputPlan)> {
        self.steps.iter().flat_map(|s| {
            s.special_outputs.iter().filter(|(_, o)| o.materializer.is_some()).map(|(k, o)| (s.index, k.as_str(), o))
        })
    }
}

/// Consecutive steps that no group of spans two values of `by`: the executor runs all of them on
/// the planes of one value of `by` (one channel, say), then all of them on the next, so the
/// well holds one part's intermediates at a time instead of the whole well's. The output bytes
/// are the same: every group sees the same planes either way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// 1-based index of the first step.
    pub first: usize,
    /// 1-based index of the last step.
    pub last: usize,
    /// The components no step of the segment stacks (each with more than one value): one part
    /// per combination of their values.
    pub by: Vec<Component>,
    /// How many parts, when the values are known before the run.
    pub parts: Option<usize>,
}

impl Segment {
    /// Whether the 1-based step `index` is in the segment.
    pub fn contains(&self, index: usize) -> bool {
        (self.first..=self.last).contains(&index)
    }
}

/// A well's plan after compilation: shared, immutable by type (no `&mut` access exists), and
/// serializable. Deserializing gives a frozen plan again (e.g. on a cluster node).
#[derive(Clone, Debug, PartialEq)]
pub struct FrozenWellPlan(Arc<WellPlan>);

impl FrozenWellPlan {
    /// Freeze a plan.
    pub fn freeze(plan: WellPlan) -> Self {
        Self(Arc::new(plan))
    }
}

impl Deref for FrozenWellPlan {
    type Target = WellPlan;
    fn deref(&self) -> &WellPlan {
        &self.0
    }
}

impl Serialize for FrozenWellPlan {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for FrozenWellPlan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        WellPlan::deserialize(d).map(FrozenWellPlan::freeze)
    }
}

fn unit_scale() -> Option<f64> {
    Some(1.0)
}

fn is_unit_scale(scale: &Option<f64>) -> bool {
    *scale == Some(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(function: &str) -> ResolvedPattern {
        ResolvedPattern::Call(ResolvedCall {
            function: function.into(),
            input_memory: MemoryType::Ndarray,
            output_memory: MemoryType::Ndarray,
            params: ParamMap::new(),
            convert_input: None,
        })
    }

    #[test]
    fn a_dict_routes_by_the_shared_key_rule() {
        let entries = [("01".to_string(), call("a")), ("2".to_string(), call("b"))].into_iter().collect();
        let dict = ResolvedPattern::Dict { by: Component::Channel, entries };
        let name = |v: &str| dict.dict_entry(v).map(|p| p.calls()[0].function.clone());
        assert_eq!(name("1").as_deref(), Some("a"));
        assert_eq!(name("2").as_deref(), Some("b"));
        assert_eq!(name("3"), None, "no entry: the planes pass through");
        assert_eq!(call("a").dict_entry("1"), None);
    }
}
