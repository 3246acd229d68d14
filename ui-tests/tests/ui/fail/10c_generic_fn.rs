use hcs::prelude::*;

#[memory(ndarray)]
pub fn scale<T: Into<f32>>(stack: NdarrayStack, factor: T) -> NdarrayStack {
    stack * factor.into()
}

fn main() {}
