//! `results/run.json`: the run's identity and, per well, how it went.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exec::output::read_record;
use crate::exec::trace::StepTrace;
use crate::plate::{Component, WellId};

use super::RunFacts;
use super::quality::{self, WellQc};

/// File name in `results/`.
pub const FILE: &str = "run.json";

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunJson {
    /// hcs's version.
    pub hcs_version: String,
    /// `local`, `demo` or `slurm`.
    pub kind: String,
    /// The command line.
    pub command: String,
    /// The pipeline.
    pub pipeline: PipelineId,
    /// The input plate.
    pub plate: PlateId,
    /// The output plate folder.
    pub output_root: PathBuf,
    /// The resolved configuration (of the first step; steps may override it).
    pub config: serde_json::Value,
    /// Start (RFC 3339, UTC).
    pub started: String,
    /// End (RFC 3339, UTC).
    pub ended: String,
    /// Wall time (seconds).
    pub seconds: f64,
    /// Worker threads (a Slurm run: its array tasks).
    pub workers: usize,
    /// Wells the run took at once (absent for a Slurm run: each task decides for its cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wells_at_once: Option<usize>,
    /// The pipeline's steps.
    pub steps: Vec<StepId>,
    /// Wells per status.
    pub counts: BTreeMap<String, usize>,
    /// Per well, in plate order.
    pub wells: Vec<WellJson>,
}

/// The pipeline's identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PipelineId {
    /// Its name.
    pub name: String,
    /// CRC-32 (hex) of the pipeline file's text, or of the compiled first well's plan when no
    /// text is known.
    pub hash: String,
    /// The file it was read from.
    pub file: Option<PathBuf>,
}

/// The input plate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlateId {
    /// Its folder.
    pub path: PathBuf,
    /// Its name.
    pub name: String,
    /// The format it was read as.
    pub format: String,
    /// Rows of the plate format (the smallest standard format holding every well).
    pub rows: u16,
    /// Columns of the plate format.
    pub columns: u16,
    /// Pixel size (µm), if the plate says.
    pub pixel_size_um: Option<f64>,
    /// Channels.
    pub channels: Vec<ChannelId>,
}

/// One channel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChannelId {
    /// 1-based index.
    pub index: u32,
    /// Name.
    pub name: String,
}

/// One step of the pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepId {
    /// 1-based index.
    pub index: usize,
    /// Name.
    pub name: String,
    /// The functions it calls.
    pub functions: Vec<String>,
}

/// One well.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WellJson {
    /// Its name (`A01`).
    pub well: String,
    /// Row, 0-based (A = 0).
    pub row: u16,
    /// Column, 1-based.
    pub column: u16,
    /// `done`, `resumed`, `failed`, `not_run`, `interrupted`, `missing` or `done_earlier`
    /// (complete from an earlier run, not part of this one: `hcs run --wells`).
    pub status: String,
    /// The error of a failed well (it names the step and the file).
    pub error: Option<String>,
    /// Wall time (seconds).
    pub seconds: f64,
    /// Start, seconds after the run's start (negative for a well finished by an earlier run).
    pub start_s: Option<f64>,
    /// The well thread that ran it.
    pub worker: Option<usize>,
    /// The process's peak resident memory when the well ended (MiB).
    pub peak_rss_mib: Option<f64>,
    /// The most heap bytes in use at once in the process when the well ended (MiB; the data
    /// held, without what the allocator keeps for reuse).
    #[serde(default)]
    pub peak_heap_mib: Option<f64>,
    /// The compiler's estimate of the well's peak memory (MiB), `write_behind_mib` included.
    pub estimated_peak_mib: Option<f64>,
    /// The part of the estimate that is plane files waiting for the disk: the most the well's
    /// writer queue may hold, unless one file is larger (MiB; `None` when there is no estimate).
    #[serde(default)]
    pub write_behind_mib: Option<f64>,
    /// The most the writer queue held at once (MiB; part of `peak_heap_mib` when it was then).
    #[serde(default)]
    pub peak_write_behind_mib: Option<f64>,
    /// Per step.
    pub steps: Vec<StepJson>,
    /// Quality figures.
    pub qc: WellQc,
    /// What needs a look (stitching fallback, saturation, blur, empty well, failure).
    pub flags: Vec<String>,
    /// Output files (relative to the output plate; a well's OME-Zarr group counted as one).
    pub outputs: Vec<OutputFile>,
}

/// One step of one well.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepJson {
    /// Start, seconds after the run's start.
    pub start_s: f64,
    /// The measured trace.
    #[serde(flatten)]
    pub trace: StepTrace,
}

/// An output of a well.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputFile {
    /// Relative to the output plate.
    pub path: PathBuf,
    /// Bytes.
    pub bytes: u64,
}

/// RFC 3339 (UTC) of a Unix time, always with three digits of milliseconds: a reader that takes
/// its format from the first value (pandas' `to_datetime`) must find it in every row, also when
/// a time falls on a whole second (`time`'s own RFC 3339 drops the fraction then).
pub fn rfc3339(unix_s: f64) -> String {
    let nanos = (unix_s * 1e3).round() as i128 * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        })
        .unwrap_or_default()
}

/// The smallest standard plate format (6 … 1536 wells) holding every well, as (rows, columns);
/// larger layouts are their wells' extent.
pub fn plate_format(wells: impl IntoIterator<Item = WellId>) -> (u16, u16) {
    let (mut rows, mut cols) = (1u16, 1u16);
    for w in wells {
        rows = rows.max(w.row.saturating_add(1));
        cols = cols.max(w.col);
    }
    // The same format the OME-Zarr plate lists its rows and columns by.
    let (r, c) = crate::vfs::omezarr::standard_format(u32::from(rows), u32::from(cols));
    (u16::try_from(r).unwrap_or(rows), u16::try_from(c).unwrap_or(cols))
}

/// The outputs a record lists, a well's group in an OME-Zarr store counted as one entry.
fn outputs(files: &[crate::exec::output::WrittenFile]) -> Vec<OutputFile> {
    let mut merged: BTreeMap<PathBuf, u64> = BTreeMap::new();
    for f in files {
        let parts: Vec<_> = f.path.components().collect();
        let store = parts.iter().position(|c| c.as_os_str().to_string_lossy().ends_with(".zarr"));
        let path = match store {
            // `<store>.zarr/<row>/<column>`: the well's group.
            Some(i) => parts.iter().take(i + 3).collect::<PathBuf>(),
            None => f.path.clone(),
        };
        *merged.entry(path).or_default() += f.bytes;
    }
    merged.into_iter().map(|(path, bytes)| OutputFile { path, bytes }).collect()
}

fn functions(pattern: &crate::plan::compiler::ResolvedPattern) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for call in pattern.calls() {
        if !names.contains(&call.function) {
            names.push(call.function.clone());
        }
    }
    names
}

/// Build the run's record from the facts, the wells' completion records and the result files
/// their plans name.
pub fn build(facts: &RunFacts<'_>) -> RunJson {
    let compiled = facts.compiled;
    let root = &compiled.output_root;
    let metadata = &facts.plate.metadata;
    let first = compiled.wells.first();
    let hash = match &facts.pipeline_text {
        Some(text) => crc32fast::hash(text.as_bytes()),
        None => crc32fast::hash(
            first.map(|p| serde_json::to_string(&p.steps).unwrap_or_default()).unwrap_or_default().as_bytes(),
        ),
    };
    let (rows, columns) = plate_format(facts.plate.index.wells().into_iter().chain(facts.wells.iter().map(|w| w.well)));
    let mut wells = Vec::new();
    for end in &facts.wells {
        let record = read_record(root, end.well).filter(|_| matches!(end.status, "done" | "resumed" | "done_earlier"));
        let trace = record.as_ref().and_then(|r| r.trace.clone());
        // Only a well that ended with its files has result files: those its record lists.
        let written: Vec<PathBuf> =
            record.as_ref().map(|r| r.files.iter().map(|f| root.join(&f.path)).collect()).unwrap_or_default();
        let result_files = compiled.well(end.well).map(|p| quality::ResultFiles::of(p, &written)).unwrap_or_default();
        let qc = quality::well_qc(&result_files, trace.as_ref().map_or(&[][..], |t| &t.qc));
        let steps = trace
            .as_ref()
            .map(|t| {
                t.steps
                    .iter()
                    .map(|s| StepJson { start_s: s.start_unix_s - facts.started_unix_s, trace: s.clone() })
                    .collect()
            })
            .unwrap_or_default();
        wells.push(WellJson {
            well: end.well.to_string(),
            row: end.well.row,
            column: end.well.col,
            status: end.status.to_string(),
            error: end.error.clone(),
            seconds: if matches!(end.status, "resumed" | "done_earlier") {
                trace.as_ref().map_or(0.0, |t| t.seconds)
            } else {
                end.seconds
            },
            start_s: trace.as_ref().map(|t| t.start_unix_s - facts.started_unix_s),
            worker: end.lane.or(trace.as_ref().map(|t| t.worker)),
            peak_rss_mib: trace.as_ref().and_then(|t| t.peak_rss_mib),
            peak_heap_mib: trace.as_ref().and_then(|t| t.peak_heap_mib),
            estimated_peak_mib: compiled
                .well(end.well)
                .and_then(|p| p.estimated_peak_bytes)
                .map(|b| b as f64 / 1_048_576.0),
            write_behind_mib: compiled
                .well(end.well)
                .filter(|p| p.estimated_peak_bytes.is_some())
                .map(|p| p.write_behind_bytes as f64 / 1_048_576.0),
            peak_write_behind_mib: trace.as_ref().map(|t| t.peak_write_behind_mib),
            steps,
            flags: Vec::new(),
            qc,
            outputs: record.map(|r| outputs(&r.files)).unwrap_or_default(),
        });
    }
    quality::flag(&mut wells);
    let mut counts = BTreeMap::new();
    for w in &wells {
        *counts.entry(w.status.clone()).or_insert(0) += 1;
    }
    let channels = facts
        .plate
        .index
        .values(Component::Channel)
        .into_iter()
        .map(|index| ChannelId {
            index,
            name: metadata
                .channels
                .iter()
                .find(|c| c.index == index)
                .map_or_else(|| format!("channel {index}"), |c| c.name.clone()),
        })
        .collect();
    RunJson {
        hcs_version: env!("CARGO_PKG_VERSION").to_string(),
        kind: facts.kind.to_string(),
        command: facts.command.clone(),
        pipeline: PipelineId {
            name: compiled.pipeline.clone(),
            hash: format!("{hash:08x}"),
            file: facts.pipeline_file.clone(),
        },
        plate: PlateId {
            path: compiled.plate.clone(),
            name: metadata.name.clone(),
            format: format!("{:?}", metadata.format).to_lowercase(),
            rows,
            columns,
            pixel_size_um: metadata.pixel_size_um,
            channels,
        },
        output_root: root.clone(),
        config: first
            .and_then(|p| p.steps.first())
            .and_then(|s| serde_json::to_value(&s.config).ok())
            .unwrap_or_default(),
        started: rfc3339(facts.started_unix_s),
        ended: rfc3339(facts.ended_unix_s),
        seconds: facts.ended_unix_s - facts.started_unix_s,
        workers: facts.workers,
        wells_at_once: facts.wells_at_once,
        steps: first
            .map(|p| {
                p.steps
                    .iter()
                    .map(|s| StepId { index: s.index, name: s.name.clone(), functions: functions(&s.func) })
                    .collect()
            })
            .unwrap_or_default(),
        counts,
        wells,
    }
}

/// Read a `run.json`.
pub fn read(path: &Path) -> Result<RunJson, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plate_formats_are_the_smallest_standard_one_holding_the_wells() {
        let w = |s: &str| s.parse::<WellId>().expect("well");
        assert_eq!(plate_format([w("A01"), w("B03")]), (2, 3));
        assert_eq!(plate_format([w("D02"), w("B06")]), (4, 6));
        assert_eq!(plate_format([w("H12")]), (8, 12));
        assert_eq!(plate_format([w("I01")]), (16, 24));
        assert_eq!(plate_format([w("AF48")]), (32, 48));
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        // Three digits always, on a whole second too (pandas reads a column in one format).
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_000_000.25), "2026-11-18T11:06:40.250Z");
        assert_eq!(rfc3339(1_795_000_000.000_4), "2026-11-18T11:06:40.000Z");
        assert_eq!(rfc3339(1_795_000_059.999_6), "2026-11-18T11:07:40.000Z");
    }
}
