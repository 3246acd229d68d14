//! The compile-time check `pipeline!` applies to literal parameter values: the same value rule
//! (`ValueRule`) the runtime compiler applies to pipeline files, evaluated in a constant so a
//! literal outside a parameter's range is a rustc error on that literal.

use hcs_core::ParamSpec;

use super::const_text::ConstText;
use super::wiring::str_eq;

/// Whether `x` satisfies the rule of `spec` (NaN never does).
const fn accepted(spec: &ParamSpec, x: f64) -> bool {
    let rule = &spec.rule;
    if x.is_nan() {
        return false;
    }
    let bounded = rule.finite || rule.min.is_some() || rule.max.is_some();
    if bounded && x.is_infinite() {
        return false;
    }
    if let Some(min) = rule.min
        && x < min
    {
        return false;
    }
    if let Some(max) = rule.max
        && (x > max || (rule.max_exclusive && x >= max))
    {
        return false;
    }
    !(rule.nonzero && x == 0.0)
}

/// Compile-time check used by `pipeline!`: the literal `value` given to parameter `name` of
/// `function` is accepted by the parameter's value rule.
pub const fn const_check_value(function: &str, params: &[ParamSpec], name: &str, value: f64) {
    let mut i = 0;
    while i < params.len() {
        if str_eq(params[i].name, name) && !accepted(&params[i], value) {
            let text = ConstText::new()
                .push("`")
                .push(function)
                .push("` parameter `")
                .push(name)
                .push("`: this value is outside what the parameter accepts (`hcs functions ")
                .push(function)
                .push("` lists its range)");
            panic!("{}", text.as_str())
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_core::{ParamType, ValueRule};

    const SPEC: ParamSpec = ParamSpec {
        name: "sigma",
        rust_type: "f64",
        ty: ParamType::Float,
        default: None,
        doc: "",
        rule: ValueRule { min: Some(0.0), max: Some(10.0), max_exclusive: true, nonzero: true, ..ValueRule::NONE },
    };

    #[test]
    fn the_constant_rule_agrees_with_the_runtime_rule() {
        for x in [-1.0, 0.0, 0.5, 9.99, 10.0, 11.0, f64::INFINITY, f64::NAN] {
            assert_eq!(accepted(&SPEC, x), SPEC.rule.check_number(x).is_ok(), "{x}");
        }
        let refused = std::panic::catch_unwind(|| const_check_value("blur", &[SPEC], "sigma", 20.0));
        let message = refused.expect_err("out of range").downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(
            message,
            "`blur` parameter `sigma`: this value is outside what the parameter accepts (`hcs functions blur` lists its range)"
        );
        const_check_value("blur", &[SPEC], "sigma", 2.0);
    }
}
