//! The invoker: the type-erased `invoke` closure of the contract, which reads the parameters and
//! special inputs from their maps, calls the function, and wraps its stack and special outputs.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use super::{Target, memory_items};
use crate::signature::{Arg, Param, SpecialArg};

/// `|__stack, __params, __specials| -> Result<InvokeOutput, InvokeError> { .. }`. It names `NAME`
/// and `Self` of the `CONTRACT` initializer it is generated into.
pub(super) fn invoker(t: &Target<'_>) -> TokenStream {
    let rt = t.rt;
    let (in_trait, _) = memory_items(t.memory.input, rt);
    let stack_ty = t.stack_ty;
    let (name, args) = (t.name(), call_args(t));
    let from_stack = quote_spanned!(stack_ty.span()=> <#stack_ty as #in_trait>::from_stack);
    let body = invoke_body(
        t,
        quote!(let __stack: #stack_ty = #from_stack(__stack, NAME)?;),
        quote!(#name(__stack, #(#args),*)),
    );
    quote! {
        |__stack: #rt::Stack,
         __params: &#rt::ParamMap,
         __specials: &#rt::SpecialInputs|
         -> ::core::result::Result<#rt::InvokeOutput, #rt::InvokeError> {
            #body
        }
    }
}

/// `Some(|__planes, __params, __specials| ..)` calling the plane-views form that
/// `#[memory(ndarray, views = f)]` names with the same arguments after the planes, or `None`.
/// Its output is wrapped as the function's own is, so rustc holds `f` to the same return type.
pub(super) fn views_invoker(t: &Target<'_>) -> TokenStream {
    let rt = t.rt;
    let Some(views) = &t.declared.views else {
        return quote!(::core::option::Option::None);
    };
    let args = call_args(t);
    // The form's result is declared to be of the function's return type, at the name the
    // attribute gives: a form that returns something else is an error there, naming both types.
    // (Located at that name, resolved at the call site: the generated names stay visible.)
    let at = Span::call_site().located_at(views.span());
    let ret_ty = match &t.func.sig.output {
        syn::ReturnType::Type(_, ty) => quote!(#ty),
        syn::ReturnType::Default => quote!(()),
    };
    let form_call = quote_spanned!(at=> {
        let __hcs_views_out: #ret_ty = #views(__planes, #(#args),*);
        __hcs_views_out
    });
    let body = invoke_body(t, quote!(#rt::check_views(NAME, __planes)?;), form_call);
    quote! {
        ::core::option::Option::Some(
            |__planes: &[#rt::PlaneView<'_>],
             __params: &#rt::ParamMap,
             __specials: &#rt::SpecialInputs|
             -> ::core::result::Result<#rt::InvokeOutput, #rt::InvokeError> {
                #body
            },
        )
    }
}

/// The body both invokers share: refuse unknown parameters, run `prelude` (taking the stack),
/// read the arguments, enforce the checks, make the call `call` and wrap what it returns.
fn invoke_body(t: &Target<'_>, prelude: TokenStream, call_expr: TokenStream) -> TokenStream {
    let rt = t.rt;
    let (out_trait, _) = memory_items(t.memory.output, rt);
    let ret_stack = &t.returns.stack;
    let param_names: Vec<String> = t.params().map(|p| p.ident.to_string()).collect();
    let reads = argument_reads(t);
    let destructure = call(t, call_expr);
    let out_values = output_values(t);
    let into_stack = quote_spanned!(ret_stack.span()=> <#ret_stack as #out_trait>::into_stack);
    quote! {
        #rt::reject_unknown_params(NAME, __params, &[#(#param_names),*])?;
        #prelude
        #(#reads)*
        #rt::enforce_checks(NAME, __params, CHECKS)?;
        #destructure
        ::core::result::Result::Ok(#rt::InvokeOutput {
            stack: #into_stack(__hcs_main),
            special_outputs: ::std::vec![#(#out_values),*],
        })
    }
}

/// The arguments after the stack, by name, in signature order.
fn call_args<'a>(t: &'a Target<'_>) -> impl Iterator<Item = TokenStream> + 'a {
    t.args.iter().map(|arg| match arg {
        Arg::Param(Param { ident, .. }) | Arg::Special(SpecialArg { ident, .. }) => quote!(#ident),
    })
}

/// One `let <arg> = ..;` per argument after the stack, in signature order.
fn argument_reads(t: &Target<'_>) -> Vec<TokenStream> {
    let mut param_index = 0;
    t.args
        .iter()
        .map(|arg| match arg {
            Arg::Param(p) => {
                param_index += 1;
                param_read(p, param_index - 1, t.rt)
            }
            Arg::Special(s) => special_read(s),
        })
        .collect()
}

/// A parameter from the map, or its default (`CONTRACT.params[index]`) when absent.
fn param_read(p: &Param, index: usize, rt: &TokenStream) -> TokenStream {
    let (ident, ty) = (&p.ident, &p.ty);
    let read = quote_spanned!(ty.span()=> #rt::param::<#ty>);
    quote! {
        let #ident: #ty = #read(NAME, __params, &PARAMS[#index])?;
    }
}

/// A special input from the map, borrowed (`&T`) or cloned (`T`).
fn special_read(s: &SpecialArg) -> TokenStream {
    let (ident, vt) = (&s.ident, &s.value_ty);
    let key = ident.to_string();
    if s.by_ref {
        quote! { let #ident: &#vt = __specials.get::<#vt>(NAME, #key)?; }
    } else {
        quote! {
            let #ident: #vt = ::core::clone::Clone::clone(__specials.get::<#vt>(NAME, #key)?);
        }
    }
}

/// The call expression `call`, unwrapping a `Result` into an `InvokeError`, destructured into
/// `__hcs_main` (the stack) and `__hcs_out_<i>` (the special outputs).
fn call(t: &Target<'_>, call: TokenStream) -> TokenStream {
    let rt = t.rt;
    let result = if t.returns.fallible {
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
    let out_idents: Vec<Ident> = (0..t.special_outputs().count()).map(output_ident).collect();
    if out_idents.is_empty() {
        quote!(let __hcs_main = #result;)
    } else {
        quote!(let (__hcs_main, #(#out_idents),*) = #result;)
    }
}

/// The local holding special output `i` after the call.
fn output_ident(i: usize) -> Ident {
    format_ident!("__hcs_out_{}", i)
}

/// `(key, SpecialData)` per special output, in declaration order.
fn output_values(t: &Target<'_>) -> Vec<TokenStream> {
    let rt = t.rt;
    t.special_outputs()
        .enumerate()
        .map(|(i, (key, ty))| {
            let key = key.to_string();
            let ident = output_ident(i);
            let wrap = quote_spanned!(ty.span()=> #rt::SpecialData::new::<#ty>);
            quote!((#key, #wrap(#ident)))
        })
        .collect()
}
