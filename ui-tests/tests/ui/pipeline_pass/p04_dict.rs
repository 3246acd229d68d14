// A dict routed by `group_by`, with a chain and calls with and without parameters as entries.
use hcs::plan::pipeline::{Pipeline, check_functions, check_special_io};
use hcs::Registry;
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "dict";
        step "per channel" {
            group_by = channel;
            func = {
                "2": [smooth(sigma = 1.0), smooth],
                "1": smooth(passes = 2),
                "3": smooth,
            };
        }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "dict"
        [[steps]]
        name = "per channel"
        group_by = "channel"
        func = { dict = { "1" = { function = "smooth", params = { passes = 2 } }, "2" = [{ function = "smooth", params = { sigma = 1.0 } }, "smooth"], "3" = "smooth" } }
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
    assert!(check_special_io(&rust, Registry::global(), None).is_empty());
}
