//! The executor: runs a compiled plate, wells in parallel on a bounded pool (and the pattern
//! groups of a well in parallel too), each well following its frozen plan. Data flows only
//! through the locations the plans name; nothing is re-planned.
//!
//! Failure model: a failing well is reported and the others go on (unless `fail_fast`); a well
//! counts as done only once its completion record is written, after all its outputs, so a killed
//! run resumed with the same command redoes exactly the unfinished wells. At the end the output
//! plate gets its `hcs_plate.json` (every finished well), which makes it a valid input plate, and
//! an `openhcs_metadata.json` where OpenHCS can open it (TIFFs in a folder under the output).
#![deny(missing_docs)]

pub mod blocks;
pub mod ceiling;
pub mod error;
pub mod groups;
pub mod guard;
pub mod heap;
pub mod huge_pages;
pub mod job;
pub mod lock;
pub mod output;
pub mod parts;
pub mod prefetch;
pub mod qc;
pub mod retry;
pub mod routing;
pub mod rss;
pub mod settings;
pub mod slots;
pub mod state;
pub mod step;
pub mod trace;
pub mod well;
pub mod wells_at_once;
pub mod write_behind;
pub mod writes;

pub use error::{ExecError, NoRetry, StepError};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use hcs_vfs::Dtype;
use hcs_vfs::ome_tiff::Origin;
use hcs_vfs::omezarr::{NgffVersion, OmeZarrPlateWriter, PlateLayout, ZarrCodec};

use hcs_core::registry::Registry;
use hcs_plan::compiler::{CompiledPlate, FrozenWellPlan, Location, WellPlan, ZarrStorePlan};
use hcs_plan::pipeline::{Workers, ZarrCompression};
use hcs_plate::formats::native::{FORMAT_VERSION, HcsPlateFile, Subdir};
use hcs_plate::formats::openhcs_write::Companion;
use hcs_plate::{Component, Plate, WellId};

use job::{Sinks, WellJob};
use output::{Completion, Sink, ZarrAxes};
use well::{WellOutcome, run_well};

/// How a well ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "status", content = "error", rename_all = "snake_case")]
pub enum WellStatus {
    /// Processed in this run.
    Done,
    /// Complete and verified from an earlier run: skipped.
    Resumed,
    /// Failed (the message names the step).
    Failed(String),
    /// Not started because an earlier well failed under `fail_fast`.
    NotRun,
    /// Not started because the run was asked to stop ([`RunOptions::stop`], e.g. on Ctrl-C);
    /// re-running the same command runs it.
    Interrupted,
}

impl WellStatus {
    /// The status as run records name it: `done`, `resumed`, `failed`, `not_run`, `interrupted`.
    pub const fn name(&self) -> &'static str {
        match self {
            WellStatus::Done => "done",
            WellStatus::Resumed => "resumed",
            WellStatus::Failed(_) => "failed",
            WellStatus::NotRun => "not_run",
            WellStatus::Interrupted => "interrupted",
        }
    }

    /// The error of a failed well.
    pub fn error(&self) -> Option<&str> {
        match self {
            WellStatus::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// One well's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct WellReport {
    /// The well.
    pub well: WellId,
    /// How it ended.
    #[serde(flatten)]
    pub status: WellStatus,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Seconds per step (empty unless the well ran in this run).
    pub step_seconds: Vec<f64>,
    /// Out-of-memory retries and CPU fallbacks (also logged as warnings).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub notes: Vec<String>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The output plate.
    pub output_root: PathBuf,
    /// Per well, in well order.
    pub wells: Vec<WellReport>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The worker threads and the wells in flight the run used.
    pub concurrency: Concurrency,
}

/// How much of a run ran at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Concurrency {
    /// Worker threads the wells' groups ran on.
    pub workers: usize,
    /// Wells in flight at once ([`wells_at_once`]); `None` when no well ran.
    pub wells_at_once: Option<usize>,
}

impl RunReport {
    /// Whether any well failed or did not run (`fail_fast`, or interrupted).
    pub fn failed(&self) -> bool {
        self.wells
            .iter()
            .any(|w| matches!(w.status, WellStatus::Failed(_) | WellStatus::NotRun | WellStatus::Interrupted))
    }

    /// Whether the run was stopped before every well started.
    pub fn interrupted(&self) -> bool {
        self.wells.iter().any(|w| w.status == WellStatus::Interrupted)
    }
}

/// Run options.
#[derive(Default)]
pub struct RunOptions<'a> {
    /// Worker threads (default: the plan's run-level `workers`).
    pub workers: Option<usize>,
    /// Stop starting wells after the first failure.
    pub fail_fast: bool,
    /// Called as each well ends (progress bars, logs).
    pub on_well: Option<&'a (dyn Fn(&WellReport) + Sync)>,
    /// Called as each step of a well starts (progress bars).
    pub on_step: Option<&'a job::OnStep<'a>>,
    /// Called with each plane of a well's final output as stored (TIFF outputs), before its
    /// file is written, from several threads, for wells that may still fail (see
    /// [`output::OnOutput`]).
    pub on_output: Option<&'a output::OnOutput<'a>>,
    /// Once set (by a signal handler, say), no further well starts: wells in flight finish and
    /// write their records; the others end [`WellStatus::Interrupted`].
    pub stop: Option<&'a AtomicBool>,
    /// Kept up to date by the run: the number of wells executing now or waiting for their record
    /// (for an interrupt message: a well counted here is not done yet).
    pub in_flight: Option<&'a AtomicUsize>,
    /// Keep the files of a well that fails (for debugging); by default a failed well's
    /// checkpoint, output and scratch files are removed, so a full disk is not left full.
    pub keep_failed: bool,
    /// Wells executed at the same time (default: as many as the steps' groups need to keep the
    /// workers busy, [`wells_at_once`]).
    pub wells_at_once: Option<usize>,
}

struct RunSinks {
    zarr: BTreeMap<PathBuf, (OmeZarrPlateWriter, ZarrAxes)>,
    /// Per TIFF output folder, what its planes' OME-XML says (the pixel size at that step).
    facts: BTreeMap<PathBuf, output::PlaneFacts>,
    /// For a folder the plan did not list (none should be): the plate's facts.
    plate_facts: output::PlaneFacts,
}

impl Sinks for RunSinks {
    fn sink<'s>(&'s self, location: &'s Location) -> Option<Sink<'s>> {
        match location {
            Location::Disk { dir } => Some(Sink::Disk(dir, self.facts.get(dir).unwrap_or(&self.plate_facts))),
            Location::Zarr { store } => self.zarr.get(store).map(|(w, a)| Sink::Zarr(w, a)),
            _ => None,
        }
    }
}

/// Whether a run creates the output stores (and cleans what an interrupted run left) or attaches
/// to stores prepared before — what a cluster task does while other tasks write other wells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attach {
    Create,
    Open,
}

fn zarr_sink(
    plan: &ZarrStorePlan,
    plate: &Plate,
    (pixel_size_um, origin): (Option<f64>, (f64, f64)),
    dtype: Dtype,
    attach: Attach,
) -> Result<(OmeZarrPlateWriter, ZarrAxes), ExecError> {
    // The axes are the plan's: the executor never sizes a store itself.
    let vals = |c: Component| plan.axis_values.get(&c).cloned().unwrap_or_else(|| vec![1]);
    let axes = ZarrAxes {
        sites: vals(Component::Site),
        channels: vals(Component::Channel),
        zs: vals(Component::Z),
        timepoints: vals(Component::Timepoint),
    };
    let name_of = |c: &u32| {
        plate
            .metadata
            .channels
            .iter()
            .find(|ch| ch.index == *c)
            .map_or_else(|| format!("channel {c}"), |ch| ch.name.clone())
    };
    let layout = PlateLayout {
        name: plate.metadata.name.clone(),
        wells: plan.wells.iter().map(|w| (w.row_letters(), u32::from(w.col))).collect(),
        fields: axes.sites.len() as u32,
        timepoints: axes.timepoints.len() as u32,
        channels: axes.channels.iter().map(name_of).collect(),
        z_planes: axes.zs.len() as u32,
        plane_shape: plate.metadata.tile_shape.unwrap_or((1, 1)),
        dtype,
        pixel_size_um,
        z_spacing_um: plate.metadata.z_spacing_um,
        version: NgffVersion::V05,
        codec: match plan.codec {
            ZarrCompression::Zstd => ZarrCodec::Zstd(plan.level),
            ZarrCompression::None => ZarrCodec::None,
        },
        // A mosaic of the site grid never exceeds the tiles laid side by side: one canvas for
        // every well's mosaic, so viewers can tile the plate.
        mosaic_canvas: plate
            .metadata
            .tile_shape
            .zip(plate.metadata.grid)
            .map(|((h, w), (rows, cols))| (h * rows as usize, w * cols as usize)),
        origin,
    };
    let writer = match attach {
        Attach::Create => OmeZarrPlateWriter::create(&plan.store, layout)?,
        Attach::Open => OmeZarrPlateWriter::open(&plan.store, layout)?,
    };
    Ok((writer, axes))
}

/// The output stores of `compiled`, created (folders made, leftovers of interrupted runs removed)
/// or opened as they are.
fn output_sinks(compiled: &CompiledPlate, plate: &Plate, attach: Attach) -> Result<RunSinks, ExecError> {
    let dtype = plate.metadata.dtype.unwrap_or(Dtype::U16);
    let plate_facts = output::PlaneFacts {
        pixel_size_um: plate.metadata.pixel_size_um,
        origin: None,
        channels: plate.metadata.channels.iter().map(|c| (c.index, c.name.clone())).collect(),
    };
    let mut sinks = RunSinks { zarr: BTreeMap::new(), facts: BTreeMap::new(), plate_facts };
    let Some(first) = compiled.wells.first() else { return Ok(sinks) };
    for step in &first.steps {
        // The pixel size of this step's output: the plate's, times what binning steps did.
        let pixel_size_um = plate.metadata.pixel_size_um.zip(step.pixel_scale).map(|(p, s)| p * s);
        // Where its first pixel lies, in the scale's unit: µm when calibrated, else its own pixels.
        // (An unknown scale has no origin either: the compiler noted it; the OME-Zarr
        // translation is then 0, and the OME-TIFF planes carry none.)
        let (oy, ox) = step.pixel_origin;
        let origin = match (plate.metadata.pixel_size_um, step.pixel_scale) {
            (Some(p), Some(_)) => Some(Origin::Micrometres(oy * p, ox * p)),
            (None, Some(s)) => Some(Origin::Pixels(oy / s, ox / s)),
            (_, None) => None,
        };
        let translation = origin.map_or((0.0, 0.0), Origin::yx);
        let preview = step.preview.as_ref().map(|p| &p.store);
        for plan in [step.zarr_store.as_ref(), step.checkpoint_zarr_store.as_ref(), preview].into_iter().flatten() {
            sinks.zarr.insert(plan.store.clone(), zarr_sink(plan, plate, (pixel_size_um, translation), dtype, attach)?);
        }
        for loc in [Some(&step.writes), step.checkpoint.as_ref()].into_iter().flatten() {
            if let Location::Disk { dir } = loc {
                let facts = output::PlaneFacts { pixel_size_um, origin, ..sinks.plate_facts.clone() };
                sinks.facts.insert(dir.clone(), facts);
            }
        }
        if attach == Attach::Open {
            continue;
        }
        for loc in [Some(&step.writes), step.checkpoint.as_ref()].into_iter().flatten() {
            if let Location::Disk { dir } = loc {
                std::fs::create_dir_all(dir).map_err(|source| hcs_vfs::VfsError::Io { path: dir.clone(), source })?;
                hcs_vfs::atomic::remove_stale_temporaries(dir)?;
            }
        }
        for out in step.special_outputs.values() {
            hcs_vfs::atomic::remove_stale_temporaries(&out.results_dir)?;
        }
    }
    if attach == Attach::Create {
        hcs_vfs::atomic::remove_stale_temporaries(&compiled.output_root.join(".hcs").join("wells"))?;
    }
    Ok(sinks)
}

/// Prepare the output of `compiled` before any well runs: folders, OME-Zarr plates (row groups,
/// metadata), and removal of what an interrupted run left half-written. Done once, by a local run
/// or by the host that submits a cluster run — never while wells are being written.
pub fn prepare(compiled: &CompiledPlate, plate: &Plate) -> Result<(), ExecError> {
    guard::check_outputs_outside_plate(compiled)?;
    output_sinks(compiled, plate, Attach::Create).map(|_| ())
}

/// Write the plate-level output once the wells are done: each OME-Zarr plate's metadata listing
/// its complete wells, and `hcs_plate.json` from every finished well's record.
pub fn finalize(compiled: &CompiledPlate, plate: &Plate) -> Result<(), ExecError> {
    for (writer, _) in output_sinks(compiled, plate, Attach::Open)?.zarr.values() {
        writer.finalize()?;
    }
    write_plate_metadata(compiled, plate)
}

/// Run every well of `compiled` on `plate`: [`prepare`], [`run_wells`] over all of them,
/// [`finalize`].
pub fn run(
    compiled: &CompiledPlate,
    plate: &Plate,
    registry: &Registry,
    options: &RunOptions<'_>,
) -> Result<RunReport, ExecError> {
    let start = Instant::now();
    prepare(compiled, plate)?;
    let all: Vec<usize> = (0..compiled.wells.len()).collect();
    let (wells, concurrency) = run_selection(compiled, plate, registry, options, &all)?;
    finalize(compiled, plate)?;
    Ok(RunReport {
        output_root: compiled.output_root.clone(),
        wells,
        seconds: start.elapsed().as_secs_f64(),
        concurrency,
    })
}

/// Run the wells `selection` (indices into `compiled.wells`) of a prepared output, in parallel;
/// the reports come in selection order. Touches only those wells' files, so several processes
/// (cluster tasks) may run disjoint selections at once.
pub fn run_wells(
    compiled: &CompiledPlate,
    plate: &Plate,
    registry: &Registry,
    options: &RunOptions<'_>,
    selection: &[usize],
) -> Result<Vec<WellReport>, ExecError> {
    run_selection(compiled, plate, registry, options, selection).map(|(wells, _)| wells)
}

/// [`run_wells`], and how much of it ran at once.
fn run_selection(
    compiled: &CompiledPlate,
    plate: &Plate,
    registry: &Registry,
    options: &RunOptions<'_>,
    selection: &[usize],
) -> Result<(Vec<WellReport>, Concurrency), ExecError> {
    let plans: Vec<&FrozenWellPlan> = selection.iter().filter_map(|&k| compiled.wells.get(k)).collect();
    let Some(first) = plans.first() else { return Ok((Vec::new(), Concurrency::default())) };
    let driver = WellDriver {
        plate,
        registry,
        options,
        sinks: output_sinks(compiled, plate, Attach::Open)?,
        dtype: plate.metadata.dtype.unwrap_or(Dtype::U16),
        pool: worker_pool(options, first)?,
        stop: AtomicBool::new(false),
        gpu_slots: slots::DeviceSlots::default(),
    };
    Ok(driver.run_all(&plans))
}

/// The worker threads a run of plans like `first` uses: `asked` (`--workers`), else the plan's
/// `workers`, else one per core. `hcs plan` says the same number a run would use.
pub fn worker_count(asked: Option<usize>, first: &WellPlan) -> usize {
    let configured = asked.or(match first.steps.first().map(|s| s.config.workers) {
        Some(Workers::Count(n)) => Some(n),
        _ => None,
    });
    configured.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1)
}

/// The pool the wells' groups run on, of [`worker_count`] threads.
fn worker_pool(options: &RunOptions<'_>, first: &FrozenWellPlan) -> Result<rayon::ThreadPool, ExecError> {
    let workers = worker_count(options.workers, first);
    // Not silently slow: idle workers wait for work spinning before they sleep, so workers
    // beyond the cores take turns at them (64 workers on 2 cores ran a small well 7× slower).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    if workers > 2 * cores {
        tracing::warn!(
            workers,
            cores,
            "{workers} workers on {cores} cores: the workers beyond the cores only take turns at them, and their waiting slows the run; one worker per core (the default) is fastest"
        );
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|source| ExecError::Workers { workers, source })
}

/// Hand the pages of the kept image blocks back to the system on a thread of its own (the
/// caller goes on; where no thread can be started they are freed at the process's exit).
fn hand_back_kept_pages() {
    let _ = std::thread::Builder::new().name("hcs-trim".into()).spawn(|| blocks::trim_kept_to(0));
}

/// What every well of a run shares.
struct WellDriver<'a> {
    plate: &'a Plate,
    registry: &'a Registry,
    options: &'a RunOptions<'a>,
    sinks: RunSinks,
    dtype: Dtype,
    pool: rayon::ThreadPool,
    /// Set under `fail_fast` once a well failed: no further well starts.
    stop: AtomicBool,
    gpu_slots: slots::DeviceSlots,
}

impl WellDriver<'_> {
    /// Run `plans` with a fixed number of wells in flight ([`wells_at_once`]; one per well
    /// thread, pulling the next well when done), so memory is bounded by a few wells whatever the
    /// plate size; each well's groups run on the shared pool.
    fn run_all(&self, plans: &[&FrozenWellPlan]) -> (Vec<WellReport>, Concurrency) {
        let Some(first) = plans.first() else { return (Vec::new(), Concurrency::default()) };
        let workers = self.pool.current_num_threads();
        let (threads, reason) = wells_at_once::wells_at_once(self.options.wells_at_once, workers, first, plans.len());
        match reason {
            wells_at_once::Reason::Groups(groups) => tracing::info!(
                wells_at_once = threads,
                workers,
                "wells at once: enough for steps of {groups} group{} (the median) to keep every worker busy (`hcs run --wells-at-once` changes it)",
                if groups == 1 { "" } else { "s" }
            ),
            wells_at_once::Reason::CpuGroups(groups) => tracing::info!(
                wells_at_once = threads,
                workers,
                "wells at once: enough for the steps on the CPU, of {groups} group{} (the median), to keep every worker busy; the steps on a GPU do not count (`hcs run --wells-at-once` changes it)",
                if groups == 1 { "" } else { "s" }
            ),
            _ => tracing::info!(wells_at_once = threads, workers, "wells at once"),
        }
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<WellReport>>> = plans.iter().map(|_| Mutex::new(None)).collect();
        // The ceiling decides when freed memory is handed back. The writer queue's bound is left
        // out of it: files waiting for the disk are memory in use, which a hand-back cannot
        // free, and counting them raised the ceiling so far that freed memory piled up (runs
        // reached 523 and 550 MiB, bench/RESULTS.md).
        let per_well =
            plans.iter().filter_map(|p| p.estimated_peak_bytes.map(|b| b.saturating_sub(p.write_behind_bytes))).max();
        let ceiling = ceiling::Ceiling::start(threads, per_well);
        let wells_done = AtomicBool::new(false);
        let keep = |k: usize, report: WellReport| {
            if let Ok(mut slot) = slots[k].lock() {
                *slot = Some(report);
            }
        };
        std::thread::scope(|scope| {
            let done = &wells_done;
            let watcher = ceiling.map(|c| scope.spawn(move || c.watch(done)));
            let stop_watcher = ceiling::StopOnDrop(done);
            // Wells whose steps are done get their files synced and their record written here,
            // while their well thread starts the next well instead of waiting for the disk.
            // At most one waiting well per well thread: a slow disk holds the well threads back
            // instead of letting unrecorded wells pile up.
            let (to_recorder, ran) = std::sync::mpsc::sync_channel::<Box<Unrecorded<'_>>>(threads);
            let keep = &keep;
            let recorder = scope.spawn(move || {
                for well in ran {
                    let k = well.k;
                    // A panic (in `on_well`, say) loses this well's report (`ThreadLost`), not
                    // the records of the wells queued behind it.
                    if let Ok(report) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.record(well))) {
                        keep(k, report);
                    }
                }
            });
            // The raw files of the wells about to start are read ahead, one round of wells
            // ahead of the well threads ([`prefetch::read_ahead`]).
            let (to_prefetcher, started) = std::sync::mpsc::channel::<usize>();
            let prefetcher = prefetch::enabled()
                .then(|| scope.spawn(move || prefetch::read_ahead(self.plate, plans, threads, started)));
            let wells: Vec<_> = (0..threads)
                .map(|worker| {
                    let (next, to_recorder, to_prefetcher) = (&next, to_recorder.clone(), to_prefetcher.clone());
                    scope.spawn(move || {
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(plan) = plans.get(k) else { break };
                            // The prefetcher may be gone (off, or it panicked): nothing to tell.
                            let _ = to_prefetcher.send(k);
                            match self.run_one(plan, worker, k) {
                                Ran::Reported(report) => keep(k, report),
                                // The recorder is gone (it panicked): record the well here.
                                Ran::Unrecorded(well) => match to_recorder.send(well) {
                                    Ok(()) => {}
                                    Err(std::sync::mpsc::SendError(well)) => keep(k, self.record(well)),
                                },
                            }
                        }
                    })
                })
                .collect();
            drop(to_recorder);
            drop(to_prefetcher);
            // A well thread that panicked is reported below as its wells' `ThreadLost`.
            wells.into_iter().for_each(|w| drop(w.join()));
            // No well starts any more: the pages kept for their blocks are handed back while
            // the last well's files go to the disk (a core idle for ~45 ms on the standard
            // plate). After the recorder was done, the hand-back (~50 ms of CPU) competed with
            // the report; at the process's exit the kernel freed them after the report.
            hand_back_kept_pages();
            drop(prefetcher.map(|p| p.join()));
            drop(recorder.join());
            // The blocks the writers freed since (the last wells' queued files) were kept
            // again: they go too, while the caller writes its report.
            hand_back_kept_pages();
            drop(stop_watcher);
            if let Some(report) = watcher.and_then(|w| w.join().ok()) {
                report.log();
            }
            huge_pages::log();
            blocks::log();
            settings::warn_unrecognized();
        });
        let wells = slots
            .into_iter()
            .zip(plans)
            .map(|(slot, plan)| {
                slot.into_inner().ok().flatten().unwrap_or_else(|| WellReport {
                    well: plan.well,
                    status: WellStatus::Failed(ExecError::ThreadLost.to_string()),
                    seconds: 0.0,
                    step_seconds: Vec::new(),
                    notes: Vec::new(),
                })
            })
            .collect();
        (wells, Concurrency { workers, wells_at_once: Some(threads) })
    }

    /// One well (the `k`th), on well thread `worker`: its report when skipped (stopped, already
    /// complete) or failed; else its steps are done, and it waits for its record
    /// ([`Self::record`]).
    fn run_one<'p>(&'p self, plan: &'p FrozenWellPlan, worker: usize, k: usize) -> Ran<'p> {
        let t = Instant::now();
        let interrupted = self.options.stop.is_some_and(|s| s.load(Ordering::SeqCst));
        // Fingerprinted before anything is read: should the inputs change while the well runs,
        // its record vouches for what they were, and the next run redoes it.
        let inputs = self.plate.inputs_fingerprint(plan.well);
        let (status, step_seconds, notes) = if interrupted {
            (WellStatus::Interrupted, Vec::new(), Vec::new())
        } else if self.stop.load(Ordering::Relaxed) {
            (WellStatus::NotRun, Vec::new(), Vec::new())
        } else {
            match output::completion(&plan.output_root, plan, Some(inputs)) {
                Completion::Done => (WellStatus::Resumed, Vec::new(), Vec::new()),
                completion => {
                    let running = self.options.in_flight.map(InFlight::enter);
                    match self.run_again(plan, worker, inputs, completion) {
                        Ok(outcome) => {
                            return Ran::Unrecorded(Box::new(Unrecorded {
                                k,
                                plan,
                                outcome,
                                started: t,
                                _running: running,
                            }));
                        }
                        Err(e) => (self.failed(&e), Vec::new(), Vec::new()),
                    }
                }
            }
        };
        Ran::Reported(self.report(WellReport {
            well: plan.well,
            status,
            seconds: t.elapsed().as_secs_f64(),
            step_seconds,
            notes,
        }))
    }

    /// Run a well that is not complete (`completion` says why): its old record withdrawn first,
    /// its new one to vouch for the `inputs` it read. A well whose inputs changed since its
    /// outputs were written is said to be run again for that reason.
    fn run_again(
        &self,
        plan: &FrozenWellPlan,
        worker: usize,
        inputs: u64,
        completion: Completion,
    ) -> Result<WellOutcome, ExecError> {
        output::withdraw_record(&plan.output_root, plan.well)?;
        let mut outcome = self.execute(plan, worker)?;
        outcome.record.inputs = Some(inputs);
        if completion == Completion::InputsChanged {
            let note = "its input images changed (size or time) since its outputs were written, so it was run again";
            tracing::warn!(well = %plan.well, "{note}");
            outcome.notes.push(note.to_string());
        }
        Ok(outcome)
    }

    /// A well's failure; under `fail_fast`, no further well starts.
    fn failed(&self, error: &ExecError) -> WellStatus {
        if self.options.fail_fast {
            self.stop.store(true, Ordering::Relaxed);
        }
        WellStatus::Failed(error.to_string())
    }

    /// Wait for the last files of a well whose steps are done (its well thread has gone on to
    /// the next well), sync them and write its completion record: the well is done from then on
    /// (its report's seconds run until then). A file or record that cannot be written fails the
    /// well (what it wrote is removed with a file that failed); under `fail_fast` no further well starts, though its well thread
    /// may already have started the next one.
    fn record(&self, well: Box<Unrecorded<'_>>) -> WellReport {
        // Counted in flight until the record is written (to the end of this function).
        let Unrecorded { plan, outcome, started, _running: _in_flight, .. } = *well;
        let written = outcome.settling.settle();
        let status = match written.and_then(|()| output::write_record(&plan.output_root, plan.well, &outcome.record)) {
            Ok(()) => WellStatus::Done,
            Err(e) => self.failed(&e.into()),
        };
        let (step_seconds, notes) = match status {
            WellStatus::Done => (outcome.step_seconds, outcome.notes),
            _ => (Vec::new(), Vec::new()),
        };
        self.report(WellReport {
            well: plan.well,
            status,
            seconds: started.elapsed().as_secs_f64(),
            step_seconds,
            notes,
        })
    }

    /// Log how a well ended and tell the caller ([`RunOptions::on_well`]).
    fn report(&self, report: WellReport) -> WellReport {
        match &report.status {
            WellStatus::Failed(error) => {
                tracing::error!(well = %report.well, %error, seconds = report.seconds, "well failed")
            }
            WellStatus::Interrupted => tracing::debug!(well = %report.well, "well not started: interrupted"),
            status => tracing::info!(well = %report.well, ?status, seconds = report.seconds, "well finished"),
        }
        if let Some(f) = self.options.on_well {
            f(&report);
        }
        report
    }

    /// Run the well on the pool (a panicking function fails its well, not the run), with the
    /// trace of well thread `worker`; its record is written by [`Self::record`].
    fn execute(&self, plan: &FrozenWellPlan, worker: usize) -> Result<WellOutcome, ExecError> {
        let job = WellJob {
            plan,
            plate: self.plate,
            registry: self.registry,
            sinks: &self.sinks,
            dtype: self.dtype,
            gpu_slots: &self.gpu_slots,
            keep_failed: self.options.keep_failed,
            on_step: self.options.on_step,
            on_output: self.options.on_output,
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.pool.install(|| run_well(&job))))
            .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ExecError::Panicked(message))
        })?;
        let mut outcome = outcome;
        if let Some(trace) = outcome.record.trace.as_mut() {
            trace.worker = worker;
        }
        Ok(outcome)
    }
}

/// How a well thread leaves a well.
enum Ran<'p> {
    /// Skipped (stopped, already complete) or failed: its report.
    Reported(WellReport),
    /// Its steps are done: it waits for its record ([`WellDriver::record`]).
    Unrecorded(Box<Unrecorded<'p>>),
}

/// A well whose steps are done (the `k`th of the run), waiting for its files to be synced and its
/// record written.
struct Unrecorded<'p> {
    k: usize,
    plan: &'p FrozenWellPlan,
    outcome: WellOutcome,
    started: Instant,
    /// Counted in [`RunOptions::in_flight`] until its record is written.
    _running: Option<InFlight<'p>>,
}

/// One well counted in [`RunOptions::in_flight`] while alive.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Write the output plate's `hcs_plate.json` from the records of every finished well, and the
/// same plate as OpenHCS reads it (`openhcs_metadata.json`) where OpenHCS can open it.
fn write_plate_metadata(compiled: &CompiledPlate, plate: &Plate) -> Result<(), ExecError> {
    let root = &compiled.output_root;
    let Some(first) = compiled.wells.first() else { return Ok(()) };
    let last = first.steps.last();
    let main = last.and_then(|s| output::subdir_name(&s.writes, root));
    let mut subdirs: BTreeMap<String, Vec<_>> = BTreeMap::new();
    // Every well of the plate with a record, not only this run's: a run of some wells (`--wells`)
    // into an output holding the others leaves them listed. (The output guard admits only
    // runs of the same pipeline and configuration into one output, so every record is one of
    // its wells'.)
    for well in plate.index.wells() {
        if let Some(record) = output::read_record(root, well) {
            for (name, planes) in record.subdirs {
                subdirs.entry(name).or_default().extend(planes);
            }
        }
    }
    let backend_of = |name: &str| {
        if name.ends_with(".ome.zarr") { hcs_vfs::Backend::Zarr } else { hcs_vfs::Backend::Disk }
    };
    let subdirs: Vec<Subdir> = subdirs
        .into_iter()
        .map(|(name, planes)| Subdir { backend: backend_of(&name), main: Some(&name) == main.as_ref(), name, planes })
        .collect();
    if subdirs.is_empty() {
        return Ok(());
    }
    let mut metadata = plate.metadata.clone();
    if let Some(out) = last.map(|s| &s.components_out) {
        if let Some(Some(channels)) = out.get(&Component::Channel) {
            metadata.channels.retain(|c| channels.contains(&c.index));
        }
        if out.get(&Component::Site).cloned().flatten().is_some_and(|s| s.len() == 1) {
            metadata.grid = Some((1, 1));
        }
    }
    metadata.tile_shape = None;
    let file = HcsPlateFile { hcs_plate: FORMAT_VERSION, source_format: plate.metadata.format, metadata, subdirs };
    hcs_plate::formats::native::write(root, &file)?;
    // The same plate for OpenHCS, so a pipeline can go on there (it opens no folder without it).
    match hcs_plate::formats::openhcs_write::write(root, &file)? {
        Companion::Written { subdirs } => {
            tracing::debug!(subdirs = subdirs.join(", "), "openhcs_metadata.json written: OpenHCS opens the output")
        }
        Companion::NotWritten(why) => {
            tracing::info!("openhcs_metadata.json not written, so OpenHCS does not open this output: {why}")
        }
    }
    Ok(())
}
