//! What a plate's metadata says.

use serde::{Deserialize, Serialize};

use hcs_vfs::Dtype;

/// The microscope format a plate was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FormatKind {
    /// Molecular Devices ImageXpress (`.HTD` + `TimePoint_N/`).
    Imagexpress,
    /// Revvity Opera Phenix (`Images/Index.xml`).
    OperaPhenix,
    /// A plate written by hcs.
    Hcs,
    /// An OME-Zarr HCS plate (OME-NGFF 0.4 on Zarr v2 or 0.5 on Zarr v3) written by another tool
    /// (ome-zarr-py, bioformats2raw, …).
    OmeZarr,
    /// A plate OpenHCS wrote (`openhcs_metadata.json`).
    Openhcs,
}

impl FormatKind {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            FormatKind::Imagexpress => "imagexpress",
            FormatKind::OperaPhenix => "opera-phenix",
            FormatKind::Hcs => "hcs",
            FormatKind::OmeZarr => "ome-zarr",
            FormatKind::Openhcs => "openhcs",
        }
    }
}

/// One channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// 1-based channel number as in file names.
    pub index: u32,
    /// Display name (wavelength or dye).
    pub name: String,
}

/// Plate-level facts the compiler may use (e.g. `grid_dimensions`, `pixel_size`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateMetadata {
    /// Format read.
    pub format: FormatKind,
    /// Plate name.
    pub name: String,
    /// Site grid `(rows, cols)`, when the format records it.
    pub grid: Option<(u32, u32)>,
    /// Pixel size in µm, when the format records it.
    pub pixel_size_um: Option<f64>,
    /// Spacing of the z-planes in µm, when the format records it.
    #[serde(default)]
    pub z_spacing_um: Option<f64>,
    /// Stage step between neighbouring sites `(x, y)` in µm, from the stage positions the format
    /// records for one well's sites ([`crate::stage::site_step`]); `None` on an axis it cannot say.
    #[serde(default)]
    pub site_step_um: (Option<f64>, Option<f64>),
    /// Channels with names, in channel order.
    pub channels: Vec<ChannelInfo>,
    /// Tile shape `(height, width)` of the first image, if read.
    pub tile_shape: Option<(usize, usize)>,
    /// Storage dtype of the first image, if read.
    #[serde(default)]
    pub dtype: Option<Dtype>,
}
