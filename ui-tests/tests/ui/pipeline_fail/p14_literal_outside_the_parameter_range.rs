// `sigma` accepts 0..=50 and `passes` 1..=10 (`#[param(range = ..)]`): a literal outside is a
// rustc error on the literal, with the rule the runtime compiler applies to pipeline files.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "out of range";
        step "smooth" { func = smooth(sigma = 100.0, passes = 0); }
    };
}
