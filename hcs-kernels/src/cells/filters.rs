//! The f64 filters of cell detection, with SciPy's semantics (`reflect` boundaries, Gaussian
//! radius `round(4σ)`): Gaussian derivative kernels, the scale-normalized Laplacian of Gaussian
//! (`scipy.ndimage.gaussian_laplace`) and the median over a disk footprint
//! (`scipy.ndimage.median_filter(footprint=skimage.morphology.disk(r))`). Written here because
//! no maintained crate offers them with these semantics on ndarray.

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::boundary::reflect;
use crate::gaussian::derivative_kernel;
use crate::separable::{along_x, along_y};

/// SciPy's 1-D Gaussian kernel of derivative `order` (0 or 2), radius `round(4σ)`.
fn gaussian_kernel(sigma: f64, order: u8) -> Vec<f64> {
    derivative_kernel(sigma, order, 4.0)
}

/// Gaussian smoothing in f64 (σ in pixels; σ = 0 returns a copy).
pub fn gaussian(img: ArrayView2<'_, f64>, sigma: f64) -> Array2<f64> {
    if sigma <= 0.0 {
        return img.to_owned();
    }
    let k = gaussian_kernel(sigma, 0);
    along_x(along_y(img, &k).view(), &k)
}

/// `−σ²·∇²(G_σ ∗ img)`: bright blobs of radius ≈ σ√2 give a positive response.
pub fn scaled_negative_log(img: ArrayView2<'_, f64>, sigma: f64) -> Array2<f64> {
    let (k0, k2) = (gaussian_kernel(sigma, 0), gaussian_kernel(sigma, 2));
    let dyy = along_x(along_y(img, &k2).view(), &k0);
    let dxx = along_x(along_y(img, &k0).view(), &k2);
    let scale = -sigma * sigma;
    let mut out = dyy;
    out.zip_mut_with(&dxx, |a, &b| *a = (*a + b) * scale);
    out
}

/// Offsets `(dy, dx)` of `skimage.morphology.disk(r)`: `dy² + dx² ≤ r²`.
pub fn disk_offsets(r: usize) -> Vec<(isize, isize)> {
    let r = r as isize;
    (-r..=r).flat_map(|dy| (-r..=r).map(move |dx| (dy, dx))).filter(|(dy, dx)| dy * dy + dx * dx <= r * r).collect()
}

/// Median over a disk of radius `r` (an odd number of samples, so the median is one of them).
pub fn median_disk(img: ArrayView2<'_, f64>, r: usize) -> Array2<f64> {
    if r == 0 {
        return img.to_owned();
    }
    let (h, w) = img.dim();
    let offsets = disk_offsets(r);
    let mid = offsets.len() / 2;
    let mut out = Array2::<f64>::zeros((h, w));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(Vec::new, |vals, (y, mut o)| {
        for (x, ov) in o.iter_mut().enumerate() {
            vals.clear();
            vals.extend(
                offsets.iter().map(|&(dy, dx)| img[(reflect(y as isize + dy, h), reflect(x as isize + dx, w))]),
            );
            let (_, m, _) = vals.select_nth_unstable_by(mid, f64::total_cmp);
            *ov = *m;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_derivative_kernel_sums_to_zero_and_is_negative_at_the_centre() {
        let k = gaussian_kernel(2.0, 2);
        assert_eq!(k.len(), 17);
        let sum: f64 = k.iter().sum();
        assert!(sum.abs() < 1e-3, "{sum}");
        assert!(k[8] < 0.0 && k[0] > 0.0);
    }

    #[test]
    fn median_of_disk_one_removes_a_single_hot_pixel() {
        let mut img = Array2::<f64>::zeros((5, 5));
        img[(2, 2)] = 100.0;
        let m = median_disk(img.view(), 1);
        assert!(m.iter().all(|&v| v == 0.0));
        assert_eq!(disk_offsets(1).len(), 5);
        assert_eq!(disk_offsets(2).len(), 13);
    }
}
