use hcs::prelude::*;

#[memory(ndarray)]
pub fn tophat(stack: NdarrayStack, #[param(defualt = 50)] selem_radius: usize) -> NdarrayStack {
    let _ = selem_radius;
    stack
}

fn main() {}
