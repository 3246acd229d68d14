//! PNG thumbnails of planes for quick looks (previews, overviews): downscaled by block means to
//! at most `max_side` pixels, contrast-stretched between the 1st and 99th percentile to 8 bits.

use std::path::Path;

use ndarray::Array2;

use crate::VfsError;
use crate::atomic::write_atomic;

/// 8-bit grey levels of `plane`, downscaled so neither side exceeds `max_side`.
pub fn thumbnail(plane: ndarray::ArrayView2<'_, f32>, max_side: usize) -> Array2<u8> {
    let (h, w) = plane.dim();
    let step = h.max(w).div_ceil(max_side.max(1)).max(1);
    let (th, tw) = (h.div_ceil(step).max(1), w.div_ceil(step).max(1));
    let mut small = Array2::<f32>::zeros((th, tw));
    for ((y, x), v) in small.indexed_iter_mut() {
        let (y0, x0) = (y * step, x * step);
        let block = plane.slice(ndarray::s![y0..(y0 + step).min(h), x0..(x0 + step).min(w)]);
        *v = if block.is_empty() { 0.0 } else { block.iter().sum::<f32>() / block.len() as f32 };
    }
    let mut sorted: Vec<f32> = small.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f32::total_cmp);
    let pick =
        |q: f64| sorted.get(((sorted.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(0.0);
    let (lo, hi) = (pick(0.01), pick(0.99));
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    small.mapv(|v| if v.is_finite() { ((v - lo) * scale).clamp(0.0, 255.0).round() as u8 } else { 0 })
}

/// Encode 8-bit grey levels as PNG.
pub fn encode_png(grey: &Array2<u8>, path: &Path) -> Result<Vec<u8>, VfsError> {
    let (h, w) = grey.dim();
    let mut bytes = Vec::new();
    let err = |_: png::EncodingError| VfsError::BadPath {
        path: path.to_path_buf(),
        reason: "cannot encode the PNG thumbnail",
    };
    let mut encoder = png::Encoder::new(&mut bytes, w as u32, h as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(err)?;
    let data: Vec<u8> = grey.iter().copied().collect();
    writer.write_image_data(&data).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(bytes)
}

/// Write a thumbnail of `plane` to `path` atomically.
pub fn write_thumbnail(path: &Path, plane: ndarray::ArrayView2<'_, f32>, max_side: usize) -> Result<(), VfsError> {
    write_atomic(path, &encode_png(&thumbnail(plane, max_side), path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbnails_are_small_stretched_and_valid_png() {
        let plane = Array2::from_shape_fn((300, 200), |(y, _)| y as f32 * 10.0);
        let t = thumbnail(plane.view(), 64);
        assert_eq!(t.dim(), (60, 40), "block size 5 keeps the aspect ratio");
        assert_eq!(t[[0, 0]], 0);
        assert_eq!(t[[59, 0]], 255);
        assert!(t[[30, 0]] > 100 && t[[30, 0]] < 160);
        let png = encode_png(&t, Path::new("t.png")).expect("encodes");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let flat = thumbnail(Array2::from_elem((4, 4), 7.0).view(), 64);
        assert!(flat.iter().all(|&v| v == 0), "a constant plane is black, not NaN");
    }
}
