//! What a TIFF page carries besides its samples: the tags hcs writes (an ImageDescription, the
//! pixel size as X/YResolution) and the ImageDescription entries it reads back, every one in
//! order (the `tiff` crate keeps only the last of a repeated tag).

use std::io::{Read, Seek};
use std::path::Path;

use crate::VfsError;

/// What each written page carries besides its samples: an ImageDescription (an instrument's
/// metadata such as MetaMorph's XML, or OME-XML) and the physical pixel size.
///
/// The pixel size is written as the page's XResolution / YResolution in pixels per centimetre
/// (ResolutionUnit 3, the unit TIFF 6.0 offers), so that readers which ignore the description —
/// ImageJ's plain TIFF opener, tifffile's `resolution`, GIMP — see the calibration too. Without
/// one, the pages say 1 pixel per unit, unit none, as the `tiff` crate does.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PageTags<'a> {
    /// The ImageDescription tag, if any.
    pub description: Option<&'a str>,
    /// The pixel size in µm, if known.
    pub pixel_size_um: Option<f64>,
}

impl<'a> PageTags<'a> {
    /// Pages with `description` and no pixel size.
    pub fn described(description: &'a str) -> Self {
        PageTags { description: Some(description), pixel_size_um: None }
    }

    /// The pixels per centimetre of [`PageTags::pixel_size_um`] as a TIFF rational, precise to
    /// 6 digits after the point where it fits in 32 bits; `None` without a pixel size or when
    /// the size is not a positive number a rational can hold (below about 2.3·10⁻⁶ µm or above
    /// 10¹⁰ µm).
    pub fn pixels_per_cm(&self) -> Option<tiff::encoder::Rational> {
        let um = self.pixel_size_um.filter(|p| p.is_finite() && *p > 0.0)?;
        let per_cm = 1e4 / um;
        let d = [1_000_000u32, 100_000, 10_000, 1_000, 100, 10, 1]
            .into_iter()
            .find(|d| (per_cm * f64::from(*d)).round() <= f64::from(u32::MAX))?;
        let n = (per_cm * f64::from(d)).round();
        // `n` is in 1..=u32::MAX here: the cast is exact.
        (n >= 1.0).then_some(tiff::encoder::Rational { n: n as u32, d })
    }
}

/// Every ImageDescription entry of a TIFF file's first image directory, in the directory's
/// order (the `tiff` crate keeps only the last of repeated tags). Text ends at its first NUL and
/// loses surrounding whitespace, as tifffile reads it; bytes that are not UTF-8 are replaced.
pub fn read_tiff_descriptions(path: &Path) -> Result<Vec<String>, VfsError> {
    use std::io::SeekFrom;
    /// Entries read from the directory at most, and bytes of one description.
    const MAX_ENTRIES: u64 = 4096;
    const MAX_TEXT: u64 = 16 << 20;
    let file = std::fs::File::open(path).map_err(|e| VfsError::io(path, e))?;
    let len = file.metadata().map_err(|e| VfsError::io(path, e))?.len();
    let mut r = std::io::BufReader::new(file);
    let bad = |message: &str| VfsError::CorruptTiff { path: path.to_path_buf(), message: message.to_string() };
    let short = |_| VfsError::TruncatedTiff { path: path.to_path_buf() };
    let mut head = [0u8; 16];
    r.read_exact(&mut head[..8]).map_err(short)?;
    let little = match &head[..2] {
        b"II" => true,
        b"MM" => false,
        _ => return Err(bad("not a TIFF (no II or MM byte order mark)")),
    };
    let u16_at = |b: &[u8]| if little { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) };
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
    };
    let u64_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        if little { u64::from_le_bytes(a) } else { u64::from_be_bytes(a) }
    };
    // Classic TIFF: 12-byte entries, 4-byte values; BigTIFF: 20-byte entries, 8-byte values.
    let big = match u16_at(&head[2..4]) {
        42 => false,
        43 => true,
        _ => return Err(bad("not a TIFF (no 42 or 43 after the byte order mark)")),
    };
    let (ifd, entry_len, inline) = if big {
        r.read_exact(&mut head[8..16]).map_err(short)?;
        (u64_at(&head[8..16]), 20usize, 8u64)
    } else {
        (u64::from(u32_at(&head[4..8])), 12usize, 4u64)
    };
    if ifd >= len {
        return Err(VfsError::TruncatedTiff { path: path.to_path_buf() });
    }
    r.seek(SeekFrom::Start(ifd)).map_err(|e| VfsError::io(path, e))?;
    let mut count = [0u8; 8];
    let count = if big {
        r.read_exact(&mut count).map_err(short)?;
        u64_at(&count)
    } else {
        r.read_exact(&mut count[..2]).map_err(short)?;
        u64::from(u16_at(&count[..2]))
    };
    let mut entries = vec![0u8; entry_len * usize::try_from(count.min(MAX_ENTRIES)).unwrap_or(0)];
    r.read_exact(&mut entries).map_err(short)?;
    let mut texts = Vec::new();
    for e in entries.chunks_exact(entry_len) {
        // Tag 270 (ImageDescription) of type 2 (ASCII).
        if u16_at(&e[0..2]) != 270 || u16_at(&e[2..4]) != 2 {
            continue;
        }
        let (n, value) = if big { (u64_at(&e[4..12]), &e[12..20]) } else { (u64::from(u32_at(&e[4..8])), &e[8..12]) };
        let bytes = if n <= inline {
            value[..usize::try_from(n).unwrap_or(0)].to_vec()
        } else {
            let at = if big { u64_at(value) } else { u64::from(u32_at(value)) };
            if n > MAX_TEXT || at.checked_add(n).is_none_or(|end| end > len) {
                return Err(VfsError::TruncatedTiff { path: path.to_path_buf() });
            }
            r.seek(SeekFrom::Start(at)).map_err(|e| VfsError::io(path, e))?;
            let mut text = vec![0u8; usize::try_from(n).unwrap_or(0)];
            r.read_exact(&mut text).map_err(short)?;
            text
        };
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        texts.push(String::from_utf8_lossy(&bytes[..end]).trim().to_string());
    }
    Ok(texts)
}
