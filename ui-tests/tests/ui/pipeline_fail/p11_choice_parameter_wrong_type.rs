// A choice parameter takes its enum (here `ProjectionMethod`), not a number.
use hcs::kernels::projection::create_projection;

fn main() {
    let _ = hcs::pipeline! {
        name = "choice";
        step "project" { variable_components = [z_index]; func = create_projection(method = 3); }
    };
}
