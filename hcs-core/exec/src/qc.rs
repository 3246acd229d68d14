//! Cheap quality measures of each raw plane a well reads: focus (variance of the Laplacian),
//! the fraction of saturated pixels and the background level. Computed once per plane, as the
//! plane is loaded from the plate; they go to the well's trace and from there to the run report.

use std::borrow::Cow;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use hcs_plate::ImageKey;
use hcs_vfs::Dtype;

/// Quality measures of one raw plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlaneQc {
    /// The plane.
    pub key: ImageKey,
    /// Variance of the 4-neighbour Laplacian (higher is sharper; compare within a channel).
    pub focus: f64,
    /// Fraction of pixels at the storage type's maximum (0 for float data). A camera that
    /// saturates below it (12-bit data stored in 16 bits, at 4095) is not seen as saturated.
    pub saturated_fraction: f64,
    /// Background level: the 10th percentile of the pixel values.
    pub background: f64,
}

/// Pixels sampled (evenly) for the background percentile.
const BACKGROUND_SAMPLES: usize = 1 << 16;

/// Measure one plane stored as `dtype`.
pub fn measure(key: ImageKey, plane: ArrayView2<'_, f32>, dtype: Dtype) -> PlaneQc {
    let saturation = match dtype {
        Dtype::U8 => Some(f32::from(u8::MAX)),
        Dtype::U16 => Some(f32::from(u16::MAX)),
        Dtype::F32 => None,
    };
    let n = plane.len().max(1);
    // A plane read from the plate is contiguous: its samples as one slice, in the same order.
    let samples = plane.as_slice().map_or_else(|| Cow::Owned(plane.iter().copied().collect()), Cow::Borrowed);
    let saturated = saturation.map_or(0, |level| count_at_least(&samples, level));
    PlaneQc {
        key,
        focus: laplacian_variance(plane),
        saturated_fraction: saturated as f64 / n as f64,
        background: percentile_10(&samples),
    }
}

/// How many samples are at least `level` (one compare and add per sample, so it vectorizes).
fn count_at_least(samples: &[f32], level: f32) -> usize {
    samples.iter().map(|&v| usize::from(v >= level)).sum()
}

/// Variance of `4·p − (up + down + left + right)` over the interior pixels. Each row's
/// Laplacian is taken in f32 (as the samples are) and summed in f64 over four lanes, so the
/// loops vectorize instead of waiting on one running sum. Compiled for AVX2 too and picked at
/// run time; every path adds in the same order, so the result is the same.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
fn laplacian_variance(plane: ArrayView2<'_, f32>) -> f64 {
    let (h, w) = plane.dim();
    if h < 3 || w < 3 {
        return 0.0;
    }
    let plane = plane.as_standard_layout();
    let (mut sum, mut sum_sq) = ([0.0f64; 4], [0.0f64; 4]);
    let mut lap = vec![0.0f32; w - 2];
    let rows: Vec<&[f32]> = plane.rows().into_iter().filter_map(|r| r.to_slice()).collect();
    for y in 1..h - 1 {
        let (up, row, down) = (&rows[y - 1][1..w - 1], rows[y], &rows[y + 1][1..w - 1]);
        let (left, mid, right) = (&row[..w - 2], &row[1..w - 1], &row[2..]);
        for (x, l) in lap.iter_mut().enumerate() {
            *l = 4.0 * mid[x] - up[x] - down[x] - left[x] - right[x];
        }
        let lanes = lap.chunks_exact(4);
        for &l in lanes.remainder() {
            sum[0] += f64::from(l);
            sum_sq[0] += f64::from(l) * f64::from(l);
        }
        for c in lanes {
            for i in 0..4 {
                sum[i] += f64::from(c[i]);
                sum_sq[i] += f64::from(c[i]) * f64::from(c[i]);
            }
        }
    }
    let count = ((h - 2) * (w - 2)) as f64;
    let mean = sum.iter().sum::<f64>() / count;
    (sum_sq.iter().sum::<f64>() / count - mean * mean).max(0.0)
}

/// The 10th percentile of an even sample of at most [`BACKGROUND_SAMPLES`] pixels (`samples`
/// in row-major order).
fn percentile_10(samples: &[f32]) -> f64 {
    let step = samples.len().div_ceil(BACKGROUND_SAMPLES).max(1);
    let mut sample: Vec<f32> = samples.iter().step_by(step).copied().filter(|v| !v.is_nan()).collect();
    if sample.is_empty() {
        return 0.0;
    }
    let k = sample.len() / 10;
    let (_, v, _) = sample.select_nth_unstable_by(k, f32::total_cmp);
    f64::from(*v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn the_focus_loop_is_compiled_for_the_kernels_hot_loop_target() {
        // `hcs devices` reports the kernels' detection for every dispatched loop, this one too.
        let text = include_str!("qc.rs");
        let any = concat!("multiversion::", "multiversion(targets(");
        let ours = format!("{any}\"{}\"))]", hcs_kernels::vector::HOT_LOOP_TARGET);
        assert_eq!((text.matches(any).count(), text.matches(&ours).count()), (1, 1));
    }

    fn key() -> ImageKey {
        ImageKey { well: "A01".parse().expect("well"), site: 1, channel: 1, z: 1, timepoint: 1 }
    }

    #[test]
    fn a_flat_plane_has_no_focus_and_its_value_as_background() {
        let plane = Array2::from_elem((16, 16), 100.0f32);
        let qc = measure(key(), plane.view(), Dtype::U16);
        assert_eq!(qc.focus, 0.0);
        assert_eq!(qc.background, 100.0);
        assert_eq!(qc.saturated_fraction, 0.0);
    }

    #[test]
    fn a_sharp_checkerboard_scores_higher_than_its_blurred_copy() {
        let sharp = Array2::from_shape_fn((32, 32), |(y, x)| if (x / 2 + y / 2) % 2 == 0 { 1000.0f32 } else { 0.0 });
        let blurred = Array2::from_shape_fn((32, 32), |(y, x)| {
            let mut s = 0.0;
            for dy in 0..3 {
                for dx in 0..3 {
                    s += sharp[((y + dy).min(31), (x + dx).min(31))];
                }
            }
            s / 9.0
        });
        let (a, b) = (measure(key(), sharp.view(), Dtype::U16), measure(key(), blurred.view(), Dtype::U16));
        assert!(a.focus > 2.0 * b.focus, "{} vs {}", a.focus, b.focus);
    }

    #[test]
    fn saturation_counts_pixels_at_the_storage_maximum() {
        let mut plane = Array2::from_elem((10, 10), 5.0f32);
        plane.slice_mut(ndarray::s![0..2, ..]).fill(65535.0);
        assert!((measure(key(), plane.view(), Dtype::U16).saturated_fraction - 0.2).abs() < 1e-12);
        assert_eq!(measure(key(), plane.view(), Dtype::F32).saturated_fraction, 0.0);
        assert!((measure(key(), plane.view(), Dtype::U8).saturated_fraction - 0.2).abs() < 1e-12);
    }

    #[test]
    fn a_strided_plane_measures_as_its_contiguous_copy() {
        let plane = Array2::from_shape_fn((37, 29), |(y, x)| ((y * 7919 + x * 104_729) % 70_001) as f32);
        let strided = plane.t();
        let copy = strided.as_standard_layout().into_owned();
        assert!(strided.as_slice().is_none() && copy.as_slice().is_some());
        let (a, b) = (measure(key(), strided, Dtype::U16), measure(key(), copy.view(), Dtype::U16));
        assert_eq!(a, b);
        assert!(a.saturated_fraction > 0.0 && a.background > 0.0, "{a:?}");
    }

    #[test]
    fn the_background_is_the_tenth_percentile() {
        let plane = Array2::from_shape_fn((10, 10), |(y, x)| (y * 10 + x) as f32);
        assert_eq!(measure(key(), plane.view(), Dtype::U16).background, 10.0);
    }
}
