//! An LZW-compressed TIFF page decoded chunk by chunk with `weezl`, for the pages the `tiff`
//! crate's own reader refuses with "no lzw end code found".
//!
//! The released `tiff` 0.11 stops some valid strips and tiles early: its reader asks `weezl` to
//! yield whenever the output buffer fills, and takes the `NoProgress` that then follows an
//! end-of-information code it has not yet read for a stream without one (image-rs/image-tiff
//! issue 395; tifffile's tiled LZW files hit it). Writers that omit the code altogether (libtiff
//! accepts them) fail the same way. Here each chunk is decoded into a buffer of exactly the
//! size its header gives, as libtiff and tifffile do: the chunk is complete once the buffer is
//! full, and data that ends before it fills is an error.
//!
//! Only what the general reader would otherwise give is read: one grey sample per pixel, 8- or
//! 16-bit unsigned or 32-bit float, no predictor, the horizontal one (integers) or the floating
//! point one (floats), either byte order, strips or tiles; a chunk far larger than the plane is
//! refused before anything is allocated for it. The samples are the stored values (min-is-white is not inverted, as
//! [`crate::tiff`] reads every page).

use std::io::Cursor;

use tiff::decoder::{ChunkType, Decoder};
use tiff::tags::Tag;

use crate::plane::PlaneData;

/// Why a page could not be decoded here.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The file is a valid TIFF, but of samples or a predictor hcs does not read.
    Unsupported(String),
    /// The file does not add up.
    Corrupt(String),
}

/// Largest chunk decoded, in bytes, for a plane of `plane_bytes`: a tile may be larger than a
/// small image, never vastly larger than a large one (a hostile header's 2^30-wide tile would
/// otherwise ask for gigabytes before any data is read).
pub(crate) fn chunk_limit(plane_bytes: usize) -> usize {
    plane_bytes.saturating_mul(4).max(16 << 20)
}

/// The page the decoder is on, decoded from the file's `bytes`: a plane of `shape`
/// `(height, width)` whose samples take `bytes_per_sample` bytes, of SampleFormat
/// `sample_format` (1 unsigned, 3 float).
pub(crate) fn decode(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    (h, w): (usize, usize),
    bytes_per_sample: usize,
    sample_format: u16,
) -> Result<PlaneData, PageError> {
    let corrupt = |e: String| PageError::Corrupt(e);
    let tag = |decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag| -> Result<Option<u64>, PageError> {
        decoder.find_tag_unsigned::<u64>(tag).map_err(|e| PageError::Corrupt(e.to_string()))
    };
    let float = match (sample_format, bytes_per_sample) {
        (1, 1 | 2) => false,
        (3, 4) => true,
        (format, bytes) => {
            let kind = match format {
                1 => "u",
                2 => "i",
                3 => "f",
                _ => "?",
            };
            return Err(PageError::Unsupported(format!("sample format {kind}{}", bytes * 8)));
        }
    };
    let predictor = tag(decoder, Tag::Predictor)?.unwrap_or(1);
    match (predictor, float) {
        (1, _) | (2, false) | (3, true) => {}
        _ => {
            let samples = if float { "float" } else { "integer" };
            return Err(PageError::Unsupported(format!("predictor {predictor} on {samples} samples")));
        }
    }
    if tag(decoder, Tag::SamplesPerPixel)?.unwrap_or(1) != 1 {
        return Err(PageError::Unsupported("several samples per pixel".into()));
    }
    let big_endian = bytes.starts_with(b"MM");
    let (offsets_tag, counts_tag) = match decoder.get_chunk_type() {
        ChunkType::Strip => (Tag::StripOffsets, Tag::StripByteCounts),
        ChunkType::Tile => (Tag::TileOffsets, Tag::TileByteCounts),
    };
    let list = |decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag| -> Result<Vec<u64>, PageError> {
        decoder
            .find_tag_unsigned_vec::<u64>(tag)
            .map_err(|e| PageError::Corrupt(e.to_string()))?
            .ok_or_else(|| PageError::Corrupt(format!("no {tag:?}")))
    };
    let offsets = list(decoder, offsets_tag)?;
    let counts = list(decoder, counts_tag)?;
    let (cw, ch) = decoder.chunk_dimensions();
    let (cw, ch) = (cw as usize, (ch as usize).min(h));
    if cw == 0 || ch == 0 {
        return Err(corrupt("chunks of no pixels".into()));
    }
    let chunk_bytes = ch.checked_mul(cw).and_then(|n| n.checked_mul(bytes_per_sample));
    if chunk_bytes.is_none_or(|n| n > chunk_limit(h * w * bytes_per_sample)) {
        return Err(corrupt(format!("{cw} × {ch} chunks for a {w} × {h} image")));
    }
    let (across, down) = (w.div_ceil(cw), h.div_ceil(ch));
    if offsets.len() != across * down || counts.len() != offsets.len() {
        return Err(corrupt(format!("{} chunks listed for a {across} × {down} grid", offsets.len())));
    }
    let tiled = decoder.get_chunk_type() == ChunkType::Tile;
    let mut samples = vec![0u8; h * w * bytes_per_sample];
    let mut chunk = Vec::new();
    for (i, (&offset, &count)) in offsets.iter().zip(&counts).enumerate() {
        let (ty, tx) = (i / across, i % across);
        // A tile is stored whole, padding included; the last strip holds only the rows left.
        let rows = if tiled { ch } else { ch.min(h - ty * ch) };
        chunk.clear();
        chunk.resize(rows * cw * bytes_per_sample, 0);
        let past_end = || corrupt(format!("chunk {i} lies past the file's end"));
        let start = usize::try_from(offset).map_err(|_| past_end())?;
        let end = start.checked_add(usize::try_from(count).map_err(|_| past_end())?);
        let data = end.and_then(|end| bytes.get(start..end)).ok_or_else(past_end)?;
        inflate(data, &mut chunk).map_err(|e| corrupt(format!("chunk {i}: {e}")))?;
        let row_bytes = cw * bytes_per_sample;
        for row in chunk.chunks_exact_mut(row_bytes) {
            if predictor == 3 {
                undo_floating_point_prediction(row, bytes_per_sample);
                continue;
            }
            native_order(row, bytes_per_sample, big_endian);
            if predictor == 2 {
                undo_horizontal_differencing(row, bytes_per_sample);
            }
        }
        // Copy the chunk's rows and columns that lie inside the image.
        let (y0, x0) = (ty * ch, tx * cw);
        let inside = (w - x0).min(cw) * bytes_per_sample;
        for (r, row) in chunk.chunks_exact(row_bytes).take(rows.min(h - y0)).enumerate() {
            let at = ((y0 + r) * w + x0) * bytes_per_sample;
            samples[at..at + inside].copy_from_slice(&row[..inside]);
        }
    }
    let shape = (h, w);
    let plane = match (bytes_per_sample, float) {
        (1, false) => ndarray::Array2::from_shape_vec(shape, samples).map(PlaneData::U8),
        (2, false) => {
            let v = samples.chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]])).collect();
            ndarray::Array2::from_shape_vec(shape, v).map(PlaneData::U16)
        }
        (4, true) => {
            let v = samples.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
            ndarray::Array2::from_shape_vec(shape, v).map(PlaneData::F32)
        }
        _ => return Err(PageError::Unsupported(format!("{bytes_per_sample}-byte samples"))),
    };
    plane.map_err(|e| corrupt(e.to_string()))
}

/// Decode the LZW stream `data` (TIFF's flavour: MSB first, the early code-size switch) until
/// `out` is full. A stream that ends before: an error; one that goes on after: the rest ignored.
fn inflate(data: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut lzw = weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
    let (mut input, mut filled) = (data, 0);
    while filled < out.len() {
        let step = lzw.decode_bytes(input, &mut out[filled..]);
        input = &input[step.consumed_in..];
        filled += step.consumed_out;
        match step.status {
            Ok(weezl::LzwStatus::Ok) if step.consumed_in + step.consumed_out > 0 => {}
            Ok(_) => break,
            Err(e) => return Err(format!("{e} after {filled} of {} bytes", out.len())),
        }
    }
    if filled < out.len() {
        return Err(format!("the LZW data ends after {filled} of {} bytes", out.len()));
    }
    Ok(())
}

/// Put a row's samples in this machine's byte order.
fn native_order(row: &mut [u8], bytes_per_sample: usize, big_endian: bool) {
    if bytes_per_sample > 1 && big_endian != cfg!(target_endian = "big") {
        row.chunks_exact_mut(bytes_per_sample).for_each(<[u8]>::reverse);
    }
}

/// TIFF predictor 3 (floating point) undone on a row: the writer stored each sample's bytes most
/// significant first, all samples' first bytes, then all their second bytes, …, and differenced
/// the row's bytes. Sum the bytes, then gather each sample's bytes into this machine's order.
fn undo_floating_point_prediction(row: &mut [u8], bytes_per_sample: usize) {
    for i in 1..row.len() {
        row[i] = row[i].wrapping_add(row[i - 1]);
    }
    let n = row.len() / bytes_per_sample;
    let shuffled = row.to_vec();
    for (i, sample) in row.chunks_exact_mut(bytes_per_sample).enumerate() {
        for (k, byte) in sample.iter_mut().enumerate() {
            *byte = shuffled[k * n + i];
        }
        if cfg!(target_endian = "little") {
            sample.reverse();
        }
    }
}

/// TIFF predictor 2 undone on a row of native-order unsigned samples: each is the sum of the
/// stored differences up to it (wrapping, as the writer's subtraction wrapped).
fn undo_horizontal_differencing(row: &mut [u8], bytes_per_sample: usize) {
    match bytes_per_sample {
        1 => {
            for i in 1..row.len() {
                row[i] = row[i].wrapping_add(row[i - 1]);
            }
        }
        2 => {
            let mut previous = 0u16;
            for sample in row.chunks_exact_mut(2) {
                let v = u16::from_ne_bytes([sample[0], sample[1]]).wrapping_add(previous);
                sample.copy_from_slice(&v.to_ne_bytes());
                previous = v;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_that_ends_early_is_an_error_and_one_that_goes_on_is_cut() {
        let mut encoder = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let stream = encoder.encode(&data).expect("encode");
        let mut out = vec![0u8; data.len()];
        inflate(&stream, &mut out).expect("whole");
        assert_eq!(out, data);
        let mut shorter = vec![0u8; 100];
        inflate(&stream, &mut shorter).expect("a buffer smaller than the stream is filled");
        assert_eq!(shorter, data[..100]);
        let mut longer = vec![0u8; data.len() + 1];
        let error = inflate(&stream, &mut longer).expect_err("the stream ends early");
        assert!(error.contains(&format!("after {} of {}", data.len(), data.len() + 1)), "{error}");
        // Bytes after the end code (padding a writer left): ignored.
        let padded = [&stream[..], &[0xff, 0xff, 0xff]].concat();
        let mut out = vec![0u8; data.len()];
        inflate(&padded, &mut out).expect("padded");
        assert_eq!(out, data);
    }

    /// LZW strips (the last one short) with the horizontal predictor, as the `tiff` crate's
    /// encoder writes them, decode here to the samples written.
    #[test]
    fn lzw_strips_with_a_short_last_strip_decode_to_the_samples_written() {
        use tiff::encoder::{Compression, TiffEncoder, colortype};
        let (h, w) = (37usize, 53usize);
        let samples: Vec<u16> = (0..h * w).map(|i| ((i * 7919) % 65536) as u16).collect();
        let mut bytes = Vec::new();
        {
            let mut encoder = TiffEncoder::new(std::io::Cursor::new(&mut bytes))
                .expect("encoder")
                .with_compression(Compression::Lzw)
                .with_predictor(tiff::tags::Predictor::Horizontal);
            let mut image = encoder.new_image::<colortype::Gray16>(w as u32, h as u32).expect("image");
            image.rows_per_strip(7).expect("rows per strip");
            image.write_data(&samples).expect("write");
        }
        let mut decoder = Decoder::new(Cursor::new(&bytes[..])).expect("decoder");
        assert_eq!(decoder.get_chunk_type(), ChunkType::Strip);
        let plane = decode(&mut decoder, &bytes, (h, w), 2, 1).expect("decoded");
        match plane {
            PlaneData::U16(a) => assert_eq!(a.iter().copied().collect::<Vec<_>>(), samples),
            other => panic!("u16 expected, got {:?}", other.dtype()),
        }
        // Signed samples are not read as unsigned ones.
        let mut decoder = Decoder::new(Cursor::new(&bytes[..])).expect("decoder");
        match decode(&mut decoder, &bytes, (h, w), 2, 2) {
            Err(PageError::Unsupported(what)) => assert_eq!(what, "sample format i16"),
            other => panic!("refused as unsupported, not {other:?}"),
        }
    }

    /// The floating point predictor (TIFF Technical Note 3) undone: each row's samples stored as
    /// big-endian bytes, most significant bytes of all samples first, then byte-differenced.
    #[test]
    fn the_floating_point_predictor_is_undone() {
        let values = [1.5f32, -0.25, 3.0e-8, 65535.0, f32::MIN_POSITIVE, 0.0];
        let n = values.len();
        let mut shuffled = vec![0u8; n * 4];
        for (i, v) in values.iter().enumerate() {
            for (k, b) in v.to_be_bytes().iter().enumerate() {
                shuffled[k * n + i] = *b;
            }
        }
        let mut row = shuffled.clone();
        for i in 1..row.len() {
            row[i] = shuffled[i].wrapping_sub(shuffled[i - 1]);
        }
        undo_floating_point_prediction(&mut row, 4);
        let back: Vec<f32> = row.chunks_exact(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
        assert_eq!(back, values);
    }

    #[test]
    fn horizontal_differencing_is_undone_with_wrapping() {
        let mut row = [10u8, 250, 10, 0];
        undo_horizontal_differencing(&mut row, 1);
        assert_eq!(row, [10, 4, 14, 14]);
        let mut row: Vec<u8> = [1000u16, 65000, 600].iter().flat_map(|v| v.to_ne_bytes()).collect();
        undo_horizontal_differencing(&mut row, 2);
        let back: Vec<u16> = row.chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]])).collect();
        assert_eq!(back, [1000, 464, 1064]);
    }
}
