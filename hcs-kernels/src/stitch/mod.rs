//! Tile stitching: positions from overlaps (`ashlar_compute_tile_positions`) and mosaics from
//! positions (`assemble_stack`).

pub mod assemble;
pub mod phase;
pub mod positions;

pub use positions::{EdgeReport, TilePositions};
