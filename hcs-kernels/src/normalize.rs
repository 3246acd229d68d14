//! Percentile contrast stretching.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;

/// The `q`-th percentile (0..=100) of `values` with linear interpolation between order statistics
/// (NumPy's default `method="linear"`). Reorders `values`.
pub fn percentile(values: &mut [f32], q: f64) -> f32 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 100.0) / 100.0) * (values.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let frac = rank - lo as f64;
    let (_, lo_v, upper) = values.select_nth_unstable_by(lo, f32::total_cmp);
    let lo_v = *lo_v;
    if frac == 0.0 || upper.is_empty() {
        return lo_v;
    }
    let hi_v = upper.iter().copied().fold(f32::INFINITY, f32::min);
    (f64::from(lo_v) + frac * f64::from(hi_v - lo_v)) as f32
}

fn stretch(mut plane: ArrayViewMut2<'_, f32>, p_lo: f32, p_hi: f32, t_min: f32, t_max: f32) {
    if p_hi > p_lo {
        let scale = (t_max - t_min) / (p_hi - p_lo);
        plane.mapv_inplace(|v| ((v - p_lo) * scale + t_min).clamp(t_min, t_max));
    } else {
        // A flat image has no contrast to stretch: map it to the bottom of the target range.
        plane.fill(t_min);
    }
}

/// Stretch each plane separately so its `low_percentile` maps to `target_min` and its
/// `high_percentile` to `target_max`, clipping outside.
#[memory(ndarray)]
pub fn percentile_normalize(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)")] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)")] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to")] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to")] target_max: f32,
) -> NdarrayStack {
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|plane| {
        let mut values: Vec<f32> = plane.iter().copied().collect();
        let p_lo = percentile(&mut values, low_percentile);
        let p_hi = percentile(&mut values, high_percentile);
        stretch(plane, p_lo, p_hi, target_min, target_max);
    });
    stack
}

/// Stretch the whole stack with one pair of percentiles computed over all planes, so relative
/// intensities between planes are kept.
#[memory(ndarray)]
pub fn stack_percentile_normalize(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)")] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)")] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to")] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to")] target_max: f32,
) -> NdarrayStack {
    let mut values: Vec<f32> = stack.iter().copied().collect();
    let p_lo = percentile(&mut values, low_percentile);
    let p_hi = percentile(&mut values, high_percentile);
    drop(values);
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|plane| stretch(plane, p_lo, p_hi, target_min, target_max));
    stack
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn percentile_interpolates_linearly_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], 25) == 1.75; 50 -> 2.5; 100 -> 4
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(percentile(&mut v, 25.0), 1.75);
        assert_eq!(percentile(&mut v, 50.0), 2.5);
        assert_eq!(percentile(&mut v, 100.0), 4.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
    }

    #[test]
    fn per_plane_and_whole_stack_normalization_differ() {
        let s = array![[[0.0, 10.0]], [[0.0, 20.0]]];
        let per = percentile_normalize(s.clone(), 0.0, 100.0, 0.0, 100.0);
        assert_eq!(per, array![[[0.0, 100.0]], [[0.0, 100.0]]]);
        let whole = stack_percentile_normalize(s, 0.0, 100.0, 0.0, 100.0);
        assert_eq!(whole, array![[[0.0, 50.0]], [[0.0, 100.0]]]);
    }

    #[test]
    fn flat_planes_do_not_divide_by_zero() {
        let out = percentile_normalize(Array3::from_elem((1, 2, 2), 7.0), 1.0, 99.0, 0.0, 65535.0);
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
