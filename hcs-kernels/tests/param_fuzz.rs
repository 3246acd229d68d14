//! Parameter fuzzing (issue 19): no parameter value may make a kernel panic, abort or allocate
//! without bound. Every registered ndarray function is called through its contract's erased
//! `call`, as a pipeline calls it, with extreme and random values of each parameter — every value
//! its `ParamSpec::check` accepts (so the test follows the declared ranges as they tighten) — on
//! a small random stack, and must return `Ok` or `Err` promptly.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use hcs_core::{
    FunctionContract, MemoryType, ParamMap, ParamType, ParamValue, Registry, SpecialData, SpecialInputs, Stack,
};
use hcs_kernels as _;
use hcs_kernels::stitch::TilePositions;
use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Planes, rows and columns of the test stacks.
const SHAPE: (usize, usize, usize) = (3, 32, 48);

/// Random combinations of parameter values tried per function (beyond one-at-a-time variation).
const COMBINATIONS: usize = 24;

/// Longest any single call may take (debug build, shared machine).
const SLOW: Duration = Duration::from_secs(20);

/// Extreme integers (issue 19's reported values among them) and a few ordinary ones.
fn int_values(rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut v = vec![0, 1, -1, 2, 3, 4, 7, 16, 48, 100, 1 << 32, 1_000_000_000, 9_000_000_000_000, i64::MAX, i64::MIN];
    v.extend((0..3).map(|_| rng.random_range(0..40)));
    v
}

/// Extreme floats and a few ordinary ones (percentages, fractions, pixels).
fn float_values(rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut v = vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e308,
        -1e308,
        1e9,
        0.0,
        -0.0,
        -2.0,
        -0.5,
        1e-300,
        0.1,
        0.25,
        0.5,
        1.0,
        2.0,
        2.5,
        50.0,
        99.0,
        100.0,
        150.0,
    ];
    v.extend((0..3).map(|_| rng.random_range(-5.0..60.0)));
    v
}

/// Candidate values of a parameter type (not all of them accepted by its spec).
fn values_of(ty: &ParamType, rng: &mut ChaCha8Rng) -> Vec<ParamValue> {
    match ty {
        ParamType::Bool => vec![ParamValue::Bool(false), ParamValue::Bool(true)],
        ParamType::Int { .. } => int_values(rng).into_iter().map(ParamValue::Int).collect(),
        ParamType::Float => {
            let mut v: Vec<ParamValue> = float_values(rng).into_iter().map(ParamValue::Float).collect();
            v.extend([ParamValue::Int(3), ParamValue::Int(i64::MAX)]);
            v
        }
        ParamType::Str => vec![ParamValue::Str(String::new()), ParamValue::Str("x".repeat(10_000))],
        ParamType::Choice { options } => {
            let mut v: Vec<ParamValue> = options.iter().map(|o| ParamValue::Str((*o).into())).collect();
            v.push(ParamValue::Str("no_such_option".into()));
            v
        }
        ParamType::List { of } => {
            let items = values_of(of, rng);
            let mut v = vec![ParamValue::List(Vec::new())];
            v.extend(items.iter().map(|i| ParamValue::List(vec![i.clone()])));
            v.extend(items.iter().map(|i| ParamValue::List(vec![i.clone(); SHAPE.0])));
            v.push(ParamValue::List(items.iter().take(SHAPE.0).cloned().collect()));
            v.push(ParamValue::List(items.iter().rev().take(SHAPE.0 + 2).cloned().collect()));
            v.push(ParamValue::List(vec![items[0].clone(); 100_000]));
            v
        }
        ParamType::Optional { of } => {
            let mut v = vec![ParamValue::None];
            v.extend(values_of(of, rng));
            v
        }
    }
}

/// The value a parameter takes when others vary: its default, else a plausible one.
fn base_value(ty: &ParamType) -> ParamValue {
    match ty {
        ParamType::Bool => ParamValue::Bool(false),
        ParamType::Int { min, max } => ParamValue::Int(8.clamp(*min, *max)),
        ParamType::Float => ParamValue::Float(1.0),
        ParamType::Str => ParamValue::Str(String::new()),
        ParamType::Choice { options } => ParamValue::Str(options.first().copied().unwrap_or_default().into()),
        ParamType::List { .. } => ParamValue::List(Vec::new()),
        ParamType::Optional { .. } => ParamValue::None,
    }
}

/// A random stack: raw 16-bit samples (integers, the counting paths) or fractional values in
/// `0..65535` (the general paths).
fn stack(rng: &mut ChaCha8Rng, integral: bool) -> Array3<f32> {
    Array3::from_shape_simple_fn(SHAPE, || {
        let v: f32 = rng.random_range(0.0..65535.0);
        if integral { v.floor() } else { v }
    })
}

/// Plausible special inputs for `contract`, or `None` (with the reason) when some key has no
/// simple stand-in.
fn special_inputs(contract: &FunctionContract) -> Result<SpecialInputs, String> {
    let mut inputs = SpecialInputs::new();
    let n = SHAPE.0;
    for spec in contract.special_inputs {
        let value = match spec.key {
            // One row of tiles (what the executor hands from the plate's layout).
            "grid_dimensions" => SpecialData::new((1u32, n as u32)),
            // A plate whose stage positions say nothing (the overlap is estimated from the tiles).
            "site_overlap" => SpecialData::new(None::<(f64, f64)>),
            // The tiles side by side with a 10-pixel overlap (what ashlar_compute_tile_positions gives).
            "positions" => SpecialData::new(TilePositions {
                grid: (1, n as u32),
                positions: (0..n).map(|i| (i as f64 * (SHAPE.2 as f64 - 10.0), 0.5 * i as f64)).collect(),
                edges: Vec::new(),
                ncc_threshold: 0.5,
                model_placed: Vec::new(),
                overlap: (0.1, 0.1),
                overlap_source: String::new(),
            }),
            other => return Err(format!("no stand-in for special input `{other}` ({})", spec.rust_type)),
        };
        inputs.insert(spec.key, value);
    }
    Ok(inputs)
}

/// What the calls of one function came to.
#[derive(Default)]
struct Tally {
    calls: usize,
    ok: usize,
    err: usize,
    failures: Vec<String>,
}

fn call_once(
    contract: &FunctionContract,
    input: &Array3<f32>,
    params: &ParamMap,
    inputs: &SpecialInputs,
    tally: &mut Tally,
) {
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| contract.call(Stack::Ndarray(input.clone()), params, inputs)));
    let took = started.elapsed();
    tally.calls += 1;
    match result {
        Ok(Ok(_)) => tally.ok += 1,
        Ok(Err(_)) => tally.err += 1,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            tally.failures.push(format!("{} panicked with {params:?}: {msg}", contract.name));
        }
    }
    if took > SLOW {
        tally.failures.push(format!("{} took {took:?} with {params:?}", contract.name));
    }
}

/// Every accepted candidate of each parameter of `contract`, and the parameter map of defaults
/// (plausible values for required parameters).
fn candidates(contract: &FunctionContract, rng: &mut ChaCha8Rng) -> (ParamMap, Vec<Vec<ParamValue>>) {
    let specs = contract.params;
    let base =
        specs.iter().map(|p| (p.name.to_string(), p.default.map_or_else(|| base_value(&p.ty), |d| d()))).collect();
    let accepted =
        specs.iter().map(|p| values_of(&p.ty, rng).into_iter().filter(|v| p.check(v).is_ok()).collect()).collect();
    (base, accepted)
}

/// Parameter maps around `base`: `base` itself, each parameter varied alone over its accepted
/// candidates, then random combinations of accepted candidates.
fn cases(
    contract: &FunctionContract,
    base: &ParamMap,
    accepted: &[Vec<ParamValue>],
    rng: &mut ChaCha8Rng,
) -> Vec<ParamMap> {
    let specs = contract.params;
    let mut out = vec![base.clone()];
    for (spec, values) in specs.iter().zip(accepted) {
        for v in values {
            let mut m = base.clone();
            m.insert(spec.name.to_string(), v.clone());
            out.push(m);
        }
    }
    for _ in 0..COMBINATIONS {
        let mut m = base.clone();
        for (spec, values) in specs.iter().zip(accepted) {
            if !values.is_empty() && rng.random_bool(0.5) {
                m.insert(spec.name.to_string(), values[rng.random_range(0..values.len())].clone());
            }
        }
        out.push(m);
    }
    out
}

/// Whether `contract` runs with `params` (a panic counts as not running; the fuzz loop reports it).
fn runs(contract: &FunctionContract, input: &Array3<f32>, params: &ParamMap, inputs: &SpecialInputs) -> bool {
    matches!(catch_unwind(AssertUnwindSafe(|| contract.call(Stack::Ndarray(input.clone()), params, inputs))), Ok(Ok(_)))
}

#[test]
fn no_parameter_value_makes_a_kernel_panic_or_run_away() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let stacks = [stack(&mut rng, true), stack(&mut rng, false)];
    let mut contracts: Vec<&'static FunctionContract> =
        Registry::global().iter().filter(|c| c.input_memory == MemoryType::Ndarray).collect();
    contracts.sort_by_key(|c| c.name);
    assert!(contracts.len() >= 15, "the kernels are linked: {} ndarray functions", contracts.len());
    let (mut total, mut failures, mut skipped) = (0, Vec::new(), Vec::new());
    let started = Instant::now();
    for contract in contracts {
        let inputs = match special_inputs(contract) {
            Ok(inputs) => inputs,
            Err(reason) => {
                skipped.push(format!("{}: {reason}", contract.name));
                continue;
            }
        };
        let mut tally = Tally::default();
        let t0 = Instant::now();
        let (mut base, accepted) = candidates(contract, &mut rng);
        // Vary around parameters the function runs with, so the variations reach its body: when
        // the defaults do not fit the small test stack (e.g. too little overlap for stitching),
        // start from the first one-parameter variation that runs.
        if !runs(contract, &stacks[0], &base, &inputs) {
            let working = cases(contract, &base, &accepted, &mut rng)
                .into_iter()
                .take(1 + accepted.iter().map(Vec::len).sum::<usize>())
                .find(|m| runs(contract, &stacks[0], m, &inputs));
            if let Some(working) = working {
                base = working;
            }
        }
        for (i, params) in cases(contract, &base, &accepted, &mut rng).iter().enumerate() {
            call_once(contract, &stacks[i % 2], params, &inputs, &mut tally);
        }
        eprintln!(
            "{:<32} {:>4} calls: {:>4} ok, {:>4} refused, {} failed ({:.1?})",
            contract.name,
            tally.calls,
            tally.ok,
            tally.err,
            tally.failures.len(),
            t0.elapsed()
        );
        total += tally.calls;
        failures.extend(tally.failures);
    }
    eprintln!("{total} calls in {:.1?}; skipped: {skipped:?}", started.elapsed());
    assert!(skipped.is_empty(), "functions without stand-in special inputs: {skipped:?}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The values issue 19 reports, each refused with an error naming the parameter.
#[test]
fn the_reported_values_are_refused_by_name() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let input = stack(&mut rng, true);
    let f = ParamValue::Float;
    let i = ParamValue::Int;
    let reported: &[(&str, &[(&str, ParamValue)])] = &[
        ("tophat", &[("selem_radius", i(i64::MAX))]),
        ("tophat", &[("selem_radius", i(1 << 32))]),
        ("tophat", &[("downsample_factor", i(0))]),
        ("gaussian_filter", &[("sigma", f(1e308))]),
        ("gaussian_filter", &[("sigma", f(-2.0))]),
        ("sharpen", &[("radius", f(1e308))]),
        ("sharpen", &[("amount", f(f64::INFINITY))]),
        ("stack_equalize_histogram", &[("bins", i(9_000_000_000_000))]),
        ("stack_equalize_histogram", &[("bins", i(0))]),
        ("spatial_bin_2d", &[("bin_size", i(0))]),
        ("spatial_bin_2d", &[("bin_size", i(1_000_000_000))]),
        ("spatial_bin_3d", &[("bin_size", i(4))]),
        ("crop", &[("width", i(49)), ("height", i(8))]),
        ("crop", &[("width", i(8)), ("height", i(8)), ("start_x", i(i64::MAX))]),
        ("basic_flatfield_correction", &[("rank", i(100_000))]),
        ("basic_flatfield_correction", &[("working_size", i(0))]),
        ("basic_flatfield_correction", &[("max_iters", i(i64::MAX))]),
        ("basic_flatfield_correction", &[("tol", f(1e-300))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(2.0))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(-0.5))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(0.5)), ("upsample_factor", i(0))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(0.5)), ("upsample_factor", i(1_000_000_000))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(0.5)), ("permutation_samples", i(i64::MAX))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(0.5)), ("max_shift", f(f64::NAN))]),
        ("ashlar_compute_tile_positions", &[("overlap_ratio", f(0.5)), ("stitch_alpha", f(2.0))]),
        ("count_cells_single_channel", &[("max_sigma", f(1e9))]),
        ("count_cells_single_channel", &[("num_sigma", i(100_000))]),
        ("count_cells_single_channel", &[("min_sigma", f(1e-300))]),
        ("count_cells_single_channel", &[("median_disk_size", i(1_000_000_000))]),
        ("count_cells_single_channel", &[("gaussian_sigma", f(1e308))]),
        ("count_cells_single_channel", &[("watershed_footprint_size", i(i64::MAX))]),
        ("assemble_stack", &[("fixed_margin_ratio", f(f64::NAN))]),
        ("assemble_stack", &[("overlap_blend_fraction", f(-1.0))]),
    ];
    for (name, pairs) in reported {
        let contract = hcs_core::testing::contract(name).expect("registered");
        let inputs = special_inputs(contract).expect("stand-in special inputs");
        let params: ParamMap = pairs.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect();
        let got = catch_unwind(AssertUnwindSafe(|| contract.call(Stack::Ndarray(input.clone()), &params, &inputs)));
        let err = match got {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => panic!("{name} {params:?} was accepted"),
            Err(_) => panic!("{name} {params:?} panicked"),
        };
        // The parameter is named (by the kernel's guard, or by the invoker's type check).
        let named = pairs.iter().any(|(k, _)| err.contains(k)) || err.contains("bin_size") || err.contains("crop");
        assert!(named, "{name} {params:?}: the error names the parameter: {err}");
    }
}
