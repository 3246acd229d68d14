//! `hcs check PIPELINE [--plate DIR]`: report every mistake found before any plate is processed,
//! with file lines. With `--plate`, the pipeline is compiled for that plate (all five phases).
//!
//! `hcs check [PIPELINE] --plate DIR --deep` also reads the header of every image of the plate
//! (never the pixels) and reports each empty, non-TIFF, truncated, mis-sized or wrongly typed
//! file, one line per problem.

use std::path::{Path, PathBuf};

use crate::Registry;
use crate::plan::pipeline::{ConfigLayer, check_config, check_functions, check_special_io};
use crate::plate::formats::open_plate_unread;

use super::compile_args::{compile_file, read_pipeline, report};

/// Options of `hcs check`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML); optional with `--deep`.
    #[arg(required_unless_present = "deep")]
    pub pipeline: Option<PathBuf>,
    /// Compile for this plate: well filters, dict keys, special inputs from metadata, storage,
    /// memory types, GPUs.
    #[arg(long)]
    pub plate: Option<PathBuf>,
    /// Read the header of every image of `--plate` (not the pixels) and report empty, non-TIFF,
    /// truncated or corrupt files, images of another size than the plate's, files holding more
    /// pages than the plate reads, and samples that are not grey (8- or 16-bit unsigned, or
    /// 32-bit float) or differ from the plate's.
    #[arg(long, requires = "plate")]
    pub deep: bool,
    /// Refuse a plate that holds files among its images that match no image name of its format,
    /// or whose metadata and images disagree (listed either way); with a pipeline or `--deep`.
    #[arg(long, requires = "plate")]
    pub strict: bool,
    /// Global configuration file (the layer under the pipeline's `[config]`; default `$HCS_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Check the pipeline (and with `--deep` the plate's images); every problem is printed, and any
/// problem fails the command.
pub fn run(args: &Args) -> Result<(), String> {
    let deep = match (&args.plate, args.deep) {
        // Without a pipeline, the image check also says what compiling would about the plate.
        (Some(plate), true) => check_images(plate, args.pipeline.is_none(), args.strict),
        (None, true) => Err("--deep needs --plate".to_owned()),
        (_, false) => Ok(()),
    };
    let pipeline = match &args.pipeline {
        Some(pipeline) => check_pipeline(pipeline, args),
        None => Ok(()),
    };
    match (deep, pipeline) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
        // A plate that cannot be opened fails both the same way: say it once.
        (Err(deep), Err(pipeline)) if deep == pipeline => Err(deep),
        (Err(deep), Err(pipeline)) => Err(format!("{deep}; {pipeline}")),
    }
}

/// `--deep`: read every image header of the plate; print one line per problem. `alone` (no
/// pipeline checked, which would do it): the plate's stray files and disagreements are warned
/// about too, and refused when `strict`.
fn check_images(plate_dir: &Path, alone: bool, strict: bool) -> Result<(), String> {
    let started = std::time::Instant::now();
    // The error names the plate (every `FormatError` does).
    let plate = open_plate_unread(plate_dir, None).map_err(|e| e.to_string())?;
    // Refused or not, the headers are read: a damaged image is worth knowing about either way.
    let unclean = if alone {
        super::compile_args::plate_warnings(&plate);
        if strict { refuse_unclean(plate_dir, &plate).err() } else { None }
    } else {
        None
    };
    let headers = check_headers(plate_dir, &plate, started);
    match (unclean, headers) {
        (None, headers) => headers,
        (Some(e), Ok(())) => Err(e),
        (Some(e), Err(headers)) => Err(format!("{e}; {headers}")),
    }
}

/// Read every image header of `plate` (opened from `plate_dir` at `started`) and print one line
/// per problem.
fn check_headers(plate_dir: &Path, plate: &crate::plate::Plate, started: std::time::Instant) -> Result<(), String> {
    let shown = plate_dir.display();
    let report = plate.check_image_headers();
    let seconds = started.elapsed().as_secs_f64();
    let zarr = match report.zarr_planes {
        0 => String::new(),
        n => format!(" ({n} OME-Zarr planes not checked)"),
    };
    let files = report.files;
    if report.problems.is_empty() {
        let kind = match (report.tile_shape, report.dtype) {
            (Some((h, w)), Some(dtype)) => format!(", all {w}×{h} {}", dtype.name()),
            (None, Some(dtype)) => format!(", all {}, each well's of one size", dtype.name()),
            _ => String::new(),
        };
        println!("{shown}: {files} image files checked (headers only){kind}: no problems{zarr} [{seconds:.2} s]");
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    let n = report.problems.len();
    Err(format!(
        "{n} problem{} in {files} image files of {shown} (headers checked){zarr}",
        if n == 1 { "" } else { "s" }
    ))
}

/// `--strict`: refuse a plate that holds files among its images that are not its images, or
/// whose metadata and images disagree.
fn refuse_unclean(plate_dir: &Path, plate: &crate::plate::Plate) -> Result<(), String> {
    if plate.unmatched.is_empty() && plate.disagreements.is_empty() {
        return Ok(());
    }
    let mut why = Vec::new();
    if !plate.unmatched.is_empty() {
        let n = plate.unmatched.len();
        let entries = if n == 1 { "1 entry".to_string() } else { format!("{n} entries") };
        why.push(format!("{entries} among its images that the plate does not read"));
    }
    if !plate.disagreements.is_empty() {
        why.push(format!(
            "{} between its metadata and its images",
            super::counted(plate.disagreements.len(), "disagreement")
        ));
    }
    Err(format!("--strict: {} holds {} (listed above, unless -q)", plate_dir.display(), why.join(", and ")))
}

fn check_pipeline(pipeline_path: &Path, args: &Args) -> Result<(), String> {
    let shown = pipeline_path.display().to_string();
    if let Some(plate) = &args.plate {
        let (pipeline, opened, compiled) =
            compile_file(pipeline_path, plate, args.config.as_deref(), ConfigLayer::default(), None)?;
        if args.strict {
            refuse_unclean(plate, &opened)?;
        }
        let calls: usize = pipeline.steps.iter().map(|s| s.func.calls().len()).sum();
        println!(
            "{shown}: `{}` compiles for {} of {}: {}, {}; outputs go to {}",
            pipeline.name,
            super::wells(compiled.wells.len()),
            plate.display(),
            super::counted(pipeline.steps.len(), "step"),
            super::counted(calls, "function call"),
            compiled.output_root.display()
        );
        return Ok(());
    }
    // The global configuration file is read (and refused when wrong) even without a plate, and
    // its values checked as compiling checks them.
    let global = super::compile_args::read_global_config(args.config.as_deref())?;
    let (pipeline, map) = read_pipeline(pipeline_path)?;
    let no_line = |_: &str| crate::plan::pipeline::Line(None);
    let mut errors = crate::plan::pipeline::config_errors(&global, no_line, None, "global config: ");
    errors.extend(check_config(&pipeline, Some(&map)));
    errors.extend(check_functions(&pipeline, Registry::global(), Some(&map)));
    errors.extend(check_special_io(&pipeline, Registry::global(), Some(&map)));
    if errors.is_empty() {
        let calls: usize = pipeline.steps.iter().map(|s| s.func.calls().len()).sum();
        println!(
            "{shown}: `{}` is valid: {}, {}",
            pipeline.name,
            super::counted(pipeline.steps.len(), "step"),
            super::counted(calls, "function call")
        );
        return Ok(());
    }
    Err(report(&shown, &errors))
}
