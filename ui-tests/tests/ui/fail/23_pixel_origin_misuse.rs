use hcs::prelude::*;

// The plane size does not change: the output cannot start elsewhere.
#[memory(ndarray)]
#[pixel_origin((start as f64, start as f64))]
pub fn keeps_size(stack: NdarrayStack, #[param(default = 0)] start: usize) -> NdarrayStack {
    let _ = start;
    stack
}

// Not a pair of numbers.
#[memory(ndarray, xy = any)]
#[output_shape((image.height - start, image.width - start, image.planes))]
#[pixel_origin(start)]
pub fn not_a_pair(stack: NdarrayStack, #[param(default = 0)] start: usize) -> NdarrayStack {
    let _ = start;
    stack
}

fn main() {}
