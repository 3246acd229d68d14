use hcs::prelude::*;
use hcs::{MemoryType, ParamMap, ParamValue, Registry, SpecialInputs, Stack};

/// Add a constant offset.
///
/// Longer description that is not part of the summary.
#[memory(ndarray)]
pub fn offset(
    stack: NdarrayStack,
    #[param(default = 10.0, doc = "value added to every pixel")] amount: f32,
    #[param(doc = "required: clip at this value")] ceiling: f32,
) -> NdarrayStack {
    stack.mapv(|v| (v + amount).min(ceiling))
}

fn main() {
    // Still a plain Rust function.
    assert_eq!(offset(ndarray::Array3::zeros((1, 1, 1)), 1.0, 5.0)[[0, 0, 0]], 1.0);

    let c = Registry::global().get("offset", MemoryType::Ndarray).expect("registered");
    assert_eq!(c.doc, "Add a constant offset.");
    assert_eq!(c.params.len(), 2);
    assert_eq!(c.params[0].name, "amount");
    assert_eq!(c.params[0].default.map(|d| d()), Some(ParamValue::Float(10.0)));
    assert!(c.params[1].is_required());
    assert_eq!(c.crate_name, "ui-tests-tests"); // the crate trybuild builds this case in
    assert!(std::ptr::eq(c, offset::FUNC));

    // Through the erased invoker: default used, required checked, unknown rejected.
    let mut params = ParamMap::new();
    params.insert("ceiling".into(), ParamValue::Float(15.0));
    let out = c.call(Stack::Ndarray(ndarray::Array3::from_elem((1, 1, 2), 4.0)), &params, &SpecialInputs::new());
    let Stack::Ndarray(a) = out.expect("call succeeds").stack else { panic!("ndarray out") };
    assert_eq!(a[[0, 0, 0]], 14.0);

    let missing = c.call(Stack::Ndarray(ndarray::Array3::zeros((1, 1, 1))), &ParamMap::new(), &SpecialInputs::new());
    assert_eq!(missing.expect_err("ceiling missing").to_string(), "function `offset` needs parameter `ceiling`, which has no default");

    params.insert("amout".into(), ParamValue::Float(1.0));
    let unknown = c.call(Stack::Ndarray(ndarray::Array3::zeros((1, 1, 1))), &params, &SpecialInputs::new());
    assert_eq!(unknown.expect_err("typo").to_string(), "function `offset` has no parameter `amout`");
}
