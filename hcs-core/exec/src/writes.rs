//! What a step writes outside the well's own state: persistent planes (checkpoints, the final
//! output), previews, and materialized special outputs (atomic files, synced with the well's
//! other files before its record).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hcs_core::special::{ByteSink, MaterializeTarget, SpecialData};
use hcs_plan::compiler::{Location, StepPlan};
use hcs_vfs::atomic::write_atomic_unsynced;

use crate::error::StepError;
use crate::job::WellJob;
use crate::output::{
    LabelPlanes, OnOutput, Sink, WellRecord, WrittenFile, file_crc, relative, subdir_name, write_planes,
};
use crate::routing::Special;
use crate::state::Planes;
use crate::write_behind::WriteBehind;

/// Materialized special outputs are written atomically (temporary file, then rename), not
/// synced one by one: like plane files, they reach the disk before the well's record that lists
/// them (`write_record` syncs every file it vouches for). A sync here made the well wait for the
/// disk in the middle of its steps (0.2–0.36 s for a positions CSV behind a checkpoint's writes,
/// bench/RESULTS.md). The sink remembers each file it wrote, so that when a materializer fails
/// after some of its files (a full disk), those files are still listed in the well's record and
/// removed with the failed well.
#[derive(Default)]
struct StoreSink {
    written: Mutex<Vec<PathBuf>>,
}

impl ByteSink for StoreSink {
    fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic_unsynced(path, bytes).map_err(std::io::Error::other)?;
        if let Ok(mut written) = self.written.lock() {
            written.push(path.to_path_buf());
        }
        Ok(())
    }
}

/// Publish a step's output of this well to its preview store (the well appears in the plate
/// metadata at once) and write a thumbnail of its first plane.
pub fn publish_preview(
    job: &WellJob<'_>,
    preview: &hcs_plan::compiler::PreviewPlan,
    planes: &Planes,
) -> Result<(), StepError> {
    let location = Location::Zarr { store: preview.store.store.clone() };
    let sink = job.sinks.sink(&location).ok_or(StepError::NoPreviewStore)?;
    write_planes(&sink, &job.plan.output_root, planes, &Vec::new(), job.dtype, None, None)?;
    if let Sink::Zarr(writer, _) = sink {
        writer.finalize()?;
    }
    if let Some(first) = planes.values().next() {
        let path = preview.thumbnails.join(format!("{}.png", job.plan.well));
        hcs_vfs::thumbnail::write_thumbnail(&path, first.view(), 256)?;
    }
    Ok(())
}

/// Write a well's planes to a persistent location (a checkpoint or the final output) and list
/// them in its record; `on_output` (the job's, for the final output) sees each plane as stored.
/// Plane files go through the well's writer (`writes`): they are in place once
/// [`WriteBehind::finish`] returns.
pub fn persist(
    job: &WellJob<'_>,
    location: &Location,
    planes: &Planes,
    labels: &LabelPlanes,
    on_output: Option<&OnOutput<'_>>,
    record: &mut WellRecord,
    writes: &WriteBehind,
) -> Result<(), StepError> {
    let sink = job.sinks.sink(location).ok_or_else(|| StepError::NoSink(location.clone()))?;
    let root = &job.plan.output_root;
    let (files, refs) = write_planes(&sink, root, planes, labels, job.dtype, Some(writes), on_output)?;
    record.files.extend(files);
    let name = subdir_name(location, root).unwrap_or_default();
    record.subdirs.entry(name).or_default().extend(refs);
    Ok(())
}

/// Write a special output with its materializer, if the contract names one, and list the files
/// in the well's record.
pub fn materialize(
    job: &WellJob<'_>,
    step: &StepPlan,
    key: &str,
    special: &Special,
    record: &mut WellRecord,
) -> Result<(), StepError> {
    let Some(out) = step.special_outputs.get(key) else { return Ok(()) };
    let Some(spec) = job.registry.variants(&out.function).iter().find_map(|c| c.special_output(key)) else {
        return Ok(());
    };
    let Some(materializer) = spec.materializer else { return Ok(()) };
    let values: Vec<(String, &SpecialData)> = match special {
        Special::One(v) => vec![(out.stem.clone(), v)],
        Special::PerGroup(vs) => {
            let well = job.plan.well.to_string();
            vs.iter().map(|g| (format!("{well}_{}_{key}", g.label), &g.value)).collect()
        }
    };
    let sink = Arc::new(StoreSink::default());
    for (stem, value) in values {
        let target = MaterializeTarget::with_sink(&out.results_dir, stem, Arc::clone(&sink) as Arc<dyn ByteSink>);
        let answer = (materializer.run)(value, &target);
        // Every file the sink wrote is listed in the record, named by the materializer or not
        // (a failure half-way, or a file it did not return): a failed well removes them all.
        let written = sink.written.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        let named: Vec<PathBuf> = answer.as_ref().map(Clone::clone).unwrap_or_default();
        let unnamed: std::collections::BTreeSet<PathBuf> = written.into_iter().filter(|p| !named.contains(p)).collect();
        for p in unnamed {
            let (bytes, crc32) = file_crc(&p).unwrap_or_default();
            record.files.push(WrittenFile { path: relative(&p, &job.plan.output_root), bytes, crc32 });
        }
        let paths = answer.map_err(|source| StepError::Materialize {
            key: key.to_string(),
            materializer: materializer.name,
            source,
        })?;
        for p in paths {
            let (bytes, crc32) = file_crc(&p).ok_or_else(|| StepError::NotWritten(p.clone()))?;
            record.files.push(WrittenFile { path: relative(&p, &job.plan.output_root), bytes, crc32 });
        }
    }
    Ok(())
}
