//! What can stop a well or a run, typed: [`ExecError`] for the run, [`StepError`] for what went
//! wrong inside one step of one well (its message follows `step N `name`: `).

use std::path::PathBuf;

use hcs_core::{DeviceError, InvokeError, MaterializeError, MemoryType, PlaneCount};
use hcs_plan::compiler::Location;
use hcs_plate::{ImageKey, LoadError};

/// What can stop a well or a run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A step failed (loading, a function, a conversion, naming).
    #[error("step {step} `{name}`: {error}")]
    Step {
        /// 1-based step.
        step: usize,
        /// Its name.
        name: String,
        /// What happened.
        #[source]
        error: Box<StepError>,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] hcs_vfs::VfsError),
    /// An output would really land in the input plate.
    #[error(transparent)]
    Guard(#[from] crate::guard::GuardError),
    /// The output plate's metadata cannot be written.
    #[error(transparent)]
    Metadata(#[from] hcs_plate::formats::FormatError),
    /// The worker pool could not be started.
    #[error("cannot start {workers} workers: {source}")]
    Workers {
        /// The worker count ([`crate::worker_count`]).
        workers: usize,
        /// What rayon said.
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    /// A function panicked (the well fails, the run goes on).
    #[error("a function panicked: {0}")]
    Panicked(String),
    /// The well's thread ended without a report.
    #[error("the well's thread panicked")]
    ThreadLost,
    /// A plan's segment that running part by part would give other bytes for (a plan file
    /// edited by hand, or written by another hcs).
    #[error(
        "steps {first}-{last} cannot run one part at a time: {why} (the plan was not written by this hcs's compiler; compile it again)"
    )]
    BadSegment {
        /// 1-based first step.
        first: usize,
        /// 1-based last step.
        last: usize,
        /// What is wrong.
        why: String,
    },
}

/// What went wrong in one step of one well.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A group not started because another group of the step had already failed (that group's
    /// error is the one reported).
    #[error("not run: another group of the step failed first")]
    Abandoned,
    /// The plan names a function variant this binary does not have.
    #[error("`{function}` ({memory}) is not registered in this binary")]
    NotRegistered {
        /// The function.
        function: String,
        /// Its input memory type.
        memory: MemoryType,
    },
    /// A special input the plan links to a step that did not produce it.
    #[error("special input `{key}` from step {step} `{function}` was not produced")]
    SpecialNotProduced {
        /// The key.
        key: String,
        /// The producing step (1-based).
        step: usize,
        /// The producing function.
        function: String,
    },
    /// A special input kept per group (merged) with no single value for this group.
    #[error(
        "special input `{key}`: step {step} kept one per group (`merge_outputs`), and {found} for this group{}",
        if group.is_empty() { String::new() } else { format!(" ({group})") }
    )]
    SpecialPerGroup {
        /// The key.
        key: String,
        /// The producing step (1-based).
        step: usize,
        /// This group's values of the components the producer's groups differ in.
        group: String,
        /// `there is none` or `there are several`.
        found: &'static str,
    },
    /// A special input that the plan does not link.
    #[error("special input `{key}` is not in the plan")]
    SpecialNotPlanned {
        /// The key.
        key: String,
    },
    /// A plate-supplied value in the plan that does not decode.
    #[error(transparent)]
    PlateValue(#[from] hcs_plan::pipeline::wiring::PlateInputError),
    /// A special output several groups made although the plan expects one value per well.
    #[error("`{key}` was produced by {groups} groups")]
    ProducedByGroups {
        /// The key.
        key: String,
        /// How many groups made it.
        groups: usize,
    },
    /// A plane the step needs is not where the plan says.
    #[error("{0}: missing")]
    MissingPlane(ImageKey),
    /// A plane kept on a device whose lock a panicking group left poisoned.
    #[error("{0}: a group panicked while holding it")]
    PoisonedPlane(ImageKey),
    /// The input location holds nothing for this well.
    #[error("{0} is empty")]
    EmptyInput(String),
    /// A group without planes.
    #[error("no planes")]
    NoPlanes,
    /// Planes of one stack differ in shape.
    #[error("{}", shape_mismatch(key.as_ref(), *found, *expected))]
    ShapeMismatch {
        /// The odd plane, where the stack's keys are known.
        key: Option<ImageKey>,
        /// The odd plane's shape.
        found: (usize, usize),
        /// The first plane's shape.
        expected: (usize, usize),
    },
    /// A function returned more planes than it received.
    #[error("returned {returned} planes from {received} input planes; a function may return fewer, never more")]
    TooManyPlanes {
        /// Planes returned.
        returned: usize,
        /// Planes received.
        received: usize,
    },
    /// A function returned another plane count than its contract declares.
    #[error(
        "`{function}` declares `planes = {}` but returned {returned} planes from {received}; fix the function or its `#[memory(.., planes = ..)]`",
        match declared { PlaneCount::Same => "same", PlaneCount::One => "one", PlaneCount::Any => "any" }
    )]
    PlaneContract {
        /// The function.
        function: &'static str,
        /// What its contract says.
        declared: PlaneCount,
        /// Planes it received.
        received: usize,
        /// Planes it returned.
        returned: usize,
    },
    /// A function returned another size than its `#[output_shape]` declares.
    #[error(
        "`{function}` declares `#[output_shape({expr})]`, {declared}, but returned {returned}; fix the function or its `#[output_shape]`"
    )]
    ShapeContract {
        /// The function.
        function: &'static str,
        /// What its contract says, for this call.
        declared: String,
        /// What it returned.
        returned: String,
        /// The declaration.
        expr: &'static str,
    },
    /// A GPU stack reached host storage (a plan without its conversion).
    #[error("a {0} stack reached storage")]
    DeviceStackInStorage(MemoryType),
    /// Steps never read zarr stores back.
    #[error("{}: steps do not read zarr stores back", .0.display())]
    ReadsZarr(PathBuf),
    /// An intermediate planned where intermediates cannot go.
    #[error("cannot write an intermediate to {0:?}")]
    BadIntermediate(Location),
    /// No open sink for a persistent location.
    #[error("no sink for {0:?}")]
    NoSink(Location),
    /// The preview store was not prepared.
    #[error("the preview store was not created")]
    NoPreviewStore,
    /// A materializer failed.
    #[error("materializing `{key}` with {materializer}: {source}")]
    Materialize {
        /// The special output.
        key: String,
        /// The materializer's path.
        materializer: &'static str,
        /// Its error.
        #[source]
        source: MaterializeError,
    },
    /// A materializer reported a file that is not there.
    #[error("{}: not written", .0.display())]
    NotWritten(PathBuf),
    /// The device ran out of memory and the step could not go on.
    #[error("{message}; {why}")]
    OutOfMemory {
        /// What the device said.
        message: String,
        /// Why there was no further retry.
        why: NoRetry,
    },
    /// Loading from the input plate failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] hcs_vfs::VfsError),
    /// A device or conversion failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// A function failed.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// A stack could not be shaped.
    #[error(transparent)]
    Shape(#[from] ndarray::ShapeError),
}

/// Why a step that ran out of device memory is not retried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoRetry {
    /// It already ran one group at a time, off the GPU.
    #[error("the step ran one group at a time and has no GPU to fall back from")]
    NoGpuToLeave,
    /// The policy forbids the CPU.
    #[error("gpu_policy is require, so the step does not fall back to the CPU")]
    PolicyRequiresGpu,
    /// The plan has no CPU fallback for the step.
    #[error("some GPU function of the step has no ndarray variant to fall back to")]
    NoCpuVariant,
    /// The CPU fallback itself ran out of memory.
    #[error("out of memory on the CPU fallback")]
    CpuFallbackFailed,
    /// The step frees each group's input planes as the group loads them (it is their last
    /// reader), so a group that failed cannot be loaded again.
    #[error(
        "the step frees each group's input as it loads it (their last reader), so the group cannot be loaded again for a retry"
    )]
    InputFreed,
}

/// The odd plane named (by its key, where known) and both sizes as width×height.
fn shape_mismatch(key: Option<&ImageKey>, found: (usize, usize), expected: (usize, usize)) -> String {
    let sizes = format!(
        "a plane of {}×{} (width×height), where the other planes of this stack are {}×{}",
        found.1, found.0, expected.1, expected.0
    );
    match key {
        Some(key) => {
            format!("{key}: {sizes} (an input image of another size? `hcs check --plate DIR --deep` names such files)")
        }
        None => format!("planes of one stack differ in size: {sizes}"),
    }
}
