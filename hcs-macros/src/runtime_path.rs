//! Which path the generated code uses to reach the runtime.
//!
//! The generated code names runtime items by absolute path through a hidden module:
//! `::hcs::__private` when the user's crate depends on the `hcs` facade, else
//! `::hcs_core::__private` (as `hcs-kernels` does); `pipeline!` uses `::hcs_plan::__private` when
//! there is no facade. Inside those packages themselves (their doc
//! tests, integration tests and the library, which declares `extern crate self as …;`) the same
//! absolute path works, so `FoundCrate::Itself` maps to it too.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;

/// The runtime of the attributes: the contracts (`hcs-core`), through the facade when present.
/// Without either dependency, an error at the macro call saying which one to add.
pub fn runtime_path() -> syn::Result<TokenStream> {
    find_runtime(&["hcs", "hcs-core"]).ok_or_else(|| {
        missing_dependency(
            "the hcs attributes need a dependency on the `hcs` crate (or `hcs-core`) in this crate's Cargo.toml",
        )
    })
}

/// The runtime of `pipeline!`: the pipeline model and wiring rules (`hcs-plan`), through the
/// facade when present (its `runtime` feature). Without either dependency, an error at the macro
/// call saying which one to add.
pub fn pipeline_runtime_path() -> syn::Result<TokenStream> {
    find_runtime(&["hcs", "hcs-plan"]).ok_or_else(|| {
        missing_dependency(
            "`pipeline!` needs a dependency on the `hcs` crate (feature `runtime`, on by default) or on `hcs-plan`",
        )
    })
}

/// The error for a missing runtime dependency, spanned on the whole macro call.
fn missing_dependency(message: &str) -> syn::Error {
    syn::Error::new(Span::call_site(), message)
}

fn find_runtime(packages: &[&str]) -> Option<TokenStream> {
    for &package in packages {
        match crate_name(package) {
            Ok(FoundCrate::Itself) => {
                let ident = syn::Ident::new(&package.replace('-', "_"), Span::call_site());
                return Some(quote!(::#ident::__private));
            }
            Ok(FoundCrate::Name(name)) => {
                let ident = syn::Ident::new(&name, Span::call_site());
                return Some(quote!(::#ident::__private));
            }
            Err(_) => continue,
        }
    }
    None
}
