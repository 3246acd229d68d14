//! Writing a synthetic plate in the Opera Phenix layout: `Images/Index.xml` + one TIFF per plane.
//!
//! Field IDs follow a serpentine acquisition order (row 2 runs right to left), as a real stage
//! often does, so readers must renumber fields from stage positions to get raster sites.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{SynthConfig, TilePosition};
use hcs_plate::WellId;

/// Pixel size written to Index.xml, in metres.
pub const PIXEL_SIZE_M: f64 = 0.65e-6;

/// Spacing of the z-planes of a synthetic Opera plate (Index.xml `AbsPositionZ`), metres.
pub const Z_STEP_M: f64 = 2.0e-6;

/// `AbsPositionZ` of the first plane: the stage's absolute height, as the instrument records it.
const Z_BASE_M: f64 = 0.135;

/// The acquisition-order field id of a raster tile.
pub fn field_id(config: &SynthConfig, tile: &TilePosition) -> u32 {
    let cols = config.grid.1;
    let col_in_order = if tile.row.is_multiple_of(2) { tile.col } else { cols - 1 - tile.col };
    tile.row * cols + col_in_order + 1
}

fn file_name(well: WellId, field: u32, z: u32, c: u32, t: u32) -> String {
    format!("r{:02}c{:02}f{field:02}p{z:02}-ch{c}sk{t}fk1fl1.tiff", well.row + 1, well.col)
}

/// Path of one image.
pub fn image_path(
    config: &SynthConfig,
    out: &Path,
    well: WellId,
    tile: &TilePosition,
    t: u32,
    z: u32,
    c: u32,
) -> PathBuf {
    out.join("Images").join(file_name(well, field_id(config, tile), z, c, t))
}

/// Write `Images/Index.xml`.
pub fn write_index(
    config: &SynthConfig,
    out: &Path,
    positions: &[(WellId, Vec<TilePosition>)],
) -> Result<(), hcs_vfs::VfsError> {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<EvaluationInputData xmlns=\"http://www.perkinelmer.com/PEHH/HarmonyV6\" Version=\"2\">\n",
    );
    let _ =
        writeln!(xml, "  <Plates><Plate><PlateID>hcs-synthetic</PlateID><Name>synthetic_plate</Name></Plate></Plates>");
    xml.push_str("  <Maps><Map>\n");
    for c in 1..=config.channels {
        let name = match c {
            1 => "HOECHST 33342".to_owned(),
            2 => "Calcein".to_owned(),
            n => format!("Channel {n}"),
        };
        let _ = writeln!(
            xml,
            "    <Entry ChannelID=\"{c}\"><ChannelName>{name}</ChannelName><ImageResolutionX Unit=\"m\">{PIXEL_SIZE_M:e}</ImageResolutionX><ImageResolutionY Unit=\"m\">{PIXEL_SIZE_M:e}</ImageResolutionY></Entry>"
        );
    }
    xml.push_str("  </Map></Maps>\n  <Images>\n");
    for (well, tiles) in positions {
        for tile in tiles {
            let field = field_id(config, tile);
            for t in 1..=config.timepoints {
                for z in 1..=config.z_planes {
                    for c in 1..=config.channels {
                        let _ = writeln!(
                            xml,
                            "    <Image Version=\"1\"><id>{:02}{:02}K{t}F{field}P{z}R{c}</id><URL>{}</URL><Row>{}</Row><Col>{}</Col><FieldID>{field}</FieldID><PlaneID>{z}</PlaneID><TimepointID>{}</TimepointID><ChannelID>{c}</ChannelID><PositionX Unit=\"m\">{:e}</PositionX><PositionY Unit=\"m\">{:e}</PositionY><AbsPositionZ Unit=\"m\">{:e}</AbsPositionZ><ImageResolutionX Unit=\"m\">{PIXEL_SIZE_M:e}</ImageResolutionX></Image>",
                            well.row + 1,
                            well.col,
                            file_name(*well, field, z, c, t),
                            well.row + 1,
                            well.col,
                            t - 1,
                            tile.x * PIXEL_SIZE_M,
                            -tile.y * PIXEL_SIZE_M,
                            Z_BASE_M + f64::from(z - 1) * Z_STEP_M,
                        );
                    }
                }
            }
        }
    }
    xml.push_str("  </Images>\n</EvaluationInputData>\n");
    hcs_vfs::atomic::write_atomic(&out.join("Images").join("Index.xml"), xml.as_bytes())
}
