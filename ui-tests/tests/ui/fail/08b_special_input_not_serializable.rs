use hcs::prelude::*;

pub struct Positions(pub Vec<(f64, f64)>);

#[memory(ndarray)]
#[special_inputs(positions)]
pub fn assemble(stack: NdarrayStack, positions: &Positions) -> NdarrayStack {
    let _ = positions;
    stack
}

fn main() {}
