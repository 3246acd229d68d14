//! Value contracts: what values a parameter accepts beyond its type (`#[param(min = .., max = ..,
//! range = .., finite, nonzero)]`), and rules over several parameters and the image a step
//! receives (`#[check(..)]`).
//!
//! The compiler checks every value against these before a plan is frozen, so a value a kernel
//! cannot work with is a plan error naming the step and the parameter, not a failure in every
//! well hours later.

use std::fmt;

use serde::Serialize;

use crate::error::ParamError;
use crate::params::{ParamMap, ParamValue};

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
}

impl ValueRule {
    /// No condition beyond the type.
    pub const NONE: ValueRule = ValueRule { min: None, max: None, max_exclusive: false, finite: false, nonzero: false };

    /// Whether the rule says anything.
    pub fn is_empty(&self) -> bool {
        *self == ValueRule::NONE
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

    /// Check a value (numbers, each element of a list, the value of an option) against the rule.
    pub fn check(&self, value: &ParamValue) -> Result<(), ParamError> {
        match value {
            ParamValue::Int(i) => {
                #[allow(clippy::cast_precision_loss)]
                let x = *i as f64;
                self.check_number(x)
                    .map_err(|_| ParamError::OutOfRange { value: i.to_string(), expected: self.to_string() })
            }
            ParamValue::Float(x) => self.check_number(*x),
            ParamValue::List(items) => items.iter().try_for_each(|v| self.check(v)),
            ParamValue::Bool(_) | ParamValue::Str(_) | ParamValue::None => Ok(()),
        }
    }

    fn describe_or(&self, fallback: &str) -> String {
        if self.is_empty() { fallback.to_string() } else { self.to_string() }
    }
}

fn format_number(x: f64) -> String {
    if x.is_infinite() { if x > 0.0 { "inf".into() } else { "-inf".into() } } else { format!("{x}") }
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

/// What the compiler knows about the images a step receives, for `#[check]` rules that name
/// `image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ImageGeometry {
    /// Rows of each plane.
    pub height: usize,
    /// Columns of each plane.
    pub width: usize,
    /// Planes in one call's stack, when known.
    pub planes: Option<usize>,
    /// Sites (tiles) of a well in the plate's grid, when the plate says.
    pub sites: Option<usize>,
}

/// The outcome of one `#[check]` rule on a set of parameter values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The rule holds.
    Holds,
    /// The rule does not hold.
    Fails,
    /// The rule names `image`, and the image geometry is not known at this point.
    NeedsImage,
}

/// A rule over several parameters (and the image), declared with `#[check(expr, "message")]`.
#[derive(Clone, Copy, Debug)]
pub struct ParamCheck {
    /// The rule as written (`low_percentile < high_percentile`).
    pub rule: &'static str,
    /// What the author says when it fails (may be empty).
    pub message: &'static str,
    /// The parameters the rule reads, in signature order.
    pub params: &'static [&'static str],
    /// Whether the rule reads `image` (an [`ImageGeometry`]).
    pub needs_image: bool,
    /// Evaluate the rule on complete parameter values (defaults filled in).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<CheckOutcome, ParamError>,
}

impl ParamCheck {
    /// Evaluate on `params` (defaults already filled in) and, when known, the image geometry.
    pub fn evaluate(&self, params: &ParamMap, image: Option<&ImageGeometry>) -> Result<CheckOutcome, ParamError> {
        if self.needs_image && image.is_none() {
            return Ok(CheckOutcome::NeedsImage);
        }
        (self.eval)(params, image)
    }

    /// The message shown when the rule fails: the author's words and the rule.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            format!("`{}` must hold", self.rule)
        } else {
            format!("{} (`{}`)", self.message, self.rule)
        }
    }
}

/// What one call needs in memory beyond its input and output, declared with
/// `#[peak_memory(bytes)]` — an expression over the parameters and `image`. Without one the
/// compiler assumes [`DEFAULT_PEAK_FACTOR`] × the call's input.
#[derive(Clone, Copy, Debug)]
pub struct MemoryEstimate {
    /// The expression as written.
    pub expr: &'static str,
    /// The parameters it reads, in signature order.
    pub params: &'static [&'static str],
    /// Evaluate on complete parameter values and the image geometry (bytes; `None` when the
    /// geometry is not known).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<Option<f64>, ParamError>,
}

/// Working memory of a call without `#[peak_memory]`, as a multiple of its input.
pub const DEFAULT_PEAK_FACTOR: f64 = 3.0;

/// Bytes of one call's input: `planes × height × width` f32 values.
pub fn input_bytes(image: &ImageGeometry) -> f64 {
    image.planes.unwrap_or(1) as f64 * image.height as f64 * image.width as f64 * 4.0
}

/// How a function changes the plane size (`#[memory(.., xy = ..)]`): whether the compiler still
/// knows the image geometry after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaneShape {
    /// Planes keep their size (filters, normalization, projections).
    #[default]
    Same,
    /// The size depends on the parameters or the data (binning, cropping, mosaics).
    Any,
}

/// Read a parameter for a `#[check]` rule (generated code): the given value or the default.
pub fn rule_arg<T: crate::params::PipelineParam>(
    params: &ParamMap,
    name: &str,
    default: Option<fn() -> ParamValue>,
) -> Result<T, ParamError> {
    match (params.get(name), default) {
        (Some(v), _) => T::from_value(v),
        (None, Some(d)) => T::from_value(&d()),
        (None, None) => Err(ParamError::Missing { param: name.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERCENT: ValueRule = ValueRule { min: Some(0.0), max: Some(100.0), ..ValueRule::NONE };

    #[test]
    fn bounds_refuse_values_outside_and_infinities() {
        assert!(PERCENT.check(&ParamValue::Float(50.0)).is_ok());
        assert!(PERCENT.check(&ParamValue::Int(100)).is_ok());
        let err = PERCENT.check(&ParamValue::Float(150.0)).expect_err("150 > 100");
        assert_eq!(err.to_string(), "150 is out of range: expected in 0..=100");
        assert!(PERCENT.check(&ParamValue::Float(f64::INFINITY)).is_err());
        assert!(PERCENT.check(&ParamValue::Float(-3.0)).is_err());
    }

    #[test]
    fn nan_is_never_a_number_parameter() {
        let err = ValueRule::NONE.check(&ParamValue::Float(f64::NAN)).expect_err("nan");
        assert!(err.to_string().contains("nan"), "{err}");
        assert!(ValueRule::NONE.check(&ParamValue::Float(f64::INFINITY)).is_ok());
        let finite = ValueRule { finite: true, ..ValueRule::NONE };
        assert!(finite.check(&ParamValue::Float(f64::NEG_INFINITY)).is_err());
    }

    #[test]
    fn exclusive_maximum_nonzero_and_lists() {
        let rule = ValueRule { min: Some(0.0), max: Some(1.0), max_exclusive: true, finite: false, nonzero: true };
        assert!(rule.check(&ParamValue::Float(0.5)).is_ok());
        assert!(rule.check(&ParamValue::Float(1.0)).is_err());
        assert!(rule.check(&ParamValue::Float(0.0)).is_err());
        assert_eq!(rule.to_string(), "in 0..1, not 0");
        let list = ParamValue::List(vec![ParamValue::Float(0.2), ParamValue::Float(2.0)]);
        assert!(rule.check(&list).is_err());
    }

    #[test]
    fn huge_integers_are_compared_without_wrapping() {
        let rule = ValueRule { min: Some(1.0), max: Some(1000.0), ..ValueRule::NONE };
        let err = rule.check(&ParamValue::Int(i64::MAX)).expect_err("too big");
        assert!(err.to_string().starts_with("9223372036854775807 is out of range"), "{err}");
        assert!(rule.check(&ParamValue::Int(0)).is_err());
    }
}
