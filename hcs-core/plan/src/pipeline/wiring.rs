//! The wiring rules of a pipeline — which producer feeds each special input, whether a dict
//! pattern can be routed, whether two adjacent memory types connect — written once, as `const fn`s.
//!
//! The runtime checks ([`super::check`], the compiler's phase 1 and 4) call them on registry
//! contracts; `hcs::pipeline!` makes rustc evaluate the very same functions on the `FUNC`
//! constants of the functions a Rust pipeline names, so a Rust pipeline and its pipeline-file twin
//! can never be judged differently. The messages they build are the runtime errors' text.

use std::any::TypeId;

use hcs_core::contract::FunctionContract;
use hcs_core::special::SpecialData;
use hcs_core::stack::MemoryType;

use super::const_text::ConstText;

/// A special input the compiler supplies from the plate's metadata instead of an earlier step —
/// the one definition of these inputs: their keys, the Rust types the plate supplies them as,
/// the value the compiler freezes into the plan ([`PlateInput::plate_value`], next to
/// [`PlateInfo`](crate::compiler::PlateInfo)) and how the executor turns that JSON value back into
/// special data ([`PlateInput::decode`]).
///
/// The order is the slot order of `hcs_core::__private::PlateCall`, the plate as a producer in
/// `pipeline!`'s compile-time type check ([`PlateInput::index`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlateInput {
    /// `grid_dimensions`: the site grid, `(rows, columns)`, as `(u32, u32)`.
    GridDimensions,
    /// `pixel_size`: the pixel size in µm, as `f64`.
    PixelSize,
    /// `site_overlap`: the overlap fraction `(x, y)` of neighbouring sites that the plate's stage
    /// positions give, as `Option<(f64, f64)>` — always supplied, `None` where the plate's
    /// metadata cannot say (the consumer then finds it another way, and says so).
    SiteOverlap,
}

impl PlateInput {
    /// Every plate-supplied input, in slot order.
    pub const ALL: [PlateInput; 3] = [PlateInput::GridDimensions, PlateInput::PixelSize, PlateInput::SiteOverlap];

    /// The input whose special-input key is `key`, if the plate supplies it (usable in constants).
    pub const fn from_key(key: &str) -> Option<PlateInput> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if str_eq(Self::ALL[i].key(), key) {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The special-input key.
    pub const fn key(self) -> &'static str {
        match self {
            PlateInput::GridDimensions => "grid_dimensions",
            PlateInput::PixelSize => "pixel_size",
            PlateInput::SiteOverlap => "site_overlap",
        }
    }

    /// The position in [`PlateInput::ALL`] (and in [`PLATE_SUPPLIED_INPUTS`]).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The Rust type the plate supplies it as, for messages.
    pub const fn rust_type(self) -> &'static str {
        match self {
            PlateInput::GridDimensions => "(u32, u32)",
            PlateInput::PixelSize => "f64",
            PlateInput::SiteOverlap => "Option<(f64, f64)>",
        }
    }

    /// The `TypeId` of that type: a consumer must declare the input as exactly this type.
    pub fn type_id(self) -> TypeId {
        match self {
            PlateInput::GridDimensions => TypeId::of::<(u32, u32)>(),
            PlateInput::PixelSize => TypeId::of::<f64>(),
            PlateInput::SiteOverlap => TypeId::of::<Option<(f64, f64)>>(),
        }
    }

    /// Turn the value the plan holds (`SpecialInputPlan::Plate { value }`) back into the special
    /// data a function receives. The executor calls this for every plate-supplied input.
    pub fn decode(&self, value: &serde_json::Value) -> Result<SpecialData, PlateInputError> {
        let bad = |e: serde_json::Error| PlateInputError::Decode { input: *self, message: e.to_string() };
        Ok(match self {
            PlateInput::GridDimensions => {
                SpecialData::new(serde_json::from_value::<(u32, u32)>(value.clone()).map_err(bad)?)
            }
            PlateInput::PixelSize => SpecialData::new(serde_json::from_value::<f64>(value.clone()).map_err(bad)?),
            PlateInput::SiteOverlap => {
                SpecialData::new(serde_json::from_value::<Option<(f64, f64)>>(value.clone()).map_err(bad)?)
            }
        })
    }

    /// [`PlateInput::decode`] for the input named `key`, or [`PlateInputError::Unknown`].
    pub fn decode_key(key: &str, value: &serde_json::Value) -> Result<SpecialData, PlateInputError> {
        PlateInput::from_key(key).ok_or_else(|| PlateInputError::Unknown { key: key.to_string() })?.decode(value)
    }
}

/// Why a plate-supplied input has no value (compiler) or its planned value cannot be used (executor).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlateInputError {
    /// The plate's metadata does not record the value.
    #[error("the plate's metadata records no {}", match .0 { PlateInput::GridDimensions => "site grid", PlateInput::PixelSize => "pixel size", PlateInput::SiteOverlap => "site overlap" })]
    NotRecorded(PlateInput),
    /// The consuming function declares the input as another type than the plate supplies.
    #[error("the plate supplies it as `{}`, but the function takes another type", .0.rust_type())]
    WrongType(PlateInput),
    /// The value in the plan does not decode as the input's type.
    #[error("plate value of `{}`: {message}", input.key())]
    Decode {
        /// The input.
        input: PlateInput,
        /// The decoder's message.
        message: String,
    },
    /// The key is not a plate-supplied input.
    #[error("no plate value for `{key}`")]
    Unknown {
        /// The key.
        key: String,
    },
}

/// Keys of the special inputs the compiler supplies from the plate's metadata instead of an
/// earlier step ([`PlateInput::key`] of each of [`PlateInput::ALL`]).
pub const PLATE_SUPPLIED_INPUTS: [&str; 3] =
    [PlateInput::ALL[0].key(), PlateInput::ALL[1].key(), PlateInput::ALL[2].key()];

/// Why a dict pattern needs `group_by`.
pub const DICT_WITHOUT_GROUP_BY: &str = "a dict pattern needs `group_by` (the component whose value picks the entry)";

/// One step as the wiring rules see it: its name and the contracts of its calls, depth first
/// (chain members in order, dict entries in key order).
#[derive(Clone, Copy, Debug)]
pub struct StepShape<'a> {
    /// The step's name.
    pub name: &'a str,
    /// The contracts of its calls.
    pub calls: &'a [&'a FunctionContract],
}

/// Where a special input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Output `slot` of call `call` of step `step` (0-based; an earlier call of the consumer's own
    /// step counts): the latest producer before the consumer.
    Produced {
        /// The producing step.
        step: usize,
        /// The producing call within that step.
        call: usize,
        /// The index of the key among the producer's special outputs.
        slot: usize,
    },
    /// Supplied by the plate's metadata.
    Plate(PlateInput),
    /// Nothing before the consumer produces it; `later` is the first later step that does.
    Missing {
        /// The first later producing step, if any.
        later: Option<usize>,
    },
}

/// `a == b` for strings, usable in constants.
pub const fn str_eq(a: &str, b: &str) -> bool {
    bytes_eq(a.as_bytes(), b.as_bytes())
}

/// `a == b` for byte strings, usable in constants.
const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The index of `key` among `contract`'s special outputs.
pub const fn output_slot(contract: &FunctionContract, key: &str) -> Option<usize> {
    let mut i = 0;
    while i < contract.special_outputs.len() {
        if str_eq(contract.special_outputs[i].key, key) {
            return Some(i);
        }
        i += 1;
    }
    None
}

const fn produced_by(calls: &[&FunctionContract], before: usize, key: &str) -> Option<(usize, usize)> {
    let mut k = before;
    while k > 0 {
        k -= 1;
        if let Some(slot) = output_slot(calls[k], key) {
            return Some((k, slot));
        }
    }
    None
}

/// The producer of special input `key` of call `call` of step `step`: the latest earlier call of
/// the same step, else the latest call of the latest earlier step, else the plate, else missing.
pub const fn link(steps: &[StepShape<'_>], step: usize, call: usize, key: &str) -> Link {
    if let Some((call, slot)) = produced_by(steps[step].calls, call, key) {
        return Link::Produced { step, call, slot };
    }
    let mut s = step;
    while s > 0 {
        s -= 1;
        if let Some((call, slot)) = produced_by(steps[s].calls, steps[s].calls.len(), key) {
            return Link::Produced { step: s, call, slot };
        }
    }
    if let Some(input) = PlateInput::from_key(key) {
        return Link::Plate(input);
    }
    let mut s = step + 1;
    while s < steps.len() {
        if produced_by(steps[s].calls, steps[s].calls.len(), key).is_some() {
            return Link::Missing { later: Some(s) };
        }
        s += 1;
    }
    Link::Missing { later: None }
}

/// Whether this build converts stacks of memory type `from` into `to` (always for equal types):
/// host ↔ torch with feature `torch`, host ↔ cuda with `cuda`, torch ↔ cuda with both.
pub const fn conversion_exists(from: MemoryType, to: MemoryType) -> bool {
    let torch = cfg!(feature = "torch");
    let cuda = cfg!(feature = "cuda");
    match (from, to) {
        (MemoryType::Ndarray, MemoryType::Ndarray)
        | (MemoryType::Torch, MemoryType::Torch)
        | (MemoryType::Cuda, MemoryType::Cuda) => true,
        (MemoryType::Ndarray, MemoryType::Torch) | (MemoryType::Torch, MemoryType::Ndarray) => torch,
        (MemoryType::Ndarray, MemoryType::Cuda) | (MemoryType::Cuda, MemoryType::Ndarray) => cuda,
        (MemoryType::Torch, MemoryType::Cuda) | (MemoryType::Cuda, MemoryType::Torch) => torch && cuda,
    }
}

/// `step K `name`: ` — the prefix of every step error.
const fn step_prefix(text: ConstText, steps: &[StepShape<'_>], step: usize) -> ConstText {
    text.push("step").push_usize(step + 1).push(" `").push(steps[step].name).push("`: ")
}

/// The runtime error text (without a file line) for a special input with no earlier producer.
pub const fn missing_input_message(
    steps: &[StepShape<'_>],
    step: usize,
    function: &str,
    key: &str,
    later: Option<usize>,
) -> ConstText {
    let text = step_prefix(ConstText::new(), steps, step)
        .push("`")
        .push(function)
        .push("` needs special input `")
        .push(key)
        .push("`, but no earlier step produces it");
    match later {
        Some(l) => step_prefix(text.push(" (it is produced only later, by "), steps, l).pop(2).push(")"),
        None => text,
    }
}

/// Compile-time check used by `pipeline!`: input `input` of call `call` of step `step` has a
/// producer; returns the global index of the producing call (counting every step's calls in
/// order) and the producer's output slot — `(total calls, 0)` for an absent slot, and
/// `(total calls + 1, i)` for plate input `i` ([`PlateInput::index`]). Fails the constant with the runtime
/// error's text otherwise.
pub const fn const_link(steps: &[StepShape<'_>], step: usize, call: usize, input: usize) -> (usize, usize) {
    let contract = steps[step].calls[call];
    let total = total_calls(steps);
    if input >= contract.special_inputs.len() {
        return (total, 0);
    }
    let key = contract.special_inputs[input].key;
    match link(steps, step, call, key) {
        Link::Produced { step: s, call: k, slot } => (first_call(steps, s) + k, slot),
        Link::Plate(input) => (total + 1, input.index()),
        Link::Missing { later } => {
            let text = missing_input_message(steps, step, contract.name, key, later);
            panic!("{}", text.as_str())
        }
    }
}

/// Whether two dict keys select the same value of the routing component (`"1"`, `"01"` and
/// `"001"` do; see [`dict_key_matches`](super::dict_key_matches)), usable in constants.
pub const fn same_dict_key(a: &str, b: &str) -> bool {
    const fn significant(s: &str) -> &[u8] {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && b[i] == b'0' {
            i += 1;
        }
        // All zeros (or empty after a key like "00"): keep one "0"; an empty key stays empty.
        if i == b.len() && i > 0 { b.split_at(i - 1).1 } else { b.split_at(i).1 }
    }
    bytes_eq(significant(a), significant(b))
}

/// Whether the special outputs of a call whose dict path (the dict keys on its way through the
/// step's pattern, outermost first) is `producer` reach a later call of the *same step* with dict
/// path `consumer` at run time: each group runs only the dict entries its `group_by` value
/// selects, so they do exactly when every entry on the producer's path is also on the
/// consumer's — the producer's path is a prefix of the consumer's. Links between steps are not
/// affected: a step's special outputs are kept for the well once all its groups ran.
pub const fn entry_reaches(producer: &[&str], consumer: &[&str]) -> bool {
    if producer.len() > consumer.len() {
        return false;
    }
    let mut i = 0;
    while i < producer.len() {
        if !same_dict_key(producer[i], consumer[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// The runtime error text (after `step K `name`: `) for special input `key` of call `consumer`
/// (dict path `consumer_path`) linked to call `producer` (dict path `producer_path`) of the same
/// step, where [`entry_reaches`] says no.
pub const fn entry_link_message(
    key: &str,
    producer: &str,
    producer_path: &[&str],
    consumer: &str,
    consumer_path: &[&str],
) -> ConstText {
    // The level at which the two paths part: the producer's entry there exists (else it would
    // reach); the consumer's may not (it runs outside that dict).
    let mut d = 0;
    while d < consumer_path.len() && d < producer_path.len() && same_dict_key(producer_path[d], consumer_path[d]) {
        d += 1;
    }
    let producer_key = if d < producer_path.len() { producer_path[d] } else { "" };
    let mut text = ConstText::new();
    if d < consumer_path.len() {
        text = text.push("dict entry \"").push(consumer_path[d]).push("\" (`").push(consumer).push("`)");
    } else {
        text = text.push("`").push(consumer).push("` (outside the dict)");
    }
    text = text
        .push(" takes special input `")
        .push(key)
        .push("` from dict entry \"")
        .push(producer_key)
        .push("\" (`")
        .push(producer)
        .push("`) of the same step, but ");
    text = if d < consumer_path.len() {
        text.push("each dict entry runs on its own groups, in no defined order, so one entry cannot feed another")
    } else {
        text.push("that entry runs only on the groups its key selects, so its special outputs reach no call outside it")
    };
    text.push("; compute `").push(key).push("` in an earlier step and read it here")
}

impl StepShape<'_> {
    /// Compile-time check used by `pipeline!` (an associated function so that the generated code
    /// reaches it through the re-exported `StepShape`): special input `input` of call `call` of
    /// step `step` is not linked to a call of the same step in a dict entry the call does not run
    /// in ([`entry_reaches`]); `paths[k]` is the dict path of call `k` of that step. Fails the
    /// constant with the runtime error's text otherwise. A missing producer is
    /// [`const_link`]'s to report.
    pub const fn const_check_entry_link(
        steps: &[StepShape<'_>],
        step: usize,
        call: usize,
        input: usize,
        paths: &[&[&str]],
    ) {
        let contract = steps[step].calls[call];
        if input >= contract.special_inputs.len() {
            return;
        }
        let key = contract.special_inputs[input].key;
        if let Link::Produced { step: s, call: k, .. } = link(steps, step, call, key)
            && s == step
            && !entry_reaches(paths[k], paths[call])
        {
            let message = entry_link_message(key, steps[s].calls[k].name, paths[k], contract.name, paths[call]);
            let text = step_prefix(ConstText::new(), steps, step).push(message.as_str());
            panic!("{}", text.as_str())
        }
    }
}

/// Compile-time check used by `pipeline!`: a step with a dict pattern has a `group_by`.
pub const fn const_check_grouping(steps: &[StepShape<'_>], step: usize, has_dict: bool, has_group_by: bool) {
    if has_dict && !has_group_by {
        let text = step_prefix(ConstText::new(), steps, step).push(DICT_WITHOUT_GROUP_BY);
        panic!("{}", text.as_str())
    }
}

/// Compile-time check used by `pipeline!`: call `to` of step `step` can take what call `from`
/// returns (`None` is storage: `ndarray`).
pub const fn const_check_conversion(steps: &[StepShape<'_>], step: usize, from: Option<usize>, to: Option<usize>) {
    let calls = steps[step].calls;
    let out = match from {
        Some(k) => calls[k].output_memory,
        None => MemoryType::Ndarray,
    };
    let input = match to {
        Some(k) => calls[k].input_memory,
        None => MemoryType::Ndarray,
    };
    if !conversion_exists(out, input) {
        let taker = match to {
            Some(k) => calls[k].name,
            None => "storage",
        };
        let text = step_prefix(ConstText::new(), steps, step)
            .push("`")
            .push(taker)
            .push("` takes ")
            .push(input.name())
            .push(" stacks, but gets ")
            .push(out.name())
            .push(" from ")
            .push(match from {
                Some(k) => calls[k].name,
                None => "storage",
            })
            .push(", and this build has no ")
            .push(out.name())
            .push(" → ")
            .push(input.name())
            .push(" conversion");
        panic!("{}", text.as_str())
    }
}

/// The runtime error text (after `step K `name`: `) for a `merge_outputs` key no call of the
/// step produces.
pub const fn merge_output_message(key: &str) -> ConstText {
    ConstText::new().push("`merge_outputs` names `").push(key).push("`, which no function of this step produces")
}

/// Compile-time check used by `pipeline!`: some call of step `step` produces `merge_outputs` key `key`.
pub const fn const_check_merge_output(steps: &[StepShape<'_>], step: usize, key: &str) {
    let calls = steps[step].calls;
    if produced_by(calls, calls.len(), key).is_none() {
        let text = step_prefix(ConstText::new(), steps, step).push(merge_output_message(key).as_str());
        panic!("{}", text.as_str())
    }
}

/// How many calls all steps have together.
pub const fn total_calls(steps: &[StepShape<'_>]) -> usize {
    first_call(steps, steps.len())
}

/// The global index of step `step`'s first call.
pub const fn first_call(steps: &[StepShape<'_>], step: usize) -> usize {
    let mut n = 0;
    let mut s = 0;
    while s < step {
        n += steps[s].calls.len();
        s += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_core::contract::{PlaneCount, SourceLocation};
    use hcs_core::special::{SpecialInputSpec, SpecialOutputSpec};

    fn id() -> std::any::TypeId {
        std::any::TypeId::of::<u8>()
    }

    const fn contract(
        name: &'static str,
        special_inputs: &'static [SpecialInputSpec],
        special_outputs: &'static [SpecialOutputSpec],
    ) -> FunctionContract {
        FunctionContract {
            name,
            module_path: "test",
            crate_name: "test",
            input_memory: MemoryType::Ndarray,
            output_memory: MemoryType::Ndarray,
            output_planes: PlaneCount::Same,
            plane_shape: hcs_core::PlaneShape::Same,
            special_inputs,
            special_outputs,
            chain_breaker: false,
            params: &[],
            checks: &[],
            peak_memory: None,
            output_shape: None,
            pixel_scale: None,
            pixel_origin: None,
            doc: "",
            location: SourceLocation { file: "", line: 0, column: 0 },
            invoke: |_, _, _| Err(hcs_core::error::InvokeError::MissingParam { function: "test", param: "x" }),
            invoke_views: None,
        }
    }

    const OUT: &[SpecialOutputSpec] =
        &[SpecialOutputSpec { key: "positions", rust_type: "u8", type_id: id, materializer: None }];
    const IN: &[SpecialInputSpec] = &[SpecialInputSpec { key: "positions", rust_type: "u8", type_id: id }];
    const PRODUCER: FunctionContract = contract("produce", &[], OUT);
    const CONSUMER: FunctionContract = contract("consume", IN, &[]);
    const PLAIN: FunctionContract = contract("plain", &[], &[]);

    #[test]
    fn the_latest_earlier_producer_feeds_an_input() {
        let steps = [
            StepShape { name: "a", calls: &[&PRODUCER] },
            StepShape { name: "b", calls: &[&PLAIN, &PRODUCER] },
            StepShape { name: "c", calls: &[&CONSUMER] },
        ];
        assert_eq!(link(&steps, 2, 0, "positions"), Link::Produced { step: 1, call: 1, slot: 0 });
        assert_eq!(const_link(&steps, 2, 0, 0), (2, 0));
        assert_eq!(const_link(&steps, 2, 0, 5), (total_calls(&steps), 0));
        let same_step = [StepShape { name: "a", calls: &[&PRODUCER, &CONSUMER] }];
        assert_eq!(link(&same_step, 0, 1, "positions"), Link::Produced { step: 0, call: 0, slot: 0 });
        assert_eq!(link(&same_step, 0, 0, "grid_dimensions"), Link::Plate(PlateInput::GridDimensions));
        const PLATE_IN: &[SpecialInputSpec] = &[SpecialInputSpec { key: "pixel_size", rust_type: "f64", type_id: id }];
        const PLATE_USER: FunctionContract = contract("scale", PLATE_IN, &[]);
        let plate = [StepShape { name: "a", calls: &[&PLATE_USER] }];
        assert_eq!(const_link(&plate, 0, 0, 0), (2, 1));
    }

    #[test]
    fn plate_inputs_are_defined_once_and_match_pipeline_macro_slots() {
        use hcs_core::__private::{PlateCall, SpecialOutputAt};
        assert_eq!(PLATE_SUPPLIED_INPUTS, ["grid_dimensions", "pixel_size", "site_overlap"]);
        const GRID: Option<PlateInput> = PlateInput::from_key("grid_dimensions");
        assert_eq!(GRID, Some(PlateInput::GridDimensions));
        assert_eq!(PlateInput::from_key("positions"), None);
        for input in PlateInput::ALL {
            assert_eq!(PlateInput::from_key(input.key()), Some(input));
            assert_eq!(PlateInput::ALL[input.index()], input);
        }
        // `pipeline!` type-checks consumers against `PlateCall`'s slots: same types, same order.
        assert_eq!(TypeId::of::<<PlateCall as SpecialOutputAt<0>>::Value>(), PlateInput::ALL[0].type_id());
        assert_eq!(TypeId::of::<<PlateCall as SpecialOutputAt<1>>::Value>(), PlateInput::ALL[1].type_id());
        assert_eq!(TypeId::of::<<PlateCall as SpecialOutputAt<2>>::Value>(), PlateInput::ALL[2].type_id());
    }

    #[test]
    fn plate_values_decode_to_the_supplied_types() {
        let grid = PlateInput::GridDimensions.decode(&serde_json::json!([2, 3])).expect("grid");
        assert_eq!(grid.downcast_ref::<(u32, u32)>(), Some(&(2, 3)));
        let px = PlateInput::decode_key("pixel_size", &serde_json::json!(0.65)).expect("pixel size");
        assert_eq!(px.downcast_ref::<f64>(), Some(&0.65));
        let bad = PlateInput::PixelSize.decode(&serde_json::json!("x")).expect_err("not a number");
        assert!(bad.to_string().starts_with("plate value of `pixel_size`: "), "{bad}");
        let unknown = PlateInput::decode_key("positions", &serde_json::json!(1)).expect_err("not a plate input");
        assert_eq!(unknown.to_string(), "no plate value for `positions`");
        assert_eq!(
            PlateInputError::WrongType(PlateInput::GridDimensions).to_string(),
            "the plate supplies it as `(u32, u32)`, but the function takes another type"
        );
    }

    #[test]
    fn a_missing_producer_is_reported_with_the_later_one() {
        let steps = [StepShape { name: "use", calls: &[&CONSUMER] }, StepShape { name: "make", calls: &[&PRODUCER] }];
        assert_eq!(link(&steps, 0, 0, "positions"), Link::Missing { later: Some(1) });
        let text = missing_input_message(&steps, 0, "consume", "positions", Some(1));
        assert_eq!(
            text.as_str(),
            "step 1 `use`: `consume` needs special input `positions`, but no earlier step produces it (it is produced only later, by step 2 `make`)"
        );
        assert!(std::panic::catch_unwind(|| const_link(&steps, 0, 0, 0)).is_err());
        assert_eq!(link(&steps[..1], 0, 0, "positions"), Link::Missing { later: None });
    }

    #[test]
    fn conversions_follow_the_features() {
        for a in MemoryType::ALL {
            assert!(conversion_exists(a, a));
        }
        assert_eq!(conversion_exists(MemoryType::Ndarray, MemoryType::Torch), cfg!(feature = "torch"));
        assert_eq!(conversion_exists(MemoryType::Cuda, MemoryType::Ndarray), cfg!(feature = "cuda"));
        assert_eq!(
            conversion_exists(MemoryType::Torch, MemoryType::Cuda),
            cfg!(feature = "torch") && cfg!(feature = "cuda")
        );
    }

    #[test]
    fn a_chain_link_without_a_conversion_fails_the_check_naming_both_types() {
        // Only data: a torch contract can be written down in any build, so this checks the rule
        // `pipeline!` evaluates even where no torch function can be declared.
        const TORCH: FunctionContract = FunctionContract {
            input_memory: MemoryType::Torch,
            output_memory: MemoryType::Torch,
            ..contract("denoise", &[], &[])
        };
        let steps = [StepShape { name: "gpu", calls: &[&PLAIN, &TORCH] }];
        let link = std::panic::catch_unwind(|| const_check_conversion(&steps, 0, Some(0), Some(1)));
        let storage = std::panic::catch_unwind(|| const_check_conversion(&steps, 0, Some(1), None));
        assert_eq!(link.is_err(), !cfg!(feature = "torch"));
        if let Err(panic) = link {
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert_eq!(
                message,
                "step 1 `gpu`: `denoise` takes torch stacks, but gets ndarray from plain, and this build has no ndarray → torch conversion"
            );
        }
        assert_eq!(storage.is_err(), !cfg!(feature = "torch"));
        const_check_conversion(&steps, 0, None, Some(0));
    }

    #[test]
    fn a_special_output_reaches_only_calls_running_in_the_same_dict_entries() {
        assert!(same_dict_key("1", "01") && same_dict_key("0", "00") && same_dict_key("A01", "A01"));
        assert!(!same_dict_key("1", "10") && !same_dict_key("0", "") && !same_dict_key("1", "2"));
        assert!(entry_reaches(&[], &[]));
        assert!(entry_reaches(&[], &["2"]), "a call before the dict feeds every entry");
        assert!(entry_reaches(&["1"], &["01", "3"]), "inside the same entry");
        assert!(!entry_reaches(&["1"], &["2"]), "a sibling entry");
        assert!(!entry_reaches(&["1"], &[]), "a call after the dict");

        // Dict entries in key order, as `FunctionPattern::calls` flattens them.
        let steps = [StepShape { name: "stitch", calls: &[&PRODUCER, &CONSUMER] }];
        let siblings: &[&[&str]] = &[&["1"], &["2"]];
        let panic = std::panic::catch_unwind(|| StepShape::const_check_entry_link(&steps, 0, 1, 0, siblings))
            .expect_err("a sibling entry's output is rejected");
        assert_eq!(
            panic.downcast_ref::<String>().map(String::as_str),
            Some(
                "step 1 `stitch`: dict entry \"2\" (`consume`) takes special input `positions` from dict entry \"1\" (`produce`) of the same step, but each dict entry runs on its own groups, in no defined order, so one entry cannot feed another; compute `positions` in an earlier step and read it here"
            )
        );
        StepShape::const_check_entry_link(&steps, 0, 1, 0, &[&[], &["2"]]);
        StepShape::const_check_entry_link(&steps, 0, 1, 0, &[&["1"], &["1"]]);
        StepShape::const_check_entry_link(&steps, 0, 1, 5, siblings);
        // Produced by an earlier step: the entry reads the well's value.
        let earlier =
            [StepShape { name: "find", calls: &[&PRODUCER] }, StepShape { name: "use", calls: &[&PLAIN, &CONSUMER] }];
        StepShape::const_check_entry_link(&earlier, 1, 1, 0, siblings);
        let after = entry_link_message("positions", "produce", &["1"], "consume", &[]);
        assert!(
            after
                .as_str()
                .starts_with("`consume` (outside the dict) takes special input `positions` from dict entry \"1\"")
        );
    }

    #[test]
    fn grouping_needs_group_by_for_a_dict() {
        let steps = [StepShape { name: "route", calls: &[&PLAIN] }];
        const_check_grouping(&steps, 0, true, true);
        const_check_grouping(&steps, 0, false, false);
        assert!(std::panic::catch_unwind(|| const_check_grouping(&steps, 0, true, false)).is_err());
    }
}
