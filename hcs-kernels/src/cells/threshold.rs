//! Global thresholds with scikit-image's definitions: `threshold_otsu(nbins=256)` and
//! `threshold_li` (iterative minimum cross-entropy).

/// Otsu's threshold: the centre of the 256-bin histogram bin that maximizes the between-class
/// variance. `None` for an empty or constant image.
pub fn otsu(values: &[f64]) -> Option<f64> {
    let (lo, hi) = min_max(values)?;
    if lo == hi {
        return None;
    }
    const BINS: usize = 256;
    let mut hist = [0f64; BINS];
    let width = (hi - lo) / BINS as f64;
    for &v in values {
        let b = (((v - lo) / (hi - lo)) * BINS as f64) as usize;
        hist[b.min(BINS - 1)] += 1.0;
    }
    let centres: Vec<f64> = (0..BINS).map(|i| lo + width * (i as f64 + 0.5)).collect();
    // Class weights and means for every split "bins 0..=i | i+1..", as skimage computes them.
    let mut w1 = [0f64; BINS];
    let mut m1 = [0f64; BINS];
    let (mut cw, mut cs) = (0.0, 0.0);
    for i in 0..BINS {
        cw += hist[i];
        cs += hist[i] * centres[i];
        w1[i] = cw;
        m1[i] = if cw > 0.0 { cs / cw } else { 0.0 };
    }
    let mut w2 = [0f64; BINS];
    let mut m2 = [0f64; BINS];
    let (mut cw, mut cs) = (0.0, 0.0);
    for i in (0..BINS).rev() {
        cw += hist[i];
        cs += hist[i] * centres[i];
        w2[i] = cw;
        m2[i] = if cw > 0.0 { cs / cw } else { 0.0 };
    }
    let mut best = (f64::NEG_INFINITY, 0);
    for i in 0..BINS - 1 {
        let var = w1[i] * w2[i + 1] * (m1[i] - m2[i + 1]).powi(2);
        if var > best.0 {
            best = (var, i);
        }
    }
    Some(centres[best.1])
}

/// Li's minimum cross-entropy threshold, iterated from the mean to a tolerance of half the
/// smallest gap between distinct values. `None` for an empty or constant image.
pub fn li(values: &[f64]) -> Option<f64> {
    let (lo, hi) = min_max(values)?;
    if lo == hi {
        return None;
    }
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted.dedup();
    let tolerance = sorted.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min) / 2.0;
    let shifted: Vec<f64> = values.iter().map(|v| v - lo).collect();
    let mut next = shifted.iter().sum::<f64>() / shifted.len() as f64;
    let mut current = -2.0 * tolerance;
    while (next - current).abs() > tolerance {
        current = next;
        let (mut fs, mut fn_, mut bs, mut bn) = (0.0, 0usize, 0.0, 0usize);
        for &v in &shifted {
            if v > current {
                fs += v;
                fn_ += 1;
            } else {
                bs += v;
                bn += 1;
            }
        }
        if fn_ == 0 || bn == 0 {
            break;
        }
        let (mean_fore, mean_back) = (fs / fn_ as f64, bs / bn as f64);
        if mean_back == 0.0 {
            break;
        }
        next = (mean_back - mean_fore) / (mean_back.ln() - mean_fore.ln());
    }
    Some(next + lo)
}

fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let first = *values.first()?;
    Some(values.iter().fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_thresholds_split_two_separated_populations() {
        let mut v: Vec<f64> = (0..500).map(|i| 10.0 + f64::from(i % 7)).collect();
        v.extend((0..200).map(|i| 100.0 + f64::from(i % 5)));
        for t in [otsu(&v), li(&v)] {
            let t = t.expect("two populations");
            assert!(t > 16.0 && t < 100.0, "{t}");
        }
        assert_eq!(otsu(&[3.0; 10]), None);
        assert_eq!(li(&[]), None);
    }
}
