//! Image planes as stored, and the one dtype policy of hcs.
//!
//! Functions see `f32` planes holding the raw sample values (a u16 of 1234 is 1234.0 — never
//! rescaled). On writing back, values are rounded to the nearest integer and clamped to the range
//! of the storage dtype (NaN becomes 0). Every backend uses [`PlaneData::from_f32`], so a plate
//! written as TIFF and as OME-Zarr holds identical numbers.

use std::mem::MaybeUninit;

use ndarray::Array2;
use rayon::prelude::*;

use crate::fill::F32Out;

/// A sample type hcs stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Dtype {
    /// 8-bit unsigned.
    #[serde(rename = "uint8")]
    U8,
    /// 16-bit unsigned (what most HCS cameras write).
    #[serde(rename = "uint16")]
    U16,
    /// 32-bit float.
    #[serde(rename = "float32")]
    F32,
}

impl Dtype {
    /// Bytes per sample.
    pub const fn size(self) -> usize {
        match self {
            Dtype::U8 => 1,
            Dtype::U16 => 2,
            Dtype::F32 => 4,
        }
    }

    /// The name used in metadata (`uint8`, `uint16`, `float32`).
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::U16 => "uint16",
            Dtype::F32 => "float32",
        }
    }

    /// Parse a metadata name.
    pub fn from_name(name: &str) -> Option<Dtype> {
        match name {
            "uint8" => Some(Dtype::U8),
            "uint16" => Some(Dtype::U16),
            "float32" => Some(Dtype::F32),
            _ => None,
        }
    }
}

/// One 2-D plane `[y, x]` in its storage dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum PlaneData {
    /// 8-bit samples.
    U8(Array2<u8>),
    /// 16-bit samples.
    U16(Array2<u16>),
    /// Float samples.
    F32(Array2<f32>),
}

impl PlaneData {
    /// The storage dtype.
    pub fn dtype(&self) -> Dtype {
        match self {
            PlaneData::U8(_) => Dtype::U8,
            PlaneData::U16(_) => Dtype::U16,
            PlaneData::F32(_) => Dtype::F32,
        }
    }

    /// `(height, width)`.
    pub fn dim(&self) -> (usize, usize) {
        match self {
            PlaneData::U8(a) => a.dim(),
            PlaneData::U16(a) => a.dim(),
            PlaneData::F32(a) => a.dim(),
        }
    }

    /// The raw sample values as f32 (no rescaling).
    pub fn to_f32(&self) -> Array2<f32> {
        match self {
            PlaneData::U8(a) => a.mapv(f32::from),
            PlaneData::U16(a) => a.mapv(f32::from),
            PlaneData::F32(a) => a.clone(),
        }
    }

    /// Append the samples, as f32 in row-major order, to `out` (a `Vec`, or one plane's part of
    /// a stack: [`crate::fill`]; no intermediate array when the samples are in standard order).
    pub fn extend_f32(&self, out: &mut impl F32Out) {
        fn extend<T: Copy>(a: &Array2<T>, out: &mut impl F32Out, f: impl Fn(T) -> f32) {
            match a.as_slice() {
                Some(s) => out.append(s, f),
                None => out.append(&a.iter().copied().collect::<Vec<T>>(), f),
            }
        }
        match self {
            PlaneData::U8(a) => extend(a, out, f32::from),
            PlaneData::U16(a) => extend(a, out, f32::from),
            PlaneData::F32(a) => extend(a, out, |v| v),
        }
    }

    /// Convert f32 values to `dtype`: round to nearest, clamp to the dtype's range, NaN → 0.
    pub fn from_f32(values: ndarray::ArrayView2<'_, f32>, dtype: Dtype) -> PlaneData {
        match dtype {
            Dtype::U8 => PlaneData::U8(rounded(values, Narrow { collect: narrow_u8, into: narrow_u8_into }, |v| {
                to_int(v, 255.0) as u8
            })),
            Dtype::U16 => PlaneData::U16(rounded(values, Narrow { collect: narrow_u16, into: narrow_u16_into }, |v| {
                to_int(v, 65535.0) as u16
            })),
            Dtype::F32 => PlaneData::F32(values.to_owned()),
        }
    }

    /// The samples as little-endian bytes in row-major order.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            PlaneData::U8(a) => a.iter().copied().collect(),
            PlaneData::U16(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
            PlaneData::F32(a) => a.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// Samples above which [`rounded`] narrows a plane in parallel, in chunks of this many (a
/// mosaic is written by one step thread while the other cores may have nothing to do).
pub(crate) const PARALLEL_SAMPLES: usize = 1 << 20;

/// How [`rounded`] narrows contiguous samples: into a new vector, or into a slice as long.
struct Narrow<T> {
    collect: fn(&[f32]) -> Vec<T>,
    into: fn(&mut [MaybeUninit<T>], &[f32]),
}

/// Every value narrowed: in one loop over the samples when they are contiguous (in parallel
/// chunks for a large plane), else sample by sample by `each`; both round with [`to_int`].
fn rounded<T: Copy + Default + Send + Sync>(
    values: ndarray::ArrayView2<'_, f32>,
    narrow: Narrow<T>,
    each: impl Fn(f32) -> T,
) -> Array2<T> {
    if let Some(s) = values.as_slice() {
        let narrowed = if s.len() > PARALLEL_SAMPLES {
            // Into the fresh vector's room, chunk by chunk: no zeroing pass first.
            let mut out = Vec::with_capacity(s.len());
            out.spare_capacity_mut()[..s.len()]
                .par_chunks_mut(PARALLEL_SAMPLES)
                .zip(s.par_chunks(PARALLEL_SAMPLES))
                .for_each(|(o, s)| (narrow.into)(o, s));
            // SAFETY: the room's chunks and `s`'s pair up one for one with equal lengths, and
            // `narrow.into` wrote every element of each.
            unsafe { out.set_len(s.len()) };
            out
        } else {
            (narrow.collect)(s)
        };
        if let Ok(a) = Array2::from_shape_vec(values.raw_dim(), narrowed) {
            return a;
        }
    }
    values.mapv(each)
}

/// [`to_int`] of every sample, as u16 ([`narrow_u16_into`] a fresh vector).
fn narrow_u16(s: &[f32]) -> Vec<u16> {
    narrowed(s, narrow_u16_into)
}

/// `narrow` of every sample of `s` into a fresh vector's room: no zeroing pass first.
fn narrowed<T>(s: &[f32], narrow: fn(&mut [MaybeUninit<T>], &[f32])) -> Vec<T> {
    let mut out = Vec::with_capacity(s.len());
    narrow(&mut out.spare_capacity_mut()[..s.len()], s);
    // SAFETY: `narrow` wrote every one of the `s.len()` elements (its room is as long as `s`).
    unsafe { out.set_len(s.len()) };
    out
}

/// [`to_int`] of every sample into `out` (as long as `s`), as u16, the cache lines ahead asked
/// for as it goes ([`crate::ahead`]). Compiled for AVX2 and AVX-512 too and picked at run time (eight
/// samples per instruction instead of four, and the 32-to-16-bit packing AVX2 has): the same
/// comparisons and additions, so the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
pub(crate) fn narrow_u16_into(out: &mut [MaybeUninit<u16>], s: &[f32]) {
    let len = out.len().min(s.len());
    crate::ahead::chunked(crate::ahead::Lines::of(s), len, |r| {
        out[r.clone()].iter_mut().zip(&s[r]).for_each(|(o, &v)| {
            o.write(to_int(v, 65535.0) as u16);
        });
    });
}

/// [`to_int`] of every sample, as u8 ([`narrow_u8_into`] a fresh vector).
fn narrow_u8(s: &[f32]) -> Vec<u8> {
    narrowed(s, narrow_u8_into)
}

/// [`to_int`] of every sample into `out` (as long as `s`), as u8; as [`narrow_u16_into`].
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
pub(crate) fn narrow_u8_into(out: &mut [MaybeUninit<u8>], s: &[f32]) {
    let len = out.len().min(s.len());
    crate::ahead::chunked(crate::ahead::Lines::of(s), len, |r| {
        out[r.clone()].iter_mut().zip(&s[r]).for_each(|(o, &v)| {
            o.write(to_int(v, 255.0) as u8);
        });
    });
}

/// Round half away from zero and clamp to `0..=max` (`max` ≤ 65535), NaN → 0 — what f64's
/// `round` of the clamped value gives (checked for all 2³² f32 bit patterns when this was
/// written, against the formula it replaced; the tests below keep the half-integers and a
/// sweep over the bit patterns). Only f32 arithmetic, comparisons and bit operations, so the
/// loop vectorizes: a float-to-int cast saturates in Rust, and its checks keep LLVM from
/// vectorizing (measured: scalar `cvttss2si` per sample). The integer part comes from `trunc`
/// (one `vroundps`) and the fraction `c − trunc(c)` is exact, so no `c + 0.5` can round up
/// wrongly; the loop this replaced rounded to even by adding and subtracting 2²³ and then
/// corrected twice, a chain of blends that ran 2.4× slower over planes not in the cache.
#[inline(always)]
fn to_int(v: f32, max: f32) -> u32 {
    /// 2²³: added to an integer below it, the sum's mantissa bits are that integer.
    const SHIFT: f32 = 8_388_608.0;
    // NaN fails `v >= 0`, so it becomes 0 like a negative value.
    let c = if v >= 0.0 { if v < max { v } else { max } } else { 0.0 };
    let whole = c.trunc();
    let rounded = if c - whole >= 0.5 { whole + 1.0 } else { whole };
    (rounded + SHIFT).to_bits() & 0x7F_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn writing_back_rounds_and_clamps_the_same_way_for_every_dtype() {
        let v = array![[-3.0f32, 0.4, 0.5, 1.6], [254.6, 300.0, 70000.0, f32::NAN]];
        assert_eq!(PlaneData::from_f32(v.view(), Dtype::U8), PlaneData::U8(array![[0, 0, 1, 2], [255, 255, 255, 0]]));
        assert_eq!(
            PlaneData::from_f32(v.view(), Dtype::U16),
            PlaneData::U16(array![[0, 0, 1, 2], [255, 300, 65535, 0]])
        );
    }

    #[test]
    fn a_plane_narrowed_in_parallel_chunks_equals_one_narrowed_sample_by_sample() {
        // Longer than one parallel chunk, not a multiple of it.
        let (h, w) = (1031, 1029);
        assert!(h * w > PARALLEL_SAMPLES + 1);
        let v = Array2::from_shape_fn((h, w), |(y, x)| ((y * 7919 + x * 104_729) % 140_000) as f32 / 2.0 - 1000.25);
        let by_sample16 = v.mapv(|x| to_int(x, 65535.0) as u16);
        assert_eq!(PlaneData::from_f32(v.view(), Dtype::U16), PlaneData::U16(by_sample16));
        let by_sample8 = v.mapv(|x| to_int(x, 255.0) as u8);
        assert_eq!(PlaneData::from_f32(v.view(), Dtype::U8), PlaneData::U8(by_sample8));
    }

    #[test]
    fn rounding_in_f32_equals_rounding_in_f64_at_every_half_and_its_neighbours() {
        // The f32 path must give f64's `round` (half away from zero) of the clamped value, also
        // one ulp either side of each .5 (where `v + 0.5` in f32 would round up wrongly).
        let mut checked = 0;
        for i in (0..65536u32).step_by(7).chain([0, 1, 65534, 65535]) {
            let half = i as f32 + 0.5;
            for v in [half, f32::from_bits(half.to_bits() - 1), f32::from_bits(half.to_bits() + 1), i as f32] {
                let want = f64::from(v.clamp(0.0, 65535.0)).round() as u32;
                assert_eq!(to_int(v, 65535.0), want, "{v}");
                checked += 1;
            }
        }
        assert!(checked > 37_000);
        assert_eq!(to_int(0.499_999_97, 255.0), 0);
        assert_eq!(to_int(f32::INFINITY, 255.0), 255);
        assert_eq!(to_int(f32::NEG_INFINITY, 255.0), 0);
        assert_eq!(to_int(f32::NAN, 255.0), 0);
    }

    #[test]
    fn rounding_in_f32_equals_rounding_in_f64_across_the_bit_patterns() {
        // Every 4099th f32 bit pattern (both signs, subnormals, the infinities' and NaNs'
        // neighbourhoods), rounded for u16 and for u8, against f64's `round` of the clamped value.
        let mut checked = 0;
        for bits in (0..=u32::MAX).step_by(4099).chain([0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 1, 0x8000_0001]) {
            let v = f32::from_bits(bits);
            for max in [65535.0f32, 255.0] {
                let want = if v.is_nan() { 0 } else { f64::from(v.clamp(0.0, max)).round() as u32 };
                assert_eq!(to_int(v, max), want, "{v:e} ({bits:#x}) for max {max}");
            }
            checked += 1;
        }
        assert!(checked > 1_000_000);
    }

    #[test]
    fn whole_planes_round_as_each_sample_does() {
        // The dispatched loops (AVX2 here, the portable ones under scripts/test-portable-loops.sh)
        // against the scalar rounding, at every half, its neighbours, the ends and past them.
        let mut values = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.5, -1e9, 1e9, 65535.5, 255.5, 256.0];
        for i in (0..65536u32).step_by(3) {
            let half = i as f32 + 0.5;
            values.extend([half, f32::from_bits(half.to_bits() - 1), f32::from_bits(half.to_bits() + 1), i as f32]);
        }
        let wide: Vec<u32> = values.iter().map(|&v| to_int(v, 65535.0)).collect();
        assert_eq!(narrow_u16(&values).into_iter().map(u32::from).collect::<Vec<_>>(), wide);
        let small: Vec<u32> = values.iter().map(|&v| to_int(v, 255.0)).collect();
        assert_eq!(narrow_u8(&values).into_iter().map(u32::from).collect::<Vec<_>>(), small);
        assert!(small.contains(&255) && small.contains(&0) && wide.contains(&65535) && wide.contains(&1234));
        // A strided view goes sample by sample, with the same result.
        let a = ndarray::Array2::from_shape_vec((values.len() / 4, 4), values[..values.len() / 4 * 4].to_vec())
            .expect("shape");
        let strided = PlaneData::from_f32(a.t(), Dtype::U16);
        let contiguous = PlaneData::from_f32(a.t().as_standard_layout().view(), Dtype::U16);
        assert_eq!(strided, contiguous);
    }

    #[test]
    fn reading_keeps_raw_values() {
        let p = PlaneData::U16(array![[0, 1234, 65535]]);
        assert_eq!(p.to_f32(), array![[0.0, 1234.0, 65535.0]]);
        assert_eq!(PlaneData::from_f32(p.to_f32().view(), Dtype::U16), p);
    }
}
