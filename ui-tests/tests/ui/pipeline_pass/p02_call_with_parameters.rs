// A function with parameters of several types (a `&str` literal for a `String` parameter).
use hcs::plan::pipeline::{Pipeline, check_functions};
use hcs::Registry;
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "with params";
        step "smooth" { func = smooth(sigma = 2.5, mode = "nearest", passes = 3); }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "with params"
        [[steps]]
        name = "smooth"
        func = { function = "smooth", params = { sigma = 2.5, mode = "nearest", passes = 3 } }
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
}
