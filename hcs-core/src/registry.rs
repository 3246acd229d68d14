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
                None => variants.push(contract),
            }
        }
        registry
    }

    /// Problems found while building (duplicate registrations). Empty when the registry is sound.
    pub fn problems(&self) -> &[RegistryError] {
        &self.problems
    }

    /// `Ok` when no function is registered twice, else every duplicate.
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
}

/// A source location that prints as `file:line:column`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location(pub SourceLocation);

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.0.file, self.0.line, self.0.column)
    }
}
