//! The proof (issue 19): random pipelines drawn from the registry, written as pipeline files,
//! compiled for random small synthetic plates and run in-process.
//!
//! Property: a pipeline the compiler accepts runs to completion with every well done (no
//! plan-level error, no panic); a pipeline it rejects gets errors that each name a step
//! (`step N `name``) or, for the run's `[config]`, a configuration key. And where the plan runs
//! some steps one part of the well at a time (segments), the same plan with its segments taken
//! out writes the same bytes: every output file is compared.
//!
//! Environment:
//! - `HCS_PROPTEST_CASES` — cases to run (default 300: what CI runs);
//! - `HCS_PROPTEST_SEED` — the runner's seed (default fixed, so CI is deterministic);
//! - `HCS_PROPTEST_REPORT=path` — keep going after a failing case: append the counts and every
//!   failing case (pipeline file + error) to `path`, and fail only at the end (no shrinking);
//! - `HCS_PROPTEST_LOG_REJECTIONS=path` — append every compiler error (kind, message) to `path`;
//! - `HCS_PROPTEST_CASE_TIMEOUT_S` — a case running longer than this (default 120 s) ends the
//!   test process with the case printed.
//!
//! A failing case is reported as its pipeline file after a `# plate: PlateSpec { … }` line; saved
//! to a file, `HCS_PROPTEST_REPLAY=case.toml cargo test -p hcs --test prop_pipelines replay --
//! --ignored --nocapture` runs it again. `bench/proptest_pipelines.sh` runs the property in
//! release with many cases and prints the counts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use hcs::exec::{RunOptions, WellStatus, run};
// Links the shipped kernels, so their contracts are in the registry.
use hcs::kernels as _;
use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs::plan::pipeline::{ConfigLayer, Pipeline, PipelineError};
use hcs::plate::Plate;
use hcs::plate::formats::open_plate;
use hcs::synth::{SynthConfig, SynthFormat, synthesize};
use hcs::{FunctionContract, MemoryType, ParamSpec, ParamType, ParamValue, Registry};

// ---------------------------------------------------------------------------------------------
// What is generated: plain data; the registry turns it into a pipeline file.
// ---------------------------------------------------------------------------------------------

/// A tiny synthetic plate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlateSpec {
    wells: usize,
    grid: (u32, u32),
    channels: u32,
    z_planes: u32,
    tile: usize,
    opera: bool,
}

/// A parameter value, relative to the parameter's type and rule.
#[derive(Clone, Debug)]
enum Val {
    /// Not written.
    Omit,
    /// The declared default, written out.
    Default,
    /// Inside the accepted range (`u` in 0..1 places it; `k` picks ends, choices, list lengths).
    Inside(f64, usize),
    /// An extreme or out-of-range value (0, -1, huge integers, 1e308, nan, inf, strings, …).
    Extreme(Index),
}

#[derive(Clone, Debug)]
struct CallSpec {
    func: Index,
    /// One entry per parameter (cycled when a function has more).
    vals: Vec<Val>,
    /// Add a parameter the function does not have.
    unknown_param: bool,
    /// Whether [`Val::Extreme`] values are written (else they become [`Val::Inside`] ones), so
    /// that most calls are clean and most pipelines get to run.
    dirty: bool,
}

#[derive(Clone, Debug)]
enum PatSpec {
    Single(CallSpec),
    Chain(Vec<CallSpec>),
    /// Keyed by channel: 1 and 2 are the plate's channels (2 becomes 1 on a one-channel plate),
    /// 3 is `"3"`, which no plate here has; each entry a single call or a chain (nested).
    Dict(Vec<(u32, Vec<CallSpec>)>),
}

/// A configuration value: an accepted one (`true`) or a refused one, picked by the index.
#[derive(Clone, Debug)]
struct Pick(bool, Index);

#[derive(Clone, Debug, Default)]
struct ConfigSpec {
    workers: Option<Pick>,
    zarr_level: Option<Pick>,
    memory_budget_mib: Option<Pick>,
    backend: Option<Pick>,
    zarr_codec: Option<Pick>,
    gpu_policy: Option<Pick>,
    visualize: Option<bool>,
}

#[derive(Clone, Debug)]
struct StepSpec {
    pattern: PatSpec,
    /// `None`: not written (default `["site"]`); else a subset of site, channel, z_index.
    variable_components: Option<Vec<usize>>,
    /// Index into site, channel, z_index (a dict always gets `channel`).
    group_by: Option<usize>,
    pipeline_start: bool,
    /// 0: none, 1: true, 2: a well of the plate, 3: a well the plate does not have.
    materialize: u8,
    /// Write `merge_outputs` with every special output the step's functions produce.
    merge_outputs: bool,
    config: Option<ConfigSpec>,
    /// Keep the `group_by` component in `variable_components` (which the compiler refuses);
    /// otherwise it is left out.
    clash: bool,
}

#[derive(Clone, Debug)]
struct Case {
    plate: PlateSpec,
    config: Option<ConfigSpec>,
    steps: Vec<StepSpec>,
}

const COMPONENTS: [&str; 3] = ["site", "channel", "z_index"];

/// Configuration values: (accepted, refused).
type Table = (&'static [&'static str], &'static [&'static str]);
const WORKERS: Table =
    (&["1", "2", "3", "4", "\"auto\""], &["0", "-1", "1025", "100000000", "9223372036854775807", "2.5", "\"many\""]);
const ZARR_LEVELS: Table = (&["1", "3", "22"], &["0", "23", "-1", "4294967296", "\"high\""]);
const MEMORY_BUDGETS: Table =
    (&["1", "64", "4096", "9223372036854775807", "4294967296"], &["0", "-1", "1.5", "\"lots\""]);
const BACKENDS: Table = (&["\"disk\"", "\"zarr\""], &["\"memory\"", "\"tiff\""]);
const ZARR_CODECS: Table = (&["\"zstd\"", "\"none\""], &["\"lz4\""]);
const GPU_POLICIES: Table = (&["\"prefer\"", "\"never\"", "\"require\""], &["\"sometimes\""]);
/// Every key a configuration layer may have: a `[config]` error must name one.
const CONFIG_KEYS: &[&str] = &[
    "output_root",
    "output_folder",
    "output_suffix",
    "sub_dir",
    "backend",
    "zarr_codec",
    "zarr_level",
    "workers",
    "gpu_policy",
    "prefer",
    "gpu_slots",
    "results_folder",
    "memory_budget_mib",
    "visualize",
];

fn plate_spec() -> impl Strategy<Value = PlateSpec> {
    (
        1usize..=2,
        prop::sample::select(vec![(1, 1), (1, 2), (2, 1), (2, 2)]),
        1u32..=2,
        1u32..=2,
        0usize..=2,
        any::<bool>(),
    )
        .prop_map(|(wells, grid, channels, z_planes, tile, opera)| PlateSpec {
            wells,
            grid,
            channels,
            z_planes,
            tile: [32, 48, 64][tile],
            opera,
        })
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        3 => Just(Val::Omit),
        2 => Just(Val::Default),
        4 => (0.0f64..1.0, 0usize..8).prop_map(|(u, k)| Val::Inside(u, k)),
        2 => any::<Index>().prop_map(Val::Extreme),
    ]
}

fn call_spec() -> impl Strategy<Value = CallSpec> {
    (any::<Index>(), prop::collection::vec(val(), 8), prop::bool::weighted(0.02), prop::bool::weighted(0.15))
        .prop_map(|(func, vals, unknown_param, dirty)| CallSpec { func, vals, unknown_param, dirty })
}

fn pat_spec() -> impl Strategy<Value = PatSpec> {
    let entry = (prop::sample::select(vec![1u32, 1, 1, 2, 2, 2, 3]), prop::collection::vec(call_spec(), 1..=2));
    prop_oneof![
        4 => call_spec().prop_map(PatSpec::Single),
        3 => prop::collection::vec(call_spec(), 2..=3).prop_map(PatSpec::Chain),
        2 => prop::collection::vec(entry, 1..=2).prop_map(PatSpec::Dict),
    ]
}

fn opt_index(p: f64) -> impl Strategy<Value = Option<Pick>> {
    prop::option::weighted(p, (prop::bool::weighted(0.8), any::<Index>()).prop_map(|(ok, i)| Pick(ok, i)))
}

fn config_spec() -> impl Strategy<Value = ConfigSpec> {
    (
        opt_index(0.5),
        opt_index(0.3),
        opt_index(0.3),
        opt_index(0.4),
        opt_index(0.2),
        opt_index(0.2),
        prop::option::weighted(0.1, any::<bool>()),
    )
        .prop_map(|(workers, zarr_level, memory_budget_mib, backend, zarr_codec, gpu_policy, visualize)| {
            ConfigSpec { workers, zarr_level, memory_budget_mib, backend, zarr_codec, gpu_policy, visualize }
        })
}

fn step_spec() -> impl Strategy<Value = StepSpec> {
    (
        pat_spec(),
        prop::option::weighted(0.6, prop::collection::vec(0usize..3, 0..=3)),
        prop::option::weighted(0.2, 0usize..3),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3]),
        prop::bool::weighted(0.5),
        prop::option::weighted(0.1, config_spec()),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(pattern, variable_components, group_by, pipeline_start, materialize, merge_outputs, config, clash)| {
                StepSpec {
                    pattern,
                    variable_components,
                    group_by,
                    pipeline_start,
                    materialize,
                    merge_outputs,
                    config,
                    clash,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (plate_spec(), prop::option::weighted(0.4, config_spec()), prop::collection::vec(step_spec(), 1..=4))
        .prop_map(|(plate, config, steps)| Case { plate, config, steps })
}

// ---------------------------------------------------------------------------------------------
// Rendering: the case as a pipeline file.
// ---------------------------------------------------------------------------------------------

/// The functions drawn from: every registered function with an ndarray variant.
fn functions(registry: &Registry) -> Vec<&'static FunctionContract> {
    let mut names: Vec<&'static str> = registry.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    names.into_iter().filter_map(|n| registry.get(n, MemoryType::Ndarray)).collect()
}

fn toml_number(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        // `{:?}` always writes a fraction or an exponent, so TOML reads a float.
        format!("{x:?}")
    }
}

fn toml_value(v: &ParamValue) -> Option<String> {
    Some(match v {
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Float(f) => toml_number(*f),
        ParamValue::Str(s) => format!("{s:?}"),
        ParamValue::List(items) => format!("[{}]", items.iter().filter_map(toml_value).collect::<Vec<_>>().join(", ")),
        ParamValue::None => return None,
    })
}

/// A value inside what `ty` and the rule accept.
fn inside(spec: &ParamSpec, ty: &ParamType, u: f64, k: usize) -> Option<String> {
    let rule = spec.rule;
    Some(match ty {
        ParamType::Bool => (u < 0.5).to_string(),
        ParamType::Int { min, max } => {
            let lo = rule.min.map_or(0, |m| m.ceil() as i64).max(*min);
            let mut hi = rule.max.map_or(lo.saturating_add(16), |m| m.floor() as i64).min(*max);
            if rule.max_exclusive && rule.max.is_some_and(|m| hi as f64 >= m) {
                hi -= 1;
            }
            let hi = hi.max(lo);
            // Wide ranges (iterations, samples: up to 100000) are drawn mostly near their low
            // end, so that a case stays well under a second; the top is an extreme value.
            let wide = (hi as f64 - lo as f64) > 1000.0;
            let u = if wide { u.powi(4) } else { u };
            let mut v = match k {
                0 => lo,
                1 if !wide => hi,
                _ => lo.saturating_add(((hi as f64 - lo as f64) * u) as i64),
            };
            if rule.nonzero && v == 0 {
                v = if hi > 0 { 1 } else { -1 };
            }
            v.to_string()
        }
        ParamType::Float => {
            let lo = rule.min.unwrap_or(0.0);
            let hi = rule.max.unwrap_or(lo + 10.0);
            let wide = hi - lo > 1000.0;
            let u = if wide { u.powi(4) } else { u };
            let mut v = match k {
                0 => lo,
                1 if !rule.max_exclusive && !wide => hi,
                _ => ((lo + (hi - lo) * u) * 1000.0).round() / 1000.0,
            };
            if rule.max_exclusive && v >= hi {
                v = lo + (hi - lo) / 2.0;
            }
            if v < lo {
                v = lo;
            }
            if rule.nonzero && v == 0.0 {
                v = if hi > 0.0 { hi.min(1.0) } else { -1.0 };
            }
            toml_number(v)
        }
        ParamType::Str => format!("{:?}", ["a", "x1", ""][k % 3]),
        ParamType::Choice { options } => format!("{:?}", options[k % options.len()]),
        ParamType::List { of } => {
            let items: Vec<String> =
                (0..k % 4).filter_map(|j| inside(spec, of, (u + 0.37 * j as f64) % 1.0, k + j)).collect();
            format!("[{}]", items.join(", "))
        }
        ParamType::Optional { of } => return inside(spec, of, u, k),
    })
}

/// Extreme and out-of-range values for `ty`, then ones of every other type.
fn extremes(spec: &ParamSpec, ty: &ParamType) -> Vec<String> {
    let rule = spec.rule;
    let mut out: Vec<String> = Vec::new();
    match ty {
        ParamType::Int { min, max } => {
            out.extend([min.saturating_sub(1), *min, *max, max.saturating_add(1)].map(|v| v.to_string()));
            if let Some(m) = rule.min {
                out.push(((m.ceil() as i64).saturating_sub(1)).to_string());
            }
            if let Some(m) = rule.max {
                out.push(((m.floor() as i64).saturating_add(1)).to_string());
                out.push((m as i64).to_string());
            }
        }
        ParamType::Float => {
            if let Some(m) = rule.min {
                out.push(toml_number(m - 1.0));
                out.push(toml_number(m - 1e-9));
            }
            if let Some(m) = rule.max {
                out.push(toml_number(m));
                out.push(toml_number(m + 1.0));
            }
            out.extend(["1e-300", "-0.0", "0.5", "1e15"].map(String::from));
        }
        ParamType::Choice { options } => {
            out.push("\"bogus\"".into());
            out.push(format!("{:?}", options[0].to_uppercase()));
        }
        ParamType::List { of } => {
            out.push("[]".into());
            out.extend(extremes(spec, of).into_iter().take(6).map(|v| format!("[{v}]")));
        }
        ParamType::Optional { of } => return extremes(spec, of),
        ParamType::Bool | ParamType::Str => {}
    }
    out.extend(
        [
            "0",
            "-1",
            "-2",
            "1",
            "2",
            "9223372036854775807",
            "-9223372036854775808",
            "4294967296",
            "1e308",
            "-1e308",
            "nan",
            "inf",
            "-inf",
            "0.0",
            "\"3\"",
            "\"bogus\"",
            "true",
            "[1, 2]",
        ]
        .map(String::from),
    );
    out
}

fn render_val(spec: &ParamSpec, v: &Val) -> Option<String> {
    match v {
        Val::Omit => None,
        Val::Default => spec.default.and_then(|d| toml_value(&d())),
        Val::Inside(u, k) => inside(spec, &spec.ty, *u, *k),
        Val::Extreme(i) => {
            let all = extremes(spec, &spec.ty);
            Some(i.get(&all).clone())
        }
    }
}

fn render_call(call: &CallSpec, fns: &[&'static FunctionContract], outputs: &mut Vec<&'static str>) -> String {
    let contract = *call.func.get(fns);
    outputs.extend(contract.special_outputs.iter().map(|s| s.key));
    let mut params: Vec<String> = contract
        .params
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let v = match &call.vals[i % call.vals.len()] {
                Val::Extreme(x) if !call.dirty => Val::Inside(x.index(1000) as f64 / 1000.0, x.index(8)),
                // A clean call gives every required parameter.
                Val::Omit | Val::Default if !call.dirty && p.is_required() => Val::Inside(0.5, i),
                v => v.clone(),
            };
            render_val(p, &v).map(|v| format!("{} = {v}", p.name))
        })
        .collect();
    if call.unknown_param {
        params.push("no_such_parameter = 1".into());
    }
    if params.is_empty() {
        format!("{:?}", contract.name)
    } else {
        format!("{{ function = {:?}, params = {{ {} }} }}", contract.name, params.join(", "))
    }
}

fn render_calls(calls: &[CallSpec], fns: &[&'static FunctionContract], outputs: &mut Vec<&'static str>) -> String {
    match calls {
        [one] => render_call(one, fns, outputs),
        many => format!("[{}]", many.iter().map(|c| render_call(c, fns, outputs)).collect::<Vec<_>>().join(", ")),
    }
}

fn render_config(c: &ConfigSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut put = |key: &str, table: Table, pick: &Option<Pick>| {
        if let Some(Pick(ok, i)) = pick {
            out.push(format!("{key} = {}", i.get(if *ok { table.0 } else { table.1 })));
        }
    };
    put("workers", WORKERS, &c.workers);
    put("zarr_level", ZARR_LEVELS, &c.zarr_level);
    put("memory_budget_mib", MEMORY_BUDGETS, &c.memory_budget_mib);
    put("backend", BACKENDS, &c.backend);
    put("zarr_codec", ZARR_CODECS, &c.zarr_codec);
    put("gpu_policy", GPU_POLICIES, &c.gpu_policy);
    if let Some(v) = c.visualize {
        out.push(format!("visualize = {v}"));
    }
    out
}

fn wells(n: usize) -> Vec<&'static str> {
    ["A01", "B02"][..n].to_vec()
}

/// The pipeline file of `case`, reading functions and parameters from the registry.
fn render(case: &Case, fns: &[&'static FunctionContract]) -> String {
    let mut t = String::from("name = \"random\"\n");
    if let Some(c) = &case.config {
        let lines = render_config(c);
        if !lines.is_empty() {
            t.push_str("\n[config]\n");
            for l in lines {
                let _ = writeln!(t, "{l}");
            }
        }
    }
    for (i, s) in case.steps.iter().enumerate() {
        let mut outputs = Vec::new();
        let func = match &s.pattern {
            PatSpec::Single(c) => render_call(c, fns, &mut outputs),
            PatSpec::Chain(cs) => render_calls(cs, fns, &mut outputs),
            PatSpec::Dict(entries) => {
                let channels = case.plate.channels;
                let entries: BTreeMap<u32, &Vec<CallSpec>> =
                    entries.iter().map(|(k, v)| (if *k == 3 { 3 } else { (*k).min(channels) }, v)).collect();
                let body: Vec<String> = entries
                    .iter()
                    .map(|(k, cs)| format!("\"{k}\" = {}", render_calls(cs, fns, &mut outputs)))
                    .collect();
                format!("{{ dict = {{ {} }} }}", body.join(", "))
            }
        };
        let _ = write!(t, "\n[[steps]]\nname = \"s{}\"\n", i + 1);
        let group_by = if matches!(s.pattern, PatSpec::Dict(_)) { Some(1) } else { s.group_by };
        if let Some(vc) = &s.variable_components {
            let mut names: Vec<&str> =
                vc.iter().filter(|&&c| s.clash || Some(c) != group_by).map(|&c| COMPONENTS[c]).collect();
            names.sort_unstable();
            names.dedup();
            let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            let _ = writeln!(t, "variable_components = [{}]", list.join(", "));
        }
        if let Some(g) = group_by {
            let _ = writeln!(t, "group_by = {:?}", COMPONENTS[g]);
        }
        if s.pipeline_start {
            t.push_str("input_source = \"pipeline_start\"\n");
        }
        match s.materialize {
            1 => t.push_str("materialize = true\n"),
            2 => t.push_str("materialize = { wells = [\"A01\"] }\n"),
            3 => t.push_str("materialize = { wells = [\"H12\"] }\n"),
            _ => {}
        }
        if s.merge_outputs && !outputs.is_empty() {
            outputs.sort_unstable();
            outputs.dedup();
            let keys: Vec<String> = outputs.iter().map(|k| format!("{k:?}")).collect();
            let _ = writeln!(t, "merge_outputs = [{}]", keys.join(", "));
        }
        if let Some(c) = &s.config {
            let lines = render_config(c);
            if !lines.is_empty() {
                let _ = writeln!(t, "config = {{ {} }}", lines.join(", "));
            }
        }
        let _ = writeln!(t, "func = {func}");
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Running a case.
// ---------------------------------------------------------------------------------------------

/// Synthetic plates, written once per spec for the whole test.
struct Plates {
    root: tempfile::TempDir,
    made: Mutex<HashMap<PlateSpec, Arc<(Plate, PlateInfo)>>>,
}

impl Plates {
    fn get(&self, spec: &PlateSpec) -> Arc<(Plate, PlateInfo)> {
        let mut made = self.made.lock().expect("plates");
        if let Some(p) = made.get(spec) {
            return p.clone();
        }
        let dir = self.root.path().join(format!("plate{}", made.len()));
        let config = SynthConfig {
            wells: wells(spec.wells).iter().map(|w| w.parse().expect("well")).collect(),
            grid: spec.grid,
            tile: spec.tile,
            channels: spec.channels,
            z_planes: spec.z_planes,
            format: if spec.opera { SynthFormat::OperaPhenix } else { SynthFormat::Imagexpress },
            ..SynthConfig::default()
        };
        synthesize(&config, &dir).expect("synthetic plate");
        let plate = open_plate(&dir, None).expect("open synthetic plate");
        let info = PlateInfo::of(&plate);
        let p = Arc::new((plate, info));
        made.insert(spec.clone(), p.clone());
        p
    }
}

#[derive(Debug)]
enum Outcome {
    /// Parsed, compiled and every well done.
    Ran,
    /// Refused by the file reader or the compiler, every error naming its step or config key.
    Rejected { by_reader: bool, kinds: Vec<String> },
    /// Accepted with notes that a rule could not be checked before the run (an earlier call
    /// changed the image size), and every failed well failed in a call a note names: the
    /// compiler said so; counted apart, not a breach.
    FailedAsNoted(String),
    /// The property does not hold: why.
    Broken(String),
}

/// `step N `name`: `function`` of a well's error `step N `name`: function `f` failed: ..`.
fn failing_call(error: &str) -> Option<String> {
    let (step, rest) = error.split_once(": function `")?;
    let (function, _) = rest.split_once('`')?;
    Some(format!("{step}: `{function}`: cannot check"))
}

/// Whether a refusal names what it is about: `step N `name`` of a step of the pipeline (or, from
/// the file reader, `step N: step `name``); the run's `[config]` (`run_level`) names a key.
fn names_its_subject(message: &str, steps: usize, run_level: bool) -> bool {
    if run_level {
        return CONFIG_KEYS.iter().any(|k| names_word(message, k));
    }
    (1..=steps)
        .any(|i| message.contains(&format!("step {i} `s{i}`")) || message.contains(&format!("step {i}: step `s{i}`")))
}

/// Whether `word` occurs in `text` as a whole word.
fn names_word(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        !text[..at].chars().next_back().is_some_and(is_word)
            && !text[at + word.len()..].chars().next().is_some_and(is_word)
    })
}

/// Whether a file reader's error is about the run's `[config]` (not a step's).
fn reader_run_level(message: &str) -> bool {
    message.contains("[config]")
}

/// The variant of a refusal (`BadParameter`, `MissingSpecialInput`, …), for the counts.
fn kind(e: &PipelineError) -> String {
    let debug = format!("{e:?}");
    debug.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}

fn run_case(text: &str, steps: usize, plate: &(Plate, PlateInfo), out: &Path) -> Outcome {
    let (pipeline, map) = match Pipeline::from_toml(text) {
        Ok(p) => p,
        Err(e) => {
            let message = e.to_string();
            return if names_its_subject(&message, steps, reader_run_level(&message)) {
                Outcome::Rejected { by_reader: true, kinds: vec!["File".into()] }
            } else {
                Outcome::Broken(format!("the file reader's error names no step or config key: {message}"))
            };
        }
    };
    let registry = Registry::global();
    let options = CompileOptions {
        overrides: ConfigLayer { output_root: Some(out.to_path_buf()), ..ConfigLayer::default() },
        source: Some(&map),
        ..CompileOptions::new(registry)
    };
    let compiled = match compile(&pipeline, &plate.1, &options) {
        Ok(c) => c,
        Err(errors) => {
            let unnamed: Vec<String> = errors
                .iter()
                .filter(|e| {
                    let run_level = match e {
                        PipelineError::Config { step, .. } => step.is_none(),
                        PipelineError::File { message, .. } => reader_run_level(message),
                        _ => false,
                    };
                    !names_its_subject(&e.to_string(), steps, run_level)
                })
                .map(PipelineError::to_string)
                .collect();
            return if errors.is_empty() {
                Outcome::Broken("the compiler refused with no error".into())
            } else if unnamed.is_empty() {
                if let Some(log) = std::env::var_os("HCS_PROPTEST_LOG_REJECTIONS") {
                    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
                    for e in &errors {
                        let _ = writeln!(f, "{}\t{e}", kind(e));
                    }
                }
                let mut kinds: Vec<String> = errors.iter().map(kind).collect();
                kinds.sort_unstable();
                kinds.dedup();
                Outcome::Rejected { by_reader: false, kinds }
            } else {
                Outcome::Broken(format!("compiler errors that name no step or config key:\n  {}", unnamed.join("\n  ")))
            };
        }
    };
    let notes = if compiled.notes.is_empty() {
        String::new()
    } else {
        format!("\ncompiler notes: {}", compiled.notes.join("; "))
    };
    match run(&compiled, &plate.0, registry, &RunOptions::default()) {
        Err(e) => Outcome::Broken(format!("accepted, but the run failed: {e}{notes}")),
        Ok(report) => {
            let bad: Vec<String> = report
                .wells
                .iter()
                .filter(|w| w.status != WellStatus::Done)
                .map(|w| format!("{}: {:?}", w.well, w.status))
                .collect();
            let all_noted = report.wells.iter().filter(|w| w.status != WellStatus::Done).all(|w| {
                let text = format!("{:?}", w.status);
                failing_call(text.trim_start_matches("Failed(\""))
                    .is_some_and(|c| compiled.notes.iter().any(|n| n.starts_with(&c)))
            });
            if bad.is_empty() {
                match whole_well_difference(&pipeline, &map, plate, out, &compiled) {
                    None => Outcome::Ran,
                    Some(why) => Outcome::Broken(format!("accepted, but {why}{notes}")),
                }
            } else if all_noted {
                Outcome::FailedAsNoted(format!(
                    "failed where the compiler noted it could not check:\n  {}{notes}",
                    bad.join("\n  ")
                ))
            } else {
                Outcome::Broken(format!("accepted, but wells did not finish:\n  {}{notes}", bad.join("\n  ")))
            }
        }
    }
}

/// Cases whose plan had segments, compared with the same plan run on whole wells.
static SEGMENTED: AtomicUsize = AtomicUsize::new(0);

/// Where the plan cuts wells into parts: run it again into a sibling folder with every step on
/// the whole well, and name the first output file whose bytes differ (`None`: all equal, or no
/// segment). The run's own records (timings, logs, the report) are not compared.
fn whole_well_difference(
    pipeline: &Pipeline,
    map: &hcs::plan::pipeline::SourceMap,
    plate: &(Plate, PlateInfo),
    out: &Path,
    segmented: &hcs::plan::compiler::CompiledPlate,
) -> Option<String> {
    if segmented.wells.iter().all(|w| w.segments.is_empty()) {
        return None;
    }
    SEGMENTED.fetch_add(1, Ordering::Relaxed);
    let whole_root = out.with_file_name("whole");
    let registry = Registry::global();
    let options = CompileOptions {
        overrides: ConfigLayer { output_root: Some(whole_root.clone()), ..ConfigLayer::default() },
        source: Some(map),
        ..CompileOptions::new(registry)
    };
    let mut compiled = match compile(pipeline, &plate.1, &options) {
        Ok(c) => c,
        Err(e) => return Some(format!("compiling it for a second output folder failed: {e:?}")),
    };
    compiled.wells = compiled
        .wells
        .iter()
        .map(|w| {
            let mut plan = hcs::plan::compiler::WellPlan::clone(w);
            plan.segments.clear();
            hcs::plan::compiler::FrozenWellPlan::freeze(plan)
        })
        .collect();
    match run(&compiled, &plate.0, registry, &RunOptions::default()) {
        Err(e) => return Some(format!("the whole-well run failed: {e}")),
        Ok(report) if report.wells.iter().any(|w| w.status != WellStatus::Done) => {
            return Some(format!("the whole-well run did not finish every well: {:?}", report.wells));
        }
        Ok(_) => {}
    }
    let (a, b) = (output_files(out), output_files(&whole_root));
    if a.keys().ne(b.keys()) {
        return Some(format!(
            "part by part and on whole wells, the output files differ: {:?} vs {:?}",
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>()
        ));
    }
    a.iter()
        .find(|(path, bytes)| b.get(*path) != Some(bytes))
        .map(|(path, _)| format!("{} differs between the part-by-part and the whole-well run", path.display()))
}

/// Every output file under `root` (relative path → bytes), without the run's own records.
fn output_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let records = ["results/run.json", "results/report.html", "results/hcs.log", "results/trace.tsv"];
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if rel.starts_with(".hcs") || records.iter().any(|r| rel == Path::new(r)) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// Run one case on its own thread, so a panic is a failed case and a hang is noticed.
fn run_guarded(text: String, steps: usize, plate: Arc<(Plate, PlateInfo)>, timeout: Duration) -> Outcome {
    let out = tempfile::tempdir().expect("output dir");
    let out_path = out.path().join("out");
    let (tx, rx) = mpsc::channel();
    let text_for_thread = text.clone();
    let handle = std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_case(&text_for_thread, steps, &plate, &out_path)
        }));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(outcome)) => {
            let _ = handle.join();
            outcome
        }
        Ok(Err(payload)) => {
            let _ = handle.join();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "(no message)".into());
            Outcome::Broken(format!("panicked: {message}"))
        }
        Err(_) => {
            // The case's thread cannot be stopped: print it and end the process.
            eprintln!("case ran longer than {timeout:?}:\n{text}");
            std::process::exit(3);
        }
    }
}

#[derive(Default)]
struct Counts {
    cases: AtomicUsize,
    ran: AtomicUsize,
    rejected: AtomicUsize,
    rejected_by_reader: AtomicUsize,
    broken: AtomicUsize,
    accepted_then_failed: AtomicUsize,
    failed_as_noted: AtomicUsize,
    /// The slowest case, in milliseconds.
    slowest_ms: AtomicUsize,
    /// And its pipeline file.
    slowest_case: Mutex<String>,
    /// Rejected cases per error kind (a case counts once per kind it shows).
    by_kind: Mutex<BTreeMap<String, usize>>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn accepted_pipelines_run_and_rejected_ones_name_their_step() {
    let registry = Registry::global();
    let fns = functions(registry);
    assert!(
        fns.iter().any(|c| c.name == "tophat") && fns.len() >= 10,
        "the shipped kernels are linked: {:?}",
        fns.iter().map(|c| c.name).collect::<Vec<_>>()
    );
    let cases: u32 = env_or("HCS_PROPTEST_CASES", 300);
    let seed: u64 = env_or("HCS_PROPTEST_SEED", 0x5eed_0019);
    let timeout = Duration::from_secs(env_or("HCS_PROPTEST_CASE_TIMEOUT_S", 120));
    let report_path = std::env::var_os("HCS_PROPTEST_REPORT").map(PathBuf::from);
    let keep_going = report_path.is_some();

    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        max_global_rejects: cases.saturating_mul(4),
        ..ProptestConfig::default()
    };
    let mut seed_bytes = [0u8; 32];
    for (i, b) in seed_bytes.iter_mut().enumerate() {
        *b = (seed >> ((i % 8) * 8)) as u8 ^ (i as u8);
    }
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let plates = Plates { root: tempfile::tempdir().expect("plates dir"), made: Mutex::new(HashMap::new()) };
    let counts = Counts::default();
    let failures: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let noted: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    let start = Instant::now();

    let result = runner.run(&case(), |case| {
        let text = render(&case, &fns);
        let plate = plates.get(&case.plate);
        counts.cases.fetch_add(1, Ordering::Relaxed);
        let case_start = Instant::now();
        let outcome = run_guarded(text.clone(), case.steps.len(), plate, timeout);
        let ms = case_start.elapsed().as_millis() as usize;
        if counts.slowest_ms.fetch_max(ms, Ordering::Relaxed) < ms {
            *counts.slowest_case.lock().expect("slowest") = format!("# plate: {:?}\n{text}", case.plate);
        }
        match outcome {
            Outcome::Ran => {
                counts.ran.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Outcome::Rejected { by_reader, kinds } => {
                counts.rejected.fetch_add(1, Ordering::Relaxed);
                let mut by_kind = counts.by_kind.lock().expect("kinds");
                for k in kinds {
                    *by_kind.entry(k).or_default() += 1;
                }
                if by_reader {
                    counts.rejected_by_reader.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Outcome::FailedAsNoted(why) => {
                counts.failed_as_noted.fetch_add(1, Ordering::Relaxed);
                noted.lock().expect("noted").push((format!("# plate: {:?}\n{text}", case.plate), why));
                Ok(())
            }
            Outcome::Broken(why) => {
                counts.broken.fetch_add(1, Ordering::Relaxed);
                if why.starts_with("accepted") || why.starts_with("panicked") {
                    counts.accepted_then_failed.fetch_add(1, Ordering::Relaxed);
                }
                let plate = format!("{:?}", case.plate);
                if keep_going {
                    failures.lock().expect("failures").push((format!("# plate: {plate}\n{text}"), why));
                    Ok(())
                } else {
                    Err(TestCaseError::fail(format!("{why}\n--- plate: {plate}\n--- pipeline file:\n{text}")))
                }
            }
        }
    });

    let failures = failures.into_inner().expect("failures");
    let summary = format!(
        "cases={} accepted={} rejected={} rejected_by_reader={} accepted_then_failed={} failed_as_noted={} broken={} seconds={:.1} slowest_case_ms={}",
        counts.cases.load(Ordering::Relaxed),
        counts.ran.load(Ordering::Relaxed)
            + counts.accepted_then_failed.load(Ordering::Relaxed)
            + counts.failed_as_noted.load(Ordering::Relaxed),
        counts.rejected.load(Ordering::Relaxed),
        counts.rejected_by_reader.load(Ordering::Relaxed),
        counts.accepted_then_failed.load(Ordering::Relaxed),
        counts.failed_as_noted.load(Ordering::Relaxed),
        counts.broken.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
        counts.slowest_ms.load(Ordering::Relaxed),
    );
    let by_kind = counts.by_kind.lock().expect("kinds");
    let summary = format!(
        "{summary}\nrejected by kind: {}",
        by_kind.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(" ")
    );
    let summary =
        format!("{summary}\ncompared with whole wells (plans with segments): {}", SEGMENTED.load(Ordering::Relaxed));
    eprintln!("prop_pipelines: {summary}");
    if let Some(path) = &report_path {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("report file");
        writeln!(f, "{summary}").expect("write report");
        let slowest = counts.slowest_case.lock().expect("slowest");
        writeln!(f, "--- SLOWEST CASE\n{slowest}").expect("write report");
        for (text, why) in &failures {
            writeln!(f, "--- FAILURE\n{why}\n--- pipeline file:\n{text}").expect("write report");
        }
        for (text, why) in noted.lock().expect("noted").iter() {
            writeln!(f, "--- FAILED AS NOTED\n{why}\n--- pipeline file:\n{text}").expect("write report");
        }
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, case)) => panic!("{why}\nminimal case: {case:#?}"),
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
    assert!(failures.is_empty(), "{} failing cases (see {:?})", failures.len(), report_path);
    // The part-by-part comparison ran on some plans (random pipelines often stack every
    // component somewhere, but not always).
    assert!(
        cases < 100 || SEGMENTED.load(Ordering::Relaxed) > 0,
        "no accepted pipeline of {cases} cases had a segment: the comparison was never made"
    );
}

/// Replay one case from a report (`HCS_PROPTEST_REPLAY=case.toml cargo test -p hcs --test
/// prop_pipelines replay -- --ignored --nocapture`): the file is a pipeline file whose first line
/// is the report's `# plate: PlateSpec { … }`.
#[test]
#[ignore = "replays the case named by HCS_PROPTEST_REPLAY"]
fn replay() {
    let Some(path) = std::env::var_os("HCS_PROPTEST_REPLAY") else { return };
    let text = std::fs::read_to_string(&path).expect("case file");
    let numbers: Vec<usize> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let [wells, rows, cols, channels, z_planes, tile] = numbers[..] else {
        panic!("first line: # plate: PlateSpec {{ … }}")
    };
    let spec = PlateSpec {
        wells,
        grid: (rows as u32, cols as u32),
        channels: channels as u32,
        z_planes: z_planes as u32,
        tile,
        opera: text.lines().next().is_some_and(|l| l.contains("opera: true")),
    };
    let plates = Plates { root: tempfile::tempdir().expect("plates dir"), made: Mutex::new(HashMap::new()) };
    let steps = text.lines().filter(|l| l.trim() == "[[steps]]").count();
    let outcome = run_guarded(text.clone(), steps, plates.get(&spec), Duration::from_secs(600));
    eprintln!("{outcome:?}");
    assert!(!matches!(outcome, Outcome::Broken(_)), "{outcome:?}");
}
