//! Cheap quality measures of each raw plane a well reads: focus (variance of the Laplacian),
//! the fraction of saturated pixels and the background level. Computed once per plane, as the
//! plane is loaded from the plate; they go to the well's trace and from there to the run report.

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
    // A plane read from the plate is contiguous: its rows are slices as they are.
    let plane = plane.as_standard_layout();
    let rows: Vec<&[f32]> = plane.rows().into_iter().filter_map(|r| r.to_slice()).collect();
    let sweep = sweep(&rows, plane.dim().1, saturation.unwrap_or(f32::INFINITY));
    PlaneQc {
        key,
        focus: sweep.focus(),
        saturated_fraction: if saturation.is_some() { sweep.saturated as f64 / n as f64 } else { 0.0 },
        background: percentile_10(sweep.sample),
    }
}

/// Lanes of the Laplacian's sums: four AVX2 registers of four f64, each add independent of
/// the three before it (with one register, every add waited on the last: the loop ran at the
/// adder's latency).
const LANES: usize = 16;

/// What one pass over a plane's rows gathers for [`measure`].
struct Sweep {
    /// Σ and Σ² of the 4-neighbour Laplacian over the interior pixels, in [`LANES`] lanes each.
    sum: [f64; LANES],
    sum_sq: [f64; LANES],
    /// Interior pixels.
    count: usize,
    /// Samples at least the saturation level.
    saturated: usize,
    /// An even sample of at most [`BACKGROUND_SAMPLES`] samples (every so many in row-major
    /// order), NaN left out.
    sample: Vec<f32>,
}

impl Sweep {
    /// Variance of the Laplacian (0 for a plane under 3 × 3).
    fn focus(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let count = self.count as f64;
        let mean = self.sum.iter().sum::<f64>() / count;
        (self.sum_sq.iter().sum::<f64>() / count - mean * mean).max(0.0)
    }
}

/// One pass over the `rows` (each `w` long) for all three measures, instead of a pass per
/// measure: each row is counted for saturation (samples ≥ `level`), sampled for the
/// background, and, when interior, its Laplacian `4·p − (up + down + left + right)` taken in
/// f32 (as the samples are) and summed in f64 over [`LANES`] lanes (four registers of four), so
/// the loops vectorize and no add waits on the one before it. Compiled for AVX2 and AVX-512 too and picked
/// at run time; every path adds in the same order, so the result is the same.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn sweep(rows: &[&[f32]], w: usize, level: f32) -> Sweep {
    let h = rows.len();
    let step = (h * w).div_ceil(BACKGROUND_SAMPLES).max(1);
    // Local sums, not the result's fields: next to the sample's pushes, fields were kept in
    // memory (a store and a load per add, 4 × slower).
    let (mut sum, mut sum_sq) = ([0.0f64; LANES], [0.0f64; LANES]);
    let mut saturated = 0;
    let mut sample = Vec::with_capacity((h * w).div_ceil(step));
    let interior = h >= 3 && w >= 3;
    let mut lap = vec![0.0f32; w.saturating_sub(2)];
    for (y, row) in rows.iter().enumerate() {
        // The row after the next is the one this loop reads for the first time next: its
        // lines asked for now (a hint, see `hcs_vfs::ahead`).
        if let Some(next) = rows.get(y + 2) {
            hcs_vfs::ahead::all(next);
        }
        saturated += row.iter().map(|&v| usize::from(v >= level)).sum::<usize>();
        let mut x = (y * w).next_multiple_of(step) - y * w;
        while x < w {
            if !row[x].is_nan() {
                sample.push(row[x]);
            }
            x += step;
        }
        if !interior || y == 0 || y == h - 1 {
            continue;
        }
        let (up, down) = (&rows[y - 1][1..w - 1], &rows[y + 1][1..w - 1]);
        let (left, mid, right) = (&row[..w - 2], &row[1..w - 1], &row[2..]);
        for (x, l) in lap.iter_mut().enumerate() {
            *l = 4.0 * mid[x] - up[x] - down[x] - left[x] - right[x];
        }
        let lanes = lap.chunks_exact(LANES);
        for &l in lanes.remainder() {
            sum[0] += f64::from(l);
            sum_sq[0] += f64::from(l) * f64::from(l);
        }
        for c in lanes {
            for i in 0..LANES {
                sum[i] += f64::from(c[i]);
                sum_sq[i] += f64::from(c[i]) * f64::from(c[i]);
            }
        }
    }
    let count = if interior { (h - 2) * (w - 2) } else { 0 };
    Sweep { sum, sum_sq, count, saturated, sample }
}

/// The 10th percentile of the background `sample` (0 when it is empty).
fn percentile_10(mut sample: Vec<f32>) -> f64 {
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
        let ours = format!("{any}{}))]", hcs_kernels::vector::hot_loop_targets());
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

    /// The three measures as separate passes over the whole plane, as they were defined first.
    fn measured_apart(plane: &Array2<f32>) -> (f64, f64, f64) {
        let (h, w) = plane.dim();
        let samples = plane.as_slice().expect("contiguous");
        let saturated = samples.iter().filter(|&&v| v >= 65535.0).count() as f64 / samples.len() as f64;
        let (mut sum, mut sum_sq) = ([0.0f64; LANES], [0.0f64; LANES]);
        for y in 1..h - 1 {
            let lap: Vec<f32> = (1..w - 1)
                .map(|x| {
                    4.0 * plane[(y, x)] - plane[(y - 1, x)] - plane[(y + 1, x)] - plane[(y, x - 1)] - plane[(y, x + 1)]
                })
                .collect();
            // Each row: the values past its last whole set of lanes into lane 0 first, then
            // value j into lane j mod LANES, in order.
            let whole = lap.len() / LANES * LANES;
            for j in (whole..lap.len()).chain(0..whole) {
                let (lane, l) = (if j < whole { j % LANES } else { 0 }, f64::from(lap[j]));
                sum[lane] += l;
                sum_sq[lane] += l * l;
            }
        }
        let count = ((h - 2) * (w - 2)) as f64;
        let mean = sum.iter().sum::<f64>() / count;
        let focus = (sum_sq.iter().sum::<f64>() / count - mean * mean).max(0.0);
        let step = samples.len().div_ceil(BACKGROUND_SAMPLES).max(1);
        let mut sample: Vec<f32> = samples.iter().step_by(step).copied().collect();
        let k = sample.len() / 10;
        let background = f64::from(*sample.select_nth_unstable_by(k, f32::total_cmp).1);
        (focus, saturated, background)
    }

    #[test]
    fn one_pass_measures_what_three_passes_over_the_plane_measure() {
        // 300 × 517 samples: every third one is in the background sample, and a sampled index
        // falls at a different column in each row.
        for (h, w) in [(300, 517), (5, 6), (64, 1024), (7, 70_001)] {
            let plane = Array2::from_shape_fn((h, w), |(y, x)| ((y * 7919 + x * 104_729) % 70_001).min(65_535) as f32);
            let qc = measure(key(), plane.view(), Dtype::U16);
            let (focus, saturated, background) = measured_apart(&plane);
            assert_eq!((qc.focus, qc.saturated_fraction, qc.background), (focus, saturated, background), "{h} × {w}");
            assert!(qc.focus > 0.0 && qc.saturated_fraction > 0.0 && qc.background > 0.0, "{h} × {w}: {qc:?}");
        }
    }

    #[test]
    fn the_background_is_the_tenth_percentile() {
        let plane = Array2::from_shape_fn((10, 10), |(y, x)| (y * 10 + x) as f32);
        assert_eq!(measure(key(), plane.view(), Dtype::U16).background, 10.0);
    }
}
