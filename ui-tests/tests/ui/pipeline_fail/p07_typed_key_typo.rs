// Special-data keys are typed items: a misspelt key is a resolution error with a suggestion.
use ui_tests::fixtures::*;

fn main() {
    let _ = hcs::pipeline! {
        name = "key typo";
        step "count" {
            variable_components = [site];
            merge_outputs = [count_objects::outputs::objects_counts];
            func = count_objects;
        }
    };
}
