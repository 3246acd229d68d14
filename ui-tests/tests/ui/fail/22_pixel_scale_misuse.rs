use hcs::prelude::*;

// The plane size does not change: the pixel size cannot either.
#[memory(ndarray)]
#[pixel_scale(2.0)]
pub fn keeps_size(stack: NdarrayStack) -> NdarrayStack {
    stack
}

// Reads nothing the compiler knows.
#[memory(ndarray, xy = any)]
#[output_shape((image.height / 2, image.width / 2, image.planes))]
#[pixel_scale(2.0)]
pub fn constant(stack: NdarrayStack) -> NdarrayStack {
    stack
}

// Not a number.
#[memory(ndarray, xy = any)]
#[output_shape((image.height / factor, image.width / factor, image.planes))]
#[pixel_scale(factor)]
pub fn not_f64(stack: NdarrayStack, #[param(default = 2)] factor: usize) -> NdarrayStack {
    let _ = factor;
    stack
}

fn main() {}
