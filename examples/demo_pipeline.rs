//! The demo pipeline of `hcs demo` built in Rust — the same pipeline as
//! `examples/pipelines/demo.toml` — compiled for a small synthetic plate and run, printing each
//! well's outcome.
//!
//! ```sh
//! cargo run --release --example demo_pipeline
//! ```

use hcs::exec::{RunOptions, run};
use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs::plan::pipeline::{ConfigLayer, FunctionCall, FunctionPattern, FunctionStep, Pipeline};
use hcs::plate::Component;
use hcs::plate::formats::open_plate;
use hcs::synth::{SynthConfig, synthesize};

/// Positions from a channel composite; from the raw plate, per channel z max → normalize → tophat
/// → assembly with those positions; cells counted on channel 1 of the stitched image.
pub fn demo() -> Pipeline {
    let normalize =
        || FunctionCall::new("stack_percentile_normalize").param("low_percentile", 0.5).param("high_percentile", 99.5);
    let z_max = || FunctionCall::new("create_projection").param("method", "max_projection");
    let count = FunctionCall::new("count_cells_single_channel")
        .param("detection_method", "threshold")
        .param("min_cell_area", 20.0)
        .param("max_cell_area", 2000.0)
        .param("return_segmentation_mask", true);
    Pipeline::new("demo")
        .step(FunctionStep::new("channel composite", "create_composite").variable_components([Component::Channel]))
        .step(FunctionStep::new("z max of the composite", z_max()).variable_components([Component::Z]))
        .step(FunctionStep::new("normalize composite", normalize()))
        .step(FunctionStep::new("tile positions", "ashlar_compute_tile_positions"))
        .step(FunctionStep::new("z max per channel", z_max()).from_pipeline_start().variable_components([Component::Z]))
        .step(FunctionStep::new(
            "normalize + tophat",
            FunctionPattern::chain([
                normalize(),
                FunctionCall::new("tophat").param("selem_radius", 50).param("downsample_factor", 4),
            ]),
        ))
        .step(FunctionStep::new("assemble", "assemble_stack"))
        .step(
            FunctionStep::new("count cells (channel 1)", FunctionPattern::dict([("1", count)]))
                .group_by(Component::Channel),
        )
}

#[allow(dead_code)] // the tests include this file for `demo`
fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("hcs-demo-example-{}", std::process::id()));
    let wells = ["A01", "B02"]
        .iter()
        .map(|w| w.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: hcs::plate::WellParseError| e.to_string())?;
    synthesize(&SynthConfig { wells, tile: 256, ..SynthConfig::default() }, &dir.join("plate"))
        .map_err(|e| e.to_string())?;
    let plate = open_plate(&dir.join("plate"), None).map_err(|e| e.to_string())?;
    let overrides = ConfigLayer { output_root: Some(dir.join("output")), ..Default::default() };
    let options = CompileOptions { overrides, ..CompileOptions::new(hcs::Registry::global()) };
    let compiled = compile(&demo(), &PlateInfo::of(&plate), &options)
        .map_err(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    let report = run(&compiled, &plate, hcs::Registry::global(), &RunOptions::default()).map_err(|e| e.to_string())?;
    for w in &report.wells {
        println!("{} {:?} in {:.2} s", w.well, w.status, w.seconds);
    }
    println!("output plate: {}", report.output_root.display());
    if report.failed() { Err("a well failed".into()) } else { Ok(()) }
}
