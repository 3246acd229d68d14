use hcs::prelude::*;

#[memory(ndarray)]
pub fn threshold(stack: NdarrayStack, rule: fn(f32) -> bool) -> NdarrayStack {
    stack.mapv(|v| if rule(v) { v } else { 0.0 })
}

fn main() {}
