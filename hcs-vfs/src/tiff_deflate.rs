//! Deflate-compressed TIFF pages, compressed with libdeflate, strip by strip in parallel.
//!
//! The `tiff` crate compresses a page's strips one after another through flate2, which wrote a
//! 1024² u16 plane at about half the speed of Python's tifffile (libdeflate through
//! imagecodecs). Here the page's strips (about [`STRIP_BYTES`] each, tifffile's default size)
//! are compressed by libdeflate at zlib level 6 (the `tiff` crate's and tifffile's default) on
//! every worker, and the directory is written with the crate's directory encoder: the same tags
//! as the crate's own Deflate pages, in the byte order the crate writes (this machine's).

use std::io::{Seek, Write};

use libdeflater::{CompressionLvl, Compressor};
use rayon::prelude::*;
use tiff::encoder::colortype::ColorType;
use tiff::encoder::{TiffEncoder, TiffKind};
use tiff::tags::{CompressionMethod, Predictor, ResolutionUnit, Tag};
use tiff::{TiffError, TiffResult};

/// Uncompressed bytes per strip (whole rows; at least one row).
pub(crate) const STRIP_BYTES: usize = 256 << 10;

/// zlib level of the strips: 6, zlib's default.
const LEVEL: i32 = 6;

/// Whether pages can be written here: the samples' bytes are taken as they lie in memory, which
/// is the byte order the `tiff` crate writes only on a little-endian machine.
pub(crate) const AVAILABLE: bool = cfg!(target_endian = "little");

/// Write one Deflate page of `samples` (`h` rows of `w`, row-major), with its description and
/// resolution tags.
pub(crate) fn page<C: ColorType, W: Write + Seek, K: TiffKind>(
    encoder: &mut TiffEncoder<W, K>,
    (w, h): (u32, u32),
    samples: &[C::Inner],
    tags: crate::tiff_tags::PageTags<'_>,
) -> TiffResult<()>
where
    C::Inner: bytemuck::Pod,
{
    let usage =
        |what: &str| TiffError::IoError(std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_string()));
    let (wu, hu) = (usize::try_from(w)?, usize::try_from(h)?);
    if wu == 0 || hu == 0 || Some(samples.len()) != wu.checked_mul(hu) {
        return Err(usage("a page's samples must fill its width × height, both above 0"));
    }
    let bytes: &[u8] = bytemuck::cast_slice(samples);
    let row_bytes = bytes.len() / hu;
    let rows_per_strip = (STRIP_BYTES / row_bytes).clamp(1, hu);
    let strips = compress_strips(bytes, rows_per_strip * row_bytes)?;

    let mut dir = encoder.image_directory()?;
    let (mut offsets, mut counts) = (Vec::with_capacity(strips.len()), Vec::with_capacity(strips.len()));
    for strip in &strips {
        offsets.push(K::convert_offset(dir.write_data(&strip[..])?)?);
        counts.push(K::convert_offset(strip.len() as u64)?);
    }
    dir.write_tag(Tag::ImageWidth, w)?;
    dir.write_tag(Tag::ImageLength, h)?;
    dir.write_tag(Tag::BitsPerSample, C::BITS_PER_SAMPLE)?;
    dir.write_tag(Tag::Compression, CompressionMethod::Deflate.to_u16())?;
    dir.write_tag(Tag::Predictor, Predictor::None.to_u16())?;
    dir.write_tag(Tag::PhotometricInterpretation, C::TIFF_VALUE.to_u16())?;
    dir.write_tag(Tag::RowsPerStrip, u32::try_from(rows_per_strip)?)?;
    dir.write_tag(Tag::SamplesPerPixel, u16::try_from(C::BITS_PER_SAMPLE.len())?)?;
    let (resolution, unit) = match tags.pixels_per_cm() {
        Some(per_cm) => (per_cm, ResolutionUnit::Centimeter),
        None => (tiff::encoder::Rational { n: 1, d: 1 }, ResolutionUnit::None),
    };
    dir.write_tag(Tag::XResolution, resolution.clone())?;
    dir.write_tag(Tag::YResolution, resolution)?;
    dir.write_tag(Tag::ResolutionUnit, unit.to_u16())?;
    let formats: Vec<u16> = C::SAMPLE_FORMAT.iter().map(|f| f.to_u16()).collect();
    dir.write_tag(Tag::SampleFormat, &formats[..])?;
    if let Some(text) = tags.description {
        dir.write_tag(Tag::ImageDescription, text)?;
    }
    dir.write_tag(Tag::StripOffsets, K::convert_slice(&offsets))?;
    dir.write_tag(Tag::StripByteCounts, K::convert_slice(&counts))?;
    dir.finish()
}

/// Each `strip`-byte piece of `bytes` (the last may be shorter) as a zlib stream, compressed in
/// parallel.
fn compress_strips(bytes: &[u8], strip: usize) -> TiffResult<Vec<Vec<u8>>> {
    let level = CompressionLvl::new(LEVEL).map_err(|e| std::io::Error::other(format!("zlib level {LEVEL}: {e:?}")))?;
    bytes
        .par_chunks(strip.max(1))
        .map_init(
            || Compressor::new(level),
            |compressor, piece| {
                let mut out = vec![0u8; compressor.zlib_compress_bound(piece.len())];
                let n = compressor
                    .zlib_compress(piece, &mut out)
                    .map_err(|e| std::io::Error::other(format!("compressing a strip: {e:?}")))?;
                out.truncate(n);
                Ok(out)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use ndarray::Array2;
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::encoder::colortype;

    use super::*;

    /// A plane whose strips compress differently (a ramp with pseudo-noise).
    fn plane(h: usize, w: usize) -> Vec<u16> {
        let mut state = 0x9E37_79B9u32;
        (0..h * w)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                ((i % w) * 3 + (i / w) * 11) as u16 ^ (state % 64) as u16
            })
            .collect()
    }

    fn encode<K: TiffKind>(mut encoder: TiffEncoder<&mut Cursor<Vec<u8>>, K>, pages: &[(u32, u32, &[u16])]) {
        for &(w, h, samples) in pages {
            page::<colortype::Gray16, _, _>(
                &mut encoder,
                (w, h),
                samples,
                crate::tiff_tags::PageTags::described("<OME/>"),
            )
            .expect("page");
        }
    }

    /// Every page as the `tiff` crate's general decoder reads it, with its strip count.
    fn decode(bytes: Vec<u8>) -> Vec<(Vec<u16>, usize, u16)> {
        let mut decoder = Decoder::new(Cursor::new(bytes)).expect("a TIFF");
        let mut pages = Vec::new();
        loop {
            let strips = decoder.get_tag_u64_vec(Tag::StripOffsets).expect("strip offsets").len();
            let compression = decoder.get_tag_unsigned::<u16>(Tag::Compression).expect("compression");
            match decoder.read_image().expect("pixels") {
                DecodingResult::U16(v) => pages.push((v, strips, compression)),
                _ => panic!("not u16"),
            }
            if !decoder.more_images() {
                return pages;
            }
            decoder.next_image().expect("next page");
        }
    }

    #[test]
    fn pages_of_several_strips_read_back_exactly_classic_and_big() {
        // 300 rows of 1000 u16: 131 rows per 256 KiB strip, so three strips, the last shorter.
        let (a, b) = (plane(300, 1000), plane(7, 5));
        let pages: [(u32, u32, &[u16]); 2] = [(1000, 300, &a), (5, 7, &b)];
        let mut classic = Cursor::new(Vec::new());
        encode(TiffEncoder::new(&mut classic).expect("encoder"), &pages);
        let mut big = Cursor::new(Vec::new());
        encode(TiffEncoder::new_big(&mut big).expect("encoder"), &pages);
        for bytes in [classic.into_inner(), big.into_inner()] {
            let read = decode(bytes);
            assert_eq!(read.len(), 2);
            assert_eq!((&read[0].0, read[0].1, read[0].2), (&a, 3, 8), "the large page: three Deflate strips");
            assert_eq!((&read[1].0, read[1].1), (&b, 1), "the small page: one strip");
        }
    }

    #[test]
    fn samples_that_do_not_fill_the_page_are_refused() {
        let mut out = Cursor::new(Vec::new());
        let mut encoder = TiffEncoder::new(&mut out).expect("encoder");
        let short = Array2::<u16>::zeros((3, 3));
        let short = short.as_slice().expect("contiguous");
        assert!(
            page::<colortype::Gray16, _, _>(&mut encoder, (4, 3), short, crate::tiff_tags::PageTags::default())
                .is_err()
        );
        assert!(
            page::<colortype::Gray16, _, _>(&mut encoder, (0, 0), &[], crate::tiff_tags::PageTags::default()).is_err()
        );
    }
}
