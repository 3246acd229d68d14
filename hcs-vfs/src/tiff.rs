//! TIFF files through the `tiff` crate: u8 / u16 / f32 grey planes, single and multi-page, either
//! byte order, strips or tiles; reads the compressions microscopes and tifffile write (LZW,
//! Deflate, PackBits, zstd; the LZW pages the crate stops early are decoded chunk by chunk with
//! `weezl`) as their stored values; writes uncompressed or Deflate (through libdeflate:
//! `tiff_deflate`).
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
use tiff::tags::Tag;

use crate::VfsError;
use crate::atomic::write_atomic;
use crate::fill::F32Out;
use crate::plane::{Dtype, PlaneData};
pub use crate::tiff_tags::{PageTags, read_tiff_descriptions};

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
    /// The file is one image (a plate format with one image per file): reading its first page
    /// refuses a file with more full-size pages (a z-stack saved as one multi-page TIFF), whose
    /// other images would be left out. Reduced-resolution pages (thumbnails) are allowed.
    pub sole_image: bool,
}

impl Default for TiffLimits {
    fn default() -> Self {
        // 2^31 pixels: a 46 000² mosaic; far above any camera tile, far below a hostile header.
        Self { max_pixels: 1 << 31, max_pages: 100_000, sole_image: false }
    }
}

/// Read every page of a TIFF file.
pub fn read_tiff(path: &Path, limits: TiffLimits) -> Result<Vec<PlaneData>, VfsError> {
    with_file_bytes(path, |bytes| decode_tiff(bytes, path, limits))
}

/// Read page `page` (0-based) of a TIFF file, decoding no other page.
pub fn read_tiff_page(path: &Path, page: usize, limits: TiffLimits) -> Result<PlaneData, VfsError> {
    on_page(path, page, limits, |decoder, bytes, info| page_plane(decoder, bytes, path, info)).map(|(plane, _)| plane)
}

/// Read page `page` (0-based) of a TIFF file and append its samples, as f32 in row-major order,
/// to `out` (a `Vec`, or one plane's part of a stack: [`crate::fill`]); its (height, width) and
/// the dtype its samples are stored in (a caller stacking planes of one plate checks that they
/// agree: 8-bit samples among 16-bit ones would be read as dark 16-bit values). A little-endian uncompressed page is converted from the file's
/// bytes straight into `out`, with no plane in between; any other page is decoded as by
/// [`read_tiff`] first. When `out` has no room for the page, it is given room for `planes`
/// pages of its shape (this one included: a stack read plane by plane grows once, not at
/// every plane nor by doublings within the first). On error `out` is left as it was.
pub fn read_tiff_page_f32(
    path: &Path,
    page: usize,
    limits: TiffLimits,
    out: &mut impl F32Out,
    planes: usize,
) -> Result<((usize, usize), Dtype), VfsError> {
    let before = out.written();
    let result = on_page(path, page, limits, |decoder, bytes, info| {
        // Room is made once the page's samples are found in the file (its strips) or decoded:
        // a header claiming a huge page in a small file asks for nothing.
        let plane = info.shape.0 * info.shape.1;
        match uncompressed_strips(decoder, bytes, info) {
            Some((strips, bps)) => {
                out.make_room(plane, planes);
                match bps {
                    2 => strips.iter().for_each(|strip| extend_f32_from_le_u16(strip, out)),
                    _ => strips.iter().for_each(|strip| out.append(strip, f32::from)),
                }
                Ok(if bps == 2 { Dtype::U16 } else { Dtype::U8 })
            }
            None => {
                let decoded = decoded_plane(decoder, bytes, path, info)?;
                out.make_room(plane, planes);
                decoded.extend_f32(out);
                Ok(decoded.dtype())
            }
        }
    });
    if result.is_err() {
        out.truncate_to(before);
    }
    result.map(|(dtype, info)| (info.shape, dtype))
}

/// `read` on page `page` of a TIFF file (the pages before it checked, none decoded, none after
/// it read), with the page's facts; an error naming the file when it has no such page.
fn on_page<R>(
    path: &Path,
    page: usize,
    limits: TiffLimits,
    mut read: impl for<'a> FnMut(&mut Decoder<Cursor<&'a [u8]>>, &'a [u8], PageInfo) -> Result<R, VfsError>,
) -> Result<(R, PageInfo), VfsError> {
    with_file_bytes(path, |bytes| {
        guarded(bytes, path, |file_len| {
            let (mut found, mut pages) = (None, 0);
            walk_pages(bytes, path, limits, file_len, |decoder, info, index| {
                pages = index + 1;
                if index < page {
                    return Ok(true);
                }
                found = Some((read(decoder, bytes, info)?, info));
                if limits.sole_image && page == 0 && decoder.more_images() {
                    let size = (u32::try_from(info.shape.1).unwrap_or(0), u32::try_from(info.shape.0).unwrap_or(0));
                    let images = full_size_pages(decoder, size);
                    if images > 1 {
                        return Err(VfsError::UnsupportedTiff {
                            path: path.to_path_buf(),
                            what: format!(
                                "{images} full-size images in one file, where the plate's format has one image per file: the other {} would be left out (a z-stack or time series saved as one multi-page TIFF? save one image per file)",
                                images - 1
                            ),
                        });
                    }
                }
                Ok(false)
            })?;
            found.ok_or_else(|| VfsError::CorruptTiff {
                path: path.to_path_buf(),
                message: format!("page {page} requested, the file has {pages}"),
            })
        })
    })
}

/// Run `f` on a file's bytes, read into this thread's read buffer: the buffer's pages are
/// faulted in once per thread, not once per file (a fresh buffer of a 2 MiB plane's file was 2 MiB
/// for the kernel to zero before the read copied the file over it).
fn with_file_bytes<R>(path: &Path, f: impl FnOnce(&[u8]) -> Result<R, VfsError>) -> Result<R, VfsError> {
    /// A buffer grown past this for one large file is not kept for the next.
    const KEEP_BYTES: usize = 16 << 20;
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let read = |bytes: &mut Vec<u8>| -> Result<(), VfsError> {
        let mut file = std::fs::File::open(path).map_err(|e| VfsError::io(path, e))?;
        let len = file.metadata().map_or(0, |m| usize::try_from(m.len()).unwrap_or(0));
        bytes.clear();
        bytes.reserve(len);
        file.read_to_end(bytes).map_err(|e| VfsError::io(path, e))?;
        Ok(())
    };
    BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            let result = read(&mut buffer).and_then(|()| f(&buffer));
            if buffer.capacity() > KEEP_BYTES {
                *buffer = Vec::new();
            }
            result
        }
        // In use further up this thread's stack: a buffer of its own.
        Err(_) => {
            let mut buffer = Vec::new();
            read(&mut buffer)?;
            f(&buffer)
        }
    })
}

/// Decode TIFF bytes; `path` is only used in errors.
pub fn decode_tiff(bytes: &[u8], path: &Path, limits: TiffLimits) -> Result<Vec<PlaneData>, VfsError> {
    guarded(bytes, path, |file_len| decode_pages(bytes, path, limits, file_len))
}

/// Run `decode` (given the file's length) on bytes that start as a TIFF, a decoder panic
/// reported as a corrupt file ([`without_panics`]).
fn guarded<R>(bytes: &[u8], path: &Path, decode: impl FnOnce(u64) -> Result<R, VfsError>) -> Result<R, VfsError> {
    if bytes.is_empty() {
        // As the header check says it: a copy that never finished is no TIFF of another kind.
        return Err(VfsError::EmptyFile { path: path.to_path_buf() });
    }
    if !(bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+"))
    {
        return Err(VfsError::NotTiff { path: path.to_path_buf() });
    }
    let file_len = bytes.len() as u64;
    without_panics(path, || decode(file_len))
}

/// `f`'s result, or a corrupt-file error naming `path` when it panics (a decoder's bug, not a
/// crash).
fn without_panics<R>(path: &Path, f: impl FnOnce() -> Result<R, VfsError>) -> Result<R, VfsError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
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

/// What the checks of a page found: its shape, bytes per sample and compression.
#[derive(Clone, Copy)]
struct PageInfo {
    shape: (usize, usize),
    bytes_per_sample: u64,
    compression: u16,
}

fn decode_pages(bytes: &[u8], path: &Path, limits: TiffLimits, file_len: u64) -> Result<Vec<PlaneData>, VfsError> {
    let mut pages = Vec::new();
    walk_pages(bytes, path, limits, file_len, |decoder, info, _| {
        pages.push(page_plane(decoder, bytes, path, info)?);
        Ok(true)
    })?;
    Ok(pages)
}

/// The decoder's current page as a plane: straight from the strips when it is the simple case
/// ([`uncompressed_strips`]), else through the general decoder.
fn page_plane<'a>(
    decoder: &mut Decoder<Cursor<&'a [u8]>>,
    bytes: &'a [u8],
    path: &Path,
    info: PageInfo,
) -> Result<PlaneData, VfsError> {
    let plane =
        uncompressed_strips(decoder, bytes, info).and_then(|(strips, bps)| plane_of_strips(&strips, bps, info.shape));
    match plane {
        Some(plane) => Ok(plane),
        None => decoded_plane(decoder, bytes, path, info),
    }
}

/// Check each page against the limits and call `visit` with the decoder on it, its facts and
/// its index, until `visit` returns `false` or the pages end.
fn walk_pages<'a>(
    bytes: &'a [u8],
    path: &Path,
    limits: TiffLimits,
    file_len: u64,
    mut visit: impl FnMut(&mut Decoder<Cursor<&'a [u8]>>, PageInfo, usize) -> Result<bool, VfsError>,
) -> Result<(), VfsError> {
    let mut decoder_limits = Limits::default();
    decoder_limits.decoding_buffer_size = usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new(Cursor::new(bytes)).map_err(|e| corrupt(path, e))?.with_limits(decoder_limits);
    let mut index = 0;
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
        let info = PageInfo { shape: (h as usize, w as usize), bytes_per_sample, compression };
        if !visit(&mut decoder, info, index)? || !decoder.more_images() {
            return Ok(());
        }
        index += 1;
        if index >= limits.max_pages {
            return Err(VfsError::CorruptTiff {
                path: path.to_path_buf(),
                message: format!("more than {} pages", limits.max_pages),
            });
        }
        decoder.next_image().map_err(|e| corrupt(path, e))?;
    }
}

/// The decoder's current page through the `tiff` crate's general decoder, as its stored values:
/// a "min is white" page is not inverted, so it reads as tifffile (and the peer) read it and as
/// [`uncompressed_strips`] reads the uncompressed ones. An LZW page that decoder stops early
/// ("no lzw end code found": a known fault of the crate's reader on valid tiled files, and
/// files whose writer left out the end code) is decoded chunk by chunk ([`crate::lzw_page`]).
fn decoded_plane(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    path: &Path,
    PageInfo { shape, bytes_per_sample, compression }: PageInfo,
) -> Result<PlaneData, VfsError> {
    let min_is_white = decoder.find_tag_unsigned::<u16>(Tag::PhotometricInterpretation).ok().flatten() == Some(0);
    let decoded = match decoder.read_image() {
        Ok(decoded) => decoded,
        Err(e) if compression == 5 && e.to_string().contains("no lzw end code") => {
            let format = decoder
                .find_tag_unsigned_vec::<u16>(Tag::SampleFormat)
                .ok()
                .flatten()
                .and_then(|v| v.first().copied())
                .unwrap_or(1);
            if min_is_white && format == 3 {
                return Err(float_min_is_white(path));
            }
            return crate::lzw_page::decode(decoder, bytes, shape, bytes_per_sample as usize, format).map_err(|why| {
                match why {
                    crate::lzw_page::PageError::Unsupported(what) => {
                        VfsError::UnsupportedTiff { path: path.to_path_buf(), what }
                    }
                    crate::lzw_page::PageError::Corrupt(why) => {
                        corrupt(path, format!("{e}; decoded chunk by chunk: {why}"))
                    }
                }
            });
        }
        Err(e) => return Err(corrupt(path, e)),
    };
    let plane = match decoded {
        DecodingResult::U8(mut v) => {
            if min_is_white {
                v.iter_mut().for_each(|s| *s = u8::MAX - *s);
            }
            Array2::from_shape_vec(shape, v).map(PlaneData::U8)
        }
        DecodingResult::U16(mut v) => {
            if min_is_white {
                v.iter_mut().for_each(|s| *s = u16::MAX - *s);
            }
            Array2::from_shape_vec(shape, v).map(PlaneData::U16)
        }
        // The decoder gave 1 − v for a float "min is white" page, which does not round-trip.
        DecodingResult::F32(_) if min_is_white => return Err(float_min_is_white(path)),
        DecodingResult::F32(v) => Array2::from_shape_vec(shape, v).map(PlaneData::F32),
        other => {
            return Err(VfsError::UnsupportedTiff {
                path: path.to_path_buf(),
                what: format!("sample format {}", result_kind(&other)),
            });
        }
    };
    plane.map_err(|e| corrupt(path, e))
}

/// A float page with photometric "min is white": the decoder gives 1 − v, which does not
/// round-trip, so it is refused (by the header reader too).
fn float_min_is_white(path: &Path) -> VfsError {
    VfsError::UnsupportedTiff {
        path: path.to_path_buf(),
        what: "32-bit float samples with photometric min-is-white".into(),
    }
}

/// The strips of the decoder's current page, as slices of the file's bytes holding exactly the
/// page's samples, and the bytes per sample, when the page is the common simple case:
/// little-endian, uncompressed, unsigned 8- or 16-bit grey in strips of whole rows, no
/// predictor. Read straight from the file's bytes (the general decoder zeroes a buffer and
/// copies each strip into it first: 2–3 % of a plate run). `None`: anything else, or anything
/// that does not add up; the general decoder then reads the page (and says what is wrong with
/// it).
fn uncompressed_strips<'a>(
    decoder: &mut Decoder<Cursor<&'a [u8]>>,
    bytes: &'a [u8],
    PageInfo { shape: (h, w), bytes_per_sample, compression }: PageInfo,
) -> Option<(Vec<&'a [u8]>, usize)> {
    use tiff::decoder::ChunkType;
    use tiff::tags::Tag;
    if compression != 1 || !bytes.starts_with(b"II") || decoder.get_chunk_type() != ChunkType::Strip {
        return None;
    }
    fn one(decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag) -> Option<Option<u64>> {
        decoder.find_tag_unsigned::<u64>(tag).ok()
    }
    let format = decoder.find_tag_unsigned_vec::<u64>(Tag::SampleFormat).ok()?.and_then(|v| v.first().copied());
    let format = format.unwrap_or(1);
    let samples = one(decoder, Tag::SamplesPerPixel)?.unwrap_or(1);
    let planar = one(decoder, Tag::PlanarConfiguration)?.unwrap_or(1);
    let predictor = one(decoder, Tag::Predictor)?.unwrap_or(1);
    if format != 1 || samples != 1 || planar != 1 || predictor != 1 || !matches!(bytes_per_sample, 1 | 2) {
        return None;
    }
    let rows_per_strip = usize::try_from(one(decoder, Tag::RowsPerStrip)?.unwrap_or(h as u64)).ok()?.clamp(1, h.max(1));
    let offsets = decoder.find_tag_unsigned_vec::<u64>(Tag::StripOffsets).ok()??;
    let counts = decoder.find_tag_unsigned_vec::<u64>(Tag::StripByteCounts).ok()??;
    if offsets.len() != h.div_ceil(rows_per_strip) || counts.len() != offsets.len() {
        return None;
    }
    let bps = bytes_per_sample as usize;
    let mut strips = Vec::with_capacity(offsets.len());
    for (i, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let rows = rows_per_strip.min(h - i * rows_per_strip);
        let needed = rows.checked_mul(w)?.checked_mul(bps)?;
        let start = usize::try_from(offset).ok()?;
        if (count as usize) < needed {
            return None;
        }
        strips.push(bytes.get(start..start.checked_add(needed)?)?);
    }
    Some((strips, bps))
}

/// A plane of the samples in `strips` ([`uncompressed_strips`]).
fn plane_of_strips(strips: &[&[u8]], bps: usize, (h, w): (usize, usize)) -> Option<PlaneData> {
    let plane = if bps == 2 {
        let mut v: Vec<u16> = Vec::with_capacity(h * w);
        for strip in strips {
            // On a little-endian machine an aligned strip already is the samples: one copy.
            match bytemuck::try_cast_slice::<u8, u16>(strip) {
                Ok(samples) if cfg!(target_endian = "little") => v.extend_from_slice(samples),
                // A strip at an odd offset: copied bytewise into the (aligned) samples.
                _ if cfg!(target_endian = "little") => {
                    let start = v.len();
                    v.resize(start + strip.len() / 2, 0);
                    bytemuck::cast_slice_mut::<u16, u8>(&mut v[start..]).copy_from_slice(strip);
                }
                _ => v.extend(strip.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]))),
            }
        }
        PlaneData::U16(Array2::from_shape_vec((h, w), v).ok()?)
    } else {
        let v: Vec<u8> = strips.concat();
        PlaneData::U8(Array2::from_shape_vec((h, w), v).ok()?)
    };
    Some(plane)
}

/// Append little-endian 16-bit samples as f32.
fn extend_f32_from_le_u16(strip: &[u8], out: &mut impl F32Out) {
    match bytemuck::try_cast_slice::<u8, u16>(strip) {
        Ok(samples) if cfg!(target_endian = "little") => out.append(samples, f32::from),
        // A strip at an odd offset (or a big-endian machine): its samples put in order first.
        _ => {
            let samples: Vec<u16> = strip.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
            out.append(&samples, f32::from);
        }
    }
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

/// What the header of a TIFF file says about its first image, read without decoding a pixel
/// ([`read_tiff_header`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TiffHeader {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Bits per sample (of the first sample).
    pub bits_per_sample: u16,
    /// Samples per pixel (1 for a grey plane).
    pub samples_per_pixel: u16,
    /// The SampleFormat tag: 1 unsigned integer, 2 signed integer, 3 IEEE float (1 when absent).
    pub sample_format: u16,
    /// The Compression tag (1: none).
    pub compression: u16,
    /// Where the image data ends: the largest strip or tile offset + byte count.
    pub data_end: u64,
    /// The file's length in bytes.
    pub file_len: u64,
    /// Full-size images in the file: the first and every later page of its size not marked
    /// reduced-resolution (a thumbnail or pyramid level). A z-stack saved as one file has
    /// several; a plate format that names one image per file reads only the first.
    pub pages: u32,
}

impl TiffHeader {
    /// The dtype hcs stores these samples as: 8/16-bit unsigned or 32-bit float grey; `None`
    /// for anything else (signed, other depths, several samples per pixel).
    pub fn dtype(&self) -> Option<Dtype> {
        match (self.samples_per_pixel, self.sample_format, self.bits_per_sample) {
            (1, 1, 8) => Some(Dtype::U8),
            (1, 1, 16) => Some(Dtype::U16),
            (1, 3, 32) => Some(Dtype::F32),
            _ => None,
        }
    }

    /// The samples in words, for messages (`16-bit unsigned`, `3 × 8-bit unsigned`).
    pub fn sample_description(&self) -> String {
        let kind = match self.sample_format {
            1 => "unsigned".to_owned(),
            2 => "signed".to_owned(),
            3 => "float".to_owned(),
            other => format!("sample format {other}"),
        };
        let one = format!("{}-bit {kind}", self.bits_per_sample);
        if self.samples_per_pixel == 1 { one } else { format!("{} × {one}", self.samples_per_pixel) }
    }
}

/// Read the header of a TIFF file (signature and first IFD, never the pixels) and check that the
/// file is long enough for every strip or tile the first image's header describes.
///
/// Errors name the file: [`VfsError::EmptyFile`], [`VfsError::NotTiff`],
/// [`VfsError::TruncatedTiff`] (the header or IFD itself is cut), [`VfsError::TruncatedData`]
/// (the header is whole but the data is cut short), [`VfsError::CorruptTiff`],
/// [`VfsError::UnsupportedTiff`] or [`VfsError::Io`].
pub fn read_tiff_header(path: &Path) -> Result<TiffHeader, VfsError> {
    let mut file = std::fs::File::open(path).map_err(|e| VfsError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| VfsError::io(path, e))?.len();
    if file_len == 0 {
        return Err(VfsError::EmptyFile { path: path.to_path_buf() });
    }
    let mut start = [0u8; 16];
    let got = read_up_to(&mut file, &mut start).map_err(|e| VfsError::io(path, e))?;
    let ifd_offset = first_ifd_offset(&start[..got], path)?;
    if ifd_offset >= file_len {
        return Err(VfsError::TruncatedTiff { path: path.to_path_buf() });
    }
    file.seek(std::io::SeekFrom::Start(0)).map_err(|e| VfsError::io(path, e))?;
    let reader = std::io::BufReader::with_capacity(4096, file);
    without_panics(path, || header_fields(reader, path, file_len))
}

/// Read the headers of many files in parallel; the results are in the order of `paths`.
pub fn read_tiff_headers(paths: &[std::path::PathBuf]) -> Vec<Result<TiffHeader, VfsError>> {
    use rayon::prelude::*;
    paths.par_iter().map(|p| read_tiff_header(p)).collect()
}

/// Fill `buf` as far as the reader allows; the number of bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The offset of the first IFD from the file's first bytes (classic TIFF or BigTIFF).
fn first_ifd_offset(start: &[u8], path: &Path) -> Result<u64, VfsError> {
    const SIGNATURES: [&[u8; 4]; 4] = [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"];
    let head = &start[..start.len().min(4)];
    let Some(signature) = SIGNATURES.iter().find(|s| s.starts_with(head)) else {
        return Err(VfsError::NotTiff { path: path.to_path_buf() });
    };
    let truncated = || VfsError::TruncatedTiff { path: path.to_path_buf() };
    let little = signature[0] == b'I';
    let big_tiff = signature[2] == b'+' || signature[3] == b'+';
    let field = |range: std::ops::Range<usize>| -> Result<u64, VfsError> {
        let bytes = start.get(range).ok_or_else(truncated)?;
        Ok(bytes.iter().enumerate().fold(0u64, |acc, (i, &b)| {
            let shift = if little { 8 * i } else { 8 * (bytes.len() - 1 - i) };
            acc | (u64::from(b) << shift)
        }))
    };
    if big_tiff { field(8..16) } else { field(4..8) }
}

/// The name of a TIFF compression hcs's reader does not decode (`None`: it does, or the code
/// is one of the bilevel fax ones, whose 1-bit samples the sample check refuses anyway).
fn undecoded_compression(code: u16) -> Option<&'static str> {
    match code {
        // none, CCITT RLE / fax 3 / fax 4, LZW, JPEG, Deflate (both codes), PackBits, zstd
        1..=5 | 7 | 8 | 32946 | 32773 | 50000 => None,
        6 => Some("old-style JPEG"),
        33003 | 33004 | 33005 | 34712 => Some("JPEG 2000"),
        34887 => Some("LERC"),
        34925 => Some("LZMA"),
        50001 | 34927 => Some("WebP"),
        50002 | 52546 => Some("JPEG XL"),
        _ => Some("an unknown compression"),
    }
}

fn header_fields<R: Read + Seek>(reader: R, path: &Path, file_len: u64) -> Result<TiffHeader, VfsError> {
    use tiff::decoder::ChunkType;
    use tiff::tags::Tag;

    let err = |e: tiff::TiffError| match e {
        tiff::TiffError::UnsupportedError(u) => {
            VfsError::UnsupportedTiff { path: path.to_path_buf(), what: u.to_string() }
        }
        other => corrupt(path, other),
    };
    let mut decoder = Decoder::new(reader).map_err(err)?;
    let (width, height) = decoder.dimensions().map_err(err)?;
    let first = |v: Option<Vec<u16>>, default: u16| v.and_then(|v| v.first().copied()).unwrap_or(default);
    let bits_per_sample = first(decoder.find_tag_unsigned_vec(Tag::BitsPerSample).map_err(err)?, 1);
    let sample_format = first(decoder.find_tag_unsigned_vec(Tag::SampleFormat).map_err(err)?, 1);
    let samples_per_pixel = decoder.find_tag_unsigned(Tag::SamplesPerPixel).map_err(err)?.unwrap_or(1);
    let compression = decoder.find_tag_unsigned(Tag::Compression).map_err(err)?.unwrap_or(1);
    if let Some(name) = undecoded_compression(compression) {
        return Err(VfsError::UnsupportedTiff {
            path: path.to_path_buf(),
            what: format!(
                "compression {compression} ({name}); hcs decodes none, LZW, Deflate, PackBits, JPEG and zstd"
            ),
        });
    }
    let photometric = decoder.find_tag_unsigned::<u16>(Tag::PhotometricInterpretation).map_err(err)?;
    if photometric == Some(0) && sample_format == 3 {
        // As the pixel reader refuses it (decoded_plane).
        return Err(float_min_is_white(path));
    }
    let bad = |message: String| VfsError::CorruptTiff { path: path.to_path_buf(), message };
    let (chunk_w, chunk_h) = decoder.chunk_dimensions();
    let chunk_bytes = u64::from(chunk_w) * u64::from(chunk_h.min(height)) * u64::from(bits_per_sample).div_ceil(8);
    let plane_bytes = u64::from(width) * u64::from(height) * u64::from(bits_per_sample).div_ceil(8);
    if chunk_bytes > crate::lzw_page::chunk_limit(usize::try_from(plane_bytes).unwrap_or(usize::MAX)) as u64 {
        return Err(bad(format!("{chunk_w} × {chunk_h} chunks for a {width} × {height} image")));
    }
    let (offsets_tag, counts_tag, what) = match decoder.get_chunk_type() {
        ChunkType::Strip => (Tag::StripOffsets, Tag::StripByteCounts, "strip"),
        ChunkType::Tile => (Tag::TileOffsets, Tag::TileByteCounts, "tile"),
    };
    let offsets: Vec<u64> =
        decoder.find_tag_unsigned_vec(offsets_tag).map_err(err)?.ok_or_else(|| bad(format!("no {what} offsets")))?;
    let counts: Vec<u64> =
        decoder.find_tag_unsigned_vec(counts_tag).map_err(err)?.ok_or_else(|| bad(format!("no {what} byte counts")))?;
    if offsets.len() != counts.len() || offsets.is_empty() {
        return Err(bad(format!("{} {what} offsets but {} byte counts", offsets.len(), counts.len())));
    }
    let mut data_end = 0u64;
    let mut data_bytes = 0u64;
    for (&offset, &count) in offsets.iter().zip(&counts) {
        let end = offset.checked_add(count).ok_or_else(|| bad(format!("a {what} ends beyond 2^64 bytes")))?;
        data_end = data_end.max(end);
        data_bytes = data_bytes.saturating_add(count);
    }
    if data_end > file_len {
        return Err(VfsError::TruncatedData { path: path.to_path_buf(), file_len, data_end });
    }
    let needed = u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(u64::from(samples_per_pixel))
        .saturating_mul(u64::from(bits_per_sample))
        .div_ceil(8);
    if compression == 1 && ChunkType::Strip == decoder.get_chunk_type() && data_bytes < needed {
        return Err(bad(format!(
            "the strips hold {data_bytes} bytes, an uncompressed {width}×{height} image of {bits_per_sample}-bit samples needs {needed}"
        )));
    }
    let pages = full_size_pages(&mut decoder, (width, height));
    Ok(TiffHeader {
        width,
        height,
        bits_per_sample,
        samples_per_pixel,
        sample_format,
        compression,
        data_end,
        file_len,
        pages,
    })
}

/// Most pages [`full_size_pages`] walks: past it, the count stops (a chain of IFDs is only
/// bounded by the file).
const MAX_PAGES_COUNTED: u32 = 1 << 16;

/// The full-size pages of the file, the decoder's current (first) one included: pages of
/// `size` whose NewSubfileType does not mark them reduced-resolution or a transparency mask. A page that cannot be
/// read ends the count (the pixels of the first are what hcs reads; the header check is about
/// them).
fn full_size_pages<R: Read + Seek>(decoder: &mut Decoder<R>, size: (u32, u32)) -> u32 {
    let mut pages = 1;
    let mut walked = 1;
    while walked < MAX_PAGES_COUNTED && decoder.more_images() {
        if decoder.next_image().is_err() {
            break;
        }
        walked += 1;
        let reduced = decoder
            .find_tag_unsigned::<u32>(tiff::tags::Tag::NewSubfileType)
            .ok()
            .flatten()
            // Bit 0: a reduced-resolution image; bit 2: a transparency mask of another page.
            .is_some_and(|t| t & 0b101 != 0);
        if !reduced && decoder.dimensions().ok() == Some(size) {
            pages += 1;
        }
    }
    pages
}

/// Encode planes as one (multi-page) TIFF in memory.
pub fn encode_tiff(planes: &[PlaneData], compression: TiffCompression, path: &Path) -> Result<Vec<u8>, VfsError> {
    encode_tiff_described(planes, compression, PageTags::default(), path)
}

/// Encode planes as one (multi-page) TIFF in memory, each page with `tags` (its description
/// and resolution).
pub fn encode_tiff_described(
    planes: &[PlaneData],
    compression: TiffCompression,
    tags: PageTags<'_>,
    path: &Path,
) -> Result<Vec<u8>, VfsError> {
    encode_tiff_big_above(planes, compression, tags, path, BIGTIFF_ABOVE)
}

/// [`encode_tiff_described`], as BigTIFF when the samples exceed `big_above` bytes.
fn encode_tiff_big_above(
    planes: &[PlaneData],
    compression: TiffCompression,
    tags: PageTags<'_>,
    path: &Path,
    big_above: u64,
) -> Result<Vec<u8>, VfsError> {
    let err =
        |e: tiff::TiffError| VfsError::CorruptTiff { path: path.to_path_buf(), message: format!("encoding: {e}") };
    // Classic TIFF addresses 4 GiB; a larger file (a big mosaic) is written as BigTIFF.
    let bytes: u64 = planes.iter().map(|p| (p.dim().0 * p.dim().1 * p.dtype().size()) as u64).sum();
    // Room for the samples and the tags up front: a buffer grown by doubling copied every
    // plane's bytes again (~1 % of a plate run's CPU in memcpy).
    let room = 4096 * planes.len() + tags.description.map_or(0, str::len) * planes.len();
    let mut out = Cursor::new(Vec::with_capacity(usize::try_from(bytes).unwrap_or(0).saturating_add(room)));
    if bytes > big_above {
        let encoder = TiffEncoder::new_big(&mut out).map_err(err)?;
        encode_pages(encoder, planes, compression, tags, path)?;
    } else {
        let encoder = TiffEncoder::new(&mut out).map_err(err)?;
        encode_pages(encoder, planes, compression, tags, path)?;
    }
    Ok(out.into_inner())
}

/// Sample bytes above which a file is written as BigTIFF (classic TIFF offsets are 32-bit; the
/// margin leaves room for tags and strip tables).
pub const BIGTIFF_ABOVE: u64 = (4 << 30) - (64 << 20);

fn encode_pages<W: std::io::Write + Seek, K: tiff::encoder::TiffKind>(
    mut encoder: TiffEncoder<W, K>,
    planes: &[PlaneData],
    compression: TiffCompression,
    tags: PageTags<'_>,
    path: &Path,
) -> Result<(), VfsError> {
    let err =
        |e: tiff::TiffError| VfsError::CorruptTiff { path: path.to_path_buf(), message: format!("encoding: {e}") };
    // Deflate pages go through libdeflate (`tiff_deflate`), strips compressed in parallel; the
    // `tiff` crate's own (flate2, one strip after another) only where that cannot be used.
    let ours = compression == TiffCompression::Deflate && crate::tiff_deflate::AVAILABLE;
    if compression == TiffCompression::Deflate && !ours {
        encoder = encoder.with_compression(Compression::Deflate(DeflateLevel::Balanced));
    }
    for plane in planes {
        let (w, h) = width_height(plane.dim(), path)?;
        match plane {
            PlaneData::U8(a) if ours => {
                crate::tiff_deflate::page::<colortype::Gray8, _, _>(&mut encoder, (w, h), &contiguous(a), tags)
            }
            PlaneData::U16(a) if ours => {
                crate::tiff_deflate::page::<colortype::Gray16, _, _>(&mut encoder, (w, h), &contiguous(a), tags)
            }
            PlaneData::F32(a) if ours => {
                crate::tiff_deflate::page::<colortype::Gray32Float, _, _>(&mut encoder, (w, h), &contiguous(a), tags)
            }
            PlaneData::U8(a) => page::<colortype::Gray8, _, _>(&mut encoder, (w, h), &contiguous(a), tags),
            PlaneData::U16(a) => page::<colortype::Gray16, _, _>(&mut encoder, (w, h), &contiguous(a), tags),
            PlaneData::F32(a) => page::<colortype::Gray32Float, _, _>(&mut encoder, (w, h), &contiguous(a), tags),
        }
        .map_err(err)?;
    }
    Ok(())
}

/// A plane's `(height, width)` as the TIFF's (width, height), or the error of a side too long
/// for a TIFF.
fn width_height((h, w): (usize, usize), path: &Path) -> Result<(u32, u32), VfsError> {
    let too_large = |width, height| VfsError::ImageTooLarge { path: path.to_path_buf(), width, height, max_pixels: 0 };
    Ok((u32::try_from(w).map_err(|_| too_large(u32::MAX, 0))?, u32::try_from(h).map_err(|_| too_large(0, u32::MAX))?))
}

/// One f32 plane as a single-page uncompressed TIFF of `dtype` whose page carries
/// `tags`: the bytes of [`encode_tiff_described`] of [`PlaneData::from_f32`], but a u8 or
/// u16 plane is narrowed one strip at a time into a strip-long buffer that the encoder copies
/// from, and an f32 plane's strips are written from its own samples. No narrowed copy of the
/// whole plane is made: for each 1024² plane of a checkpoint that was 2 MiB more to allocate,
/// write and read back (a fifth of a standard-plate checkpoint's writing time, with the page
/// faults of the fresh copy). A plane that [`PlaneData::from_f32`] narrows in parallel (a
/// mosaic) or whose samples are not contiguous is narrowed whole, as before.
pub fn encode_f32_plane_described(
    values: ndarray::ArrayView2<'_, f32>,
    dtype: Dtype,
    tags: PageTags<'_>,
    path: &Path,
) -> Result<Vec<u8>, VfsError> {
    let samples = match values.as_slice() {
        Some(s) if s.len() <= crate::plane::PARALLEL_SAMPLES => s,
        _ => {
            let plane = PlaneData::from_f32(values, dtype);
            return encode_tiff_described(&[plane], TiffCompression::None, tags, path);
        }
    };
    let err =
        |e: tiff::TiffError| VfsError::CorruptTiff { path: path.to_path_buf(), message: format!("encoding: {e}") };
    let (w, h) = width_height(values.dim(), path)?;
    let room = 4096 + tags.description.map_or(0, str::len);
    let mut out = Cursor::new(Vec::with_capacity((samples.len() * dtype.size()).saturating_add(room)));
    let mut encoder = TiffEncoder::new(&mut out).map_err(err)?;
    match dtype {
        Dtype::U8 => {
            narrowed_page::<colortype::Gray8, _, _>(&mut encoder, (w, h), samples, crate::plane::narrow_u8_into, tags)
        }
        Dtype::U16 => {
            narrowed_page::<colortype::Gray16, _, _>(&mut encoder, (w, h), samples, crate::plane::narrow_u16_into, tags)
        }
        Dtype::F32 => page::<colortype::Gray32Float, _, _>(&mut encoder, (w, h), samples, tags),
    }
    .map_err(err)?;
    Ok(out.into_inner())
}

/// One page whose samples are `samples` narrowed by `narrow` (into a slice as long), strip by
/// strip, with its description and resolution tags.
fn narrowed_page<C: colortype::ColorType, W: std::io::Write + Seek, K: tiff::encoder::TiffKind>(
    encoder: &mut TiffEncoder<W, K>,
    (w, h): (u32, u32),
    samples: &[f32],
    narrow: fn(&mut [std::mem::MaybeUninit<C::Inner>], &[f32]),
    tags: PageTags<'_>,
) -> tiff::TiffResult<()>
where
    C::Inner: Copy + Default,
    [C::Inner]: tiff::encoder::TiffValue,
{
    let mut image = encoder.new_image::<C>(w, h)?;
    if let Some(text) = tags.description {
        image.encoder().write_tag(Tag::ImageDescription, text)?;
    }
    if let Some(per_cm) = tags.pixels_per_cm() {
        image.resolution(tiff::tags::ResolutionUnit::Centimeter, per_cm);
    }
    let mut strip = Vec::new();
    let mut at = 0;
    while image.next_strip_sample_count() > 0 {
        let n = usize::try_from(image.next_strip_sample_count())?;
        let part = samples.get(at..at + n).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "fewer samples than the page's strips hold")
        })?;
        // Narrowed into the strip buffer's room: no zeroing pass first.
        strip.clear();
        strip.reserve(n);
        narrow(&mut strip.spare_capacity_mut()[..n], part);
        // SAFETY: `narrow` wrote all `n` elements (its room and `part` are both `n` long).
        unsafe { strip.set_len(n) };
        image.write_strip(&strip)?;
        at += n;
    }
    image.finish()
}

/// One page, with its description and resolution tags.
fn page<C: colortype::ColorType, W: std::io::Write + Seek, K: tiff::encoder::TiffKind>(
    encoder: &mut TiffEncoder<W, K>,
    (w, h): (u32, u32),
    data: &[C::Inner],
    tags: PageTags<'_>,
) -> tiff::TiffResult<()>
where
    [C::Inner]: tiff::encoder::TiffValue,
{
    let mut image = encoder.new_image::<C>(w, h)?;
    if let Some(text) = tags.description {
        image.encoder().write_tag(Tag::ImageDescription, text)?;
    }
    if let Some(per_cm) = tags.pixels_per_cm() {
        image.resolution(tiff::tags::ResolutionUnit::Centimeter, per_cm);
    }
    image.write_data(data)
}

/// The ImageDescription tag of a TIFF file's first image (`None` when it has none), read from
/// the header without decoding a pixel. A directory listing several (tifffile adds its own
/// JSON after a description it is given) gives the first, as tifffile reads it:
/// [`read_tiff_descriptions`] gives each.
pub fn read_tiff_description(path: &Path) -> Result<Option<String>, VfsError> {
    Ok(read_tiff_descriptions(path)?.into_iter().next())
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

/// Atomically write planes as one TIFF file whose pages carry `description`.
pub fn write_tiff_described(
    path: &Path,
    planes: &[PlaneData],
    compression: TiffCompression,
    description: &str,
) -> Result<(), VfsError> {
    let bytes = encode_tiff_described(planes, compression, PageTags::described(description), path)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages of `bytes` as the `tiff` crate's general decoder reads them.
    fn general_decoder(bytes: &[u8]) -> Vec<DecodingResult> {
        let mut decoder = Decoder::new(Cursor::new(bytes)).expect("decoder");
        let mut pages = vec![decoder.read_image().expect("page")];
        while decoder.more_images() {
            decoder.next_image().expect("next");
            pages.push(decoder.read_image().expect("page"));
        }
        pages
    }

    #[test]
    fn the_direct_strip_reader_gives_what_the_general_decoder_gives() {
        // 200-byte rows: the encoder cuts strips of about 8 KiB, so 97 rows end in a short strip.
        let u16s = Array2::from_shape_fn((97, 100), |(y, x)| ((y * 7919 + x * 104_729) % 65_536) as u16);
        let u8s = Array2::from_shape_fn((31, 77), |(y, x)| ((y * 31 + x * 17) % 256) as u8);
        let planes = [PlaneData::U16(u16s.clone()), PlaneData::U8(u8s.clone()), PlaneData::U16(u16s.t().to_owned())];
        // Written by the `tiff` crate itself, in strips of 40 rows (the last ones short).
        let mut out = Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut out).expect("encoder");
        for plane in &planes {
            let (h, w) = plane.dim();
            match plane {
                PlaneData::U16(a) => {
                    let mut image = encoder.new_image::<colortype::Gray16>(w as u32, h as u32).expect("image");
                    image.rows_per_strip(40).expect("strips");
                    image.write_data(a.as_standard_layout().as_slice().expect("contiguous")).expect("write");
                }
                PlaneData::U8(a) => {
                    let mut image = encoder.new_image::<colortype::Gray8>(w as u32, h as u32).expect("image");
                    image.rows_per_strip(12).expect("strips");
                    image.write_data(a.as_slice().expect("contiguous")).expect("write");
                }
                PlaneData::F32(_) => unreachable!(),
            }
        }
        let bytes = out.into_inner();
        let mut decoder = Decoder::new(Cursor::new(&bytes[..])).expect("decoder");
        let strips = decoder.find_tag_unsigned_vec::<u64>(Tag::StripOffsets).expect("tag").expect("offsets");
        assert!(strips.len() > 2, "several strips, the last one short: {}", strips.len());
        let info = PageInfo { shape: (97, 100), bytes_per_sample: 2, compression: 1 };
        let (strips, bps) = uncompressed_strips(&mut decoder, &bytes, info).expect("read straight from the strips");
        assert_eq!(plane_of_strips(&strips, bps, info.shape), Some(planes[0].clone()));
        let mut big_endian = bytes.clone();
        big_endian[..2].copy_from_slice(b"MM");
        assert!(uncompressed_strips(&mut decoder, &big_endian, info).is_none(), "left to the general decoder");
        let direct = decode_tiff(&bytes, Path::new("d.tif"), TiffLimits::default()).expect("decode");
        assert_eq!(direct, planes);
        for (page, general) in direct.iter().zip(general_decoder(&bytes)) {
            match (page, general) {
                (PlaneData::U16(a), DecodingResult::U16(b)) => assert_eq!(a.as_slice(), Some(&b[..])),
                (PlaneData::U8(a), DecodingResult::U8(b)) => assert_eq!(a.as_slice(), Some(&b[..])),
                (a, _) => panic!("{a:?} read as another type"),
            }
        }
        // A strip cut short is not read from the bytes that follow it: the general decoder
        // then reports the file as truncated.
        let cut = &bytes[..bytes.len() / 2];
        assert!(decode_tiff(cut, Path::new("cut.tif"), TiffLimits::default()).is_err());
    }

    #[test]
    fn a_page_read_alone_or_into_f32_equals_that_page_of_the_whole_file() {
        let u16s = Array2::from_shape_fn((37, 41), |(y, x)| ((y * 7919 + x * 104_729) % 65_536) as u16);
        let u8s = Array2::from_shape_fn((37, 41), |(y, x)| ((y * 31 + x * 17) % 256) as u8);
        let f32s = Array2::from_shape_fn((37, 41), |(y, x)| y as f32 * 0.5 - x as f32);
        let planes = [PlaneData::U16(u16s), PlaneData::U8(u8s), PlaneData::F32(f32s)];
        for compression in [TiffCompression::None, TiffCompression::Deflate] {
            let path = tmp(&format!("pages-{compression:?}.tif"));
            write_tiff(&path, &planes, compression).expect("write");
            assert_eq!(read_tiff(&path, TiffLimits::default()).expect("whole file"), planes);
            for (page, plane) in planes.iter().enumerate() {
                // Appended after what `out` already holds.
                let mut out = vec![-1.0f32];
                let (shape, dtype) = read_tiff_page_f32(&path, page, TiffLimits::default(), &mut out, 3).expect("page");
                assert_eq!((shape, dtype), ((37, 41), plane.dtype()), "the page's shape and stored dtype");
                // Room for three planes of its shape, so the next two are read without growing.
                assert!(out.capacity() > 3 * 37 * 41, "{}", out.capacity());
                let mut want = vec![-1.0f32];
                plane.extend_f32(&mut want);
                assert_eq!(out, want, "page {page}, {compression:?}");
                assert_eq!(&read_tiff_page(&path, page, TiffLimits::default()).expect("page"), plane);
            }
            // Every page read at once, each into its part of one stack, as read one after another.
            let mut stack = vec![-1.0f32];
            let shapes = crate::fill::fill_planes(
                &mut stack,
                37 * 41,
                3,
                |page, slot| read_tiff_page_f32(&path, page, TiffLimits::default(), slot, 1),
                |page, n| VfsError::CorruptTiff { path: path.to_path_buf(), message: format!("page {page}: {n}") },
            )
            .expect("pages into a stack");
            assert_eq!(shapes, planes.iter().map(|p| ((37, 41), p.dtype())).collect::<Vec<_>>());
            let mut want = vec![-1.0f32];
            planes.iter().for_each(|p| p.extend_f32(&mut want));
            assert_eq!(stack, want, "{compression:?}");
            let missing = read_tiff_page(&path, 3, TiffLimits::default()).expect_err("no page 3");
            assert!(missing.to_string().contains("page 3 requested, the file has 3"), "{missing}");
            let mut out = vec![1.0f32; 3];
            let missing = read_tiff_page_f32(&path, 3, TiffLimits::default(), &mut out, 1).expect_err("no page 3");
            assert!(missing.to_string().contains("page 3 requested, the file has 3"), "{missing}");
            assert_eq!(out, vec![1.0f32; 3], "left as it was");
        }
        // A truncated file is an error naming it, and `out` is left as it was.
        let path = tmp("pages-cut.tif");
        write_tiff(&path, &planes[..1], TiffCompression::None).expect("write");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("cut");
        let mut out = vec![2.0f32];
        let cut = read_tiff_page_f32(&path, 0, TiffLimits::default(), &mut out, 1).expect_err("truncated");
        assert!(cut.to_string().contains("pages-cut.tif"), "{cut}");
        assert_eq!(out, vec![2.0f32]);
    }

    #[test]
    fn samples_at_any_offset_convert_to_the_same_floats() {
        let bytes: Vec<u8> = (0..=40u8).map(|b| b.wrapping_mul(97)).collect();
        let expected = |from: usize| -> Vec<f32> {
            bytes[from..from + 40].chunks_exact(2).map(|b| f32::from(u16::from(b[0]) | u16::from(b[1]) << 8)).collect()
        };
        for from in [0, 1] {
            let mut out = vec![7.0f32];
            extend_f32_from_le_u16(&bytes[from..from + 40], &mut out);
            assert_eq!(out[0], 7.0);
            assert_eq!(out[1..], expected(from)[..], "offset {from}");
        }
    }

    #[test]
    fn a_plane_narrowed_strip_by_strip_is_the_file_of_the_plane_narrowed_whole() {
        let path = Path::new("plane.tif");
        let xml = "<OME>strips</OME>";
        // Values that round, clamp and are NaN; 1024² u16 rows make strips of 489 rows (the
        // last one short); a plane past the parallel narrowing's size; a view whose rows are not
        // contiguous (a transposed plane).
        let values = |h: usize, w: usize| {
            ndarray::Array2::from_shape_fn((h, w), |(y, x)| match (y * 31 + x * 17) % 97 {
                0 => f32::NAN,
                1 => -4.0,
                k => (y * 613 + x * 7 + k) as f32 * 0.75,
            })
        };
        let big = values(1025, 1024);
        assert!(big.len() > crate::plane::PARALLEL_SAMPLES);
        let (small, tile) = (values(5, 7), values(1024, 1024));
        let transposed = small.t();
        for dtype in [Dtype::U8, Dtype::U16, Dtype::F32] {
            for (name, plane) in
                [("small", small.view()), ("tile", tile.view()), ("big", big.view()), ("transposed", transposed)]
            {
                let calibrated = PageTags { description: Some(xml), pixel_size_um: Some(0.65) };
                for tags in [PageTags::described(xml), PageTags::default(), calibrated] {
                    let whole = PlaneData::from_f32(plane, dtype);
                    let want = encode_tiff_described(std::slice::from_ref(&whole), TiffCompression::None, tags, path)
                        .expect("whole");
                    let got = encode_f32_plane_described(plane, dtype, tags, path).expect("strips");
                    assert!(got == want, "{name} as {dtype:?}, {tags:?}: the bytes differ");
                    assert_eq!(general_decoder(&got).len(), 1, "{name} as {dtype:?}");
                    let read = decode_tiff(&got, path, TiffLimits::default()).expect("read back");
                    // Bytes, not values: NaN is not equal to itself.
                    let same = |p: &PlaneData| (p.dim(), p.dtype(), p.to_le_bytes());
                    assert_eq!(read.iter().map(same).collect::<Vec<_>>(), vec![same(&whole)], "{name} as {dtype:?}");
                }
            }
        }
    }

    #[test]
    fn a_description_is_written_and_read_back_and_its_absence_is_none() {
        let plane = PlaneData::U16(Array2::from_elem((4, 5), 7u16));
        let with = tmp("described.tif");
        let xml = "<MetaData><prop id=\"spatial-calibration-x\" type=\"float\" value=\"0.65\"/></MetaData>";
        write_tiff_described(&with, std::slice::from_ref(&plane), TiffCompression::None, xml).expect("write");
        assert_eq!(read_tiff_description(&with).expect("read").as_deref(), Some(xml));
        assert_eq!(read_tiff(&with, TiffLimits::default()).expect("pixels"), vec![plane.clone()], "same pixels");
        let without = tmp("undescribed.tif");
        write_tiff(&without, &[plane], TiffCompression::None).expect("write");
        assert_eq!(read_tiff_description(&without).expect("read"), None);
    }

    #[test]
    fn every_description_of_the_first_directory_is_read_in_order() {
        // tifffile writes the description it is given, then its own JSON: both are tag 270. A
        // directory of two such entries (one stored apart, one inline), in both byte orders.
        for little in [true, false] {
            let u16b = |v: u16| if little { v.to_le_bytes() } else { v.to_be_bytes() };
            let u32b = |v: u32| if little { v.to_le_bytes() } else { v.to_be_bytes() };
            let mut bytes: Vec<u8> = if little { b"II".to_vec() } else { b"MM".to_vec() };
            bytes.extend(u16b(42));
            bytes.extend(u32b(8));
            bytes.extend(u16b(2));
            for (count, value) in [(7u32, 38u32.to_be_bytes()), (3, *b"ab\0\0")] {
                bytes.extend(u16b(270));
                bytes.extend(u16b(2));
                bytes.extend(u32b(count));
                bytes.extend(if count == 7 { u32b(u32::from_be_bytes(value)) } else { value });
            }
            bytes.extend(u32b(0));
            assert_eq!(bytes.len(), 38);
            bytes.extend(b"<first>\0");
            let path = tmp(if little { "two-ii.tif" } else { "two-mm.tif" });
            std::fs::write(&path, &bytes).expect("write");
            assert_eq!(read_tiff_descriptions(&path).expect("read"), ["<first>", "ab"]);
            assert_eq!(
                read_tiff_description(&path).expect("read").as_deref(),
                Some("<first>"),
                "the first, as tifffile"
            );
            // The text's offset past the end of the file: truncated, not read.
            bytes.truncate(40);
            std::fs::write(&path, &bytes).expect("write");
            assert!(matches!(read_tiff_descriptions(&path), Err(VfsError::TruncatedTiff { .. })));
        }
        let path = tmp("not-a-tiff.tif");
        std::fs::write(&path, b"GIF89a..").expect("write");
        assert!(matches!(read_tiff_descriptions(&path), Err(VfsError::CorruptTiff { .. })));
    }

    /// The X/YResolution and ResolutionUnit tags of every page of `bytes`.
    fn resolutions(bytes: &[u8]) -> Vec<(Vec<u32>, Vec<u32>, u16)> {
        let mut decoder = Decoder::new(Cursor::new(bytes)).expect("decoder");
        let mut pages = Vec::new();
        loop {
            let rational = |d: &mut Decoder<_>, tag| d.get_tag_u32_vec(tag).expect("a resolution tag");
            let x = rational(&mut decoder, Tag::XResolution);
            let y = rational(&mut decoder, Tag::YResolution);
            let unit = decoder.get_tag_unsigned::<u16>(Tag::ResolutionUnit).expect("a unit");
            pages.push((x, y, unit));
            if !decoder.more_images() {
                return pages;
            }
            decoder.next_image().expect("next page");
        }
    }

    #[test]
    fn the_pixel_size_is_written_as_pixels_per_centimetre_on_every_page() {
        let per_cm = |um: f64| PageTags { description: None, pixel_size_um: Some(um) }.pixels_per_cm();
        // 0.65 µm: 15384.61538… pixels per cm; 10⁶ as denominator would overflow 32 bits.
        assert_eq!(per_cm(0.65).map(|r| (r.n, r.d)), Some((1_538_461_538, 100_000)));
        assert_eq!(per_cm(1.0).map(|r| (r.n, r.d)), Some((1_000_000_000, 100_000)));
        let back = |um: f64| per_cm(um).map(|r| 1e4 / (f64::from(r.n) / f64::from(r.d)));
        for um in [0.1, 0.325, 0.65, 1.3, 6.5, 100.0, 1e4, 1e-5] {
            let got = back(um).expect("a rational");
            assert!((got - um).abs() <= um * 1e-6, "{um} µm read back as {got}");
        }
        for nonsense in [0.0, -0.65, f64::NAN, f64::INFINITY, 1e-7, 1e11] {
            assert!(per_cm(nonsense).is_none(), "{nonsense} µm");
        }
        let planes =
            [PlaneData::U16(Array2::from_elem((600, 300), 9u16)), PlaneData::U8(Array2::from_elem((4, 5), 1u8))];
        let path = Path::new("calibrated.tif");
        let tags = PageTags { description: Some("<OME/>"), pixel_size_um: Some(0.65) };
        let want = per_cm(0.65).map(|r| vec![r.n, r.d]).expect("a rational");
        for compression in [TiffCompression::None, TiffCompression::Deflate] {
            let bytes = encode_tiff_described(&planes, compression, tags, path).expect("encode");
            assert_eq!(resolutions(&bytes), vec![(want.clone(), want.clone(), 3); 2], "{compression:?}");
            let plain = encode_tiff_described(&planes, compression, PageTags::default(), path).expect("encode");
            assert_eq!(resolutions(&plain), vec![(vec![1, 1], vec![1, 1], 1); 2], "{compression:?} uncalibrated");
            assert_eq!(decode_tiff(&bytes, path, TiffLimits::default()).expect("read"), planes.to_vec());
        }
        let one = encode_f32_plane_described(Array2::from_elem((3, 2), 4.5f32).view(), Dtype::U16, tags, path)
            .expect("encode");
        assert_eq!(resolutions(&one), vec![(want.clone(), want, 3)]);
    }
    use ndarray::Array2;

    #[test]
    fn files_past_the_classic_limit_are_bigtiff_and_read_back() {
        let plane = PlaneData::U16(ramp(6, 9));
        let path = tmp("big.tif");
        let xml = "<OME/>";
        let bytes = encode_tiff_big_above(
            std::slice::from_ref(&plane),
            TiffCompression::None,
            PageTags::described(xml),
            &path,
            10,
        )
        .expect("encode");
        assert_eq!(&bytes[..4], b"II+\0", "BigTIFF magic");
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(read_tiff(&path, TiffLimits::default()).expect("read"), vec![plane.clone()]);
        assert_eq!(read_tiff_description(&path).expect("description").as_deref(), Some(xml));
        // A description of at most 8 bytes sits in a BigTIFF entry itself.
        let inline = encode_tiff_big_above(
            std::slice::from_ref(&plane),
            TiffCompression::None,
            PageTags::described("<a/>"),
            &path,
            10,
        )
        .expect("encode");
        std::fs::write(&path, &inline).expect("write");
        assert_eq!(read_tiff_descriptions(&path).expect("descriptions"), ["<a/>"]);
        let small = encode_tiff_described(&[plane], TiffCompression::None, PageTags::default(), &path).expect("encode");
        assert_eq!(&small[..4], b"II*\0", "classic TIFF below the limit");
    }

    /// A file path in a folder of its own, removed when this value is dropped at the test's end.
    struct Tmp {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
    }

    impl std::ops::Deref for Tmp {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.path
        }
    }

    impl AsRef<Path> for Tmp {
        fn as_ref(&self) -> &Path {
            &self.path
        }
    }

    fn tmp(name: &str) -> Tmp {
        let dir = tempfile::Builder::new().prefix("hcs-tiff-").tempdir().expect("tmp dir");
        let path = dir.path().join(name);
        Tmp { _dir: dir, path }
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
        // An empty file is said to be empty, as the header check says it.
        std::fs::write(&path, b"").expect("write");
        let err = read_tiff(&path, TiffLimits::default()).expect_err("empty");
        assert!(matches!(err, VfsError::EmptyFile { .. }), "{err}");
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

    #[test]
    fn a_page_whose_header_claims_more_than_the_file_holds_reserves_nothing_for_the_stack() {
        // 64 × 64 pixels in the file, 20 000 × 20 000 in the header (under the pixel limit).
        let mut bytes = ifd_first_tiff(64, 64, 16, 1);
        for i in 0..2 {
            let value = 8 + 2 + i * 12 + 8;
            bytes[value..value + 4].copy_from_slice(&20_000u32.to_le_bytes());
        }
        let path = tmp("claims-more.tif");
        std::fs::write(&path, &bytes).expect("write");
        let mut out = Vec::new();
        let err = read_tiff_page_f32(&path, 0, TiffLimits::default(), &mut out, 9).expect_err("pixels missing");
        assert!(matches!(err, VfsError::TruncatedTiff { .. } | VfsError::CorruptTiff { .. }), "{err}");
        assert!(out.is_empty() && out.capacity() < 64 * 64 * 9, "{}", out.capacity());
    }

    /// A little-endian TIFF whose IFD comes before the pixels (as many microscopes write it), so
    /// cutting the pixels leaves the header whole. `bits`/`format`: BitsPerSample, SampleFormat.
    fn ifd_first_tiff(w: u32, h: u32, bits: u16, format: u16) -> Vec<u8> {
        let entries: [(u16, u16, u32); 10] = [
            (256, 4, w),
            (257, 4, h),
            (258, 3, u32::from(bits)),
            (259, 3, 1),
            (262, 3, 1),
            (273, 4, 0), // strip offset, patched below
            (277, 3, 1),
            (278, 4, h),
            (279, 4, w * h * u32::from(bits) / 8),
            (339, 3, u32::from(format)),
        ];
        let data_offset = 8 + 2 + entries.len() as u32 * 12 + 4;
        let mut out = b"II*\0".to_vec();
        out.extend(8u32.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        for (tag, typ, value) in entries {
            let value = if tag == 273 { data_offset } else { value };
            out.extend(tag.to_le_bytes());
            out.extend(typ.to_le_bytes());
            out.extend(1u32.to_le_bytes());
            if typ == 3 {
                out.extend((value as u16).to_le_bytes());
                out.extend([0, 0]);
            } else {
                out.extend(value.to_le_bytes());
            }
        }
        out.extend(0u32.to_le_bytes());
        out.resize(out.len() + (w * h * u32::from(bits) / 8) as usize, 7);
        out
    }

    #[test]
    fn a_header_describes_the_image_without_reading_its_pixels() {
        for (plane, dtype, bits, format) in [
            (PlaneData::U16(ramp(48, 32)), Dtype::U16, 16, 1),
            (PlaneData::U8(ramp(48, 32).mapv(|v| v as u8)), Dtype::U8, 8, 1),
            (PlaneData::F32(ramp(48, 32).mapv(f32::from)), Dtype::F32, 32, 3),
        ] {
            for compression in [TiffCompression::None, TiffCompression::Deflate] {
                let path = tmp(&format!("header-{dtype:?}-{compression:?}.tif"));
                write_tiff(&path, std::slice::from_ref(&plane), compression).expect("write");
                let header = read_tiff_header(&path).expect("header");
                assert_eq!((header.width, header.height), (32, 48));
                assert_eq!((header.bits_per_sample, header.sample_format, header.samples_per_pixel), (bits, format, 1));
                assert_eq!(header.dtype(), Some(dtype));
                assert!(header.data_end <= header.file_len);
                assert_eq!(header.file_len, std::fs::metadata(&path).expect("len").len());
            }
        }
        let path = tmp("ifd-first.tif");
        std::fs::write(&path, ifd_first_tiff(20, 10, 16, 1)).expect("write");
        let header = read_tiff_header(&path).expect("header");
        assert_eq!((header.width, header.height, header.compression), (20, 10, 1));
        assert_eq!(header.data_end, header.file_len);
        assert_eq!(
            decode_tiff(&std::fs::read(&path).expect("read"), &path, TiffLimits::default()).expect("decodes")[0].dim(),
            (10, 20)
        );
    }

    #[test]
    fn pixels_cut_short_behind_a_whole_header_are_found_from_the_header() {
        let bytes = ifd_first_tiff(64, 64, 16, 1);
        let path = tmp("cut-pixels.tif");
        std::fs::write(&path, &bytes[..bytes.len() - 100]).expect("write");
        let err = read_tiff_header(&path).expect_err("truncated");
        assert!(
            matches!(err, VfsError::TruncatedData { file_len, data_end, .. }
                if file_len == bytes.len() as u64 - 100 && data_end == bytes.len() as u64),
            "{err}"
        );
        assert!(err.to_string().contains("cut-pixels.tif: truncated TIFF"), "{err}");
    }

    #[test]
    fn a_file_cut_inside_its_header_or_ifd_is_truncated() {
        let bytes =
            encode_tiff(&[PlaneData::U16(ramp(64, 64))], TiffCompression::None, Path::new("x")).expect("encode");
        for cut in [3, 6, 12, bytes.len() / 2, bytes.len() - 10] {
            let path = tmp(&format!("cut-{cut}.tif"));
            std::fs::write(&path, &bytes[..cut]).expect("write");
            let err = read_tiff_header(&path).expect_err("truncated");
            assert!(
                matches!(err, VfsError::TruncatedTiff { .. } | VfsError::TruncatedData { .. }),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn empty_and_non_tiff_files_are_named_as_such() {
        let empty = tmp("empty.tif");
        std::fs::write(&empty, b"").expect("write");
        let err = read_tiff_header(&empty).expect_err("empty");
        assert!(matches!(err, VfsError::EmptyFile { .. }), "{err}");
        assert!(err.to_string().contains("empty.tif: empty file"), "{err}");
        for (name, text) in
            [("text.tif", &b"this is not an image\n"[..]), ("short.tif", b"X"), ("png.tif", b"\x89PNG\r\n")]
        {
            let path = tmp(name);
            std::fs::write(&path, text).expect("write");
            let err = read_tiff_header(&path).expect_err("not a tiff");
            assert!(matches!(err, VfsError::NotTiff { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let missing = tmp("missing.tif");
        assert!(matches!(read_tiff_header(&missing), Err(VfsError::Io { .. })));
    }

    #[test]
    fn other_sample_types_are_described_not_mistaken_for_ours() {
        for (bits, format, text) in [(16, 2, "16-bit signed"), (32, 1, "32-bit unsigned"), (64, 3, "64-bit float")] {
            let path = tmp(&format!("samples-{bits}-{format}.tif"));
            std::fs::write(&path, ifd_first_tiff(4, 4, bits, format)).expect("write");
            let header = read_tiff_header(&path).expect("header");
            assert_eq!(header.dtype(), None, "{text}");
            assert_eq!(header.sample_description(), text);
        }
    }

    #[test]
    fn headers_are_read_in_parallel_in_order() {
        let good = tmp("batch-good.tif");
        write_tiff(&good, &[PlaneData::U16(ramp(8, 9))], TiffCompression::None).expect("write");
        let bad = tmp("batch-bad.tif");
        std::fs::write(&bad, b"nope").expect("write");
        let results = read_tiff_headers(&[good.to_path_buf(), bad.to_path_buf(), good.to_path_buf()]);
        assert_eq!(results.len(), 3);
        assert!(matches!(results[0], Ok(TiffHeader { width: 9, height: 8, .. })));
        assert!(matches!(results[1], Err(VfsError::NotTiff { .. })));
        assert!(results[2].is_ok());
    }
}
