use hcs::prelude::*;

#[memory(ndarray)]
pub struct Tophat {
    pub radius: usize,
}

fn main() {}
