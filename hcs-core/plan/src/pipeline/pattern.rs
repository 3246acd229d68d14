//! Function patterns: what a step calls on each group of planes.
//!
//! Four shapes, nestable: a function by name; a function with parameters; a chain (applied in
//! order, each member's output feeding the next); a dict keyed by a component value (the step's
//! `group_by`), whose values are any pattern.

use std::collections::BTreeMap;

use hcs_core::params::{ParamMap, ParamValue};

/// One call of a registered function with its parameters (missing ones take their defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionCall {
    /// The registry name.
    pub name: String,
    /// Parameters given explicitly.
    pub params: ParamMap,
}

impl FunctionCall {
    /// A call with no explicit parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), params: ParamMap::new() }
    }

    /// Set a parameter.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<ParamValue>) -> Self {
        self.params.insert(name.into(), value.into());
        self
    }
}

/// A step's function pattern.
#[derive(Clone, Debug, PartialEq)]
pub enum FunctionPattern {
    /// One function (with or without parameters).
    Call(FunctionCall),
    /// Functions applied in sequence.
    Chain(Vec<FunctionPattern>),
    /// A pattern per value of the step's `group_by` component (e.g. channel `"1"`).
    Dict(BTreeMap<String, FunctionPattern>),
}

impl From<FunctionCall> for FunctionPattern {
    fn from(call: FunctionCall) -> Self {
        FunctionPattern::Call(call)
    }
}

impl From<&str> for FunctionPattern {
    fn from(name: &str) -> Self {
        FunctionPattern::Call(FunctionCall::new(name))
    }
}

impl FunctionPattern {
    /// A chain of patterns.
    pub fn chain(members: impl IntoIterator<Item = impl Into<FunctionPattern>>) -> Self {
        FunctionPattern::Chain(members.into_iter().map(Into::into).collect())
    }

    /// A dict pattern keyed by component value.
    pub fn dict<K: Into<String>, P: Into<FunctionPattern>>(entries: impl IntoIterator<Item = (K, P)>) -> Self {
        FunctionPattern::Dict(entries.into_iter().map(|(k, p)| (k.into(), p.into())).collect())
    }

    /// Every call in the pattern, depth first, with the dict keys on its path.
    pub fn calls(&self) -> Vec<(Vec<&str>, &FunctionCall)> {
        fn walk<'a>(p: &'a FunctionPattern, path: &mut Vec<&'a str>, out: &mut Vec<(Vec<&'a str>, &'a FunctionCall)>) {
            match p {
                FunctionPattern::Call(c) => out.push((path.clone(), c)),
                FunctionPattern::Chain(members) => members.iter().for_each(|m| walk(m, path, out)),
                FunctionPattern::Dict(entries) => {
                    for (k, v) in entries {
                        path.push(k);
                        walk(v, path, out);
                        path.pop();
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// Whether a dict appears anywhere in the pattern.
    pub fn has_dict(&self) -> bool {
        match self {
            FunctionPattern::Call(_) => false,
            FunctionPattern::Chain(m) => m.iter().any(FunctionPattern::has_dict),
            FunctionPattern::Dict(_) => true,
        }
    }
}

/// Whether a dict pattern's entry key selects the group whose routing component has `value` (as
/// text: `"1"`, or a well like `"A01"`). Keys may carry leading zeros: `"1"`, `"01"` and `"001"`
/// all select value 1, and `"0"` or `"00"` select 0. The compiler checks dict keys and the
/// executor routes groups with this one rule.
pub fn dict_key_matches(key: &str, value: &str) -> bool {
    if key == value {
        return true;
    }
    match key.trim_start_matches('0') {
        "" => value == "0",
        trimmed => trimmed == value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_keys_match_component_values_with_or_without_leading_zeros() {
        assert!(dict_key_matches("1", "1"));
        assert!(dict_key_matches("01", "1"));
        assert!(dict_key_matches("001", "1"));
        assert!(dict_key_matches("10", "10"));
        assert!(dict_key_matches("0", "0"));
        assert!(dict_key_matches("00", "0"));
        assert!(dict_key_matches("A01", "A01"));
        assert!(!dict_key_matches("1", "10"));
        assert!(!dict_key_matches("10", "1"));
        assert!(!dict_key_matches("0", "1"));
        assert!(!dict_key_matches("01", "2"));
        assert!(!dict_key_matches("", "1"));
        assert!(!dict_key_matches("A01", "A1"));
    }

    #[test]
    fn calls_walk_nested_patterns_with_their_dict_keys() {
        let p = FunctionPattern::dict([
            ("1", FunctionPattern::chain([FunctionCall::new("a").param("x", 1), FunctionCall::new("b")])),
            ("2", FunctionPattern::from("c")),
        ]);
        let calls: Vec<(Vec<&str>, &str)> = p.calls().into_iter().map(|(k, c)| (k, c.name.as_str())).collect();
        assert_eq!(calls, [(vec!["1"], "a"), (vec!["1"], "b"), (vec!["2"], "c")]);
        assert!(p.has_dict());
        assert!(!FunctionPattern::from("a").has_dict());
    }
}
