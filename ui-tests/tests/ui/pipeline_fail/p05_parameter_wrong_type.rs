// `sigma` is an `f64`, not a string; `passes` is a `usize`, not a float.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "wrong parameter type";
        step "smooth" { func = smooth(sigma = "wide", passes = 2.5); }
    };
}
