//! An example third-party kernel crate: two functions that register with hcs just by this crate
//! being linked into a binary.
//!
//! A binary that depends on this crate must name it somewhere (`use plugin_kernels as _;`),
//! otherwise the linker drops the crate and its registrations with it.
#![deny(missing_docs)]

use std::fmt::Write as _;

use hcs::prelude::*;

/// Summary statistics of one stack, a special output.
// `serde` comes from the prelude (`hcs::serde`): no version of it to pin here.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(crate = "hcs::serde")]
pub struct PlaneStats {
    /// Mean intensity per plane.
    pub means: Vec<f64>,
}

/// Write plane statistics as CSV (`plane,mean`).
pub fn write_plane_stats_csv(stats: &PlaneStats, target: &MaterializeTarget) -> MaterializeResult {
    let mut csv = String::from("plane,mean\n");
    for (i, m) in stats.means.iter().enumerate() {
        let _ = writeln!(csv, "{i},{m}");
    }
    Ok(vec![target.write(".csv", csv.as_bytes())?])
}

/// Invert intensities within `[0, max_value]`.
#[memory(ndarray)]
pub fn invert(
    stack: NdarrayStack,
    #[param(default = 65535.0, doc = "the value that maps to 0")] max_value: f32,
) -> NdarrayStack {
    stack.mapv(|v| (max_value - v).max(0.0))
}

/// Measure the mean intensity of every plane; the stack passes through unchanged.
#[memory(ndarray)]
#[special_outputs(plane_stats = write_plane_stats_csv)]
pub fn measure_planes(stack: NdarrayStack) -> (NdarrayStack, PlaneStats) {
    let means = stack.outer_iter().map(|p| p.mean().map_or(0.0, f64::from)).collect();
    (stack, PlaneStats { means })
}
