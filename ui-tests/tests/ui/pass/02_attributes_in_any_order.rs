use hcs::prelude::*;
use hcs::Registry;

#[special_inputs(grid)]
#[special_outputs(positions)]
#[memory(ndarray)]
pub fn positions_last(stack: NdarrayStack, grid: &(u32, u32)) -> (NdarrayStack, Vec<(f64, f64)>) {
    let _ = grid;
    (stack, Vec::new())
}

#[chain_breaker]
#[hcs::memory(ndarray)]
#[hcs::special_inputs(grid)]
pub fn qualified_paths(stack: NdarrayStack, grid: (u32, u32)) -> NdarrayStack {
    let _ = grid;
    stack
}

#[memory(input = ndarray, output = ndarray)]
#[special_outputs(positions)]
#[special_inputs(grid)]
pub fn memory_keys(stack: NdarrayStack, grid: &(u32, u32)) -> (NdarrayStack, Vec<(f64, f64)>) {
    let _ = grid;
    (stack, Vec::new())
}

fn main() {
    let r = Registry::global();
    for name in ["positions_last", "qualified_paths", "memory_keys"] {
        assert_eq!(r.variants(name).len(), 1, "{name} registered exactly once");
    }
    let a = r.variants("positions_last")[0];
    assert_eq!(a.special_inputs[0].key, "grid");
    assert_eq!(a.special_outputs[0].key, "positions");
    assert!(!a.chain_breaker);
    assert!(r.variants("qualified_paths")[0].chain_breaker);
    assert!(r.check().is_ok());
}
