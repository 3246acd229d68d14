use hcs::prelude::*;

#[memory(ndarray)]
pub fn first_plane(stack: NdarrayStack) -> ndarray::Array2<f32> {
    stack.index_axis_move(ndarray::Axis(0), 0)
}

fn main() {}
