//! trybuild tests of hcs contract misuse: `tests/ui/fail/*.rs` must fail to compile with the
//! message in the sibling `.stderr`; `tests/ui/pass/*.rs` must compile and run. The
//! `pipeline_fail` / `pipeline_pass` cases do the same for `hcs::pipeline!`, using the fixture
//! functions below; `tests/agree.rs` checks that the runtime compiler judges each case's
//! pipeline-file twin the same way.
//! Refresh snapshots with `TRYBUILD=overwrite cargo test -p ui-tests` and read every diff.

/// Small registered functions the `pipeline!` cases wire together (they pass the stack through).
pub mod fixtures {
    use hcs::prelude::*;

    /// A tile-position table, as a special output.
    pub type Positions = Vec<(f64, f64)>;

    /// Produces special output `positions`.
    #[memory(ndarray)]
    #[special_outputs(positions)]
    pub fn find_positions(stack: NdarrayStack) -> (NdarrayStack, Positions) {
        let positions = (0..stack.shape()[0]).map(|i| (i as f64, 0.0)).collect();
        (stack, positions)
    }

    /// Takes special input `positions` as produced.
    #[memory(ndarray)]
    #[special_inputs(positions)]
    pub fn place_tiles(stack: NdarrayStack, positions: &Positions) -> NdarrayStack {
        let _ = positions.len();
        stack
    }

    /// Takes special input `positions` as another type than `find_positions` produces.
    #[memory(ndarray)]
    #[special_inputs(positions)]
    pub fn place_tiles_u32(stack: NdarrayStack, positions: Vec<u32>) -> NdarrayStack {
        let _ = positions.len();
        stack
    }

    /// Takes the plate-supplied special input `pixel_size` as `f64`, the type the plate gives.
    #[memory(ndarray)]
    #[special_inputs(pixel_size)]
    pub fn scale_bar(stack: NdarrayStack, pixel_size: f64) -> NdarrayStack {
        let _ = pixel_size;
        stack
    }

    /// Takes the plate-supplied special input `pixel_size` as `u32`, which the plate does not give.
    #[memory(ndarray)]
    #[special_inputs(pixel_size)]
    pub fn scale_bar_u32(stack: NdarrayStack, pixel_size: u32) -> NdarrayStack {
        let _ = pixel_size;
        stack
    }

    /// Counts objects per call: special output `object_counts`.
    #[memory(ndarray)]
    #[special_outputs(object_counts)]
    pub fn count_objects(stack: NdarrayStack) -> (NdarrayStack, u64) {
        let n = stack.shape()[0] as u64;
        (stack, n)
    }

    /// Has parameters of several types.
    #[memory(ndarray)]
    pub fn smooth(
        stack: NdarrayStack,
        #[param(default = 1.0, range = 0.0..=50.0)] sigma: f64,
        #[param(default = "reflect")] mode: String,
        #[param(default = 1, range = 1..=10)] passes: usize,
    ) -> NdarrayStack {
        let _ = (sigma, mode, passes);
        stack
    }
}
