// A chain: each member feeds the next; an earlier member's special output feeds a later member.
use hcs::plan::pipeline::{Pipeline, check_functions, check_special_io};
use hcs::Registry;
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "chain";
        step "find and place" { func = [find_positions, smooth(sigma = 1.5), place_tiles]; }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "chain"
        [[steps]]
        name = "find and place"
        func = ["find_positions", { function = "smooth", params = { sigma = 1.5 } }, "place_tiles"]
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
    assert!(check_special_io(&rust, Registry::global(), None).is_empty());
}
