//! Phase 4a against the registered normalization: its targets are sample values, weighed against
//! what the plate's type stores (an 8-bit plate normalized to the 16-bit default saturated every
//! bright pixel, and nothing said so).

use hcs_core::{ParamValue, Registry};
use hcs_kernels as _;
use hcs_plan::compiler::{CompileOptions, CompiledPlate, PlateInfo, ResolvedPattern, compile};
use hcs_plan::pipeline::{FunctionCall, FunctionPattern, FunctionStep, Pipeline};
use hcs_plate::Component;

/// One well, 2 × 2 sites, 1 channel, 1 z-plane, storing samples in `range`.
fn plate(range: Option<(f64, f64)>) -> PlateInfo {
    PlateInfo { sample_range: range, ..PlateInfo::regular("/data/plate", 1, 1, (2, 2), 1, 1, 1, (32, 32)) }
}

const U8: Option<(f64, f64)> = Some((0.0, 255.0));

fn normalize(call: FunctionCall) -> Pipeline {
    let step = FunctionStep::new("normalize", call).variable_components([Component::Site]);
    Pipeline::new("normalize").step(step)
}

fn compiled(pipeline: &Pipeline, range: Option<(f64, f64)>) -> CompiledPlate {
    match compile(pipeline, &plate(range), &CompileOptions::new(Registry::global())) {
        Ok(c) => c,
        Err(errors) => panic!("did not compile: {errors:?}"),
    }
}

/// `(target_min, target_max)` as the plan runs them.
fn targets(plan: &CompiledPlate) -> (ParamValue, ParamValue) {
    let well = plan.wells.first().expect("a well");
    let ResolvedPattern::Call(call) = &well.steps[0].func else { panic!("one call") };
    (call.params["target_min"].clone(), call.params["target_max"].clone())
}

fn notes_about(plan: &CompiledPlate, param: &str) -> Vec<String> {
    plan.notes.iter().filter(|n| n.contains(param)).cloned().collect()
}

#[test]
fn on_an_8_bit_plate_the_default_target_is_255_and_a_note_says_so() {
    let plan = compiled(&normalize(FunctionCall::new("percentile_normalize")), U8);
    assert_eq!(targets(&plan), (ParamValue::Float(0.0), ParamValue::Float(255.0)));
    let notes = notes_about(&plan, "target_max");
    assert_eq!(notes.len(), 1, "{:?}", plan.notes);
    assert!(notes[0].contains("target_max = 255, not its default 65535"), "{}", notes[0]);
    assert!(notes[0].contains("step 1 `normalize`"), "{}", notes[0]);
    assert!(notes_about(&plan, "target_min").is_empty(), "0 is stored as it is: {:?}", plan.notes);
}

#[test]
fn on_a_16_bit_or_float_plate_the_defaults_stand_without_a_note() {
    for range in [Some((0.0, 65535.0)), None] {
        let plan = compiled(&normalize(FunctionCall::new("stack_percentile_normalize")), range);
        assert_eq!(targets(&plan), (ParamValue::Float(0.0), ParamValue::Float(65535.0)), "{range:?}");
        assert!(notes_about(&plan, "target_").is_empty(), "{range:?}: {:?}", plan.notes);
    }
}

#[test]
fn a_given_target_outside_the_stored_range_is_kept_and_reported() {
    let call = FunctionCall::new("percentile_normalize").param("target_min", -10.0).param("target_max", 65535.0);
    let plan = compiled(&normalize(call), U8);
    assert_eq!(targets(&plan), (ParamValue::Float(-10.0), ParamValue::Float(65535.0)), "what the pipeline says runs");
    let max = notes_about(&plan, "target_max");
    assert_eq!(max.len(), 1, "{:?}", plan.notes);
    assert!(max[0].contains("target_max = 65535") && max[0].contains("clamped to 255"), "{}", max[0]);
    let min = notes_about(&plan, "target_min");
    assert!(min.len() == 1 && min[0].contains("clamped to 0"), "{:?}", plan.notes);
}

#[test]
fn a_default_the_functions_rules_would_refuse_is_left_as_declared() {
    // target_min 300 with target_max 255 breaks `target_min < target_max`: the plan keeps the
    // declared 65535 (a run that the kernel would refuse is worse) and says both are clamped.
    let call = FunctionCall::new("percentile_normalize").param("target_min", 300.0);
    let plan = compiled(&normalize(call), U8);
    assert_eq!(targets(&plan), (ParamValue::Float(300.0), ParamValue::Float(65535.0)));
    assert_eq!(notes_about(&plan, "clamped").len(), 2, "{:?}", plan.notes);
}

#[test]
fn every_call_of_a_chain_and_a_dict_is_fitted() {
    let chain = FunctionPattern::Chain(vec![
        FunctionCall::new("percentile_normalize").into(),
        FunctionCall::new("percentile_normalize").param("target_max", 200.0).into(),
    ]);
    let step = FunctionStep::new("twice", chain).variable_components([Component::Site]);
    let plan = compiled(&Pipeline::new("chain").step(step), U8);
    let well = plan.wells.first().expect("a well");
    let maxima: Vec<ParamValue> = well.steps[0].func.calls().iter().map(|c| c.params["target_max"].clone()).collect();
    assert_eq!(maxima, [ParamValue::Float(255.0), ParamValue::Float(200.0)], "the given 200 stays");

    let dict = FunctionPattern::Dict(
        [("1".to_string(), FunctionPattern::from(FunctionCall::new("percentile_normalize")))].into_iter().collect(),
    );
    let step =
        FunctionStep::new("by channel", dict).group_by(Component::Channel).variable_components([Component::Site]);
    let plan = compiled(&Pipeline::new("dict").step(step), U8);
    let well = plan.wells.first().expect("a well");
    assert_eq!(well.steps[0].func.calls()[0].params["target_max"], ParamValue::Float(255.0));
}
