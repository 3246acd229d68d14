//! Pipeline files (TOML): the same pipelines the Rust builder makes, functions named by their
//! registry names.
//!
//! ```toml
//! name = "example"
//!
//! [[steps]]
//! name = "normalize + tophat"
//! variable_components = ["site"]          # default ["site"]
//! materialize = true                       # or { wells = ["A01"] }
//! func = [
//!   { function = "stack_percentile_normalize", params = { low_percentile = 0.5, high_percentile = 99.5 } },
//!   { function = "tophat", params = { selem_radius = 50 } },
//! ]
//!
//! [[steps]]
//! name = "per channel"
//! variable_components = ["z_index"]
//! group_by = "channel"
//! input_source = "pipeline_start"          # default "previous_step"
//! func = { dict = { "1" = "max_projection", "2" = ["mean_projection", "gaussian_filter"] } }
//! ```
//!
//! A pattern is a function name, `{ function, params }`, an array (a chain) or `{ dict = { … } }`.

use std::collections::BTreeMap;

use hcs_core::params::ParamValue;
use hcs_plate::{Component, WellId};

use super::config::{ConfigLayer, ConfigReadError};
use super::error::{Line, PipelineError, Span};
use super::pattern::{FunctionCall, FunctionPattern};
use super::step::{FunctionStep, InputSource, Materialize, Pipeline};

/// Where a pipeline file's steps, calls (in [`FunctionPattern::calls`] order) and parameters
/// are, from the TOML parser's spans — whatever the file's layout (`[[steps]]` tables, an inline
/// `steps = [ … ]` array, inline or dotted call tables).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceMap {
    steps: Vec<StepSpans>,
    /// Top-level keys (`name`, `config`, `steps`, unknown ones) and their values.
    keys: BTreeMap<String, (Span, Span)>,
    /// The keys of `[config]` (`key = value`).
    config: BTreeMap<String, Span>,
}

#[derive(Clone, Debug, PartialEq)]
struct StepSpans {
    at: Span,
    calls: Vec<(Span, BTreeMap<String, Span>)>,
    /// The keys of the step's `config` (`key = value`).
    config: BTreeMap<String, Span>,
}

impl SourceMap {
    /// Where step `i` (0-based) is.
    pub fn step_line(&self, i: usize) -> Option<Span> {
        self.steps.get(i).map(|s| s.at)
    }

    /// Where call `k` of step `i` is (its function name).
    pub fn call_line(&self, i: usize, k: usize) -> Option<Span> {
        self.steps.get(i)?.calls.get(k).map(|c| c.0)
    }

    /// Where parameter `param` of call `k` of step `i` is (`key = value`).
    pub fn param_line(&self, i: usize, k: usize, param: &str) -> Option<Span> {
        self.steps.get(i)?.calls.get(k)?.1.get(param).copied()
    }

    /// Where `key` of a configuration layer is (`key = value`): of `[config]` (`step` `None`)
    /// or of step `step`'s (0-based) `config`. The layer itself (`[config]`, the step) where no
    /// key is given or the file does not have it.
    pub fn config_line(&self, step: Option<usize>, key: Option<&str>) -> Option<Span> {
        let (keys, layer) = match step {
            None => (&self.config, self.key("config").map(|(_, v)| v)),
            Some(i) => {
                let s = self.steps.get(i)?;
                (&s.config, Some(s.at))
            }
        };
        key.and_then(|k| keys.get(k).copied()).or(layer)
    }

    /// Where the top-level key `key` is, and its value.
    fn key(&self, key: &str) -> Option<(Span, Span)> {
        self.keys.get(key).copied()
    }
}

/// 1-based line of byte offset `at` of `text` (past the end: the last line).
pub fn line_of(text: &str, at: usize) -> usize {
    text.get(..at.min(text.len())).map_or(1, |t| t.bytes().filter(|&b| b == b'\n').count() + 1)
}

fn span_of(text: &str, range: std::ops::Range<usize>) -> Span {
    let small = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    Span { line: small(line_of(text, range.start)), start: small(range.start), end: small(range.end) }
}

type DeValue<'i> = toml::de::DeValue<'i>;
type Spanned<T> = toml::Spanned<T>;

/// The calls of a `func` value, in [`FunctionPattern::calls`] order: a string; an array (a
/// chain); `{ dict = { key = pattern } }` (entries in key order, as the pattern keeps them); or
/// `{ function = "…", params = { … } }`.
fn call_spans(text: &str, v: &Spanned<DeValue<'_>>, out: &mut Vec<(Span, BTreeMap<String, Span>)>) {
    match v.get_ref() {
        DeValue::String(_) => out.push((span_of(text, v.span()), BTreeMap::new())),
        DeValue::Array(members) => members.iter().for_each(|m| call_spans(text, m, out)),
        DeValue::Table(t) => {
            if let Some(dict) = t.get("dict") {
                if let DeValue::Table(entries) = dict.get_ref() {
                    let mut entries: Vec<_> = entries.iter().collect();
                    entries.sort_by(|a, b| a.0.get_ref().cmp(b.0.get_ref()));
                    entries.into_iter().for_each(|(_, p)| call_spans(text, p, out));
                }
                return;
            }
            let at = t.get("function").map_or_else(|| v.span(), |f| f.span());
            let mut params = BTreeMap::new();
            if let Some(p) = t.get("params")
                && let DeValue::Table(p) = p.get_ref()
            {
                for (k, value) in p.iter() {
                    params.insert(k.get_ref().to_string(), span_of(text, k.span().start..value.span().end));
                }
            }
            out.push((span_of(text, at), params));
        }
        _ => {}
    }
}

/// The `key = value` spans of a table value (none when it is not a table).
fn key_spans(text: &str, v: Option<&Spanned<DeValue<'_>>>) -> BTreeMap<String, Span> {
    match v.map(Spanned::get_ref) {
        Some(DeValue::Table(t)) => {
            t.iter().map(|(k, v)| (k.get_ref().to_string(), span_of(text, k.span().start..v.span().end))).collect()
        }
        _ => BTreeMap::new(),
    }
}

/// Locate the steps, calls and parameters of `text` (empty where it does not parse).
fn source_map(text: &str) -> SourceMap {
    let Ok(doc) = toml::de::DeTable::parse(text) else { return SourceMap::default() };
    let doc = doc.get_ref();
    let keys = doc
        .iter()
        .map(|(k, v)| (k.get_ref().to_string(), (span_of(text, k.span()), span_of(text, v.span()))))
        .collect();
    let mut steps = Vec::new();
    if let Some(list) = doc.get("steps")
        && let DeValue::Array(items) = list.get_ref()
    {
        for item in items {
            let mut calls = Vec::new();
            let mut config = BTreeMap::new();
            if let DeValue::Table(t) = item.get_ref() {
                if let Some(func) = t.get("func") {
                    call_spans(text, func, &mut calls);
                }
                config = key_spans(text, t.get("config"));
            }
            steps.push(StepSpans { at: span_of(text, item.span()), calls, config });
        }
    }
    SourceMap { steps, keys, config: key_spans(text, doc.get("config")) }
}

fn file_error(at: Option<Span>, message: impl Into<String>) -> PipelineError {
    PipelineError::File { at: Line(at), message: message.into() }
}

/// The keys a step table may have.
const STEP_KEYS: [&str; 8] =
    ["name", "func", "variable_components", "group_by", "input_source", "materialize", "merge_outputs", "config"];

fn component_names() -> String {
    Component::ALL.iter().map(|c| c.name()).collect::<Vec<_>>().join(", ")
}

/// Why a step table is not shaped like a step: the text after `line N: step K: ` of a
/// [`PipelineError::File`]. `path` is where in `func` (`func`, `func[1]`, `func.dict.2`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
enum ShapeError {
    /// A parameter value of a type parameters cannot have.
    #[error("{path}.params.{param}: a parameter value cannot be a {ty}")]
    ParamValue { path: String, param: String, ty: &'static str },
    /// A table pattern with `dict` and other keys.
    #[error("{path}: a dict pattern has only the key `dict`")]
    DictKeys { path: String },
    /// `dict = ` something other than a table.
    #[error("{path}.dict must be a table of component value → pattern")]
    DictNotTable { path: String },
    /// A table pattern without `function = "name"`.
    #[error("{path}: a table pattern needs `function = \"name\"` (or `dict = {{ … }}`)")]
    NoFunction { path: String },
    /// A call table with a key other than `function` and `params`.
    #[error("{path}: unknown key `{key}` (a call has `function` and `params`)")]
    CallKey { path: String, key: String },
    /// `params = ` something other than a table.
    #[error("{path}.params must be a table")]
    ParamsNotTable { path: String },
    /// A pattern that is a number, a date, ….
    #[error("{path}: a pattern cannot be a {ty}")]
    PatternType { path: String, ty: &'static str },
    /// A component that is not a string.
    #[error("{what} must be a component name")]
    NotComponentName { what: &'static str },
    /// A component name that does not exist.
    #[error("{what}: unknown component `{name}` (one of {})", component_names())]
    UnknownComponent { what: &'static str, name: String },
    /// A step table with an unknown key.
    #[error("unknown key `{key}` (a step has {})", STEP_KEYS.join(", "))]
    StepKey { key: String },
    /// A step without a name (or an empty one).
    #[error("a step needs `name = \"…\"`, a name that is not empty")]
    NoName,
    /// A step without `func`.
    #[error("step `{step}` needs `func`")]
    NoFunc { step: String },
    /// Anything wrong inside the step named `step`.
    #[error("step `{step}`: {source}")]
    InStep { step: String, source: Box<ShapeError> },
    /// `variable_components = ` something other than a list.
    #[error("variable_components must be a list")]
    ComponentsNotList,
    /// An unknown input source.
    #[error("input_source is \"previous_step\" or \"pipeline_start\"")]
    InputSource,
    /// A materialize well filter entry that is not a well (`well` as written in TOML).
    #[error("materialize.wells: bad well {well}")]
    BadWell { well: String },
    /// `materialize.wells = ` something other than a list.
    #[error("materialize.wells must be a list of wells")]
    WellsNotList,
    /// `materialize = ` something other than a boolean or a table.
    #[error("materialize is true, false or {{ wells = [...] }}")]
    Materialize,
    /// `merge_outputs = ` something other than a list of strings.
    #[error("merge_outputs must be a list of special-output keys")]
    MergeOutputs,
    /// The step's configuration layer.
    #[error("config: {0}")]
    Config(#[from] ConfigReadError),
}

/// A parameter value; `path` and `param` name it in the error.
fn param_value(v: &toml::Value, path: &str, param: &str) -> Result<ParamValue, ShapeError> {
    Ok(match v {
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::String(s) => ParamValue::Str(s.clone()),
        toml::Value::Array(a) => {
            ParamValue::List(a.iter().map(|v| param_value(v, path, param)).collect::<Result<_, _>>()?)
        }
        other => {
            return Err(ShapeError::ParamValue { path: path.into(), param: param.into(), ty: other.type_str() });
        }
    })
}

fn toml_value(v: &ParamValue) -> Option<toml::Value> {
    Some(match v {
        ParamValue::Bool(b) => toml::Value::Boolean(*b),
        ParamValue::Int(i) => toml::Value::Integer(*i),
        ParamValue::Float(f) => toml::Value::Float(*f),
        ParamValue::Str(s) => toml::Value::String(s.clone()),
        ParamValue::List(l) => toml::Value::Array(l.iter().filter_map(toml_value).collect()),
        ParamValue::None => return None,
    })
}

fn pattern(v: &toml::Value, path: &str) -> Result<FunctionPattern, ShapeError> {
    match v {
        toml::Value::String(name) => Ok(FunctionPattern::Call(FunctionCall::new(name.clone()))),
        toml::Value::Array(members) => Ok(FunctionPattern::Chain(
            members.iter().enumerate().map(|(i, m)| pattern(m, &format!("{path}[{i}]"))).collect::<Result<_, _>>()?,
        )),
        toml::Value::Table(t) if t.contains_key("dict") => dict_pattern(t, path),
        toml::Value::Table(t) => call_pattern(t, path),
        other => Err(ShapeError::PatternType { path: path.into(), ty: other.type_str() }),
    }
}

/// `{ dict = { key = pattern, … } }`.
fn dict_pattern(t: &toml::Table, path: &str) -> Result<FunctionPattern, ShapeError> {
    if t.len() > 1 {
        return Err(ShapeError::DictKeys { path: path.into() });
    }
    let Some(toml::Value::Table(entries)) = t.get("dict") else {
        return Err(ShapeError::DictNotTable { path: path.into() });
    };
    let entries = entries
        .iter()
        .map(|(k, p)| Ok((k.clone(), pattern(p, &format!("{path}.dict.{k}"))?)))
        .collect::<Result<BTreeMap<_, _>, ShapeError>>()?;
    Ok(FunctionPattern::Dict(entries))
}

/// `{ function = "name", params = { … } }`.
fn call_pattern(t: &toml::Table, path: &str) -> Result<FunctionPattern, ShapeError> {
    let Some(toml::Value::String(name)) = t.get("function") else {
        return Err(ShapeError::NoFunction { path: path.into() });
    };
    if let Some(extra) = t.keys().find(|k| *k != "function" && *k != "params") {
        return Err(ShapeError::CallKey { path: path.into(), key: extra.clone() });
    }
    let mut call = FunctionCall::new(name.clone());
    match t.get("params") {
        None => {}
        Some(toml::Value::Table(params)) => {
            for (k, v) in params {
                call.params.insert(k.clone(), param_value(v, path, k)?);
            }
        }
        Some(_) => return Err(ShapeError::ParamsNotTable { path: path.into() }),
    }
    Ok(FunctionPattern::Call(call))
}

fn component(v: &toml::Value, what: &'static str) -> Result<Component, ShapeError> {
    let name = v.as_str().ok_or(ShapeError::NotComponentName { what })?;
    Component::from_name(name).ok_or_else(|| ShapeError::UnknownComponent { what, name: name.into() })
}

/// `materialize = true | false | { wells = [...] }`.
fn materialize(v: Option<&toml::Value>) -> Result<Option<Materialize>, ShapeError> {
    match v {
        None | Some(toml::Value::Boolean(false)) => Ok(None),
        Some(toml::Value::Boolean(true)) => Ok(Some(Materialize::default())),
        Some(toml::Value::Table(m)) => {
            let wells = match m.get("wells") {
                None => None,
                Some(toml::Value::Array(ws)) => Some(
                    ws.iter()
                        .map(|w| {
                            w.as_str()
                                .and_then(|w| w.parse::<WellId>().ok())
                                .ok_or_else(|| ShapeError::BadWell { well: w.to_string() })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
                Some(_) => return Err(ShapeError::WellsNotList),
            };
            Ok(Some(Materialize { wells }))
        }
        Some(_) => Err(ShapeError::Materialize),
    }
}

impl ShapeError {
    /// The step `config` problem this is, if it is one.
    fn config(&self) -> Option<&ConfigReadError> {
        match self {
            ShapeError::Config(c) => Some(c),
            ShapeError::InStep { source, .. } => source.config(),
            _ => None,
        }
    }
}

/// A step table, with every problem it has (at least one on `Err`).
fn step(t: &toml::Table) -> Result<FunctionStep, Vec<ShapeError>> {
    let mut errors: Vec<ShapeError> =
        t.keys().filter(|k| !STEP_KEYS.contains(&k.as_str())).map(|k| ShapeError::StepKey { key: k.clone() }).collect();
    let Some(name) = t.get("name").and_then(toml::Value::as_str).filter(|n| !n.trim().is_empty()) else {
        errors.push(ShapeError::NoName);
        return Err(errors);
    };
    let Some(func) = t.get("func") else {
        errors.push(ShapeError::NoFunc { step: name.into() });
        return Err(errors);
    };
    match step_fields(t, name, func) {
        Ok(s) if errors.is_empty() => Ok(s),
        Ok(_) => Err(errors),
        Err(inner) => {
            let in_step = |e| ShapeError::InStep { step: name.into(), source: Box::new(e) };
            errors.extend(inner.into_iter().map(in_step));
            Err(errors)
        }
    }
}

/// The step's fields after its name and `func` were found: every field read, each problem
/// kept (at least one on `Err`).
fn step_fields(t: &toml::Table, name: &str, func: &toml::Value) -> Result<FunctionStep, Vec<ShapeError>> {
    let mut errors = Vec::new();
    let mut s = FunctionStep::new(name, FunctionPattern::Chain(Vec::new()));
    match pattern(func, "func") {
        Ok(p) => s.func = p,
        Err(e) => errors.push(e),
    }
    if let Some(v) = t.get("variable_components") {
        let read = v
            .as_array()
            .ok_or(ShapeError::ComponentsNotList)
            .and_then(|list| list.iter().map(|c| component(c, "variable_components")).collect::<Result<Vec<_>, _>>());
        match read {
            Ok(list) => s.variable_components = list,
            Err(e) => errors.push(e),
        }
    }
    if let Some(v) = t.get("group_by") {
        match component(v, "group_by") {
            Ok(c) => s.group_by = Some(c),
            Err(e) => errors.push(e),
        }
    }
    if let Some(v) = t.get("input_source") {
        match v.as_str().and_then(InputSource::from_name) {
            Some(source) => s.input_source = source,
            None => errors.push(ShapeError::InputSource),
        }
    }
    match materialize(t.get("materialize")) {
        Ok(m) => s.materialize = m,
        Err(e) => errors.push(e),
    }
    if let Some(v) = t.get("merge_outputs") {
        let keys = v.as_array().and_then(|a| a.iter().map(|k| k.as_str().map(str::to_string)).collect());
        match keys {
            Some(keys) => s.merge_outputs = keys,
            None => errors.push(ShapeError::MergeOutputs),
        }
    }
    if let Some(v) = t.get("config") {
        match ConfigLayer::from_toml_all(v.clone()) {
            Ok(layer) => s.config = layer,
            Err(es) => errors.extend(es.into_iter().map(ShapeError::Config)),
        }
    }
    if errors.is_empty() { Ok(s) } else { Err(errors) }
}

impl Pipeline {
    /// Read a pipeline file's text. Shape errors name the line where the parser knows it. The
    /// first problem only: [`Pipeline::from_toml_all`] gives every one.
    pub fn from_toml(text: &str) -> Result<(Pipeline, SourceMap), PipelineError> {
        Self::from_toml_all(text).map_err(|mut errors| errors.swap_remove(0))
    }

    /// [`Pipeline::from_toml`] with every shape problem of the file (at least one on `Err`),
    /// in file order: each unknown key, each refused `[config]` key, each step's problems. A
    /// file that is not TOML has one: where the parser stopped.
    pub fn from_toml_all(text: &str) -> Result<(Pipeline, SourceMap), Vec<PipelineError>> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| vec![file_error(e.span().map(|r| span_of(text, r)), e.message().to_string())])?;
        let map = source_map(text);
        let mut errors: Vec<PipelineError> = table
            .keys()
            .filter(|k| !["name", "config", "steps"].contains(&k.as_str()))
            .map(|extra| {
                file_error(
                    map.key(extra).map(|(k, _)| k),
                    format!("unknown key `{extra}` (a pipeline has name, config, steps)"),
                )
            })
            .collect();
        let mut pipeline = Pipeline::new(table.get("name").and_then(toml::Value::as_str).unwrap_or("pipeline"));
        if let Some(v) = table.get("config") {
            match ConfigLayer::from_toml_all(v.clone()) {
                Ok(layer) => pipeline.config = layer,
                Err(es) => errors.extend(
                    es.into_iter().map(|e| file_error(map.config_line(None, e.key()), format!("[config]: {e}"))),
                ),
            }
        }
        let steps = match table.get("steps") {
            None => &Vec::new(),
            Some(toml::Value::Array(steps)) => steps,
            Some(_) => {
                errors.push(file_error(map.key("steps").map(|(_, v)| v), "`steps` must be an array of tables"));
                return Err(errors);
            }
        };
        for (i, s) in steps.iter().enumerate() {
            let at = map.step_line(i);
            let toml::Value::Table(t) = s else {
                errors.push(file_error(at, format!("step {} must be a table", i + 1)));
                continue;
            };
            match step(t) {
                Ok(step) => pipeline.steps.push(step),
                Err(es) => errors.extend(es.into_iter().map(|e| {
                    let at = e.config().map_or(at, |c| map.config_line(Some(i), c.key()));
                    file_error(at, format!("step {}: {e}", i + 1))
                })),
            }
        }
        if errors.is_empty() { Ok((pipeline, map)) } else { Err(errors) }
    }

    /// Write the pipeline as a file that [`Pipeline::from_toml`] reads back to the same pipeline.
    pub fn to_toml(&self) -> String {
        fn pat(p: &FunctionPattern) -> toml::Value {
            match p {
                FunctionPattern::Call(c) if c.params.is_empty() => toml::Value::String(c.name.clone()),
                FunctionPattern::Call(c) => {
                    let mut t = toml::Table::new();
                    t.insert("function".into(), toml::Value::String(c.name.clone()));
                    let params: toml::Table =
                        c.params.iter().filter_map(|(k, v)| Some((k.clone(), toml_value(v)?))).collect();
                    t.insert("params".into(), toml::Value::Table(params));
                    toml::Value::Table(t)
                }
                FunctionPattern::Chain(m) => toml::Value::Array(m.iter().map(pat).collect()),
                FunctionPattern::Dict(d) => {
                    let entries: toml::Table = d.iter().map(|(k, v)| (k.clone(), pat(v))).collect();
                    let mut t = toml::Table::new();
                    t.insert("dict".into(), toml::Value::Table(entries));
                    toml::Value::Table(t)
                }
            }
        }
        let mut out = format!("name = {}\n", toml::Value::String(self.name.clone()));
        if !self.config.is_empty()
            && let Ok(toml::Value::Table(config)) = toml::Value::try_from(&self.config)
        {
            out.push_str("\n[config]\n");
            for (k, v) in config {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        for s in &self.steps {
            let mut t = toml::Table::new();
            t.insert("name".into(), toml::Value::String(s.name.clone()));
            let comps = s.variable_components.iter().map(|c| toml::Value::String(c.name().into())).collect();
            t.insert("variable_components".into(), toml::Value::Array(comps));
            if let Some(g) = s.group_by {
                t.insert("group_by".into(), toml::Value::String(g.name().into()));
            }
            t.insert("input_source".into(), toml::Value::String(s.input_source.name().into()));
            if let Some(m) = &s.materialize {
                let v = match &m.wells {
                    None => toml::Value::Boolean(true),
                    Some(ws) => {
                        let mut mt = toml::Table::new();
                        let wells = ws.iter().map(|w| toml::Value::String(w.to_string())).collect();
                        mt.insert("wells".into(), toml::Value::Array(wells));
                        toml::Value::Table(mt)
                    }
                };
                t.insert("materialize".into(), v);
            }
            if !s.merge_outputs.is_empty() {
                let keys = s.merge_outputs.iter().map(|k| toml::Value::String(k.clone())).collect();
                t.insert("merge_outputs".into(), toml::Value::Array(keys));
            }
            if !s.config.is_empty()
                && let Ok(config) = toml::Value::try_from(&s.config)
            {
                t.insert("config".into(), config);
            }
            t.insert("func".into(), pat(&s.func));
            out.push_str("\n[[steps]]\n");
            let keys = [
                "name",
                "variable_components",
                "group_by",
                "input_source",
                "materialize",
                "merge_outputs",
                "config",
                "func",
            ];
            for k in keys {
                if let Some(v) = t.get(k) {
                    out.push_str(&format!("{k} = {v}\n"));
                }
            }
        }
        out
    }
}
