use hcs::prelude::*;
use hcs::{ParamMap, Registry, SpecialData, SpecialInputs, Stack};

#[memory(ndarray)]
#[special_inputs(positions, grid)]
pub fn assemble(
    stack: NdarrayStack,
    #[param(default = 0.1)] margin: f64,
    grid: (u32, u32),
    positions: &Vec<(f64, f64)>,
) -> NdarrayStack {
    let _ = margin;
    let n = positions.len() as f32 + (grid.0 * grid.1) as f32;
    stack.mapv(|v| v + n)
}

fn main() {
    let c = Registry::global().variants("assemble")[0];
    // Declaration order of the attribute, not signature order.
    let keys: Vec<_> = c.special_inputs.iter().map(|s| s.key).collect();
    assert_eq!(keys, ["positions", "grid"]);
    assert_eq!(c.params.len(), 1, "special inputs are not tunable parameters");

    let mut specials = SpecialInputs::new();
    specials.insert("positions", SpecialData::new(vec![(0.0f64, 0.0f64); 4]));
    specials.insert("grid", SpecialData::new((2u32, 2u32)));
    let out = c.call(Stack::Ndarray(ndarray::Array3::zeros((1, 1, 1))), &ParamMap::new(), &specials).expect("runs");
    let Stack::Ndarray(a) = out.stack else { panic!("ndarray") };
    assert_eq!(a[[0, 0, 0]], 8.0);

    let err = c
        .call(Stack::Ndarray(ndarray::Array3::zeros((1, 1, 1))), &ParamMap::new(), &SpecialInputs::new())
        .expect_err("no specials");
    assert_eq!(err.to_string(), "function `assemble` needs special input `grid`, but none was provided");
}
