use hcs::prelude::*;

#[memory(ndarray)]
#[special_inputs(positions)]
pub fn assemble(stack: NdarrayStack, position: &Vec<(f64, f64)>) -> NdarrayStack {
    let _ = position;
    stack
}

fn main() {}
