//! OME-Zarr HCS plates (OME-NGFF): plate → row → column → field → multiscale image with axes
//! `[t,] c, z, y, x` (as hcs writes them; [`read_plane`] also reads plates other tools wrote, with
//! their own dataset paths, any NGFF axis order ending in `y, x`, and chunks uncompressed or
//! compressed with zstd, blosc, zlib or numcodecs lz4 — `lz4`, registered with zarrs here). A
//! chunk holding several planes (OpenHCS stores a field's channels and z-planes in one) is
//! decoded once for all its planes (`chunk_cache`).
//!
//! Every image is a multiscale pyramid (`pyramid`: at least 3 levels, until the smaller side is
//! under 512 px) with the pixel size scaled per level. Wells of one plate share a field shape,
//! as viewers tile the plate from the first well's: fields larger than a tile (mosaics) are
//! padded at the bottom and right to [`PlateLayout::mosaic_canvas`], the valid extent recorded
//! under the image's `hcs` attributes.
//!
//! NGFF 0.5 on Zarr v3 is the default: every plane is one shard (so reading a plane decompresses
//! only that plane) holding 256² inner chunks compressed with zstd. NGFF 0.4 on Zarr v2 is
//! available for older viewers (one chunk per plane).
//!
//! Atomicity: a well is written into a hidden temporary directory beside its final place and
//! renamed into place when complete; metadata files are written with [`write_atomic`](crate::atomic::write_atomic). A crash
//! leaves either a complete well or no well, and the plate metadata lists only wells that exist.
//!
//! Reproducibility: the bytes depend on the data alone, not on thread timing — a shard holds its
//! inner chunks in C order (zarrs' default is completion order), and every metadata document is
//! written with sorted keys.

mod chunk_cache;
mod lz4;
pub use chunk_cache::CACHE_SETTING as CHUNK_CACHE_SETTING;
mod metadata;
pub use metadata::standard_format;
pub mod pyramid;
mod reader;
mod writer;

use serde::{Deserialize, Serialize};

pub use reader::{NgffImage, OmeZarrPlate, group_attributes, is_plate_root, read_plane, well_images};
pub use writer::{OmeZarrPlateWriter, WellWriter};

use crate::plane::Dtype;

/// Which OME-NGFF version (and so which Zarr format) to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NgffVersion {
    /// NGFF 0.4 on Zarr v2.
    #[serde(rename = "0.4")]
    V04,
    /// NGFF 0.5 on Zarr v3 (default).
    #[default]
    #[serde(rename = "0.5")]
    V05,
}

/// Chunk compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "codec", content = "level", rename_all = "lowercase")]
pub enum ZarrCodec {
    /// zstd at the given level (1-22; 3 is a good default).
    Zstd(i32),
    /// No compression.
    None,
}

impl Default for ZarrCodec {
    fn default() -> Self {
        ZarrCodec::Zstd(3)
    }
}

/// The shape of a plate to write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateLayout {
    /// Plate name.
    pub name: String,
    /// Wells as (row letters, column number), e.g. ("A", 1).
    pub wells: Vec<(String, u32)>,
    /// Fields (sites) per well.
    pub fields: u32,
    /// Time points (the `t` axis is written only when > 1).
    pub timepoints: u32,
    /// Channel names, in channel order.
    pub channels: Vec<String>,
    /// Z-planes.
    pub z_planes: u32,
    /// Plane shape `(height, width)`.
    pub plane_shape: (usize, usize),
    /// Storage dtype.
    pub dtype: Dtype,
    /// Pixel size in µm, if known.
    pub pixel_size_um: Option<f64>,
    /// Spacing of the z-planes in µm, if known (else the z axis has no unit and scale 1).
    #[serde(default)]
    pub z_spacing_um: Option<f64>,
    /// NGFF version.
    pub version: NgffVersion,
    /// Compression.
    pub codec: ZarrCodec,
    /// Field shape every image larger than [`Self::plane_shape`] (a mosaic) is padded to, when it
    /// fits: one shape for the whole plate, as viewers require.
    #[serde(default)]
    pub mosaic_canvas: Option<(usize, usize)>,
    /// Where every field's first pixel lies, `(y, x)` in the unit of the scale (µm when the
    /// pixel size is known, else output pixels): `(0, 0)` unless a step such as a crop moved it.
    /// Written as the level-0 translation.
    #[serde(default)]
    pub origin: (f64, f64),
}

impl PlateLayout {
    /// Whether the image arrays carry a `t` axis.
    pub fn has_t(&self) -> bool {
        self.timepoints > 1
    }

    /// The image array shape.
    pub fn array_shape(&self) -> Vec<u64> {
        let (h, w) = self.plane_shape;
        let mut shape = Vec::with_capacity(5);
        if self.has_t() {
            shape.push(u64::from(self.timepoints));
        }
        shape.extend([self.channels.len() as u64, u64::from(self.z_planes), h as u64, w as u64]);
        shape
    }

    /// The field shape written for images of `shape`: the mosaic canvas for images larger than a
    /// tile that fit in it, else `shape` itself.
    pub fn field_shape(&self, shape: (usize, usize)) -> (usize, usize) {
        let larger = shape.0 > self.plane_shape.0 || shape.1 > self.plane_shape.1;
        match self.mosaic_canvas {
            Some(canvas) if larger && shape.0 <= canvas.0 && shape.1 <= canvas.1 => canvas,
            _ => shape,
        }
    }

    /// The array index of plane (t, c, z), all 0-based.
    pub fn plane_index(&self, t: u32, c: u32, z: u32) -> Vec<u64> {
        let mut idx = Vec::with_capacity(5);
        if self.has_t() {
            idx.push(u64::from(t));
        }
        idx.extend([u64::from(c), u64::from(z), 0, 0]);
        idx
    }
}

#[cfg(test)]
mod tests;
