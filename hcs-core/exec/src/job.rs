//! What one well's run is given: its frozen plan, the plate, the functions, the sinks of the
//! run's persistent locations and the GPU slots.

use hcs_core::registry::Registry;
use hcs_plan::compiler::{Location, WellPlan};
use hcs_plate::Plate;
use hcs_vfs::Dtype;

use crate::output::{OnOutput, Sink};
use crate::slots::DeviceSlots;

/// Where a step's persistent writes go (built once per run, shared by the wells).
pub trait Sinks: Sync {
    /// The sink of a persistent location.
    fn sink<'s>(&'s self, location: &'s Location) -> Option<Sink<'s>>;
}

/// Everything one well needs.
pub struct WellJob<'a> {
    /// The frozen plan.
    pub plan: &'a WellPlan,
    /// The input plate.
    pub plate: &'a Plate,
    /// The functions.
    pub registry: &'a Registry,
    /// Persistent outputs.
    pub sinks: &'a dyn Sinks,
    /// Storage dtype of persistent planes.
    pub dtype: Dtype,
    /// Wells in flight per GPU.
    pub gpu_slots: &'a DeviceSlots,
    /// Keep what a failed well wrote (`--keep-failed`); by default it is removed.
    pub keep_failed: bool,
    /// Called as each step of the well starts (progress displays).
    pub on_step: Option<&'a OnStep<'a>>,
    /// Called with each plane of the well's final output as stored, as it goes to a TIFF file.
    pub on_output: Option<&'a OnOutput<'a>>,
}

/// A step starting: the well, the step's 1-based index, the step count, the step's name.
pub type OnStep<'a> = dyn Fn(hcs_plate::WellId, usize, usize, &str) + Sync + 'a;
