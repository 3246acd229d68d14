use hcs::prelude::*;
use std::collections::BTreeMap;

#[memory(ndarray)]
#[check(1 < 2, "always")]
pub fn reads_nothing(stack: NdarrayStack, #[param(default = 1.0)] gain: f32) -> NdarrayStack {
    stack.mapv(|v| v * gain)
}

#[memory(ndarray)]
#[special_inputs(positions)]
#[check(positions.len() > 0)]
pub fn reads_special(stack: NdarrayStack, positions: &BTreeMap<String, f64>) -> NdarrayStack {
    let _ = positions;
    stack
}

#[memory(ndarray)]
#[check(sigma < radius, "sigma below radius")]
pub fn mixed_types(
    stack: NdarrayStack,
    #[param(default = 1.0)] sigma: f64,
    #[param(default = 3)] radius: usize,
) -> NdarrayStack {
    let _ = (sigma, radius);
    stack
}

#[memory(ndarray)]
#[check(low < high, 42)]
pub fn message_not_a_string(stack: NdarrayStack, #[param(default = 1.0)] low: f64, #[param(default = 2.0)] high: f64) -> NdarrayStack {
    let _ = (low, high);
    stack
}

fn main() {}
