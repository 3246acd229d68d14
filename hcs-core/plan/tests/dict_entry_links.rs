//! Special I/O around dict patterns (issue 19): each group of a dict step runs only the entry its
//! `group_by` value selects, in no defined order, so a special input linked to *another entry* of
//! the same step (or from inside a dict to a call after it) is a compile error; a dict entry
//! reading a special output of an earlier step, a later step reading a dict entry's output, and
//! links inside one entry compile.

use hcs_core::{NdarrayStack, Registry};
use hcs_macros::memory;
use hcs_plan::compiler::{CompileOptions, CompiledPlate, PlateInfo, SpecialInputPlan, compile};
use hcs_plan::pipeline::error::EntryLink;
use hcs_plan::pipeline::{FunctionPattern, FunctionStep, Pipeline, PipelineError};
use hcs_plate::Component;

#[memory(ndarray)]
#[hcs_macros::special_outputs(positions)]
fn compute_positions(stack: NdarrayStack) -> (NdarrayStack, Vec<(f64, f64)>) {
    (stack, Vec::new())
}

#[memory(ndarray)]
#[hcs_macros::special_inputs(positions)]
fn assemble_stack(stack: NdarrayStack, positions: &Vec<(f64, f64)>) -> NdarrayStack {
    let _ = positions;
    stack
}

#[memory(ndarray)]
fn smooth_stack(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn registry() -> Registry {
    Registry::from_contracts([compute_positions::FUNC, assemble_stack::FUNC, smooth_stack::FUNC])
}

/// 1 well, 2 × 2 sites, 2 channels, 3 z-planes.
fn plate() -> PlateInfo {
    PlateInfo::regular("/data/plate", 1, 1, (2, 2), 2, 3, 1, (16, 16))
}

/// A dict step routed by channel, with every other component stacked: one call per entry.
fn per_channel(name: &str, pattern: FunctionPattern) -> FunctionStep {
    FunctionStep::new(name, pattern).group_by(Component::Channel).variable_components([Component::Site, Component::Z])
}

/// One call per well.
fn whole_well(name: &str, pattern: impl Into<FunctionPattern>) -> FunctionStep {
    FunctionStep::new(name, pattern).variable_components([Component::Site, Component::Channel, Component::Z])
}

fn rejected(pipeline: &Pipeline, registry: &Registry) -> Vec<PipelineError> {
    match compile(pipeline, &plate(), &CompileOptions::new(registry)) {
        Ok(_) => panic!("`{}` compiled, but should not", pipeline.name),
        Err(errors) => errors,
    }
}

fn compiled(pipeline: &Pipeline, registry: &Registry) -> CompiledPlate {
    match compile(pipeline, &plate(), &CompileOptions::new(registry)) {
        Ok(c) => c,
        Err(errors) => panic!("`{}` does not compile: {errors:#?}", pipeline.name),
    }
}

const SIBLING_MESSAGE: &str = "step 2 `stitch`: dict entry \"2\" (`assemble_stack`) takes special input `positions` from dict entry \"1\" (`compute_positions`) of the same step, but each dict entry runs on its own groups, in no defined order, so one entry cannot feed another; compute `positions` in an earlier step and read it here";

#[test]
fn a_dict_entry_reading_a_sibling_entrys_special_output_is_rejected() {
    let r = registry();
    let pipeline = Pipeline::new("siblings")
        .step(FunctionStep::new("smooth", "smooth_stack"))
        .step(per_channel("stitch", FunctionPattern::dict([("1", "compute_positions"), ("2", "assemble_stack")])));
    let errors = rejected(&pipeline, &r);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let PipelineError::DictEntryLink { step, link, .. } = &errors[0] else {
        panic!("not a dict-entry link error: {:?}", errors[0]);
    };
    let EntryLink { key, producer, producer_path, consumer, consumer_path } = &**link;
    assert_eq!((step.index, step.name.as_str(), key.as_str()), (2, "stitch", "positions"));
    assert_eq!((producer.as_str(), producer_path.as_slice()), ("compute_positions", ["1".to_string()].as_slice()));
    assert_eq!((consumer.as_str(), consumer_path.as_slice()), ("assemble_stack", ["2".to_string()].as_slice()));
    let text = errors[0].to_string();
    assert_eq!(text, SIBLING_MESSAGE);
    for part in
        ["step 2 `stitch`", "\"1\"", "\"2\"", "`positions`", "compute `positions` in an earlier step and read it here"]
    {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn the_pipeline_file_of_issue_19_is_rejected_at_the_consumers_line() {
    let r = registry();
    let toml = r#"
name = "issue 19"

[[steps]]
name = "smooth"
func = "smooth_stack"

[[steps]]
name = "stitch"
group_by = "channel"
variable_components = ["site", "z_index"]
func = { dict = { "1" = "compute_positions", "2" = "assemble_stack" } }
"#;
    let (pipeline, map) = Pipeline::from_toml(toml).expect("a valid pipeline file");
    let options = CompileOptions { source: Some(&map), ..CompileOptions::new(&r) };
    let errors: Vec<String> = match compile(&pipeline, &plate(), &options) {
        Ok(_) => panic!("the issue-19 pipeline compiled"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(errors, [format!("line 12: {SIBLING_MESSAGE}")]);
}

#[test]
fn a_call_after_a_dict_reading_an_entrys_special_output_is_rejected() {
    let r = registry();
    let pipeline = Pipeline::new("after").step(per_channel(
        "stitch",
        FunctionPattern::chain([FunctionPattern::dict([("1", "compute_positions")]), "assemble_stack".into()]),
    ));
    let errors: Vec<String> = rejected(&pipeline, &r).iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "step 1 `stitch`: `assemble_stack` (outside the dict) takes special input `positions` from dict entry \"1\" (`compute_positions`) of the same step, but that entry runs only on the groups its key selects, so its special outputs reach no call outside it; compute `positions` in an earlier step and read it here"
        ]
    );
    // Nested in another entry of the same dict, inside a chain: still another entry.
    let nested = Pipeline::new("nested").step(per_channel(
        "stitch",
        FunctionPattern::dict([
            ("1", FunctionPattern::chain(["smooth_stack", "compute_positions"])),
            ("2", FunctionPattern::chain(["smooth_stack", "assemble_stack"])),
        ]),
    ));
    let errors = rejected(&nested, &r);
    assert!(matches!(&errors[..], [PipelineError::DictEntryLink { .. }]), "{errors:#?}");
}

#[test]
fn a_dict_entry_reading_a_special_output_of_an_earlier_step_compiles_and_links_to_that_step() {
    let r = registry();
    let pipeline = Pipeline::new("earlier")
        .step(whole_well("positions", "compute_positions"))
        .step(per_channel("stitch", FunctionPattern::dict([("1", "smooth_stack"), ("2", "assemble_stack")])));
    let plan = compiled(&pipeline, &r);
    let stitch = &plan.wells[0].steps[1];
    assert_eq!(
        stitch.special_inputs["positions"],
        SpecialInputPlan::Step {
            step: 1,
            function: "compute_positions".into(),
            memory_key: "special/positions".into(),
            by: Vec::new()
        }
    );
}

#[test]
fn a_later_step_reading_a_dict_entrys_special_output_compiles_and_links_to_the_dict_step() {
    let r = registry();
    let pipeline = Pipeline::new("later")
        .step(per_channel("find", FunctionPattern::dict([("1", "compute_positions"), ("2", "smooth_stack")])))
        .step(whole_well("assemble", "assemble_stack"));
    let plan = compiled(&pipeline, &r);
    let steps = &plan.wells[0].steps;
    assert_eq!(steps[0].special_outputs["positions"].memory_key, "special/positions");
    assert_eq!(
        steps[1].special_inputs["positions"],
        SpecialInputPlan::Step {
            step: 1,
            function: "compute_positions".into(),
            memory_key: "special/positions".into(),
            by: Vec::new()
        }
    );
}

#[test]
fn links_inside_one_entry_or_into_an_entry_compile() {
    let r = registry();
    // A chain inside one entry: the same group runs both calls, in order.
    let inside = Pipeline::new("inside").step(per_channel(
        "stitch",
        FunctionPattern::dict([
            ("1", FunctionPattern::chain(["compute_positions", "assemble_stack"])),
            ("2", FunctionPattern::from("smooth_stack")),
        ]),
    ));
    compiled(&inside, &r);
    // A call before the dict feeds every entry: every group runs it first (once per channel, so
    // the step keeps one value per group).
    let before = Pipeline::new("before").step(
        per_channel(
            "stitch",
            FunctionPattern::chain([
                FunctionPattern::from("compute_positions"),
                FunctionPattern::dict([("1", "assemble_stack"), ("2", "smooth_stack")]),
            ]),
        )
        .merge_outputs(["positions"]),
    );
    compiled(&before, &r);
}

#[test]
fn a_value_the_dict_has_no_entry_for_passes_through_with_a_note() {
    let r = registry();
    let one = Pipeline::new("one").step(per_channel("smooth 1", FunctionPattern::dict([("1", "smooth_stack")])));
    let notes = compiled(&one, &r).notes;
    let said: Vec<&String> = notes.iter().filter(|n| n.contains("pass through")).collect();
    assert_eq!(
        said,
        ["step 1 `smooth 1`: the dict has no entry for channel 2: its planes pass through the step unchanged"],
        "{notes:#?}"
    );
    let both = Pipeline::new("both")
        .step(per_channel("smooth", FunctionPattern::dict([("1", "smooth_stack"), ("2", "smooth_stack")])));
    let notes = compiled(&both, &r).notes;
    assert!(!notes.iter().any(|n| n.contains("pass through")), "every channel has an entry: {notes:#?}");
}
