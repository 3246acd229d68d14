// `find_positions` produces `Vec<(f64, f64)>`; `place_tiles_u32` takes `positions` as `Vec<u32>`.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "type mismatch";
        step "find" { func = find_positions; }
        step "place" { func = place_tiles_u32; }
    };
}
