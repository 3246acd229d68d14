use hcs::prelude::*;
use hcs::{PlaneCount, Registry};

/// Collapses the stack to one plane.
#[memory(ndarray, planes = one)]
pub fn first_plane(stack: NdarrayStack) -> NdarrayStack {
    stack.slice_move(ndarray::s![0..1, .., ..])
}

/// Keeps as many planes as it gets (the default).
#[memory(input = ndarray, output = ndarray, planes = same)]
pub fn identity(stack: NdarrayStack) -> NdarrayStack {
    stack
}

fn main() {
    let r = Registry::global();
    assert_eq!(r.variants("first_plane")[0].output_planes, PlaneCount::One);
    assert_eq!(r.variants("identity")[0].output_planes, PlaneCount::Same);
}
