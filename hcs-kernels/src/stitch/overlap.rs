//! The overlap of neighbouring tiles estimated from their content, for plates whose metadata
//! does not say it: every neighbour pair is searched over the whole range of overlaps (3–45 %)
//! and a few pixels of stage error at a coarse resolution, by normalized cross-correlation, and
//! the offset most pairs agree on is the nominal step.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView2, Axis, s};
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
    let scale = 1.0 / (f * f) as f32;
    let small = block_sums(t, f).mapv_into(|v| v * scale);
    gaussian_2d(small.view(), 0.7) - gaussian_2d(small.view(), 3.0)
}

/// The sum of every `f × f` block of `t` (whole blocks only), each exactly what ndarray's `sum`
/// of the block's view gives: from 0, each of its rows' sums added in order, a row's sum taken
/// in eight lanes as [`lanes_sum`] does. With contiguous rows the sums are taken a tile row at a
/// time, all of the row's blocks together (a view's `sum` per block cost four times as much:
/// 4 % of a well's tile positions).
fn block_sums(t: ArrayView2<'_, f32>, f: usize) -> Array2<f32> {
    let (h, w) = t.dim();
    let (ch, cw) = (h / f, w / f);
    // Block by block through each block's view: rows that are not contiguous, or 1 × 1 blocks.
    let by_views =
        || Array2::from_shape_fn((ch, cw), |(y, x)| t.slice(s![y * f..(y + 1) * f, x * f..(x + 1) * f]).sum());
    if f < 2 {
        return by_views();
    }
    let mut sums = Array2::<f32>::zeros((ch, cw));
    for (cy, mut acc) in sums.outer_iter_mut().enumerate() {
        for y in cy * f..(cy + 1) * f {
            let row = t.row(y);
            let Some(row) = row.as_slice() else { return by_views() };
            for (a, block) in acc.iter_mut().zip(row.chunks_exact(f)) {
                *a += lanes_sum(block);
            }
        }
    }
    sums
}

/// The sum of `xs` as ndarray sums a contiguous slice (`numeric_util::unrolled_fold`): eight
/// lanes from 0 over the whole chunks of eight, the lanes added in pairs (0 + 4, 1 + 5, 2 + 6,
/// 3 + 7) to 0 one pair after another, then the remaining samples in order.
fn lanes_sum(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let mut acc = 0.0f32;
    for i in 0..4 {
        acc += lanes[i] + lanes[i + 4];
    }
    rest.iter().fold(acc, |acc, &v| acc + v)
}

/// Coarse pixels left out along every tile border (the Gaussians reflect there).
const EDGE: usize = 1;

/// Best offset of `b`'s origin from `a`'s (right neighbour when `horizontal`, else below) over
/// the searched range, with its NCC (the first in the search order among equals).
fn search(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, horizontal: bool) -> (f64, f64, f64) {
    let (h, w) = a.dim();
    let along = if horizontal { w } else { h } as f64;
    let across = if horizontal { h } else { w } as f64;
    let lo = (along * (1.0 - OVERLAP_RANGE.1)).floor() as isize;
    // Leave at least 3 coarse pixels of overlap inside the borders.
    let hi = ((along * (1.0 - OVERLAP_RANGE.0)).ceil() as isize).min(along as isize - 3 - 2 * EDGE as isize);
    let cross = (across * CROSS_RANGE).ceil() as isize + 1;
    let (mains, sides): (Vec<isize>, Vec<isize>) = ((lo..=hi).collect(), (-cross..=cross).collect());
    // Offsets of one dx overlap over rows of the same length, so they are scored together:
    // a row of dy's for each main offset of a horizontal pair, a column of main offsets for
    // each side offset of a vertical pair. `scores[m][s]` = the NCC at main `m`, side `s`.
    let mut scores = vec![vec![f64::NEG_INFINITY; sides.len()]; mains.len()];
    if horizontal {
        for (m, &dx) in mains.iter().enumerate() {
            scores[m] = ncc_at_dys(a, b, dx, &sides);
        }
    } else {
        for (k, &dx) in sides.iter().enumerate() {
            for (m, v) in ncc_at_dys(a, b, dx, &mains).into_iter().enumerate() {
                scores[m][k] = v;
            }
        }
    }
    let mut best = (0.0, 0.0, f64::NEG_INFINITY);
    for (m, &main) in mains.iter().enumerate() {
        for (k, &side) in sides.iter().enumerate() {
            let (dx, dy) = if horizontal { (main, side) } else { (side, main) };
            if scores[m][k] > best.2 {
                best = (dx as f64, dy as f64, scores[m][k]);
            }
        }
    }
    best
}

/// Offsets scored side by side in [`ncc_at_dys`].
const SIDE_BY_SIDE: usize = 4;

/// The NCC of `a` and `b` over their overlap (every other row of it, inside [`EDGE`]) when `b`'s
/// origin is at `(dx, dy)` from `a`'s, for every `dy` of `dys`; `-inf` where the overlap is
/// under 3 × 3. Each offset sums its rows in f32 and the rows' sums in f64, in order, as scoring
/// it alone would (the tests compare with the one-at-a-time scoring these replaced, bit for
/// bit), but [`SIDE_BY_SIDE`] offsets take their rows together, so their sums are independent
/// chains of adds instead of one chain waiting on each add.
fn ncc_at_dys(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, dx: isize, dys: &[isize]) -> Vec<f64> {
    let mut scores = Vec::with_capacity(dys.len());
    for group in dys.chunks(SIDE_BY_SIDE) {
        let overlaps: Vec<Option<Overlap<'_>>> = group.iter().map(|&dy| Overlap::new(a, b, dx, dy)).collect();
        let [Some(p), Some(q), Some(r), Some(t)] = &overlaps[..] else {
            scores.extend(overlaps.iter().map(|o| o.as_ref().map_or(f64::NEG_INFINITY, Overlap::ncc_alone)));
            continue;
        };
        let mut sums = [Sums::default(); SIDE_BY_SIDE];
        let shared = [p, q, r, t].iter().map(|o| o.rows()).min().unwrap_or(0);
        for i in 0..shared {
            let pairs = [p.row_pair(i), q.row_pair(i), r.row_pair(i), t.row_pair(i)];
            let width = p.width();
            let rows: [(&[f32], &[f32]); SIDE_BY_SIDE] =
                std::array::from_fn(|k| (&pairs[k].0[..width], &pairs[k].1[..width]));
            // `lanes[j][k]`: sum `j` of offset `k`.
            let mut lanes = [[0f32; SIDE_BY_SIDE]; 5];
            for x in 0..width {
                let u: [f32; SIDE_BY_SIDE] = std::array::from_fn(|k| rows[k].0[x]);
                let v: [f32; SIDE_BY_SIDE] = std::array::from_fn(|k| rows[k].1[x]);
                for k in 0..SIDE_BY_SIDE {
                    lanes[0][k] += u[k];
                    lanes[1][k] += v[k];
                    lanes[2][k] += u[k] * u[k];
                    lanes[3][k] += v[k] * v[k];
                    lanes[4][k] += u[k] * v[k];
                }
            }
            for (k, s) in sums.iter_mut().enumerate() {
                s.add_row(std::array::from_fn(|j| lanes[j][k]));
            }
        }
        for (o, mut s) in [p, q, r, t].into_iter().zip(sums) {
            o.add_rows(shared, &mut s);
            scores.push(s.ncc(o.rows() * o.width()));
        }
    }
    scores
}

/// The rows of `a` and `b` summed at one offset.
struct Overlap<'t> {
    a: ArrayView2<'t, f32>,
    b: ArrayView2<'t, f32>,
}

impl<'t> Overlap<'t> {
    /// `None` where the overlap (inside [`EDGE`]) is under 3 × 3.
    fn new(a: ArrayView2<'t, f32>, b: ArrayView2<'t, f32>, dx: isize, dy: isize) -> Option<Self> {
        let (h, w) = (a.dim().0 as isize, a.dim().1 as isize);
        let e = EDGE as isize;
        let (y0, y1) = (e.max(dy + e), (h - e).min(dy + h - e));
        let (x0, x1) = (e.max(dx + e), (w - e).min(dx + w - e));
        if y1 - y0 < 3 || x1 - x0 < 3 {
            return None;
        }
        // Every other row: the coarse offset only has to be right to a coarse pixel or two.
        Some(Overlap {
            a: a.slice_move(s![y0..y1;2, x0..x1]),
            b: b.slice_move(s![y0 - dy..y1 - dy;2, x0 - dx..x1 - dx]),
        })
    }

    fn rows(&self) -> usize {
        self.a.nrows()
    }

    fn width(&self) -> usize {
        self.a.ncols()
    }

    /// Row `i` of both (copied where not contiguous).
    fn row_pair(&self, i: usize) -> (Cow<'t, [f32]>, Cow<'t, [f32]>) {
        let row = |v: ArrayView2<'t, f32>| {
            let r = v.index_axis_move(Axis(0), i);
            r.to_slice().map_or_else(|| Cow::Owned(r.to_vec()), Cow::Borrowed)
        };
        (row(self.a), row(self.b))
    }

    /// Add the sums of rows `from..` to `sums`, one row after the other.
    fn add_rows(&self, from: usize, sums: &mut Sums) {
        for i in from..self.rows() {
            let (ra, rb) = self.row_pair(i);
            sums.add_row(row_sums(&ra, &rb));
        }
    }

    /// The NCC of this overlap alone.
    fn ncc_alone(&self) -> f64 {
        let mut s = Sums::default();
        self.add_rows(0, &mut s);
        s.ncc(self.rows() * self.width())
    }
}

/// Σa, Σb, Σa², Σb², Σab of one row pair (f32, in order).
fn row_sums(ra: &[f32], rb: &[f32]) -> [f32; 5] {
    let mut l = [0f32; 5];
    for (&u, &v) in ra.iter().zip(rb) {
        l[0] += u;
        l[1] += v;
        l[2] += u * u;
        l[3] += v * v;
        l[4] += u * v;
    }
    l
}

/// The sums of an overlap's rows (f64).
#[derive(Clone, Copy, Default)]
struct Sums([f64; 5]);

impl Sums {
    fn add_row(&mut self, row: [f32; 5]) {
        self.0.iter_mut().zip(row).for_each(|(s, r)| *s += f64::from(r));
    }

    /// The NCC of `n` samples with these sums.
    fn ncc(&self, n: usize) -> f64 {
        let [sa, sb, saa, sbb, sab] = self.0;
        let n = n as f64;
        let (va, vb) = (saa - sa * sa / n, sbb - sb * sb / n);
        if va <= 0.0 || vb <= 0.0 { 0.0 } else { (sab - sa * sb / n) / (va * vb).sqrt() }
    }
}

/// NCC of `a` and `b` over their overlap when `b`'s origin is at `(dx, dy)` from `a`'s, on every
/// other row of it: the one-offset-at-a-time scoring [`ncc_at_dys`] replaced, kept as the
/// reference its test compares with.
#[cfg(test)]
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
    fn block_sums_equal_the_sum_of_each_blocks_view_bit_for_bit() {
        use ndarray::{Array2, s};
        let t = Array2::from_shape_fn((131, 97), |(y, x)| match (y * 37 + x * 11) % 53 {
            0 => -0.0,
            1 => 1.0e-7,
            k => ((y * 7919 + x * 104_729 + k) % 65_536) as f32 * 0.37 - 2000.0,
        });
        let transposed = t.t();
        for view in [t.view(), t.slice(s![3.., 5..]), transposed] {
            for f in [1, 2, 3, 7, 8, 9, 16, 17, 40] {
                let (h, w) = view.dim();
                let want = Array2::from_shape_fn((h / f, w / f), |(y, x)| {
                    view.slice(s![y * f..(y + 1) * f, x * f..(x + 1) * f]).sum()
                });
                let got = block_sums(view, f);
                assert_eq!(got.dim(), want.dim(), "f = {f}");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.to_bits(), w.to_bits(), "f = {f}: {g} against {w}");
                }
            }
        }
        // A tile with no rows, or fewer than a block: no blocks, no panic.
        assert_eq!(block_sums(t.slice(s![..0, ..]), 8).dim(), (0, 12));
        assert_eq!(block_sums(t.slice(s![..5, ..]), 8).dim(), (0, 12));
    }

    #[test]
    fn offsets_scored_side_by_side_equal_each_scored_alone_bit_for_bit() {
        let a = Array2::from_shape_fn((37, 45), |(y, x)| ((y * 977 + x * 7919) % 1013) as f32 / 7.0 - 60.0);
        let b = Array2::from_shape_fn((37, 45), |(y, x)| ((y * 613 + x * 4451) % 997) as f32 / 5.0 - 90.0);
        // Runs of dy's of every length modulo 4, some leaving no overlap, and a strided view.
        let dys: Vec<isize> = (-36..=36).collect();
        for (a, b) in [(a.view(), b.view()), (a.slice(s![.., ..;2]), b.slice(s![.., ..;2]))] {
            for dx in [-40, -21, -3, 0, 2, 17, 19, 40, 44] {
                for n in [1, 2, 3, 5, 7, dys.len()] {
                    let together = ncc_at_dys(a, b, dx, &dys[..n]);
                    let alone: Vec<f64> = dys[..n].iter().map(|&dy| ncc_at(a, b, dx, dy)).collect();
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&together), bits(&alone), "dx {dx}, {n} offsets");
                }
            }
        }
    }

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
