use hcs::prelude::*;

#[memory(cupy)]
pub fn denoise(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn main() {}
