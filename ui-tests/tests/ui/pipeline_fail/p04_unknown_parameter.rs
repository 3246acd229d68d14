// `smooth` has no parameter `sigmaa` (it has `sigma`).
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "unknown parameter";
        step "smooth" { func = smooth(sigmaa = 2.0); }
    };
}
