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
//! 16-bit unsigned or 32-bit float, no predictor or the horizontal one (integers), either byte
//! order, strips or tiles. The samples are the stored values (min-is-white is not inverted, as
//! [`crate::tiff`] reads every page).

use std::io::Cursor;

use tiff::decoder::{ChunkType, Decoder};
use tiff::tags::Tag;

use crate::plane::PlaneData;

/// The page the decoder is on, decoded from the file's `bytes`: a plane of `shape`
/// `(height, width)` whose samples take `bytes_per_sample` bytes and whose SampleFormat is
/// `float` or unsigned. `Err`: what does not add up, in words.
pub(crate) fn decode(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    bytes: &[u8],
    (h, w): (usize, usize),
    bytes_per_sample: usize,
    float: bool,
) -> Result<PlaneData, String> {
    let tag = |decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag| -> Result<Option<u64>, String> {
        decoder.find_tag_unsigned::<u64>(tag).map_err(|e| e.to_string())
    };
    let predictor = tag(decoder, Tag::Predictor)?.unwrap_or(1);
    let undone = match predictor {
        1 => true,
        2 => !float,
        _ => false,
    };
    if !undone {
        return Err(format!("predictor {predictor} with LZW on {}-byte samples", bytes_per_sample));
    }
    if tag(decoder, Tag::SamplesPerPixel)?.unwrap_or(1) != 1 {
        return Err("several samples per pixel".into());
    }
    let big_endian = bytes.starts_with(b"MM");
    let (offsets_tag, counts_tag) = match decoder.get_chunk_type() {
        ChunkType::Strip => (Tag::StripOffsets, Tag::StripByteCounts),
        ChunkType::Tile => (Tag::TileOffsets, Tag::TileByteCounts),
    };
    let list = |decoder: &mut Decoder<Cursor<&[u8]>>, tag: Tag| -> Result<Vec<u64>, String> {
        decoder.find_tag_unsigned_vec::<u64>(tag).map_err(|e| e.to_string())?.ok_or_else(|| format!("no {tag:?}"))
    };
    let offsets = list(decoder, offsets_tag)?;
    let counts = list(decoder, counts_tag)?;
    let (cw, ch) = decoder.chunk_dimensions();
    let (cw, ch) = (cw as usize, (ch as usize).min(h));
    if cw == 0 || ch == 0 {
        return Err("chunks of no pixels".into());
    }
    let (across, down) = (w.div_ceil(cw), h.div_ceil(ch));
    if offsets.len() != across * down || counts.len() != offsets.len() {
        return Err(format!("{} chunks listed for a {across} × {down} grid", offsets.len()));
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
        let start = usize::try_from(offset).map_err(|e| e.to_string())?;
        let end = start.checked_add(usize::try_from(count).map_err(|e| e.to_string())?);
        let data =
            end.and_then(|end| bytes.get(start..end)).ok_or_else(|| format!("chunk {i} lies past the file's end"))?;
        inflate(data, &mut chunk).map_err(|e| format!("chunk {i}: {e}"))?;
        let row_bytes = cw * bytes_per_sample;
        for row in chunk.chunks_exact_mut(row_bytes) {
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
        _ => return Err(format!("{bytes_per_sample}-byte samples")),
    };
    plane.map_err(|e| e.to_string())
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
