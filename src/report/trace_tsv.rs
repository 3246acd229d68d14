//! `results/trace.tsv`: one row per well × step that ran, tab-separated with a header, in the
//! manner of Nextflow's trace (loads with `pandas.read_csv(path, sep="\t")`).

use super::run_json::{RunJson, rfc3339};

/// File name in `results/`.
pub const FILE: &str = "trace.tsv";

/// The columns, in order.
pub const COLUMNS: [&str; 16] = [
    "well",
    "status",
    "step",
    "name",
    "worker",
    "start",
    "start_s",
    "duration_s",
    "planes_in",
    "planes_out",
    "bytes_read",
    "bytes_written",
    "rss_mib",
    "peak_rss_mib",
    "device",
    "retries",
];

/// The table of `run`'s wells × steps (wells that did not run have no rows).
pub fn build(run: &RunJson) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new().delimiter(b'\t').from_writer(Vec::new());
    writer.write_record(COLUMNS)?;
    let mib = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    for w in &run.wells {
        for s in &w.steps {
            let t = &s.trace;
            writer.write_record([
                w.well.clone(),
                w.status.clone(),
                t.index.to_string(),
                t.name.clone(),
                w.worker.map(|k| k.to_string()).unwrap_or_default(),
                rfc3339(t.start_unix_s),
                format!("{:.3}", s.start_s),
                format!("{:.4}", t.seconds),
                t.planes_in.to_string(),
                t.planes_out.to_string(),
                t.bytes_read.to_string(),
                t.bytes_written.to_string(),
                mib(t.rss_mib),
                mib(t.peak_rss_mib),
                t.device.clone(),
                t.retries.to_string(),
            ])?;
        }
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
