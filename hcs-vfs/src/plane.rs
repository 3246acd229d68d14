//! Image planes as stored, and the one dtype policy of hcs.
//!
//! Functions see `f32` planes holding the raw sample values (a u16 of 1234 is 1234.0 — never
//! rescaled). On writing back, values are rounded to the nearest integer and clamped to the range
//! of the storage dtype (NaN becomes 0). Every backend uses [`PlaneData::from_f32`], so a plate
//! written as TIFF and as OME-Zarr holds identical numbers.

use ndarray::Array2;

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

    /// Append the samples, as f32 in row-major order, to `out` (no intermediate array).
    pub fn extend_f32(&self, out: &mut Vec<f32>) {
        fn extend<T: Copy>(a: &Array2<T>, out: &mut Vec<f32>, f: impl Fn(T) -> f32) {
            match a.as_slice() {
                Some(s) => out.extend(s.iter().map(|&v| f(v))),
                None => out.extend(a.iter().map(|&v| f(v))),
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
            Dtype::U8 => PlaneData::U8(values.mapv(|v| to_int(v, 255.0) as u8)),
            Dtype::U16 => PlaneData::U16(values.mapv(|v| to_int(v, 65535.0) as u16)),
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

/// Round half away from zero and clamp to `0..=max` (`max` < 2³¹), NaN → 0. All in f32 and
/// i32, so the loop vectorizes: the clamped value's integer part `t` and fraction `c − t` are
/// both exact, and the fraction decides the rounding (no libm `round` call, no f64 detour).
fn to_int(v: f32, max: f32) -> f32 {
    // `clamp` keeps NaN; casting NaN to an integer gives 0, and NaN ≥ 0.5 is false.
    let c = v.clamp(0.0, max);
    let t = c as i32;
    (t + i32::from(c - t as f32 >= 0.5)) as f32
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
    fn rounding_in_f32_equals_rounding_in_f64_at_every_half_and_its_neighbours() {
        // The f32 path must give f64's `round` (half away from zero) of the clamped value, also
        // one ulp either side of each .5 (where `v + 0.5` in f32 would round up wrongly).
        let mut checked = 0;
        for i in (0..65536u32).step_by(7).chain([0, 1, 65534, 65535]) {
            let half = i as f32 + 0.5;
            for v in [half, f32::from_bits(half.to_bits() - 1), f32::from_bits(half.to_bits() + 1), i as f32] {
                let want = f64::from(v.clamp(0.0, 65535.0)).round() as f32;
                assert_eq!(to_int(v, 65535.0), want, "{v}");
                checked += 1;
            }
        }
        assert!(checked > 37_000);
        assert_eq!(to_int(0.499_999_97, 255.0), 0.0);
        assert_eq!(to_int(f32::INFINITY, 255.0), 255.0);
        assert_eq!(to_int(f32::NEG_INFINITY, 255.0), 0.0);
    }

    #[test]
    fn reading_keeps_raw_values() {
        let p = PlaneData::U16(array![[0, 1234, 65535]]);
        assert_eq!(p.to_f32(), array![[0.0, 1234.0, 65535.0]]);
        assert_eq!(PlaneData::from_f32(p.to_f32().view(), Dtype::U16), p);
    }
}
