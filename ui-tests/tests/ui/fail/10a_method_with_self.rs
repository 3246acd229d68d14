use hcs::prelude::*;

pub struct Filter;

impl Filter {
    #[memory(ndarray)]
    pub fn apply(&self, stack: NdarrayStack) -> NdarrayStack {
        stack
    }
}

fn main() {}
