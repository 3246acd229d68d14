use hcs::prelude::*;

#[memory(ndarray)]
pub fn rule_on_a_flag(stack: NdarrayStack, #[param(default = true, min = 1)] flag: bool) -> NdarrayStack {
    let _ = flag;
    stack
}

#[memory(ndarray)]
pub fn finite_integer(stack: NdarrayStack, #[param(default = 3, finite)] radius: usize) -> NdarrayStack {
    let _ = radius;
    stack
}

#[memory(ndarray)]
pub fn empty_range(stack: NdarrayStack, #[param(default = 5.0, range = 10.0..=1.0)] sigma: f64) -> NdarrayStack {
    let _ = sigma;
    stack
}

#[memory(ndarray)]
pub fn default_outside(stack: NdarrayStack, #[param(default = 50, range = 1..=10)] radius: usize) -> NdarrayStack {
    let _ = radius;
    stack
}

#[memory(ndarray)]
pub fn not_a_range(stack: NdarrayStack, #[param(default = 5, range = 10)] radius: usize) -> NdarrayStack {
    let _ = radius;
    stack
}

#[memory(ndarray)]
pub fn range_and_min(stack: NdarrayStack, #[param(default = 5, min = 1, range = 1..=9)] radius: usize) -> NdarrayStack {
    let _ = radius;
    stack
}

fn main() {}
