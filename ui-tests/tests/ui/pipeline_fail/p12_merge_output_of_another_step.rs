// A typed key in `merge_outputs` must be produced by a function of that step.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "merge elsewhere";
        step "find" { func = find_positions; }
        step "count" {
            merge_outputs = [find_positions::outputs::positions];
            func = count_objects;
        }
    };
}
