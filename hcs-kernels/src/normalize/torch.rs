//! Percentile normalization on torch stacks (feature `torch`): order statistics by sorting on
//! the device, then the same linear interpolation and stretch as the ndarray variants.

use hcs_core::TorchStack;
use hcs_macros::memory;
use tch::Tensor;

use crate::error::KernelError;
use crate::torch_support::{OnDevice, dims, float};

/// Percentiles `qs` (0–100, numpy's linear interpolation) of each row of `rows` `[R, M]`:
/// `R` vectors of `qs.len()` values, computed on the host from the two order statistics each needs.
fn row_percentiles(rows: &Tensor, qs: &[f64]) -> Result<Vec<Vec<f32>>, KernelError> {
    let device = rows.device();
    let size = rows.size();
    let (r, m) = (size[0], size[1] as usize);
    if m == 0 {
        return Err(KernelError::BadInput("percentiles of an empty plane".into()));
    }
    if let Some(counts) = u16_counts(rows)? {
        return Ok(counts.chunks(BINS).map(|c| super::percentiles_from_counts(c, m, qs)).collect());
    }
    let (sorted, _) = rows.f_sort(1, false).on(device)?;
    // The ranks each percentile needs: floor and floor + 1 (clamped).
    let mut ranks = Vec::new();
    for &q in qs {
        let rank = (q.clamp(0.0, 100.0) / 100.0) * (m - 1) as f64;
        let k = rank.floor() as usize;
        ranks.push(k as i64);
        ranks.push((k + 1).min(m - 1) as i64);
    }
    let index = Tensor::f_from_slice(&ranks).and_then(|t| t.f_to_device(device)).on(device)?;
    let picked = sorted.f_index_select(1, &index).and_then(|t| t.f_to_device(tch::Device::Cpu)).on(device)?;
    let values: Vec<f32> = Vec::<f32>::try_from(&picked.f_flatten(0, -1).on(device)?).on(device)?;
    let per_row = ranks.len();
    Ok((0..r as usize)
        .map(|row| {
            let v = &values[row * per_row..(row + 1) * per_row];
            qs.iter()
                .enumerate()
                .map(|(i, &q)| {
                    let rank = (q.clamp(0.0, 100.0) / 100.0) * (m - 1) as f64;
                    let frac = rank - rank.floor();
                    let (a, b) = (v[2 * i], v[2 * i + 1]);
                    if frac == 0.0 || rank.floor() as usize + 1 >= m {
                        a
                    } else {
                        (f64::from(a) + frac * f64::from(b - a)) as f32
                    }
                })
                .collect()
        })
        .collect())
}

const BINS: usize = 1 << 16;

/// Counts per value of each row when every sample is an integer in 0..=65535 (16-bit images):
/// one `bincount` on the device instead of a sort, exact. `None` for other data.
fn u16_counts(rows: &Tensor) -> Result<Option<Vec<u32>>, KernelError> {
    let device = rows.device();
    let r = rows.size()[0];
    let integral = rows
        .f_eq_tensor(&rows.f_round().on(device)?)
        .and_then(|e| e.f_logical_and(&rows.f_ge(0.0)?))
        .and_then(|e| e.f_logical_and(&rows.f_le(65535.0)?))
        .and_then(|e| e.f_all())
        .on(device)?;
    if !bool::try_from(&integral).on(device)? {
        return Ok(None);
    }
    let offsets = Tensor::f_arange_start_step(0, r * BINS as i64, BINS as i64, (tch::Kind::Int64, device))
        .and_then(|o| o.f_view([r, 1]))
        .on(device)?;
    let codes =
        rows.f_to_kind(tch::Kind::Int64).and_then(|c| c.f_add(&offsets)).and_then(|c| c.f_flatten(0, -1)).on(device)?;
    let counts = codes
        .f_bincount(None::<Tensor>, r * BINS as i64)
        .and_then(|c| c.f_to_kind(tch::Kind::Int))
        .and_then(|c| c.f_to_device(tch::Device::Cpu))
        .on(device)?;
    let counts: Vec<i32> = Vec::<i32>::try_from(&counts).on(device)?;
    Ok(Some(counts.into_iter().map(|c| c as u32).collect()))
}

/// Stretch `plane` so `p_lo → t_min`, `p_hi → t_max`, clipped; a flat plane becomes `t_min`.
fn stretch(plane: &Tensor, p_lo: f32, p_hi: f32, t_min: f32, t_max: f32) -> Result<Tensor, KernelError> {
    let device = plane.device();
    if p_hi > p_lo {
        let scale = (t_max - t_min) / (p_hi - p_lo);
        plane
            .f_sub_scalar(f64::from(p_lo))
            .and_then(|t| t.f_mul_scalar(f64::from(scale)))
            .and_then(|t| t.f_add_scalar(f64::from(t_min)))
            .and_then(|t| t.f_clamp(f64::from(t_min), f64::from(t_max)))
            .on(device)
    } else {
        plane.f_full_like(f64::from(t_min)).on(device)
    }
}

/// Stretch each plane separately by its own percentiles (torch variant of
/// [`crate::normalize::percentile_normalize`]).
#[memory(torch)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn percentile_normalize(
    stack: TorchStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<TorchStack, KernelError> {
    super::check_stretch(low_percentile, high_percentile, target_min, target_max)?;
    let (n, h, w) = dims(&stack)?;
    if n == 0 {
        return Ok(stack);
    }
    let device = stack.device();
    let x = float(&stack)?;
    let p = row_percentiles(&x.f_view([n as i64, (h * w) as i64]).on(device)?, &[low_percentile, high_percentile])?;
    let planes: Vec<Tensor> = p
        .iter()
        .enumerate()
        .map(|(i, p)| stretch(&x.get(i as i64), p[0], p[1], target_min, target_max))
        .collect::<Result<_, _>>()?;
    Tensor::f_stack(&planes, 0).on(device)
}

/// Stretch the whole stack by one pair of percentiles over all planes (torch variant of
/// [`crate::normalize::stack_percentile_normalize`]).
#[memory(torch)]
#[hcs_macros::check(target_min < target_max, "target_min must be below target_max")]
#[hcs_macros::check(low_percentile < high_percentile, "the lower percentile must be below the upper one")]
pub fn stack_percentile_normalize(
    stack: TorchStack,
    #[param(default = 1.0, doc = "lower percentile (0-100)", range = 0.0..=100.0)] low_percentile: f64,
    #[param(default = 99.0, doc = "upper percentile (0-100)", range = 0.0..=100.0)] high_percentile: f64,
    #[param(default = 0.0, doc = "value the lower percentile maps to", range = -1e30..=1e30, sample)] target_min: f32,
    #[param(default = 65535.0, doc = "value the upper percentile maps to (on an 8-bit plate, its default is 255)", range = -1e30..=1e30, sample)]
    target_max: f32,
) -> Result<TorchStack, KernelError> {
    super::check_stretch(low_percentile, high_percentile, target_min, target_max)?;
    let (n, h, w) = dims(&stack)?;
    if n == 0 {
        return Ok(stack);
    }
    let device = stack.device();
    let x = float(&stack)?;
    let p = row_percentiles(&x.f_view([1, (n * h * w) as i64]).on(device)?, &[low_percentile, high_percentile])?;
    stretch(&x, p[0][0], p[0][1], target_min, target_max)
}
