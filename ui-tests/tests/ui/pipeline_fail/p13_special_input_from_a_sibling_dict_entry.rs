// Each group of a dict step runs only the entry its `group_by` value selects, in no defined
// order: one entry cannot read a special output another entry of the same step produces.
// File twin (tests/agree.rs):
//     [[steps]]
//     name = "stitch"
//     group_by = "channel"
//     func = { dict = { "1" = "find_positions", "2" = "place_tiles" } }
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "sibling entries";
        step "stitch" {
            group_by = channel;
            func = { "1": find_positions, "2": place_tiles };
        }
    };
}
