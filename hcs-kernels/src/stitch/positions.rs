//! Tile positions from the overlaps of neighbouring tiles, in the manner of Ashlar's edge
//! aligner: register every neighbour pair by phase correlation on the nominal overlap strips,
//! judge each edge by the normalized cross-correlation of the aligned overlap against a
//! permutation threshold (what unrelated strips score), keep the best edges in an
//! error-weighted spanning tree, place the tiles along it, and place tiles it cannot reach with a
//! linear model fitted to the reached ones. Every edge's quality and fate is reported in the
//! special output — nothing silently falls back to the grid.

use std::fmt::Write as _;

use hcs_core::{MaterializeResult, MaterializeTarget, NdarrayStack};
use hcs_macros::memory;
use ndarray::{ArrayView2, Axis, s};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use rayon::prelude::*;

use super::phase::phase_correlate;
use crate::error::KernelError;
use crate::gaussian::gaussian_2d;

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
}

/// Write positions as CSV (`site,row,col,x,y`) and the edge report as `<stem>_edges.csv`.
pub fn write_positions_csv(p: &TilePositions, target: &MaterializeTarget) -> MaterializeResult {
    let mut csv = String::from("site,row,col,x,y\n");
    let cols = p.grid.1.max(1) as usize;
    for (i, (x, y)) in p.positions.iter().enumerate() {
        let _ = writeln!(csv, "{},{},{},{x:.3},{y:.3}", i + 1, i / cols, i % cols);
    }
    let mut edges = String::from("site_a,site_b,dx,dy,ncc,accepted,rejected_because\n");
    for e in &p.edges {
        let _ = writeln!(
            edges,
            "{},{},{:.3},{:.3},{:.4},{},{}",
            e.a + 1,
            e.b + 1,
            e.dx,
            e.dy,
            e.ncc,
            e.accepted,
            e.rejected_because.as_deref().unwrap_or("")
        );
    }
    Ok(vec![target.write(".csv", csv.as_bytes())?, target.write("_edges.csv", edges.as_bytes())?])
}

/// Sums of one row pair: Σa, Σb, Σab, Σa², Σb², in eight f32 lanes (vectorizable; a row is at
/// most a few thousand samples, well within f32 precision) folded into f64.
fn row_sums(a: &[f32], b: &[f32]) -> [f64; 5] {
    const L: usize = 8;
    let mut acc = [[0f32; L]; 5];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..L {
            acc[0][l] += x[l];
            acc[1][l] += y[l];
            acc[2][l] += x[l] * y[l];
            acc[3][l] += x[l] * x[l];
            acc[4][l] += y[l] * y[l];
        }
    }
    let mut out = acc.map(|lanes| lanes.iter().map(|&v| f64::from(v)).sum::<f64>());
    for (&x, &y) in ra.iter().zip(rb) {
        let (x, y) = (f64::from(x), f64::from(y));
        out[0] += x;
        out[1] += y;
        out[2] += x * y;
        out[3] += x * x;
        out[4] += y * y;
    }
    out
}

/// NCC of two equal-size views, in one pass over row pairs.
fn ncc(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> f64 {
    let n = a.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mut s = [0f64; 5];
    for (ra, rb) in a.rows().into_iter().zip(b.rows()) {
        let sums = match (ra.as_slice(), rb.as_slice()) {
            (Some(x), Some(y)) => row_sums(x, y),
            _ => row_sums(&ra.to_vec(), &rb.to_vec()),
        };
        s.iter_mut().zip(sums).for_each(|(t, v)| *t += v);
    }
    let [sa, sb, sab, saa, sbb] = s;
    let cov = sab - sa * sb / n;
    let (va, vb) = (saa - sa * sa / n, sbb - sb * sb / n);
    if va <= 0.0 || vb <= 0.0 { 0.0 } else { cov / (va * vb).sqrt() }
}

/// Pixels this close to a tile's border are left out of edge scores: whitening mirrors structure
/// there (reflected boundary), which would bias the alignment.
const BORDER: isize = 6;

/// NCC of tiles `a` and `b` over their overlap when `b`'s origin is at `(ox, oy)` from `a`'s,
/// leaving out [`BORDER`] pixels along both tiles' borders.
fn overlap_ncc(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, ox: f64, oy: f64) -> f64 {
    let (h, w) = a.dim();
    let (ix, iy) = (ox.round() as isize, oy.round() as isize);
    let (w, h) = (w as isize, h as isize);
    let x0 = BORDER.max(ix + BORDER);
    let x1 = (w - BORDER).min(ix + w - BORDER);
    let y0 = BORDER.max(iy + BORDER);
    let y1 = (h - BORDER).min(iy + h - BORDER);
    if x1 - x0 < 4 || y1 - y0 < 4 {
        return 0.0;
    }
    let av = a.slice(s![y0..y1, x0..x1]);
    let bv = b.slice(s![y0 - iy..y1 - iy, x0 - ix..x1 - ix]);
    ncc(av, bv)
}

/// How far (pixels) the NCC refinement searches around the phase-correlation estimate.
const REFINE_RADIUS: isize = 6;

/// Refine an offset by maximizing the overlap NCC: integer search within ±`radius` pixels of
/// the coarse estimate (a 2-pixel lattice, then the best point's 3×3 neighbourhood), then a
/// parabola through the best value and its neighbours in x and y.
fn refine(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, ox: f64, oy: f64, radius: isize) -> (f64, f64, f64) {
    let (cx, cy) = (ox.round(), oy.round());
    let score = |dx: isize, dy: isize| overlap_ncc(a, b, cx + dx as f64, cy + dy as f64);
    // Coarse pass on a 2-pixel lattice (the whitened NCC peak is wider than that), then the
    // full-resolution neighbourhood of the best lattice point.
    let (mut best, mut at) = (f64::NEG_INFINITY, (0isize, 0isize));
    let consider = |dx: isize, dy: isize, best: &mut f64, at: &mut (isize, isize)| {
        let v = score(dx, dy);
        if v > *best {
            *best = v;
            *at = (dx, dy);
        }
    };
    for dy in (-radius..=radius).step_by(2) {
        for dx in (-radius..=radius).step_by(2) {
            consider(dx, dy, &mut best, &mut at);
        }
    }
    let coarse = at;
    for dy in coarse.1 - 1..=coarse.1 + 1 {
        for dx in coarse.0 - 1..=coarse.0 + 1 {
            if (dx, dy) != coarse {
                consider(dx, dy, &mut best, &mut at);
            }
        }
    }
    let vertex = |m: f64, c: f64, p: f64| {
        let denom = m - 2.0 * c + p;
        if denom < 0.0 { (0.5 * (m - p) / denom).clamp(-0.5, 0.5) } else { 0.0 }
    };
    let fx = vertex(score(at.0 - 1, at.1), best, score(at.0 + 1, at.1));
    let fy = vertex(score(at.0, at.1 - 1), best, score(at.0, at.1 + 1));
    (cx + at.0 as f64 + fx, cy + at.1 as f64 + fy, best)
}

/// Register `b` (right of `a` when `horizontal`, else below) on the nominal overlap strips;
/// returns `b`'s origin relative to `a`'s.
fn register(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>, horizontal: bool, overlap: f64, up: usize) -> (f64, f64) {
    let (h, w) = a.dim();
    if horizontal {
        let ow = ((w as f64 * overlap).round() as usize).clamp(4, w);
        let (dy, dx) = phase_correlate(a.slice(s![.., w - ow..]), b.slice(s![.., ..ow]), up);
        ((w - ow) as f64 - dx, -dy)
    } else {
        let oh = ((h as f64 * overlap).round() as usize).clamp(4, h);
        let (dy, dx) = phase_correlate(a.slice(s![h - oh.., ..]), b.slice(s![..oh, ..]), up);
        (-dx, (h - oh) as f64 - dy)
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
#[memory(ndarray)]
#[hcs_macros::special_inputs(grid_dimensions)]
#[hcs_macros::special_outputs(positions = write_positions_csv)]
#[allow(clippy::too_many_arguments)]
pub fn ashlar_compute_tile_positions(
    stack: NdarrayStack,
    grid_dimensions: &(u32, u32),
    #[param(default = 0.1, doc = "nominal overlap between neighbouring tiles (fraction)")] overlap_ratio: f64,
    #[param(default = 15.0, doc = "largest accepted deviation from the nominal offset (pixels)")] max_shift: f64,
    #[param(default = 0.01, doc = "false-positive rate of the permutation test")] stitch_alpha: f64,
    #[param(default = 10, doc = "sub-pixel precision 1/n of the registration")] upsample_factor: usize,
    #[param(default = 100, doc = "unrelated strip pairs registered for the threshold")] permutation_samples: usize,
) -> Result<(NdarrayStack, TilePositions), KernelError> {
    let (rows, cols) = (grid_dimensions.0 as usize, grid_dimensions.1 as usize);
    let (n, h, w) = stack.dim();
    if rows * cols != n || n == 0 {
        return Err(KernelError::BadInput(format!("{n} tiles do not fill a {rows}×{cols} grid")));
    }
    if !(0.0..0.9).contains(&overlap_ratio) || overlap_ratio * (w.min(h) as f64) < 4.0 {
        return Err(KernelError::BadParameter(format!("overlap_ratio {overlap_ratio} leaves no usable overlap")));
    }
    // Whiten every tile once (difference of Gaussians): registration and the edge score then
    // follow cell-scale structure, not the illumination falloff that all tiles share.
    let whitened: Vec<ndarray::Array2<f32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let t = stack.index_axis(Axis(0), i);
            let fine = gaussian_2d(t, 1.0);
            let coarse = gaussian_2d(t, 2.5);
            fine - coarse
        })
        .collect();
    let tile = |i: usize| whitened[i].view();
    let (step_x, step_y) = (w as f64 * (1.0 - overlap_ratio), h as f64 * (1.0 - overlap_ratio));
    let up = upsample_factor.max(1);

    // Register every neighbour pair (in parallel).
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
    let mut edges: Vec<EdgeReport> = pairs
        .par_iter()
        .map(|&(a, b, horizontal)| {
            let (cx, cy) = register(tile(a), tile(b), horizontal, overlap_ratio, up);
            let (dx, dy, ncc) = refine(tile(a), tile(b), cx, cy, REFINE_RADIUS);
            EdgeReport { a, b, dx, dy, ncc, accepted: false, rejected_because: None }
        })
        .collect();

    // Permutation threshold: what unrelated strips score after registration.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5EED);
    let samples: Vec<(usize, usize, bool)> = (0..permutation_samples * 20)
        .filter_map(|_| {
            let a = rng.random_range(0..n);
            let b = rng.random_range(0..n);
            let horizontal = rng.random_bool(0.5);
            // Tiles that touch, even at a corner, share content: only farther pairs are unrelated.
            let apart = (a / cols).abs_diff(b / cols).max((a % cols).abs_diff(b % cols)) >= 2;
            apart.then_some((a, b, horizontal))
        })
        .take(permutation_samples)
        .collect();
    let mut null: Vec<f64> = samples
        .par_iter()
        .map(|&(a, b, horizontal)| {
            let (cx, cy) = register(tile(a), tile(b), horizontal, overlap_ratio, 1);
            refine(tile(a), tile(b), cx, cy, REFINE_RADIUS).2
        })
        .collect();
    null.sort_by(f64::total_cmp);
    let ncc_threshold = if null.len() >= 10 {
        let q = ((1.0 - stitch_alpha.clamp(0.0, 1.0)) * (null.len() - 1) as f64).round() as usize;
        null[q.min(null.len() - 1)]
    } else {
        0.5
    };

    for e in &mut edges {
        let horizontal = e.b == e.a + 1;
        let (nx, ny) = if horizontal { (step_x, 0.0) } else { (0.0, step_y) };
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

    // Place tiles along the spanning forest, one component at a time.
    let adj = spanning_forest(n, &edges);
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
    let largest = components.iter().enumerate().max_by_key(|(_, m)| m.len()).map_or(0, |(i, _)| i);
    let grid_of = |i: usize| ((i % cols) as f64, (i / cols) as f64);
    let main: Vec<usize> = components[largest].clone();
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
    // Anchor the main component to the model, then move every other component as a block so its
    // centroid matches the model's prediction.
    let mut positions = placed.clone();
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
    Ok((stack, TilePositions { grid: *grid_dimensions, positions, edges, ncc_threshold, model_placed }))
}
