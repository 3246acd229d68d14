//! Laplacian-of-Gaussian blob detection with `skimage.feature.blob_log`'s semantics (linear σ
//! scale, absolute threshold, 3×3×3 scale-space maxima, overlap pruning), so that the same image
//! gives the same blobs.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::filters::scaled_negative_log;

/// One detected blob.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Blob {
    /// Row of the centre.
    pub y: usize,
    /// Column of the centre.
    pub x: usize,
    /// Scale σ at which the response peaked; the blob radius is σ√2.
    pub sigma: f64,
    /// The scale-normalized LoG response at the peak.
    pub response: f64,
}

/// The σ values `linspace(min_sigma, max_sigma, num_sigma)`.
pub fn sigma_list(min_sigma: f64, max_sigma: f64, num_sigma: usize) -> Vec<f64> {
    match num_sigma {
        0 => Vec::new(),
        1 => vec![min_sigma],
        n => {
            let step = (max_sigma - min_sigma) / (n - 1) as f64;
            (0..n).map(|i| if i == n - 1 { max_sigma } else { min_sigma + step * i as f64 }).collect()
        }
    }
}

/// Blobs of `img` (values scaled to about `[0, 1]`), as `blob_log(img, min_sigma, max_sigma,
/// num_sigma, threshold, overlap)` finds them.
pub fn blob_log(img: ArrayView2<'_, f64>, sigmas: &[f64], threshold: f64, overlap: f64) -> Vec<Blob> {
    let cube: Vec<Array2<f64>> = sigmas.iter().map(|&s| scaled_negative_log(img, s)).collect();
    let peaks = scale_space_maxima(&cube, threshold);
    let mut blobs: Vec<Blob> =
        peaks.into_iter().map(|(y, x, s)| Blob { y, x, sigma: sigmas[s], response: cube[s][(y, x)] }).collect();
    prune(&mut blobs, overlap);
    blobs
}

/// Points of the `(y, x, σ)` cube that equal the maximum of their 3×3×3 neighbourhood and exceed
/// `threshold`, brightest first (ties in raster order), as `peak_local_max` orders them.
fn scale_space_maxima(cube: &[Array2<f64>], threshold: f64) -> Vec<(usize, usize, usize)> {
    let Some(first) = cube.first() else { return Vec::new() };
    let (h, w) = first.dim();
    let ns = cube.len();
    // A constant cube has no peaks (peak_local_max's "trivial image" rule).
    let v0 = first[(0, 0)];
    if cube.iter().all(|c| c.iter().all(|&v| v == v0)) {
        return Vec::new();
    }
    let mut found: Vec<(usize, usize, usize)> = (0..h)
        .into_par_iter()
        .flat_map_iter(|y| {
            let mut row = Vec::new();
            for x in 0..w {
                for s in 0..ns {
                    let v = cube[s][(y, x)];
                    if v > threshold && is_neighbourhood_max(cube, y, x, s, v) {
                        row.push((y, x, s));
                    }
                }
            }
            row
        })
        .collect();
    found.sort_by(|a, b| cube[b.2][(b.0, b.1)].total_cmp(&cube[a.2][(a.0, a.1)]));
    found
}

/// `v` is at least every value in the 3×3×3 neighbourhood of `(y, x, s)` that lies in the cube.
fn is_neighbourhood_max(cube: &[Array2<f64>], y: usize, x: usize, s: usize, v: f64) -> bool {
    let (h, w) = cube[0].dim();
    let range = |c: usize, n: usize| c.saturating_sub(1)..=(c + 1).min(n - 1);
    range(s, cube.len()).all(|ss| range(y, h).all(|yy| range(x, w).all(|xx| cube[ss][(yy, xx)] <= v)))
}

/// Fraction of the smaller disk covered by the larger, with skimage's radius convention
/// (coordinates divided by the larger σ·√2, radii 1 and σ_small/σ_large).
fn overlap_fraction(a: &Blob, b: &Blob) -> f64 {
    if a.sigma == 0.0 && b.sigma == 0.0 {
        return 0.0;
    }
    let (big, r1, r2) =
        if a.sigma > b.sigma { (a.sigma, 1.0, b.sigma / a.sigma) } else { (b.sigma, a.sigma / b.sigma, 1.0) };
    let scale = big * std::f64::consts::SQRT_2;
    let (dy, dx) = ((a.y as f64 - b.y as f64) / scale, (a.x as f64 - b.x as f64) / scale);
    let d = (dy * dy + dx * dx).sqrt();
    if d > r1 + r2 {
        return 0.0;
    }
    if d <= (r1 - r2).abs() {
        return 1.0;
    }
    let acos1 = ((d * d + r1 * r1 - r2 * r2) / (2.0 * d * r1)).clamp(-1.0, 1.0).acos();
    let acos2 = ((d * d + r2 * r2 - r1 * r1) / (2.0 * d * r2)).clamp(-1.0, 1.0).acos();
    let (p, q, r, s) = (-d + r2 + r1, d - r2 + r1, d + r2 - r1, d + r2 + r1);
    let area = r1 * r1 * acos1 + r2 * r2 * acos2 - 0.5 * (p * q * r * s).abs().sqrt();
    area / (std::f64::consts::PI * r1.min(r2).powi(2))
}

/// Remove the smaller of every pair of blobs that overlap by more than `overlap` (pairs in index
/// order; the earlier blob loses a tie), then drop the removed ones.
fn prune(blobs: &mut Vec<Blob>, overlap: f64) {
    let Some(max_sigma) = blobs.iter().map(|b| b.sigma).reduce(f64::max) else { return };
    let reach = 2.0 * max_sigma * std::f64::consts::SQRT_2;
    let cell = reach.max(1.0);
    let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> = std::collections::HashMap::new();
    for (i, b) in blobs.iter().enumerate() {
        grid.entry(((b.y as f64 / cell) as i64, (b.x as f64 / cell) as i64)).or_default().push(i);
    }
    let mut pairs = Vec::new();
    for (i, b) in blobs.iter().enumerate() {
        let (gy, gx) = ((b.y as f64 / cell) as i64, (b.x as f64 / cell) as i64);
        for ny in gy - 1..=gy + 1 {
            for nx in gx - 1..=gx + 1 {
                for &j in grid.get(&(ny, nx)).map(Vec::as_slice).unwrap_or(&[]) {
                    let (dy, dx) = (b.y as f64 - blobs[j].y as f64, b.x as f64 - blobs[j].x as f64);
                    if j > i && (dy * dy + dx * dx).sqrt() <= reach {
                        pairs.push((i, j));
                    }
                }
            }
        }
    }
    pairs.sort_unstable();
    for (i, j) in pairs {
        if overlap_fraction(&blobs[i], &blobs[j]) > overlap {
            if blobs[i].sigma > blobs[j].sigma {
                blobs[j].sigma = 0.0;
            } else {
                blobs[i].sigma = 0.0;
            }
        }
    }
    blobs.retain(|b| b.sigma > 0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spot(h: usize, w: usize, centres: &[(f64, f64, f64)]) -> Array2<f64> {
        Array2::from_shape_fn((h, w), |(y, x)| {
            centres
                .iter()
                .map(|&(cy, cx, s)| (-((y as f64 - cy).powi(2) + (x as f64 - cx).powi(2)) / (2.0 * s * s)).exp())
                .sum()
        })
    }

    #[test]
    fn finds_each_isolated_spot_once_at_its_centre() {
        let img = spot(64, 64, &[(15.0, 15.0, 2.0), (40.0, 45.0, 3.0)]);
        let blobs = blob_log(img.view(), &sigma_list(1.0, 5.0, 9), 0.05, 0.5);
        assert_eq!(blobs.len(), 2, "{blobs:?}");
        let mut c: Vec<(usize, usize)> = blobs.iter().map(|b| (b.y, b.x)).collect();
        c.sort_unstable();
        assert_eq!(c, [(15, 15), (40, 45)]);
        let s3 = blobs.iter().find(|b| b.y == 40).map(|b| b.sigma).unwrap_or_default();
        assert!((s3 - 3.0).abs() <= 0.5, "σ {s3}");
    }

    #[test]
    fn a_flat_image_has_no_blobs() {
        // A flat image responds only through kernel truncation (as in SciPy), far below useful thresholds.
        assert!(blob_log(Array2::<f64>::ones((16, 16)).view(), &sigma_list(1.0, 3.0, 3), 0.01, 0.5).is_empty());
    }

    #[test]
    fn overlap_of_identical_and_distant_blobs() {
        let a = Blob { y: 10, x: 10, sigma: 2.0, response: 1.0 };
        assert_eq!(overlap_fraction(&a, &a), 1.0);
        assert_eq!(overlap_fraction(&a, &Blob { y: 100, ..a }), 0.0);
        let half = overlap_fraction(&a, &Blob { x: 13, ..a });
        assert!(half > 0.0 && half < 1.0, "{half}");
    }

    #[test]
    fn sigma_list_is_numpy_linspace() {
        assert_eq!(sigma_list(1.0, 10.0, 10), (1..=10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(sigma_list(2.0, 5.0, 1), [2.0]);
    }
}
