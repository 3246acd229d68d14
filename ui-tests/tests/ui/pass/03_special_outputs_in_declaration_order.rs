use std::path::PathBuf;

use hcs::prelude::*;
use hcs::{ParamMap, Registry, SpecialInputs, Stack};

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct Counts {
    pub cells: u32,
}

fn write_counts(counts: &Counts, target: &MaterializeTarget) -> MaterializeResult {
    Ok(vec![target.write(".txt", counts.cells.to_string().as_bytes())?])
}

#[derive(Debug)]
pub struct EmptyStack;
impl std::fmt::Display for EmptyStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the stack has no planes")
    }
}
impl std::error::Error for EmptyStack {}

// Keys deliberately not in alphabetical order: values must follow the declaration.
#[memory(ndarray)]
#[special_outputs(zeta, cell_counts = write_counts, alpha)]
pub fn analyse(stack: NdarrayStack) -> Result<(NdarrayStack, String, Counts, Vec<u8>), EmptyStack> {
    if stack.is_empty() {
        return Err(EmptyStack);
    }
    Ok((stack, "z".to_owned(), Counts { cells: 7 }, vec![1]))
}

fn main() {
    let c = Registry::global().variants("analyse")[0];
    let keys: Vec<_> = c.special_outputs.iter().map(|s| s.key).collect();
    assert_eq!(keys, ["zeta", "cell_counts", "alpha"]);
    assert_eq!(c.special_outputs[1].materializer.map(|m| m.name), Some("write_counts"));
    assert_eq!(c.special_outputs[0].rust_type, "String");

    let out = c
        .call(Stack::Ndarray(ndarray::Array3::zeros((1, 1, 1))), &ParamMap::new(), &SpecialInputs::new())
        .expect("runs");
    assert_eq!(out.special_outputs[0].0, "zeta");
    assert_eq!(out.special_outputs[0].1.downcast_ref::<String>().map(String::as_str), Some("z"));
    assert_eq!(out.special_outputs[1].1.downcast_ref::<Counts>(), Some(&Counts { cells: 7 }));
    assert_eq!(out.special_outputs[2].1.downcast_ref::<Vec<u8>>(), Some(&vec![1]));

    // The materializer runs through the erased form.
    let dir = std::env::temp_dir().join(format!("hcs-ui-{}", std::process::id()));
    let target = MaterializeTarget::new(&dir, "A01_cell_counts");
    let spec = c.special_outputs[1].materializer.expect("declared");
    let written: Vec<PathBuf> = (spec.run)(&out.special_outputs[1].1, &target).expect("writes");
    assert_eq!(std::fs::read_to_string(&written[0]).expect("file"), "7");
    std::fs::remove_dir_all(&dir).expect("cleanup");

    // The function's own error is reported with its name.
    let err = c
        .call(Stack::Ndarray(ndarray::Array3::zeros((0, 1, 1))), &ParamMap::new(), &SpecialInputs::new())
        .expect_err("empty stack");
    assert_eq!(err.to_string(), "function `analyse` failed: the stack has no planes");
}
