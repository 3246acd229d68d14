//! Mosaics from tile positions: sub-pixel (bilinear) placement and feathered blending.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array3, ArrayView2, Axis};
use rayon::prelude::*;

use super::TilePositions;
use crate::error::KernelError;

/// How overlapping tiles are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blend {
    /// Linear ramps over `fixed_margin_ratio` of the tile on edges that have a neighbour.
    Fixed,
    /// Linear ramps over the measured overlap (× `overlap_blend_fraction`) on those edges.
    Dynamic,
    /// No ramps: overlapping pixels are averaged.
    None,
}

hcs_core::choice_param!(Blend { Blend::Fixed => "fixed", Blend::Dynamic => "dynamic", Blend::None => "none" });

/// Ramp weight at distance `d` (pixels from the edge) over a margin `m`.
fn ramp(d: f64, m: f64) -> f64 {
    if m <= 0.0 { 1.0 } else { ((d + 0.5) / m).clamp(0.0, 1.0) }
}

/// Per-tile margins (left, right, top, bottom) in pixels: 0 where no neighbour overlaps.
fn margins(i: usize, pos: &[(f64, f64)], h: usize, w: usize, blend: Blend, fixed: f64, fraction: f64) -> [f64; 4] {
    let (x, y) = pos[i];
    let (wf, hf) = (w as f64, h as f64);
    let mut m = [0.0f64; 4];
    for (j, &(ox, oy)) in pos.iter().enumerate() {
        if j == i {
            continue;
        }
        let overlap_x = (x + wf).min(ox + wf) - x.max(ox);
        let overlap_y = (y + hf).min(oy + hf) - y.max(oy);
        if overlap_x <= 0.0 || overlap_y <= 0.0 {
            continue;
        }
        // The neighbour lies mostly to one side: that side gets a ramp.
        let (ddx, ddy) = (ox - x, oy - y);
        let (side, overlap, size) = if ddx.abs() >= ddy.abs() {
            (if ddx < 0.0 { 0 } else { 1 }, overlap_x, wf)
        } else {
            (if ddy < 0.0 { 2 } else { 3 }, overlap_y, hf)
        };
        let margin = match blend {
            Blend::Fixed => fixed * size,
            Blend::Dynamic => overlap * fraction,
            Blend::None => 0.0,
        };
        m[side] = m[side].max(margin);
    }
    m
}

/// One tile placed in the mosaic: integer origin, fractional shift, blend ramps per column/row.
struct Placed<'a> {
    tile: ArrayView2<'a, f32>,
    ix: usize,
    iy: usize,
    fy: f64,
    fx: f64,
    /// Ramp weight of each column of the shifted tile (`w + 1` columns).
    wx: Vec<f64>,
    /// Ramp weight of each row of the shifted tile (`h + 1` rows).
    wy: Vec<f64>,
}

impl Placed<'_> {
    /// Bilinear sample of the tile moved right/down by `(fx, fy)` at shifted-tile pixel
    /// `(ty, tx)`; `NaN` where less than the whole weight falls on the tile (its edges).
    fn sample(&self, ty: usize, tx: usize) -> f64 {
        let (h, w) = self.tile.dim();
        let (fy, fx) = (self.fy, self.fx);
        let at = |y: isize, x: isize| -> f64 {
            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                f64::NAN
            } else {
                f64::from(self.tile[[y as usize, x as usize]])
            }
        };
        let (y, x) = (ty as isize, tx as isize);
        let v = [
            ((1.0 - fy) * (1.0 - fx), at(y, x)),
            ((1.0 - fy) * fx, at(y, x - 1)),
            (fy * (1.0 - fx), at(y - 1, x)),
            (fy * fx, at(y - 1, x - 1)),
        ];
        let (mut s, mut ws) = (0.0, 0.0);
        for (wt, val) in v {
            if wt > 0.0 && !val.is_nan() {
                s += wt * val;
                ws += wt;
            }
        }
        if ws > 0.999 { s / ws } else { f64::NAN }
    }

    /// Row `ty` of the shifted tile (`w + 1` samples). Inside the tile all four neighbours
    /// exist, so the row is one vectorizable weighted sum of two source rows.
    fn shifted_row(&self, ty: usize, out: &mut [f64]) {
        let (h, w) = self.tile.dim();
        if ty == 0 || ty >= h || w < 2 {
            out.iter_mut().enumerate().for_each(|(tx, o)| *o = self.sample(ty, tx));
            return;
        }
        let (fy, fx) = (self.fy, self.fx);
        let (a, b, c, d) = ((1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx, fy * (1.0 - fx), fy * fx);
        let inv = 1.0 / (a + b + c + d);
        let (r0, r1) = (self.tile.row(ty), self.tile.row(ty - 1));
        match (r0.as_slice(), r1.as_slice()) {
            (Some(r0), Some(r1)) => bilinear_row(&mut out[..w], r0, r1, [a, b, c, d], inv),
            _ => bilinear_row(&mut out[..w], &r0.to_vec(), &r1.to_vec(), [a, b, c, d], inv),
        }
        out[0] = self.sample(ty, 0);
        out[w] = self.sample(ty, w);
    }
}

/// `out[x]` for `x` in `1..w`: the weighted sum (`[a, b, c, d]` on `r0[x]`, `r0[x - 1]`, `r1[x]`,
/// `r1[x - 1]`) times `inv`. Compiled for AVX2 too and picked at run time; the arithmetic (and so
/// the result) is the same on every path.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
fn bilinear_row(out: &mut [f64], r0: &[f32], r1: &[f32], [a, b, c, d]: [f64; 4], inv: f64) {
    let w = out.len().min(r0.len()).min(r1.len());
    for tx in 1..w {
        out[tx] =
            (a * f64::from(r0[tx]) + b * f64::from(r0[tx - 1]) + c * f64::from(r1[tx]) + d * f64::from(r1[tx - 1]))
                * inv;
    }
}

/// Adds one shifted tile row `row` (NaN where the tile has no sample) into the mosaic row's
/// weighted sums, each sample weighted by its column ramp `wx` times the row ramp `wy` (at
/// least 1e-6, so a pixel only ramps reach is still covered). Branch-free: a NaN sample adds 0
/// to both (the sums start at +0, so adding +0 changes no bit), and every element is stored
/// (a conditional store compiles to an AVX masked store, slower than the scalar loop on some
/// CPUs). Compiled for AVX2 too and picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
fn accumulate_row(sum: &mut [f64], weight: &mut [f64], row: &[f64], wx: &[f64], wy: f64) {
    for (((sv, wv), &v), &wx) in sum.iter_mut().zip(weight.iter_mut()).zip(row).zip(wx) {
        let covered = !v.is_nan();
        let wt = if covered { (wx * wy).max(1e-6) } else { 0.0 };
        *sv += wt * if covered { v } else { 0.0 };
        *wv += wt;
    }
}

/// The mosaic row: each weighted sum over its weight, 0 where no tile reaches; the sums and
/// weights are set back to +0 for the next row in the same pass. Compiled for AVX2 too and
/// picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma"))]
fn divide_row(out: &mut [f32], sum: &mut [f64], weight: &mut [f64]) {
    for ((o, sv), wv) in out.iter_mut().zip(sum).zip(weight) {
        let mean = (*sv / *wv) as f32;
        *o = if *wv > 0.0 { mean } else { 0.0 };
        (*sv, *wv) = (0.0, 0.0);
    }
}

/// Where one tile goes in the mosaic and how it is weighted (shared by every variant).
pub(crate) struct TileLayout {
    /// Integer origin in the mosaic.
    pub ix: usize,
    /// Integer origin in the mosaic.
    pub iy: usize,
    /// Fractional shift right.
    pub fx: f64,
    /// Fractional shift down.
    pub fy: f64,
    /// Ramp weight of each column of the shifted tile (`w + 1` columns).
    pub wx: Vec<f64>,
    /// Ramp weight of each row of the shifted tile (`h + 1` rows).
    pub wy: Vec<f64>,
}

/// The mosaic's `(width, height)` and every tile's layout, after checking the positions.
pub(crate) fn tile_layout(
    (n, h, w): (usize, usize, usize),
    positions: &TilePositions,
    blend: Blend,
    fixed_margin_ratio: f64,
    overlap_blend_fraction: f64,
) -> Result<(usize, usize, Vec<TileLayout>), KernelError> {
    crate::checks::float_in("fixed_margin_ratio", fixed_margin_ratio, 0.0, 1.0)?;
    crate::checks::float_in("overlap_blend_fraction", overlap_blend_fraction, 0.0, 1.0)?;
    if positions.positions.len() != n {
        return Err(KernelError::BadInput(format!("{} positions for {n} tiles", positions.positions.len())));
    }
    let pos = &positions.positions;
    if pos.iter().any(|p| !(p.0.is_finite() && p.1.is_finite() && p.0 >= 0.0 && p.1 >= 0.0)) {
        return Err(KernelError::BadInput("positions must be finite and non-negative".into()));
    }
    // Saturating: a huge position gives a huge size, refused below, never an overflow.
    let width = pos.iter().map(|p| (p.0.floor() as usize).saturating_add(w).saturating_add(1)).max().unwrap_or(w);
    let height = pos.iter().map(|p| (p.1.floor() as usize).saturating_add(h).saturating_add(1)).max().unwrap_or(h);
    if (width as u64).checked_mul(height as u64).is_none_or(|px| px > 1 << 32) {
        return Err(KernelError::BadInput(format!("mosaic of {width}×{height} pixels is too large")));
    }
    let layout = pos
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            let [ml, mr, mt, mb] = margins(i, pos, h, w, blend, fixed_margin_ratio, overlap_blend_fraction);
            let (th, tw) = (h + 1, w + 1);
            TileLayout {
                ix: x.floor() as usize,
                iy: y.floor() as usize,
                fy: y - y.floor(),
                fx: x - x.floor(),
                wx: (0..tw).map(|tx| ramp(tx as f64, ml).min(ramp((tw - 1 - tx) as f64, mr))).collect(),
                wy: (0..th).map(|ty| ramp(ty as f64, mt).min(ramp((th - 1 - ty) as f64, mb))).collect(),
            }
        })
        .collect();
    Ok((width, height, layout))
}

/// Assemble the tiles (planes in site order) into one mosaic `[1, H, W]` using `positions`.
#[memory(ndarray, planes = one, xy = any)]
#[hcs_macros::special_inputs(positions)]
#[hcs_macros::check(image.planes.is_none_or(|p| image.sites.is_none_or(|s| p == s)), "the tiles must be the well's tiles, one per position: variable_components = [\"site\"] and no earlier call in the chain that changes the plane count")]
pub fn assemble_stack(
    stack: NdarrayStack,
    positions: &TilePositions,
    #[param(default = Blend::Fixed, doc = "fixed | dynamic | none")] blend_method: Blend,
    #[param(default = 0.1, doc = "ramp width for `fixed`, as a fraction of the tile", range = 0.0..=0.5)]
    fixed_margin_ratio: f64,
    #[param(default = 1.0, doc = "fraction of the overlap ramped for `dynamic`", range = 0.0..=1.0)]
    overlap_blend_fraction: f64,
) -> Result<NdarrayStack, KernelError> {
    let (_, h, w) = stack.dim();
    let (width, height, layout) =
        tile_layout(stack.dim(), positions, blend_method, fixed_margin_ratio, overlap_blend_fraction)?;
    let placed: Vec<Placed<'_>> = stack
        .axis_iter(Axis(0))
        .zip(layout)
        .map(|(tile, l)| Placed { tile, ix: l.ix, iy: l.iy, fy: l.fy, fx: l.fx, wx: l.wx, wy: l.wy })
        .collect();
    let mut mosaic = Array3::<f32>::zeros((1, height, width));
    mosaic.index_axis_mut(Axis(0), 0).axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(
        // Each row leaves the sums and weights at +0 for the next (`divide_row`).
        || (vec![0.0f64; width], vec![0.0f64; width], vec![0.0f64; w + 1]),
        |(sum, weight, row), (y, mut out)| {
            for p in placed.iter().filter(|p| y >= p.iy && y <= p.iy + h) {
                let ty = y - p.iy;
                p.shifted_row(ty, row);
                let span = p.ix..p.ix + w + 1;
                accumulate_row(&mut sum[span.clone()], &mut weight[span], row, &p.wx, p.wy[ty]);
            }
            match out.as_slice_mut() {
                Some(o) => divide_row(o, sum, weight),
                None => {
                    let mut o = vec![0.0f32; out.len()];
                    divide_row(&mut o, sum, weight);
                    out.iter_mut().zip(o).for_each(|(d, v)| *d = v);
                }
            }
        },
    );
    Ok(mosaic)
}
