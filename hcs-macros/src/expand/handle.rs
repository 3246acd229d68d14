//! The handle of a function: the module of the same name that Rust pipelines name it by (`FUNC`,
//! `params::`, `inputs::` / `outputs::` typed keys), and the `SpecialInputAt<N>` /
//! `SpecialOutputAt<N>` slot impls of its `Contract` marker.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Type};

use super::Target;

/// `mod <name> { Contract, FUNC, params, inputs, outputs }`, with the function's visibility.
pub(super) fn handle_module(t: &Target<'_>) -> TokenStream {
    let (name, vis, rt) = (t.name(), &t.func.vis, t.rt);
    let name_str = name.to_string();
    let handle_doc = format!("Contract handle of the function `{name_str}`: `{name_str}::FUNC` in Rust pipelines.");
    let param_aliases = t.params().map(|p| param_alias(&name_str, &p.ident, &p.ty));
    let inputs: Vec<(&Ident, &Type)> = t.special_inputs().map(|s| (&s.ident, &s.value_ty)).collect();
    let outputs: Vec<(&Ident, &Type)> = t.special_outputs().collect();
    let key_modules = key_items(&name_str, &inputs, &outputs, rt);
    quote! {
        #[doc = #handle_doc]
        #vis mod #name {
            #[doc(hidden)]
            pub struct Contract;
            /// The registered contract of the function of the same name.
            pub const FUNC: &'static #rt::FunctionContract = &<Contract as #rt::HasContract>::CONTRACT;

            /// The parameter types by name: `pipeline!` checks each value against them.
            pub mod params {
                #[allow(unused_imports)]
                use super::super::*;
                #(#param_aliases)*
            }
            #key_modules
        }
    }
}

/// `params::<name>`: the type of one parameter, which `pipeline!` checks values against.
fn param_alias(func_name: &str, ident: &Ident, ty: &Type) -> TokenStream {
    let alias_doc = format!("Type of parameter `{ident}` of `{func_name}`.");
    quote! {
        #[doc = #alias_doc]
        #[allow(non_camel_case_types, private_interfaces, dead_code)]
        pub type #ident = #ty;
    }
}

/// The `inputs` and `outputs` modules of a handle: one typed key item per special input / output.
fn key_items(name: &str, inputs: &[(&Ident, &Type)], outputs: &[(&Ident, &Type)], rt: &TokenStream) -> TokenStream {
    let items = |keys: &[(&Ident, &Type)], what: &str| -> Vec<TokenStream> {
        keys.iter()
            .map(|(key, ty)| {
                let key_str = key.to_string();
                let doc = format!("Special {what} `{key_str}` of `{name}`, as a typed key.");
                quote! {
                    #[doc = #doc]
                    #[allow(non_camel_case_types, dead_code)]
                    pub struct #key;
                    #[allow(private_interfaces)]
                    impl #rt::SpecialKey for #key {
                        const NAME: &'static str = #key_str;
                        type Value = #ty;
                    }
                }
            })
            .collect()
    };
    let ins = items(inputs, "input");
    let outs = items(outputs, "output");
    quote! {
        /// The special inputs as typed keys.
        pub mod inputs {
            #[allow(unused_imports)]
            use super::super::*;
            #(#ins)*
        }
        /// The special outputs as typed keys.
        pub mod outputs {
            #[allow(unused_imports)]
            use super::super::*;
            #(#outs)*
        }
    }
}

/// `SpecialInputAt<N>` / `SpecialOutputAt<N>` for every slot `N < MAX_SPECIAL` of the handle's
/// `Contract`: what `pipeline!` compares producers and consumers by. Preceded by the check that the
/// macro's `MAX_SPECIAL` is the runtime's.
pub(super) fn slot_impls(t: &Target<'_>) -> TokenStream {
    let (name, rt) = (t.name(), t.rt);
    let inputs: Vec<&Type> = t.special_inputs().map(|s| &s.value_ty).collect();
    let outputs: Vec<&Type> = t.special_outputs().map(|(_, ty)| ty).collect();
    let slots = |values: &[&Type], trait_name: TokenStream| -> Vec<TokenStream> {
        (0..crate::MAX_SPECIAL)
            .map(|n| {
                let ty = match values.get(n) {
                    Some(ty) => quote!(#ty),
                    None => quote!(#rt::NoSpecial),
                };
                quote! {
                    #[allow(private_interfaces)]
                    impl #rt::#trait_name<#n> for #name::Contract { type Value = #ty; }
                }
            })
            .collect()
    };
    let agreement = max_special_agreement(rt);
    let ins = slots(&inputs, quote!(SpecialInputAt));
    let outs = slots(&outputs, quote!(SpecialOutputAt));
    quote!(#agreement #(#ins)* #(#outs)*)
}

/// A compile-time check that `crate::MAX_SPECIAL` (the slots generated here) equals the runtime's
/// `__private::MAX_SPECIAL` (the slots `pipeline!` checks): a proc-macro cannot import the runtime
/// constant, so a mismatch between hcs-macros and hcs-core fails the build here instead of
/// wiring pipelines wrongly.
fn max_special_agreement(rt: &TokenStream) -> TokenStream {
    let max = crate::MAX_SPECIAL;
    quote! {
        const _: () = ::core::assert!(
            #max == #rt::MAX_SPECIAL,
            "hcs-macros and hcs-core disagree on MAX_SPECIAL: use matching versions of both crates"
        );
    }
}
