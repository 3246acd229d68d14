//! The compiler on small pipelines of test functions: plans, phases, and every compile error.

use hcs_core::{
    FunctionContract, InvokeError, InvokeOutput, MemoryType, NdarrayStack, ParamMap, PlaneCount, Registry,
    SourceLocation, SpecialInputs, Stack,
};
use hcs_macros::{chain_breaker, memory};
use hcs_plan::compiler::{
    CompileOptions, CompiledPlate, Conversion, ConversionTable, GpuInventory, Location, PlateInfo, ResolvedPattern,
    SharedResult, SpecialInputPlan, compile,
};
use hcs_plan::pipeline::{
    ConfigLayer, FallbackPolicy, FunctionCall, FunctionPattern, FunctionStep, GpuPolicy, InputSource, Pipeline, Workers,
};
use hcs_plate::{Component, WellId};
use hcs_vfs::Backend;

#[memory(ndarray)]
fn blur(stack: NdarrayStack, #[param(default = 1.0)] sigma: f64) -> NdarrayStack {
    let _ = sigma;
    stack
}

#[memory(ndarray, planes = one)]
fn zmax(stack: NdarrayStack) -> NdarrayStack {
    stack
}

#[memory(ndarray, planes = any)]
fn crop_z(stack: NdarrayStack) -> NdarrayStack {
    stack
}

#[memory(ndarray)]
#[hcs_macros::special_inputs(grid_dimensions)]
#[hcs_macros::special_outputs(positions = write_positions)]
fn positions(stack: NdarrayStack, grid_dimensions: &(u32, u32)) -> (NdarrayStack, Vec<(f64, f64)>) {
    let _ = grid_dimensions;
    (stack, Vec::new())
}

/// The positions' materializer: writes nothing (the compiler only needs its name).
fn write_positions(positions: &Vec<(f64, f64)>, target: &hcs_core::MaterializeTarget) -> hcs_core::MaterializeResult {
    let _ = (positions, target);
    Ok(Vec::new())
}

#[memory(ndarray, planes = one)]
#[hcs_macros::special_inputs(positions)]
fn assemble(stack: NdarrayStack, positions: &Vec<(f64, f64)>) -> NdarrayStack {
    let _ = positions;
    stack
}

#[memory(ndarray)]
#[hcs_macros::special_inputs(positions)]
fn wrong_positions(stack: NdarrayStack, positions: &Vec<u32>) -> NdarrayStack {
    let _ = positions;
    stack
}

#[memory(ndarray)]
#[hcs_macros::special_outputs(counts)]
fn count(stack: NdarrayStack) -> (NdarrayStack, u64) {
    (stack, 0)
}

#[memory(ndarray)]
#[hcs_macros::special_inputs(counts)]
fn use_counts(stack: NdarrayStack, counts: &u64) -> NdarrayStack {
    let _ = counts;
    stack
}

#[chain_breaker]
#[memory(ndarray)]
fn reset(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn passthrough(stack: Stack, _: &ParamMap, _: &SpecialInputs) -> Result<InvokeOutput, InvokeError> {
    Ok(InvokeOutput { stack, special_outputs: Vec::new() })
}

/// A function with only a torch variant (built by hand: `#[memory(torch)]` needs the feature).
const fn torch_contract(name: &'static str) -> FunctionContract {
    FunctionContract {
        name,
        module_path: "gpu",
        crate_name: "test",
        input_memory: MemoryType::Torch,
        output_memory: MemoryType::Torch,
        output_planes: PlaneCount::Same,
        plane_shape: hcs_core::PlaneShape::Same,
        special_inputs: &[],
        special_outputs: &[],
        chain_breaker: false,
        params: &[],
        checks: &[],
        peak_memory: None,
        output_shape: None,
        pixel_scale: None,
        pixel_origin: None,
        doc: "",
        location: SourceLocation { file: "gpu.rs", line: 1, column: 1 },
        invoke: passthrough,
        invoke_views: None,
    }
}

static DENOISE_TORCH: FunctionContract = torch_contract("denoise");
// The torch variant of `blur` declares the same parameters (variants must agree).
static BLUR_TORCH: FunctionContract = FunctionContract { params: blur::FUNC.params, ..torch_contract("blur") };

fn registry() -> Registry {
    Registry::from_contracts([
        blur::FUNC,
        zmax::FUNC,
        crop_z::FUNC,
        positions::FUNC,
        assemble::FUNC,
        wrong_positions::FUNC,
        count::FUNC,
        use_counts::FUNC,
        reset::FUNC,
        &DENOISE_TORCH,
        &BLUR_TORCH,
    ])
}

/// 2 × 2 wells, 2 × 2 sites, 2 channels, 3 z-planes, 64² tiles.
fn plate() -> PlateInfo {
    PlateInfo::regular("/data/plate1", 2, 2, (2, 2), 2, 3, 1, (64, 64))
}

fn well(name: &str) -> WellId {
    name.parse().expect("well")
}

fn options(registry: &Registry) -> CompileOptions<'_> {
    CompileOptions {
        registry,
        global: ConfigLayer::default(),
        overrides: ConfigLayer::default(),
        gpus: GpuInventory::none(),
        conversions: ConversionTable::none(),
        wells: None,
        source: None,
    }
}

fn compiled(pipeline: &Pipeline, options: &CompileOptions<'_>) -> CompiledPlate {
    match compile(pipeline, &plate(), options) {
        Ok(c) => c,
        Err(errors) => panic!("compile errors: {errors:#?}"),
    }
}

fn errors(pipeline: &Pipeline, options: &CompileOptions<'_>) -> Vec<String> {
    match compile(pipeline, &plate(), options) {
        Ok(_) => panic!("expected compile errors"),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// Projection, positions, assembly from the raw plate: the canonical shape.
fn stitching_pipeline() -> Pipeline {
    Pipeline::new("stitch")
        .step(FunctionStep::new("blur", FunctionCall::new("blur").param("sigma", 2.0)).materialize(None))
        .step(FunctionStep::new("z max", "zmax").variable_components([Component::Z]))
        .step(FunctionStep::new("positions", "positions").variable_components([Component::Site, Component::Channel]))
        .step(FunctionStep::new("assemble", "assemble").from_pipeline_start())
}

#[test]
fn a_stitching_pipeline_compiles_to_one_plan_per_well() {
    let r = registry();
    let plan = compiled(&stitching_pipeline(), &options(&r));
    assert_eq!(plan.wells.len(), 4);
    assert_eq!(plan.output_root, std::path::Path::new("/data/plate1_outputs"));
    let a01 = plan.well(well("A01")).expect("A01");
    let [blur, zmax, pos, asm] = &a01.steps[..] else { panic!("4 steps") };

    // Locations: the plate, memory between steps, the final output on disk, a checkpoint.
    assert_eq!(blur.reads, Location::Plate { root: "/data/plate1".into() });
    assert_eq!(blur.writes, Location::Memory { namespace: "step1".into() });
    assert_eq!(zmax.reads, blur.writes);
    assert_eq!(blur.checkpoint, Some(Location::Disk { dir: "/data/plate1_outputs/checkpoints/step1".into() }));
    assert_eq!(asm.reads, Location::Plate { root: "/data/plate1".into() });
    assert_eq!(asm.writes, Location::Disk { dir: "/data/plate1_outputs/images".into() });
    assert_eq!(asm.input_source, InputSource::PipelineStart);
    // Each output's last reader: the next step, except before a restart from the plate (the
    // positions step's planes have no reader) and after the last step.
    assert_eq!([blur.read_by, zmax.read_by, pos.read_by, asm.read_by], [Some(2), Some(3), None, None]);

    // Component flow: the projection leaves z 1; the raw plate has 3 again.
    assert_eq!(zmax.components_out[&Component::Z], Some(vec![1]));
    assert_eq!(pos.components_in[&Component::Z], Some(vec![1]));
    assert_eq!(asm.components_in[&Component::Z], Some(vec![1, 2, 3]));
    assert_eq!(blur.calls_per_well, Some(2 * 3), "channels × z");
    assert_eq!(pos.calls_per_well, Some(1));
    assert_eq!(asm.calls_per_well, Some(2 * 3));

    // Special I/O: the grid comes from the plate, positions from step 3.
    assert_eq!(pos.special_inputs["grid_dimensions"], SpecialInputPlan::Plate { value: serde_json::json!([2, 2]) });
    assert_eq!(
        asm.special_inputs["positions"],
        SpecialInputPlan::Step {
            step: 3,
            function: "positions".into(),
            memory_key: "special/positions".into(),
            by: Vec::new()
        }
    );
    let out = &pos.special_outputs["positions"];
    assert_eq!(out.stem, "A01_positions");
    assert_eq!(out.results_dir, std::path::Path::new("/data/plate1_outputs/results"));

    // Resolved pattern: defaults filled in, explicit values kept.
    let ResolvedPattern::Call(call) = &blur.func else { panic!("a call") };
    assert_eq!(call.params.get("sigma"), Some(&hcs_core::ParamValue::Float(2.0)));
    let ResolvedPattern::Call(call) = &zmax.func else { panic!("a call") };
    assert!(call.params.is_empty());
    assert_eq!(call.convert_input, None);
    // Estimates: 4 sites × 2 channels × 3 z of 64² f32 in, the mosaic keeps all site pixels.
    assert_eq!(blur.estimated_output_bytes, Some(4 * 2 * 3 * 64 * 64 * 4));
    assert_eq!(asm.estimated_output_bytes, Some(2 * 3 * 4 * 64 * 64 * 4));
    assert_eq!(plan.well(well("B02")).expect("B02").steps[2].special_outputs["positions"].stem, "B02_positions");
}

#[test]
fn plans_serialize_to_stable_json_and_read_back_frozen() {
    let r = registry();
    let a = compiled(&stitching_pipeline(), &options(&r));
    let b = compiled(&stitching_pipeline(), &options(&r));
    let ja = serde_json::to_string_pretty(&a).expect("json");
    assert_eq!(ja, serde_json::to_string_pretty(&b).expect("json"), "parallel compilation is deterministic");
    let back: CompiledPlate = serde_json::from_str(&ja).expect("read back");
    assert_eq!(back, a);
    assert!(ja.contains("\"backend\": \"memory\""), "{ja}");
    // A plan without `read_by` (an older hcs) is refused, not read as "no step reads this".
    let older = ja.replace("\"read_by\": 2,", "");
    assert_ne!(older, ja);
    let err = serde_json::from_str::<CompiledPlate>(&older).expect_err("refused");
    assert!(err.to_string().contains("missing field `read_by`"), "{err}");
}

#[test]
fn configuration_layers_resolve_per_step_and_show_in_the_plan() {
    let r = registry();
    let mut o = options(&r);
    o.global = ConfigLayer { workers: Some(Workers::Count(4)), zarr_level: Some(9), ..Default::default() };
    let pipeline = Pipeline::new("layers")
        .config(ConfigLayer { backend: Some(Backend::Zarr), zarr_level: Some(5), ..Default::default() })
        .step(FunctionStep::new("a", "blur"))
        .step(
            FunctionStep::new("b", "blur")
                .config(ConfigLayer { workers: Some(Workers::Count(1)), ..Default::default() }),
        );
    let plan = compiled(&pipeline, &o);
    let steps = &plan.wells[0].steps;
    assert_eq!(steps[0].config.workers, Workers::Count(4));
    assert_eq!(steps[1].config.workers, Workers::Count(1));
    assert_eq!(steps[1].config.zarr_level, 5);
    assert_eq!(steps[1].config.backend, Backend::Zarr);
    // Phase 2: the final output is an OME-Zarr store, declared with the data's shape.
    assert_eq!(steps[1].writes, Location::Zarr { store: "/data/plate1_outputs/images.ome.zarr".into() });
    let store = steps[1].zarr_store.as_ref().expect("a store");
    assert_eq!((store.fields, store.channels, store.z_planes, store.timepoints), (4, 2, 3, 1));
    assert_eq!((store.level, store.wells.len()), (5, 4));
    assert!(steps[0].zarr_store.is_none());
}

#[test]
fn a_chain_breaker_makes_the_next_step_read_the_plate() {
    let r = registry();
    let pipeline = Pipeline::new("breaker")
        .step(FunctionStep::new("z", "zmax").variable_components([Component::Z]))
        .step(FunctionStep::new("reset", "reset"))
        .step(FunctionStep::new("after", "blur"));
    let plan = compiled(&pipeline, &options(&r));
    let steps = &plan.wells[0].steps;
    assert_eq!(steps[2].input_source, InputSource::PipelineStart);
    assert_eq!(steps[2].reads, Location::Plate { root: "/data/plate1".into() });
    assert_eq!(steps[2].components_in[&Component::Z], Some(vec![1, 2, 3]));
}

#[test]
fn well_filters_limit_checkpoints_and_compiled_wells() {
    let r = registry();
    let pipeline = Pipeline::new("filter")
        .step(FunctionStep::new("a", "blur").materialize(Some(vec![well("A02")])))
        .step(FunctionStep::new("b", "blur"));
    let plan = compiled(&pipeline, &options(&r));
    assert!(plan.well(well("A01")).expect("A01").steps[0].checkpoint.is_none());
    assert!(plan.well(well("A02")).expect("A02").steps[0].checkpoint.is_some());
    let mut o = options(&r);
    o.wells = Some(vec![well("B01")]);
    let only = compiled(&pipeline, &o);
    assert_eq!(only.wells.iter().map(|w| w.well).collect::<Vec<_>>(), [well("B01")]);
}

/// Step 1 blurs twice; step 3 blurs the plate again as `again` says.
fn repeating_pipeline(again: FunctionCall) -> Pipeline {
    let twice = FunctionPattern::chain([FunctionCall::new("blur").param("sigma", 2.0), FunctionCall::new("blur")]);
    Pipeline::new("repeat")
        .step(FunctionStep::new("blur twice", twice))
        .step(FunctionStep::new("z max", "zmax").variable_components([Component::Z]))
        .step(FunctionStep::new("blur again", again).from_pipeline_start())
        .step(FunctionStep::new("z max again", "zmax").variable_components([Component::Z]))
}

#[test]
fn a_step_repeating_an_earlier_first_call_reuses_its_result_within_the_budget() {
    let r = registry();
    let shared = compiled(&repeating_pipeline(FunctionCall::new("blur").param("sigma", 2.0)), &options(&r));
    let steps = &shared.wells[0].steps;
    let at = "step1-shared".to_string();
    assert_eq!(steps[0].shares, Some(SharedResult { step: 3, namespace: at.clone() }));
    assert_eq!(steps[2].reuses, Some(SharedResult { step: 1, namespace: at.clone() }));
    assert_eq!(steps[2].reads, Location::Memory { namespace: at });
    assert_eq!(
        shared.notes,
        [
            "step 3 `blur again` repeats the first call of step 1 `blur twice` on the same planes: it takes that call's result, kept in memory (~0.4 MiB per well), instead of reading and computing it again (`config = { reuse_results = false }` on step 3 turns this off)"
        ]
    );
    // The plan reads back with the fields.
    let json = serde_json::to_string(&shared.wells[0]).expect("json");
    let back: hcs_plan::compiler::FrozenWellPlan = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back.steps[2].reuses, steps[2].reuses);
    // The well holds the kept planes (the whole well's, f32) from step 1 to step 3: its peak grows
    // by at most that much.
    let alone = |again: FunctionStep| {
        let mut pipeline = repeating_pipeline(FunctionCall::new("blur"));
        pipeline.steps[2] = again;
        compiled(&pipeline, &options(&r))
    };
    let off = ConfigLayer { reuse_results: Some(false), ..Default::default() };
    let not_shared = alone(
        FunctionStep::new("blur again", FunctionCall::new("blur").param("sigma", 2.0))
            .from_pipeline_start()
            .config(off),
    );
    assert_eq!(
        (not_shared.wells[0].steps[0].shares.clone(), not_shared.wells[0].steps[2].reuses.clone()),
        (None, None)
    );
    assert!(matches!(not_shared.wells[0].steps[2].reads, Location::Plate { .. }));
    assert!(not_shared.notes.is_empty(), "{:?}", not_shared.notes);
    let well_bytes = 4 * 2 * 3 * 64 * 64 * 4;
    let (with, without) = (shared.wells[0].estimated_peak_bytes, not_shared.wells[0].estimated_peak_bytes);
    let (with, without) = (with.expect("known"), without.expect("known"));
    assert!(with > without && with <= without + well_bytes, "{with} vs {without}");
    // Other parameters, another call: nothing to reuse.
    let other = compiled(&repeating_pipeline(FunctionCall::new("blur").param("sigma", 3.0)), &options(&r));
    assert_eq!(other.wells[0].steps[2].reuses, None);
    assert!(other.notes.is_empty(), "{:?}", other.notes);
    // Other groups (stacking z instead of sites): the calls see other planes together.
    let by_z = alone(
        FunctionStep::new("blur again", FunctionCall::new("blur").param("sigma", 2.0))
            .from_pipeline_start()
            .variable_components([Component::Z]),
    );
    assert_eq!(by_z.wells[0].steps[2].reuses, None);
    // A budget the well's peak fits without the kept planes but not with them: the call runs
    // again, and a note says why.
    let big = PlateInfo::regular("/data/plate1", 1, 1, (3, 3), 2, 3, 1, (1024, 1024));
    let pipeline = repeating_pipeline(FunctionCall::new("blur").param("sigma", 2.0));
    // The budget bounds the well's intermediates: its estimated peak less the files waiting
    // for the disk.
    let peak = |budget: u64| {
        let layer = ConfigLayer { memory_budget_mib: Some(budget), ..Default::default() };
        let plate = compile(&pipeline.clone().config(layer), &big, &options(&r)).expect("compiles");
        let w = &plate.wells[0];
        (w.steps[2].reuses.is_some(), w.estimated_peak_bytes.expect("known") - w.write_behind_bytes, plate.notes)
    };
    let (reused, with, _) = peak(4096);
    assert!(reused);
    let with_mib = with / (1024 * 1024);
    let (reused, without, notes) = peak(with_mib - 1);
    assert!(!reused);
    assert!(without < with);
    assert_eq!(notes.len(), 1, "{notes:?}");
    let shown = format!("{:.1}", with as f64 / 1048576.0);
    assert!(
        notes[0].ends_with(&format!(
            "would take the well's intermediates to an estimated {shown} MiB, over memory_budget_mib = {}: the call runs again",
            with_mib - 1
        )),
        "{}",
        notes[0]
    );
}

#[test]
fn a_memory_budget_sends_large_intermediates_to_scratch_files() {
    let r = registry();
    // 4 sites × 2 channels × 3 z × 64² × 4 B = 384 KiB in and out: over a 0.5 MiB budget? No: 768 KiB is.
    let small = ConfigLayer { memory_budget_mib: Some(1), ..Default::default() };
    let pipeline = Pipeline::new("budget").step(FunctionStep::new("a", "blur")).step(FunctionStep::new("b", "blur"));
    let within = compiled(&pipeline.clone().config(small), &options(&r));
    assert_eq!(within.wells[0].steps[0].writes, Location::Memory { namespace: "step1".into() });
    // Neither step stacks channels or z: both run one (channel, z) part of the well at a time, 6
    // parts of one call each, and the peak is one part's input and output (2 × 1/6 of the
    // well's planes; on the whole well it was one well's planes plus 2 × 1/6 in flight).
    assert_eq!(
        within.wells[0].segments,
        [hcs_plan::compiler::Segment { first: 1, last: 2, by: vec![Component::Channel, Component::Z], parts: Some(6) }]
    );
    let well_bytes = 4 * 2 * 3 * 64 * 64 * 4;
    // Plus the final output's files waiting for the disk: the whole well's planes as 16-bit
    // samples (under the cap).
    assert_eq!(within.wells[0].write_behind_bytes, well_bytes / 2);
    assert_eq!(within.wells[0].estimated_peak_bytes, Some(2 * well_bytes / 6 + well_bytes / 2));
    let big = PlateInfo::regular("/data/plate1", 1, 1, (3, 3), 4, 10, 1, (1024, 1024));
    // One call (9 sites × 1024² × 4 B = 36 MiB, × 3 working) fits 200 MiB; the well does not.
    let over = compile(
        &pipeline.clone().config(ConfigLayer { memory_budget_mib: Some(200), ..Default::default() }),
        &big,
        &options(&r),
    )
    .expect("compiles");
    let w = &over.wells[0];
    assert_eq!(w.steps[0].writes, Location::Disk { dir: "/data/plate1_outputs/.hcs/scratch/step1".into() });
    assert_eq!(w.steps[1].reads, w.steps[0].writes);
    let reason = w.spill_reason.as_deref().expect("a reason");
    assert_eq!(reason, "step 1 `a` holds ~2880.0 MiB per well (input + output), over memory_budget_mib = 200");
    // The files waiting for the disk are capped, however large the output.
    assert_eq!(w.write_behind_bytes, hcs_plan::compiler::materialize::WRITE_BEHIND_BYTES);
    // A call that cannot fit at all is refused, naming the step and the function.
    let refused = compile(
        &pipeline.config(ConfigLayer { memory_budget_mib: Some(100), ..Default::default() }),
        &big,
        &options(&r),
    )
    .expect_err("one call needs more than the budget");
    assert_eq!(
        refused[0].to_string(),
        "step 1 `a`: `blur` needs ~108 MiB per call (3 × its input of 1024×1024 images), over memory_budget_mib = 100"
    );
}

#[test]
fn a_call_that_cannot_fit_the_gpu_it_may_run_on_is_refused() {
    let r = registry();
    let mut o = options(&r);
    o.gpus = GpuInventory::simulated(1);
    o.gpus.devices[0].memory_mib = 64;
    o.conversions = ConversionTable::none()
        .with(MemoryType::Ndarray, MemoryType::Torch)
        .with(MemoryType::Torch, MemoryType::Ndarray);
    let big = PlateInfo::regular("/data/plate1", 1, 1, (3, 3), 1, 1, 1, (1024, 1024));
    let pipeline = Pipeline::new("gpu").step(FunctionStep::new("a", "blur"));
    let errors = compile(&pipeline, &big, &o).expect_err("108 MiB per call on a 64 MiB GPU");
    assert_eq!(
        errors[0].to_string(),
        "step 1 `a`: `blur` needs ~108 MiB per call (3 × its input of 1024×1024 images), over the 64 MiB of the smallest GPU"
    );
    // Kept on the CPU, the same call fits the (default 4096 MiB) budget.
    let cpu = pipeline.config(ConfigLayer { gpu_policy: Some(GpuPolicy::Never), ..Default::default() });
    assert!(compile(&cpu, &big, &o).is_ok());
}

#[test]
fn gpu_steps_get_devices_round_robin_and_conversions_are_planned() {
    let r = registry();
    let mut o = options(&r);
    o.gpus = GpuInventory::simulated(2);
    o.conversions = ConversionTable::none()
        .with(MemoryType::Ndarray, MemoryType::Torch)
        .with(MemoryType::Torch, MemoryType::Ndarray);
    let pipeline = Pipeline::new("gpu")
        .step(FunctionStep::new("denoise", FunctionPattern::chain(["zmax", "denoise", "blur"])))
        .step(FunctionStep::new("cpu", "zmax"));
    let plan = compiled(&pipeline, &o);
    let devices: Vec<Option<u32>> = plan.wells.iter().map(|w| w.steps[0].gpu.map(|g| g.device)).collect();
    assert_eq!(devices, [Some(0), Some(1), Some(0), Some(1)]);
    assert_eq!(plan.wells[0].steps[0].gpu.map(|g| g.slots), Some(2));
    assert_eq!(plan.wells[0].steps[1].gpu, None);
    let calls = plan.wells[0].steps[0].func.calls();
    // With a GPU, `blur` (which has both variants) runs its torch variant: no round trip in between.
    assert_eq!(calls[1].convert_input, Some(Conversion { from: MemoryType::Ndarray, to: MemoryType::Torch }));
    assert_eq!((calls[2].input_memory, calls[2].convert_input), (MemoryType::Torch, None));
    assert_eq!(
        plan.wells[0].steps[0].convert_output,
        Some(Conversion { from: MemoryType::Torch, to: MemoryType::Ndarray })
    );
}

#[test]
fn the_plan_records_the_cpu_fallback_of_every_gpu_step() {
    let r = registry();
    let mut o = options(&r);
    o.gpus = GpuInventory::simulated(1);
    o.conversions = ConversionTable::none()
        .with(MemoryType::Ndarray, MemoryType::Torch)
        .with(MemoryType::Torch, MemoryType::Ndarray);
    let pipeline = Pipeline::new("fallback")
        .step(FunctionStep::new("twins", FunctionPattern::chain(["zmax", "blur"])))
        .step(FunctionStep::new("torch only", "denoise"))
        .step(FunctionStep::new("cpu", "zmax"));
    let plan = compiled(&pipeline, &o);
    let steps = &plan.wells[0].steps;
    // `blur` runs its torch variant; the fallback is the same chain on the ndarray variants,
    // with the same parameters and no conversions.
    assert_eq!(steps[0].func.calls()[1].input_memory, MemoryType::Torch);
    let fallback = steps[0].cpu_fallback.as_ref().expect("a fallback for the GPU step");
    let calls = fallback.calls();
    assert_eq!(
        calls.iter().map(|c| (c.function.as_str(), c.input_memory)).collect::<Vec<_>>(),
        [("zmax", MemoryType::Ndarray), ("blur", MemoryType::Ndarray)]
    );
    assert!(calls.iter().all(|c| c.convert_input.is_none()));
    assert_eq!(calls[1].params, steps[0].func.calls()[1].params);
    // `denoise` has no ndarray twin: no fallback; a CPU step needs none.
    assert!(steps[1].gpu.is_some() && steps[1].cpu_fallback.is_none());
    assert!(steps[2].gpu.is_none() && steps[2].cpu_fallback.is_none());
    // The fallback is part of the plan a cluster task reads back.
    let json = serde_json::to_string(&*plan.wells[0]).expect("plan JSON");
    assert!(json.contains("\"cpu_fallback\""), "serialized with the plan");
}

#[test]
fn consecutive_gpu_steps_keep_the_data_on_the_device() {
    let r = registry();
    let mut o = options(&r);
    o.gpus = GpuInventory::simulated(1);
    o.conversions = ConversionTable::none()
        .with(MemoryType::Ndarray, MemoryType::Torch)
        .with(MemoryType::Torch, MemoryType::Ndarray);
    let pipeline = Pipeline::new("gpu")
        .step(FunctionStep::new("a", FunctionPattern::chain(["denoise", "blur"])))
        .step(FunctionStep::new("b", "blur"))
        .step(FunctionStep::new("c", "zmax"));
    let plan = compiled(&pipeline, &o);
    let steps = &plan.wells[0].steps;
    // a → b: both torch, b reads a's memory output: a keeps its output on the device.
    assert_eq!(steps[0].output_memory, MemoryType::Torch);
    assert_eq!(steps[0].convert_output, None);
    assert_eq!(steps[1].func.calls()[0].convert_input, None, "b starts from the device");
    // b → c: c is an ndarray function, so b's output comes back to the host.
    assert_eq!(steps[1].output_memory, MemoryType::Ndarray);
    assert_eq!(steps[1].convert_output, Some(Conversion { from: MemoryType::Torch, to: MemoryType::Ndarray }));
    // A checkpoint of a's output needs it on the host: then nothing is kept on the device.
    let checkpointed = Pipeline::new("gpu")
        .step(FunctionStep::new("a", FunctionPattern::chain(["denoise", "blur"])).materialize(None))
        .step(FunctionStep::new("b", "blur"));
    let plan = compiled(&checkpointed, &o);
    assert_eq!(plan.wells[0].steps[0].output_memory, MemoryType::Ndarray);
    assert_eq!(
        plan.wells[0].steps[1].func.calls()[0].convert_input,
        Some(Conversion { from: MemoryType::Ndarray, to: MemoryType::Torch })
    );
}

#[test]
fn gpu_wells_are_balanced_over_0_1_and_4_devices_and_the_policy_decides_without_one() {
    let r = registry();
    let plate = PlateInfo::regular("/data/plate24", 4, 6, (2, 2), 2, 3, 1, (256, 256));
    let pipeline = Pipeline::new("gpu").step(FunctionStep::new("denoise", FunctionPattern::chain(["zmax", "blur"])));
    for n in [0u32, 1, 4] {
        let mut o = options(&r);
        o.gpus = GpuInventory::simulated(n);
        o.conversions = ConversionTable::none()
            .with(MemoryType::Ndarray, MemoryType::Torch)
            .with(MemoryType::Torch, MemoryType::Ndarray);
        let plan = compile(&pipeline, &plate, &o).expect("prefer compiles with or without a GPU");
        let mut per_device = vec![0usize; n as usize];
        for w in &plan.wells {
            match w.steps[0].gpu {
                Some(g) => per_device[g.device as usize] += 1,
                None => assert_eq!(n, 0, "every well gets a device when there is one"),
            }
        }
        match n {
            0 => assert_eq!(plan.wells[0].steps[0].func.calls()[1].input_memory, MemoryType::Ndarray),
            _ => {
                assert_eq!(per_device, vec![24 / n as usize; n as usize], "{n} GPUs share 24 wells evenly");
                assert_eq!(plan.wells[0].steps[0].func.calls()[1].input_memory, MemoryType::Torch);
                // 2×2 sites × 2 ch × 3 z of 256² f32 in + out is well under the 80 GiB device.
                assert_eq!(plan.wells[0].steps[0].gpu.map(|g| g.slots), Some(2));
            }
        }
        // `require` without a GPU is an error naming the step; with one it is planned.
        let require =
            pipeline.clone().config(ConfigLayer { gpu_policy: Some(GpuPolicy::Require), ..Default::default() });
        match (n, compile(&require, &plate, &o)) {
            (0, Err(errors)) => assert!(
                errors.iter().any(|e| e.to_string().contains("step 1 `denoise`") && e.to_string().contains("require")),
                "{errors:?}"
            ),
            (0, Ok(_)) => panic!("require without a GPU must not compile"),
            (_, r) => assert!(r.is_ok(), "require with {n} GPUs compiles"),
        }
    }
}

#[test]
fn without_a_gpu_the_cpu_variant_is_chosen_under_prefer() {
    let r = registry();
    let pipeline = Pipeline::new("cpu").step(FunctionStep::new("b", "blur"));
    let plan = compiled(&pipeline, &options(&r));
    assert_eq!(plan.wells[0].steps[0].func.calls()[0].input_memory, MemoryType::Ndarray);
    assert_eq!(plan.wells[0].steps[0].gpu, None);
}

// ---------------------------------------------------------------------------------------------
// Every compile error, with its message.
// ---------------------------------------------------------------------------------------------

#[test]
fn error_a_step_or_dict_entry_that_calls_no_function() {
    let r = registry();
    let empty = Pipeline::new("e").step(FunctionStep::new("nothing", FunctionPattern::Chain(Vec::new())));
    assert_eq!(
        errors(&empty, &options(&r)),
        [
            "step 1 `nothing`: the step calls no function (an empty `func` list or dict would pass its input through unchanged); give it at least one"
        ]
    );
    let no_entries = Pipeline::new("e")
        .step(FunctionStep::new("nothing", FunctionPattern::Dict(Default::default())).group_by(Component::Channel));
    assert_eq!(errors(&no_entries, &options(&r)).len(), 1, "{:?}", errors(&no_entries, &options(&r)));
    let one_empty = Pipeline::new("e").step(
        FunctionStep::new(
            "per channel",
            FunctionPattern::Dict(
                [
                    ("1".to_string(), FunctionPattern::from("blur")),
                    ("2".to_string(), FunctionPattern::Chain(Vec::new())),
                ]
                .into(),
            ),
        )
        .group_by(Component::Channel),
    );
    assert_eq!(
        errors(&one_empty, &options(&r)),
        [
            "step 1 `per channel`: dict entry \"2\" calls no function (an empty `func` list or dict would pass its input through unchanged); give it at least one"
        ]
    );
}

#[test]
fn error_dict_key_absent_at_that_step() {
    let r = registry();
    let pipeline = Pipeline::new("dict")
        .step(FunctionStep::new("z max", "zmax").variable_components([Component::Z]))
        .step(FunctionStep::new("per z", FunctionPattern::dict([("1", "blur"), ("2", "blur")])).group_by(Component::Z));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 2 `per z`: dict key \"2\" is not a z_index value at this step (present: 1); step 1 `z max` collapsed z_index (the plate has 1, 2, 3)"
        ]
    );
    // Keys the plate never had, with no collapsing step in between.
    let pipeline = Pipeline::new("dict").step(
        FunctionStep::new("per channel", FunctionPattern::dict([("1", "blur"), ("3", "blur")]))
            .group_by(Component::Channel),
    );
    assert_eq!(
        errors(&pipeline, &options(&r)),
        ["step 1 `per channel`: dict key \"3\" is not a channel value at this step (present: 1, 2)"]
    );
}

#[test]
fn error_special_output_produced_by_several_groups_without_merge() {
    let r = registry();
    let pipeline = Pipeline::new("counts").step(FunctionStep::new("count", "count"));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `count`: `count` produces special output `counts` once per group, and this step runs 6 groups per well (2 channel values × 3 z_index values); the values would overwrite each other. Add `merge_outputs = [\"counts\"]` to keep one per group, or stack those components with `variable_components`"
        ]
    );
    // Declaring the merge compiles, and the plan says so.
    let merged = Pipeline::new("counts").step(FunctionStep::new("count", "count").merge_outputs(["counts"]));
    assert!(compiled(&merged, &options(&r)).wells[0].steps[0].special_outputs["counts"].per_group);
    // A dict entry runs for one channel only: 3 groups (z) remain.
    let dict = Pipeline::new("counts").step(
        FunctionStep::new("count", FunctionPattern::dict([("1", "count")]))
            .group_by(Component::Channel)
            .variable_components([Component::Site, Component::Z]),
    );
    assert!(compile(&dict, &plate(), &options(&r)).is_ok(), "channel 1 alone, z stacked: one call");
    // A consumer whose calls each stand in one producer group takes that group's value.
    let consumed = merged.clone().step(FunctionStep::new("use", "use_counts"));
    let plan = compiled(&consumed, &options(&r));
    assert_eq!(
        plan.wells[0].steps[1].special_inputs["counts"],
        SpecialInputPlan::Step {
            step: 1,
            function: "count".into(),
            memory_key: "special/counts".into(),
            by: vec![Component::Channel, Component::Z],
        }
    );
    // One that stacks a component the producer's groups differ in would need several values.
    let stacked =
        merged.step(FunctionStep::new("use", "use_counts").variable_components([Component::Site, Component::Z]));
    assert_eq!(
        errors(&stacked, &options(&r)),
        [
            "step 2 `use`: `use_counts` needs special input `counts`, but step 1 keeps one per channel and z_index (`merge_outputs`) and this step stacks z_index (`variable_components`), so a call would need several; leave z_index out of `variable_components`"
        ]
    );
    let unknown = Pipeline::new("m").step(FunctionStep::new("b", "blur").merge_outputs(["counts"]));
    assert_eq!(
        errors(&unknown, &options(&r)),
        ["step 1 `b`: `merge_outputs` names `counts`, which no function of this step produces"]
    );
}

#[test]
fn error_memory_types_without_a_conversion() {
    let r = registry();
    let mut o = options(&r);
    o.gpus = GpuInventory::simulated(1);
    let pipeline = Pipeline::new("torch").step(FunctionStep::new("denoise", "denoise"));
    assert_eq!(
        errors(&pipeline, &o),
        [
            "step 1 `denoise`: `denoise` takes torch stacks, but gets ndarray from storage, and this build has no ndarray → torch conversion (build with feature torch)",
            "step 1 `denoise`: `storage` takes ndarray stacks, but gets torch from the step's last function, and this build has no torch → ndarray conversion (build with feature torch)",
        ]
    );
}

#[test]
fn error_gpu_step_without_a_gpu() {
    let r = registry();
    let mut o = options(&r);
    o.conversions = ConversionTable::none()
        .with(MemoryType::Ndarray, MemoryType::Torch)
        .with(MemoryType::Torch, MemoryType::Ndarray);
    let only_gpu = Pipeline::new("gpu").step(FunctionStep::new("denoise", "denoise"));
    assert_eq!(
        errors(&only_gpu, &o),
        [
            "step 1 `denoise`: `denoise` (torch) has only GPU variants and no GPU was found (register an ndarray variant under the same name, or run where a GPU is)"
        ]
    );
    let require = ConfigLayer { gpu_policy: Some(GpuPolicy::Require), ..Default::default() };
    let required = Pipeline::new("gpu").step(FunctionStep::new("blur", "blur").config(require));
    assert_eq!(
        errors(&required, &o),
        ["step 1 `blur`: gpu_policy is require and `blur` (torch) runs on a GPU, but no GPU was found"]
    );
    let never = ConfigLayer { gpu_policy: Some(GpuPolicy::Never), ..Default::default() };
    let refused = Pipeline::new("gpu").config(never).step(FunctionStep::new("denoise", "denoise"));
    assert_eq!(
        errors(&refused, &o),
        [
            "step 1 `denoise`: `denoise` has only a torch variant, and gpu_policy is never (register an ndarray variant under the same name)"
        ]
    );
}

#[test]
fn error_outputs_colliding_with_the_input_or_each_other() {
    let r = registry();
    let into_plate =
        ConfigLayer { output_folder: Some("/data".into()), output_suffix: Some(String::new()), ..Default::default() };
    let pipeline = Pipeline::new("c").config(into_plate).step(FunctionStep::new("a", "blur"));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `a`: the final output (/data/plate1/images) would be written in or around the input plate /data/plate1; choose an output folder outside it (`hcs run --out`, or without it the `output_folder` / `output_suffix` keys)",
            "step 1 `a`: the results folder /data/plate1/results is in or around the input plate"
        ]
    );
    let same = ConfigLayer { sub_dir: Some("images".into()), ..Default::default() };
    let pipeline = Pipeline::new("c")
        .step(FunctionStep::new("a", "blur").materialize(None).config(same))
        .step(FunctionStep::new("b", "blur"));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `a`: the checkpoint of step 1 (/data/plate1_outputs/images) collides with the final output; give step 1 its own `sub_dir` (`config = { sub_dir = \"…\" }` on the step)"
        ]
    );
    let results = ConfigLayer { results_folder: Some("images".into()), ..Default::default() };
    let pipeline = Pipeline::new("c").config(results).step(FunctionStep::new("p", "positions").variable_components([
        Component::Site,
        Component::Channel,
        Component::Z,
    ]));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `p`: the results folder /data/plate1_outputs/images collides with the final output; choose another `results_folder`"
        ]
    );
    // Steps without special outputs too: the run's report goes to the results folder. Said once.
    let into_results = ConfigLayer { sub_dir: Some("results".into()), ..Default::default() };
    let pipeline = Pipeline::new("c")
        .config(into_results)
        .step(FunctionStep::new("a", "blur"))
        .step(FunctionStep::new("b", "blur"));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `a`: the results folder /data/plate1_outputs/results collides with the final output; choose another `results_folder`"
        ]
    );
}

#[test]
fn error_bad_configuration_values() {
    let r = registry();
    let pipeline = Pipeline::new("c")
        .config(ConfigLayer { sub_dir: Some("../escape".into()), ..Default::default() })
        .step(FunctionStep::new("a", "blur").config(ConfigLayer { zarr_level: Some(0), ..Default::default() }));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "[config]: `sub_dir`: `../escape` must be a relative folder inside the output plate, without `..`, `.` or a leading `/`",
            "step 1 `a`: config: `zarr_level`: 0 is outside 1–22",
        ]
    );
}

#[test]
fn error_plate_supplied_input_missing_from_the_metadata_or_mistyped() {
    let r = registry();
    let mut no_grid = plate();
    no_grid.grid = None;
    let pipeline = Pipeline::new("p").step(FunctionStep::new("p", "positions").variable_components([
        Component::Site,
        Component::Channel,
        Component::Z,
    ]));
    let got: Vec<String> =
        compile(&pipeline, &no_grid, &options(&r)).expect_err("no grid").iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "step 1 `p`: `positions` needs special input `grid_dimensions` from the plate, but the plate's metadata records no site grid"
        ]
    );
    let mistyped = pipeline.step(FunctionStep::new("w", "wrong_positions"));
    assert_eq!(
        errors(&mistyped, &options(&r)),
        [
            "step 2 `w`: `wrong_positions` takes special input `positions` as `Vec<u32>`, but `positions` (step 1) produces `Vec<(f64, f64)>`"
        ]
    );
}

#[test]
fn errors_found_before_the_plate_are_reported_by_compile_too() {
    let r = registry();
    let pipeline = Pipeline::new("all")
        .step(FunctionStep::new("a", "blurr").materialize(Some(vec![well("H12")])))
        .step(FunctionStep::new("b", FunctionCall::new("blur").param("sigmaa", 1.0)))
        .step(FunctionStep::new("c", "assemble"))
        .step(FunctionStep::new("d", "positions").variable_components([
            Component::Site,
            Component::Channel,
            Component::Z,
        ]));
    assert_eq!(
        errors(&pipeline, &options(&r)),
        [
            "step 1 `a`: unknown function `blurr` (did you mean `blur`?)",
            "step 1 `a`: materialize names well H12, which the plate does not have",
            "step 2 `b`: `blur` has no parameter `sigmaa` (it takes: sigma)",
            "step 3 `c`: `assemble` needs special input `positions`, but no earlier step produces it (it is produced only later, by step 4 `d`)",
        ]
    );
    assert_eq!(errors(&Pipeline::new("empty"), &options(&r)), ["the pipeline has no steps"]);
    let mut o = options(&r);
    o.wells = Some(vec![well("P24")]);
    assert_eq!(
        errors(&Pipeline::new("w").step(FunctionStep::new("a", "blur")), &o),
        ["well P24 was asked for, but the plate does not have it"]
    );
}

#[test]
fn planes_any_makes_later_values_unknown_instead_of_wrong() {
    let r = registry();
    let pipeline = Pipeline::new("crop")
        .step(FunctionStep::new("crop", "crop_z").variable_components([Component::Z]))
        .step(FunctionStep::new("per z", FunctionPattern::dict([("7", "blur")])).group_by(Component::Z));
    let plan = compiled(&pipeline, &options(&r));
    assert_eq!(plan.wells[0].steps[1].components_in[&Component::Z], None);
    assert_eq!(plan.wells[0].steps[1].calls_per_well, None);
}

#[test]
fn visualize_declares_a_preview_store_and_lists_the_viewers() {
    let r = registry();
    let mut o = options(&r);
    o.overrides = ConfigLayer { visualize: Some(true), ..Default::default() };
    let pipeline = Pipeline::new("v")
        .step(FunctionStep::new("z", "zmax").variable_components([Component::Z]))
        .step(FunctionStep::new("b", "blur").config(ConfigLayer { visualize: Some(false), ..Default::default() }));
    let plan = compiled(&pipeline, &o);
    let steps = &plan.wells[0].steps;
    let preview = steps[0].preview.as_ref().expect("step 1 previews");
    assert_eq!(preview.store.store, std::path::Path::new("/data/plate1_outputs/previews/step1.ome.zarr"));
    assert_eq!((preview.store.z_planes, preview.store.fields, preview.store.wells.len()), (1, 4, 4));
    assert!(steps[1].preview.is_none(), "the step layer turns it off");
    assert_eq!(plan.viewers.len(), 1);
    assert!(plan.viewers[0].contains("napari-ome-zarr"), "{:?}", plan.viewers);
    assert!(compiled(&pipeline, &options(&r)).viewers.is_empty());
}

/// `on_stitch_fallback`: the step that placed the tiles and the steps that read its positions
/// decide (their own setting over the pipeline's); a step that does neither does not; a step
/// the plan does not hold leaves it to every step.
#[test]
fn the_steps_that_place_the_tiles_decide_whether_a_stitching_fallback_fails_the_run() {
    let r = registry();
    let layer = |p: FallbackPolicy| ConfigLayer { on_stitch_fallback: Some(p), ..Default::default() };
    // Step 3 computes the positions; step 4 reads them.
    let fails = |pipeline: Pipeline, step: usize| compiled(&pipeline, &options(&r)).fails_on_stitch_fallback_at(step);
    assert!(!fails(stitching_pipeline(), 3), "warn is the default");
    assert!(fails(stitching_pipeline().config(layer(FallbackPolicy::Fail)), 3));
    let steps = |blur: FallbackPolicy, positions: FallbackPolicy, assembly: FallbackPolicy| {
        Pipeline::new("stitch")
            .step(FunctionStep::new("blur", "blur").config(layer(blur)))
            .step(FunctionStep::new("z max", "zmax").variable_components([Component::Z]))
            .step(
                FunctionStep::new("positions", "positions")
                    .variable_components([Component::Site, Component::Channel])
                    .config(layer(positions)),
            )
            .step(FunctionStep::new("assemble", "assemble").from_pipeline_start().config(layer(assembly)))
    };
    use FallbackPolicy::{Fail, Warn};
    // `fail` on the assembling step alone (it reads the positions) is enough, as on the placing step.
    assert!(fails(steps(Warn, Warn, Fail), 3));
    assert!(fails(steps(Warn, Fail, Warn), 3));
    // `warn` on both overrides a pipeline-wide `fail`.
    assert!(!fails(steps(Warn, Warn, Warn).config(layer(Fail)), 3));
    // `fail` on a step that neither places the tiles nor reads their positions does not decide.
    assert!(!fails(steps(Fail, Warn, Warn), 3));
    // Positions from a step the plan does not hold: any step's `fail` decides.
    assert!(fails(steps(Fail, Warn, Warn), 9));
    assert!(!fails(steps(Warn, Warn, Warn), 9));
}

/// A well's plan names the special outputs its steps write to files, with their step: the
/// report finds each result file where the plan says, and knows which step wrote it.
#[test]
fn a_well_plan_names_the_special_outputs_written_to_files_with_their_step() {
    let r = registry();
    let plan = compiled(&stitching_pipeline(), &options(&r));
    let b02 = plan.well(well("B02")).expect("B02");
    let written: Vec<(usize, &str, &str)> =
        b02.materialized_outputs().map(|(step, key, out)| (step, key, out.stem.as_str())).collect();
    assert_eq!(written, [(3, "positions", "B02_positions")]);
    // A special output without a materializer writes no file.
    let counting = Pipeline::new("count").step(FunctionStep::new("c", "count").merge_outputs(["counts"]));
    let counted = compiled(&counting, &options(&r));
    let a01 = counted.well(well("A01")).expect("A01");
    assert!(a01.steps[0].special_outputs.contains_key("counts"));
    assert_eq!(a01.materialized_outputs().count(), 0);
}

#[test]
fn a_reduction_whose_calls_each_get_one_plane_is_noted() {
    let r = registry();
    let notes =
        |pipeline: &Pipeline, plate: &PlateInfo| compile(pipeline, plate, &options(&r)).expect("compiles").notes;
    // Stacking wells: each call gets one plane, whatever the plate.
    let by_well = Pipeline::new("w").step(FunctionStep::new("max", "zmax").variable_components([Component::Well]));
    assert_eq!(
        notes(&by_well, &plate()),
        [
            "step 1 `max`: `zmax` makes one plane of each call's planes, but each call gets one (a call never spans wells: each well runs on its own): the step gives its planes back unchanged"
        ]
    );
    // A z projection: noted on a plate with one z-plane, not on one with three.
    let z = Pipeline::new("z").step(FunctionStep::new("z max", "zmax").variable_components([Component::Z]));
    assert!(notes(&z, &plate()).is_empty(), "3 z-planes are reduced");
    let flat = PlateInfo::regular("/data/plate1", 2, 2, (2, 2), 2, 1, 1, (64, 64));
    assert_eq!(
        notes(&z, &flat),
        [
            "step 1 `z max`: `zmax` makes one plane of each call's planes, but each call gets one (z_index has one value at this step): the step gives its planes back unchanged"
        ]
    );
}

#[test]
fn a_merged_output_is_linked_by_the_groups_that_made_it() {
    let r = registry();
    let by = |pipeline: &Pipeline| match &compiled(pipeline, &options(&r)).wells[0].steps[1].special_inputs["counts"] {
        SpecialInputPlan::Step { by, .. } => by.clone(),
        other => panic!("linked to a step: {other:?}"),
    };
    let use_counts = || FunctionStep::new("use", "use_counts");
    // One dict entry counts channel 1 per z: every channel's groups take their z's value.
    let one_entry = Pipeline::new("m")
        .step(
            FunctionStep::new("count", FunctionPattern::dict([("1", "count")]))
                .group_by(Component::Channel)
                .merge_outputs(["counts"]),
        )
        .step(use_counts());
    assert_eq!(by(&one_entry), [Component::Z]);
    // Without the dict both channels count: a group takes its channel's and its z's.
    let both =
        Pipeline::new("m").step(FunctionStep::new("count", "count").merge_outputs(["counts"])).step(use_counts());
    assert_eq!(by(&both), [Component::Channel, Component::Z]);
    // Stacking a component that has one value by then (after a projection over channels) is no
    // stacking: each call still stands in one producer group.
    let collapsed = Pipeline::new("m")
        .step(
            FunctionStep::new("count", "count")
                .variable_components([Component::Site, Component::Z])
                .merge_outputs(["counts"]),
        )
        .step(FunctionStep::new("flatten", "zmax").variable_components([Component::Channel]))
        .step(use_counts().variable_components([Component::Site, Component::Channel]));
    let plan = compiled(&collapsed, &options(&r));
    assert!(matches!(
        &plan.wells[0].steps[2].special_inputs["counts"],
        SpecialInputPlan::Step { by, .. } if by == &[Component::Channel]
    ));
}

#[test]
fn the_last_steps_storage_keys_place_the_final_output_and_the_command_line_wins() {
    let r = registry();
    let last = |layer: ConfigLayer| {
        Pipeline::new("p").step(FunctionStep::new("blur", "blur")).step(FunctionStep::new("max", "zmax").config(layer))
    };
    let storage = ConfigLayer {
        sub_dir: Some("final".into()),
        backend: Some(Backend::Zarr),
        zarr_codec: Some(hcs_plan::pipeline::ZarrCompression::None),
        ..Default::default()
    };
    let plan = compiled(&last(storage.clone()), &options(&r));
    let well = &plan.wells[0];
    let Location::Zarr { store } = &well.steps[1].writes else { panic!("zarr: {:?}", well.steps[1].writes) };
    assert_eq!(store, std::path::Path::new("/data/plate1_outputs/final.ome.zarr"));
    let zarr = well.steps[1].zarr_store.as_ref().expect("the final store");
    assert_eq!(zarr.codec, hcs_plan::pipeline::ZarrCompression::None);
    // `hcs run --backend disk` is above every layer.
    let cli =
        CompileOptions { overrides: ConfigLayer { backend: Some(Backend::Disk), ..Default::default() }, ..options(&r) };
    let plan = compiled(&last(storage), &cli);
    assert_eq!(plan.wells[0].steps[1].writes, Location::Disk { dir: "/data/plate1_outputs/final".into() });

    // A step cannot move the run's output folder.
    let moved = last(ConfigLayer { output_suffix: Some("_S".into()), ..Default::default() });
    assert_eq!(
        errors(&moved, &options(&r)),
        [
            "step 2 `max`: config: `output_suffix` names the run's output folder, one for every step: set it in `[config]`, a global configuration file or `hcs run --out`; a step's checkpoint goes in that folder, under its `sub_dir`"
        ]
    );
}

#[test]
fn require_on_steps_with_no_gpu_variant_is_noted_not_dropped() {
    let r = registry();
    let pipeline = Pipeline::new("p")
        .config(ConfigLayer { gpu_policy: Some(hcs_plan::pipeline::GpuPolicy::Require), ..Default::default() })
        .step(FunctionStep::new("max", "zmax"))
        .step(FunctionStep::new("max again", "zmax").variable_components([Component::Z]));
    assert_eq!(
        compiled(&pipeline, &options(&r)).notes,
        [
            "gpu_policy is require, but steps 1 `max`, 2 `max again` have no function with a GPU variant in this build (GPU memory types come with the `torch` and `cuda` features): they run on the CPU"
        ]
    );
}

/// The run's results folder (its report, log, trace) is the run's `results_folder`; a step's
/// own places only that step's special outputs (it moved the whole report once).
#[test]
fn a_steps_results_folder_places_its_outputs_not_the_runs_report() {
    let r = registry();
    let folder = |name: &str| ConfigLayer { results_folder: Some(name.into()), ..Default::default() };
    let on_step = Pipeline::new("s").step(FunctionStep::new("max", "zmax").config(folder("step_results")));
    let plan = compiled(&on_step, &options(&r));
    assert_eq!(plan.results_dir, plan.output_root.join("results"));
    assert_eq!(plan.wells[0].steps[0].config.results_folder, "step_results", "the step keeps its own");
    let on_run = on_step.clone().config(folder("res"));
    let plan = compiled(&on_run, &options(&r));
    assert_eq!(plan.results_dir, plan.output_root.join("res"));
}

/// `group_by` chooses dict entries: on a step whose `func` is not a dict it changes nothing, and
/// the compiler says so instead of speaking of a dict's missing entries (which it did for a
/// function that reshapes, refusing the step).
#[test]
fn group_by_without_a_dict_is_noted_not_taken_for_a_dict() {
    let r = registry();
    let plain = Pipeline::new("g").step(FunctionStep::new("max", "zmax").group_by(Component::Channel));
    let plan = compiled(&plain, &options(&r));
    assert_eq!(
        plan.notes,
        [
            "step 1 `max`: `group_by = \"channel\"` chooses a dict entry for each channel, but `func` is not a dict: it changes nothing here"
        ]
    );
}
