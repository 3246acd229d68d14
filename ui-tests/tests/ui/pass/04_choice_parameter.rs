use hcs::prelude::*;
use hcs::{ParamError, ParamType, ParamValue, Registry};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blend {
    Fixed,
    Dynamic,
    None,
}

impl PipelineParam for Blend {
    const TYPE: ParamType = ParamType::Choice { options: &["fixed", "dynamic", "none"] };
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        hcs::parse_choice(value, &["fixed", "dynamic", "none"], &[Blend::Fixed, Blend::Dynamic, Blend::None])
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Str(match self {
            Blend::Fixed => "fixed",
            Blend::Dynamic => "dynamic",
            Blend::None => "none",
        }
        .to_owned())
    }
}

#[memory(ndarray)]
pub fn blend(
    stack: NdarrayStack,
    #[param(default = Blend::Fixed)] method: Blend,
    #[param(default = "linear")] ramp: String,
    #[param(default = vec![1.0, 2.0])] weights: Vec<f64>,
    #[param(default = None)] limit: Option<u16>,
    #[param(default = true)] clip: bool,
) -> NdarrayStack {
    let _ = (method, ramp, weights, limit, clip);
    stack
}

fn main() {
    let c = Registry::global().variants("blend")[0];
    let defaults: Vec<String> = c.params.iter().map(|p| p.default.map(|d| d().to_string()).unwrap_or_default()).collect();
    assert_eq!(defaults, ["\"fixed\"", "\"linear\"", "[1.0,2.0]", "null", "true"]);
    assert_eq!(c.params[0].ty.to_string(), "one of fixed | dynamic | none");
    assert_eq!(c.params[3].ty.to_string(), "optional integer in 0..=65535");
    assert!(c.params[0].check(&ParamValue::Str("smooth".into())).is_err());
}
