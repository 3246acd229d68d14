use hcs::prelude::*;

fn planes_first(planes: &[ndarray::ArrayView2<'_, f32>]) -> NdarrayStack {
    planes[0].to_owned().insert_axis(ndarray::Axis(0))
}

fn returns_a_plane(planes: &[ndarray::ArrayView2<'_, f32>]) -> ndarray::Array2<f32> {
    planes[0].to_owned()
}

// A plane-views form borrows host planes: not for a torch stack.
#[memory(torch, planes = one, views = planes_first)]
pub fn on_torch(stack: TorchStack) -> TorchStack {
    stack
}

#[memory(ndarray, planes = one, views = planes_first, views = planes_first)]
pub fn twice(stack: NdarrayStack) -> NdarrayStack {
    stack
}

// The views form must return what the function returns.
#[memory(ndarray, planes = one, views = returns_a_plane)]
pub fn other_return(stack: NdarrayStack) -> NdarrayStack {
    stack
}

// The views form takes the function's arguments after the planes.
#[memory(ndarray, planes = one, views = planes_first)]
pub fn with_a_parameter(stack: NdarrayStack, #[param(default = 2)] factor: usize) -> NdarrayStack {
    stack * factor as f32
}

fn main() {}
