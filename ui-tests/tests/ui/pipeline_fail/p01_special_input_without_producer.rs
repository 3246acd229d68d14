// `place_tiles` needs special input `positions`; no step produces it.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "no producer";
        step "smooth" { func = smooth; }
        step "place" { func = place_tiles; }
    };
}
