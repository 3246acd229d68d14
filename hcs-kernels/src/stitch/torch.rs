//! Mosaics from tile positions on torch stacks (feature `torch`): the same sub-pixel placement
//! and feathered blending as the ndarray variant ([`super::assemble`]), accumulated in f64 on the
//! device.

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::{Kind, Tensor};

use super::TilePositions;
use super::assemble::{Blend, tile_layout};
use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims};

/// Assemble the tiles (planes in site order) into one mosaic `[1, H, W]` using `positions`
/// (torch variant of [`crate::stitch::assemble_stack`]).
#[memory(torch, planes = one, xy = any)]
#[hcs_macros::special_inputs(positions)]
#[hcs_macros::check(image.planes.is_none_or(|p| image.sites.is_none_or(|s| p == s)), "the tiles must be the well's tiles, one per position: variable_components = [\"site\"] and no earlier call in the chain that changes the plane count")]
pub fn assemble_stack(
    stack: TorchStack,
    positions: &TilePositions,
    #[param(default = Blend::Fixed, doc = "fixed | dynamic | none")] blend_method: Blend,
    #[param(default = 0.1, doc = "ramp width for `fixed`, as a fraction of the tile", range = 0.0..=0.5)]
    fixed_margin_ratio: f64,
    #[param(default = 1.0, doc = "fraction of the overlap ramped for `dynamic`", range = 0.0..=1.0)]
    overlap_blend_fraction: f64,
) -> Result<TorchStack, KernelError> {
    let (n, h, w) = dims(&stack)?;
    let (width, height, layout) =
        tile_layout((n, h, w), positions, blend_method, fixed_margin_ratio, overlap_blend_fraction)?;
    let device = stack.device();
    let opts = (Kind::Double, device);
    let (hi, wi) = (h as i64, w as i64);
    // A row and a column of room beyond the mosaic (see `tile_layout`), left out at the end.
    let sum = Tensor::f_zeros([height as i64 + 1, width as i64 + 1], opts).on(device)?;
    let weight = Tensor::f_zeros([height as i64 + 1, width as i64 + 1], opts).on(device)?;
    let tiles = stack.f_to_kind(Kind::Double).on(device)?;
    for (i, l) in layout.iter().enumerate() {
        // The tile framed by NaN, so samples from outside it are recognizable.
        let framed = Tensor::f_full([hi + 2, wi + 2], f64::NAN, opts).on(device)?;
        framed
            .f_narrow(0, 1, hi)
            .and_then(|t| t.f_narrow(1, 1, wi))
            .and_then(|mut t| t.f_copy_(&tiles.get(i as i64)))
            .on(device)?;
        // Bilinear sample of the tile moved right/down by (fx, fy): four shifted views.
        let (fy, fx) = (l.fy, l.fx);
        let terms =
            [((1.0 - fy) * (1.0 - fx), 1, 1), ((1.0 - fy) * fx, 1, 0), (fy * (1.0 - fx), 0, 1), (fy * fx, 0, 0)];
        let mut s = Tensor::f_zeros([hi + 1, wi + 1], opts).on(device)?;
        let mut ws = Tensor::f_zeros([hi + 1, wi + 1], opts).on(device)?;
        for (wt, y0, x0) in terms {
            if wt <= 0.0 {
                continue;
            }
            let v = framed.f_narrow(0, y0, hi + 1).and_then(|t| t.f_narrow(1, x0, wi + 1)).on(device)?;
            let valid =
                v.f_isnan().and_then(|m| m.f_logical_not()).and_then(|m| m.f_to_kind(Kind::Double)).on(device)?;
            s = s.f_add(&v.f_nan_to_num(0.0, None, None).and_then(|v| v.f_mul_scalar(wt)).on(device)?).on(device)?;
            ws = ws.f_add(&valid.f_mul_scalar(wt).on(device)?).on(device)?;
        }
        let inside = ws.f_gt(0.999).on(device)?;
        let nan = Tensor::f_full([hi + 1, wi + 1], f64::NAN, opts).on(device)?;
        let sample =
            s.f_div(&ws.f_clamp_min(1e-300).on(device)?).and_then(|v| v.f_where_self(&inside, &nan)).on(device)?;
        // Feathering weights of this tile, at least 1e-6 where it has samples.
        let wy = Tensor::f_from_slice(&l.wy).and_then(|t| t.f_to_device(device)).on(device)?;
        let wx = Tensor::f_from_slice(&l.wx).and_then(|t| t.f_to_device(device)).on(device)?;
        let feather = wy
            .f_view([hi + 1, 1])
            .and_then(|y| y.f_mul(&wx.f_view([1, wi + 1])?))
            .and_then(|t| t.f_clamp_min(1e-6))
            .on(device)?;
        let has = sample.f_isnan().and_then(|m| m.f_logical_not()).on(device)?;
        let zero = Tensor::f_zeros([hi + 1, wi + 1], opts).on(device)?;
        let add_sum = feather
            .f_mul(&sample.f_nan_to_num(0.0, None, None).on(device)?)
            .and_then(|t| t.f_where_self(&has, &zero))
            .on(device)?;
        let add_weight = feather.f_where_self(&has, &zero).on(device)?;
        let (iy, ix) = (l.iy as i64, l.ix as i64);
        let mut sum_view = sum.f_narrow(0, iy, hi + 1).and_then(|t| t.f_narrow(1, ix, wi + 1)).on(device)?;
        let _ = sum_view.f_add_(&add_sum).on(device)?;
        let mut weight_view = weight.f_narrow(0, iy, hi + 1).and_then(|t| t.f_narrow(1, ix, wi + 1)).on(device)?;
        let _ = weight_view.f_add_(&add_weight).on(device)?;
    }
    let covered = weight.f_gt(0.0).on(device)?;
    let zero = Tensor::f_zeros_like(&sum).on(device)?;
    let mosaic =
        sum.f_div(&weight.f_clamp_min(1e-300).on(device)?).and_then(|m| m.f_where_self(&covered, &zero)).on(device)?;
    mosaic
        .f_narrow(0, 0, height as i64)
        .and_then(|m| m.f_narrow(1, 0, width as i64))
        .and_then(|m| m.f_to_kind(Kind::Float))
        .and_then(|m| m.f_contiguous())
        .and_then(|m| m.f_view([1, height as i64, width as i64]))
        .on(device)
}
