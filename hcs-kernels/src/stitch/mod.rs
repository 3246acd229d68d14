//! Tile stitching: positions from overlaps (`ashlar_compute_tile_positions`) and mosaics from
//! positions (`assemble_stack`, with its torch variant in `torch.rs`).

pub mod assemble;
mod overlap;
pub mod phase;
pub mod positions;
#[cfg(feature = "torch")]
pub mod torch;

pub use assemble::assemble_stack;
pub use positions::{EdgeReport, TilePositions};
