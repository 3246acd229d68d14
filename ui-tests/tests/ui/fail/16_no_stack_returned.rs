use hcs::prelude::*;

#[memory(ndarray)]
pub fn log_stats(stack: NdarrayStack) {
    let _ = stack;
}

fn main() {}
