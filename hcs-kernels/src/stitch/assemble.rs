//! Mosaics from tile positions: sub-pixel (bilinear) placement and feathered blending.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use hcs_vfs::fill::F32Out;
use ndarray::{Array3, ArrayView2, Axis};

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
    /// The columns `flat.0..flat.1` of the shifted tile whose ramp weight is 1 (empty if
    /// those are not one range).
    flat: (usize, usize),
}

/// The range of `weights` that holds exactly the entries equal to 1 (`(0, 0)` if they are
/// not one range, or none).
fn flat_range(weights: &[f64]) -> (usize, usize) {
    let (Some(a), Some(b)) = (weights.iter().position(|&v| v == 1.0), weights.iter().rposition(|&v| v == 1.0)) else {
        return (0, 0);
    };
    if weights[a..=b].iter().all(|&v| v == 1.0) { (a, b + 1) } else { (0, 0) }
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
        // The next mosaic row reads the tile's next row: its lines asked for now (a hint, see
        // `hcs_vfs::ahead`).
        hcs_vfs::ahead::row(&self.tile, ty + 1);
        match (r0.as_slice(), r1.as_slice()) {
            (Some(r0), Some(r1)) => bilinear_row(&mut out[..w], r0, r1, [a, b, c, d], inv),
            _ => bilinear_row(&mut out[..w], &r0.to_vec(), &r1.to_vec(), [a, b, c, d], inv),
        }
        out[0] = self.sample(ty, 0);
        out[w] = self.sample(ty, w);
    }
}

/// `out[x]` for `x` in `1..w`: the weighted sum (`[a, b, c, d]` on `r0[x]`, `r0[x - 1]`, `r1[x]`,
/// `r1[x - 1]`) times `inv`. Compiled for AVX2 and AVX-512 too and picked at run time; the arithmetic (and so
/// the result) is the same on every path.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
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
/// CPUs). Compiled for AVX2 and AVX-512 too and picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn accumulate_row(sum: &mut [f64], weight: &mut [f64], row: &[f64], wx: &[f64], wy: f64) {
    for (((sv, wv), &v), &wx) in sum.iter_mut().zip(weight.iter_mut()).zip(row).zip(wx) {
        let covered = !v.is_nan();
        let wt = if covered { (wx * wy).max(1e-6) } else { 0.0 };
        *sv += wt * if covered { v } else { 0.0 };
        *wv += wt;
    }
}

/// The mosaic row: each weighted sum over its weight, 0 where no tile reaches; the sums and
/// weights are set back to +0 for the next row in the same pass. Compiled for AVX2 and AVX-512 too and
/// picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn divide_row(out: &mut [f32], sum: &mut [f64], weight: &mut [f64]) {
    for ((o, sv), wv) in out.iter_mut().zip(sum).zip(weight) {
        let mean = (*sv / *wv) as f32;
        *o = if *wv > 0.0 { mean } else { 0.0 };
        (*sv, *wv) = (0.0, 0.0);
    }
}

/// One worker's buffers for [`mosaic_row`]: the weighted sums and weights of a mosaic row
/// (left at +0 between rows), one shifted tile row, and the row's single-tile spans.
struct RowScratch {
    sum: Vec<f64>,
    weight: Vec<f64>,
    row: Vec<f64>,
    alone: Vec<(usize, usize)>,
}

impl RowScratch {
    fn new(width: usize, w: usize) -> Self {
        RowScratch { sum: vec![0.0; width], weight: vec![0.0; width], row: vec![0.0; w + 1], alone: Vec::new() }
    }
}

/// Mosaic row `y` of the tiles `placed` (each `h × w`) into `out`: every tile reaching the row
/// adds its shifted row, weighted, to the sums, and each sum over its weight is the mosaic's
/// value ([`accumulate_row`], [`divide_row`]). Where one tile alone reaches a pixel with
/// weight 1 (the inside of its ramps, two thirds of a 10 %-overlap mosaic), that quotient is
/// `(+0 + 1 · v) / 1`, exactly `+0 + v` (0 for a NaN sample, which weighs nothing): written
/// straight from the shifted row, with no sum, weight or division.
fn mosaic_row(placed: &[Placed<'_>], (h, w): (usize, usize), y: usize, out: &mut [f32], scratch: &mut RowScratch) {
    let RowScratch { sum, weight, row, alone } = scratch;
    alone.clear();
    let reaching = || placed.iter().enumerate().filter(|(_, p)| y >= p.iy && y <= p.iy + h);
    for (i, p) in reaching() {
        let ty = y - p.iy;
        p.shifted_row(ty, row);
        let span = (p.ix, p.ix + w + 1);
        // This tile's weight-1 columns that no other tile reaching the row covers: one range
        // (a range another tile's span splits in two is left to the sums, as is any other).
        let (mut a, mut b) = if p.wy[ty] == 1.0 { (p.ix + p.flat.0, p.ix + p.flat.1) } else { (0, 0) };
        for (_, o) in reaching().filter(|(j, _)| *j != i) {
            let (c, d) = (o.ix, o.ix + w + 1);
            if d <= a || c >= b {
                continue;
            }
            match (c <= a, d >= b) {
                (true, _) => a = a.max(d),
                (false, true) => b = b.min(c),
                (false, false) => b = a,
            }
        }
        let (a, b) = if a < b { (a, b) } else { (span.0, span.0) };
        for (x0, x1) in [(span.0, a), (b, span.1)] {
            if x0 < x1 {
                let (t0, t1) = (x0 - p.ix, x1 - p.ix);
                accumulate_row(&mut sum[x0..x1], &mut weight[x0..x1], &row[t0..t1], &p.wx[t0..t1], p.wy[ty]);
            }
        }
        // The sums have a column of room beyond the mosaic (see `tile_layout`): the alone
        // range stops at the mosaic's edge.
        let b = b.min(out.len());
        if a < b {
            alone_row(&mut out[a..b], &row[a - p.ix..b - p.ix]);
            alone.push((a, b));
        }
    }
    // Every other pixel: its sum over its weight (the sums set back to +0 for the next row).
    alone.sort_unstable();
    let mut from = 0;
    for &(a, b) in alone.iter().chain(std::iter::once(&(out.len(), out.len()))) {
        if from < a {
            divide_row(&mut out[from..a], &mut sum[from..a], &mut weight[from..a]);
        }
        from = from.max(b);
    }
}

/// The mosaic's value where one tile alone reaches with weight 1: `+0 + v` as f32 (what the
/// sums give: `(+0 + 1 · v) / 1`; -0 becomes +0), 0 where the sample is NaN (weight 0).
/// Compiled for AVX2 and AVX-512 too and picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn alone_row(out: &mut [f32], row: &[f64]) {
    for (o, &v) in out.iter_mut().zip(row) {
        *o = if v.is_nan() { 0.0 } else { (0.0 + v) as f32 };
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

/// The mosaic's `(width, height)` and every tile's layout, after checking the positions. A
/// shifted tile spans `w + 1` columns and `h + 1` rows from its integer origin, one more than
/// the mosaic holds where it lies at a whole pixel on the far edge: the sums of a variant have
/// that column and row of room, and the mosaic leaves them out.
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
    if h == 0 || w == 0 {
        return Err(KernelError::BadInput(format!("tiles of {w}×{h} pixels hold nothing to assemble")));
    }
    let pos = &positions.positions;
    if pos.iter().any(|p| !(p.0.is_finite() && p.1.is_finite() && p.0 >= 0.0 && p.1 >= 0.0)) {
        return Err(KernelError::BadInput("positions must be finite and non-negative".into()));
    }
    // The mosaic reaches the far edge of the farthest tile, `ceil(x + w)`: a tile at a whole
    // pixel adds no column beyond its own (a single site's mosaic is the tile), one moved by a
    // fraction reaches into one more (the peer's canvas too). The float-to-integer cast
    // saturates: a huge position gives a huge size, refused below, never an overflow.
    let far = |p: f64, n: usize| (p + n as f64).ceil() as usize;
    let width = pos.iter().map(|p| far(p.0, w)).max().unwrap_or(w);
    let height = pos.iter().map(|p| far(p.1, h)).max().unwrap_or(h);
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
        .map(|(tile, l)| Placed {
            tile,
            ix: l.ix,
            iy: l.iy,
            fy: l.fy,
            fx: l.fx,
            flat: flat_range(&l.wx),
            wx: l.wx,
            wy: l.wy,
        })
        .collect();
    // Each row is made in a worker's row buffer and appended to the mosaic's reserved room: the
    // mosaic is written once, not zeroed first (a 33 MB memset per mosaic of a standard plate,
    // and the rows' first writes then missed the cache again).
    let mut data = Vec::new();
    hcs_vfs::fill::fill_planes_with(
        &mut data,
        width,
        height,
        || (RowScratch::new(width + 1, w), vec![0.0f32; width]),
        |(scratch, line), y, slot| {
            mosaic_row(&placed, (h, w), y, line, scratch);
            slot.append(line, |v| v);
            Ok(())
        },
        |y, n| KernelError::BadInput(format!("mosaic row {y} came out {n} pixels wide instead of {width}")),
    )?;
    Array3::from_shape_vec((1, height, width), data).map_err(|e| KernelError::BadInput(format!("mosaic: {e}")))
}

#[cfg(test)]
mod tests {
    use ndarray::Array3;

    use super::*;

    /// The mosaic with every tile's row added to the sums at every pixel it reaches, and every
    /// pixel divided: what [`mosaic_row`] gives by a shorter way where one tile alone reaches.
    fn summing_everywhere(stack: &Array3<f32>, positions: &TilePositions, blend: Blend, fixed: f64) -> Array3<f32> {
        let (_, h, w) = stack.dim();
        let (width, height, layout) = tile_layout(stack.dim(), positions, blend, fixed, 1.0).expect("layout");
        let placed: Vec<Placed<'_>> = stack
            .axis_iter(Axis(0))
            .zip(layout)
            .map(|(tile, l)| Placed { tile, ix: l.ix, iy: l.iy, fy: l.fy, fx: l.fx, flat: (0, 0), wx: l.wx, wy: l.wy })
            .collect();
        let mut mosaic = Array3::<f32>::zeros((1, height, width));
        let (mut sum, mut weight, mut row) = (vec![0.0f64; width + 1], vec![0.0f64; width + 1], vec![0.0f64; w + 1]);
        for (y, mut out) in mosaic.index_axis_mut(Axis(0), 0).axis_iter_mut(Axis(0)).enumerate() {
            for p in placed.iter().filter(|p| y >= p.iy && y <= p.iy + h) {
                let ty = y - p.iy;
                p.shifted_row(ty, &mut row);
                let span = p.ix..p.ix + w + 1;
                accumulate_row(&mut sum[span.clone()], &mut weight[span], &row, &p.wx, p.wy[ty]);
            }
            divide_row(out.as_slice_mut().expect("standard"), &mut sum[..width], &mut weight[..width]);
            (sum[width], weight[width]) = (0.0, 0.0);
        }
        mosaic
    }

    fn positions(pos: Vec<(f64, f64)>, grid: (u32, u32)) -> TilePositions {
        TilePositions {
            grid,
            positions: pos,
            edges: Vec::new(),
            ncc_threshold: 0.0,
            model_placed: Vec::new(),
            overlap: (0.1, 0.1),
            overlap_source: String::new(),
        }
    }

    #[test]
    fn pixels_one_tile_reaches_alone_equal_the_summed_mosaic_bit_for_bit() {
        let (h, w) = (40, 52);
        let mut stack =
            Array3::from_shape_fn((6, h, w), |(t, y, x)| ((t * 131 + y * 977 + x * 7919) % 1013) as f32 / 3.0 - 40.0);
        // Samples the sums treat specially: NaN (weight 0) and -0 (the sums give +0).
        stack[[0, 20, 20]] = f32::NAN;
        stack.slice_mut(ndarray::s![1, 9..=10, 29..=30]).fill(-0.0);
        stack[[4, 5, 5]] = f32::NAN;
        let layouts = [
            // A 2 × 3 grid with 10 % overlaps and sub-pixel jitter.
            positions(vec![(0.0, 0.0), (47.3, 0.6), (93.9, 1.2), (0.4, 36.2), (47.8, 36.7), (94.1, 35.9)], (2, 3)),
            // Whole-pixel positions (no shift) and tiles that do not touch.
            positions(vec![(0.0, 0.0), (60.0, 0.0), (120.0, 0.0), (0.0, 50.0), (60.0, 50.0), (120.0, 50.0)], (2, 3)),
            // One tile inside another's span (the alone range split in two goes to the sums).
            positions(vec![(0.0, 0.0), (10.5, 5.5), (20.0, 0.0), (2.0, 30.0), (100.0, 3.0), (30.25, 20.75)], (2, 3)),
        ];
        let bits = |a: &Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (k, pos) in layouts.iter().enumerate() {
            for blend in [Blend::Fixed, Blend::Dynamic, Blend::None] {
                for fixed in [0.0, 0.1, 0.5] {
                    let got = assemble_stack(stack.clone(), pos, blend, fixed, 1.0).expect("assemble");
                    let want = summing_everywhere(&stack, pos, blend, fixed);
                    assert_eq!(got.dim(), want.dim());
                    assert_eq!(bits(&got), bits(&want), "layout {k}, {blend:?}, fixed {fixed}");
                }
            }
        }
    }

    #[test]
    fn a_tile_at_a_whole_pixel_adds_no_row_or_column_and_empty_tiles_are_refused() {
        let stack = Array3::from_shape_fn((2, 6, 8), |(t, y, x)| (t * 100 + y * 8 + x + 1) as f32);
        // One tile at the origin: the mosaic is the tile.
        let one = assemble_stack(
            stack.slice(ndarray::s![..1, .., ..]).to_owned(),
            &positions(vec![(0.0, 0.0)], (1, 1)),
            Blend::Fixed,
            0.1,
            1.0,
        )
        .expect("assemble");
        assert_eq!(one.index_axis(Axis(0), 0), stack.index_axis(Axis(0), 0));
        // Side by side at whole pixels: 16 wide; at 7.5 the far edge, 15.5, rounds up to 16.
        let whole =
            assemble_stack(stack.clone(), &positions(vec![(0.0, 0.0), (8.0, 0.0)], (1, 2)), Blend::None, 0.0, 1.0);
        assert_eq!(whole.expect("assemble").dim(), (1, 6, 16));
        let shifted =
            assemble_stack(stack.clone(), &positions(vec![(0.0, 0.0), (7.5, 0.0)], (1, 2)), Blend::None, 0.0, 1.0);
        assert_eq!(shifted.expect("assemble").dim(), (1, 6, 16));
        let empty = Array3::<f32>::zeros((1, 0, 8));
        assert!(assemble_stack(empty, &positions(vec![(0.0, 0.0)], (1, 1)), Blend::Fixed, 0.1, 1.0).is_err());
    }

    #[test]
    fn the_flat_range_is_the_one_run_of_weight_1() {
        assert_eq!(flat_range(&[0.2, 0.6, 1.0, 1.0, 1.0, 0.5]), (2, 5));
        assert_eq!(flat_range(&[1.0, 1.0]), (0, 2));
        assert_eq!(flat_range(&[0.5, 0.7]), (0, 0));
        assert_eq!(flat_range(&[1.0, 0.5, 1.0]), (0, 0));
    }
}
