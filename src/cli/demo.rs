//! `hcs demo`: synthesize a seeded plate, compile and run the demo pipeline
//! (`examples/pipelines/demo.toml`: tile positions from a channel composite, stitched and
//! tophat-filtered channels, cells counted on channel 1) and write an output plate a scientist can
//! open, a plate overview PNG and a short summary with the stitching error against the synthetic
//! ground truth.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Registry;
use crate::exec::{RunOptions, RunReport, WellReport, WellStatus, run as execute};
use crate::plan::compiler::{CompileOptions, CompiledPlate, PlateInfo, compile};
use crate::plan::pipeline::{ConfigLayer, Pipeline};
use crate::plate::formats::open_plate;
use crate::plate::{Component, WellId};
use crate::synth::{GroundTruth, synthesize};
use crate::vfs::Backend;

/// The demo pipeline, built into the binary so the demo runs from anywhere.
pub const DEMO_PIPELINE: &str = include_str!("../../examples/pipelines/demo.toml");

/// Options of `hcs demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Output directory: the synthetic plate goes to `<out>/plate`, the output plate to
    /// `<out>/output` (its report and `overview.png` in `<out>/output/results`), a summary to
    /// `<out>/summary.txt`.
    #[arg(long, default_value = "hcs-demo")]
    pub out: PathBuf,
    /// Tile edge in pixels.
    #[arg(long, default_value_t = 1024)]
    pub tile: usize,
    /// Wells, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "A01,D02,B03,B06")]
    pub wells: Vec<String>,
    /// Random seed of the synthetic plate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Storage of the output images.
    #[arg(long, value_parser = ["zarr", "disk"], default_value = "zarr")]
    pub backend: String,
}

/// Mean and max distance (px) between estimated and true tile origins, both shifted so their
/// smallest x and y are 0.
fn stitching_error(estimated: &[(f64, f64)], truth: &[(f64, f64)]) -> Option<(f64, f64)> {
    if estimated.len() != truth.len() || truth.is_empty() {
        return None;
    }
    let origin = |p: &[(f64, f64)]| {
        (p.iter().map(|q| q.0).fold(f64::INFINITY, f64::min), p.iter().map(|q| q.1).fold(f64::INFINITY, f64::min))
    };
    let (ex, ey) = origin(estimated);
    let (tx, ty) = origin(truth);
    let d: Vec<f64> =
        estimated.iter().zip(truth).map(|(e, t)| ((e.0 - ex) - (t.0 - tx)).hypot((e.1 - ey) - (t.1 - ty))).collect();
    Some((d.iter().sum::<f64>() / d.len() as f64, d.iter().copied().fold(0.0, f64::max)))
}

/// Tile origins `(x, y)` by site from a positions CSV (`site,row,col,x,y`).
fn read_positions(path: &Path) -> Option<Vec<(f64, f64)>> {
    let mut reader = csv::Reader::from_path(path).ok()?;
    reader.deserialize::<(u32, u32, u32, f64, f64)>().map(|row| row.ok().map(|(_, _, _, x, y)| (x, y))).collect()
}

/// One well's outcome: stitching error against the ground truth and cells counted vs true.
struct WellSummary {
    well: WellId,
    status: String,
    /// Mean and max distance (px) of the estimated tile positions from the true ones.
    error: Option<(f64, f64)>,
    cells: Option<u64>,
    true_cells: Option<usize>,
}

fn well_summaries(results: &Path, report: &RunReport, truth: &GroundTruth) -> Vec<WellSummary> {
    report
        .wells
        .iter()
        .map(|w| {
            let est = read_positions(&results.join(format!("{}_positions.csv", w.well)));
            let gt: Option<Vec<(f64, f64)>> = truth
                .positions
                .iter()
                .find(|(well, _)| *well == w.well)
                .map(|(_, ps)| ps.iter().map(|p| (p.x, p.y)).collect());
            let status = match &w.status {
                WellStatus::Done | WellStatus::Resumed => "done".to_string(),
                WellStatus::Failed(e) => format!("FAILED: {e}"),
                WellStatus::NotRun => "not run".into(),
                WellStatus::Interrupted => "interrupted".into(),
            };
            WellSummary {
                well: w.well,
                status,
                error: est.zip(gt).and_then(|(e, t)| stitching_error(&e, &t)),
                cells: crate::report::quality::cells(&results.join(format!("{}_cell_counts.json", w.well))),
                true_cells: truth.cells.iter().find(|(well, _)| *well == w.well).map(|(_, n)| *n),
            }
        })
        .collect()
}

/// The plate summary as CSV: one row per well (free text quoted by the `csv` crate).
fn summary_csv(rows: &[WellSummary]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "well",
        "status",
        "stitching_error_mean_px",
        "stitching_error_max_px",
        "cells",
        "true_cells",
    ])?;
    for r in rows {
        writer.serialize((
            r.well.to_string(),
            &r.status,
            r.error.map(|e| format!("{:.3}", e.0)),
            r.error.map(|e| format!("{:.3}", e.1)),
            r.cells,
            r.true_cells,
        ))?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

fn summary(
    compiled: &CompiledPlate,
    report: &RunReport,
    rows: &[WellSummary],
    timings: &BTreeMap<&str, f64>,
) -> String {
    let mut s = String::new();
    let Some(first) = compiled.wells.first() else { return s };
    let results = first.output_root.join("results");
    let _ = writeln!(s, "hcs demo: `{}` on {}", compiled.pipeline, super::wells(compiled.wells.len()));
    for (what, secs) in timings {
        let _ = writeln!(s, "  {what:<12} {secs:>8.2} s");
    }
    let _ = writeln!(s, "  per step (summed over wells):");
    for (i, step) in first.steps.iter().enumerate() {
        let t: f64 = report.wells.iter().filter_map(|w| w.step_seconds.get(i)).sum();
        let _ = writeln!(s, "    {:>2}. {:<28} {t:>8.2} s", step.index, step.name);
    }
    let _ = writeln!(s, "  well   stitching error vs ground truth (mean / max px)   cells (threshold count / true)");
    for r in rows {
        let err = r.error.map_or("n/a".to_string(), |(m, x)| format!("{m:.2} / {x:.2}"));
        let status = if r.status == "done" { String::new() } else { format!("  {}", r.status) };
        let _ = writeln!(
            s,
            "  {}    {err:<47}  {} / {}{status}",
            r.well,
            r.cells.map_or("n/a".into(), |c| c.to_string()),
            r.true_cells.map_or("n/a".into(), |c| c.to_string())
        );
    }
    let _ = writeln!(s, "  output plate  {}", first.output_root.display());
    let _ = writeln!(s, "  results       {}  (positions CSV, cell counts JSON/CSV per well)", results.display());
    let _ = writeln!(s, "  plate summary {}", results.join(PLATE_SUMMARY).display());
    let _ = writeln!(s, "  report        {}", results.join(crate::report::html::FILE).display());
    let _ = writeln!(s, "  overview      {}", results.join(crate::report::overview::FILE).display());
    let _ = writeln!(
        s,
        "  run record    {}  and {}",
        results.join(crate::report::run_json::FILE).display(),
        results.join(crate::report::trace_tsv::FILE).display()
    );
    s
}

/// File name of the plate summary CSV in the output plate's results folder.
pub const PLATE_SUMMARY: &str = "plate_summary.csv";

/// Run the demo. `Ok(Some(code))`: wells failed, exit with `code` after the summary.
pub fn run(args: &Args) -> Result<Option<u8>, String> {
    let total = Instant::now();
    let mut timings = BTreeMap::new();
    let synth_args = super::synth::Args {
        out: args.out.join("plate"),
        format: super::synth::Format::Imagexpress,
        wells: args.wells.clone(),
        grid: vec![3, 3],
        tile: args.tile,
        overlap: 0.1,
        jitter: 2.0,
        channels: 2,
        z: 3,
        timepoints: 1,
        seed: args.seed,
        cell_density: 1.0,
        noise: 100.0,
        falloff: 0.3,
        source_image: None,
        source_scale: 1.0,
        force: true,
    };
    let config = synth_args.config()?;
    // The output's lock, held to the end: a second demo into the same folder is refused at once.
    let output = args.out.join("output");
    let lock = super::run::lock_output(&output)?;
    let started = Instant::now();
    // The demo owns its plate folder: a plate from an earlier demo with other options is replaced.
    super::synth::guard_output(&synth_args.out, &config, synth_args.force)?;
    let truth = synthesize(&config, &synth_args.out).map_err(|e| e.to_string())?;
    timings.insert("1 synthesize", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let plate = open_plate(&synth_args.out, None).map_err(|e| e.to_string())?;
    let (pipeline, map) = Pipeline::from_toml(DEMO_PIPELINE).map_err(|e| format!("demo pipeline: {e}"))?;
    // A fresh output every time: the demo shows a whole run, not a resumed one.
    clear_except_lock(&output, lock.path())?;
    let registry = Registry::global();
    let overrides = ConfigLayer {
        output_root: Some(output.clone()),
        backend: Some(if args.backend == "disk" { Backend::Disk } else { Backend::Zarr }),
        ..ConfigLayer::default()
    };
    let options = CompileOptions {
        overrides,
        source: Some(&map),
        gpus: crate::device::detect(),
        ..CompileOptions::new(registry)
    };
    // The lines named are those of the built-in file, which the user did not write: say so,
    // and what to change.
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        format!(
            "the demo's built-in pipeline (examples/pipelines/demo.toml) does not fit a plate of --tile {}:\n{}\nrun the demo with a larger --tile (the default is 1024)",
            args.tile,
            lines.join("\n")
        )
    })?;
    timings.insert("2 compile", started.elapsed().as_secs_f64());
    super::logging::log_to(&crate::report::results_dir(&compiled).join(super::logging::LOG_FILE));

    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(compiled.wells.len() as u64);
        let style =
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} wells ETA {eta} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        super::logging::attach(&bar);
        bar
    });
    let progress = super::run::WellProgress::new(bar.clone());
    let on_step = |well: WellId, index: usize, total: usize, name: &str| progress.step(well, index, total, name);
    let on_well = |r: &WellReport| progress.well_ended(r.well, &format!("{} in {:.1} s", r.well, r.seconds));
    let started = Instant::now();
    let started_unix_s = crate::exec::trace::unix_now();
    let shrunk = crate::report::overview::ShrunkAsWritten::new(compiled.wells.len());
    let on_output = |key: &crate::plate::ImageKey, plane: &crate::vfs::PlaneData| shrunk.observe(key, plane);
    let options = RunOptions {
        on_well: Some(&on_well),
        on_step: Some(&on_step),
        on_output: Some(&on_output),
        ..RunOptions::default()
    };
    let report = execute(&compiled, &plate, registry, &options).map_err(|e| e.to_string())?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    timings.insert("3 run", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let facts = crate::report::RunFacts {
        kind: "demo",
        command: super::run::command_line(),
        pipeline_file: None,
        pipeline_text: Some(DEMO_PIPELINE.to_string()),
        compiled: &compiled,
        plate: &plate,
        started_unix_s,
        ended_unix_s: crate::exec::trace::unix_now(),
        workers: report.concurrency.workers,
        wells_at_once: report.concurrency.wells_at_once,
        wells: report.wells.iter().map(crate::report::WellEnd::of).collect(),
        shrunk_as_written: Some(&shrunk),
    };
    let written = crate::report::write(&facts)?;
    let fallback_fails = !super::run::stitch_fallbacks(&written, &compiled).is_empty();
    timings.insert("4 report", started.elapsed().as_secs_f64());
    timings.insert("total", total.elapsed().as_secs_f64());
    let wells: Vec<WellId> = report.wells.iter().filter(|w| w.status == WellStatus::Done).map(|w| w.well).collect();

    let results = output.join("results");
    let rows = well_summaries(&results, &report, &truth);
    let table = summary_csv(&rows).map_err(|e| format!("plate summary CSV: {e}"))?;
    crate::vfs::atomic::write_atomic(&results.join(PLATE_SUMMARY), &table).map_err(|e| e.to_string())?;
    let text = summary(&compiled, &report, &rows, &timings);
    crate::vfs::atomic::write_atomic(&args.out.join("summary.txt"), text.as_bytes()).map_err(|e| e.to_string())?;
    print!("{text}");
    let sites = plate.index.values(Component::Site).len();
    println!(
        "  (synthetic plate: {} × {sites} sites × 2 channels × 3 z, {}² u16)",
        super::wells(wells.len()),
        args.tile
    );
    drop(lock);
    if report.failed() {
        eprintln!("error: some wells failed (see above)");
    }
    Ok((report.failed() || fallback_fails).then_some(super::EXIT_WELLS_FAILED))
}

/// Remove everything under `dir` but the lock file `keep` (removing it would let another process
/// lock a new file while this one holds the old).
fn clear_except_lock(dir: &Path, keep: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
        let path = entry.path();
        if path == keep {
            continue;
        }
        let removed = if keep.starts_with(&path) {
            clear_except_lock(&path, keep).map_err(std::io::Error::other)
        } else if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stitching_error_ignores_a_common_offset() {
        let truth = [(0.0, 0.0), (90.0, 1.0), (0.0, 92.0)];
        let est = [(10.0, 10.0), (100.0, 11.0), (10.0, 105.0)];
        let (mean, max) = stitching_error(&est, &truth).expect("same length");
        assert!((max - 3.0).abs() < 1e-12 && (mean - 1.0).abs() < 1e-12, "{mean} {max}");
        assert_eq!(stitching_error(&est[..2], &truth), None);
    }

    #[test]
    fn the_demo_pipeline_parses_and_checks() {
        let (p, map) = Pipeline::from_toml(DEMO_PIPELINE).expect("parses");
        assert_eq!(p.steps.len(), 8);
        let errors = crate::plan::pipeline::check_functions(&p, Registry::global(), Some(&map));
        assert!(errors.is_empty(), "{errors:?}");
    }
}
