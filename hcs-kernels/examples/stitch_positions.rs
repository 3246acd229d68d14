//! Tile positions of every well of a plate, as JSON on stdout: `{"B03": [[x, y], …], …}` in site
//! order. Used by bench/stitch_compare.sh to run hcs and the peer on the same plate files.
//!
//! `cargo run --release -p hcs-kernels --example stitch_positions -- PLATE ROWS COLS OVERLAP ALPHA [CHANNEL Z]`

use std::path::PathBuf;

use hcs_kernels::stitch::positions::ashlar_compute_tile_positions;
use hcs_plate::ImageKey;
use hcs_plate::formats::open_plate;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plate, rows, cols, overlap, alpha, rest @ ..] = args.as_slice() else {
        return Err("usage: stitch_positions PLATE ROWS COLS OVERLAP ALPHA [CHANNEL Z]".into());
    };
    let (channel, z): (u32, u32) = match rest {
        [c, z] => (c.parse()?, z.parse()?),
        _ => (1, 1),
    };
    let grid: (u32, u32) = (rows.parse()?, cols.parse()?);
    let plate = open_plate(&PathBuf::from(plate), None)?;
    let mut out = serde_json::Map::new();
    for well in plate.index.wells() {
        let keys: Vec<ImageKey> =
            (1..=grid.0 * grid.1).map(|site| ImageKey { well, timepoint: 1, site, channel, z }).collect();
        let stack = plate.load_stack(&keys)?;
        let (_, found) =
            ashlar_compute_tile_positions(stack, &grid, &None, overlap.parse()?, 15.0, alpha.parse()?, 10, 100)?;
        out.insert(well.to_string(), serde_json::to_value(&found.positions)?);
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
