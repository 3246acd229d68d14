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
}

impl FormatKind {
    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            FormatKind::Imagexpress => "imagexpress",
            FormatKind::OperaPhenix => "opera-phenix",
            FormatKind::Hcs => "hcs",
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
    /// Channels with names, in channel order.
    pub channels: Vec<ChannelInfo>,
    /// Tile shape `(height, width)` of the first image, if read.
    pub tile_shape: Option<(usize, usize)>,
    /// Storage dtype of the first image, if read.
    #[serde(with = "dtype_name", default)]
    pub dtype: Option<Dtype>,
}

mod dtype_name {
    use hcs_vfs::Dtype;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Dtype>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(d.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dtype>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        match name {
            None => Ok(None),
            Some(n) => Dtype::from_name(&n)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown dtype `{n}`"))),
        }
    }
}
