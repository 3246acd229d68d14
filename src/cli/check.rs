//! `hcs check PIPELINE [--plate DIR]`: report every mistake found before any plate is processed,
//! with file lines. With `--plate`, the pipeline is compiled for that plate (all five phases).

use std::path::PathBuf;

use crate::Registry;
use crate::plan::pipeline::{ConfigLayer, check_config, check_functions, check_special_io};

use super::compile_args::{compile_file, read_pipeline, report};

/// Options of `hcs check`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Compile for this plate: well filters, dict keys, special inputs from metadata, storage,
    /// memory types, GPUs.
    #[arg(long)]
    pub plate: Option<PathBuf>,
    /// Global configuration file (the layer under the pipeline's `[config]`; default `$HCS_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Check the pipeline; every problem is printed, and any problem fails the command.
pub fn run(args: &Args) -> Result<(), String> {
    let shown = args.pipeline.display().to_string();
    if let Some(plate) = &args.plate {
        let (pipeline, _, compiled) =
            compile_file(&args.pipeline, plate, args.config.as_deref(), ConfigLayer::default(), None)?;
        let calls: usize = pipeline.steps.iter().map(|s| s.func.calls().len()).sum();
        println!(
            "{shown}: `{}` compiles for {} wells of {}: {} steps, {calls} function calls; outputs go to {}",
            pipeline.name,
            compiled.wells.len(),
            plate.display(),
            pipeline.steps.len(),
            compiled.output_root.display()
        );
        return Ok(());
    }
    let (pipeline, map) = read_pipeline(&args.pipeline)?;
    let mut errors = check_config(&pipeline, Some(&map));
    errors.extend(check_functions(&pipeline, Registry::global(), Some(&map)));
    errors.extend(check_special_io(&pipeline, Registry::global(), Some(&map)));
    if errors.is_empty() {
        let calls: usize = pipeline.steps.iter().map(|s| s.func.calls().len()).sum();
        println!("{shown}: `{}` is valid: {} steps, {calls} function calls", pipeline.name, pipeline.steps.len());
        return Ok(());
    }
    Err(report(&shown, &errors))
}
