//! The peer's canonical CPU pipeline built in Rust — the same pipeline as
//! `examples/pipelines/canonical.toml` — compiled for a synthetic 4-well plate; the plans of the
//! Rust pipeline and of the file are compared, and well A01's plan is printed.
//!
//! ```sh
//! cargo run --example canonical_pipeline
//! ```

use hcs::core_runtime::compiler::{CompileOptions, CompiledPlate, PlateInfo, compile};
use hcs::core_runtime::formats::open_plate;
use hcs::core_runtime::pipeline::{FunctionCall, FunctionPattern, FunctionStep, Pipeline};
use hcs::core_runtime::plate::Component;
use hcs::core_runtime::synth::{SynthConfig, synthesize};

/// [percentile normalize 0.5/99.5 → tophat r=50 ↓4] → z max → channel composite → tile positions →
/// from the raw plate: normalize → assemble with the positions → z max of the mosaics.
pub fn canonical() -> Pipeline {
    let normalize =
        || FunctionCall::new("stack_percentile_normalize").param("low_percentile", 0.5).param("high_percentile", 99.5);
    let z_max = || FunctionCall::new("create_projection").param("method", "max_projection");
    Pipeline::new("canonical")
        .step(
            FunctionStep::new(
                "normalize + tophat",
                FunctionPattern::chain([
                    normalize(),
                    FunctionCall::new("tophat").param("selem_radius", 50).param("downsample_factor", 4),
                ]),
            )
            .materialize(None),
        )
        .step(FunctionStep::new("z flattening", z_max()).variable_components([Component::Z]))
        .step(FunctionStep::new("channel composite", "create_composite").variable_components([Component::Channel]))
        .step(FunctionStep::new("tile positions", "ashlar_compute_tile_positions"))
        .step(FunctionStep::new("normalize raw", normalize()).from_pipeline_start())
        .step(FunctionStep::new("assemble", "assemble_stack"))
        .step(FunctionStep::new("z max of the mosaics", z_max()).variable_components([Component::Z]))
}

/// Compile `pipeline` for the plate at `dir` with this binary's registry.
pub fn compile_for(pipeline: &Pipeline, dir: &std::path::Path) -> Result<CompiledPlate, String> {
    let plate = open_plate(dir, None).map_err(|e| e.to_string())?;
    let options = CompileOptions::new(hcs::Registry::global());
    compile(pipeline, &PlateInfo::of(&plate), &options)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
}

#[allow(dead_code)] // the tests include this file for `canonical` and `compile_for`
fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("hcs-canonical-example-{}", std::process::id()));
    let plate_dir = dir.join("plate");
    let wells = ["A01", "A02", "B01", "B02"]
        .iter()
        .map(|w| w.parse::<hcs::core_runtime::plate::WellId>())
        .collect::<Result<Vec<_>, _>>();
    let config = SynthConfig { wells: wells.map_err(|e| e.to_string())?, tile: 128, ..SynthConfig::default() };
    synthesize(&config, &plate_dir).map_err(|e| e.to_string())?;

    let from_rust = compile_for(&canonical(), &plate_dir)?;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml"))
        .map_err(|e| e.to_string())?;
    let (file_pipeline, _) = Pipeline::from_toml(&text).map_err(|e| e.to_string())?;
    let from_file = compile_for(&file_pipeline, &plate_dir)?;
    let same = from_rust == from_file;
    println!("{} wells compiled; Rust and TOML plans identical: {same}", from_rust.wells.len());
    println!("{}", serde_json::to_string_pretty(&from_rust.wells[0]).map_err(|e| e.to_string())?);
    std::fs::remove_dir_all(&dir).ok();
    if same { Ok(()) } else { Err("the Rust and TOML pipelines compile to different plans".into()) }
}
