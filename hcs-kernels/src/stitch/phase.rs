//! Phase correlation of two equal-size images with sub-pixel refinement by an upsampled DFT
//! around the peak (Guizar-Sicairos, Thurman & Fienup 2008 — what
//! `skimage.registration.phase_cross_correlation` does). FFTs by rustfft.

use ndarray::{Array2, ArrayView2, Axis};
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

type C = Complex<f64>;

fn fft2(data: &mut Array2<C>, inverse: bool) {
    let (h, w) = data.dim();
    let mut planner = FftPlanner::<f64>::new();
    let row = if inverse { planner.plan_fft_inverse(w) } else { planner.plan_fft_forward(w) };
    let col = if inverse { planner.plan_fft_inverse(h) } else { planner.plan_fft_forward(h) };
    for mut r in data.axis_iter_mut(Axis(0)) {
        let mut buf: Vec<C> = r.to_vec();
        row.process(&mut buf);
        r.iter_mut().zip(buf).for_each(|(d, v)| *d = v);
    }
    for mut c in data.axis_iter_mut(Axis(1)) {
        let mut buf: Vec<C> = c.to_vec();
        col.process(&mut buf);
        c.iter_mut().zip(buf).for_each(|(d, v)| *d = v);
    }
}

/// Mean-subtracted, Hann-windowed spectrum (the window removes the wrap-around discontinuity).
fn spectrum(img: ArrayView2<'_, f32>) -> Array2<C> {
    let mean = img.mean().map_or(0.0, f64::from);
    let (h, w) = img.dim();
    let hann = |i: usize, n: usize| {
        if n < 2 { 1.0 } else { 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos() }
    };
    let mut data =
        Array2::from_shape_fn((h, w), |(y, x)| C::new((f64::from(img[[y, x]]) - mean) * hann(y, h) * hann(x, w), 0.0));
    fft2(&mut data, false);
    data
}

/// Frequencies of an n-point FFT, as `numpy.fft.fftfreq(n)`.
fn fftfreq(n: usize) -> Vec<f64> {
    (0..n).map(|i| if i < n.div_ceil(2) { i as f64 } else { i as f64 - n as f64 } / n as f64).collect()
}

/// The cross-correlation near `(r0, c0)` sampled on a grid `1/up` apart, `size × size` samples
/// centred on the offset (in pixels of the original grid).
fn upsampled_dft(cps: &Array2<C>, up: f64, size: usize, r0: f64, c0: f64) -> Array2<C> {
    let (h, w) = cps.dim();
    let (fr, fc) = (fftfreq(h), fftfreq(w));
    let half = (size / 2) as f64;
    let two_pi = 2.0 * std::f64::consts::PI;
    // kernel_c[j][x] = exp(i 2π fc[x] (c0 + (j - half)/up))
    let kc = Array2::from_shape_fn((size, w), |(j, x)| {
        let t = c0 + (j as f64 - half) / up;
        C::from_polar(1.0, two_pi * fc[x] * t)
    });
    let kr = Array2::from_shape_fn((size, h), |(i, y)| {
        let t = r0 + (i as f64 - half) / up;
        C::from_polar(1.0, two_pi * fr[y] * t)
    });
    // out = kr · cps · kcᵀ
    let tmp = cps.dot(&kc.t());
    kr.dot(&tmp)
}

/// The shift `(dy, dx)` such that `moving(y, x) ≈ reference(y − dy, x − dx)`, to `1/up` pixel.
pub fn phase_correlate(reference: ArrayView2<'_, f32>, moving: ArrayView2<'_, f32>, up: usize) -> (f64, f64) {
    let (h, w) = reference.dim();
    let a = spectrum(reference);
    let b = spectrum(moving);
    // Cross-power spectrum. Not whitened: on sparse fluorescent content the plain correlation
    // peak is smooth, so the upsampled DFT locates it to a fraction of a pixel, where a whitened
    // (phase-only) peak is dominated by border effects (skimage's `normalization=None`).
    let mut cps = Array2::from_shape_fn((h, w), |(y, x)| b[[y, x]] * a[[y, x]].conj());
    let spec = cps.clone();
    fft2(&mut cps, true);
    let (mut best, mut at) = (f64::NEG_INFINITY, (0, 0));
    for ((y, x), v) in cps.indexed_iter() {
        if v.re > best {
            best = v.re;
            at = (y, x);
        }
    }
    let wrap = |i: usize, n: usize| if i > n / 2 { i as f64 - n as f64 } else { i as f64 };
    let (mut dy, mut dx) = (wrap(at.0, h), wrap(at.1, w));
    if up > 1 {
        let up = up as f64;
        let size = (1.5 * up).ceil() as usize;
        // c(t) = Σ P(f)·e^{+i2πft}: the same surface as the inverse FFT, sampled finely near the peak.
        let surface = upsampled_dft(&spec, up, size, dy, dx);
        let (mut best, mut at) = (f64::NEG_INFINITY, (0, 0));
        for ((i, j), v) in surface.indexed_iter() {
            if v.re > best {
                best = v.re;
                at = (i, j);
            }
        }
        let half = (size / 2) as f64;
        dy += (at.0 as f64 - half) / up;
        dx += (at.1 as f64 - half) / up;
    }
    (dy, dx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(h: usize, w: usize, oy: f64, ox: f64) -> Array2<f32> {
        let centres = [(10.3, 12.1), (30.7, 40.2), (50.1, 20.9), (22.5, 55.5), (44.4, 8.8), (5.5, 33.3)];
        Array2::from_shape_fn((h, w), |(y, x)| {
            centres
                .iter()
                .map(|(cy, cx)| {
                    let (dy, dx) = (y as f64 - cy - oy, x as f64 - cx - ox);
                    1000.0 * (-(dy * dy + dx * dx) / 8.0).exp()
                })
                .sum::<f64>() as f32
        })
    }

    #[test]
    fn recovers_integer_and_subpixel_shifts() {
        let reference = blobs(64, 72, 0.0, 0.0);
        for (sy, sx) in [(0.0, 0.0), (3.0, -5.0), (1.4, 2.7), (-2.35, 0.6)] {
            let moving = blobs(64, 72, sy, sx);
            let (dy, dx) = phase_correlate(reference.view(), moving.view(), 20);
            assert!((dy - sy).abs() <= 0.1 && (dx - sx).abs() <= 0.1, "want ({sy}, {sx}) got ({dy}, {dx})");
        }
    }
}
