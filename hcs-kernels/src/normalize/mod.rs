//! Percentile contrast stretching.
//!
//! The torch and cuda variants, registered under the same names, are in `torch.rs` and
//! `cuda.rs` beside this file.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::error::KernelError;

/// The `q`-th percentile (0..=100) of `values` with linear interpolation between order statistics
/// (NumPy's default `method="linear"`). Reorders `values`.
pub fn percentile(values: &mut [f32], q: f64) -> f32 {
    percentiles(values, &[q])[0]
}

/// Several percentiles of `values` at once, exactly as [`percentile`] would give them.
///
/// Samples that are all integers in `0..=65535` (raw 16-bit planes) are counted once, one bin
/// per value, and the order statistics read off the counts: a single pass over the data. Other
/// samples take a pass for the range, then one parallel pass counts them into 65 536 bins over
/// it; only the values in the bins that hold the wanted ranks are then selected exactly, so the
/// cost is a counting pass plus a selection over a tiny subset instead of a partition of the
/// whole stack per percentile.
pub fn percentiles(values: &[f32], qs: &[f64]) -> Vec<f32> {
    let n = values.len();
    if n == 0 {
        return vec![0.0; qs.len()];
    }
    let threads = rayon::current_num_threads().max(1);
    let chunk_len = n.div_ceil(threads).max(1);
    if let Some(counts) = u16_counts(values, chunk_len) {
        return percentiles_from_counts(&counts, n, qs);
    }
    let (lo, hi) = values
        .par_chunks(chunk_len)
        .map(min_max)
        .reduce(|| (f32::INFINITY, f32::NEG_INFINITY), |x, y| (x.0.min(y.0), x.1.max(y.1)));
    let binning = if lo.is_finite() && hi.is_finite() && lo < hi {
        Binning::new(lo, hi)
    } else {
        // One finite value at most (a flat image), maybe with infinities or NaN: one bin holds
        // them all, and the selection in it is exact.
        Binning { lo: if lo.is_finite() { lo } else { 0.0 }, scale: 0.0 }
    };
    binned_percentiles(values, qs, chunk_len, binning)
}

/// Bins of the counting passes: 65 536, one per value of a 16-bit sample.
const BINS: usize = 1 << 16;

/// [`BINS`] equal bins over the finite data range `lo..=hi` (`lo < hi`).
#[derive(Clone, Copy)]
struct Binning {
    /// The smallest sample, the start of bin 0.
    lo: f32,
    /// Bins per unit of value.
    scale: f32,
}

impl Binning {
    fn new(lo: f32, hi: f32) -> Self {
        // Bins in f32: monotone in the value (all that the exact selection relies on) and
        // cheaper than f64 in the two passes over every sample.
        Binning { lo, scale: ((BINS as f64 - 1.0) / (f64::from(hi) - f64::from(lo))) as f32 }
    }

    /// The bin of sample `v`; infinities go to the end bins, and NaN where `f32::total_cmp`
    /// sorts it (a positive NaN after `+inf`), so each bin's members stay in sorted order.
    /// With `scale` 0 (no range), every sample but a positive NaN is in bin 0.
    fn bin(self, v: f32) -> usize {
        if v.is_nan() {
            return if v.is_sign_negative() { 0 } else { BINS - 1 };
        }
        let at = (v - self.lo) * self.scale;
        // `inf · 0` is NaN, which the cast takes to 0.
        (at as usize).min(BINS - 1)
    }
}

/// The general path of [`percentiles`] (samples that are not all 16-bit integers): one pass
/// counts the samples per bin, a second gathers the members of just the bins that hold the
/// wanted ranks, and each rank is then selected exactly among them.
fn binned_percentiles(values: &[f32], qs: &[f64], chunk_len: usize, binning: Binning) -> Vec<f32> {
    let n = values.len();
    let counts = count_in_parallel(values, chunk_len, BINS, |chunk| {
        let mut c = vec![0u32; BINS];
        chunk.iter().for_each(|&v| c[binning.bin(v)] += 1);
        c
    });
    let mut starts = Vec::with_capacity(BINS);
    let mut acc = 0usize;
    for &c in &counts {
        starts.push(acc);
        acc += c as usize;
    }
    let bin_of_rank = |k: usize| starts.partition_point(|&s| s <= k) - 1;
    let ranks = ranks(qs, n);
    // Each percentile interpolates between two order statistics: the bins holding them.
    let mut wanted: Vec<usize> =
        ranks.iter().flat_map(|&(k, _)| [bin_of_rank(k), bin_of_rank((k + 1).min(n - 1))]).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut members = bin_members(values, chunk_len, binning, &wanted);
    let kth = |k: usize| -> f32 {
        let b = bin_of_rank(k);
        let i = wanted.binary_search(&b).unwrap_or(0);
        let m = &mut members[i];
        let (_, v, _) = m.select_nth_unstable_by(k - starts[b], f32::total_cmp);
        *v
    };
    interpolate(&ranks, n, kth)
}

/// Where each percentile `q` (0..=100, clamped) falls among `n` sorted samples: the order
/// statistic `k` below it and the fraction of the way to `k + 1` (NumPy's linear method).
fn ranks(qs: &[f64], n: usize) -> Vec<(usize, f64)> {
    qs.iter()
        .map(|&q| {
            let rank = (q.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            (rank.floor() as usize, rank - rank.floor())
        })
        .collect()
}

/// The samples of each bin in `wanted` (sorted, non-empty), gathered in one parallel pass.
fn bin_members(values: &[f32], chunk_len: usize, binning: Binning, wanted: &[usize]) -> Vec<Vec<f32>> {
    let (first, last) = (wanted[0], wanted[wanted.len() - 1]);
    values
        .par_chunks(chunk_len)
        .map(|chunk| {
            let mut m = vec![Vec::new(); wanted.len()];
            for &v in chunk {
                let b = binning.bin(v);
                // Nearly every sample lies outside [first, last]: one range test rejects it.
                if b.wrapping_sub(first) <= last - first
                    && let Ok(i) = wanted.binary_search(&b)
                {
                    m[i].push(v);
                }
            }
            m
        })
        .reduce(
            || vec![Vec::new(); wanted.len()],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, mut y)| x.append(&mut y));
                a
            },
        )
}

/// The percentiles at `ranks` (from [`ranks`]) of `n` samples whose `k`-th smallest is
/// `kth(k)`: linear interpolation between the two order statistics around each rank.
fn interpolate(ranks: &[(usize, f64)], n: usize, mut kth: impl FnMut(usize) -> f32) -> Vec<f32> {
    ranks
        .iter()
        .map(|&(k, frac)| {
            let a = kth(k);
            if frac == 0.0 || k + 1 >= n {
                a
            } else {
                let b = kth(k + 1);
                (f64::from(a) + frac * f64::from(b - a)) as f32
            }
        })
        .collect()
}

/// Smallest and largest finite sample of `values` (NaN and infinities ignored: the bins span
/// the finite range, and [`Binning::bin`] puts the rest in the end bins), in eight lanes so
/// the loop vectorizes. Compiled for AVX2 and AVX-512 too and picked at run time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn min_max(values: &[f32]) -> (f32, f32) {
    let mut lo = [f32::INFINITY; 8];
    let mut hi = [f32::NEG_INFINITY; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            let finite = c[l].is_finite();
            lo[l] = if finite && c[l] < lo[l] { c[l] } else { lo[l] };
            hi[l] = if finite && c[l] > hi[l] { c[l] } else { hi[l] };
        }
    }
    let fold = |a: [f32; 8], init: f32, pick: fn(f32, f32) -> f32| a.iter().fold(init, |m, &v| pick(m, v));
    let (mut l, mut h) = (fold(lo, f32::INFINITY, f32::min), fold(hi, f32::NEG_INFINITY, f32::max));
    for &v in rest.iter().filter(|v| v.is_finite()) {
        l = l.min(v);
        h = h.max(v);
    }
    (l, h)
}

/// Histograms of `values` in chunks of `chunk_len`, one per worker (`count` makes one chunk's
/// `bins`-long table), summed.
fn count_in_parallel(
    values: &[f32],
    chunk_len: usize,
    bins: usize,
    count: impl Fn(&[f32]) -> Vec<u32> + Sync + Send,
) -> Vec<u32> {
    values.par_chunks(chunk_len).map(count).reduce(
        || vec![0u32; bins],
        |mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        },
    )
}

/// The count of every value when the samples are all integers in `0..=65535`; `None` as soon as
/// a chunk holds any other sample (fractional, negative, larger, NaN). One pass: the test rides
/// along with the counting instead of taking a pass of its own.
fn u16_counts(values: &[f32], chunk_len: usize) -> Option<Vec<u32>> {
    let counted: Vec<Option<Vec<u32>>> = values
        .par_chunks(chunk_len)
        .map(|chunk| {
            // Float data usually shows itself at once: no table, no pass.
            if chunk.iter().take(64).any(|&v| f32::from(v as u16) != v) {
                return None;
            }
            // Two interleaved tables, so runs of equal samples do not wait on each other's stores.
            let mut c = vec![0u32; 2 * BINS];
            let mut other = false;
            // Blocks of samples: first their bins and the integer test for the whole block (a
            // loop of adds and bit operations that vectorizes, unlike a saturating float-to-int
            // cast), then the counting, which is a scatter and stays scalar.
            const BLOCK: usize = 1024;
            let mut bins = [0u16; BLOCK];
            for (i, block) in chunk.chunks(BLOCK).enumerate() {
                // The samples' lines asked for a few blocks ahead (a hint; `hcs_vfs::ahead`).
                hcs_vfs::ahead::ahead_of(chunk, i * BLOCK, BLOCK);
                let bins = &mut bins[..block.len()];
                other |= u16_bins(bins, block);
                let pairs = bins.chunks_exact(2);
                let rest = pairs.remainder();
                for p in pairs {
                    c[usize::from(p[0])] += 1;
                    c[BINS + usize::from(p[1])] += 1;
                }
                for &b in rest {
                    c[usize::from(b)] += 1;
                }
            }
            if other {
                return None;
            }
            let (a, b) = c.split_at_mut(BINS);
            a.iter_mut().zip(b.iter()).for_each(|(x, y)| *x += y);
            c.truncate(BINS);
            Some(c)
        })
        .collect();
    counted.into_iter().try_fold(vec![0u32; BINS], |mut acc, c| {
        acc.iter_mut().zip(c?).for_each(|(x, y)| *x += y);
        Some(acc)
    })
}

/// `bins[i]` = the low 16 bits of `block[i]`'s integer part; true when any sample is not an
/// integer in `0..=65535`. Compiled for AVX2 and AVX-512 too and picked at run time (same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn u16_bins(bins: &mut [u16], block: &[f32]) -> bool {
    let mut odd = false;
    for (b, &v) in bins.iter_mut().zip(block) {
        // 2²³ + v has v's integer part in its low mantissa bits when 0 ≤ v < 2²³;
        // only a 16-bit integer maps back to itself (NaN and negatives do not).
        let bits = ((v + 8_388_608.0).to_bits() & 0x7F_FFFF) as u16;
        odd |= f32::from(bits) != v;
        *b = bits;
    }
    odd
}

/// Percentiles `qs` of `n` integer samples given their counts per value (`counts[v]` samples
/// equal `v`): the order statistics read off the cumulative counts, interpolated like numpy.
pub(crate) fn percentiles_from_counts(counts: &[u32], n: usize, qs: &[f64]) -> Vec<f32> {
    let mut ends = Vec::with_capacity(counts.len());
    let mut acc = 0usize;
    for &c in counts {
        acc += c as usize;
        ends.push(acc);
    }
    // The k-th smallest (0-based) is the first value whose cumulative count exceeds k.
    let kth = |k: usize| ends.partition_point(|&e| e <= k) as f32;
    qs.iter()
        .map(|&q| {
            let rank = (q.clamp(0.0, 100.0) / 100.0) * (n - 1) as f64;
            let (k, frac) = (rank.floor() as usize, rank - rank.floor());
            let a = kth(k);
            if frac == 0.0 || k + 1 >= n { a } else { (f64::from(a) + frac * f64::from(kth(k + 1) - a)) as f32 }
        })
        .collect()
}

/// The guards of every percentile normalization: `0 ≤ low_percentile < high_percentile ≤ 100`
/// and finite `target_min < target_max` (anything else would give a constant image, or make the
/// clamp of the stretch undefined).
pub(crate) fn check_stretch(low: f64, high: f64, t_min: f32, t_max: f32) -> Result<(), KernelError> {
    crate::checks::float_in("low_percentile", low, 0.0, 100.0)?;
    crate::checks::float_in("high_percentile", high, 0.0, 100.0)?;
    if low >= high {
        return crate::checks::bad(format!(
            "low_percentile must be below high_percentile (both in 0..=100), got {low} and {high}"
        ));
    }
    crate::checks::finite("target_min", f64::from(t_min))?;
    crate::checks::finite("target_max", f64::from(t_max))?;
    if t_min >= t_max {
        return crate::checks::bad(format!("target_min must be below target_max, got {t_min} and {t_max}"));
    }
    Ok(())
}

/// Samples per parallel work item of [`stretch`] (256 KiB of f32).
const STRETCH_CHUNK: usize = 1 << 16;

/// `v ← ((v − p_lo) · scale + t_min)` clamped to `t_min..=t_max`, in place. Compiled for AVX2 and AVX-512
/// too and picked at run time (same arithmetic, so the same result).
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn stretch_samples(samples: &mut [f32], p_lo: f32, scale: f32, t_min: f32, t_max: f32) {
    // The lines ahead asked for as the loop goes (a hint; `hcs_vfs::ahead`).
    hcs_vfs::ahead::chunked(hcs_vfs::ahead::Lines::of(samples), samples.len(), |r| {
        for v in &mut samples[r] {
            *v = ((*v - p_lo) * scale + t_min).clamp(t_min, t_max);
        }
    });
}

fn stretch(mut plane: ArrayViewMut2<'_, f32>, p_lo: f32, p_hi: f32, t_min: f32, t_max: f32) {
    if p_hi > p_lo {
        let scale = (t_max - t_min) / (p_hi - p_lo);
        match plane.as_slice_mut() {
            Some(samples) => {
                samples.par_chunks_mut(STRETCH_CHUNK).for_each(|c| stretch_samples(c, p_lo, scale, t_min, t_max));
            }
            // A strided view: row by row through the same function (rows copied out and back
            // when they are strided too), so there is one formula.
            None => plane.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| match row.as_slice_mut() {
                Some(samples) => stretch_samples(samples, p_lo, scale, t_min, t_max),
                None => {
                    let mut samples = row.to_vec();
                    stretch_samples(&mut samples, p_lo, scale, t_min, t_max);
                    row.assign(&ndarray::ArrayView1::from(&samples));
                }
            }),
        }
    } else {
        // A flat image has no contrast to stretch: map it to the bottom of the target range.
        plane.fill(t_min);
    }
}

/// Stretch each plane separately so its `low_percentile` maps to `target_min` and its
/// `high_percentile` to `target_max`, clipping outside.
///
/// Parameters outside `0 ≤ low_percentile < high_percentile ≤ 100`, `target_min < target_max`
/// (finite) leave the stack unchanged: this variant cannot report an error (the torch and cuda
/// variants do).
#[memory(ndarray)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn percentile_normalize(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<NdarrayStack, KernelError> {
    check_stretch(low_percentile, high_percentile, target_min, target_max)?;
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|plane| {
        let qs = [low_percentile, high_percentile];
        let p = match plane.as_slice() {
            Some(values) => percentiles(values, &qs),
            None => percentiles(&plane.iter().copied().collect::<Vec<_>>(), &qs),
        };
        stretch(plane, p[0], p[1], target_min, target_max);
    });
    Ok(stack)
}

/// Stretch the whole stack with one pair of percentiles computed over all planes, so relative
/// intensities between planes are kept.
///
/// Parameters outside `0 ≤ low_percentile < high_percentile ≤ 100`, `target_min < target_max`
/// (finite) leave the stack unchanged: this variant cannot report an error (the torch and cuda
/// variants do).
#[memory(ndarray)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn stack_percentile_normalize(
    mut stack: NdarrayStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<NdarrayStack, KernelError> {
    check_stretch(low_percentile, high_percentile, target_min, target_max)?;
    let p = match stack.as_slice() {
        Some(values) => percentiles(values, &[low_percentile, high_percentile]),
        None => percentiles(&stack.iter().copied().collect::<Vec<_>>(), &[low_percentile, high_percentile]),
    };
    let (p_lo, p_hi) = (p[0], p[1]);
    stack.axis_iter_mut(Axis(0)).into_par_iter().for_each(|plane| stretch(plane, p_lo, p_hi, target_min, target_max));
    Ok(stack)
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

    /// NumPy's linear percentile by sorting: the definition both fast paths must reproduce.
    fn sorted_percentile(values: &[f32], q: f64) -> f32 {
        let mut v = values.to_vec();
        v.sort_by(f32::total_cmp);
        let rank = q / 100.0 * (v.len() - 1) as f64;
        let (k, frac) = (rank.floor() as usize, rank - rank.floor());
        let a = v[k];
        if frac == 0.0 || k + 1 >= v.len() { a } else { (f64::from(a) + frac * f64::from(v[k + 1] - a)) as f32 }
    }

    #[test]
    fn integer_and_fractional_samples_give_the_sorted_percentiles() {
        // A skewed, 16-bit-like distribution (mostly dim background, a few bright pixels), once
        // as integers (the counting path) and once shifted by a quarter (the general path).
        let mut state = 12345u64;
        let ints: Vec<f32> = (0..100_003)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (state >> 33) as u32;
                if r.is_multiple_of(50) { (r % 65536) as f32 } else { (100 + r % 400) as f32 }
            })
            .collect();
        let fracs: Vec<f32> = ints.iter().map(|v| v + 0.25).collect();
        let qs = [0.0, 0.5, 1.0, 37.3, 50.0, 99.5, 100.0];
        // Integers but for one sample deep in the data (past the first 64, which are checked
        // first): each must send the whole count down the general path, and an infinity or a
        // NaN must not spoil the bins (they did: every percentile came out as the minimum).
        let spoiled: Vec<Vec<f32>> =
            [65536.0, -1.0, 0.5, 65535.5, 1e9, -1e9, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]
                .iter()
                .map(|&odd| {
                    let mut v = ints.clone();
                    v[77_777] = odd;
                    v
                })
                .collect();
        // -0.0 is the integer 0 on both paths.
        let mut signed_zero = ints.clone();
        signed_zero[5_000] = -0.0;
        // A flat image with one infinity, and no finite sample at all.
        let mut flat = vec![5.0f32; 1000];
        flat[900] = f32::INFINITY;
        let unbounded = vec![f32::NEG_INFINITY, f32::INFINITY, f32::NAN, f32::INFINITY];
        let odd = [flat, unbounded];
        for values in [&ints, &fracs, &signed_zero].into_iter().chain(&spoiled).chain(&odd) {
            let got = percentiles(values, &qs);
            for (q, g) in qs.iter().zip(got) {
                let want = sorted_percentile(values, *q);
                assert!(
                    g == want || (g.is_nan() && want.is_nan()),
                    "q = {q}: {g} vs {want}, odd sample {:?}",
                    values.get(77_777)
                );
            }
        }
    }

    #[test]
    fn per_plane_and_whole_stack_normalization_differ() {
        let s = array![[[0.0, 10.0]], [[0.0, 20.0]]];
        let per = percentile_normalize(s.clone(), 0.0, 100.0, 0.0, 100.0).expect("valid");
        assert_eq!(per, array![[[0.0, 100.0]], [[0.0, 100.0]]]);
        let whole = stack_percentile_normalize(s, 0.0, 100.0, 0.0, 100.0).expect("valid");
        assert_eq!(whole, array![[[0.0, 50.0]], [[0.0, 100.0]]]);
    }

    #[test]
    fn parameters_without_a_stretch_are_refused_or_leave_the_stack_unchanged() {
        for (lo, hi, t_min, t_max) in [
            (f64::NAN, f64::INFINITY, 0.0, 65535.0),
            (150.0, -3.0, 0.0, 65535.0),
            (50.0, 50.0, 0.0, 65535.0),
            (1.0, 99.0, 1.0, 0.0),
            (1.0, 99.0, f32::NAN, 1.0),
        ] {
            assert!(check_stretch(lo, hi, t_min, t_max).is_err(), "{lo} {hi} {t_min} {t_max}");
            let s = array![[[1.0, 5.0]], [[3.0, 7.0]]];
            assert!(stack_percentile_normalize(s.clone(), lo, hi, t_min, t_max).is_err());
            assert!(percentile_normalize(s.clone(), lo, hi, t_min, t_max).is_err());
        }
        let err = check_stretch(150.0, -3.0, 0.0, 1.0).expect_err("out of range");
        assert_eq!(err.to_string(), "low_percentile must be a finite number in 0..=100, got 150");
    }

    #[test]
    fn strided_stacks_are_stretched_like_contiguous_ones() {
        // Planes stored transposed (rows strided) and planes with their rows reversed (rows contiguous, planes
        // not) go down the row-by-row path; each must equal the contiguous result.
        let data: Vec<f32> = (0..2 * 5 * 7).map(|i| ((i * 37) % 101) as f32).collect();
        let plain = Array3::from_shape_vec((2, 5, 7), data).expect("shape");
        let transposed =
            plain.clone().permuted_axes([0, 2, 1]).as_standard_layout().to_owned().permuted_axes([0, 2, 1]);
        assert!(transposed.index_axis(Axis(0), 0).as_slice().is_none() && transposed == plain);
        let mut reversed = plain.clone();
        reversed.invert_axis(Axis(1));
        for normalize in [percentile_normalize, stack_percentile_normalize] {
            let want = normalize(plain.clone(), 2.0, 98.0, 10.0, 1000.0).expect("valid");
            assert_eq!(normalize(transposed.clone(), 2.0, 98.0, 10.0, 1000.0).expect("valid"), want);
            let mut back = normalize(reversed.clone(), 2.0, 98.0, 10.0, 1000.0).expect("valid");
            back.invert_axis(Axis(1));
            assert_eq!(back, want);
        }
    }

    #[test]
    fn flat_planes_do_not_divide_by_zero() {
        let out = percentile_normalize(Array3::from_elem((1, 2, 2), 7.0), 1.0, 99.0, 0.0, 65535.0).expect("valid");
        assert!(out.iter().all(|&v| v == 0.0));
    }
}
