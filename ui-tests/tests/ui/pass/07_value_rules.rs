use hcs::prelude::*;
use hcs::{MemoryType, ParamMap, ParamValue, Registry, SpecialInputs, Stack};

/// Stretch between two percentiles.
#[memory(ndarray)]
#[check(low < high, "low must be below high")]
#[check(margin < image.width / 2, "the margin must leave part of the image")]
pub fn stretch(
    stack: NdarrayStack,
    #[param(default = 1.0, range = 0.0..=100.0)] low: f64,
    #[param(default = 99.0, range = 0.0..=100.0)] high: f64,
    #[param(default = 0, max = 1000)] margin: usize,
    #[param(default = 2, range = 1..8, nonzero)] factor: u32,
    #[param(default = None, min = 0.0, finite)] weights: Option<Vec<f32>>,
    #[param(default = 65535.0, sample)] top: f32,
) -> NdarrayStack {
    let _ = (low, high, margin, factor, weights, top);
    stack
}

/// Keep every `step`-th row and column.
#[memory(ndarray, xy = any)]
#[output_shape((image.height.div_ceil(step), image.width.div_ceil(step), image.planes))]
pub fn subsample(stack: NdarrayStack, #[param(default = 2, range = 1..=16)] step: usize) -> NdarrayStack {
    stack.slice(ndarray::s![.., ..;step, ..;step]).to_owned()
}

fn call(params: &[(&str, ParamValue)]) -> Result<(), String> {
    let c = Registry::global().get("stretch", MemoryType::Ndarray).expect("registered");
    let map: ParamMap = params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    c.call(Stack::Ndarray(ndarray::Array3::zeros((1, 4, 4))), &map, &SpecialInputs::new())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn main() {
    let c = Registry::global().get("stretch", MemoryType::Ndarray).expect("registered");
    assert_eq!(c.params[0].accepts(), "number, in 0..=100");
    assert_eq!(c.params[3].accepts(), "integer in 1..8, not 0");
    // `sample` refuses nothing: it marks a value the compiler weighs against the storage range.
    assert!(c.params[5].rule.sample && !c.params[0].rule.sample);
    assert_eq!(c.params[5].accepts(), "number");
    assert!(c.params[5].check(&ParamValue::Float(1e9)).is_ok());
    assert_eq!(c.checks.len(), 2);
    assert_eq!(c.checks[0].rule, "low < high");
    assert_eq!(c.checks[0].params, ["low", "high"]);
    assert!(!c.checks[0].needs_image);
    assert!(c.checks[1].needs_image);
    assert_eq!(c.checks[1].rule, "margin < image.width / 2");

    // The compiler's check and the invoker's agree: values outside the rule are refused.
    assert!(c.params[0].check(&ParamValue::Float(150.0)).is_err());
    assert!(c.params[0].check(&ParamValue::Float(f64::NAN)).is_err());
    assert!(c.params[3].check(&ParamValue::Int(8)).is_err());
    assert!(c.params[4].check(&ParamValue::List(vec![ParamValue::Float(-1.0)])).is_err());
    assert_eq!(call(&[]), Ok(()));
    assert_eq!(
        call(&[("low", ParamValue::Float(150.0))]),
        Err("function `stretch`, parameter `low`: 150 is out of range: expected in 0..=100".to_string())
    );
    assert_eq!(
        call(&[("low", ParamValue::Float(60.0)), ("high", ParamValue::Float(40.0))]),
        Err("function `stretch`: low must be below high (`low < high`)".to_string())
    );

    // Rules on the image are decided where the geometry is known.
    let mut params = ParamMap::new();
    params.insert("margin".into(), ParamValue::Int(3));
    let small = hcs::ImageGeometry { height: 4, width: 4, planes: Some(1), sites: None };
    assert_eq!(c.checks[1].evaluate(&params, Some(&small)), Ok(hcs::CheckOutcome::Fails));
    assert_eq!(c.checks[1].evaluate(&params, None), Ok(hcs::CheckOutcome::NeedsImage));

    // The declared output size, evaluated as the compiler and the executor do.
    let s = Registry::global().get("subsample", MemoryType::Ndarray).expect("registered");
    let shape = s.output_shape.expect("declared");
    assert_eq!(shape.expr, "(image.height.div_ceil(step), image.width.div_ceil(step), image.planes)");
    assert_eq!(shape.params, ["step"]);
    let mut params = ParamMap::new();
    params.insert("step".into(), ParamValue::Int(3));
    let input = hcs::ImageGeometry { height: 10, width: 7, planes: Some(2), sites: Some(4) };
    let out = (shape.eval)(&params, Some(&input)).expect("evaluates").expect("known");
    assert_eq!(out, hcs::ImageGeometry { height: 4, width: 3, planes: Some(2), sites: Some(4) });
    assert_eq!((shape.eval)(&params, None), Ok(None), "unknown input size, unknown output size");
}
