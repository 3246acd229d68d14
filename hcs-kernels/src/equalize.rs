//! Histogram equalization over the whole stack.

use hcs_core::NdarrayStack;
use hcs_macros::memory;

use crate::error::KernelError;

/// Equalize the histogram of the whole stack and scale to `[0, 65535]`.
///
/// Same definition as `skimage.exposure.equalize_hist(stack, nbins=bins) * 65535`: `bins` equal
/// bins over the stack's min..max, the normalized cumulative histogram evaluated at each value
/// by linear interpolation between bin centres.
#[memory(ndarray)]
#[hcs_macros::peak_memory(bins as f64 * 8.0 + 3.0 * image.planes.unwrap_or(1) as f64 * image.height as f64 * image.width as f64 * 4.0)]
pub fn stack_equalize_histogram(
    mut stack: NdarrayStack,
    #[param(default = 65536, doc = "histogram bins", range = 2..=1048576)] bins: usize,
) -> Result<NdarrayStack, KernelError> {
    // The histogram and its cumulative table are allocated from `bins`: bounded, whatever the value.
    crate::checks::int_in("bins", bins, 1, crate::checks::MAX_BINS, "")?;
    let (lo, hi) = stack.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return Err(KernelError::BadInput("empty stack or non-finite values".into()));
    }
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1.0 };
    let mut hist = vec![0u64; bins];
    for &v in &stack {
        let b = (((f64::from(v) - lo) / width) as usize).min(bins - 1);
        hist[b] += 1;
    }
    let total = hist.iter().sum::<u64>() as f64;
    let mut cdf = Vec::with_capacity(bins);
    let mut acc = 0u64;
    for h in hist {
        acc += h;
        cdf.push(acc as f64 / total);
    }
    let center = |i: usize| lo + (i as f64 + 0.5) * width;
    stack.par_mapv_inplace(|v| {
        let pos = (f64::from(v) - lo) / width - 0.5;
        let y = if pos <= 0.0 {
            cdf[0]
        } else if pos >= (bins - 1) as f64 {
            cdf[bins - 1]
        } else {
            let i = pos.floor() as usize;
            let t = (f64::from(v) - center(i)) / width;
            cdf[i] + t * (cdf[i + 1] - cdf[i])
        };
        (y * 65535.0) as f32
    });
    Ok(stack)
}
