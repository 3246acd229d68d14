//! The static `FunctionContract`: the `HasContract` impl of the handle's `Contract` marker, with
//! the memory types, parameter and special-data specs, doc, source location and invoker.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Type};

use super::{Target, memory_items};
use crate::attrs::OutputDecl;
use crate::signature::{Arg, Param, SpecialArg};
use crate::type_text::type_text;

/// `impl HasContract for <name>::Contract { const CONTRACT: FunctionContract = .. }`, with the
/// invoker closure `invoke` and the plane-views one `invoke_views` (an `Option`) inside the
/// initializer.
pub(super) fn contract_impl(t: &Target<'_>, invoke: &TokenStream, invoke_views: &TokenStream) -> TokenStream {
    let (name, rt) = (t.name(), t.rt);
    let name_str = name.to_string();
    let doc = doc_summary(&t.func.attrs);
    let (_, in_variant) = memory_items(t.memory.input, rt);
    let (_, out_variant) = memory_items(t.memory.output, rt);
    let planes_variant = Ident::new(t.memory.planes.variant(), Span::call_site());
    let xy_variant = Ident::new(t.memory.xy.variant(), Span::call_site());
    let params: Vec<&Param> = t.params().collect();
    let specials: Vec<&Ident> = t.special_inputs().map(|s| &s.ident).collect();
    let mut errors = crate::attrs::Errors::default();
    let checks: Vec<TokenStream> =
        t.declared.checks.iter().map(|c| crate::rule::check_spec(c, &params, &specials, rt, &mut errors)).collect();
    let peak = crate::rule::estimate_spec(t.declared.peak_memory.as_ref(), &params, &specials, rt, &mut errors);
    let changes_size = t.memory.xy == crate::attrs::Xy::Any || t.memory.planes == crate::attrs::Planes::Any;
    let shape =
        crate::rule::shape_spec(t.declared.output_shape.as_ref(), changes_size, &params, &specials, rt, &mut errors);
    let origin = crate::rule::origin_spec(
        t.declared.pixel_origin.as_ref(),
        t.memory.xy == crate::attrs::Xy::Any,
        &params,
        &specials,
        rt,
        &mut errors,
    );
    let scale = crate::rule::scale_spec(
        t.declared.pixel_scale.as_ref(),
        t.memory.xy == crate::attrs::Xy::Any,
        &params,
        &specials,
        rt,
        &mut errors,
    );
    let check_errors = errors.take().map(|e| e.to_compile_error());
    let probes = t.args.iter().filter_map(|arg| match arg {
        Arg::Special(s) => Some(special_probe(s, rt)),
        Arg::Param(_) => None,
    });
    let param_specs = t.params().map(|p| param_spec(p, rt));
    let input_specs = t.special_inputs().map(|s| special_input_spec(s, rt));
    let output_specs =
        t.declared.outputs.iter().zip(&t.returns.outputs).map(|(decl, ty)| special_output_spec(decl, ty, rt));
    let chain_breaker = t.declared.chain_breaker;
    let location = quote_spanned! {name.span()=>
        #rt::SourceLocation { file: ::core::file!(), line: ::core::line!(), column: ::core::column!() }
    };
    quote! {
        impl #rt::HasContract for #name::Contract {
            const CONTRACT: #rt::FunctionContract = {
                const NAME: &str = #name_str;
                const PARAMS: &[#rt::ParamSpec] = &[#(#param_specs),*];
                const CHECKS: &[#rt::ParamCheck] = &[#(#checks),*];
                #(#probes)*
                #rt::FunctionContract {
                    name: NAME,
                    module_path: ::core::module_path!(),
                    crate_name: ::core::env!("CARGO_PKG_NAME"),
                    input_memory: #rt::MemoryType::#in_variant,
                    output_memory: #rt::MemoryType::#out_variant,
                    output_planes: #rt::PlaneCount::#planes_variant,
                    plane_shape: #rt::PlaneShape::#xy_variant,
                    special_inputs: &[#(#input_specs),*],
                    special_outputs: &[#(#output_specs),*],
                    chain_breaker: #chain_breaker,
                    params: PARAMS,
                    checks: CHECKS,
                    peak_memory: #peak,
                    output_shape: #shape,
                    pixel_scale: #scale,
                    pixel_origin: #origin,
                    doc: #doc,
                    location: #location,
                    invoke: #invoke,
                    invoke_views: #invoke_views,
                }
            };
        }
        #check_errors
    }
}

/// The check that a special input's type can be special data (and be cloned, when taken by value),
/// spanned on the type.
fn special_probe(s: &SpecialArg, rt: &TokenStream) -> TokenStream {
    let vt = &s.value_ty;
    if s.by_ref {
        quote_spanned!(vt.span()=> #rt::assert_special::<#vt>();)
    } else {
        quote_spanned!(vt.span()=> #rt::assert_special_by_value::<#vt>();)
    }
}

/// `ParamSpec` of one tunable parameter.
fn param_spec(p: &Param, rt: &TokenStream) -> TokenStream {
    let (ty, param_doc) = (&p.ty, &p.doc);
    let rule = p.rule.tokens(rt);
    let key = p.ident.to_string();
    let ty_text = type_text(ty);
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
    quote! {
        #rt::ParamSpec { name: #key, rust_type: #ty_text, ty: #param_type, default: #default, doc: #param_doc, rule: #rule }
    }
}

fn default_expr(expr: &syn::Expr, ty: &Type) -> TokenStream {
    // `default = "max"` for a `String` parameter reads naturally; convert the literal.
    let is_string = matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "String"));
    match expr {
        syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(_), .. }) if is_string => {
            quote_spanned!(expr.span()=> ::std::string::String::from(#expr))
        }
        _ => quote!(#expr),
    }
}

/// `SpecialInputSpec` of one special input.
fn special_input_spec(s: &SpecialArg, rt: &TokenStream) -> TokenStream {
    let vt = &s.value_ty;
    let key = s.ident.to_string();
    let ty_text = type_text(vt);
    let type_id = quote_spanned!(vt.span()=> #rt::type_id_of::<#vt>);
    quote! {
        #rt::SpecialInputSpec { key: #key, rust_type: #ty_text, type_id: #type_id }
    }
}

/// `SpecialOutputSpec` of one special output, with its materializer if declared.
fn special_output_spec(decl: &OutputDecl, ty: &Type, rt: &TokenStream) -> TokenStream {
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
    quote! {
        #rt::SpecialOutputSpec { key: #key, rust_type: #ty_text, type_id: #type_id, materializer: #materializer }
    }
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
