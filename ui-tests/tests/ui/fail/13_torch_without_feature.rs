use hcs::prelude::*;

#[memory(torch)]
pub fn tophat(stack: TorchStack) -> TorchStack {
    stack
}

fn main() {}
