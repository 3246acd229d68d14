//! Expressions over a function's parameters and `image`: `#[check(rule, "message")]`,
//! `#[peak_memory(bytes)]` and `#[output_shape((height, width, planes))]` — what they read, the
//! misuse rustc reports, and the generated `ParamCheck` / `MemoryEstimate` / `OutputShape`.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Ident};

use crate::attrs::{CheckDecl, Errors};
use crate::signature::Param;

/// What an expression over the parameters reads: the `let`s binding them (from `__params`, with
/// defaults from `PARAMS`), their names, and whether it reads `image`. Misuse is reported.
struct Reads {
    lets: Vec<TokenStream>,
    names: Vec<String>,
    needs_image: bool,
}

fn reads(
    expr: &Expr,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    what: &str,
    errors: &mut Errors,
) -> Reads {
    let mut named = BTreeSet::new();
    collect_idents(expr.to_token_stream(), &mut named);
    let mut reads_special = false;
    for special in specials.iter().filter(|s| named.contains(&s.to_string())) {
        reads_special = true;
        errors.spanned(
            expr,
            format!("`{special}` is a special input, known only at run time; {what} read parameters and `image`"),
        );
    }
    let needs_image = named.contains("image");
    let used: Vec<(usize, &&Param)> =
        params.iter().enumerate().filter(|(_, p)| named.contains(&p.ident.to_string())).collect();
    if used.is_empty() && !needs_image && !reads_special {
        errors.spanned(
            expr,
            format!(
                "this expression reads no parameter of the function (nor `image`); {what} read parameters and `image`"
            ),
        );
    }
    let names = used.iter().map(|(_, p)| p.ident.to_string()).collect();
    let lets = used
        .iter()
        .map(|(i, p)| {
            let (ident, ty, key) = (&p.ident, &p.ty, p.ident.to_string());
            quote! {
                #[allow(unused_variables)]
                let #ident: #ty = #rt::rule_arg::<#ty>(__params, #key, PARAMS[#i].default)?;
            }
        })
        .collect();
    Reads { lets, names, needs_image }
}

/// The `ParamCheck` initializer of one `#[check]`. `params` are the function's parameters in
/// signature order; their specs are `PARAMS[i]` in the contract initializer.
pub fn check_spec(
    decl: &CheckDecl,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let rule = &decl.rule;
    let Reads { lets, names, needs_image } = reads(rule, params, specials, rt, "#[check] rules", errors);
    let image = bind_image(needs_image, rt, quote!(#rt::CheckOutcome::NeedsImage));
    let text = rule_text(rule);
    let message = decl.message.as_ref().map(syn::LitStr::value).unwrap_or_default();
    let test = quote_spanned!(rule.span()=> if #rule { #rt::CheckOutcome::Holds } else { #rt::CheckOutcome::Fails });
    quote! {
        #rt::ParamCheck {
            rule: #text,
            message: #message,
            params: &[#(#names),*],
            needs_image: #needs_image,
            eval: |__params: &#rt::ParamMap, __image: ::core::option::Option<&#rt::ImageGeometry>|
                -> ::core::result::Result<#rt::CheckOutcome, #rt::ParamError> {
                #(#lets)*
                #image
                ::core::result::Result::Ok(#test)
            },
        }
    }
}

/// The `MemoryEstimate` initializer of `#[peak_memory(expr)]`, or `None`.
pub fn estimate_spec(
    expr: Option<&Expr>,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let Some(expr) = expr else { return quote!(::core::option::Option::None) };
    let Reads { lets, names, needs_image } = reads(expr, params, specials, rt, "#[peak_memory] estimates", errors);
    let image = bind_image(needs_image, rt, quote!(::core::option::Option::None));
    let text = rule_text(expr);
    let value = quote_spanned!(expr.span()=> #rt::AsBytes::to_bytes(#expr));
    quote! {
        ::core::option::Option::Some(#rt::MemoryEstimate {
            expr: #text,
            params: &[#(#names),*],
            eval: |__params: &#rt::ParamMap, __image: ::core::option::Option<&#rt::ImageGeometry>|
                -> ::core::result::Result<::core::option::Option<f64>, #rt::ParamError> {
                #(#lets)*
                #image
                ::core::result::Result::Ok(::core::option::Option::Some(#value))
            },
        })
    }
}

/// The `OutputShape` initializer of `#[output_shape(expr)]`, or `None`. Only a function that
/// changes the size (`xy = any` or `planes = any`) may declare one.
pub fn shape_spec(
    expr: Option<&Expr>,
    changes_size: bool,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let Some(expr) = expr else { return quote!(::core::option::Option::None) };
    if !changes_size {
        errors.spanned(
            expr,
            "#[output_shape] describes a function that changes the image size: declare it with `#[memory(.., xy = any)]` or `planes = any`",
        );
    }
    let Reads { lets, names, needs_image } = reads(expr, params, specials, rt, "#[output_shape] expressions", errors);
    let image = bind_image(needs_image, rt, quote!(::core::option::Option::None));
    let text = rule_text(expr);
    let value = quote_spanned!(expr.span()=> {
        let __shape: (usize, usize, ::core::option::Option<usize>) = #expr;
        __shape
    });
    quote! {
        ::core::option::Option::Some(#rt::OutputShape {
            expr: #text,
            params: &[#(#names),*],
            eval: |__params: &#rt::ParamMap, __image: ::core::option::Option<&#rt::ImageGeometry>|
                -> ::core::result::Result<::core::option::Option<#rt::ImageGeometry>, #rt::ParamError> {
                #(#lets)*
                #image
                ::core::result::Result::Ok(::core::option::Option::Some(#rt::output_geometry(#value, __image)))
            },
        })
    }
}

/// The `PixelScale` initializer of `#[pixel_scale(expr)]`, or `None`. Only a function that
/// changes the plane size (`xy = any`) may declare one.
pub fn scale_spec(
    expr: Option<&Expr>,
    changes_xy: bool,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let attr = GeometryAttr { name: "pixel_scale", rule: "PixelScale", ty: quote!(f64) };
    geometry_spec(&attr, expr, changes_xy, params, specials, rt, errors)
}

/// The `PixelOrigin` initializer of `#[pixel_origin((y, x))]`, or `None`. Only a function that
/// changes the plane size (`xy = any`) may declare one.
pub fn origin_spec(
    expr: Option<&Expr>,
    changes_xy: bool,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let attr = GeometryAttr { name: "pixel_origin", rule: "PixelOrigin", ty: quote!((f64, f64)) };
    geometry_spec(&attr, expr, changes_xy, params, specials, rt, errors)
}

/// `tokens` with every token (inside groups too) given `span`.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(g) = &tree {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tree = proc_macro2::TokenTree::Group(group);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// An attribute saying how a resizing function changes the pixel grid: its name, the runtime
/// rule struct it becomes, and the Rust type its expression evaluates to.
struct GeometryAttr {
    name: &'static str,
    rule: &'static str,
    ty: TokenStream,
}

/// The `Option<rule>` initializer of a [`GeometryAttr`]: an `eval` fn over the parameters and
/// `image`, or `None` when the attribute is absent.
fn geometry_spec(
    attr: &GeometryAttr,
    expr: Option<&Expr>,
    changes_xy: bool,
    params: &[&Param],
    specials: &[&Ident],
    rt: &TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let Some(expr) = expr else { return quote!(::core::option::Option::None) };
    let name = attr.name;
    if !changes_xy {
        errors.spanned(
            expr,
            format!(
                "#[{name}] describes a function that changes the plane size: declare it with `#[memory(.., xy = any)]`"
            ),
        );
    }
    let context = format!("#[{name}] expressions");
    let Reads { lets, names, needs_image } = reads(expr, params, specials, rt, &context, errors);
    let image = bind_image(needs_image, rt, quote!(::core::option::Option::None));
    let text = rule_text(expr);
    let ty = &attr.ty;
    let rule = quote::format_ident!("{}", attr.rule);
    // The binding's type carries the expression's span, so a type error points there alone.
    let bound = respan(ty.clone(), expr.span());
    let value = quote_spanned!(expr.span()=> {
        let __value: #bound = #expr;
        __value
    });
    quote! {
        ::core::option::Option::Some(#rt::#rule {
            expr: #text,
            params: &[#(#names),*],
            eval: |__params: &#rt::ParamMap, __image: ::core::option::Option<&#rt::ImageGeometry>|
                -> ::core::result::Result<::core::option::Option<#ty>, #rt::ParamError> {
                #(#lets)*
                #image
                ::core::result::Result::Ok(::core::option::Option::Some(#value))
            },
        })
    }
}

/// `let image: &ImageGeometry = ..;` returning `Ok(unknown)` when the geometry is not given.
fn bind_image(needs_image: bool, rt: &TokenStream, unknown: TokenStream) -> TokenStream {
    if needs_image {
        quote! {
            let ::core::option::Option::Some(image) = __image else {
                return ::core::result::Result::Ok(#unknown);
            };
            let image: &#rt::ImageGeometry = image;
        }
    } else {
        quote!(let _ = __image;)
    }
}

fn collect_idents(tokens: TokenStream, out: &mut BTreeSet<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => collect_idents(g.stream(), out),
            _ => {}
        }
    }
}

/// The rule as text, its tokens tidied up (`image.width`, not `image . width`).
fn rule_text(rule: &Expr) -> String {
    let text = rule.to_token_stream().to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    text.replace(" . ", ".").replace("( ", "(").replace(" )", ")")
}
