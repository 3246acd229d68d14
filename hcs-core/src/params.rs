//! Tunable parameters: the types pipeline files can express, their values, and their schema.
//!
//! A function's parameters are the arguments after the stack that are not special inputs. Each
//! one has a type implementing [`PipelineParam`] (so a pipeline file can spell a value for it), an
//! optional default given with `#[param(default = ...)]`, and an optional doc string.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ParamError;

/// The shape of value a parameter accepts, as the registry and pipeline files see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ParamType {
    /// `true` / `false`.
    Bool,
    /// A signed integer within `[min, max]`.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A floating-point number.
    Float,
    /// A string.
    Str,
    /// One of a fixed set of strings.
    Choice {
        /// The accepted spellings.
        options: &'static [&'static str],
    },
    /// A list whose elements have the given type.
    List {
        /// Element type.
        of: &'static ParamType,
    },
    /// The given type, or nothing (`none` in a pipeline file; omitted in TOML).
    Optional {
        /// Type when present.
        of: &'static ParamType,
    },
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamType::Bool => f.write_str("bool"),
            ParamType::Int { min: 0, max: i64::MAX } => f.write_str("integer ≥ 0"),
            ParamType::Int { min, max } if *min == 0 => write!(f, "integer in 0..={max}"),
            ParamType::Int { .. } => f.write_str("integer"),
            ParamType::Float => f.write_str("number"),
            ParamType::Str => f.write_str("string"),
            ParamType::Choice { options } => write!(f, "one of {}", options.join(" | ")),
            ParamType::List { of } => write!(f, "list of {of}"),
            ParamType::Optional { of } => write!(f, "optional {of}"),
        }
    }
}

/// A parameter value as written in a pipeline file or given from Rust.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (also used for choices).
    Str(String),
    /// A list.
    List(Vec<ParamValue>),
    /// No value (for optional parameters).
    None,
}

impl ParamValue {
    /// A short description of what kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ParamValue::Bool(_) => "bool",
            ParamValue::Int(_) => "integer",
            ParamValue::Float(_) => "number",
            ParamValue::Str(_) => "string",
            ParamValue::List(_) => "list",
            ParamValue::None => "none",
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // JSON has no NaN or infinities: spell them as TOML does.
        match self {
            ParamValue::Float(x) if x.is_nan() => return f.write_str("nan"),
            ParamValue::Float(x) if x.is_infinite() => return f.write_str(if *x > 0.0 { "inf" } else { "-inf" }),
            _ => {}
        }
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{self:?}"),
        }
    }
}

/// Parameter values by name, as handed to a function's invoker.
pub type ParamMap = BTreeMap<String, ParamValue>;

/// A type that a pipeline file can express as a parameter value.
///
/// Implemented for `bool`, the integer types, `f32`, `f64`, `String`, `Vec<T>` and `Option<T>` of
/// those. Implement it for your own enum (with [`ParamType::Choice`]) to offer named options.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a pipeline parameter: pipeline files cannot express it",
    label = "not expressible in a pipeline file",
    note = "parameters may be bool, integers, f32/f64, String, Vec<_> or Option<_> of those, or a type implementing `hcs::PipelineParam`",
    note = "if this argument is data from an earlier step, declare it with #[special_inputs(..)]"
)]
pub trait PipelineParam: Sized {
    /// The schema of this type.
    const TYPE: ParamType;
    /// Convert from a pipeline-file value, with a message naming what was expected.
    fn from_value(value: &ParamValue) -> Result<Self, ParamError>;
    /// Convert to a pipeline-file value (for defaults and for writing pipelines out).
    fn to_value(&self) -> ParamValue;
}

fn mismatch(expected: ParamType, found: &ParamValue) -> ParamError {
    ParamError::WrongType { expected: expected.to_string(), found: found.to_string() }
}

impl PipelineParam for bool {
    const TYPE: ParamType = ParamType::Bool;
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        match value {
            ParamValue::Bool(b) => Ok(*b),
            other => Err(mismatch(Self::TYPE, other)),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Bool(*self)
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl PipelineParam for $t {
            #[allow(clippy::cast_possible_wrap, clippy::unnecessary_cast)]
            const TYPE: ParamType = ParamType::Int {
                min: if (<$t>::MIN as i128) < (i64::MIN as i128) { i64::MIN } else { <$t>::MIN as i64 },
                max: if (<$t>::MAX as i128) > (i64::MAX as i128) { i64::MAX } else { <$t>::MAX as i64 },
            };
            fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
                match value {
                    ParamValue::Int(i) => <$t>::try_from(*i).map_err(|_| ParamError::OutOfRange {
                        value: value.to_string(),
                        expected: Self::TYPE.to_string(),
                    }),
                    other => Err(mismatch(Self::TYPE, other)),
                }
            }
            #[allow(clippy::cast_possible_wrap, clippy::unnecessary_cast)]
            fn to_value(&self) -> ParamValue {
                ParamValue::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);

macro_rules! float_param {
    ($($t:ty),*) => {$(
        impl PipelineParam for $t {
            const TYPE: ParamType = ParamType::Float;
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
                match value {
                    ParamValue::Float(x) => Ok(*x as $t),
                    ParamValue::Int(i) => Ok(*i as $t),
                    other => Err(mismatch(Self::TYPE, other)),
                }
            }
            fn to_value(&self) -> ParamValue {
                ParamValue::Float(f64::from(*self))
            }
        }
    )*};
}
float_param!(f32, f64);

impl PipelineParam for String {
    const TYPE: ParamType = ParamType::Str;
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        match value {
            ParamValue::Str(s) => Ok(s.clone()),
            other => Err(mismatch(Self::TYPE, other)),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::Str(self.clone())
    }
}

impl<T: PipelineParam> PipelineParam for Vec<T> {
    const TYPE: ParamType = ParamType::List { of: &T::TYPE };
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        match value {
            ParamValue::List(items) => items.iter().map(T::from_value).collect(),
            other => Err(mismatch(Self::TYPE, other)),
        }
    }
    fn to_value(&self) -> ParamValue {
        ParamValue::List(self.iter().map(T::to_value).collect())
    }
}

impl<T: PipelineParam> PipelineParam for Option<T> {
    const TYPE: ParamType = ParamType::Optional { of: &T::TYPE };
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        match value {
            ParamValue::None => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
    fn to_value(&self) -> ParamValue {
        match self {
            Some(v) => v.to_value(),
            None => ParamValue::None,
        }
    }
}

/// Parse a choice parameter: shared by every enum that implements [`PipelineParam`] with
/// [`ParamType::Choice`].
pub fn parse_choice<T: Copy>(
    value: &ParamValue,
    options: &'static [&'static str],
    values: &[T],
) -> Result<T, ParamError> {
    let ParamValue::Str(s) = value else {
        return Err(mismatch(ParamType::Choice { options }, value));
    };
    options
        .iter()
        .position(|o| o == s)
        .and_then(|i| values.get(i).copied())
        .ok_or_else(|| mismatch(ParamType::Choice { options }, value))
}

/// The schema of one tunable parameter, as the registry records it.
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    /// The argument name (also its key in pipeline files).
    pub name: &'static str,
    /// The Rust type as written in the signature.
    pub rust_type: &'static str,
    /// What values the parameter accepts.
    pub ty: ParamType,
    /// The default value; `None` means the parameter is required.
    pub default: Option<fn() -> ParamValue>,
    /// One-line description.
    pub doc: &'static str,
    /// Bounds and conditions on the value (`#[param(min = .., max = .., range = .., finite, nonzero)]`).
    pub rule: crate::value_rule::ValueRule,
}

impl ParamSpec {
    /// Whether a pipeline must give this parameter.
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }

    /// Check a value against this parameter's type and value rule, returning the error a
    /// pipeline author sees.
    pub fn check(&self, value: &ParamValue) -> Result<(), ParamError> {
        check_value(&self.ty, value)?;
        check_rule(&self.rule, value)
    }

    /// What values the parameter accepts, in words (`integer in 1..=64`, `number, finite`).
    /// A lower bound of the rule replaces the type's own `≥ 0` (`integer ≥ 1`, not
    /// `integer ≥ 0, ≥ 1`).
    pub fn accepts(&self) -> String {
        // The rule's bounds say all the type's do: from 0 up, to the type's largest or below.
        #[allow(clippy::cast_precision_loss)]
        let within = match self.ty {
            ParamType::Int { min: 0, max } => {
                self.rule.min.is_some_and(|lo| lo >= 0.0)
                    && (max == i64::MAX || self.rule.max.is_some_and(|hi| hi <= max as f64))
            }
            _ => false,
        };
        if self.rule.is_empty() {
            self.ty.to_string()
        } else if within {
            format!("integer {}", self.rule)
        } else {
            format!("{}, {}", self.ty, self.rule)
        }
    }
}

/// Check a value (numbers, each element of a list, the value of an option) against a value rule.
pub fn check_rule(rule: &crate::value_rule::ValueRule, value: &ParamValue) -> Result<(), ParamError> {
    match value {
        ParamValue::Int(i) => {
            #[allow(clippy::cast_precision_loss)]
            let x = *i as f64;
            rule.check_number(x)
                .map_err(|_| ParamError::OutOfRange { value: i.to_string(), expected: rule.to_string() })
        }
        ParamValue::Float(x) => rule.check_number(*x),
        ParamValue::List(items) => items.iter().try_for_each(|v| check_rule(rule, v)),
        ParamValue::Bool(_) | ParamValue::Str(_) | ParamValue::None => Ok(()),
    }
}

/// Check that `value` fits `ty` (the same rule the invokers apply when they convert).
pub fn check_value(ty: &ParamType, value: &ParamValue) -> Result<(), ParamError> {
    let ok = match (ty, value) {
        (ParamType::Bool, ParamValue::Bool(_)) => true,
        (ParamType::Int { min, max }, ParamValue::Int(i)) => {
            if i < min || i > max {
                return Err(ParamError::OutOfRange { value: value.to_string(), expected: ty.to_string() });
            }
            true
        }
        (ParamType::Float, ParamValue::Float(_) | ParamValue::Int(_)) => true,
        (ParamType::Str, ParamValue::Str(_)) => true,
        (ParamType::Choice { options }, ParamValue::Str(s)) => options.contains(&s.as_str()),
        (ParamType::List { of }, ParamValue::List(items)) => {
            return items.iter().try_for_each(|item| check_value(of, item));
        }
        (ParamType::Optional { .. }, ParamValue::None) => true,
        (ParamType::Optional { of }, other) => return check_value(of, other),
        _ => false,
    };
    if ok { Ok(()) } else { Err(mismatch(*ty, value)) }
}

/// Implement [`PipelineParam`] for a fieldless `Copy` enum, each variant spelled by one string:
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// pub enum Blend { Fixed, Dynamic }
/// hcs_core::choice_param!(Blend { Blend::Fixed => "fixed", Blend::Dynamic => "dynamic" });
///
/// use hcs_core::{ParamValue, PipelineParam};
/// assert_eq!(Blend::from_value(&ParamValue::Str("dynamic".into())), Ok(Blend::Dynamic));
/// assert_eq!(Blend::Fixed.to_value(), ParamValue::Str("fixed".into()));
/// assert!(Blend::from_value(&ParamValue::Str("smooth".into())).is_err());
/// ```
#[macro_export]
macro_rules! choice_param {
    ($ty:ty { $($variant:path => $name:literal),+ $(,)? }) => {
        impl $crate::PipelineParam for $ty {
            const TYPE: $crate::ParamType = $crate::ParamType::Choice { options: &[$($name),+] };
            fn from_value(value: &$crate::ParamValue) -> ::core::result::Result<Self, $crate::ParamError> {
                $crate::params::parse_choice(value, &[$($name),+], &[$($variant),+])
            }
            fn to_value(&self) -> $crate::ParamValue {
                let name = match self { $($variant => $name),+ };
                $crate::ParamValue::Str(::std::string::String::from(name))
            }
        }
    };
}

impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        ParamValue::Bool(v)
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        ParamValue::Int(v)
    }
}

impl From<i32> for ParamValue {
    fn from(v: i32) -> Self {
        ParamValue::Int(i64::from(v))
    }
}

impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        ParamValue::Float(v)
    }
}

impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        ParamValue::Str(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_range_checked_by_their_rust_type() {
        assert_eq!(u8::from_value(&ParamValue::Int(255)).ok(), Some(255));
        let err = u8::from_value(&ParamValue::Int(256)).expect_err("256 does not fit u8");
        assert!(err.to_string().contains("256"), "{err}");
        assert!(check_value(&usize::TYPE, &ParamValue::Int(-1)).is_err());
    }

    #[test]
    fn floats_accept_integers_but_strings_do_not() {
        assert_eq!(f64::from_value(&ParamValue::Int(3)).ok(), Some(3.0));
        let err = f64::from_value(&ParamValue::Str("3".into())).expect_err("string is not a number");
        assert_eq!(err.to_string(), "expected number, found \"3\"");
    }

    #[test]
    fn what_a_parameter_accepts_reads_as_one_phrase() {
        use crate::value_rule::ValueRule;
        let spec =
            |ty: ParamType, rule: ValueRule| ParamSpec { name: "p", rust_type: "t", ty, default: None, doc: "", rule };
        let at_least_one = ValueRule { min: Some(1.0), ..ValueRule::NONE };
        assert_eq!(spec(usize::TYPE, at_least_one).accepts(), "integer ≥ 1");
        let bins = ValueRule { min: Some(1.0), max: Some(64.0), ..ValueRule::NONE };
        assert_eq!(spec(u32::TYPE, bins).accepts(), "integer in 1..=64");
        assert_eq!(spec(usize::TYPE, ValueRule::NONE).accepts(), "integer ≥ 0");
        let finite = ValueRule { finite: true, ..ValueRule::NONE };
        assert_eq!(spec(f64::TYPE, finite).accepts(), "number, finite");
        assert_eq!(spec(i64::TYPE, at_least_one).accepts(), "integer, ≥ 1");
    }

    #[test]
    fn nested_types_describe_themselves() {
        assert_eq!(<Option<Vec<f32>>>::TYPE.to_string(), "optional list of number");
        assert_eq!(usize::TYPE.to_string(), "integer ≥ 0");
        let v = vec![1.5f32, 2.0].to_value();
        assert_eq!(<Vec<f32>>::from_value(&v).ok(), Some(vec![1.5, 2.0]));
        assert!(check_value(&<Vec<f32>>::TYPE, &ParamValue::List(vec![ParamValue::Bool(true)])).is_err());
    }

    #[test]
    fn choices_parse_only_listed_spellings() {
        const OPTS: &[&str] = &["max", "mean"];
        assert_eq!(parse_choice(&ParamValue::Str("mean".into()), OPTS, &[0, 1]).ok(), Some(1));
        assert!(parse_choice(&ParamValue::Str("median".into()), OPTS, &[0, 1]).is_err());
    }
}
