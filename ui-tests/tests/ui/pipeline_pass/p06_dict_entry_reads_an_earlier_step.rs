// A dict entry may read a special output of an earlier step, and a later step may read one a dict
// entry produced; only links between entries of one dict step are refused.
use hcs::Registry;
use hcs::plan::pipeline::{Pipeline, check_functions, check_special_io};
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "dict entries and earlier steps";
        step "find" { func = find_positions; }
        step "per channel" {
            group_by = channel;
            func = { "1": [smooth, place_tiles], "2": place_tiles };
        }
        step "find again" {
            group_by = channel;
            func = { "1": find_positions };
        }
        step "place" { func = place_tiles; }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "dict entries and earlier steps"
        [[steps]]
        name = "find"
        func = "find_positions"
        [[steps]]
        name = "per channel"
        group_by = "channel"
        func = { dict = { "1" = ["smooth", "place_tiles"], "2" = "place_tiles" } }
        [[steps]]
        name = "find again"
        group_by = "channel"
        func = { dict = { "1" = "find_positions" } }
        [[steps]]
        name = "place"
        func = "place_tiles"
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
    assert!(check_special_io(&rust, Registry::global(), None).is_empty());
}
