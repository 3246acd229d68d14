//! The run report: what every run (local, Slurm finalize, demo) leaves in its output's
//! `results/` so that it explains itself.
//!
//! - `run.json` ([`run_json`]): the run's identity (hcs version, command, pipeline hash, plate,
//!   resolved config, start and end) and per well its status, error, seconds, memory, devices,
//!   quality figures and output files;
//! - `trace.tsv` ([`trace_tsv`]): one row per well × step, Nextflow-trace style;
//! - `overview.png` ([`overview`]): the plate's wells, channels composited in colour with one
//!   contrast per channel across the plate, labelled, with a scale bar;
//! - `report.html` ([`html`]): one self-contained page (plate map, wells table, timings,
//!   timeline, QC flags, thumbnails), no network.
//!
//! Everything is built from the wells' completion records (which carry each well's trace) and
//! the files in `results/`, so a report can be written by a process that ran none of the wells.

pub mod html;
pub mod overview;
pub mod quality;
pub mod run_json;
pub mod trace_tsv;

use std::path::PathBuf;

use crate::plan::compiler::CompiledPlate;
use crate::plate::{Plate, WellId};

pub use run_json::RunJson;

/// How one well of the run ended, as the process writing the report knows it.
#[derive(Clone, Debug)]
pub struct WellEnd {
    /// The well.
    pub well: WellId,
    /// `done`, `resumed`, `failed`, `not_run`, `interrupted`, `missing` (a cluster task ended
    /// without completing it) or `done_earlier` (complete from an earlier run, by its record; not
    /// part of this one, which ran other wells).
    pub status: &'static str,
    /// The error of a failed well.
    pub error: Option<String>,
    /// Wall time in this run (seconds; 0 for wells that did not run).
    pub seconds: f64,
    /// The timeline lane that ran it, where the well's trace does not say (cluster tasks each
    /// number their threads from 0).
    pub lane: Option<usize>,
}

impl WellEnd {
    /// The wells of `whole` (the plate's plan) that the run's plan `ran` does not hold: complete
    /// from an earlier run where their record says so for this plan and their inputs now
    /// (`done_earlier`; their files are not read back), else `not_run`.
    pub fn outside_the_run(whole: &CompiledPlate, ran: &CompiledPlate, plate: &Plate) -> Vec<WellEnd> {
        whole
            .wells
            .iter()
            .filter(|p| ran.well(p.well).is_none())
            .map(|p| {
                let earlier =
                    crate::exec::output::recorded_complete(&p.output_root, p, plate.inputs_fingerprint(p.well));
                WellEnd {
                    well: p.well,
                    status: if earlier { "done_earlier" } else { "not_run" },
                    error: None,
                    seconds: 0.0,
                    lane: None,
                }
            })
            .collect()
    }

    /// From a local run's well report.
    pub fn of(report: &crate::exec::WellReport) -> Self {
        WellEnd {
            well: report.well,
            status: report.status.name(),
            error: report.status.error().map(str::to_string),
            seconds: report.seconds,
            lane: None,
        }
    }
}

/// What a report is written from.
pub struct RunFacts<'a> {
    /// `local`, `demo` or `slurm`.
    pub kind: &'static str,
    /// The command line.
    pub command: String,
    /// The pipeline file, if the run read one.
    pub pipeline_file: Option<PathBuf>,
    /// The pipeline's text (hashed into the run's identity).
    pub pipeline_text: Option<String>,
    /// The compiled plate.
    pub compiled: &'a CompiledPlate,
    /// The input plate.
    pub plate: &'a Plate,
    /// Start and end (seconds since the Unix epoch).
    pub started_unix_s: f64,
    /// End.
    pub ended_unix_s: f64,
    /// Worker threads of the run (a Slurm run: its array tasks).
    pub workers: usize,
    /// Wells the run took at once (`None` for a Slurm run: each task decides for its cores).
    pub wells_at_once: Option<usize>,
    /// How each well ended.
    pub wells: Vec<WellEnd>,
    /// The pictures' planes shrunk as the run wrote them, if it kept them.
    pub shrunk_as_written: Option<&'a overview::ShrunkAsWritten>,
}

/// The files a report wrote, and what it could not show.
#[derive(Debug, Default)]
pub struct Written {
    /// Paths written.
    pub files: Vec<PathBuf>,
    /// What the report could not do (also in the report itself).
    pub notes: Vec<String>,
    /// Wells whose stitching fell back to the nominal grid for some tiles.
    pub stitch_fallbacks: Vec<StitchFallback>,
}

/// A well whose stitching fell back to the nominal grid for some tiles.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StitchFallback {
    /// The well.
    pub well: String,
    /// Tiles placed from the grid rather than from the images.
    pub tiles: usize,
    /// The step (1-based) that computed the positions; `None` in summaries written before it
    /// was recorded. It and the steps reading its positions decide whether the fallback fails
    /// the run ([`CompiledPlate::fails_on_stitch_fallback_at`]).
    #[serde(default)]
    pub step: Option<usize>,
    /// Where positions are kept per group (a time-lapse), the groups that fell back (`t2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl StitchFallback {
    /// The edge table the plan names for this well and step (`<results_dir>/<stem>_edges.csv`
    /// of the step's first per-well materialized output); `None` without a step, or where the
    /// plan names no such output.
    pub fn edge_table(&self, compiled: &CompiledPlate) -> Option<PathBuf> {
        let plan = compiled.wells.iter().find(|p| p.well.to_string() == self.well)?;
        let (_, _, out) =
            plan.materialized_outputs().find(|(step, _, out)| Some(*step) == self.step && !out.per_group)?;
        Some(out.results_dir.join(format!("{}_edges.csv", out.stem)))
    }

    /// Whether this fallback fails the run under `compiled`'s `on_stitch_fallback` settings.
    pub fn fails(&self, compiled: &CompiledPlate) -> bool {
        // Step 0 is no step: an unknown step leaves the decision to every step.
        compiled.fails_on_stitch_fallback_at(self.step.unwrap_or(0))
    }
}

/// The wells whose fallbacks fail the run under `compiled`'s `on_stitch_fallback` settings, each
/// once, in the order `fallbacks` lists them. A well with two placing steps is named once; a
/// fallback whose step only warns names no well.
pub fn failing_wells(fallbacks: &[StitchFallback], compiled: &CompiledPlate) -> Vec<String> {
    distinct_wells(fallbacks.iter().filter(|f| f.fails(compiled)))
}

/// The wells of `fallbacks`, each once, in order.
pub fn distinct_wells<'a>(fallbacks: impl IntoIterator<Item = &'a StitchFallback>) -> Vec<String> {
    let mut wells: Vec<String> = Vec::new();
    for f in fallbacks {
        if !wells.contains(&f.well) {
            wells.push(f.well.clone());
        }
    }
    wells
}

/// This process's command line, as run records and lock files name it.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// The run's results folder: the output's `results/`, or the `results_folder` the run's
/// configuration names (not a step's own, which places that step's special outputs only).
pub fn results_dir(compiled: &CompiledPlate) -> PathBuf {
    if compiled.results_dir.as_os_str().is_empty() {
        // A plan frozen before the folder was recorded: where such a run put its report.
        let folder = compiled.wells.first().and_then(|w| w.steps.first()).map(|s| s.config.results_folder.as_str());
        compiled.output_root.join(folder.unwrap_or("results"))
    } else {
        compiled.results_dir.clone()
    }
}

/// Wells whose stitching fell back to the nominal grid for some tiles, with how many: what
/// [`Written::stitch_fallbacks`] holds, for a run whose report could not be written (the
/// `on_stitch_fallback` policy still applies).
fn stitch_fallbacks(facts: &RunFacts<'_>) -> Vec<StitchFallback> {
    fallbacks_of(&run_json::build(facts))
}

/// [`write()`], where a report that cannot be written is a warning: the run's outcome matters
/// more than its report (a full disk, say). The stitching fallbacks are then still read from
/// the wells' results, so the `on_stitch_fallback` policy applies either way.
pub fn write_or_warn(facts: &RunFacts<'_>) -> Written {
    write(facts).unwrap_or_else(|e| {
        tracing::warn!("cannot write the run report: {e}");
        Written { stitch_fallbacks: stitch_fallbacks(facts), ..Written::default() }
    })
}

/// Warn about every well of `written` whose stitching fell back to the nominal grid, naming
/// where to look: the report, or without one (it could not be written) the edge table the
/// plan names for the step that placed the tiles (`<results>/<well>_*_edges.csv` where the
/// plan names none: a fallback read from an older summary, or a per-group table).
pub fn warn_stitch_fallbacks(written: &Written, compiled: &CompiledPlate) {
    let html = written.files.iter().find(|f| f.file_name().is_some_and(|n| n == html::FILE));
    for fallback in &written.stitch_fallbacks {
        let StitchFallback { well, tiles, groups, .. } = fallback;
        let see = match html {
            Some(p) => p.display().to_string(),
            None => fallback.edge_table(compiled).map_or_else(
                || results_dir(compiled).join(format!("{well}_*_edges.csv")).display().to_string(),
                |p| p.display().to_string(),
            ),
        };
        let tiles = if *tiles == 1 { "1 tile".to_string() } else { format!("{tiles} tiles") };
        let of = if groups.is_empty() { well.clone() } else { format!("{well} ({})", groups.join(", ")) };
        tracing::warn!(
            well = %well,
            "stitching fell back: {tiles} of {of} placed from the nominal grid, not from the images (see {see})"
        );
    }
}

/// The stitching fallbacks of the wells this run ran or verified (`done`, `resumed`): a well
/// complete from an earlier run (`done_earlier`) is in the report, but does not fail this run.
fn fallbacks_of(run: &run_json::RunJson) -> Vec<StitchFallback> {
    run.wells
        .iter()
        .filter(|w| matches!(w.status.as_str(), "done" | "resumed"))
        .filter_map(|w| {
            let s = w.qc.stitching.as_ref()?;
            Some(StitchFallback {
                well: w.well.clone(),
                tiles: s.model_placed,
                step: s.step,
                groups: s.fell_back_in.clone(),
            })
        })
        .filter(|f| f.tiles > 0)
        .collect()
}

/// Write `run.json`, `trace.tsv`, `overview.png` and `report.html` into the output's
/// `results/`. A part that cannot be made (no image to thumbnail, say) is a note, not an error;
/// a file that cannot be written is an error.
pub fn write(facts: &RunFacts<'_>) -> Result<Written, String> {
    let results = results_dir(facts.compiled);
    std::fs::create_dir_all(&results).map_err(|e| format!("{}: {e}", results.display()))?;
    let run = run_json::build(facts);
    let mut written = Written { stitch_fallbacks: fallbacks_of(&run), ..Written::default() };
    let write = |name: &str, bytes: &[u8], written: &mut Written| -> Result<(), String> {
        let path = results.join(name);
        crate::vfs::atomic::write_atomic_unsynced(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        written.files.push(path);
        Ok(())
    };
    let json = serde_json::to_vec_pretty(&run).map_err(|e| format!("run.json: {e}"))?;
    write(run_json::FILE, &json, &mut written)?;
    let tsv = trace_tsv::build(&run).map_err(|e| format!("trace.tsv: {e}"))?;
    write(trace_tsv::FILE, &tsv, &mut written)?;
    let pictures = overview::render(facts, &run);
    written.notes.extend(pictures.notes.iter().cloned());
    if let Some(png) = &pictures.overview_png {
        write(overview::FILE, png, &mut written)?;
    }
    let page = html::build(&run, &pictures);
    write(html::FILE, page.as_bytes(), &mut written)?;
    // On disk before the run says it wrote them; the four synced at once (one after another,
    // each write waited for its own sync at the end of every run: with the two changes beside
    // this one, the report's part of a standard-plate run's end went from ~45 to ~35 ms).
    crate::vfs::atomic::sync_files(&written.files).map_err(|e| e.to_string())?;
    for note in &written.notes {
        // A picture that could not be made is worth a warning; what the pictures assume or
        // leave out (no pixel size, one site of many) is said in the report and the log.
        if note.starts_with("no overview") || note.contains(" not shown ") {
            tracing::warn!("report: {note}");
        } else {
            tracing::info!("report: {note}");
        }
    }
    Ok(written)
}
