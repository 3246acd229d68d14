// A function by name: the pipeline equals its pipeline-file twin, and the runtime checks agree.
use hcs::plan::pipeline::{Pipeline, check_functions, check_special_io};
use hcs::Registry;
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "by name";
        step "smooth" { func = smooth; }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "by name"
        [[steps]]
        name = "smooth"
        func = "smooth"
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
    assert!(check_special_io(&rust, Registry::global(), None).is_empty());
}
