//! The registry: every annotated function of every linked crate, gathered by `linkme`.
//!
//! Each `#[memory(..)]` function adds one `&'static FunctionContract` to [`FUNCTIONS`] at link
//! time; nothing runs before `main`. A crate that is a dependency but is never named by the final
//! binary is dropped by the linker with its entries — the `hcs` facade re-exports `hcs-kernels`,
//! and a plugin crate needs `use plugin as _;`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use linkme::distributed_slice;

use crate::contract::FunctionContract;
use crate::contract::SourceLocation;
use crate::memory_type::MemoryType;

/// Every registered function contract, in link order (unspecified: use [`Registry`]).
#[distributed_slice]
pub static FUNCTIONS: [&'static FunctionContract];

/// Registered functions by name, each name with one variant per input memory type.
#[derive(Debug, Default)]
pub struct Registry {
    by_name: BTreeMap<&'static str, Vec<&'static FunctionContract>>,
    problems: Vec<RegistryError>,
}

impl Registry {
    /// The registry of this binary, built once from [`FUNCTIONS`].
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| Registry::from_contracts(FUNCTIONS.iter().copied()))
    }

    /// Build a registry from any set of contracts (used by [`Registry::global`] and by tests).
    /// Duplicates (same name and input memory type) are kept out and recorded as problems.
    pub fn from_contracts(contracts: impl IntoIterator<Item = &'static FunctionContract>) -> Registry {
        let mut all: Vec<&'static FunctionContract> = contracts.into_iter().collect();
        // Link order is unspecified: sort so listings, lookups and duplicate reports are stable.
        all.sort_by_key(|c| (c.name, c.input_memory, c.module_path, c.location.file, c.location.line));
        let mut registry = Registry::default();
        for contract in all {
            let variants = registry.by_name.entry(contract.name).or_default();
            match variants.iter().find(|v| v.input_memory == contract.input_memory) {
                Some(first) => registry.problems.push(RegistryError::Duplicate {
                    name: contract.name,
                    memory: contract.input_memory,
                    first_path: first.path(),
                    first: Location(first.location),
                    second_path: contract.path(),
                    second: Location(contract.location),
                }),
                None => {
                    if let Some(first) = variants.first()
                        && let Some(what) = disagreement(first, contract)
                    {
                        registry.problems.push(RegistryError::VariantsDisagree {
                            name: contract.name,
                            what,
                            first_memory: first.input_memory,
                            first: Location(first.location),
                            second_memory: contract.input_memory,
                            second: Location(contract.location),
                        });
                    }
                    variants.push(contract);
                }
            }
        }
        registry
    }

    /// Problems found while building (duplicate registrations, variants that disagree). Empty
    /// when the registry is sound.
    pub fn problems(&self) -> &[RegistryError] {
        &self.problems
    }

    /// `Ok` when no function is registered twice and same-name variants agree, else every problem.
    pub fn check(&self) -> Result<(), Vec<RegistryError>> {
        if self.problems.is_empty() { Ok(()) } else { Err(self.problems.clone()) }
    }

    /// All contracts, sorted by name then memory type.
    pub fn iter(&self) -> impl Iterator<Item = &'static FunctionContract> + '_ {
        self.by_name.values().flatten().copied()
    }

    /// Number of registered contracts (variants count separately).
    pub fn len(&self) -> usize {
        self.by_name.values().map(Vec::len).sum()
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every variant registered under `name` (empty if none).
    pub fn variants(&self, name: &str) -> &[&'static FunctionContract] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    /// The variant of `name` that takes `memory`.
    pub fn get(&self, name: &str, memory: MemoryType) -> Option<&'static FunctionContract> {
        self.variants(name).iter().copied().find(|c| c.input_memory == memory)
    }

    /// The registered name closest to `name`, for "did you mean" hints.
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        self.by_name
            .keys()
            .map(|k| (strsim::damerau_levenshtein(name, k), *k))
            .filter(|(d, k)| *d <= (k.len() / 3).max(2))
            .min()
            .map(|(_, k)| k)
    }
}

/// What two variants of one function disagree on, if anything: the pipeline compiler checks a
/// call against one variant and may run another, so they must accept the same pipelines.
fn disagreement(a: &FunctionContract, b: &FunctionContract) -> Option<String> {
    let names = |c: &FunctionContract| c.params.iter().map(|p| p.name).collect::<Vec<_>>();
    if names(a) != names(b) {
        return Some(format!("parameters [{}] vs [{}]", names(a).join(", "), names(b).join(", ")));
    }
    for (p, q) in a.params.iter().zip(b.params) {
        if p.ty != q.ty {
            return Some(format!("the type of parameter `{}`: {} vs {}", p.name, p.ty, q.ty));
        }
        let (dp, dq) = (p.default.map(|d| d()), q.default.map(|d| d()));
        if dp != dq {
            let show = |d: Option<crate::params::ParamValue>| d.map_or("none".to_string(), |v| v.to_string());
            return Some(format!("the default of parameter `{}`: {} vs {}", p.name, show(dp), show(dq)));
        }
        if p.rule != q.rule {
            return Some(format!("the accepted values of parameter `{}`: {} vs {}", p.name, p.rule, q.rule));
        }
    }
    let inputs = |c: &FunctionContract| c.special_inputs.iter().map(|s| (s.key, s.rust_type)).collect::<Vec<_>>();
    if inputs(a) != inputs(b) {
        return Some("special inputs".into());
    }
    let outputs = |c: &FunctionContract| c.special_outputs.iter().map(|s| (s.key, s.rust_type)).collect::<Vec<_>>();
    if outputs(a) != outputs(b) {
        return Some("special outputs".into());
    }
    if a.output_planes != b.output_planes {
        return Some(format!("`planes`: {:?} vs {:?}", a.output_planes, b.output_planes));
    }
    if a.plane_shape != b.plane_shape {
        return Some(format!("`xy`: {:?} vs {:?}", a.plane_shape, b.plane_shape));
    }
    if a.chain_breaker != b.chain_breaker {
        return Some("#[chain_breaker]".into());
    }
    let scale = |c: &FunctionContract| c.pixel_scale.map(|s| s.expr);
    if scale(a) != scale(b) {
        let show = |s: Option<&str>| s.map_or("none".to_string(), |e| format!("`{e}`"));
        return Some(format!("#[pixel_scale] {} vs {}", show(scale(a)), show(scale(b))));
    }
    let origin = |c: &FunctionContract| c.pixel_origin.map(|s| s.expr);
    if origin(a) != origin(b) {
        let show = |s: Option<&str>| s.map_or("none".to_string(), |e| format!("`{e}`"));
        return Some(format!("#[pixel_origin] {} vs {}", show(origin(a)), show(origin(b))));
    }
    let shape = |c: &FunctionContract| c.output_shape.map(|s| s.expr);
    if shape(a) != shape(b) {
        let show = |s: Option<&str>| s.map_or("none".to_string(), |e| format!("`{e}`"));
        return Some(format!("#[output_shape] {} vs {}", show(shape(a)), show(shape(b))));
    }
    let rules = |c: &FunctionContract| c.checks.iter().map(|r| r.rule).collect::<Vec<_>>();
    if rules(a) != rules(b) {
        return Some(format!("#[check] rules [{}] vs [{}]", rules(a).join("; "), rules(b).join("; ")));
    }
    None
}

/// A problem with the set of registered functions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two functions registered under the same name for the same input memory type.
    #[error(
        "function `{name}` is registered twice for memory type {memory}: `{first_path}` ({first}) and `{second_path}` ({second}); rename one of them"
    )]
    Duplicate {
        /// The shared name.
        name: &'static str,
        /// The shared input memory type.
        memory: MemoryType,
        /// Full path of the first registration.
        first_path: String,
        /// Where the first was declared.
        first: Location,
        /// Full path of the second registration.
        second_path: String,
        /// Where the second was declared.
        second: Location,
    },
    /// Two variants of one function (different memory types) declare different contracts.
    #[error(
        "the {first_memory} and {second_memory} variants of `{name}` disagree on {what} ({first} and {second}); variants must accept the same pipelines"
    )]
    VariantsDisagree {
        /// The shared name.
        name: &'static str,
        /// What differs.
        what: String,
        /// Memory type of the first variant.
        first_memory: MemoryType,
        /// Where the first was declared.
        first: Location,
        /// Memory type of the second variant.
        second_memory: MemoryType,
        /// Where the second was declared.
        second: Location,
    },
}

impl RegistryError {
    /// The function the problem concerns.
    pub fn function(&self) -> &'static str {
        match self {
            RegistryError::Duplicate { name, .. } | RegistryError::VariantsDisagree { name, .. } => name,
        }
    }
}

/// A source location that prints as `file:line:column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location(pub SourceLocation);

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.0.file, self.0.line, self.0.column)
    }
}
