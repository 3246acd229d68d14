// A dict pattern routes calls by a component value, so the step needs `group_by`.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "dict without group_by";
        step "per channel" {
            func = { "1": smooth(sigma = 1.0), "2": smooth(sigma = 3.0) };
        }
    };
}
