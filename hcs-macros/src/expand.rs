//! Code generation: the function unchanged, its contract, invoker, registration and handle module.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, ItemFn};

use crate::attrs::{AttrKind, Declared, Errors, Memory, MemorySpec};
use crate::runtime_path::runtime_path;
use crate::signature::{self, Arg, Signature};
use crate::type_text::type_text;

/// Entry point shared by the four attributes.
pub fn expand(kind: AttrKind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut declared = Declared::default();
    declared.add(kind, attr, Span::call_site(), &mut errors);

    let parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let e = e.to_compile_error();
            return quote!(#e #item);
        }
    };
    let mut func = match parsed {
        Item::Fn(func) => func,
        mut other => {
            let what = item_kind(&other);
            strip_hcs_attrs(&mut other);
            let message = format!(
                "#[{}] goes on a free `fn`, not on {what}: it declares the contract of a processing function",
                kind.name()
            );
            let e = syn::Error::new(Span::call_site(), message).to_compile_error();
            return quote!(#e #other);
        }
    };

    func.attrs.retain(|a| match AttrKind::of(a) {
        Some(k) => {
            declared.add_sibling(k, a, &mut errors);
            false
        }
        None => true,
    });
    if let (false, Some((other, span))) = (declared.memory_present, declared.first_other) {
        errors.at(
            span,
            format!(
                "#[{}] needs #[memory(..)] on the same function to declare the stack it takes and returns, e.g. #[memory(ndarray)]",
                other.name()
            ),
        );
    }
    for (what, count) in [("special inputs", declared.inputs.len()), ("special outputs", declared.outputs.len())] {
        if count > crate::MAX_SPECIAL {
            errors.at(
                Span::call_site(),
                format!("a function may declare at most {} {what} ({count} declared)", crate::MAX_SPECIAL),
            );
        }
    }
    let sig = signature::analyse(&mut func, &declared, &mut errors);
    let rt = match runtime_path() {
        Ok(rt) => Some(rt),
        Err(message) => {
            errors.at(Span::call_site(), message);
            None
        }
    };
    if let Some(e) = errors.take() {
        let e = e.to_compile_error();
        return quote!(#func #e);
    }
    match (declared.memory, sig, rt) {
        (Some(memory), Some(sig), Some(rt)) => generate(&func, &declared, memory, sig, &rt),
        // Unreachable in practice: every `None` above pushed an error.
        _ => quote!(#func),
    }
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Impl(_) => "an impl block",
        Item::Mod(_) => "a module",
        Item::Const(_) => "a const",
        Item::Static(_) => "a static",
        Item::Trait(_) => "a trait",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a use declaration",
        _ => "this item",
    }
}

fn strip_hcs_attrs(item: &mut Item) {
    let attrs = match item {
        Item::Struct(i) => &mut i.attrs,
        Item::Enum(i) => &mut i.attrs,
        Item::Impl(i) => &mut i.attrs,
        Item::Mod(i) => &mut i.attrs,
        Item::Const(i) => &mut i.attrs,
        Item::Static(i) => &mut i.attrs,
        Item::Trait(i) => &mut i.attrs,
        Item::Type(i) => &mut i.attrs,
        Item::Use(i) => &mut i.attrs,
        _ => return,
    };
    attrs.retain(|a| AttrKind::of(a).is_none());
}

/// First paragraph of the doc comment, on one line.
fn doc_summary(attrs: &[syn::Attribute]) -> String {
    let doc_lines = attrs.iter().filter_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_owned()),
            _ => None,
        },
        _ => None,
    });
    let mut lines = Vec::new();
    for line in doc_lines {
        match (line.is_empty(), lines.is_empty()) {
            (true, true) => continue,
            (true, false) => break,
            (false, _) => lines.push(line),
        }
    }
    lines.join(" ")
}

/// The stack trait of a memory type and the variant name of `MemoryType`.
fn memory_items(memory: Memory, rt: &TokenStream) -> (TokenStream, TokenStream) {
    match memory {
        Memory::Ndarray => (quote!(#rt::NdarrayStackType), quote!(Ndarray)),
        Memory::Torch => (quote!(#rt::TorchStackType), quote!(Torch)),
        Memory::Cuda => (quote!(#rt::CudaStackType), quote!(Cuda)),
    }
}

fn default_expr(expr: &syn::Expr, ty: &syn::Type) -> TokenStream {
    // `default = "max"` for a `String` parameter reads naturally; convert the literal.
    let is_string = matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "String"));
    match expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(_), .. }) if is_string => {
            quote_spanned!(expr.span()=> ::std::string::String::from(#expr))
        }
        _ => quote!(#expr),
    }
}

/// Everything is generated inside the `CONTRACT` initializer (the invoker, defaults and
/// materializers are closures there), so rustc type-checks it as one body and reports a failed
/// bound on the user's type once, not once per use.
fn generate(func: &ItemFn, declared: &Declared, memory: MemorySpec, sig: Signature, rt: &TokenStream) -> TokenStream {
    let name = &func.sig.ident;
    let name_str = name.to_string();
    let vis = &func.vis;
    let doc = doc_summary(&func.attrs);
    let (in_trait, in_variant) = memory_items(memory.input, rt);
    let (out_trait, out_variant) = memory_items(memory.output, rt);
    let planes_variant = syn::Ident::new(memory.planes.variant(), proc_macro2::Span::call_site());
    let stack_ty = &sig.stack_ty;
    let Some(returns) = sig.returns else {
        return quote!(#func);
    };
    let ret_stack = &returns.stack;

    let mut probes = Vec::new();
    let mut param_specs = Vec::new();
    let mut param_names = Vec::new();
    let mut reads = Vec::new();
    let mut call_args = Vec::new();
    let mut input_specs: Vec<(String, TokenStream)> = Vec::new();
    let mut param_aliases = Vec::new();
    let mut input_values: Vec<(syn::Ident, syn::Type)> = Vec::new();

    for arg in &sig.args {
        match arg {
            Arg::Param(p) => {
                let ident = &p.ident;
                let ty = &p.ty;
                let key = ident.to_string();
                let ty_text = type_text(ty);
                let param_doc = &p.doc;
                let default = match &p.default {
                    Some(expr) => {
                        let value = default_expr(expr, ty);
                        quote! {
                            ::core::option::Option::Some((|| {
                                let value: #ty = #value;
                                #rt::PipelineParam::to_value(&value)
                            }) as fn() -> #rt::ParamValue)
                        }
                    }
                    None => quote!(::core::option::Option::None),
                };
                let param_type = quote_spanned!(ty.span()=> #rt::param_type::<#ty>());
                param_specs.push(quote! {
                    #rt::ParamSpec { name: #key, rust_type: #ty_text, ty: #param_type, default: #default, doc: #param_doc }
                });
                let read = quote_spanned!(ty.span()=> #rt::param::<#ty>);
                let key_index = param_names.len();
                reads.push(quote! {
                    let #ident: #ty = #read(NAME, __params, #key, <Self as #rt::HasContract>::CONTRACT.params[#key_index].default)?;
                });
                let alias_doc = format!("Type of parameter `{key}` of `{name_str}`.");
                param_aliases.push(quote! {
                    #[doc = #alias_doc]
                    #[allow(non_camel_case_types, private_interfaces, dead_code)]
                    pub type #ident = #ty;
                });
                param_names.push(key);
                call_args.push(quote!(#ident));
            }
            Arg::Special(s) => {
                let ident = &s.ident;
                let vt = &s.value_ty;
                let key = ident.to_string();
                let ty_text = type_text(vt);
                let type_id = quote_spanned!(vt.span()=> #rt::type_id_of::<#vt>);
                if s.by_ref {
                    probes.push(quote_spanned!(vt.span()=> #rt::assert_special::<#vt>();));
                    reads.push(quote! { let #ident: &#vt = __specials.get::<#vt>(NAME, #key)?; });
                } else {
                    probes.push(quote_spanned!(vt.span()=> #rt::assert_special_by_value::<#vt>();));
                    reads.push(quote! {
                        let #ident: #vt = ::core::clone::Clone::clone(__specials.get::<#vt>(NAME, #key)?);
                    });
                }
                input_values.push((ident.clone(), vt.clone()));
                input_specs.push((
                    key.clone(),
                    quote! {
                        #rt::SpecialInputSpec { key: #key, rust_type: #ty_text, type_id: #type_id }
                    },
                ));
                call_args.push(quote!(#ident));
            }
        }
    }
    // Special inputs are listed in the order the attribute declares them.
    let input_specs: Vec<TokenStream> = declared
        .inputs
        .iter()
        .filter_map(|k| input_specs.iter().find(|(key, _)| k == key).map(|(_, t)| t.clone()))
        .collect();

    let input_values: Vec<(syn::Ident, syn::Type)> =
        declared.inputs.iter().filter_map(|k| input_values.iter().find(|(ident, _)| ident == k).cloned()).collect();
    let output_values: Vec<(syn::Ident, syn::Type)> =
        declared.outputs.iter().zip(&returns.outputs).map(|(d, ty)| (d.key.clone(), ty.clone())).collect();
    let key_modules = key_items(&name_str, &input_values, &output_values, rt);
    let slot_impls = slot_impls(name, &input_values, &output_values, rt);

    let mut output_specs = Vec::new();
    let mut out_idents = Vec::new();
    let mut out_values = Vec::new();
    for (i, (decl, ty)) in declared.outputs.iter().zip(&returns.outputs).enumerate() {
        let key = decl.key.to_string();
        let ty_text = type_text(ty);
        let materializer = match &decl.materializer {
            Some(path) => {
                let path_text = type_text(path);
                let run = quote_spanned!(path.span()=> #rt::run_materializer::<#ty, _>(#path, data, target));
                quote! {
                    ::core::option::Option::Some(#rt::MaterializerSpec {
                        name: #path_text,
                        run: |data: &#rt::SpecialData, target: &#rt::MaterializeTarget| -> #rt::MaterializeResult { #run },
                    })
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let type_id = quote_spanned!(ty.span()=> #rt::type_id_of::<#ty>);
        output_specs.push(quote! {
            #rt::SpecialOutputSpec { key: #key, rust_type: #ty_text, type_id: #type_id, materializer: #materializer }
        });
        let ident = format_ident!("__hcs_out_{}", i);
        let wrap = quote_spanned!(ty.span()=> #rt::SpecialData::new::<#ty>);
        out_values.push(quote!((#key, #wrap(#ident))));
        out_idents.push(ident);
    }

    let call = quote!(#name(__stack, #(#call_args),*));
    let result = if returns.fallible {
        quote! {
            match #call {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(error) => {
                    return ::core::result::Result::Err(#rt::function_error(NAME, error));
                }
            }
        }
    } else {
        call
    };
    let destructure = if out_idents.is_empty() {
        quote!(let __hcs_main = #result;)
    } else {
        quote!(let (__hcs_main, #(#out_idents),*) = #result;)
    };
    let from_stack = quote_spanned!(stack_ty.span()=> <#stack_ty as #in_trait>::from_stack);
    let into_stack = quote_spanned!(ret_stack.span()=> <#ret_stack as #out_trait>::into_stack);
    let chain_breaker = declared.chain_breaker;
    let location = quote_spanned! {name.span()=>
        #rt::SourceLocation { file: ::core::file!(), line: ::core::line!(), column: ::core::column!() }
    };
    let handle_doc = format!("Contract handle of the function `{name_str}`: `{name_str}::FUNC` in Rust pipelines.");

    let generated = quote! {
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

        const _: () = {
            #slot_impls
            impl #rt::HasContract for #name::Contract {
                const CONTRACT: #rt::FunctionContract = {
                    const NAME: &str = #name_str;
                    #(#probes)*
                    #rt::FunctionContract {
                        name: NAME,
                        module_path: ::core::module_path!(),
                        crate_name: ::core::env!("CARGO_PKG_NAME"),
                        input_memory: #rt::MemoryType::#in_variant,
                        output_memory: #rt::MemoryType::#out_variant,
                        output_planes: #rt::PlaneCount::#planes_variant,
                        special_inputs: &[#(#input_specs),*],
                        special_outputs: &[#(#output_specs),*],
                        chain_breaker: #chain_breaker,
                        params: &[#(#param_specs),*],
                        doc: #doc,
                        location: #location,
                        invoke: |__stack: #rt::Stack,
                                 __params: &#rt::ParamMap,
                                 __specials: &#rt::SpecialInputs|
                         -> ::core::result::Result<#rt::InvokeOutput, #rt::InvokeError> {
                            #rt::reject_unknown_params(NAME, __params, &[#(#param_names),*])?;
                            let __stack: #stack_ty = #from_stack(__stack, NAME)?;
                            #(#reads)*
                            #destructure
                            ::core::result::Result::Ok(#rt::InvokeOutput {
                                stack: #into_stack(__hcs_main),
                                special_outputs: ::std::vec![#(#out_values),*],
                            })
                        },
                    }
                };
            }

            #[#rt::linkme::distributed_slice(#rt::FUNCTIONS)]
            #[linkme(crate = #rt::linkme)]
            static __HCS_REGISTRATION: &'static #rt::FunctionContract = #name::FUNC;
        };
    };

    let gated = gate(memory, rt, generated);
    quote! {
        #func
        #gated
    }
}

/// Torch and cuda code only compiles with their features; the runtime's gate macro turns it into
/// one clear error naming the feature when it is off.
fn gate(memory: MemorySpec, rt: &TokenStream, mut tokens: TokenStream) -> TokenStream {
    let uses = |m: Memory| memory.input == m || memory.output == m;
    if uses(Memory::Torch) {
        tokens = quote!(#rt::require_torch! { #tokens });
    }
    if uses(Memory::Cuda) {
        tokens = quote!(#rt::require_cuda! { #tokens });
    }
    tokens
}

/// The `inputs` and `outputs` modules of a handle: one typed key item per special input / output.
fn key_items(
    name: &str,
    inputs: &[(syn::Ident, syn::Type)],
    outputs: &[(syn::Ident, syn::Type)],
    rt: &TokenStream,
) -> TokenStream {
    let items = |keys: &[(syn::Ident, syn::Type)], what: &str| -> Vec<TokenStream> {
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
/// `Contract`: what `pipeline!` compares producers and consumers by.
fn slot_impls(
    name: &syn::Ident,
    inputs: &[(syn::Ident, syn::Type)],
    outputs: &[(syn::Ident, syn::Type)],
    rt: &TokenStream,
) -> TokenStream {
    let slots = |values: &[(syn::Ident, syn::Type)], trait_name: TokenStream| -> Vec<TokenStream> {
        (0..crate::MAX_SPECIAL)
            .map(|n| {
                let ty = match values.get(n) {
                    Some((_, ty)) => quote!(#ty),
                    None => quote!(#rt::NoSpecial),
                };
                quote! {
                    #[allow(private_interfaces)]
                    impl #rt::#trait_name<#n> for #name::Contract { type Value = #ty; }
                }
            })
            .collect()
    };
    let ins = slots(inputs, quote!(SpecialInputAt));
    let outs = slots(outputs, quote!(SpecialOutputAt));
    quote!(#(#ins)* #(#outs)*)
}
