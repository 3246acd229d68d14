// Functions are named by path: a misspelt function is a resolution error with a suggestion.
fn main() {
    let _ = hcs::pipeline! {
        name = "unknown function";
        step "smooth" { func = ui_tests::fixtures::smoth(sigma = 2.0); }
    };
}
