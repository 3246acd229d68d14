//! Mosaics from tile positions: sub-pixel (bilinear) placement and feathered blending.

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use ndarray::{Array2, Array3, ArrayView2, Axis};

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

/// Bilinear sample of `t` at (y − fy, x − fx) for output pixel (y, x): the tile moved right/down
/// by the fractional offset.
fn shifted(t: ArrayView2<'_, f32>, fy: f64, fx: f64) -> Array2<f64> {
    let (h, w) = t.dim();
    let at = |y: isize, x: isize| -> f64 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            f64::NAN
        } else {
            f64::from(t[[y as usize, x as usize]])
        }
    };
    Array2::from_shape_fn((h + 1, w + 1), |(y, x)| {
        let (y, x) = (y as isize, x as isize);
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
    })
}

/// Assemble the tiles (planes in site order) into one mosaic `[1, H, W]` using `positions`.
#[memory(ndarray)]
#[hcs_macros::special_inputs(positions)]
pub fn assemble_stack(
    stack: NdarrayStack,
    positions: &TilePositions,
    #[param(default = Blend::Fixed, doc = "fixed | dynamic | none")] blend_method: Blend,
    #[param(default = 0.1, doc = "ramp width for `fixed`, as a fraction of the tile")] fixed_margin_ratio: f64,
    #[param(default = 1.0, doc = "fraction of the overlap ramped for `dynamic`")] overlap_blend_fraction: f64,
) -> Result<NdarrayStack, KernelError> {
    let (n, h, w) = stack.dim();
    if positions.positions.len() != n {
        return Err(KernelError::BadInput(format!("{} positions for {n} tiles", positions.positions.len())));
    }
    let pos = &positions.positions;
    if pos.iter().any(|p| !(p.0.is_finite() && p.1.is_finite() && p.0 >= 0.0 && p.1 >= 0.0)) {
        return Err(KernelError::BadInput("positions must be finite and non-negative".into()));
    }
    let width = pos.iter().map(|p| p.0.floor() as usize + w + 1).max().unwrap_or(w);
    let height = pos.iter().map(|p| p.1.floor() as usize + h + 1).max().unwrap_or(h);
    if (width as u64) * (height as u64) > 1 << 32 {
        return Err(KernelError::BadInput(format!("mosaic of {width}×{height} pixels is too large")));
    }
    let mut sum = Array2::<f64>::zeros((height, width));
    let mut weight = Array2::<f64>::zeros((height, width));
    for (i, tile) in stack.axis_iter(Axis(0)).enumerate() {
        let (x, y) = pos[i];
        let (ix, iy) = (x.floor() as usize, y.floor() as usize);
        let moved = shifted(tile, y - y.floor(), x - x.floor());
        let [ml, mr, mt, mb] = margins(i, pos, h, w, blend_method, fixed_margin_ratio, overlap_blend_fraction);
        let (th, tw) = moved.dim();
        for ((ty, tx), &v) in moved.indexed_iter() {
            if v.is_nan() {
                continue;
            }
            let wx = ramp(tx as f64, ml).min(ramp((tw - 1 - tx) as f64, mr));
            let wy = ramp(ty as f64, mt).min(ramp((th - 1 - ty) as f64, mb));
            let wt = (wx * wy).max(1e-6);
            sum[[iy + ty, ix + tx]] += wt * v;
            weight[[iy + ty, ix + tx]] += wt;
        }
    }
    let mosaic = Array3::from_shape_fn((1, height, width), |(_, y, x)| {
        let wt = weight[[y, x]];
        if wt > 0.0 { (sum[[y, x]] / wt) as f32 } else { 0.0 }
    });
    Ok(mosaic)
}
