use hcs::prelude::*;

#[memory(ndarray)]
#[chain_breaker(restart)]
pub fn restart(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn main() {}
