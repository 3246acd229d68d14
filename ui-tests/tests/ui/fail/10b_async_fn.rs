use hcs::prelude::*;

#[memory(ndarray)]
pub async fn fetch(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn main() {}
