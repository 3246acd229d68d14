use hcs::prelude::*;
use std::collections::BTreeMap;

// The size does not change: nothing to declare.
#[memory(ndarray)]
#[output_shape((image.height, image.width, image.planes))]
pub fn keeps_size(stack: NdarrayStack) -> NdarrayStack {
    stack
}

// Not a (height, width, planes) tuple.
#[memory(ndarray, xy = any)]
#[output_shape((image.height / factor, image.width / factor))]
pub fn two_numbers(stack: NdarrayStack, #[param(default = 2)] factor: usize) -> NdarrayStack {
    let _ = factor;
    stack
}

// A special input is known only at run time.
#[memory(ndarray, planes = one, xy = any)]
#[special_inputs(positions)]
#[output_shape((positions.len(), positions.len(), Some(1)))]
pub fn reads_special(stack: NdarrayStack, positions: &BTreeMap<String, f64>) -> NdarrayStack {
    let _ = positions;
    stack
}

// Given twice.
#[memory(ndarray, xy = any)]
#[output_shape((image.height / factor, image.width / factor, image.planes))]
#[output_shape((image.height, image.width, image.planes))]
pub fn twice(stack: NdarrayStack, #[param(default = 2)] factor: usize) -> NdarrayStack {
    let _ = factor;
    stack
}

fn main() {}
