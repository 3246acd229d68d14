//! Which path the generated code uses to reach the runtime.
//!
//! The generated code names runtime items by absolute path through a hidden module:
//! `::hcs::__private` when the user's crate depends on the `hcs` facade, else
//! `::hcs_core::__private` (as `hcs-kernels` does). Inside those packages themselves (their doc
//! tests, integration tests and the library, which declares `extern crate self as …;`) the same
//! absolute path works, so `FoundCrate::Itself` maps to it too.

use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream};
use quote::quote;

pub fn runtime_path() -> Result<TokenStream, String> {
    for package in ["hcs", "hcs-core"] {
        match crate_name(package) {
            Ok(FoundCrate::Itself) => {
                let ident = syn::Ident::new(&package.replace('-', "_"), Span::call_site());
                return Ok(quote!(::#ident::__private));
            }
            Ok(FoundCrate::Name(name)) => {
                let ident = syn::Ident::new(&name, Span::call_site());
                return Ok(quote!(::#ident::__private));
            }
            Err(_) => continue,
        }
    }
    Err("the hcs attributes need a dependency on the `hcs` crate (or `hcs-core`) in this crate's Cargo.toml".to_owned())
}
