//! The peer's canonical CPU pipeline built in Rust — the same pipeline as
//! `examples/pipelines/canonical.toml` — compiled for a synthetic 4-well plate; the plans of the
//! Rust pipeline and of the file are compared, and well A01's plan is printed.
//!
//! ```sh
//! cargo run --example canonical_pipeline
//! ```

use hcs::kernels::composite::create_composite;
use hcs::kernels::morphology::tophat;
use hcs::kernels::normalize::stack_percentile_normalize;
use hcs::kernels::projection::{ProjectionMethod, create_projection};
use hcs::kernels::stitch::assemble::assemble_stack;
use hcs::kernels::stitch::positions::ashlar_compute_tile_positions;
use hcs::plan::compiler::{CompileOptions, CompiledPlate, PlateInfo, compile};
use hcs::plan::pipeline::Pipeline;
use hcs::plate::formats::open_plate;
use hcs::synth::{SynthConfig, synthesize};

/// [percentile normalize 0.5/99.5 → tophat r=50 ↓4] → z max → channel composite → tile positions →
/// from the raw plate: normalize → assemble with the positions → z max of the mosaics.
///
/// Written with `hcs::pipeline!`, so rustc checks every parameter name and type, that
/// `assemble_stack`'s special input `positions` has an earlier producer of the same type, and the
/// memory types along each chain.
pub fn canonical() -> Pipeline {
    hcs::pipeline! {
        name = "canonical";
        step "normalize + tophat" {
            materialize = true;
            func = [
                stack_percentile_normalize(low_percentile = 0.5, high_percentile = 99.5),
                tophat(selem_radius = 50, downsample_factor = 4),
            ];
        }
        step "z flattening" {
            variable_components = [z_index];
            func = create_projection(method = ProjectionMethod::Max);
        }
        step "channel composite" {
            variable_components = [channel];
            func = create_composite;
        }
        step "tile positions" {
            func = ashlar_compute_tile_positions;
        }
        step "normalize raw" {
            input_source = pipeline_start;
            func = stack_percentile_normalize(low_percentile = 0.5, high_percentile = 99.5);
        }
        step "assemble" {
            func = assemble_stack;
        }
        step "z max of the mosaics" {
            variable_components = [z_index];
            func = create_projection(method = ProjectionMethod::Max);
        }
    }
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
    let wells =
        ["A01", "A02", "B01", "B02"].iter().map(|w| w.parse::<hcs::plate::WellId>()).collect::<Result<Vec<_>, _>>();
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
