use hcs::prelude::*;

#[memory(ndarray, planes = fewer)]
pub fn project(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn main() {}
