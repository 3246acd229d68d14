//! Tile positions from the overlaps of neighbouring tiles, in the manner of Ashlar's edge
//! aligner: register every neighbour pair by phase correlation on the nominal overlap strips,
//! judge each edge by the normalized cross-correlation of the aligned overlap against a
//! permutation threshold (what unrelated strips score), keep the best edges in an
//! error-weighted spanning tree, place the tiles along it, and place tiles it cannot reach with a
//! linear model fitted to the reached ones. Every edge's quality and fate is reported in the
//! special output — nothing silently falls back to the grid.

use std::borrow::Cow;
use std::sync::OnceLock;

use hcs_core::{MaterializeResult, MaterializeTarget, NdarrayStack};
use hcs_macros::memory;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::phase::{HalfSpectrum, correlate_spectra, spectrum};
use crate::error::KernelError;

/// One registered neighbour pair.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeReport {
    /// First tile (0-based site index).
    pub a: usize,
    /// Second tile (right of or below `a`).
    pub b: usize,
    /// Measured offset of `b`'s origin from `a`'s, x (pixels).
    pub dx: f64,
    /// Measured offset, y.
    pub dy: f64,
    /// Normalized cross-correlation of the aligned overlap (1 = identical).
    pub ncc: f64,
    /// Whether the edge was used to place tiles.
    pub accepted: bool,
    /// Why it was rejected, if it was.
    pub rejected_because: Option<String>,
}

/// Tile positions and how they were found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TilePositions {
    /// Grid `(rows, cols)`.
    pub grid: (u32, u32),
    /// `(x, y)` origin of each tile in site order, in pixels; the smallest x and y are 0.
    pub positions: Vec<(f64, f64)>,
    /// Every neighbour pair.
    pub edges: Vec<EdgeReport>,
    /// NCC an edge had to exceed (the permutation threshold).
    pub ncc_threshold: f64,
    /// Tiles placed by the linear model because no accepted edge reached them.
    pub model_placed: Vec<usize>,
    /// Nominal overlap `(x, y)` of neighbouring tiles (fractions of the tile) the edges were
    /// registered and judged with.
    #[serde(default)]
    pub overlap: (f64, f64),
    /// Where [`Self::overlap`] came from: the `overlap_ratio` parameter, an estimate from the
    /// tiles (with how many neighbour pairs agreed), or an assumption when neither could say.
    #[serde(default)]
    pub overlap_source: String,
}

// Offsets in the pixels of the tiles they were found on: not for tiles of another pixel size.
hcs_core::pixel_valued!(TilePositions);

/// Write positions as CSV (`site,row,col,x,y`), the edge report as `<stem>_edges.csv` and the
/// nominal overlap as `<stem>_overlap.csv` (`axis,overlap,pixels_hint,source`).
pub fn write_positions_csv(p: &TilePositions, target: &MaterializeTarget) -> MaterializeResult {
    let cols = p.grid.1.max(1) as usize;
    let positions = p
        .positions
        .iter()
        .enumerate()
        .map(|(i, (x, y))| (i + 1, i / cols, i % cols, format!("{x:.3}"), format!("{y:.3}")));
    let csv = crate::csv_table::csv_bytes(&["site", "row", "col", "x", "y"], positions)?;
    let edges = p.edges.iter().map(|e| {
        (
            e.a + 1,
            e.b + 1,
            format!("{:.3}", e.dx),
            format!("{:.3}", e.dy),
            format!("{:.4}", e.ncc),
            e.accepted,
            e.rejected_because.as_deref().unwrap_or(""),
        )
    });
    let edges =
        crate::csv_table::csv_bytes(&["site_a", "site_b", "dx", "dy", "ncc", "accepted", "rejected_because"], edges)?;
    let overlap =
        [("x", p.overlap.0), ("y", p.overlap.1)].map(|(axis, o)| (axis, format!("{o:.4}"), &p.overlap_source));
    let overlap = crate::csv_table::csv_bytes(&["axis", "overlap", "source"], overlap)?;
    Ok(vec![target.write(".csv", &csv)?, target.write("_edges.csv", &edges)?, target.write("_overlap.csv", &overlap)?])
}

/// Σab of two equal-length rows in f32 lanes: four sets of eight (vectorizable, and four
/// independent chains of adds instead of one, so the loop is not bound by the latency of an
/// add), carried across rows so short rows (the tall, narrow overlaps of horizontal pairs) cost
/// no per-row fold; folded into f64 every [`LANE_FOLD`] chunks, so no lane sums more than a
/// few hundred products.
#[derive(Default)]
struct DotLanes {
    acc: [[f32; 8]; 4],
    chunks: usize,
    total: f64,
}

/// How many 8-sample chunks the f32 lanes take before they are folded into the f64 total.
const LANE_FOLD: usize = 256;

impl DotLanes {
    fn add(&mut self, a: &[f32], b: &[f32]) {
        self.chunks += dot_chunks(&mut self.acc, a, b);
        let (ra, rb) = (&a[a.len() / 8 * 8..], &b[b.len() / 8 * 8..]);
        self.total += ra.iter().zip(rb).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>();
        if self.chunks >= LANE_FOLD {
            self.fold();
        }
    }

    fn fold(&mut self) {
        self.total += self.acc.iter().flatten().map(|&v| f64::from(v)).sum::<f64>();
        self.acc = [[0.0; 8]; 4];
        self.chunks = 0;
    }
}

/// Adds the products of `a` and `b`'s whole 8-sample chunks into the lanes `acc`: chunk `4k + j`
/// into set `j` (the last one to three chunks into sets `0..`); returns how many chunks.
/// Compiled for AVX2 and AVX-512 too and picked at run time (one 8-lane multiply and add per chunk instead
/// of two 4-lane ones); every path adds the same products in the same order, so the result is
/// the same.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn dot_chunks(acc: &mut [[f32; 8]; 4], a: &[f32], b: &[f32]) -> usize {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for (j, set) in acc.iter_mut().enumerate() {
            for l in 0..8 {
                set[l] += x[8 * j + l] * y[8 * j + l];
            }
        }
    }
    for ((x, y), set) in ra.chunks_exact(8).zip(rb.chunks_exact(8)).zip(acc.iter_mut()) {
        for l in 0..8 {
            set[l] += x[l] * y[l];
        }
    }
    len / 8
}

/// Pixels this close to a tile's border are left out of edge scores: whitening mirrors structure
/// there (reflected boundary), which would bias the alignment.
const BORDER: isize = 3;

/// A rectangle `[y0, y1) × [x0, x1)` of tile pixels.
#[derive(Clone, Copy)]
struct Rect {
    y0: isize,
    y1: isize,
    x0: isize,
    x1: isize,
}

impl Rect {
    /// The part of tile `a` that `b` overlaps when `b`'s origin is at `(ix, iy)` from `a`'s,
    /// less [`BORDER`] pixels along both tiles' borders; `None` when that is under 4 × 4.
    fn overlap(h: isize, w: isize, ix: isize, iy: isize) -> Option<Rect> {
        let r = Rect {
            y0: BORDER.max(iy + BORDER),
            y1: (h - BORDER).min(iy + h - BORDER),
            x0: BORDER.max(ix + BORDER),
            x1: (w - BORDER).min(ix + w - BORDER),
        };
        (r.x1 - r.x0 >= 4 && r.y1 - r.y0 >= 4).then_some(r)
    }

    fn shifted(self, ix: isize, iy: isize) -> Rect {
        Rect { y0: self.y0 - iy, y1: self.y1 - iy, x0: self.x0 - ix, x1: self.x1 - ix }
    }

    fn union(self, o: Rect) -> Rect {
        Rect { y0: self.y0.min(o.y0), y1: self.y1.max(o.y1), x0: self.x0.min(o.x0), x1: self.x1.max(o.x1) }
    }
}

/// The corners of the summed-area tables of the values and squared values over one rectangle
/// of a tile (f64): the entries at the rows and columns where the rectangles a refinement asks
/// about have their corners, so the per-tile sums of every overlap it tries cost four lookups.
/// Only those entries are kept (a few dozen rows and columns): every row still takes its running
/// sums, but no table of the whole area is written and read back.
struct Integral {
    area: Rect,
    /// The slot of each table row (`0..=height` of `area`) among the kept ones, [`NOT_KEPT`]
    /// where none.
    row_slot: Vec<usize>,
    /// The slot of each table column (`0..=width` of `area`) among the kept ones.
    col_slot: Vec<usize>,
    /// How many columns are kept.
    ncols: usize,
    /// The kept entries, row-major over the kept rows and columns.
    sum: Vec<f64>,
    sq: Vec<f64>,
}

/// A table row or column no rectangle has a corner on.
const NOT_KEPT: usize = usize::MAX;

/// Rows whose running sums [`Integral::new`] takes side by side.
const INTEGRAL_ROWS: usize = 4;

impl Integral {
    /// Entry `(y, x)` of each table (over the bounding rectangle of `rects`) is the row-`y`
    /// running sum up to `x` plus entry `(y − 1, x)`, kept where one of `rects` has a corner.
    /// The running sums of
    /// [`INTEGRAL_ROWS`] rows are taken side by side (that many independent chains of adds,
    /// where one row's chain waits on each add), then added to the kept columns' entries one row
    /// after the other: the same additions as a whole table, so the same entries.
    fn new(t: ArrayView2<'_, f32>, rects: &[Rect]) -> Self {
        let area = bounding(rects);
        let w = (area.x1 - area.x0) as usize + 1;
        let h = (area.y1 - area.y0) as usize + 1;
        let (mut row_slot, mut col_slot) = (vec![NOT_KEPT; h], vec![NOT_KEPT; w]);
        for r in rects {
            for y in [r.y0, r.y1] {
                row_slot[(y - area.y0) as usize] = 0;
            }
            for x in [r.x0, r.x1] {
                col_slot[(x - area.x0) as usize] = 0;
            }
        }
        let number = |slots: &mut [usize]| {
            let mut kept = Vec::new();
            for (i, s) in slots.iter_mut().enumerate().filter(|(_, s)| **s != NOT_KEPT) {
                *s = kept.len();
                kept.push(i);
            }
            kept
        };
        let (rows, cols) = (number(&mut row_slot), number(&mut col_slot));
        let (mut sum, mut sq) = (vec![0f64; rows.len() * cols.len()], vec![0f64; rows.len() * cols.len()]);
        // Column `c`'s running sum is taken over the row's first `c` samples; column 0 stays 0.
        let last = cols.last().copied().unwrap_or(0);
        let (mut acc_sum, mut acc_sq) = (vec![0f64; cols.len()], vec![0f64; cols.len()]);
        let mut row_sums = vec![[0f64; INTEGRAL_ROWS]; cols.len()];
        let mut row_sqs = vec![[0f64; INTEGRAL_ROWS]; cols.len()];
        let row = |y: usize| t.row(area.y0 as usize + y - 1).slice_move(s![area.x0..area.x0 + last as isize]);
        let mut first = 1;
        while first < h {
            let block: Vec<Cow<'_, [f32]>> = (first..h.min(first + INTEGRAL_ROWS))
                .map(|y| row(y).to_slice().map_or_else(|| Cow::Owned(row(y).to_vec()), Cow::Borrowed))
                .collect();
            if let [a, b, c, d] = &block[..] {
                let (mut rs, mut rq) = ([0f64; INTEGRAL_ROWS], [0f64; INTEGRAL_ROWS]);
                let mut x = 0;
                for (k, &col) in cols.iter().enumerate() {
                    while x < col {
                        for (r, v) in [a[x], b[x], c[x], d[x]].into_iter().enumerate() {
                            let v = f64::from(v);
                            rs[r] += v;
                            rq[r] += v * v;
                        }
                        x += 1;
                    }
                    (row_sums[k], row_sqs[k]) = (rs, rq);
                }
            } else {
                for (r, values) in block.iter().enumerate() {
                    let (mut rs, mut rq) = (0f64, 0f64);
                    let mut x = 0;
                    for (k, &col) in cols.iter().enumerate() {
                        for &v in &values[x..col] {
                            let v = f64::from(v);
                            rs += v;
                            rq += v * v;
                        }
                        x = col;
                        (row_sums[k][r], row_sqs[k][r]) = (rs, rq);
                    }
                }
            }
            for r in 0..block.len() {
                for k in 0..cols.len() {
                    acc_sum[k] += row_sums[k][r];
                    acc_sq[k] += row_sqs[k][r];
                }
                let slot = row_slot[first + r];
                if slot != NOT_KEPT {
                    sum[slot * cols.len()..(slot + 1) * cols.len()].copy_from_slice(&acc_sum);
                    sq[slot * cols.len()..(slot + 1) * cols.len()].copy_from_slice(&acc_sq);
                }
            }
            first += block.len();
        }
        Integral { area, row_slot, col_slot, ncols: cols.len(), sum, sq }
    }

    /// (Σv, Σv²) over `r`, one of the rectangles the table was made for.
    fn sums(&self, r: Rect) -> (f64, f64) {
        let at = |y: isize, x: isize| {
            let (row, col) = (self.row_slot[(y - self.area.y0) as usize], self.col_slot[(x - self.area.x0) as usize]);
            row * self.ncols + col
        };
        let (a, b, c, d) = (at(r.y0, r.x0), at(r.y0, r.x1), at(r.y1, r.x0), at(r.y1, r.x1));
        (self.sum[d] - self.sum[b] - self.sum[c] + self.sum[a], self.sq[d] - self.sq[b] - self.sq[c] + self.sq[a])
    }
}

/// NCCs of tiles `a` and `b` over their overlaps when `b`'s origin is at `(ix, iy)` from `a`'s,
/// for every `ix` of `ixs` (see [`Rect::overlap`]; 0 where there is none); `ia` / `ib` cover
/// every overlap the caller asks for. The overlaps of one `iy` span the same rows of `a` (and of
/// `b`): each row pair is read once for all of them, while it is in the nearest cache, instead of
/// once per offset. Each offset's sums take the same rows, in the same order, in lanes of their
/// own, so each NCC is the one its offset alone gives.
fn overlap_nccs(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    ia: &Integral,
    ib: &Integral,
    iy: isize,
    ixs: &[isize],
) -> Vec<f64> {
    let (h, w) = a.dim();
    let rects: Vec<Option<Rect>> = ixs.iter().map(|&ix| Rect::overlap(h as isize, w as isize, ix, iy)).collect();
    let mut dots: Vec<DotLanes> = ixs.iter().map(|_| DotLanes::default()).collect();
    // Every overlap at this `iy` has the same rows: `y0..y1` of `a`, `iy` less of `b`.
    if let Some(rows) = rects.iter().flatten().next() {
        for y in rows.y0..rows.y1 {
            let (ra, rb) = (a.row(y as usize), b.row((y - iy) as usize));
            let (ra, rb) = (ra.as_slice().map_or_else(|| Cow::Owned(ra.to_vec()), Cow::Borrowed), {
                rb.as_slice().map_or_else(|| Cow::Owned(rb.to_vec()), Cow::Borrowed)
            });
            for ((r, &ix), dot) in rects.iter().zip(ixs).zip(&mut dots) {
                if let Some(r) = r {
                    let (x0, x1) = (r.x0 as usize, r.x1 as usize);
                    dot.add(&ra[x0..x1], &rb[(r.x0 - ix) as usize..(r.x1 - ix) as usize]);
                }
            }
        }
    }
    rects
        .iter()
        .zip(ixs)
        .zip(dots)
        .map(|((r, &ix), mut dot)| {
            let Some(ra) = *r else { return 0.0 };
            let rb = ra.shifted(ix, iy);
            let n = ((ra.y1 - ra.y0) * (ra.x1 - ra.x0)) as f64;
            let (sa, saa) = ia.sums(ra);
            let (sb, sbb) = ib.sums(rb);
            dot.fold();
            let cov = dot.total - sa * sb / n;
            let (va, vb) = (saa - sa * sa / n, sbb - sb * sb / n);
            if va <= 0.0 || vb <= 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
        })
        .collect()
}

/// How far (pixels) the NCC refinement searches around the phase-correlation estimate.
const REFINE_RADIUS: isize = 6;

/// The overlaps of tiles `a` and `b` (both `dim`) that scoring every offset within `reach` of
/// `(icx, icy)` reads: each offset's rectangle of `a` and of `b` (offsets with no 4 × 4
/// overlap have none).
fn refine_reads(dim: (usize, usize), (icx, icy): (isize, isize), reach: isize) -> (Vec<Rect>, Vec<Rect>) {
    let (h, w) = (dim.0 as isize, dim.1 as isize);
    let tried = (-reach..=reach).flat_map(|dy| (-reach..=reach).map(move |dx| (icx + dx, icy + dy)));
    tried.filter_map(|(ix, iy)| Rect::overlap(h, w, ix, iy).map(|r| (r, r.shifted(ix, iy)))).unzip()
}

/// The bounding rectangle of `rects` (empty when there are none).
fn bounding(rects: &[Rect]) -> Rect {
    rects.iter().copied().reduce(Rect::union).unwrap_or(Rect { y0: 0, y1: 0, x0: 0, x1: 0 })
}

/// Refine an offset by maximizing the overlap NCC: integer search within ±`radius` pixels of
/// the coarse estimate (a 2-pixel lattice, then the best point's 3×3 neighbourhood), then a
/// parabola through the best value and its neighbours in x and y.
fn refine(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, ox: f64, oy: f64, radius: isize) -> (f64, f64, f64) {
    refine_to(a, b, ox, oy, radius, Precision::Subpixel)
}

/// How far [`refine_to`] goes once it has the best whole-pixel offset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Precision {
    /// The parabola's sub-pixel offset (scoring the best offset's neighbours it lacks).
    Subpixel,
    /// Stop there: the score is the same (the parabola moves the offset, not the score), for
    /// the permutation test, which reads only the score.
    ScoreOnly,
}

/// [`refine`], to `precision`: the score is the same either way.
fn refine_to(
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    ox: f64,
    oy: f64,
    radius: isize,
    precision: Precision,
) -> (f64, f64, f64) {
    let (cx, cy) = (ox.round(), oy.round());
    let (icx, icy) = (cx as isize, cy as isize);
    // Every offset tried below lies within radius + 2 (lattice, 3 × 3, parabola neighbours).
    let reach = radius + 2;
    let (rects_a, rects_b) = refine_reads(a.dim(), (icx, icy), reach);
    let (ia, ib) = (Integral::new(a, &rects_a), Integral::new(b, &rects_b));
    // Each offset is scored once: the parabola's neighbours are mostly points the 3 × 3 pass
    // already scored. The offsets of a pass that share a row are scored together
    // ([`overlap_nccs`]); each score is what scoring its offset alone gives, so the passes below
    // pick the same offsets.
    let side = 2 * reach + 1;
    let slot = |dx: isize, dy: isize| ((dy + reach) * side + dx + reach) as usize;
    let mut scored: Vec<Option<f64>> = vec![None; (side * side) as usize];
    let score_row = |scored: &mut [Option<f64>], dy: isize, dxs: &[isize]| {
        let todo: Vec<isize> = dxs.iter().copied().filter(|&dx| scored[slot(dx, dy)].is_none()).collect();
        let ixs: Vec<isize> = todo.iter().map(|dx| icx + dx).collect();
        for (&dx, v) in todo.iter().zip(overlap_nccs(a, b, &ia, &ib, icy + dy, &ixs)) {
            scored[slot(dx, dy)] = Some(v);
        }
    };
    // Coarse pass on a 2-pixel lattice (the whitened NCC peak is wider than that), then the
    // full-resolution neighbourhood of the best lattice point.
    let lattice: Vec<isize> = (-radius..=radius).step_by(2).collect();
    for &dy in &lattice {
        score_row(&mut scored, dy, &lattice);
    }
    // The best score so far and its offset; the first of equal scores stays.
    let mut best = (f64::NEG_INFINITY, (0isize, 0isize));
    let better = |best: &mut (f64, (isize, isize)), v: Option<f64>, at: (isize, isize)| {
        let v = v.unwrap_or(0.0);
        if v > best.0 {
            *best = (v, at);
        }
    };
    for &dy in &lattice {
        for &dx in &lattice {
            better(&mut best, scored[slot(dx, dy)], (dx, dy));
        }
    }
    let coarse = best.1;
    let around: Vec<isize> = (coarse.0 - 1..=coarse.0 + 1).collect();
    for dy in coarse.1 - 1..=coarse.1 + 1 {
        score_row(&mut scored, dy, &around);
    }
    for dy in coarse.1 - 1..=coarse.1 + 1 {
        for &dx in &around {
            if (dx, dy) != coarse {
                better(&mut best, scored[slot(dx, dy)], (dx, dy));
            }
        }
    }
    let (best, at) = best;
    if precision == Precision::ScoreOnly {
        return (cx + at.0 as f64, cy + at.1 as f64, best);
    }
    let mut score = |dx: isize, dy: isize| {
        score_row(&mut scored, dy, &[dx]);
        scored[slot(dx, dy)].unwrap_or(0.0)
    };
    let vertex = |m: f64, c: f64, p: f64| {
        let denom = m - 2.0 * c + p;
        if denom < 0.0 { (0.5 * (m - p) / denom).clamp(-0.5, 0.5) } else { 0.0 }
    };
    let fx = vertex(score(at.0 - 1, at.1), best, score(at.0 + 1, at.1));
    let fy = vertex(score(at.0, at.1 - 1), best, score(at.0, at.1 + 1));
    (cx + at.0 as f64 + fx, cy + at.1 as f64 + fy, best)
}

/// The overlap strips of every tile and their spectra, each computed the first time a pair
/// (a neighbour pair or a permutation sample) needs it. Strip `side`s: 0 right, 1 left,
/// 2 bottom, 3 top.
struct Strips<'t> {
    tiles: &'t [Array2<f32>],
    /// Nominal overlap width (horizontal pairs) and height (vertical pairs), pixels.
    ow: usize,
    oh: usize,
    spectra: Vec<OnceLock<HalfSpectrum>>,
}

impl<'t> Strips<'t> {
    fn new(tiles: &'t [Array2<f32>], (ow, oh): (usize, usize)) -> Self {
        Strips { tiles, ow, oh, spectra: (0..tiles.len() * 4).map(|_| OnceLock::new()).collect() }
    }

    fn tile(&self, i: usize) -> ArrayView2<'t, f32> {
        self.tiles[i].view()
    }

    fn spectrum(&self, tile: usize, side: usize) -> &HalfSpectrum {
        self.spectra[tile * 4 + side].get_or_init(|| {
            let t = self.tile(tile);
            let (h, w) = t.dim();
            let strip = match side {
                0 => t.slice(s![.., w - self.ow..]),
                1 => t.slice(s![.., ..self.ow]),
                2 => t.slice(s![h - self.oh.., ..]),
                _ => t.slice(s![..self.oh, ..]),
            };
            spectrum(strip)
        })
    }

    /// Register `b` (right of `a` when `horizontal`, else below) on the nominal overlap strips;
    /// returns `b`'s origin relative to `a`'s.
    fn register(&self, a: usize, b: usize, horizontal: bool, up: usize) -> (f64, f64) {
        let (h, w) = self.tiles[a].dim();
        if horizontal {
            let (dy, dx) = correlate_spectra(self.spectrum(a, 0), self.spectrum(b, 1), up);
            ((w - self.ow) as f64 - dx, -dy)
        } else {
            let (dy, dx) = correlate_spectra(self.spectrum(a, 2), self.spectrum(b, 3), up);
            (-dx, (h - self.oh) as f64 - dy)
        }
    }
}

/// Minimum spanning forest (Kruskal) over accepted edges, weighted by 1 − NCC.
fn spanning_forest(n: usize, edges: &[EdgeReport]) -> Vec<Vec<(usize, f64, f64)>> {
    let mut order: Vec<&EdgeReport> = edges.iter().filter(|e| e.accepted).collect();
    order.sort_by(|x, y| (1.0 - x.ncc).total_cmp(&(1.0 - y.ncc)));
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    let mut adj = vec![Vec::new(); n];
    for e in order {
        let (ra, rb) = (find(&mut parent, e.a), find(&mut parent, e.b));
        if ra != rb {
            parent[ra] = rb;
            adj[e.a].push((e.b, e.dx, e.dy));
            adj[e.b].push((e.a, -e.dx, -e.dy));
        }
    }
    adj
}

/// Least-squares fit of `v = c0 + c1·col + c2·row` over `samples` (col, row, v).
fn fit_plane(samples: &[(f64, f64, f64)]) -> Option<[f64; 3]> {
    let mut m = [[0.0f64; 3]; 3];
    let mut rhs = [0.0f64; 3];
    for &(c, r, v) in samples {
        let f = [1.0, c, r];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += f[i] * f[j];
            }
            rhs[i] += f[i] * v;
        }
    }
    // Cramer's rule on the 3×3 normal equations.
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&m);
    if d.abs() < 1e-9 {
        return None;
    }
    let mut out = [0.0; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut mk = m;
        for i in 0..3 {
            mk[i][k] = rhs[i];
        }
        *o = det(&mk) / d;
    }
    Some(out)
}

/// Compute tile positions of a well from its tiles (stack planes in site order, row-major over
/// `grid_dimensions` = `(rows, cols)`). The stack is returned unchanged.
///
/// The nominal overlap is, in order: `overlap_ratio` when given; else the overlap the plate's
/// stage positions give (`site_overlap`), unless the tiles refute it (fewer than half the edges
/// accepted); else an estimate from the tiles. The one used, and why, is in
/// [`TilePositions::overlap_source`].
#[memory(ndarray)]
#[hcs_macros::check(image.planes.is_none_or(|p| image.sites.is_none_or(|s| p == s)), "one call must receive exactly the well's tiles: variable_components = [\"site\"] (the default)")]
#[hcs_macros::check(overlap_ratio == 0.0 || overlap_ratio * image.height.min(image.width) as f64 >= 4.0, "the overlap must be at least 4 pixels wide (or 0: estimated from the tiles)")]
#[hcs_macros::special_inputs(grid_dimensions, site_overlap)]
#[hcs_macros::special_outputs(positions = write_positions_csv)]
#[allow(clippy::too_many_arguments)]
pub fn ashlar_compute_tile_positions(
    stack: NdarrayStack,
    grid_dimensions: &(u32, u32),
    site_overlap: &Option<(f64, f64)>,
    #[param(
        default = 0.0,
        doc = "nominal overlap between neighbouring tiles (fraction); 0 = estimate it from the tiles",
        range = 0.0..0.9
    )]
    overlap_ratio: f64,
    #[param(default = 15.0, doc = "largest accepted deviation from the nominal offset (pixels)", range = 0.0..=100000.0)]
    max_shift: f64,
    #[param(default = 0.01, doc = "false-positive rate of the permutation test", range = 0.0..=1.0)] stitch_alpha: f64,
    #[param(default = 10, doc = "sub-pixel precision 1/n of the registration", range = 1..=100)] upsample_factor: usize,
    #[param(default = 100, doc = "unrelated strip pairs registered for the threshold", range = 1..=100000)]
    permutation_samples: usize,
) -> Result<(NdarrayStack, TilePositions), KernelError> {
    let (rows, cols) = (grid_dimensions.0 as usize, grid_dimensions.1 as usize);
    let (n, h, w) = stack.dim();
    if rows.checked_mul(cols) != Some(n) || n == 0 {
        return Err(KernelError::BadInput(format!("{n} tiles do not fill a {rows}×{cols} grid")));
    }
    let estimating = overlap_ratio == 0.0;
    if !(0.0..0.9).contains(&overlap_ratio) || (!estimating && overlap_ratio * (w.min(h) as f64) < 4.0) {
        return Err(KernelError::BadParameter(format!(
            "overlap_ratio {overlap_ratio} leaves no usable overlap (accepted: 0 = estimate, or 0 < overlap_ratio < 0.9 with at least 4 pixels of overlap)"
        )));
    }
    check_settings(max_shift, stitch_alpha, upsample_factor, permutation_samples)?;
    if let Some((ox, oy)) = *site_overlap
        && !((0.0..0.9).contains(&ox) && (0.0..0.9).contains(&oy))
    {
        return Err(KernelError::BadInput(format!(
            "the plate's stage positions give a site overlap of {ox} × {oy}, outside 0 ≤ overlap < 0.9"
        )));
    }
    let estimate = || {
        let views: Vec<ArrayView2<'_, f32>> = stack.outer_iter().collect();
        Nominal::estimated(crate::stitch::overlap::estimate(&views, (rows, cols)), (h, w))
    };
    let register = |nominal: Nominal| {
        let strip_sizes = nominal.strips((h, w));
        let whitened = whiten(&stack, whitened_bands(strip_sizes));
        let strips = Strips::new(&whitened, strip_sizes);
        // The neighbours and the permutation test's pairs are independent: registered side by
        // side, so the workers that finish one part's pairs take the other's instead of waiting.
        let (mut edges, ncc_threshold) = rayon::join(
            || register_neighbours(&strips, (rows, cols), upsample_factor),
            || permutation_threshold(&strips, cols, permutation_samples, stitch_alpha),
        );
        judge_edges(&mut edges, &nominal, max_shift, ncc_threshold);
        // A stage's or an estimate's step is coarse: make it the consensus of the edges it
        // accepted, and judge again.
        let nominal = if nominal.estimated { nominal.refined(&edges) } else { nominal };
        if nominal.estimated {
            judge_edges(&mut edges, &nominal, max_shift, ncc_threshold);
        }
        (nominal, edges, ncc_threshold)
    };
    let (nominal, mut edges, ncc_threshold) = match (estimating, *site_overlap) {
        (false, _) => register(Nominal::from_ratio(overlap_ratio, (h, w))),
        (true, Some(stage)) => {
            let (nominal, edges, threshold) = register(Nominal::from_stage(stage, (h, w)));
            if borne_out(&edges) {
                (nominal, edges, threshold)
            } else {
                // One direction (or both) mostly refuted: the tiles' own estimate, if it does
                // better; else the stage's layout stands (a sparse well refutes everything).
                let accepted = |e: &[EdgeReport]| e.iter().filter(|e| e.accepted).count();
                let (mut other, other_edges, other_threshold) = register(estimate());
                let (kept, stage_accepted, n) = (accepted(&other_edges), accepted(&edges), edges.len());
                if kept > stage_accepted {
                    other.source = format!(
                        "{}; the stage positions' overlap {:.3} × {:.3} was refuted by the tiles ({stage_accepted} of {n} edges accepted, {kept} with the estimate)",
                        other.source, stage.0, stage.1
                    );
                    (other, other_edges, other_threshold)
                } else {
                    let mut nominal = nominal;
                    nominal.source = format!(
                        "{} ({stage_accepted} of {n} edges accepted; the tiles' own estimate did no better: {kept})",
                        nominal.source
                    );
                    (nominal, edges, threshold)
                }
            }
        }
        (true, None) => register(estimate()),
    };
    let (placed, components) = place_consistently(n, &mut edges);
    let (positions, model_placed) = anchor_components(&placed, &components, cols, (nominal.right.0, nominal.down.1));
    let overlap = (1.0 - nominal.right.0 / w as f64, 1.0 - nominal.down.1 / h as f64);
    Ok((
        stack,
        TilePositions {
            grid: *grid_dimensions,
            positions,
            edges,
            ncc_threshold,
            model_placed,
            overlap,
            overlap_source: nominal.source,
        },
    ))
}

/// The smallest product of 2, 3 and 5 that is at least `n`, if it is at most `limit`; else `n`.
fn smooth_up(n: usize, limit: usize) -> usize {
    let smooth = |mut k: usize| {
        for p in [2, 3, 5] {
            while k.is_multiple_of(p) {
                k /= p;
            }
        }
        k == 1
    };
    (n..=limit).find(|&k| smooth(k)).unwrap_or(n)
}

/// Overlap assumed when the tiles cannot say (no neighbour pairs agree) — reported as such.
const ASSUMED_OVERLAP: f64 = 0.1;

/// The nominal offsets of a right neighbour and of the neighbour below, and where they came from.
struct Nominal {
    right: (f64, f64),
    down: (f64, f64),
    source: String,
    /// Coarse (from the stage or the tiles): its strips are widened to FFT-friendly sizes and
    /// its step is refined to the accepted edges' consensus.
    estimated: bool,
}

impl Nominal {
    fn from_ratio(overlap: f64, (h, w): (usize, usize)) -> Nominal {
        Nominal {
            right: (w as f64 * (1.0 - overlap), 0.0),
            down: (0.0, h as f64 * (1.0 - overlap)),
            source: format!("overlap_ratio = {overlap}"),
            estimated: false,
        }
    }

    /// From the overlap `(x, y)` the plate's stage positions give (refined like an estimate).
    fn from_stage((ox, oy): (f64, f64), (h, w): (usize, usize)) -> Nominal {
        Nominal {
            right: (w as f64 * (1.0 - ox), 0.0),
            down: (0.0, h as f64 * (1.0 - oy)),
            source: format!("from the plate's stage positions ({ox:.3} × {oy:.3})"),
            estimated: true,
        }
    }

    /// From an estimate; a direction the estimate could not give takes the other direction's
    /// overlap fraction, and with neither the overlap is [`ASSUMED_OVERLAP`], said in `source`.
    fn estimated(e: crate::stitch::overlap::Estimate, (h, w): (usize, usize)) -> Nominal {
        let (w, h) = (w as f64, h as f64);
        let said = |s: &crate::stitch::overlap::Step| format!("{} of {} pairs", s.agreeing, s.pairs);
        match (e.horizontal, e.vertical) {
            (Some(r), Some(d)) => Nominal {
                right: (r.dx, r.dy),
                down: (d.dx, d.dy),
                source: format!("estimated from the tiles (right: {}, down: {})", said(&r), said(&d)),
                estimated: true,
            },
            (Some(r), None) => Nominal {
                right: (r.dx, r.dy),
                down: (0.0, h * r.dx / w),
                source: format!("estimated from the tiles (right: {}; down: as right)", said(&r)),
                estimated: true,
            },
            (None, Some(d)) => Nominal {
                right: (w * d.dy / h, 0.0),
                down: (d.dx, d.dy),
                source: format!("estimated from the tiles (down: {}; right: as down)", said(&d)),
                estimated: true,
            },
            (None, None) => Nominal {
                source: format!(
                    "assumed {ASSUMED_OVERLAP}: the tiles agree on no overlap between {} and {}",
                    crate::stitch::overlap::OVERLAP_RANGE.0,
                    crate::stitch::overlap::OVERLAP_RANGE.1
                ),
                ..Nominal::from_ratio(ASSUMED_OVERLAP, (h as usize, w as usize))
            },
        }
    }

    /// Strip width (horizontal pairs) and height (vertical pairs) of the nominal overlaps. An
    /// estimated overlap falls on any width, so its strips are widened to the next FFT-friendly
    /// size (a product of 2, 3 and 5) the tile holds: a prime width makes every phase
    /// correlation several times slower. A given `overlap_ratio` is taken as it is.
    fn strips(&self, (h, w): (usize, usize)) -> (usize, usize) {
        let width = (w as f64 - self.right.0).round().clamp(4.0, w.max(4) as f64) as usize;
        let height = (h as f64 - self.down.1).round().clamp(4.0, h.max(4) as f64) as usize;
        if self.estimated { (smooth_up(width, w), smooth_up(height, h)) } else { (width, height) }
    }

    /// The median offset of the accepted edges of each direction (unchanged where none was).
    fn refined(self, edges: &[EdgeReport]) -> Nominal {
        let median = |horizontal: bool, axis: fn(&EdgeReport) -> f64| {
            let mut v: Vec<f64> =
                edges.iter().filter(|e| e.accepted && (e.b == e.a + 1) == horizontal).map(axis).collect();
            v.sort_by(f64::total_cmp);
            (!v.is_empty())
                .then(|| if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 })
        };
        let right = median(true, |e| e.dx).zip(median(true, |e| e.dy)).unwrap_or(self.right);
        let down = median(false, |e| e.dx).zip(median(false, |e| e.dy)).unwrap_or(self.down);
        Nominal { right, down, ..self }
    }
}

/// Finest registration precision: the upsampled DFT holds `1.5·up` × the strip size samples.
const MAX_UPSAMPLE: usize = 1000;

/// Most permutation samples (up to 20 draws each).
const MAX_PERMUTATION_SAMPLES: usize = 100_000;

/// The guards of [`ashlar_compute_tile_positions`] beyond the overlap: `max_shift` finite and
/// non-negative, `stitch_alpha` a probability, `upsample_factor` in `1..=`[`MAX_UPSAMPLE`] and
/// `permutation_samples` at most [`MAX_PERMUTATION_SAMPLES`] — each bounds a buffer or a loop.
fn check_settings(max_shift: f64, stitch_alpha: f64, up: usize, samples: usize) -> Result<(), KernelError> {
    if !(max_shift.is_finite() && max_shift >= 0.0) {
        return crate::checks::bad(format!("max_shift must be a finite number ≥ 0 (pixels), got {max_shift}"));
    }
    crate::checks::float_in("stitch_alpha", stitch_alpha, 0.0, 1.0)?;
    crate::checks::int_in("upsample_factor", up, 1, MAX_UPSAMPLE, "")?;
    crate::checks::int_in("permutation_samples", samples, 0, MAX_PERMUTATION_SAMPLES, "")
}

/// The blurs of the whitening's difference of Gaussians (σ in pixels).
const WHITEN_SIGMAS: (f64, f64) = (1.0, 2.5);

/// Whiten every tile once (difference of Gaussians) where the edges read it: registration and
/// the edge score then follow cell-scale structure, not the illumination falloff that all tiles
/// share. Only the tiles' border bands `(columns, rows)` are whitened, NaN elsewhere (nothing reads
/// there; see [`band_items`]);
/// every band of every tile is one work item, so both workers stay busy to the end.
fn whiten(stack: &NdarrayStack, bands: (usize, usize)) -> Vec<Array2<f32>> {
    let (_, h, w) = stack.dim();
    // Filled by every worker (one thread filling nine 1024² tiles kept the other core idle).
    let mut out: Vec<Array2<f32>> =
        (0..stack.dim().0).into_par_iter().map(|_| Array2::from_elem((h, w), f32::NAN)).collect();
    let items: Vec<(ArrayView2<'_, f32>, Band, ArrayViewMut2<'_, f32>)> =
        stack.outer_iter().zip(out.iter_mut()).flat_map(|(t, o)| band_items(t, o.view_mut(), bands)).collect();
    let kernels = whitening_kernels();
    items.into_par_iter().for_each(|(t, band, dst)| whiten_band(t, band, dst, &kernels));
    out
}

/// A band `[y0, y1) × [x0, x1)` of a tile.
type Band = (usize, usize, usize, usize);

/// The two Gaussians' taps of the whitening.
fn whitening_kernels() -> (Vec<f32>, Vec<f32>) {
    (crate::gaussian::kernel(WHITEN_SIGMAS.0, 4.0), crate::gaussian::kernel(WHITEN_SIGMAS.1, 4.0))
}

/// The bands of an `h × w` tile that bands of `(bx, by)` whiten, each with its part of the
/// tile's output `o`: top, bottom, then the left and right bands between them (disjoint), or
/// the whole tile when the bands cover most of it ([`bands_cover_most`]).
fn band_items<'t, 'o>(
    t: ArrayView2<'t, f32>,
    o: ArrayViewMut2<'o, f32>,
    (bx, by): (usize, usize),
) -> Vec<(ArrayView2<'t, f32>, Band, ArrayViewMut2<'o, f32>)> {
    let (h, w) = t.dim();
    if bands_cover_most((h, w), (bx, by)) {
        return vec![(t, (0, h, 0, w), o)];
    }
    let (top, bottom, left, right) =
        o.multi_slice_move((s![..by, ..], s![h - by.., ..], s![by..h - by, ..bx], s![by..h - by, w - bx..]));
    let bands = [(0, by, 0, w), (h - by, h, 0, w), (by, h - by, 0, bx), (by, h - by, w - bx, w)];
    bands.into_iter().zip([top, bottom, left, right]).map(|(band, dst)| (t, band, dst)).collect()
}

/// The difference of Gaussians of `band` of tile `t`, written to `dst` (the band's part of the
/// tile's output): filtered from the tile with the wider blur's reach around the band (clipped
/// to the tile), so its values are exactly those the whole tile's filtering gives (the same taps
/// in the same order; at the tile's borders the same reflection).
fn whiten_band(
    t: ArrayView2<'_, f32>,
    (y0, y1, x0, x1): Band,
    dst: ArrayViewMut2<'_, f32>,
    (ka, kb): &(Vec<f32>, Vec<f32>),
) {
    let (h, w) = t.dim();
    let reach = ka.len().max(kb.len()) / 2;
    let (ey0, ey1) = (y0.saturating_sub(reach), (y1 + reach).min(h));
    let (ex0, ex1) = (x0.saturating_sub(reach), (x1 + reach).min(w));
    crate::separable::difference_into(t.slice(s![ey0..ey1, ex0..ex1]), (ka, kb), dst, (y0 - ey0, x0 - ex0));
}

/// The whitening of a whole tile (or of a piece of one), the plain way: the reference the
/// banded filtering is checked against.
#[cfg(test)]
fn difference_of_gaussians(t: ArrayView2<'_, f32>) -> Array2<f32> {
    use crate::gaussian::gaussian_2d;
    gaussian_2d(t, WHITEN_SIGMAS.0) - gaussian_2d(t, WHITEN_SIGMAS.1)
}

/// The columns (at the left and the right border) and rows (top and bottom) of a tile that the
/// edges of strips `(ow, oh)` read. A horizontal pair's phase correlation shifts by at most half
/// its strip width (the wrap) and under 1 px more (upsampling), so its overlaps, tried within
/// `REFINE_RADIUS + 2` px of the rounded shift, lie within `ow + ow / 2 + REFINE_RADIUS + 4`
/// columns of the border; likewise rows for vertical pairs. A test checks every such shift
/// (and 2 px more) for several tile and strip sizes. When the stage's overlap is refuted, the
/// tiles are whitened again for the estimate's strips (the bands differ).
fn whitened_bands((ow, oh): (usize, usize)) -> (usize, usize) {
    let margin = REFINE_RADIUS as usize + 4;
    (ow + ow / 2 + margin, oh + oh / 2 + margin)
}

/// Whether bands of `bx` columns and `by` rows cover most of an `h × w` tile: bx / w + by / h ≥
/// 3/8 (3/4 of the tile or more, corners counted twice), where filtering in bands saves too
/// little and [`band_items`] gives the whole tile. Otherwise bx < 3w/8 and by < 3h/8, so
/// the four bands neither overlap nor cross.
fn bands_cover_most((h, w): (usize, usize), (bx, by): (usize, usize)) -> bool {
    8 * (bx.min(w) * h + by.min(h) * w) >= 3 * h * w
}

/// Register every neighbour pair of the `(rows, cols)` grid (in parallel), at sub-pixel
/// precision `1/up`, and score each by the NCC of its refined overlap. Edges come out neither
/// accepted nor rejected: [`judge_edges`] decides.
fn register_neighbours(strips: &Strips<'_>, (rows, cols): (usize, usize), up: usize) -> Vec<EdgeReport> {
    crate::stitch::overlap::neighbour_pairs(rows, cols)
        .par_iter()
        .map(|&(a, b, horizontal)| {
            let (cx, cy) = strips.register(a, b, horizontal, up);
            let (dx, dy, ncc) = refine(strips.tile(a), strips.tile(b), cx, cy, REFINE_RADIUS);
            EdgeReport { a, b, dx, dy, ncc, accepted: false, rejected_because: None }
        })
        .collect()
}

/// Permutation threshold: what unrelated strips (tiles at least two apart in a grid `cols`
/// wide) score after registration — the NCC quantile `1 − stitch_alpha` of `samples` random
/// pairs drawn from a fixed seed; 0.5 when fewer than 10 could be drawn.
fn permutation_threshold(strips: &Strips<'_>, cols: usize, samples: usize, stitch_alpha: f64) -> f64 {
    let n = strips.tiles.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5EED);
    let drawn: Vec<(usize, usize, bool)> = (0..samples.saturating_mul(20))
        .filter_map(|_| {
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            let horizontal = rng.random_bool(0.5);
            // Tiles that touch, even at a corner, share content: only farther pairs are unrelated.
            let apart = (a / cols).abs_diff(b / cols).max((a % cols).abs_diff(b % cols)) >= 2;
            apart.then_some((a, b, horizontal))
        })
        .take(samples)
        .collect();
    // A small grid has few unrelated pairs (64 for 3 × 3), so samples repeat: score each
    // distinct pair once (the score of a pair is deterministic) and count it as often as drawn.
    let mut distinct = drawn.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let scores: Vec<f64> = distinct
        .par_iter()
        .map(|&(a, b, horizontal)| {
            let (cx, cy) = strips.register(a, b, horizontal, 1);
            refine_to(strips.tile(a), strips.tile(b), cx, cy, REFINE_RADIUS, Precision::ScoreOnly).2
        })
        .collect();
    let mut null: Vec<f64> = drawn.iter().map(|s| distinct.binary_search(s).map_or(0.0, |i| scores[i])).collect();
    null.sort_by(f64::total_cmp);
    if null.len() >= 10 {
        let q = ((1.0 - stitch_alpha.clamp(0.0, 1.0)) * (null.len() - 1) as f64).round() as usize;
        null[q.min(null.len() - 1)]
    } else {
        0.5
    }
}

/// Accept or reject every edge: rejected when its offset lies more than `max_shift` from the
/// nominal offset of its direction, or its NCC is not above the permutation threshold.
fn judge_edges(edges: &mut [EdgeReport], nominal: &Nominal, max_shift: f64, ncc_threshold: f64) {
    for e in edges {
        let horizontal = e.b == e.a + 1;
        let (nx, ny) = if horizontal { nominal.right } else { nominal.down };
        let deviation = ((e.dx - nx).powi(2) + (e.dy - ny).powi(2)).sqrt();
        e.rejected_because = if deviation > max_shift {
            Some(format!("offset {deviation:.1} px from nominal > max_shift {max_shift}"))
        } else if e.ncc <= ncc_threshold {
            Some(format!("ncc {:.3} not above the permutation threshold {ncc_threshold:.3}", e.ncc))
        } else {
            None
        };
        e.accepted = e.rejected_because.is_none();
    }
}

/// Whether the tiles bear out a nominal layout: in each direction that has edges, at least half
/// of them are accepted (a stage step wrong along one axis is refuted there).
fn borne_out(edges: &[EdgeReport]) -> bool {
    [true, false].into_iter().all(|horizontal| {
        let dir: Vec<&EdgeReport> = edges.iter().filter(|e| (e.b == e.a + 1) == horizontal).collect();
        2 * dir.iter().filter(|e| e.accepted).count() >= dir.len()
    })
}

/// Largest disagreement (pixels) of an accepted edge with the least-squares placement: a
/// correct edge is within a fraction of a pixel of the others, a wrong one pulls its loops.
const OUTLIER_PX: f64 = 2.0;

/// [`place_along_forest`], then reject the accepted edge that disagrees most with the fitted
/// placement while that is more than [`OUTLIER_PX`] (saying so in the edge's report), and place
/// again: one wrong edge cannot shift the tiles of every loop it is in.
fn place_consistently(n: usize, edges: &mut [EdgeReport]) -> (Vec<(f64, f64)>, Vec<Vec<usize>>) {
    loop {
        let (placed, components) = place_along_forest(n, edges);
        let residual = |e: &EdgeReport| {
            let (a, b) = (placed[e.a], placed[e.b]);
            ((b.0 - a.0 - e.dx).powi(2) + (b.1 - a.1 - e.dy).powi(2)).sqrt()
        };
        let worst = edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.accepted)
            .map(|(i, e)| (i, residual(e)))
            .max_by(|x, y| x.1.total_cmp(&y.1));
        match worst {
            Some((i, r)) if r > OUTLIER_PX => {
                edges[i].accepted = false;
                edges[i].rejected_because =
                    Some(format!("{r:.1} px off the least-squares fit of the other edges (> {OUTLIER_PX} px)"));
            }
            _ => return (placed, components),
        }
    }
}

/// Place the `n` tiles along the spanning forest of the accepted edges, one component at a
/// time: each component's first tile at the origin, the others by the measured offsets. Returns
/// the placements and the components (tile indices, in the order they were reached).
fn place_along_forest(n: usize, edges: &[EdgeReport]) -> (Vec<(f64, f64)>, Vec<Vec<usize>>) {
    let adj = spanning_forest(n, edges);
    let mut component = vec![usize::MAX; n];
    let mut placed = vec![(0.0f64, 0.0f64); n];
    let mut components: Vec<Vec<usize>> = Vec::new();
    for start in 0..n {
        if component[start] != usize::MAX {
            continue;
        }
        let id = components.len();
        let mut members = vec![start];
        component[start] = id;
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(i) = queue.pop_front() {
            for &(j, dx, dy) in &adj[i] {
                if component[j] == usize::MAX {
                    component[j] = id;
                    placed[j] = (placed[i].0 + dx, placed[i].1 + dy);
                    members.push(j);
                    queue.push_back(j);
                }
            }
        }
        components.push(members);
    }
    settle(&mut placed, &component, edges);
    (placed, components)
}

/// Least-squares positions over every accepted edge, not only the spanning forest's: each
/// tile moves to the NCC-weighted mean of where its accepted neighbours put it (Gauss–Seidel,
/// from the forest's placement), so one edge's sub-pixel error is shared by the loops of the
/// grid instead of carried down a branch of the tree. A component keeps its first tile fixed.
fn settle(placed: &mut [(f64, f64)], component: &[usize], edges: &[EdgeReport]) {
    let n = placed.len();
    let mut adj: Vec<Vec<(usize, f64, f64, f64)>> = vec![Vec::new(); n];
    for e in edges.iter().filter(|e| e.accepted && component[e.a] == component[e.b]) {
        let w = e.ncc.max(0.05);
        adj[e.a].push((e.b, -e.dx, -e.dy, w));
        adj[e.b].push((e.a, e.dx, e.dy, w));
    }
    let mut fixed = vec![false; n];
    let mut seen = std::collections::HashSet::new();
    for (i, &c) in component.iter().enumerate() {
        fixed[i] = seen.insert(c);
    }
    for _ in 0..SETTLE_SWEEPS {
        let mut moved = 0.0f64;
        for i in 0..n {
            if fixed[i] || adj[i].is_empty() {
                continue;
            }
            let (mut sx, mut sy, mut sw) = (0.0, 0.0, 0.0);
            for &(j, dx, dy, w) in &adj[i] {
                sx += w * (placed[j].0 + dx);
                sy += w * (placed[j].1 + dy);
                sw += w;
            }
            let next = (sx / sw, sy / sw);
            moved = moved.max((next.0 - placed[i].0).abs().max((next.1 - placed[i].1).abs()));
            placed[i] = next;
        }
        if moved < 1e-6 {
            break;
        }
    }
}

/// Most Gauss–Seidel sweeps of [`settle`]. The slowest mode of a large grid is close to a common
/// shift, which the anchoring removes anyway; the sweeps stop earlier once no tile moves 10⁻⁶ px.
const SETTLE_SWEEPS: usize = 2000;

/// Final positions: a linear model of position against grid cell is fitted to the largest
/// component (the nominal grid of `step` when it has fewer than 3 tiles or the fit is
/// singular); the largest component is anchored to the model and every other one moved as a
/// block so its centroid matches the model's prediction; then all are shifted so the smallest
/// x and y are 0. Returns the positions and the (sorted) tiles outside the largest component.
fn anchor_components(
    placed: &[(f64, f64)],
    components: &[Vec<usize>],
    cols: usize,
    (step_x, step_y): (f64, f64),
) -> (Vec<(f64, f64)>, Vec<usize>) {
    let largest = components.iter().enumerate().max_by_key(|(_, m)| m.len()).map_or(0, |(i, _)| i);
    let grid_of = |i: usize| ((i % cols) as f64, (i / cols) as f64);
    let main: &[usize] = components.get(largest).map_or(&[], Vec::as_slice);
    let model = if main.len() >= 3 {
        let xs: Vec<_> = main.iter().map(|&i| (grid_of(i).0, grid_of(i).1, placed[i].0)).collect();
        let ys: Vec<_> = main.iter().map(|&i| (grid_of(i).0, grid_of(i).1, placed[i].1)).collect();
        fit_plane(&xs).zip(fit_plane(&ys))
    } else {
        None
    };
    let (mx, my) = model.unwrap_or(([0.0, step_x, 0.0], [0.0, 0.0, step_y]));
    let predict = |i: usize| {
        let (c, r) = grid_of(i);
        (mx[0] + mx[1] * c + mx[2] * r, my[0] + my[1] * c + my[2] * r)
    };
    let mut positions = placed.to_vec();
    let mut model_placed = Vec::new();
    for (id, members) in components.iter().enumerate() {
        let k = members.len() as f64;
        let (px, py) = members.iter().map(|&i| predict(i)).fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
        let (qx, qy) = members.iter().map(|&i| placed[i]).fold((0.0, 0.0), |a, p| (a.0 + p.0, a.1 + p.1));
        let (ox, oy) = ((px - qx) / k, (py - qy) / k);
        for &i in members {
            positions[i] = (placed[i].0 + ox, placed[i].1 + oy);
        }
        if id != largest {
            model_placed.extend(members.iter().copied());
        }
    }
    model_placed.sort_unstable();
    let (minx, miny) = positions.iter().fold((f64::INFINITY, f64::INFINITY), |a, p| (a.0.min(p.0), a.1.min(p.1)));
    for p in &mut positions {
        *p = (p.0 - minx, p.1 - miny);
    }
    (positions, model_placed)
}

#[cfg(test)]
mod tests {
    use super::{
        DotLanes, EdgeReport, Integral, Precision, REFINE_RADIUS, Rect, bands_cover_most, bounding,
        difference_of_gaussians, overlap_nccs, place_consistently, refine, refine_reads, refine_to, smooth_up, whiten,
        whitened_bands,
    };
    use ndarray::Array2;

    #[test]
    fn the_permutation_tests_score_only_refinement_gives_the_full_refinements_score() {
        // Unrelated textures (the permutation test's pairs), and related ones whose best offset
        // lies off the coarse estimate in every direction: the score (and the whole-pixel offset
        // it was found at) is the full refinement's, bit for bit.
        let texture = |seed: usize| {
            Array2::from_shape_fn((96, 80), move |(y, x)| {
                let v = (y * 7919 + x * 104_729 + seed * 1_299_709) % 4099;
                (v as f32 / 97.0).sin() * 40.0 + ((x + seed) % 11) as f32
            })
        };
        let (a, b) = (texture(1), texture(2));
        let shifted = Array2::from_shape_fn((96, 80), |(y, x)| a[[(y + 3).min(95), (x + 61).min(79)]]);
        let mut off_centre = 0;
        for (left, right) in [(&a, &b), (&b, &a), (&a, &shifted)] {
            for (ox, oy) in [(60.0, 0.0), (58.4, 2.6), (62.0, -3.0), (55.0, 5.0), (64.6, 1.2)] {
                let full = refine(left.view(), right.view(), ox, oy, REFINE_RADIUS);
                let (sx, sy, score) = refine_to(left.view(), right.view(), ox, oy, REFINE_RADIUS, Precision::ScoreOnly);
                assert_eq!(score.to_bits(), full.2.to_bits(), "offset ({ox}, {oy})");
                assert!((sx - full.0).abs() <= 0.5 && (sy - full.1).abs() <= 0.5, "({sx}, {sy}) vs {full:?}");
                off_centre += usize::from(sx != full.0 || sy != full.1);
            }
        }
        assert!(off_centre > 0, "the parabola moved some offset: the cases reach the step score-only skips");
    }

    #[test]
    fn corner_sums_equal_whole_summed_area_tables_bit_for_bit() {
        // Heights that leave 0 to 3 rows after the blocks of four, a strided view, an area away
        // from the tile's origin, and rectangles whose corners fall on every kind of row and
        // column (the area's own edges, neighbours, shared ones).
        let t = Array2::from_shape_fn((23, 41), |(y, x)| ((y * 977 + x * 7919) % 1013) as f32 / 7.0 - 60.0);
        for (view, y1) in
            [(t.view(), 23), (t.view(), 8), (t.view(), 6), (t.view(), 9), (t.slice(ndarray::s![.., ..;2]), 14)]
        {
            let area = Rect { y0: 2, y1, x0: 3, x1: view.dim().1 as isize - 1 };
            let (w, h) = ((area.x1 - area.x0) as usize + 1, (area.y1 - area.y0) as usize + 1);
            let (mut sum, mut sq) = (vec![0f64; w * h], vec![0f64; w * h]);
            for y in 1..h {
                let (mut rs, mut rq) = (0f64, 0f64);
                for x in 0..w - 1 {
                    let v = f64::from(view[(area.y0 as usize + y - 1, area.x0 as usize + x)]);
                    rs += v;
                    rq += v * v;
                    sum[y * w + x + 1] = sum[(y - 1) * w + x + 1] + rs;
                    sq[y * w + x + 1] = sq[(y - 1) * w + x + 1] + rq;
                }
            }
            let mut rects = vec![area];
            for (y0, x0) in [(0, 0), (1, 2), (2, 5), (3, 1)] {
                for (dy, dx) in [(1, 1), (2, 7), (4, 3)] {
                    let r = Rect { y0: area.y0 + y0, y1: area.y0 + y0 + dy, x0: area.x0 + x0, x1: area.x0 + x0 + dx };
                    if r.y1 <= area.y1 && r.x1 <= area.x1 {
                        rects.push(r);
                    }
                }
            }
            rects.push(Rect { y0: area.y1 - 1, y1: area.y1, x0: area.x1 - 2, x1: area.x1 });
            // `area` is among the rectangles: the table spans it.
            let table = Integral::new(view, &rects);
            let whole = |r: Rect| {
                let at = |y: isize, x: isize| ((y - area.y0) as usize) * w + (x - area.x0) as usize;
                let (a, b, c, d) = (at(r.y0, r.x0), at(r.y0, r.x1), at(r.y1, r.x0), at(r.y1, r.x1));
                (sum[d] - sum[b] - sum[c] + sum[a], sq[d] - sq[b] - sq[c] + sq[a])
            };
            assert!(table.ncols < w, "only the corners' columns are kept");
            for r in rects {
                let ((s1, q1), (s2, q2)) = (table.sums(r), whole(r));
                assert_eq!((s1.to_bits(), q1.to_bits()), (s2.to_bits(), q2.to_bits()), "rows to {y1}");
            }
        }
    }

    #[test]
    fn offsets_scored_a_row_at_a_time_equal_each_offset_scored_alone() {
        // Each offset alone, as the refinement scored it before: its overlap's rows one after
        // the other in one set of lanes (the per-tile sums from the same tables).
        fn alone(
            (a, b): (ndarray::ArrayView2<'_, f32>, ndarray::ArrayView2<'_, f32>),
            (ia, ib): (&Integral, &Integral),
            ix: isize,
            iy: isize,
        ) -> f64 {
            let (h, w) = a.dim();
            let Some(ra) = Rect::overlap(h as isize, w as isize, ix, iy) else { return 0.0 };
            let rb = ra.shifted(ix, iy);
            let n = ((ra.y1 - ra.y0) * (ra.x1 - ra.x0)) as f64;
            let ((sa, saa), (sb, sbb)) = (ia.sums(ra), ib.sums(rb));
            let mut dot = DotLanes::default();
            let av = a.slice(ndarray::s![ra.y0..ra.y1, ra.x0..ra.x1]);
            let bv = b.slice(ndarray::s![rb.y0..rb.y1, rb.x0..rb.x1]);
            for (x, y) in av.rows().into_iter().zip(bv.rows()) {
                dot.add(&x.to_vec(), &y.to_vec());
            }
            dot.fold();
            let cov = dot.total - sa * sb / n;
            let (va, vb) = (saa - sa * sa / n, sbb - sb * sb / n);
            if va <= 0.0 || vb <= 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
        }
        // The NCC in f64 from its definition (means first), for a check independent of the lanes.
        fn defined(a: ndarray::ArrayView2<'_, f32>, b: ndarray::ArrayView2<'_, f32>, ix: isize, iy: isize) -> f64 {
            let (h, w) = a.dim();
            let Some(r) = Rect::overlap(h as isize, w as isize, ix, iy) else { return 0.0 };
            let pairs: Vec<(f64, f64)> = (r.y0..r.y1)
                .flat_map(|y| (r.x0..r.x1).map(move |x| (y, x)))
                .map(|(y, x)| {
                    (f64::from(a[(y as usize, x as usize)]), f64::from(b[((y - iy) as usize, (x - ix) as usize)]))
                })
                .collect();
            let n = pairs.len() as f64;
            let (ma, mb) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
            let cov: f64 = pairs.iter().map(|p| (p.0 - ma) * (p.1 - mb)).sum();
            let va: f64 = pairs.iter().map(|p| (p.0 - ma).powi(2)).sum();
            let vb: f64 = pairs.iter().map(|p| (p.1 - mb).powi(2)).sum();
            cov / (va * vb).sqrt()
        }
        let tile = |seed: usize| {
            Array2::from_shape_fn((47, 83), |(y, x)| ((y * 131 + x * 7919 + seed) % 1009) as f32 / 3.0 - 100.0)
        };
        let (a, b) = (tile(0), tile(555));
        // Rows and columns far enough apart for 4 × 4 overlaps, and some without one.
        let ixs: Vec<isize> = vec![-30, -7, -1, 0, 3, 29, 36, 40, 41, 75, 90, -90];
        let mut scored = 0;
        for (a, b) in [(a.view(), b.view()), (b.view(), a.view())] {
            for iy in [-40, -12, -1, 0, 5, 39, 44, 60] {
                let (ia, ib) = (rects_table(a, &ixs, iy, false), rects_table(b, &ixs, iy, true));
                let together = overlap_nccs(a, b, &ia, &ib, iy, &ixs);
                assert_eq!(together.len(), ixs.len());
                for (&ix, &v) in ixs.iter().zip(&together) {
                    assert_eq!(v.to_bits(), alone((a, b), (&ia, &ib), ix, iy).to_bits(), "offset ({ix}, {iy})");
                    let want = defined(a, b, ix, iy);
                    // f32 lanes against f64 sums of centred values.
                    assert!((v - want).abs() < 1e-6, "offset ({ix}, {iy}): {v} against {want}");
                    scored += usize::from(v != 0.0);
                }
            }
        }
        assert!(scored > 40, "most offsets have an overlap ({scored})");
        // Rows that are not contiguous in memory (transposed tiles) are read as copies.
        let (t, u) = (a.t(), b.t());
        let ixs = [-3, 0, 7, 30];
        let (it, iu) = (rects_table(t, &ixs, 2, false), rects_table(u, &ixs, 2, true));
        let together = overlap_nccs(t, u, &it, &iu, 2, &ixs);
        for (&ix, &v) in ixs.iter().zip(&together) {
            assert_eq!(v.to_bits(), alone((t, u), (&it, &iu), ix, 2).to_bits(), "transposed, offset ({ix}, 2)");
            assert!(v != 0.0, "transposed, offset ({ix}, 2) overlaps");
        }
    }

    /// The table over every overlap of `ixs` at `iy` (of `b`'s side when `of_b`).
    fn rects_table(t: ndarray::ArrayView2<'_, f32>, ixs: &[isize], iy: isize, of_b: bool) -> Integral {
        let (h, w) = t.dim();
        let rects: Vec<Rect> = ixs
            .iter()
            .filter_map(|&ix| {
                Rect::overlap(h as isize, w as isize, ix, iy).map(|r| if of_b { r.shifted(ix, iy) } else { r })
            })
            .collect();
        Integral::new(t, &rects)
    }

    #[test]
    fn banded_whitening_equals_the_whole_tiles_within_its_bands_and_is_nan_elsewhere() {
        let t =
            Array2::from_shape_fn((97, 130), |(y, x)| ((y * 131 + x * 7919) % 1009) as f32 + (x as f32 / 9.0).sin());
        let whole = difference_of_gaussians(t.view());
        // One tile as a stack: what `whiten` gives each tile of a well.
        let whiten_bands = |bands| whiten(&t.clone().insert_axis(ndarray::Axis(0)), bands).remove(0);
        for (bx, by) in [(20, 15), (1, 1), (11, 25), (40, 3)] {
            let banded = whiten_bands((bx, by));
            let (mut inside, mut outside) = (0, 0);
            for ((y, x), &v) in banded.indexed_iter() {
                if x < bx || x >= 130 - bx || y < by || y >= 97 - by {
                    assert_eq!(v.to_bits(), whole[(y, x)].to_bits(), "({y}, {x}) with bands {bx} × {by}");
                    inside += 1;
                } else {
                    assert!(v.is_nan(), "({y}, {x}) with bands {bx} × {by} is outside them");
                    outside += 1;
                }
            }
            assert!(inside > 0 && outside > 0, "bands {bx} × {by}");
        }
        // Bands over most of the tile: the whole tile is filtered.
        assert!(bands_cover_most((97, 130), (40, 30)) && !bands_cover_most((97, 130), (40, 3)));
        assert_eq!(whiten_bands((40, 30)), whole);
    }

    #[test]
    fn the_whitened_bands_hold_everything_the_refinement_reads_at_every_registered_shift() {
        // A phase correlation of h × ow strips finds a shift of at most half the strip each way
        // (the wrap), under 1 px more when upsampled; refine rounds it. Every such shift, and
        // 2 px more.
        let reach = REFINE_RADIUS + 2;
        let mut banded = 0;
        for (h, w) in [(256usize, 256usize), (200, 130), (512, 384), (97, 203), (64, 96)] {
            for (ow, oh) in [(4, 4), (13, 7), (w / 10, h / 10), ((w / 8) | 1, (h / 9) | 1)] {
                let (bx, by) = whitened_bands((ow, oh));
                if bands_cover_most((h, w), (bx, by)) {
                    continue; // filtered whole
                }
                banded += 1;
                let (wi, hi, owi, ohi) = (w as isize, h as isize, ow as isize, oh as isize);
                let (bxi, byi) = (bx as isize, by as isize);
                for icx in wi - owi - owi / 2 - 3..=wi - owi + owi / 2 + 3 {
                    for icy in -hi / 2 - 3..=hi / 2 + 3 {
                        let (ra, rb) = refine_reads((h, w), (icx, icy), reach);
                        let (ra, rb) = (bounding(&ra), bounding(&rb));
                        let empty = ra.x1 <= ra.x0;
                        assert!(empty || (ra.x0 >= wi - bxi && rb.x1 <= bxi), "{h}×{w}, ow {ow}: ({icx}, {icy})");
                    }
                }
                for icy in hi - ohi - ohi / 2 - 3..=hi - ohi + ohi / 2 + 3 {
                    for icx in -wi / 2 - 3..=wi / 2 + 3 {
                        let (ra, rb) = refine_reads((h, w), (icx, icy), reach);
                        let (ra, rb) = (bounding(&ra), bounding(&rb));
                        let empty = ra.y1 <= ra.y0;
                        assert!(empty || (ra.y0 >= hi - byi && rb.y1 <= byi), "{h}×{w}, oh {oh}: ({icx}, {icy})");
                    }
                }
            }
        }
        assert!(banded >= 8, "only {banded} tile and strip sizes were filtered in bands");
    }

    #[test]
    fn lane_dot_products_match_f64_over_rows_of_every_length() {
        // Rows of every length up to 80 (whole 32-sample groups, leftover 8-sample chunks and a
        // scalar tail), carried across rows and folds, against a plain f64 sum.
        let value = |i: usize| ((i * 7919 % 1000) as f32) / 37.0 - 11.0;
        let mut dot = DotLanes::default();
        let (mut want, mut magnitude) = (0f64, 0f64);
        let mut next = 0;
        for _ in 0..3 {
            for len in 0..=80 {
                let a: Vec<f32> = (next..next + len).map(value).collect();
                let b: Vec<f32> = (next + 1000..next + 1000 + len).map(value).collect();
                next += len;
                dot.add(&a, &b);
                want += a.iter().zip(&b).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>();
                magnitude += a.iter().zip(&b).map(|(&x, &y)| f64::from(x * y).abs()).sum::<f64>();
            }
        }
        dot.fold();
        // f32 products summed a few hundred to a lane: within a few ulps of the magnitudes.
        assert!(magnitude > 1e4 && (dot.total - want).abs() <= 1e-6 * magnitude, "{} vs {want}", dot.total);
    }

    fn edge(a: usize, b: usize, dx: f64, dy: f64) -> EdgeReport {
        EdgeReport { a, b, dx, dy, ncc: 0.9, accepted: true, rejected_because: None }
    }

    #[test]
    fn a_loop_shares_its_inconsistency_among_its_edges() {
        // 2 × 2 tiles: the bottom edge says 100.4 px where the top says 100; equal weights share
        // the 0.4 px around the loop, 0.1 px per edge (a spanning tree would put it all on one).
        let mut edges =
            vec![edge(0, 1, 100.0, 0.0), edge(2, 3, 100.4, 0.0), edge(0, 2, 0.0, 90.0), edge(1, 3, 0.0, 90.0)];
        let (placed, components) = place_consistently(4, &mut edges);
        assert_eq!(components.len(), 1);
        let want = [(0.0, 0.0), (100.1, 0.0), (-0.1, 90.0), (100.2, 90.0)];
        for (got, want) in placed.iter().zip(want) {
            assert!((got.0 - want.0).abs() < 1e-4 && (got.1 - want.1).abs() < 1e-4, "{placed:?}");
        }
        assert!(edges.iter().all(|e| e.accepted));
    }

    #[test]
    fn an_edge_that_disagrees_with_its_loops_is_rejected_and_said() {
        // 3 × 3 tiles 100 px apart; the edge 4 → 5 says 106 px.
        let mut edges = Vec::new();
        for r in 0..3 {
            for c in 0..3 {
                let i = r * 3 + c;
                if c < 2 {
                    edges.push(edge(i, i + 1, if i == 4 { 106.0 } else { 100.0 }, 0.0));
                }
                if r < 2 {
                    edges.push(edge(i, i + 3, 0.0, 100.0));
                }
            }
        }
        let (placed, _) = place_consistently(9, &mut edges);
        let bad = edges.iter().find(|e| e.a == 4 && e.b == 5).expect("edge 4-5");
        assert!(
            !bad.accepted && bad.rejected_because.as_deref().is_some_and(|r| r.contains("least-squares")),
            "{bad:?}"
        );
        assert_eq!(edges.iter().filter(|e| !e.accepted).count(), 1, "only the wrong edge goes");
        for (i, p) in placed.iter().enumerate() {
            let want = (100.0 * (i % 3) as f64, 100.0 * (i / 3) as f64);
            assert!((p.0 - want.0).abs() < 1e-4 && (p.1 - want.1).abs() < 1e-4, "tile {i}: {p:?}");
        }
    }

    #[test]
    fn strip_sizes_round_up_to_products_of_2_3_and_5_within_the_tile() {
        assert_eq!(smooth_up(103, 1024), 108);
        assert_eq!(smooth_up(102, 1024), 108);
        assert_eq!(smooth_up(100, 1024), 100);
        assert_eq!(smooth_up(103, 104), 103, "never past the tile");
    }
}
