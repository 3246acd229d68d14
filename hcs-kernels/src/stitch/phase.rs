//! Phase correlation of two equal-size images with sub-pixel refinement by an upsampled DFT
//! around the peak (Guizar-Sicairos, Thurman & Fienup 2008 — what
//! `skimage.registration.phase_cross_correlation` does). FFTs by rustfft / realfft, in f32 (see `F`).

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2, Axis};
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// Sample type of the FFTs: f32. The registration uses a shift only rounded to whole pixels
/// (the centre of the NCC refinement, which gives the sub-pixel offset), so single precision
/// (relative error ~1e-6 over these sizes) moves it only where two peaks tie to that precision;
/// it halves the transforms' work and memory next to f64 (the same edges and positions on the
/// benchmark plates, bench/RESULTS.md). The upsampled DFT still sums in f64.
pub(crate) type F = f32;

/// Complex sample type of the spectra.
pub(crate) type C = Complex<F>;

/// Complex samples of the upsampled DFT (f64: it sums a whole spectrum per sample).
type C64 = Complex<f64>;

/// The non-negative-frequency half (along x) of the 2-D spectrum of a real `h × w` strip:
/// `h × (w/2 + 1)`; the other half is its conjugate mirror. Real-input transforms halve both the
/// work and the memory of the full complex spectrum.
pub(crate) struct HalfSpectrum {
    data: Array2<C>,
    /// Width of the real strip.
    w: usize,
}

thread_local! {
    /// FFT plans are worth keeping: a well registers hundreds of strips of a few sizes.
    static PLANNERS: RefCell<(FftPlanner<F>, RealFftPlanner<F>)> =
        RefCell::new((FftPlanner::new(), RealFftPlanner::new()));
}

/// Columns [`columns`] gathers at a time: a 64-byte cache line of complex f32 holds eight.
const COLUMN_BLOCK: usize = 8;

/// Transform every column of `data` (forward or inverse) in place. Columns are gathered
/// [`COLUMN_BLOCK`] at a time, so each pass down the rows uses (nearly) whole cache lines, and
/// transformed in one call (the plan runs on each column as on one alone).
fn columns(data: &mut Array2<C>, col: &dyn rustfft::Fft<F>) {
    let (h, w) = data.dim();
    let mut buf: Vec<C> = vec![C::default(); h * COLUMN_BLOCK];
    let mut scratch = vec![C::default(); col.get_inplace_scratch_len()];
    for x0 in (0..w).step_by(COLUMN_BLOCK) {
        let n = COLUMN_BLOCK.min(w - x0);
        for (y, row) in data.axis_iter(Axis(0)).enumerate() {
            for c in 0..n {
                buf[c * h + y] = row[x0 + c];
            }
        }
        col.process_with_scratch(&mut buf[..n * h], &mut scratch);
        for (y, mut row) in data.axis_iter_mut(Axis(0)).enumerate() {
            for c in 0..n {
                row[x0 + c] = buf[c * h + y];
            }
        }
    }
}

/// The Hann window of length `n` (1 for n < 2).
fn hann(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| if n < 2 { 1.0 } else { 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos() })
        .collect()
}

/// Mean-subtracted, Hann-windowed spectrum (the window removes the wrap-around discontinuity).
/// Computed once per strip and shared by every pair that strip is registered in.
pub(crate) fn spectrum(img: ArrayView2<'_, f32>) -> HalfSpectrum {
    let mean = img.mean().map_or(0.0, f64::from);
    let (h, w) = img.dim();
    let (wy, wx) = (hann(h), hann(w));
    let (row, col) = PLANNERS.with(|p| {
        let mut p = p.borrow_mut();
        (p.1.plan_fft_forward(w), p.0.plan_fft_forward(h))
    });
    let mut data = Array2::from_elem((h, w / 2 + 1), C::default());
    let (mut input, mut scratch) = (row.make_input_vec(), row.make_scratch_vec());
    for ((mut out, src), &fy) in data.rows_mut().into_iter().zip(img.rows()).zip(&wy) {
        input
            .iter_mut()
            .zip(src.iter())
            .zip(&wx)
            .for_each(|((i, &v), &fx)| *i = ((f64::from(v) - mean) * fy * fx) as F);
        let out = out.as_slice_mut().expect("rows of a standard-layout array are contiguous");
        // Lengths match the plan by construction, the only way this can fail.
        let _ = row.process_with_scratch(&mut input, out, &mut scratch);
    }
    columns(&mut data, col.as_ref());
    HalfSpectrum { data, w }
}

/// The full `h × w` spectrum from its half (the upsampled DFT samples every frequency): each
/// row is its half's row, then the conjugates of the mirrored row read backwards.
fn full(half: &Array2<C>, w: usize) -> Array2<C64> {
    let (h, hw) = half.dim();
    let mut data = Vec::with_capacity(h * w);
    for y in 0..h {
        data.extend(half.row(y).iter().map(|c| wide(*c)));
        let mirror = half.row((h - y) % h);
        data.extend((hw..w).map(|x| wide(mirror[w - x].conj())));
    }
    // The rows hold exactly h × w samples (`w / 2 + 1 ≤ w`); should that ever not fit, the
    // same spectrum element by element.
    Array2::from_shape_vec((h, w), data).unwrap_or_else(|_| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            wide(if x < hw { half[[y, x]] } else { half[[(h - y) % h, w - x]].conj() })
        })
    })
}

/// The position `(y, x)` of the largest value of the real inverse transform of a half spectrum
/// (destroys `half`), the first in row-major order where several are equal. Each row is
/// transformed into one reused buffer and scanned as it comes: the surface is never stored.
fn inverse_peak(half: &mut Array2<C>, w: usize) -> (usize, usize) {
    let (h, hw) = half.dim();
    let (row, col) = PLANNERS.with(|p| {
        let mut p = p.borrow_mut();
        (p.1.plan_fft_inverse(w), p.0.plan_fft_inverse(h))
    });
    columns(half, col.as_ref());
    let mut out = vec![0 as F; w];
    let mut scratch = row.make_scratch_vec();
    let (mut best, mut at) = (F::NEG_INFINITY, (0, 0));
    for (y, mut src) in half.rows_mut().into_iter().enumerate() {
        let src = src.as_slice_mut().expect("rows of a standard-layout array are contiguous");
        real_row_terms(src, w, hw);
        // Lengths match the plan by construction, the only way this can fail.
        let _ = row.process_with_scratch(src, &mut out, &mut scratch);
        for (x, &v) in out.iter().enumerate() {
            if v > best {
                best = v;
                at = (y, x);
            }
        }
    }
    at
}

/// The DC (and, for even `w`, Nyquist) terms of a real signal's row spectrum are real; the
/// rounding residue in their imaginary parts is dropped, as the real transform requires.
fn real_row_terms(src: &mut [C], w: usize, hw: usize) {
    src[0].im = 0.0;
    if w.is_multiple_of(2) {
        src[hw - 1].im = 0.0;
    }
}

/// A spectrum sample in f64.
fn wide(c: C) -> C64 {
    C64::new(f64::from(c.re), f64::from(c.im))
}

/// Frequencies of an n-point FFT, as `numpy.fft.fftfreq(n)`.
fn fftfreq(n: usize) -> Vec<f64> {
    (0..n).map(|i| if i < n.div_ceil(2) { i as f64 } else { i as f64 - n as f64 } / n as f64).collect()
}

/// The cross-correlation near `(r0, c0)` sampled on a grid `1/up` apart, `size × size` samples
/// centred on the offset (in pixels of the original grid).
fn upsampled_dft(cps: &Array2<C64>, up: f64, size: usize, r0: f64, c0: f64) -> Array2<C64> {
    let (h, w) = cps.dim();
    let (fr, fc) = (fftfreq(h), fftfreq(w));
    let half = (size / 2) as f64;
    let two_pi = 2.0 * std::f64::consts::PI;
    // kernel_c[j][x] = exp(i 2π fc[x] (c0 + (j - half)/up))
    let kc = Array2::from_shape_fn((size, w), |(j, x)| {
        let t = c0 + (j as f64 - half) / up;
        C64::from_polar(1.0, two_pi * fc[x] * t)
    });
    let kr = Array2::from_shape_fn((size, h), |(i, y)| {
        let t = r0 + (i as f64 - half) / up;
        C64::from_polar(1.0, two_pi * fr[y] * t)
    });
    // out = kr · cps · kcᵀ
    let tmp = cps.dot(&kc.t());
    kr.dot(&tmp)
}

/// The shift `(dy, dx)` such that `moving(y, x) ≈ reference(y − dy, x − dx)`, to `1/up` pixel.
pub fn phase_correlate(reference: ArrayView2<'_, f32>, moving: ArrayView2<'_, f32>, up: usize) -> (f64, f64) {
    correlate_spectra(&spectrum(reference), &spectrum(moving), up)
}

/// [`phase_correlate`] of two strips whose [`spectrum`]s are already known.
pub(crate) fn correlate_spectra(a: &HalfSpectrum, b: &HalfSpectrum, up: usize) -> (f64, f64) {
    let (h, w) = (a.data.dim().0, a.w);
    // Cross-power spectrum. Not whitened: on sparse fluorescent content the plain correlation
    // peak is smooth, so the upsampled DFT locates it to a fraction of a pixel, where a whitened
    // (phase-only) peak is dominated by border effects (skimage's `normalization=None`).
    let mut cps = ndarray::Zip::from(&a.data).and(&b.data).map_collect(|&a, &b| b * a.conj());
    // The upsampled refinement needs the spectrum after the inverse FFT has overwritten it.
    let spec = (up > 1).then(|| full(&cps, w));
    let at = inverse_peak(&mut cps, w);
    let wrap = |i: usize, n: usize| if i > n / 2 { i as f64 - n as f64 } else { i as f64 };
    let (mut dy, mut dx) = (wrap(at.0, h), wrap(at.1, w));
    if let Some(spec) = spec {
        let up = up as f64;
        let size = (1.5 * up).ceil() as usize;
        // c(t) = Σ P(f)·e^{+i2πft}: the same surface as the inverse FFT, sampled finely near the peak.
        let fine = upsampled_dft(&spec, up, size, dy, dx);
        let (mut best, mut at) = (f64::NEG_INFINITY, (0, 0));
        for ((i, j), v) in fine.indexed_iter() {
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

    /// The real inverse transform of a half spectrum (destroys `half`), whole: what
    /// [`inverse_peak`] scans row by row.
    fn inverse_real(half: &mut Array2<C>, w: usize) -> Array2<F> {
        let (h, hw) = half.dim();
        let (row, col) = PLANNERS.with(|p| {
            let mut p = p.borrow_mut();
            (p.1.plan_fft_inverse(w), p.0.plan_fft_inverse(h))
        });
        columns(half, col.as_ref());
        let mut out = Array2::<F>::zeros((h, w));
        let mut scratch = row.make_scratch_vec();
        for (mut src, mut dst) in half.rows_mut().into_iter().zip(out.rows_mut()) {
            let src = src.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            real_row_terms(src, w, hw);
            let dst = dst.as_slice_mut().expect("rows of a standard-layout array are contiguous");
            let _ = row.process_with_scratch(src, dst, &mut scratch);
        }
        out
    }

    /// The full spectrum element by element: what [`full`] builds row by row.
    fn full_by_index(half: &Array2<C>, w: usize) -> Array2<C64> {
        let (h, hw) = half.dim();
        Array2::from_shape_fn((h, w), |(y, x)| {
            wide(if x < hw { half[[y, x]] } else { half[[(h - y) % h, w - x]].conj() })
        })
    }

    fn bits(c: &C64) -> (u64, u64) {
        (c.re.to_bits(), c.im.to_bits())
    }

    #[test]
    fn the_peak_scanned_row_by_row_and_the_full_spectrum_equal_the_whole_surfaces() {
        for (h, w) in [(30, 7), (64, 72), (45, 9), (97, 6), (101, 5), (1, 1), (8, 2), (120, 1024)] {
            let img = Array2::from_shape_fn((h, w), |(y, x)| ((y * 977 + x * 7919) % 1013) as f32 / 7.0 - 60.0);
            let other = Array2::from_shape_fn((h, w), |(y, x)| ((y * 613 + x * 4451) % 997) as f32 / 5.0 - 90.0);
            let (a, b) = (spectrum(img.view()), spectrum(other.view()));
            let cps = ndarray::Zip::from(&a.data).and(&b.data).map_collect(|&a, &b| b * a.conj());
            let got_full: Vec<(u64, u64)> = full(&cps, w).iter().map(bits).collect();
            let want_full: Vec<(u64, u64)> = full_by_index(&cps, w).iter().map(bits).collect();
            assert_eq!(got_full, want_full, "{h} × {w}");
            let surface = inverse_real(&mut cps.clone(), w);
            let (mut best, mut want) = (F::NEG_INFINITY, (0, 0));
            for ((y, x), &v) in surface.indexed_iter() {
                if v > best {
                    best = v;
                    want = (y, x);
                }
            }
            assert_eq!(inverse_peak(&mut cps.clone(), w), want, "{h} × {w}");
        }
        // Ties go to the first in row-major order: a flat spectrum's surface peaks at (0, 0) only;
        // a constant surface (only the DC term) ties everywhere.
        let mut dc = Array2::from_elem((6, 4), C::default());
        dc[[0, 0]] = C::new(24.0, 0.0);
        assert_eq!(inverse_peak(&mut dc, 6), (0, 0));
    }

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
    fn columns_in_blocks_transform_each_column_as_one_alone_would() {
        for (h, w) in [(30, 7), (64, 4), (45, 9), (1024, 5), (108, 6), (97, 6), (101, 5)] {
            let data = Array2::from_shape_fn((h, w), |(y, x)| {
                C::new(((y * 31 + x * 17) % 23) as F - 11.5, ((y * 7 + x * 13) % 19) as F / 3.0)
            });
            let plan = FftPlanner::new().plan_fft_forward(h);
            let mut blocked = data.clone();
            columns(&mut blocked, plan.as_ref());
            for (x, column) in data.axis_iter(Axis(1)).enumerate() {
                let mut alone = column.to_vec();
                plan.process(&mut alone);
                let got: Vec<(u32, u32)> = blocked.column(x).iter().map(|c| (c.re.to_bits(), c.im.to_bits())).collect();
                let want: Vec<(u32, u32)> = alone.iter().map(|c| (c.re.to_bits(), c.im.to_bits())).collect();
                assert_eq!(got, want, "{h} × {w}, column {x}");
            }
        }
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
