//! What `hcs check` and `hcs plan` share: read a pipeline file, the optional global config file,
//! open the plate, and compile — printing every problem with its file line.

use std::path::{Path, PathBuf};

use crate::Registry;
use crate::plan::compiler::{CompileOptions, CompiledPlate, PlateInfo, compile};
use crate::plan::pipeline::{ConfigLayer, Pipeline, PipelineError, SourceMap};
use crate::plate::formats::open_plate;
use crate::plate::{Plate, WellId};

/// Read and parse a pipeline file.
pub fn read_pipeline(path: &Path) -> Result<(Pipeline, SourceMap), String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    Pipeline::from_toml_all(&text).map_err(|errors| {
        for e in &errors {
            eprintln!("{}", super::snippet::render(&shown.to_string(), &text, e));
        }
        format!("{} in {shown}", super::counted(errors.len(), "problem"))
    })
}

/// Read the global configuration layer (`--config FILE`, else `$HCS_CONFIG`, else nothing).
pub fn read_global_config(path: Option<&Path>) -> Result<ConfigLayer, String> {
    // An empty `HCS_CONFIG=` is unset, as shells treat it.
    let from_env = std::env::var_os("HCS_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from);
    let named_by = if path.is_some() { "--config" } else { "HCS_CONFIG" };
    let Some(path) = path.map(Path::to_path_buf).or(from_env) else { return Ok(ConfigLayer::default()) };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{} (the global config file {named_by} names): {e}", path.display()))?;
    let value: toml::Value = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
    ConfigLayer::from_toml_all(value).map_err(|errors| {
        let all: Vec<String> = errors.iter().map(|e| format!("{}: {e}", path.display())).collect();
        all.join("\n")
    })
}

/// Print every problem (`file: line N: …`, with the source line and the span underlined) and
/// return the summary error.
pub fn report(shown: &str, errors: &[PipelineError]) -> String {
    let text = std::fs::read_to_string(shown).unwrap_or_default();
    for e in errors {
        eprintln!("{}", super::snippet::render(shown, &text, e));
    }
    format!("{} problem{} in {shown}", errors.len(), if errors.len() == 1 { "" } else { "s" })
}

/// What the plate holds among its images that its format's names do not match (those files
/// are not read): a count and the first few, or `None`.
pub fn unmatched_warning(plate: &Plate) -> Option<String> {
    let n = plate.unmatched.len();
    if n == 0 {
        return None;
    }
    let shown: Vec<String> = plate.unmatched.iter().take(5).map(|p| p.display().to_string()).collect();
    let more = if n > shown.len() { format!(", and {} more", n - shown.len()) } else { String::new() };
    Some(format!(
        "{}: {n} file{} among the images {} no image name of the plate's format and {} not read: {}{more} (`hcs check PIPELINE --plate DIR --strict` refuses such a plate)",
        plate.root.display(),
        if n == 1 { "" } else { "s" },
        if n == 1 { "matches" } else { "match" },
        if n == 1 { "is" } else { "are" },
        shown.join(", ")
    ))
}

/// Warn about the plate's stray files among its images and each disagreement between its
/// metadata and its images.
pub fn plate_warnings(plate: &Plate) {
    if let Some(warning) = unmatched_warning(plate) {
        super::logging::say("warning", warning);
    }
    for disagreement in &plate.disagreements {
        super::logging::say("warning", format_args!("{}: {disagreement}", plate.root.display()));
    }
}

/// Compile the pipeline file for the plate (`overrides`: the command line's config layer);
/// problems are printed, and fail the command. Returns the opened plate too, for running.
pub fn compile_file(
    pipeline_path: &Path,
    plate_dir: &Path,
    config: Option<&Path>,
    overrides: ConfigLayer,
    wells: Option<Vec<WellId>>,
) -> Result<(Pipeline, Plate, CompiledPlate), String> {
    let (pipeline, map) = read_pipeline(pipeline_path)?;
    let global = read_global_config(config)?;
    let plate = open_plate(plate_dir, None).map_err(|e| e.to_string())?;
    plate_warnings(&plate);
    let info = PlateInfo::of(&plate);
    let registry = Registry::global();
    let options = CompileOptions {
        global,
        overrides,
        wells,
        source: Some(&map),
        gpus: crate::device::detect(),
        ..CompileOptions::new(registry)
    };
    match compile(&pipeline, &info, &options) {
        Ok(compiled) => {
            for note in &compiled.notes {
                super::logging::say("note", note);
            }
            Ok((pipeline, plate, compiled))
        }
        Err(errors) => Err(report(&pipeline_path.display().to_string(), &errors)),
    }
}
