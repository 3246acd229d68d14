//! What the compiler needs to know about a plate: its wells, the values of each component, and
//! the metadata it can hand to functions (site grid, pixel size). Taken from a loaded [`Plate`]
//! or written by hand (tests, benchmarks).

use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::PathBuf;

use hcs_plate::{Component, Plate, WellId};

use crate::pipeline::{PlateInput, PlateInputError};

/// A plate as the compiler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlateInfo {
    /// The plate folder (read only).
    pub root: PathBuf,
    /// Wells, in order.
    pub wells: Vec<WellId>,
    /// Values of site, channel, z_index and timepoint (every well has every combination: ragged
    /// plates are rejected when the plate is opened).
    pub values: BTreeMap<Component, Vec<u32>>,
    /// Site grid `(rows, cols)`, when the format records it.
    pub grid: Option<(u32, u32)>,
    /// Pixel size in µm, when the format records it.
    pub pixel_size_um: Option<f64>,
    /// Tile shape `(height, width)`, when known (for memory estimates).
    pub tile_shape: Option<(usize, usize)>,
    /// Overlap fraction `(x, y)` of neighbouring sites that the plate's stage positions give
    /// ([`hcs_plate::stage::overlap_from_step`]), when they do.
    pub site_overlap: Option<(f64, f64)>,
    /// The smallest and largest sample the plate's storage type holds — `(0, 255)` for 8-bit
    /// images, `(0, 65535)` for 16-bit ones and plates whose images were not read, `None` for
    /// floating point — which bounds every stored output: outputs are stored in the plate's
    /// type, rounded and clamped.
    pub sample_range: Option<(f64, f64)>,
}

/// The components that vary inside a well.
pub const WELL_COMPONENTS: [Component; 4] = [Component::Site, Component::Channel, Component::Z, Component::Timepoint];

impl PlateInfo {
    /// Read it from a loaded plate (one pass over the index per component).
    pub fn of(plate: &Plate) -> Self {
        let values = WELL_COMPONENTS.iter().map(|&c| (c, plate.index.values(c))).collect();
        Self {
            root: plate.root.clone(),
            wells: plate.index.wells(),
            values,
            grid: plate.metadata.grid,
            pixel_size_um: plate.metadata.pixel_size_um,
            tile_shape: plate.metadata.tile_shape,
            site_overlap: hcs_plate::stage::overlap_from_step(
                plate.metadata.site_step_um,
                plate.metadata.pixel_size_um,
                plate.metadata.tile_shape,
            ),
            sample_range: sample_range(plate.metadata.dtype.unwrap_or(hcs_vfs::Dtype::U16)),
        }
    }

    /// A regular plate: `rows × cols` wells (A01…), sites `1..=sites`, and so on.
    #[allow(clippy::too_many_arguments)]
    pub fn regular(
        root: impl Into<PathBuf>,
        rows: u16,
        cols: u16,
        grid: (u32, u32),
        channels: u32,
        z_planes: u32,
        timepoints: u32,
        tile_shape: (usize, usize),
    ) -> Self {
        let wells = (0..rows).flat_map(|r| (1..=cols).map(move |c| WellId::new(r, c))).collect();
        let values = BTreeMap::from([
            (Component::Site, (1..=grid.0 * grid.1).collect()),
            (Component::Channel, (1..=channels).collect()),
            (Component::Z, (1..=z_planes).collect()),
            (Component::Timepoint, (1..=timepoints).collect()),
        ]);
        Self {
            root: root.into(),
            wells,
            values,
            grid: Some(grid),
            pixel_size_um: Some(0.65),
            tile_shape: Some(tile_shape),
            site_overlap: None,
            sample_range: sample_range(hcs_vfs::Dtype::U16),
        }
    }
}

/// The samples a plane stored as `dtype` holds (`None`: any number).
fn sample_range(dtype: hcs_vfs::Dtype) -> Option<(f64, f64)> {
    match dtype {
        hcs_vfs::Dtype::U8 => Some((0.0, f64::from(u8::MAX))),
        hcs_vfs::Dtype::U16 => Some((0.0, f64::from(u16::MAX))),
        hcs_vfs::Dtype::F32 => None,
    }
}

impl PlateInput {
    /// The value phase 1 freezes into the plan for a consumer that declares this input as type
    /// `ty`: the plate's metadata as JSON ([`PlateInput::decode`] reads it back).
    pub fn plate_value(self, plate: &PlateInfo, ty: TypeId) -> Result<serde_json::Value, PlateInputError> {
        if ty != self.type_id() {
            return Err(PlateInputError::WrongType(self));
        }
        let value = match self {
            PlateInput::GridDimensions => plate.grid.map(|(r, c)| serde_json::json!([r, c])),
            PlateInput::PixelSize => plate.pixel_size_um.map(|p| serde_json::json!(p)),
            // Always supplied: `null` says the stage positions could not give it.
            PlateInput::SiteOverlap => Some(serde_json::json!(plate.site_overlap)),
        };
        value.ok_or(PlateInputError::NotRecorded(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plate_metadata_values_are_typed() {
        let mut plate = PlateInfo::regular("/p", 1, 1, (2, 3), 1, 1, 1, (8, 8));
        let grid = PlateInput::GridDimensions;
        assert_eq!(grid.plate_value(&plate, TypeId::of::<(u32, u32)>()), Ok(serde_json::json!([2, 3])));
        assert_eq!(PlateInput::PixelSize.plate_value(&plate, TypeId::of::<f64>()), Ok(serde_json::json!(0.65)));
        assert_eq!(grid.plate_value(&plate, TypeId::of::<u32>()), Err(PlateInputError::WrongType(grid)));
        plate.grid = None;
        let missing = grid.plate_value(&plate, TypeId::of::<(u32, u32)>()).expect_err("no grid");
        assert_eq!(missing.to_string(), "the plate's metadata records no site grid");
        // What the compiler freezes, the executor decodes.
        let px = PlateInput::PixelSize.plate_value(&plate, TypeId::of::<f64>()).expect("pixel size");
        let back = PlateInput::PixelSize.decode(&px).expect("decodes");
        assert_eq!(back.downcast_ref::<f64>(), Some(&0.65));
        // The site overlap is always supplied, unknown or not.
        let overlap = PlateInput::SiteOverlap;
        let ty = TypeId::of::<Option<(f64, f64)>>();
        assert_eq!(overlap.plate_value(&plate, ty), Ok(serde_json::Value::Null));
        plate.site_overlap = Some((0.1, 0.15));
        let value = overlap.plate_value(&plate, ty).expect("supplied");
        assert_eq!(value, serde_json::json!([0.1, 0.15]));
        let back = overlap.decode(&value).expect("decodes");
        assert_eq!(back.downcast_ref::<Option<(f64, f64)>>(), Some(&Some((0.1, 0.15))));
    }
}
