// `positions` is produced, but only by a later step.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "producer later";
        step "place" { func = place_tiles; }
        step "find" { func = find_positions; }
    };
}
