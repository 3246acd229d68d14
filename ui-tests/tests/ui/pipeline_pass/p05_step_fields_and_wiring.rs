// Every step field, special data across steps (through a `pipeline_start` step), a
// plate-supplied input, and a typed key in `merge_outputs`.
use hcs::plan::pipeline::{Pipeline, check_functions, check_special_io};
use hcs::{Registry, SpecialKey};
use ui_tests::fixtures::*;

fn main() {
    let rust = hcs::pipeline! {
        name = "fields";
        step "find" {
            variable_components = [site, z_index];
            materialize = true;
            func = find_positions;
        }
        step "count" {
            variable_components = [site];
            merge_outputs = [count_objects::outputs::object_counts];
            func = count_objects;
        }
        step "place raw" {
            input_source = pipeline_start;
            func = [scale_bar, place_tiles];
        }
    };
    let (file, _) = Pipeline::from_toml(
        r#"
        name = "fields"
        [[steps]]
        name = "find"
        variable_components = ["site", "z_index"]
        materialize = true
        func = "find_positions"
        [[steps]]
        name = "count"
        variable_components = ["site"]
        merge_outputs = ["object_counts"]
        func = "count_objects"
        [[steps]]
        name = "place raw"
        input_source = "pipeline_start"
        func = ["scale_bar", "place_tiles"]
        "#,
    )
    .expect("valid file");
    assert_eq!(rust, file);
    assert!(check_functions(&rust, Registry::global(), None).is_empty());
    assert!(check_special_io(&rust, Registry::global(), None).is_empty());

    // Typed keys carry their name and value type.
    assert_eq!(find_positions::outputs::positions::NAME, "positions");
    let value: <place_tiles::inputs::positions as SpecialKey>::Value = vec![(1.0, 2.0)];
    let produced: <find_positions::outputs::positions as SpecialKey>::Value = value;
    assert_eq!(produced.len(), 1);
}
