//! `hcs check PIPELINE [--plate DIR]`: read a pipeline file and report every mistake found
//! before any plate is processed, with file lines.

use std::path::PathBuf;

use crate::Registry;
use crate::core_runtime::formats::open_plate;
use crate::core_runtime::pipeline::{Pipeline, check_functions, check_special_io, check_wells};

/// Options of `hcs check`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Also check against this plate (well filters).
    #[arg(long)]
    pub plate: Option<PathBuf>,
}

/// Check the pipeline; every problem is printed, and any problem fails the command.
pub fn run(args: &Args) -> Result<(), String> {
    let shown = args.pipeline.display();
    let text = std::fs::read_to_string(&args.pipeline).map_err(|e| format!("{shown}: {e}"))?;
    let (pipeline, map) = Pipeline::from_toml(&text).map_err(|e| format!("{shown}: {e}"))?;
    let mut errors = check_functions(&pipeline, Registry::global(), Some(&map));
    errors.extend(check_special_io(&pipeline, Registry::global(), Some(&map)));
    if let Some(dir) = &args.plate {
        let plate = open_plate(dir, None).map_err(|e| format!("{}: {e}", dir.display()))?;
        errors.extend(check_wells(&pipeline, &plate.index.wells(), Some(&map)));
    }
    if errors.is_empty() {
        let calls: usize = pipeline.steps.iter().map(|s| s.func.calls().len()).sum();
        println!("{shown}: `{}` is valid: {} steps, {calls} function calls", pipeline.name, pipeline.steps.len());
        return Ok(());
    }
    for e in &errors {
        eprintln!("{shown}: {e}");
    }
    Err(format!("{} problem{} in {shown}", errors.len(), if errors.len() == 1 { "" } else { "s" }))
}
