//! Boundary handling shared by the filters: SciPy's `reflect` mode (half-sample symmetric,
//! `d c b a | a b c d | d c b a`), which scikit-image uses for its filters and morphology.

/// Index `i` (possibly outside `0..n`) reflected into `0..n`.
#[inline]
pub fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let period = 2 * n;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - 1 - m;
    }
    m as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_scipy_half_sample_symmetric() {
        let idx: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(idx, [3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
    }
}
