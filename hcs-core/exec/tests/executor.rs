//! The executor on synthetic plates: special outputs in declaration order, special inputs handed
//! only to the functions that declare them, chains, dicts, failure isolation, resume.

mod common;
use common::read_u16;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hcs_core::special::SpecialInputSpec;
use hcs_core::{
    FunctionContract, InvokeError, InvokeOutput, MemoryType, NdarrayStack, ParamMap, PlaneCount, Registry,
    SourceLocation, SpecialInputs, Stack,
};
use hcs_exec::{Concurrency, RunOptions, WellStatus, run};
use hcs_macros::memory;
use hcs_plan::compiler::{
    CompileOptions, CompiledPlate, ConversionTable, FrozenWellPlan, GpuInventory, PlateInfo, Segment, WellPlan, compile,
};
use hcs_plan::pipeline::{ConfigLayer, FunctionPattern, FunctionStep, Pipeline};
use hcs_plate::formats::open_plate;
use hcs_plate::{Component, WellId};
use hcs_synth::{SynthConfig, synthesize};

/// Returns two special outputs of different types: `first` = 7, `second` = 11.5.
#[memory(ndarray)]
#[hcs_macros::special_outputs(first, second)]
fn emit_two(stack: NdarrayStack) -> (NdarrayStack, u32, f64) {
    (stack, 7, 11.5)
}

/// Writes `second + first` into every pixel: wrong order or wrong types would fail or differ.
#[memory(ndarray)]
#[hcs_macros::special_inputs(first, second)]
fn use_both(stack: NdarrayStack, first: &u32, second: &f64) -> NdarrayStack {
    stack.mapv(|_| (*second as f32) * 100.0 + *first as f32)
}

/// Writes the first of its two files, then fails (as a disk that fills after one file would).
fn write_one_then_fail(
    value: &u32,
    target: &hcs_core::special::MaterializeTarget,
) -> hcs_core::special::MaterializeResult {
    target.write("_first.csv", format!("{value}\n").as_bytes())?;
    Err(hcs_core::MaterializeError::Encode("simulated failure after the first file".into()))
}

/// Passes the stack on; its special output's materializer fails half-way.
#[memory(ndarray)]
#[hcs_macros::special_outputs(tally = write_one_then_fail)]
fn tally_half_written(stack: NdarrayStack) -> (NdarrayStack, u32) {
    (stack, 3)
}

#[memory(ndarray, planes = one)]
fn first_plane(stack: NdarrayStack) -> NdarrayStack {
    stack.slice_move(ndarray::s![0..1, .., ..])
}

#[memory(ndarray)]
fn plus_one(stack: NdarrayStack) -> NdarrayStack {
    stack + 1.0
}

/// The keys each call of `spy` received.
static SEEN: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());

fn spy_invoke(stack: Stack, _: &ParamMap, inputs: &SpecialInputs) -> Result<InvokeOutput, InvokeError> {
    SEEN.lock().expect("lock").push(inputs.keys().map(str::to_string).collect());
    Ok(InvokeOutput { stack, special_outputs: Vec::new() })
}

fn u32_type() -> std::any::TypeId {
    std::any::TypeId::of::<u32>()
}

/// Declares only `first`; records what it is handed.
static SPY: FunctionContract = FunctionContract {
    name: "spy",
    module_path: "test",
    crate_name: "test",
    input_memory: MemoryType::Ndarray,
    output_memory: MemoryType::Ndarray,
    output_planes: PlaneCount::Same,
    plane_shape: hcs_core::PlaneShape::Same,
    special_inputs: &[SpecialInputSpec { key: "first", rust_type: "u32", type_id: u32_type }],
    special_outputs: &[],
    chain_breaker: false,
    params: &[],
    checks: &[],
    peak_memory: None,
    output_shape: None,
    pixel_scale: None,
    pixel_origin: None,
    doc: "",
    location: SourceLocation { file: "t.rs", line: 1, column: 1 },
    invoke: spy_invoke,
    invoke_views: None,
};

/// `stack + 1`, except that the first call counted by `calls` runs out of device memory.
fn plus_one_unless_first(
    calls: &std::sync::atomic::AtomicUsize,
    stack: NdarrayStack,
) -> Result<NdarrayStack, hcs_core::DeviceError> {
    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
        return Err(hcs_core::DeviceError::OutOfMemory { device: "cuda:0".into(), detail: "simulated".into() });
    }
    Ok(stack + 1.0)
}

/// Calls of `oom_once` so far; the first one reports device out-of-memory.
static OOM_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `plus_one`, except that its first call runs out of device memory (like a GPU step whose
/// groups do not fit together).
#[memory(ndarray)]
fn oom_once(stack: NdarrayStack) -> Result<NdarrayStack, hcs_core::DeviceError> {
    plus_one_unless_first(&OOM_CALLS, stack)
}

/// Calls of `oom_once_later` so far (its own counter: tests run in parallel).
static LATER_OOM_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `oom_once` for a later step (reading an in-memory intermediate), with its own counter.
#[memory(ndarray)]
fn oom_once_later(stack: NdarrayStack) -> Result<NdarrayStack, hcs_core::DeviceError> {
    plus_one_unless_first(&LATER_OOM_CALLS, stack)
}

/// Calls of `oom_once_whole` so far (its own counter: tests run in parallel).
static WHOLE_OOM_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `oom_once` for a step run on whole wells, with its own counter.
#[memory(ndarray)]
fn oom_once_whole(stack: NdarrayStack) -> Result<NdarrayStack, hcs_core::DeviceError> {
    plus_one_unless_first(&WHOLE_OOM_CALLS, stack)
}

/// Always out of memory.
#[memory(ndarray)]
fn oom_always(_stack: NdarrayStack) -> Result<NdarrayStack, hcs_core::DeviceError> {
    Err(hcs_core::DeviceError::OutOfMemory { device: "cuda:0".into(), detail: "simulated".into() })
}

/// Claims to return one plane, returns them all.
#[memory(ndarray, planes = one)]
fn lies_about_planes(stack: NdarrayStack) -> NdarrayStack {
    stack
}

/// Claims to halve the plane size (`factor` = 2), returns the planes as they are.
#[memory(ndarray, xy = any)]
#[hcs_macros::output_shape((image.height / factor, image.width / factor, image.planes))]
fn lies_about_shape(stack: NdarrayStack, #[param(default = 2, range = 1..=8)] factor: usize) -> NdarrayStack {
    let _ = factor;
    stack
}

/// Always fails (not for lack of memory).
#[memory(ndarray)]
fn always_fails(_stack: NdarrayStack) -> Result<NdarrayStack, hcs_core::DeviceError> {
    Err(hcs_core::DeviceError::Failed { device: "cpu".into(), detail: "simulated failure".into() })
}

/// Every plane becomes its group's per-pixel mean plus the group's plane count: a group cut
/// short, or mixing planes of two groups, gives other bytes.
#[memory(ndarray)]
fn group_mean(stack: NdarrayStack) -> NdarrayStack {
    let n = stack.shape()[0] as f32;
    let mean = stack.mean_axis(ndarray::Axis(0)).expect("a group has planes") + n;
    let mut out = stack;
    out.outer_iter_mut().for_each(|mut plane| plane.assign(&mean));
    out
}

/// The order in which `order_a` and `order_b` were called.
static ORDER: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

/// Passes the stack on; notes `a` in [`ORDER`].
#[memory(ndarray)]
fn order_a(stack: NdarrayStack) -> NdarrayStack {
    ORDER.lock().expect("lock").push("a");
    stack
}

/// Passes the stack on; notes `b` in [`ORDER`].
#[memory(ndarray)]
fn order_b(stack: NdarrayStack) -> NdarrayStack {
    ORDER.lock().expect("lock").push("b");
    stack
}

/// The buffers `handed_out` returned and `handed_in` received, by address.
static HANDED_OUT: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static HANDED_IN: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Adds one; notes the output buffer's address in [`HANDED_OUT`].
#[memory(ndarray)]
fn handed_out(stack: NdarrayStack) -> NdarrayStack {
    let out = stack + 1.0;
    HANDED_OUT.lock().expect("lock").push(out.as_ptr() as usize);
    out
}

/// Passes the stack on; notes its buffer's address in [`HANDED_IN`].
#[memory(ndarray)]
fn handed_in(stack: NdarrayStack) -> NdarrayStack {
    HANDED_IN.lock().expect("lock").push(stack.as_ptr() as usize);
    stack
}

/// Calls of `z_max`'s stacked form and of its plane-views form.
static Z_MAX_STACKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static Z_MAX_VIEWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The per-pixel maximum over the planes; counts its calls in [`Z_MAX_STACKED`].
#[memory(ndarray, planes = one, views = z_max_views)]
fn z_max(stack: NdarrayStack) -> NdarrayStack {
    Z_MAX_STACKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    stack.fold_axis(ndarray::Axis(0), f32::NEG_INFINITY, |a, &b| a.max(b)).insert_axis(ndarray::Axis(0))
}

/// [`z_max`] of planes that lie apart; counts its calls in [`Z_MAX_VIEWS`].
fn z_max_views(planes: &[ndarray::ArrayView2<'_, f32>]) -> NdarrayStack {
    Z_MAX_VIEWS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut out = planes[0].to_owned();
    planes[1..].iter().for_each(|p| out.zip_mut_with(p, |a, &b| *a = a.max(b)));
    out.insert_axis(ndarray::Axis(0))
}

/// Calls of `add_one_counted`.
static ADD_ONE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `stack + 1`, changed in place; counts its calls in [`ADD_ONE_CALLS`].
#[memory(ndarray)]
fn add_one_counted(mut stack: NdarrayStack) -> NdarrayStack {
    ADD_ONE_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    stack.mapv_inplace(|v| v + 1.0);
    stack
}

fn registry() -> Registry {
    Registry::from_contracts([
        add_one_counted::FUNC,
        z_max::FUNC,
        handed_out::FUNC,
        handed_in::FUNC,
        group_mean::FUNC,
        order_a::FUNC,
        order_b::FUNC,
        always_fails::FUNC,
        lies_about_planes::FUNC,
        lies_about_shape::FUNC,
        emit_two::FUNC,
        use_both::FUNC,
        first_plane::FUNC,
        plus_one::FUNC,
        tally_half_written::FUNC,
        &SPY,
        oom_once::FUNC,
        oom_once_later::FUNC,
        oom_once_whole::FUNC,
        oom_always::FUNC,
    ])
}

fn plate_dir(name: &str, wells: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-exec-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = SynthConfig {
        wells: wells.iter().map(|w| w.parse().expect("well")).collect(),
        grid: (2, 2),
        tile: 32,
        channels: 2,
        z_planes: 2,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir.join("plate")).expect("synthetic plate");
    dir
}

fn run_pipeline(pipeline: &Pipeline, dir: &Path, registry: &Registry) -> hcs_exec::RunReport {
    run_pipeline_with(pipeline, dir, registry, &RunOptions::default())
}

fn run_pipeline_with(
    pipeline: &Pipeline,
    dir: &Path,
    registry: &Registry,
    run_options: &RunOptions<'_>,
) -> hcs_exec::RunReport {
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    run(&compile_for(pipeline, dir, registry), &plate, registry, run_options).expect("runs")
}

fn compile_for(pipeline: &Pipeline, dir: &Path, registry: &Registry) -> CompiledPlate {
    compile_with(pipeline, dir, registry, ConfigLayer::default())
}

/// [`compile_for`] with settings of the run's own (the output root is always `dir/out`).
fn compile_with(pipeline: &Pipeline, dir: &Path, registry: &Registry, overrides: ConfigLayer) -> CompiledPlate {
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let options = CompileOptions {
        registry,
        global: ConfigLayer::default(),
        overrides: ConfigLayer { output_root: Some(dir.join("out")), ..overrides },
        gpus: GpuInventory::none(),
        conversions: ConversionTable::none(),
        wells: None,
        source: None,
    };
    compile(pipeline, &PlateInfo::of(&plate), &options).expect("compiles")
}

/// `pipeline` run with every step on the whole well: the plan's segments taken out.
fn run_whole_wells(pipeline: &Pipeline, dir: &Path, registry: &Registry) -> hcs_exec::RunReport {
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let mut compiled = compile_for(pipeline, dir, registry);
    compiled.wells = compiled
        .wells
        .iter()
        .map(|w| {
            let mut plan = WellPlan::clone(w);
            plan.segments.clear();
            FrozenWellPlan::freeze(plan)
        })
        .collect();
    run(&compiled, &plate, registry, &RunOptions::default()).expect("runs")
}

#[test]
fn special_outputs_arrive_by_key_in_declaration_order() {
    let r = registry();
    let dir = plate_dir("order", &["A01"]);
    let pipeline = Pipeline::new("order")
        .step(FunctionStep::new("emit", "emit_two").variable_components([
            Component::Site,
            Component::Channel,
            Component::Z,
        ]))
        .step(FunctionStep::new("use", "use_both"));
    let report = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done);
    let out = read_u16(&dir.join("out/images/A01_s001_w1_z001_t001.tif"));
    assert!(out.iter().all(|&v| v == 1157), "11.5 × 100 + 7 in every pixel, got {:?}", &out[..4]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_function_in_a_chain_gets_only_the_special_inputs_it_declares() {
    let r = registry();
    let dir = plate_dir("chain", &["A01"]);
    SEEN.lock().expect("lock").clear();
    let pipeline = Pipeline::new("chain").step(
        FunctionStep::new("chain", FunctionPattern::chain(["emit_two", "spy", "plus_one"])).variable_components([
            Component::Site,
            Component::Channel,
            Component::Z,
        ]),
    );
    let report = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done);
    assert_eq!(*SEEN.lock().expect("lock"), [vec!["first".to_string()]], "`second` is not handed over");
    // The chain ran in order: the output is the input plus one.
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let key = plate.index.well("A01".parse::<WellId>().expect("well")).next().expect("a plane").0;
    let input = plate.load_stack(&[*key]).expect("load");
    let out = read_u16(&dir.join("out/images/A01_s001_w1_z001_t001.tif"));
    assert_eq!(f32::from(out[0]), input[[0, 0, 0]] + 1.0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fewer_planes_are_named_by_their_first_components_and_dicts_route_by_value() {
    let r = registry();
    let dir = plate_dir("naming", &["A01"]);
    let pipeline =
        Pipeline::new("naming").step(FunctionStep::new("z", "first_plane").variable_components([Component::Z])).step(
            FunctionStep::new("per channel", FunctionPattern::dict([("2", "plus_one")])).group_by(Component::Channel),
        );
    let report = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0].status);
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out/images"))
        .expect("images")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 4 * 2, "4 sites × 2 channels, one z");
    assert!(names.iter().all(|n| n.contains("_z001_")), "{names:?}");
    // Channel 2 went through `plus_one`, channel 1 passed through unchanged.
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    for (channel, delta) in [(1u32, 0.0f32), (2, 1.0)] {
        let key = hcs_plate::ImageKey { well: "A01".parse().expect("well"), timepoint: 1, site: 1, channel, z: 1 };
        let input = plate.load_stack(&[key]).expect("load");
        let out = read_u16(&dir.join(format!("out/images/A01_s001_w{channel}_z001_t001.tif")));
        assert_eq!(f32::from(out[5]), input[[0, 0, 5]] + delta, "channel {channel}");
    }
    // The output plate is an input plate.
    let back = open_plate(&dir.join("out"), None).expect("the output opens as a plate");
    assert_eq!(back.index.len(), 8);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn planes_another_step_stacked_differently_go_to_the_views_form_and_give_what_the_stack_gives() {
    use std::sync::atomic::Ordering::SeqCst;
    let r = registry();
    let dir = plate_dir("views", &["A01"]);
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let well: WellId = "A01".parse().expect("well");
    let key = |site, channel, z| hcs_plate::ImageKey { well, timepoint: 1, site, channel, z };
    // The calls of `z_max`'s stacked and views forms a run of `pipeline` makes.
    let calls = |pipeline: &Pipeline| {
        std::fs::remove_dir_all(dir.join("out")).ok();
        let before = (Z_MAX_STACKED.load(SeqCst), Z_MAX_VIEWS.load(SeqCst));
        let report = run_pipeline(pipeline, &dir, &r);
        assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0].status);
        (Z_MAX_STACKED.load(SeqCst) - before.0, Z_MAX_VIEWS.load(SeqCst) - before.1)
    };
    let z_max = || FunctionStep::new("z", "z_max").variable_components([Component::Z]);
    // One call per site and channel. Read from the plate, the z planes of a site come stacked:
    // the stacked form runs.
    assert_eq!(calls(&Pipeline::new("direct").step(z_max())), (4 * 2, 0));
    // After a step that stacks the same z planes, each group's stack is handed over whole
    // (moved, no copy): the stacked form runs.
    let same_groups = FunctionStep::new("z plus one", "plus_one").variable_components([Component::Z]);
    assert_eq!(calls(&Pipeline::new("same groups").step(same_groups).step(z_max())), (4 * 2, 0));
    // After a step over sites (groups of one channel and z), a site's z planes lie in two of
    // that step's outputs: the views form gets them where they are.
    let sites = FunctionStep::new("sites", "plus_one");
    assert_eq!(calls(&Pipeline::new("after sites").step(sites).step(z_max())), (0, 4 * 2));
    for (site, channel) in (1..=4).flat_map(|s| [(s, 1u32), (s, 2)]) {
        let raw = plate.load_stack(&[key(site, channel, 1), key(site, channel, 2)]).expect("load");
        let want: Vec<u16> = raw
            .fold_axis(ndarray::Axis(0), 0.0f32, |a, &b| a.max(b))
            .iter()
            .map(|&v| (v as u16).saturating_add(1))
            .collect();
        let out = read_u16(&dir.join(format!("out/images/A01_s{site:03}_w{channel}_z001_t001.tif")));
        assert_eq!(out, want, "site {site}, channel {channel}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_step_repeating_an_earlier_first_call_takes_its_result_and_gives_the_same_planes() {
    use hcs_plan::compiler::SharedResult;
    use std::sync::atomic::Ordering::SeqCst;
    let r = registry();
    let dir = plate_dir("shared", &["A01"]);
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let well: WellId = "A01".parse().expect("well");
    // Step 1 adds one twice, the second time in place on the first call's planes: a kept result
    // that shared their buffer would come out +2. Step 2 repeats the first call on the plate.
    let twice = FunctionPattern::chain(["add_one_counted", "add_one_counted"]);
    let plus_z_max = FunctionPattern::chain(["add_one_counted", "z_max"]);
    let pipeline = |first: FunctionPattern, reuse: Option<bool>| {
        Pipeline::new("shared").step(FunctionStep::new("first", first).materialize(None)).step(
            FunctionStep::new("again", "add_one_counted")
                .from_pipeline_start()
                .config(ConfigLayer { reuse_results: reuse, ..Default::default() }),
        )
    };
    // The calls of `add_one_counted` and of `z_max`'s views form a run makes, and step 2's planes.
    let run_of = |pipeline: &Pipeline| {
        std::fs::remove_dir_all(dir.join("out")).ok();
        let before = (ADD_ONE_CALLS.load(SeqCst), Z_MAX_VIEWS.load(SeqCst));
        let report = run_pipeline(pipeline, &dir, &r);
        assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0].status);
        let calls = (ADD_ONE_CALLS.load(SeqCst) - before.0, Z_MAX_VIEWS.load(SeqCst) - before.1);
        let planes: Vec<Vec<u16>> = (1..=4)
            .flat_map(|site| [(site, 1u32, 1u32), (site, 1, 2), (site, 2, 1), (site, 2, 2)])
            .map(|(site, c, z)| read_u16(&dir.join(format!("out/images/A01_s{site:03}_w{c}_z{z:03}_t001.tif"))))
            .collect();
        (calls, planes)
    };
    let shared = pipeline(twice.clone(), None);
    let compiled = compile_for(&shared, &dir, &r);
    let steps = &compiled.wells[0].steps;
    assert_eq!(steps[0].shares, Some(SharedResult { step: 2, namespace: "step1-shared".into() }));
    assert_eq!(steps[1].reuses, Some(SharedResult { step: 1, namespace: "step1-shared".into() }));
    assert!(compiled.notes.iter().any(|n| n.starts_with("step 2 `again` repeats the first call of step 1 `first`")));
    // 4 groups (2 channels × 2 z, 4 sites each): step 1 calls twice per group, step 2 not at all.
    let (calls, planes) = run_of(&shared);
    assert_eq!(calls, (8, 0));
    // Without sharing step 2 calls once per group, and its planes are the same.
    let (calls_alone, planes_alone) = run_of(&pipeline(twice, Some(false)));
    assert_eq!(calls_alone, (12, 0));
    assert_eq!(planes, planes_alone);
    let key = |site, channel, z| hcs_plate::ImageKey { well, timepoint: 1, site, channel, z };
    let raw = plate.load_stack(&[key(1, 1, 1)]).expect("load");
    let want: Vec<u16> = raw.iter().map(|&v| (v as u16).saturating_add(1)).collect();
    assert_eq!(planes[0], want, "raw + 1, not + 2");
    // A next call with a plane-views form reads the kept planes in place (no copy of them).
    let (calls, planes) = run_of(&pipeline(plus_z_max, None));
    assert_eq!(calls, (4, 4));
    assert_eq!(planes, planes_alone);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_final_planes_are_shown_to_on_output_exactly_as_their_files_store_them() {
    let r = registry();
    let dir = plate_dir("on-output", &["A01", "B02"]);
    // A checkpointed first step: its planes are written too, but they are not the output.
    let pipeline = Pipeline::new("seen")
        .step(FunctionStep::new("checkpointed", "plus_one").materialize(None))
        .step(FunctionStep::new("z", "first_plane").variable_components([Component::Z]));
    let seen = std::sync::Mutex::new(Vec::new());
    let on_output = |key: &hcs_plate::ImageKey, plane: &hcs_vfs::PlaneData| {
        seen.lock().expect("not poisoned").push((*key, plane.clone()));
    };
    let options = RunOptions { on_output: Some(&on_output), ..RunOptions::default() };
    let report = run_pipeline_with(&pipeline, &dir, &r, &options);
    assert!(report.wells.iter().all(|w| w.status == WellStatus::Done), "{:?}", report.wells);
    let mut seen = seen.into_inner().expect("not poisoned");
    seen.sort_by_key(|(k, _)| *k);
    // 2 wells × 4 sites × 2 channels, one z: each once, none of the checkpoint's 2 z-planes.
    assert_eq!(seen.len(), 2 * 4 * 2);
    assert!(seen.windows(2).all(|w| w[0].0 != w[1].0), "each plane once");
    for (key, plane) in &seen {
        assert_eq!(key.z, 1);
        let name = format!("out/images/{}_s{:03}_w{}_z001_t001.tif", key.well, key.site, key.channel);
        let stored: Vec<u16> = match plane {
            hcs_vfs::PlaneData::U16(a) => a.iter().copied().collect(),
            other => panic!("the plate's dtype is u16, seen {:?}", other.dtype()),
        };
        assert_eq!(stored, read_u16(&dir.join(name)), "{key:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn visualized_steps_publish_a_preview_store_and_thumbnails() {
    let r = registry();
    let dir = plate_dir("preview", &["A01", "B02"]);
    let show = ConfigLayer { visualize: Some(true), ..Default::default() };
    let pipeline = Pipeline::new("preview")
        .step(FunctionStep::new("z", "first_plane").variable_components([Component::Z]).config(show))
        .step(FunctionStep::new("b", "plus_one"));
    let report = run_pipeline(&pipeline, &dir, &r);
    assert!(!report.failed(), "{:?}", report.wells);
    let previews = dir.join("out/previews");
    for well in ["A01", "B02"] {
        let png = std::fs::read(previews.join(format!("step1/{well}.png"))).expect("thumbnail");
        assert_eq!(&png[..4], b"\x89PNG");
    }
    // The preview store is an OME-Zarr plate listing both wells, with z collapsed to one plane.
    let store = hcs_vfs::omezarr::OmeZarrPlate::open(&previews.join("step1.ome.zarr")).expect("preview store");
    let plane = hcs_vfs::omezarr::read_plane(&previews.join("step1.ome.zarr"), "B/2", 3, 0, 1, 0).expect("plane");
    assert_eq!(plane.dim(), (32, 32));
    assert_eq!(store.wells, ["A/1", "B/2"]);
    assert_eq!(store.field_count, 4);
    assert!(!previews.join("step2.ome.zarr").exists(), "only visualized steps publish");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_corrupt_file_fails_its_well_only_and_a_rerun_redoes_just_that_well() {
    let r = registry();
    let dir = plate_dir("corrupt", &["A01", "A02"]);
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let (_, victim) = plate.index.well("A02".parse::<WellId>().expect("well")).next().expect("a plane");
    let hcs_plate::PlaneRef::File { path, .. } = victim else { panic!("TIFF plate") };
    let victim = dir.join("plate").join(path);
    let good = std::fs::read(&victim).expect("read");
    std::fs::write(&victim, &good[..good.len() / 3]).expect("truncate");
    let pipeline = Pipeline::new("p").step(FunctionStep::new("a", "plus_one"));
    let report = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done);
    let WellStatus::Failed(message) = &report.wells[1].status else { panic!("A02 fails: {:?}", report.wells[1]) };
    assert!(message.contains("truncated TIFF") && message.contains(&victim.display().to_string()), "{message}");
    assert!(report.failed());

    std::fs::write(&victim, &good).expect("repair");
    let again = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(again.wells[0].status, WellStatus::Resumed, "A01 is verified and skipped");
    assert_eq!(again.wells[1].status, WellStatus::Done);
    // A damaged output is not taken as done.
    let out = dir.join("out/images/A01_s001_w1_z001_t001.tif");
    let bytes = std::fs::read(&out).expect("output");
    std::fs::write(&out, &bytes[..bytes.len() - 1]).expect("damage");
    let third = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(third.wells[0].status, WellStatus::Done, "a damaged output is redone");
    assert_eq!(std::fs::read(&out).expect("output"), bytes);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn out_of_memory_is_retried_one_group_at_a_time_and_reported() {
    let r = registry();
    let dir = plate_dir("oom", &["A01"]);
    let reference = dir.join("reference");
    let plain = Pipeline::new("plain").step(FunctionStep::new("add", "plus_one"));
    let expected = run_pipeline(&plain, &dir, &r);
    assert_eq!(expected.wells[0].status, WellStatus::Done);
    std::fs::rename(dir.join("out"), &reference).expect("keep the reference output");
    OOM_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    let flaky = Pipeline::new("flaky").step(FunctionStep::new("add", "oom_once"));
    let report = run_pipeline(&flaky, &dir, &r);
    let well = &report.wells[0];
    assert_eq!(well.status, WellStatus::Done, "the retry succeeds");
    assert_eq!(well.notes.len(), 1, "{:?}", well.notes);
    assert!(
        well.notes[0].contains("out of memory on cuda:0") && well.notes[0].contains("one group at a time"),
        "{}",
        well.notes[0]
    );
    let names: Vec<_> =
        std::fs::read_dir(reference.join("images")).expect("images").flatten().map(|e| e.file_name()).collect();
    assert!(!names.is_empty());
    for name in names {
        assert_eq!(
            read_u16(&reference.join("images").join(&name)),
            read_u16(&dir.join("out/images").join(&name)),
            "{name:?}"
        );
    }
    // Out of memory even one group at a time, with no GPU to fall back from: the well fails and says so.
    std::fs::remove_dir_all(dir.join("out")).ok();
    let hopeless = Pipeline::new("hopeless").step(FunctionStep::new("add", "oom_always"));
    let report = run_pipeline(&hopeless, &dir, &r);
    match &report.wells[0].status {
        WellStatus::Failed(message) => {
            assert!(message.contains("out of memory on cuda:0") && message.contains("one group at a time"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_panic_while_a_well_is_recorded_loses_only_that_wells_report() {
    // Records are written by the run's recorder thread, which also tells `on_well`. A panic
    // there (here: `on_well` for A01) costs A01's report, not the wells recorded after it, and
    // no well is left counted in flight.
    let r = registry();
    let dir = plate_dir("recorder-panic", &["A01", "B01", "C01"]);
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let compiled = compile_for(&Pipeline::new("plain").step(FunctionStep::new("add", "plus_one")), &dir, &r);
    let in_flight = std::sync::atomic::AtomicUsize::new(0);
    let on_well = |report: &hcs_exec::WellReport| {
        if report.well.to_string() == "A01" {
            panic!("on_well panics for A01");
        }
    };
    let options =
        RunOptions { workers: Some(1), on_well: Some(&on_well), in_flight: Some(&in_flight), ..Default::default() };
    let report = run(&compiled, &plate, &r, &options).expect("runs");
    let status = |well: &str| report.wells.iter().find(|w| w.well.to_string() == well).map(|w| w.status.clone());
    assert!(matches!(status("A01"), Some(WellStatus::Failed(_))), "{:?}", status("A01"));
    assert_eq!(status("B01"), Some(WellStatus::Done));
    assert_eq!(status("C01"), Some(WellStatus::Done));
    for well in ["B01", "C01"] {
        assert!(dir.join("out/.hcs/wells").join(format!("{well}.json")).exists(), "{well}'s record");
    }
    assert_eq!(in_flight.load(std::sync::atomic::Ordering::SeqCst), 0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_cpu_step_retried_after_running_out_of_memory_runs_only_the_groups_that_failed() {
    // One step reading the plate, on the whole well: 2 channels × 2 z = 4 groups in parallel.
    // The first call runs out of memory; the retry (one group at a time) runs that group only,
    // not the 3 that succeeded again, and the output equals a plain run's.
    let r = registry();
    let dir = plate_dir("oom-whole", &["A01"]);
    let plain = Pipeline::new("plain").step(FunctionStep::new("add", "plus_one"));
    assert_eq!(run_whole_wells(&plain, &dir, &r).wells[0].status, WellStatus::Done);
    let reference = dir.join("reference");
    std::fs::rename(dir.join("out"), &reference).expect("keep the reference output");
    WHOLE_OOM_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    let flaky = Pipeline::new("flaky").step(FunctionStep::new("add", "oom_once_whole"));
    let report = run_whole_wells(&flaky, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0]);
    assert_eq!(WHOLE_OOM_CALLS.load(std::sync::atomic::Ordering::SeqCst), 4 + 1, "4 groups, then the one that failed");
    let names: Vec<_> =
        std::fs::read_dir(reference.join("images")).expect("images").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 2 * 2 * 2 * 2, "4 sites × 2 channels × 2 z");
    for name in names {
        assert_eq!(
            read_u16(&reference.join("images").join(&name)),
            read_u16(&dir.join("out/images").join(&name)),
            "{name:?}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn out_of_memory_after_inputs_were_freed_fails_saying_why_instead_of_a_missing_plane() {
    // Step 2 reads step 1's planes from memory and frees each group's share as the group loads
    // it (their last reader). Its first call runs out of memory: the group cannot be loaded
    // again, so the well fails with the device's message and that reason — not with a missing
    // plane from a retry, and without running the groups again.
    let r = registry();
    let dir = plate_dir("oom-later", &["A01"]);
    LATER_OOM_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    let flaky =
        Pipeline::new("flaky").step(FunctionStep::new("a", "plus_one")).step(FunctionStep::new("b", "oom_once_later"));
    let report = run_pipeline(&flaky, &dir, &r);
    match &report.wells[0].status {
        WellStatus::Failed(message) => assert!(
            message.contains("out of memory on cuda:0") && message.contains("cannot be loaded again"),
            "{message}"
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
    // Steps 1 and 2 run one (channel, z) part at a time, one group each: the first part's
    // group is called once and not again, and no later part starts.
    assert_eq!(LATER_OOM_CALLS.load(std::sync::atomic::Ordering::SeqCst), 1);
    // On the whole well, step 2's 2 channels × 2 z = 4 groups run, each called once.
    std::fs::remove_dir_all(dir.join("out")).ok();
    LATER_OOM_CALLS.store(0, std::sync::atomic::Ordering::SeqCst);
    let report = run_whole_wells(&flaky, &dir, &r);
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("cannot be loaded again"), "{message}");
    assert_eq!(LATER_OOM_CALLS.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert!(
        !dir.join("out/images").exists() || std::fs::read_dir(dir.join("out/images")).expect("dir").next().is_none()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_failed_well_leaves_no_files_unless_kept() {
    let r = registry();
    let dir = plate_dir("litter", &["A01"]);
    let pipeline = Pipeline::new("litter")
        .step(FunctionStep::new("checkpointed", "plus_one").materialize(None))
        .step(FunctionStep::new("fails", "always_fails"));
    let checkpoint = dir.join("out/checkpoints/step1");
    let report = run_pipeline(&pipeline, &dir, &r);
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("simulated failure"), "{message}");
    let left: Vec<_> = std::fs::read_dir(&checkpoint).into_iter().flatten().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "the failed well's checkpoint planes are removed: {left:?}");
    // The folder itself is shared by every well (another may be writing into it right now):
    // it stays, even empty.
    assert!(checkpoint.is_dir(), "the shared checkpoint folder is kept");

    let keep = RunOptions { keep_failed: true, ..RunOptions::default() };
    let report = run_pipeline_with(&pipeline, &dir, &r, &keep);
    assert!(matches!(report.wells[0].status, WellStatus::Failed(_)));
    let kept = std::fs::read_dir(&checkpoint).expect("checkpoint folder").count();
    // Steps 1 and 2 stack only sites: they run one (channel, z) part of the well at a time, and
    // the well fails in the first part, after its 4 sites' checkpoint planes.
    assert_eq!(kept, 4, "--keep-failed keeps the checkpoint planes written before the failure");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_materializer_failing_after_its_first_file_leaves_no_file_behind() {
    let r = registry();
    let dir = plate_dir("half-materialized", &["A01"]);
    let pipeline = Pipeline::new("half").step(FunctionStep::new("tally", "tally_half_written").variable_components([
        Component::Site,
        Component::Channel,
        Component::Z,
    ]));
    let report = run_pipeline(&pipeline, &dir, &r);
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("simulated failure after the first file"), "{message}");
    let written: Vec<_> =
        walk(&dir.join("out")).into_iter().filter(|p| p.to_string_lossy().contains("_first.csv")).collect();
    assert!(written.is_empty(), "the file written before the failure is removed with the well: {written:?}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn a_function_returning_another_size_than_its_output_shape_fails_naming_itself() {
    let r = registry();
    let dir = plate_dir("shape", &["A01"]);
    let pipeline = Pipeline::new("shape").step(FunctionStep::new("halve", "lies_about_shape"));
    let report = run_pipeline(&pipeline, &dir, &r);
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(
        message.contains(
            "`lies_about_shape` declares `#[output_shape((image.height / factor, image.width / factor, image.planes))]`"
        ) && message.contains("but returned"),
        "{message}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_function_returning_another_plane_count_than_declared_fails_naming_itself() {
    let r = registry();
    let dir = plate_dir("planes", &["A01"]);
    let pipeline = Pipeline::new("planes")
        .step(FunctionStep::new("project", "lies_about_planes").variable_components([Component::Z]));
    let report = run_pipeline(&pipeline, &dir, &r);
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("`lies_about_planes` declares `planes = one` but returned 2 planes from 2"), "{message}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| (p.strip_prefix(dir).expect("under dir").to_path_buf(), std::fs::read(&p).expect("read")))
        .collect();
    files.sort();
    files
}

#[test]
fn steps_that_never_stack_channels_run_channel_by_channel_with_the_same_bytes() {
    let r = registry();
    let dir = plate_dir("segments", &["A01", "B02"]);
    // Sites stacked, then z (to one plane), then sites again: no step stacks channels.
    let pipeline = Pipeline::new("segments")
        .step(FunctionStep::new("mean of sites", "group_mean").materialize(None))
        .step(FunctionStep::new("first z", "first_plane").variable_components([Component::Z]))
        .step(FunctionStep::new("mean again", "group_mean"));
    let compiled = compile_for(&pipeline, &dir, &r);
    assert_eq!(
        compiled.wells[0].segments,
        [Segment { first: 1, last: 3, by: vec![Component::Channel], parts: Some(2) }]
    );
    let by_part = run_pipeline(&pipeline, &dir, &r);
    assert!(by_part.wells.iter().all(|w| w.status == WellStatus::Done), "{:?}", by_part.wells);
    let parted = dir.join("parted");
    std::fs::rename(dir.join("out"), &parted).expect("keep the output");
    let whole = run_whole_wells(&pipeline, &dir, &r);
    assert!(whole.wells.iter().all(|w| w.status == WellStatus::Done));
    let images = |root: &Path| {
        let mut t = tree(&root.join("images"));
        t.extend(tree(&root.join("checkpoints")));
        t
    };
    let (a, b) = (images(&parted), images(&dir.join("out")));
    assert_eq!(a.len(), 2 * (8 + 16), "2 wells × (4 sites × 2 channels final planes + 16 checkpoint planes)");
    for ((pa, ba), (pb, bb)) in a.iter().zip(&b) {
        assert_eq!(pa, pb);
        assert!(ba == bb, "{pa:?} differs between the part-by-part and the whole-well run");
    }
    assert_eq!(
        std::fs::read(parted.join("hcs_plate.json")).expect("plate json"),
        std::fs::read(dir.join("out/hcs_plate.json")).expect("plate json"),
        "the output plate lists its planes in the same order"
    );
    // Each step's trace sums its parts: as many planes as on the whole well.
    let counts = |root: &Path| {
        let record = hcs_exec::output::read_record(root, "A01".parse().expect("well")).expect("record");
        record.trace.expect("trace").steps.iter().map(|s| (s.index, s.planes_in, s.planes_out)).collect::<Vec<_>>()
    };
    assert_eq!(counts(&parted), [(1, 16, 16), (2, 16, 8), (3, 8, 8)]);
    assert_eq!(counts(&parted), counts(&dir.join("out")));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_step_stacking_what_the_step_before_stacked_gets_its_groups_without_a_copy() {
    let r = registry();
    let dir = plate_dir("handed-over", &["A01"]);
    let raw = read_u16(&dir.join("plate/TimePoint_1/ZStep_1/A01_s1_w1.tif"));
    // Both stack sites: each group of the second is a group of the first, handed over whole.
    let same =
        Pipeline::new("same").step(FunctionStep::new("out", "handed_out")).step(FunctionStep::new("in", "handed_in"));
    HANDED_OUT.lock().expect("lock").clear();
    HANDED_IN.lock().expect("lock").clear();
    let report = run_pipeline(&same, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0]);
    let (mut out, mut got) = (HANDED_OUT.lock().expect("lock").clone(), HANDED_IN.lock().expect("lock").clone());
    assert_eq!(out.len(), 4, "one call per channel and z");
    out.sort();
    got.sort();
    assert_eq!(got, out, "the second step got the first one's buffers");
    let written = read_u16(&dir.join("out/images/A01_s001_w1_z001_t001.tif"));
    assert_eq!(written, raw.iter().map(|v| v.saturating_add(1)).collect::<Vec<_>>(), "and the first step's values");
    // Stacking z instead: each group a new stack of planes from two of the first step's groups,
    // with the same values.
    std::fs::remove_dir_all(dir.join("out")).ok();
    let other = Pipeline::new("other")
        .step(FunctionStep::new("out", "handed_out"))
        .step(FunctionStep::new("in", "handed_in").variable_components([Component::Z]));
    HANDED_IN.lock().expect("lock").clear();
    let report = run_pipeline(&other, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0]);
    assert_eq!(HANDED_IN.lock().expect("lock").len(), 8, "one call per site and channel");
    assert_eq!(read_u16(&dir.join("out/images/A01_s001_w1_z001_t001.tif")), written);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_segment_runs_all_its_steps_on_one_part_before_the_next() {
    let r = registry();
    let dir = plate_dir("segment-order", &["A01"]);
    // Both steps stack only sites: one part per (channel, z), one group each.
    let pipeline =
        Pipeline::new("order").step(FunctionStep::new("a", "order_a")).step(FunctionStep::new("b", "order_b"));
    ORDER.lock().expect("lock").clear();
    let report = run_pipeline(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done);
    assert_eq!(*ORDER.lock().expect("lock"), ["a", "b", "a", "b", "a", "b", "a", "b"]);
    std::fs::remove_dir_all(dir.join("out")).ok();
    ORDER.lock().expect("lock").clear();
    let report = run_whole_wells(&pipeline, &dir, &r);
    assert_eq!(report.wells[0].status, WellStatus::Done);
    assert_eq!(*ORDER.lock().expect("lock"), ["a", "a", "a", "a", "b", "b", "b", "b"]);
    // A plan (say, edited by hand) cutting along the sites these steps stack would give other
    // bytes: the well fails saying so, before any call.
    std::fs::remove_dir_all(dir.join("out")).ok();
    ORDER.lock().expect("lock").clear();
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let mut compiled = compile_for(&pipeline, &dir, &r);
    let mut plan = WellPlan::clone(&compiled.wells[0]);
    plan.segments = vec![Segment { first: 1, last: 2, by: vec![Component::Site], parts: Some(4) }];
    compiled.wells = vec![FrozenWellPlan::freeze(plan)];
    let report = run(&compiled, &plate, &r, &RunOptions::default()).expect("runs");
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("steps 1-2 cannot run one part at a time: step 1 stacks site"), "{message}");
    assert!(ORDER.lock().expect("lock").is_empty(), "no function ran");
    // A segment past the last step is refused too, not run on whole wells without a word.
    std::fs::remove_dir_all(dir.join("out")).ok();
    let mut plan = WellPlan::clone(&compile_for(&pipeline, &dir, &r).wells[0]);
    plan.segments = vec![Segment { first: 1, last: 3, by: vec![Component::Channel], parts: Some(2) }];
    compiled.wells = vec![FrozenWellPlan::freeze(plan)];
    let report = run(&compiled, &plate, &r, &RunOptions::default()).expect("runs");
    let WellStatus::Failed(message) = &report.wells[0].status else { panic!("fails: {:?}", report.wells[0]) };
    assert!(message.contains("steps 1-3 cannot run one part at a time: the plan has steps 1-2"), "{message}");
    assert!(ORDER.lock().expect("lock").is_empty(), "no function ran");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn one_well_at_a_time_runs_the_wells_one_after_another_on_every_worker() {
    // Four wells, two steps each, two workers. Asked for one well at a time, every step of a
    // well starts before any step of the next one: the wells' step starts come in unbroken runs.
    let r = registry();
    let dir = plate_dir("one-at-a-time", &["A01", "A02", "B01", "B02"]);
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let pipeline = Pipeline::new("two steps")
        .step(FunctionStep::new("add", "plus_one"))
        .step(FunctionStep::new("add again", "plus_one"));
    let compiled = compile_for(&pipeline, &dir, &r);
    let starts = Mutex::new(Vec::new());
    let on_step = |well: WellId, _: usize, _: usize, _: &str| starts.lock().expect("lock").push(well);
    let options =
        RunOptions { workers: Some(2), wells_at_once: Some(1), on_step: Some(&on_step), ..Default::default() };
    let report = run(&compiled, &plate, &r, &options).expect("runs");
    assert!(report.wells.iter().all(|w| w.status == WellStatus::Done), "{:?}", report.wells);
    let starts = starts.into_inner().expect("lock");
    let mut runs: Vec<WellId> = starts.clone();
    runs.dedup();
    assert_eq!(runs.len(), 4, "each well's steps start in one unbroken run: {starts:?}");
    assert_eq!(starts.len(), 8);
    assert_eq!(report.concurrency, Concurrency { workers: 2, wells_at_once: Some(1) }, "the report says what ran");
    // Left to the default, two steps that run one part at a time take a well per worker.
    let report = run(&compiled, &plate, &r, &RunOptions { workers: Some(2), ..Default::default() }).expect("runs");
    assert_eq!(report.concurrency, Concurrency { workers: 2, wells_at_once: Some(2) });
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_default_wells_at_once_follow_the_groups_of_the_steps() {
    use hcs_exec::wells_at_once::{Reason, wells_at_once};
    let r = registry();
    let dir = plate_dir("wells-at-once", &["A01", "A02", "B01", "B02"]);
    // One step stacking sites (the default) runs a group per channel and z: 2 × 2 = 4 at once.
    // Two workers are kept busy by one well, eight by two; never more wells than the plate has.
    let one_step = Pipeline::new("one").step(FunctionStep::new("add", "plus_one"));
    let plan = &compile_for(&one_step, &dir, &r).wells[0];
    assert!(plan.segments.is_empty());
    assert_eq!(wells_at_once(None, 2, plan, 4), (1, Reason::Groups(4)));
    assert_eq!(wells_at_once(None, 8, plan, 4), (2, Reason::Groups(4)));
    assert_eq!(wells_at_once(None, 16, plan, 4), (4, Reason::Groups(4)), "never more than the wells");
    assert_eq!(wells_at_once(Some(3), 8, plan, 4), (3, Reason::Asked));
    // Two such steps stack neither channel nor z, so they run one part (a channel and a z) at a
    // time: one group at once, and each worker needs a well of its own.
    let two_steps = one_step.step(FunctionStep::new("add again", "plus_one"));
    let plan = &compile_for(&two_steps, &dir, &r).wells[0];
    assert_eq!(plan.segments.iter().map(|s| s.parts).collect::<Vec<_>>(), [Some(4)]);
    assert_eq!(wells_at_once(None, 2, plan, 4), (2, Reason::Groups(1)));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_plan_with_steps_on_a_gpu_takes_the_wells_its_cpu_steps_need() {
    use hcs_exec::wells_at_once::{Reason, wells_at_once};
    use hcs_plan::compiler::GpuAssignment;
    let r = registry();
    let dir = plate_dir("wells-at-once-gpu", &["A01", "A02", "B01", "B02"]);
    // First step: a group per channel and z (4); second: all planes of the well at once (1).
    let pipeline = Pipeline::new("two").step(FunctionStep::new("per channel and z", "plus_one")).step(
        FunctionStep::new("whole well", "plus_one").variable_components([
            Component::Site,
            Component::Channel,
            Component::Z,
        ]),
    );
    let cpu_plan = hcs_plan::compiler::WellPlan::clone(&compile_for(&pipeline, &dir, &r).wells[0]);
    assert_eq!(cpu_plan.steps.iter().map(|s| s.calls_per_well).collect::<Vec<_>>(), [Some(4), Some(1)]);
    assert_eq!(wells_at_once(None, 8, &cpu_plan, 4), (2, Reason::Groups(4)), "median of 4 and 1 (the upper)");
    // The first step on a GPU: only the CPU step's single group counts, one well per worker.
    let mut gpu_plan = cpu_plan.clone();
    gpu_plan.steps[0].gpu = Some(GpuAssignment { device: 0, slots: 2, well_mib: None });
    assert_eq!(wells_at_once(None, 8, &gpu_plan, 4), (4, Reason::CpuGroups(1)), "never more than the wells");
    assert_eq!(wells_at_once(None, 2, &gpu_plan, 4), (2, Reason::CpuGroups(1)));
    assert_eq!(wells_at_once(Some(1), 8, &gpu_plan, 4), (1, Reason::Asked));
    // Every step on a GPU: nothing left to count but the steps themselves.
    gpu_plan.steps[1].gpu = Some(GpuAssignment { device: 0, slots: 2, well_mib: None });
    assert_eq!(wells_at_once(None, 8, &gpu_plan, 4), (2, Reason::Groups(4)));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_worker_count_is_the_asked_one_else_the_plans_else_one_per_core() {
    let r = registry();
    let dir = plate_dir("worker-count", &["A01"]);
    let pipeline = Pipeline::new("workers").step(FunctionStep::new("a", "plus_one"));
    let auto = compile_for(&pipeline, &dir, &r);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(hcs_exec::worker_count(None, &auto.wells[0]), cores);
    assert_eq!(hcs_exec::worker_count(Some(3), &auto.wells[0]), 3);
    let five_workers = ConfigLayer { workers: Some(hcs_plan::pipeline::Workers::Count(5)), ..Default::default() };
    let five = compile_with(&pipeline, &dir, &r, five_workers);
    assert_eq!(hcs_exec::worker_count(None, &five.wells[0]), 5, "the plan's");
    assert_eq!(hcs_exec::worker_count(Some(2), &five.wells[0]), 2, "--workers wins");
    // A run uses that many: the report says so.
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let report = run(&five, &plate, &r, &RunOptions::default()).expect("runs");
    assert_eq!(report.concurrency.workers, 5);
    std::fs::remove_dir_all(&dir).ok();
}
