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
    let line = |at: usize| crate::plan::pipeline::line_of(&text, at);
    let value: toml::Value = toml::from_str(&text).map_err(|e| {
        let at = e.span().map(|s| format!("line {}: ", line(s.start))).unwrap_or_default();
        format!("{}: {at}{}", path.display(), e.message())
    })?;
    // Each refused key at its line, as a pipeline's `[config]` keys are.
    let key_lines: std::collections::BTreeMap<String, usize> = toml::de::DeTable::parse(&text)
        .map(|doc| doc.get_ref().iter().map(|(k, _)| (k.get_ref().to_string(), line(k.span().start))).collect())
        .unwrap_or_default();
    ConfigLayer::from_toml_all(value).map_err(|errors| {
        let all: Vec<String> = errors
            .iter()
            .map(|e| {
                let at = e.key().and_then(|k| key_lines.get(k)).map(|n| format!("line {n}: ")).unwrap_or_default();
                format!("{}: {at}{e}", path.display())
            })
            .collect();
        all.join("\n")
    })
}

/// Print every problem (`file: line N: …`, with the source line and the span underlined) in
/// file order — those about no line (the global configuration, an empty pipeline) first — and
/// return the summary error.
pub fn report(shown: &str, errors: &[PipelineError]) -> String {
    let text = std::fs::read_to_string(shown).unwrap_or_default();
    let mut errors: Vec<&PipelineError> = errors.iter().collect();
    errors.sort_by_key(|e| e.at().0.map(|at| (at.line, at.start)));
    for e in &errors {
        eprintln!("{}", super::snippet::render(shown, &text, e));
    }
    format!("{} problem{} in {shown}", errors.len(), if errors.len() == 1 { "" } else { "s" })
}

/// What the plate holds among its images that its format's names do not match, or that are
/// folders (those entries are not read): a count and the first few, or `None`.
pub fn unmatched_warning(plate: &Plate) -> Option<String> {
    let n = plate.unmatched.len();
    if n == 0 {
        return None;
    }
    let is_folder = |p: &std::path::PathBuf| plate.root.join(p).is_dir();
    let folders = plate.unmatched.iter().filter(|p| is_folder(p)).count();
    let shown: Vec<String> = plate
        .unmatched
        .iter()
        .take(5)
        .map(|p| if is_folder(p) { format!("{} (a folder)", p.display()) } else { p.display().to_string() })
        .collect();
    let more = if n > shown.len() { format!(", and {} more", n - shown.len()) } else { String::new() };
    // Opera's images are the files its Index.xml lists, whatever their names.
    let unnamed = if plate.metadata.format == hcs_plate::FormatKind::OperaPhenix {
        ("is not listed in the plate's Index.xml", "are not listed in the plate's Index.xml")
    } else {
        ("matches no image name of the plate's format", "match no image name of the plate's format")
    };
    let what = match (folders, n) {
        (0, 1) => format!("1 file among the images {} and is", unnamed.0),
        (0, n) => format!("{n} files among the images {} and are", unnamed.1),
        (1, 1) => "1 folder among the images is an entry the plate's format does not read, and is".to_string(),
        (_, n) => format!(
            "{n} entries among the images are files named like no image of the plate's format, or folders, and are"
        ),
    };
    Some(format!(
        "{}: {what} not read: {}{more} (`hcs check PIPELINE --plate DIR --strict` refuses such a plate)",
        plate.root.display(),
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

/// Wells asked for on the command line that the plate lacks: an error about the option, not
/// the pipeline file, listing the plate's wells (the first 12 of a larger plate).
fn refuse_absent_wells(asked: &[WellId], plate: &PlateInfo) -> Result<(), String> {
    let absent: Vec<String> = asked.iter().filter(|w| !plate.wells.contains(w)).map(ToString::to_string).collect();
    if absent.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = plate.wells.iter().take(12).map(ToString::to_string).collect();
    let more =
        if plate.wells.len() > shown.len() { format!(", … ({} in all)", plate.wells.len()) } else { String::new() };
    Err(format!(
        "{}: the plate has no {} {} (its wells: {}{more})",
        plate.root.display(),
        if absent.len() == 1 { "well" } else { "wells" },
        absent.join(", "),
        shown.join(", ")
    ))
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
    if let Some(asked) = &wells {
        refuse_absent_wells(asked, &info)?;
    }
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

/// The pipeline compiled for every well of the plate, quietly (notes are the selection's
/// compile's to say): for the run report of a `--wells` run, which covers the whole output
/// plate. `None` when it does not compile, which the selection's compile would have said.
pub fn compile_whole_plate(
    pipeline: &Pipeline,
    plate: &Plate,
    config: Option<&Path>,
    overrides: ConfigLayer,
) -> Option<CompiledPlate> {
    let options = CompileOptions {
        global: read_global_config(config).ok()?,
        overrides,
        gpus: crate::device::detect(),
        ..CompileOptions::new(Registry::global())
    };
    compile(pipeline, &PlateInfo::of(plate), &options).ok()
}
