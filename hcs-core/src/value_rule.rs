//! Bounds and conditions on a numeric parameter (`#[param(min, max, range, finite, nonzero)]`).

use std::fmt;

use serde::Serialize;

use crate::error::ParamError;

/// Bounds and conditions on a numeric parameter (each element, for a list).
///
/// Bounds are inclusive unless `max_exclusive`; a parameter with any bound, or `finite`, refuses
/// infinities. NaN is never accepted by a numeric parameter, rule or no rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ValueRule {
    /// Smallest accepted value.
    pub min: Option<f64>,
    /// Largest accepted value.
    pub max: Option<f64>,
    /// Whether `max` itself is refused (`range = a..b`).
    pub max_exclusive: bool,
    /// Whether infinities are refused.
    pub finite: bool,
    /// Whether zero is refused.
    pub nonzero: bool,
    /// Whether the value is an image sample value (`#[param(sample)]`: the value the upper
    /// percentile maps to, say). Outputs are stored in the plate's dtype, rounded and clamped,
    /// so the compiler weighs it against the range that dtype holds: a default above it
    /// becomes its largest value, and a given value outside it is reported. Not a bound: it
    /// refuses nothing.
    pub sample: bool,
}

impl ValueRule {
    /// No condition beyond the type.
    pub const NONE: ValueRule =
        ValueRule { min: None, max: None, max_exclusive: false, finite: false, nonzero: false, sample: false };

    /// Whether the rule says nothing at all, `sample` included.
    pub fn is_none(&self) -> bool {
        *self == ValueRule::NONE
    }

    /// Whether the rule refuses nothing (`sample` refuses nothing).
    pub fn is_empty(&self) -> bool {
        ValueRule { sample: false, ..*self } == ValueRule::NONE
    }

    /// Check one number against the rule.
    pub fn check_number(&self, x: f64) -> Result<(), ParamError> {
        let fail = || ParamError::OutOfRange { value: format_number(x), expected: self.to_string() };
        if x.is_nan() {
            return Err(ParamError::OutOfRange { value: "nan".into(), expected: self.describe_or("a number") });
        }
        let finite_needed = self.finite || self.min.is_some() || self.max.is_some();
        if finite_needed && x.is_infinite() {
            return Err(fail());
        }
        if self.min.is_some_and(|m| x < m) {
            return Err(fail());
        }
        match self.max {
            Some(m) if self.max_exclusive && x >= m => return Err(fail()),
            Some(m) if x > m => return Err(fail()),
            _ => {}
        }
        if self.nonzero && x == 0.0 {
            return Err(fail());
        }
        Ok(())
    }

    fn describe_or(&self, fallback: &str) -> String {
        if self.is_empty() { fallback.to_string() } else { self.to_string() }
    }
}

fn format_number(x: f64) -> String {
    if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else if x != 0.0 && !(1e-6..1e15).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

impl fmt::Display for ValueRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if self.max_exclusive => parts.push(format!("in {lo}..{hi}")),
            (Some(lo), Some(hi)) => parts.push(format!("in {lo}..={hi}")),
            (Some(lo), None) => parts.push(format!("≥ {lo}")),
            (None, Some(hi)) if self.max_exclusive => parts.push(format!("< {hi}")),
            (None, Some(hi)) => parts.push(format!("≤ {hi}")),
            (None, None) if self.finite => parts.push("finite".into()),
            (None, None) => {}
        }
        if self.nonzero {
            parts.push("not 0".into());
        }
        if parts.is_empty() { f.write_str("any number") } else { f.write_str(&parts.join(", ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{ParamValue, check_rule};

    const PERCENT: ValueRule = ValueRule { min: Some(0.0), max: Some(100.0), ..ValueRule::NONE };

    #[test]
    fn bounds_refuse_values_outside_and_infinities() {
        assert!(check_rule(&PERCENT, &ParamValue::Float(50.0)).is_ok());
        assert!(check_rule(&PERCENT, &ParamValue::Int(100)).is_ok());
        let err = check_rule(&PERCENT, &ParamValue::Float(150.0)).expect_err("150 > 100");
        assert_eq!(err.to_string(), "150 is out of range: expected in 0..=100");
        assert!(check_rule(&PERCENT, &ParamValue::Float(f64::INFINITY)).is_err());
        assert!(check_rule(&PERCENT, &ParamValue::Float(-3.0)).is_err());
    }

    #[test]
    fn nan_is_never_a_number_parameter() {
        let err = check_rule(&ValueRule::NONE, &ParamValue::Float(f64::NAN)).expect_err("nan");
        assert!(err.to_string().contains("nan"), "{err}");
        assert!(check_rule(&ValueRule::NONE, &ParamValue::Float(f64::INFINITY)).is_ok());
        let finite = ValueRule { finite: true, ..ValueRule::NONE };
        assert!(check_rule(&finite, &ParamValue::Float(f64::NEG_INFINITY)).is_err());
    }

    #[test]
    fn exclusive_maximum_nonzero_and_lists() {
        let rule = ValueRule { min: Some(0.0), max: Some(1.0), max_exclusive: true, nonzero: true, ..ValueRule::NONE };
        assert!(check_rule(&rule, &ParamValue::Float(0.5)).is_ok());
        assert!(check_rule(&rule, &ParamValue::Float(1.0)).is_err());
        assert!(check_rule(&rule, &ParamValue::Float(0.0)).is_err());
        assert_eq!(rule.to_string(), "in 0..1, not 0");
        let list = ParamValue::List(vec![ParamValue::Float(0.2), ParamValue::Float(2.0)]);
        assert!(check_rule(&rule, &list).is_err());
    }

    #[test]
    fn huge_and_tiny_numbers_are_shown_in_scientific_notation() {
        let rule = ValueRule { min: Some(0.01), max: Some(256.0), ..ValueRule::NONE };
        let err = check_rule(&rule, &ParamValue::Float(1e308)).expect_err("too big");
        assert_eq!(err.to_string(), "1e308 is out of range: expected in 0.01..=256");
        let err = check_rule(&rule, &ParamValue::Float(1e-300)).expect_err("too small");
        assert_eq!(err.to_string(), "1e-300 is out of range: expected in 0.01..=256");
    }

    #[test]
    fn huge_integers_are_compared_without_wrapping() {
        let rule = ValueRule { min: Some(1.0), max: Some(1000.0), ..ValueRule::NONE };
        let err = check_rule(&rule, &ParamValue::Int(i64::MAX)).expect_err("too big");
        assert!(err.to_string().starts_with("9223372036854775807 is out of range"), "{err}");
        assert!(check_rule(&rule, &ParamValue::Int(0)).is_err());
    }
}
