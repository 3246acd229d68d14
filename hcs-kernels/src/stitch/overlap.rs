//! The overlap of neighbouring tiles estimated from their content, for plates whose metadata
//! does not say it: every neighbour pair is searched over the whole range of overlaps (3–45 %)
//! and a few pixels of stage error at a coarse resolution, by normalized cross-correlation, and
//! the offset most pairs agree on is the nominal step.

use ndarray::{Array2, ArrayView2, s};
use rayon::prelude::*;

use crate::gaussian::gaussian_2d;

/// Smallest and largest overlap searched (fractions of the tile).
pub(crate) const OVERLAP_RANGE: (f64, f64) = (0.03, 0.45);

/// Stage error searched across the pair (fraction of the tile side; 5 % of a 1024 px tile is
/// ±51 px).
const CROSS_RANGE: f64 = 0.05;

/// Coarse tiles are about this many pixels on their shorter side: a 5 % overlap is still 6
/// coarse pixels wide, and a whole well's search takes milliseconds.
const COARSE_SIDE: usize = 120;

/// Pairs whose coarse offsets lie within this fraction of the coarse tile side (at least 2
/// coarse pixels) of each other agree: stage error moves each pair a little.
const AGREE: f64 = 0.03;

/// The nominal step found for one direction of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    /// `b`'s origin relative to `a`'s, full-resolution pixels.
    pub dx: f64,
    /// Same, y.
    pub dy: f64,
    /// Pairs that agree with the step, and pairs searched.
    pub agreeing: usize,
    /// Pairs searched.
    pub pairs: usize,
}

/// Steps of the horizontal and vertical neighbours (`None` where the grid has no such pairs, or
/// where no two pairs agree: see [`consensus`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Estimate {
    /// Right neighbours.
    pub horizontal: Option<Step>,
    /// Neighbours below.
    pub vertical: Option<Step>,
}

/// Estimate the steps of a `(rows, cols)` grid of `tiles` (site order, row-major).
pub(crate) fn estimate(tiles: &[ArrayView2<'_, f32>], (rows, cols): (usize, usize)) -> Estimate {
    let Some(first) = tiles.first() else { return Estimate { horizontal: None, vertical: None } };
    let (h, w) = first.dim();
    let f = (h.min(w) / COARSE_SIDE).max(1);
    let coarse: Vec<Array2<f32>> = tiles.par_iter().map(|t| whiten_coarse(*t, f)).collect();
    let pairs = neighbour_pairs(rows, cols);
    let found: Vec<(bool, f64, f64, f64)> = pairs
        .par_iter()
        .map(|&(a, b, horizontal)| {
            let (dx, dy, ncc) = search(coarse[a].view(), coarse[b].view(), horizontal);
            (horizontal, dx, dy, ncc)
        })
        .collect();
    let direction = |horizontal: bool| {
        let mine: Vec<(f64, f64, f64)> =
            found.iter().filter(|p| p.0 == horizontal).map(|&(_, dx, dy, ncc)| (dx, dy, ncc)).collect();
        let agree = (AGREE * (h.min(w) / f) as f64).max(2.0);
        consensus(&mine, agree).map(|(dx, dy, agreeing)| Step {
            dx: dx * f as f64,
            dy: dy * f as f64,
            agreeing,
            pairs: mine.len(),
        })
    };
    Estimate { horizontal: direction(true), vertical: direction(false) }
}

/// Every neighbour pair of a `(rows, cols)` grid (site order, row-major): `(a, b, horizontal)`
/// with `b` right of `a` when `horizontal`, else below it.
pub(crate) fn neighbour_pairs(rows: usize, cols: usize) -> Vec<(usize, usize, bool)> {
    let mut pairs = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            if c + 1 < cols {
                pairs.push((i, i + 1, true));
            }
            if r + 1 < rows {
                pairs.push((i, i + cols, false));
            }
        }
    }
    pairs
}

/// Block-average by `f`, then a difference of Gaussians: cell-scale structure without the
/// illumination falloff every tile shares.
fn whiten_coarse(t: ArrayView2<'_, f32>, f: usize) -> Array2<f32> {
    let (h, w) = t.dim();
    let (ch, cw) = (h / f, w / f);
    let scale = 1.0 / (f * f) as f32;
    let small =
        Array2::from_shape_fn((ch, cw), |(y, x)| t.slice(s![y * f..(y + 1) * f, x * f..(x + 1) * f]).sum() * scale);
    gaussian_2d(small.view(), 0.7) - gaussian_2d(small.view(), 3.0)
}

/// Coarse pixels left out along every tile border (the Gaussians reflect there).
const EDGE: usize = 1;

/// Best offset of `b`'s origin from `a`'s (right neighbour when `horizontal`, else below) over
/// the searched range, with its NCC.
fn search(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, horizontal: bool) -> (f64, f64, f64) {
    let (h, w) = a.dim();
    let along = if horizontal { w } else { h } as f64;
    let across = if horizontal { h } else { w } as f64;
    let lo = (along * (1.0 - OVERLAP_RANGE.1)).floor() as isize;
    // Leave at least 3 coarse pixels of overlap inside the borders.
    let hi = ((along * (1.0 - OVERLAP_RANGE.0)).ceil() as isize).min(along as isize - 3 - 2 * EDGE as isize);
    let cross = (across * CROSS_RANGE).ceil() as isize + 1;
    let mut best = (0.0, 0.0, f64::NEG_INFINITY);
    for main in lo..=hi {
        for side in -cross..=cross {
            let (dx, dy) = if horizontal { (main, side) } else { (side, main) };
            let v = ncc_at(a, b, dx, dy);
            if v > best.2 {
                best = (dx as f64, dy as f64, v);
            }
        }
    }
    best
}

/// NCC of `a` and `b` over their overlap when `b`'s origin is at `(dx, dy)` from `a`'s, on every
/// other row of it (the coarse offset only has to be right to a coarse pixel or two).
fn ncc_at(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, dx: isize, dy: isize) -> f64 {
    let (h, w) = (a.dim().0 as isize, a.dim().1 as isize);
    let e = EDGE as isize;
    let (y0, y1) = (e.max(dy + e), (h - e).min(dy + h - e));
    let (x0, x1) = (e.max(dx + e), (w - e).min(dx + w - e));
    if y1 - y0 < 3 || x1 - x0 < 3 {
        return f64::NEG_INFINITY;
    }
    let av = a.slice(s![y0..y1, x0..x1]);
    let bv = b.slice(s![y0 - dy..y1 - dy, x0 - dx..x1 - dx]);
    let (mut sa, mut sb, mut saa, mut sbb, mut sab) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut rows = 0usize;
    for (ra, rb) in av.rows().into_iter().zip(bv.rows()).step_by(2) {
        rows += 1;
        let (mut ta, mut tb, mut taa, mut tbb, mut tab) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for (&x, &y) in ra.iter().zip(rb.iter()) {
            ta += x;
            tb += y;
            taa += x * x;
            tbb += y * y;
            tab += x * y;
        }
        sa += f64::from(ta);
        sb += f64::from(tb);
        saa += f64::from(taa);
        sbb += f64::from(tbb);
        sab += f64::from(tab);
    }
    let n = (rows * (x1 - x0) as usize) as f64;
    let (va, vb) = (saa - sa * sa / n, sbb - sb * sb / n);
    if va <= 0.0 || vb <= 0.0 { 0.0 } else { (sab - sa * sb / n) / (va * vb).sqrt() }
}

/// The offset the pairs agree on: the pair with the most others within `agree` coarse pixels
/// (ties to the higher NCC), averaged with those neighbours. `None` when there are no pairs, or
/// several pairs and no two agree (nothing in the tiles to go by).
fn consensus(pairs: &[(f64, f64, f64)], agree: f64) -> Option<(f64, f64, usize)> {
    let near = |p: &(f64, f64, f64), q: &(f64, f64, f64)| (p.0 - q.0).abs() <= agree && (p.1 - q.1).abs() <= agree;
    let best = pairs.iter().filter(|p| p.2.is_finite()).max_by(|p, q| {
        let (np, nq) = (pairs.iter().filter(|o| near(p, o)).count(), pairs.iter().filter(|o| near(q, o)).count());
        np.cmp(&nq).then(p.2.total_cmp(&q.2))
    })?;
    let agreeing: Vec<&(f64, f64, f64)> = pairs.iter().filter(|o| near(best, o)).collect();
    if pairs.len() > 1 && agreeing.len() < 2 {
        return None;
    }
    let k = agreeing.len() as f64;
    let (dx, dy) = agreeing.iter().fold((0.0, 0.0), |acc, p| (acc.0 + p.0 / k, acc.1 + p.1 / k));
    Some((dx, dy, agreeing.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consensus_takes_the_offset_most_pairs_share() {
        let pairs = [(90.0, 1.0, 0.8), (91.0, 0.0, 0.7), (60.0, 5.0, 0.9), (90.0, -1.0, 0.5)];
        let (dx, dy, n) = consensus(&pairs, 2.0).expect("agree");
        assert_eq!(n, 3);
        assert!((dx - 90.333).abs() < 0.01 && dy.abs() < 0.01, "{dx} {dy}");
    }

    #[test]
    fn consensus_refuses_pairs_that_all_disagree() {
        assert_eq!(consensus(&[(90.0, 1.0, 0.8), (60.0, 5.0, 0.9)], 2.0), None);
        assert!(consensus(&[(90.0, 1.0, 0.8)], 2.0).is_some(), "a single pair is its own consensus");
        assert_eq!(consensus(&[], 2.0), None);
    }
}
