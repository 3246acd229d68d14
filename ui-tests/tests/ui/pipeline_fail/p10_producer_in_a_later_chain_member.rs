// Within a chain, a special input needs an *earlier* member (or step) producing it.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "chain order";
        step "place then find" { func = [place_tiles, find_positions]; }
    };
}
