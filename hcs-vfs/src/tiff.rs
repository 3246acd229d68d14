//! TIFF files through the `tiff` crate: u8 / u16 / f32 grey planes, single and multi-page; reads
//! the compressions microscopes write (LZW, Deflate, PackBits); writes uncompressed or Deflate.
//!
//! Every failure is a [`VfsError`] naming the file. A header is checked against [`TiffLimits`]
//! before any pixel buffer is allocated, and a decoder panic (a bug in a dependency) is caught
//! and reported as a corrupt file rather than taking the process down.

use std::io::{Cursor, Read, Seek};
use std::path::Path;

use ndarray::Array2;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::{Compression, DeflateLevel, TiffEncoder, colortype};

use crate::VfsError;
use crate::atomic::write_atomic;
use crate::plane::PlaneData;

/// How TIFFs are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TiffCompression {
    /// No compression (fastest to write and read).
    #[default]
    None,
    /// Deflate (zlib), balanced level.
    Deflate,
}

/// Bounds on what a TIFF header may claim.
#[derive(Clone, Copy, Debug)]
pub struct TiffLimits {
    /// Largest plane accepted, in pixels (width × height).
    pub max_pixels: u64,
    /// Most pages read from one file.
    pub max_pages: usize,
}

impl Default for TiffLimits {
    fn default() -> Self {
        // 2^31 pixels: a 46 000² mosaic; far above any camera tile, far below a hostile header.
        Self { max_pixels: 1 << 31, max_pages: 100_000 }
    }
}

/// Read every page of a TIFF file.
pub fn read_tiff(path: &Path, limits: TiffLimits) -> Result<Vec<PlaneData>, VfsError> {
    let bytes = std::fs::read(path).map_err(|e| VfsError::io(path, e))?;
    decode_tiff(&bytes, path, limits)
}

/// Decode TIFF bytes; `path` is only used in errors.
pub fn decode_tiff(bytes: &[u8], path: &Path, limits: TiffLimits) -> Result<Vec<PlaneData>, VfsError> {
    if !(bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+"))
    {
        return Err(VfsError::NotTiff { path: path.to_path_buf() });
    }
    let file_len = bytes.len() as u64;
    let result = std::panic::catch_unwind(|| decode_pages(Cursor::new(bytes), path, limits, file_len));
    match result {
        Ok(r) => r,
        Err(_) => Err(VfsError::CorruptTiff { path: path.to_path_buf(), message: "the decoder failed".into() }),
    }
}

fn corrupt(path: &Path, e: impl std::fmt::Display) -> VfsError {
    let message = e.to_string();
    if message.contains("failed to fill whole buffer") || message.contains("UnexpectedEof") {
        VfsError::TruncatedTiff { path: path.to_path_buf() }
    } else {
        VfsError::CorruptTiff { path: path.to_path_buf(), message }
    }
}

fn decode_pages<R: Read + Seek>(
    reader: R,
    path: &Path,
    limits: TiffLimits,
    file_len: u64,
) -> Result<Vec<PlaneData>, VfsError> {
    let mut decoder_limits = Limits::default();
    decoder_limits.decoding_buffer_size = usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new(reader).map_err(|e| corrupt(path, e))?.with_limits(decoder_limits);
    let mut pages = Vec::new();
    loop {
        let (w, h) = decoder.dimensions().map_err(|e| corrupt(path, e))?;
        let pixels = u64::from(w) * u64::from(h);
        if pixels > limits.max_pixels || w == 0 || h == 0 {
            return Err(VfsError::ImageTooLarge {
                path: path.to_path_buf(),
                width: w,
                height: h,
                max_pixels: limits.max_pixels,
            });
        }
        let color = decoder.colortype().map_err(|e| corrupt(path, e))?;
        let bytes_per_sample = match color {
            ColorType::Gray(8) => 1,
            ColorType::Gray(16) => 2,
            ColorType::Gray(32) => 4,
            other => {
                return Err(VfsError::UnsupportedTiff {
                    path: path.to_path_buf(),
                    what: format!("{other:?} samples (hcs reads 8/16-bit unsigned and 32-bit float grey)"),
                });
            }
        };
        let compression: u16 =
            decoder.find_tag_unsigned(tiff::tags::Tag::Compression).map_err(|e| corrupt(path, e))?.unwrap_or(1);
        if compression == 1 && pixels * bytes_per_sample > file_len {
            // An uncompressed image cannot hold more bytes than the file: truncated or lying header.
            return Err(VfsError::TruncatedTiff { path: path.to_path_buf() });
        }
        let data = decoder.read_image().map_err(|e| corrupt(path, e))?;
        let shape = (h as usize, w as usize);
        let plane = match data {
            DecodingResult::U8(v) => Array2::from_shape_vec(shape, v).map(PlaneData::U8),
            DecodingResult::U16(v) => Array2::from_shape_vec(shape, v).map(PlaneData::U16),
            DecodingResult::F32(v) => Array2::from_shape_vec(shape, v).map(PlaneData::F32),
            other => {
                return Err(VfsError::UnsupportedTiff {
                    path: path.to_path_buf(),
                    what: format!("sample format {}", result_kind(&other)),
                });
            }
        }
        .map_err(|e| corrupt(path, e))?;
        pages.push(plane);
        if !decoder.more_images() {
            break;
        }
        if pages.len() >= limits.max_pages {
            return Err(VfsError::CorruptTiff {
                path: path.to_path_buf(),
                message: format!("more than {} pages", limits.max_pages),
            });
        }
        decoder.next_image().map_err(|e| corrupt(path, e))?;
    }
    Ok(pages)
}

fn result_kind(r: &DecodingResult) -> &'static str {
    match r {
        DecodingResult::U8(_) => "u8",
        DecodingResult::U16(_) => "u16",
        DecodingResult::U32(_) => "u32",
        DecodingResult::U64(_) => "u64",
        DecodingResult::F16(_) => "f16",
        DecodingResult::F32(_) => "f32",
        DecodingResult::F64(_) => "f64",
        DecodingResult::I8(_) => "i8",
        DecodingResult::I16(_) => "i16",
        DecodingResult::I32(_) => "i32",
        DecodingResult::I64(_) => "i64",
    }
}

/// Encode planes as one (multi-page) TIFF in memory.
pub fn encode_tiff(planes: &[PlaneData], compression: TiffCompression, path: &Path) -> Result<Vec<u8>, VfsError> {
    let mut out = Cursor::new(Vec::new());
    let err =
        |e: tiff::TiffError| VfsError::CorruptTiff { path: path.to_path_buf(), message: format!("encoding: {e}") };
    {
        let mut encoder = TiffEncoder::new(&mut out).map_err(err)?;
        if compression == TiffCompression::Deflate {
            encoder = encoder.with_compression(Compression::Deflate(DeflateLevel::Balanced));
        }
        for plane in planes {
            let (h, w) = plane.dim();
            let (w, h) = (
                u32::try_from(w).map_err(|_| VfsError::ImageTooLarge {
                    path: path.to_path_buf(),
                    width: u32::MAX,
                    height: 0,
                    max_pixels: 0,
                })?,
                u32::try_from(h).map_err(|_| VfsError::ImageTooLarge {
                    path: path.to_path_buf(),
                    width: 0,
                    height: u32::MAX,
                    max_pixels: 0,
                })?,
            );
            match plane {
                PlaneData::U8(a) => encoder.write_image::<colortype::Gray8>(w, h, &contiguous(a)).map_err(err)?,
                PlaneData::U16(a) => encoder.write_image::<colortype::Gray16>(w, h, &contiguous(a)).map_err(err)?,
                PlaneData::F32(a) => {
                    encoder.write_image::<colortype::Gray32Float>(w, h, &contiguous(a)).map_err(err)?
                }
            }
        }
    }
    Ok(out.into_inner())
}

fn contiguous<T: Copy>(a: &Array2<T>) -> std::borrow::Cow<'_, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

/// Atomically write planes as one (multi-page) TIFF file.
pub fn write_tiff(path: &Path, planes: &[PlaneData], compression: TiffCompression) -> Result<(), VfsError> {
    let bytes = encode_tiff(planes, compression, path)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("hcs-tiff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        dir.join(name)
    }

    fn ramp(h: usize, w: usize) -> Array2<u16> {
        Array2::from_shape_fn((h, w), |(y, x)| (y * 1000 + x * 7) as u16)
    }

    #[test]
    fn every_dtype_round_trips_exactly_single_and_multi_page() {
        for compression in [TiffCompression::None, TiffCompression::Deflate] {
            let planes = vec![PlaneData::U16(ramp(5, 7)), PlaneData::U16(ramp(5, 7).mapv(|v| v / 2))];
            let path = tmp(&format!("multi-{compression:?}.tif"));
            write_tiff(&path, &planes, compression).expect("write");
            assert_eq!(read_tiff(&path, TiffLimits::default()).expect("read"), planes);

            for plane in [
                PlaneData::U8(Array2::from_shape_fn((3, 4), |(y, x)| (y * 4 + x) as u8)),
                PlaneData::F32(Array2::from_shape_fn((3, 4), |(y, x)| y as f32 - x as f32 * 0.5)),
            ] {
                let path = tmp(&format!("single-{:?}-{compression:?}.tif", plane.dtype()));
                write_tiff(&path, std::slice::from_ref(&plane), compression).expect("write");
                assert_eq!(read_tiff(&path, TiffLimits::default()).expect("read"), vec![plane]);
            }
        }
    }

    #[test]
    fn reads_the_compressions_microscopes_write() {
        let data = ramp(33, 47);
        for compression in [Compression::Lzw, Compression::Packbits, Compression::Deflate(DeflateLevel::Best)] {
            let mut out = Cursor::new(Vec::new());
            TiffEncoder::new(&mut out)
                .expect("encoder")
                .with_compression(compression)
                .write_image::<colortype::Gray16>(47, 33, data.as_slice().expect("contiguous"))
                .expect("encode");
            let pages = decode_tiff(out.get_ref(), Path::new("c.tif"), TiffLimits::default()).expect("decode");
            assert_eq!(pages, vec![PlaneData::U16(data.clone())]);
        }
    }

    #[test]
    fn a_file_that_is_not_a_tiff_is_named_as_such() {
        let path = tmp("fake.tif");
        std::fs::write(&path, b"PK\x03\x04 this is a zip").expect("write");
        let err = read_tiff(&path, TiffLimits::default()).expect_err("not a tiff");
        assert!(matches!(err, VfsError::NotTiff { .. }));
        assert!(err.to_string().contains("fake.tif"), "{err}");
    }

    #[test]
    fn truncated_files_are_reported_not_padded() {
        let bytes =
            encode_tiff(&[PlaneData::U16(ramp(64, 64))], TiffCompression::None, Path::new("x")).expect("encode");
        for cut in [bytes.len() / 2, bytes.len() - 10, 12] {
            let err = decode_tiff(&bytes[..cut], Path::new("cut.tif"), TiffLimits::default())
                .expect_err("truncated must fail");
            assert!(
                matches!(err, VfsError::TruncatedTiff { .. } | VfsError::CorruptTiff { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_rejected_before_allocating() {
        // A valid 1×1 u16 TIFF whose ImageWidth/ImageLength are patched to 100 000.
        let mut bytes =
            encode_tiff(&[PlaneData::U16(ramp(1, 1))], TiffCompression::None, Path::new("x")).expect("encode");
        let ifd = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let count = u16::from_le_bytes([bytes[ifd], bytes[ifd + 1]]) as usize;
        for i in 0..count {
            let e = ifd + 2 + i * 12;
            let tag = u16::from_le_bytes([bytes[e], bytes[e + 1]]);
            if tag == 256 || tag == 257 {
                let typ = u16::from_le_bytes([bytes[e + 2], bytes[e + 3]]);
                if typ == 3 {
                    bytes[e + 8..e + 10].copy_from_slice(&(50_000u16).to_le_bytes());
                } else {
                    bytes[e + 8..e + 12].copy_from_slice(&(100_000u32).to_le_bytes());
                }
            }
        }
        let err = decode_tiff(&bytes, Path::new("huge.tif"), TiffLimits::default()).expect_err("too large");
        assert!(matches!(err, VfsError::ImageTooLarge { width: 100_000, .. }), "{err}");
    }
}
