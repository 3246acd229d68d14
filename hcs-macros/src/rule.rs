//! Value contracts: `#[param(min = .., max = .., range = .., finite, nonzero)]` on a parameter and
//! `#[check(rule, "message")]` on the function — parsing, the misuse rustc reports, and the
//! generated `ValueRule` / `ParamCheck`.

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Ident, RangeLimits, Type};

use crate::attrs::{CheckDecl, Errors};
use crate::signature::Param;

/// One bound as written, with its value when it is a numeric literal (checked at expansion).
pub struct Bound {
    pub expr: Expr,
    pub literal: Option<f64>,
}

/// The value rule of one parameter as declared.
#[derive(Default)]
pub struct RuleDecl {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    pub max_exclusive: bool,
    pub finite: bool,
    pub nonzero: bool,
    /// Where the first rule key was written, for misuse errors.
    pub span: Option<Span>,
}

impl RuleDecl {
    /// Whether any rule key was given.
    pub fn is_empty(&self) -> bool {
        self.span.is_none()
    }

    /// Parse one `#[param]` key if it is a rule key (`Ok(false)` when it is not).
    pub fn parse_key(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
        let Some(key) = meta.path.get_ident().map(Ident::to_string) else { return Ok(false) };
        let span = meta.path.span();
        match key.as_str() {
            "min" | "max" => {
                let expr: Expr = meta.value()?.parse()?;
                let slot = if key == "min" { &mut self.min } else { &mut self.max };
                if slot.is_some() {
                    return Err(meta.error(format!("`{key}` is given twice (or together with `range`)")));
                }
                *slot = Some(bound(expr));
            }
            "range" => {
                let expr: Expr = meta.value()?.parse()?;
                let Expr::Range(range) = expr else {
                    return Err(syn::Error::new_spanned(
                        expr,
                        "`range` takes a range: `a..=b`, `a..b`, `a..` or `..=b`",
                    ));
                };
                if self.min.is_some() || self.max.is_some() {
                    return Err(meta.error("`range` cannot be combined with `min` / `max`"));
                }
                if range.start.is_none() && range.end.is_none() {
                    return Err(syn::Error::new_spanned(
                        range,
                        "`range = ..` says nothing: give a start, an end or both",
                    ));
                }
                self.max_exclusive = matches!(range.limits, RangeLimits::HalfOpen(_)) && range.end.is_some();
                self.min = range.start.map(|e| bound(*e));
                self.max = range.end.map(|e| bound(*e));
            }
            "finite" | "nonzero" => {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(meta.error(format!("`{key}` is a flag: write `{key}`, not `{key} = ..`")));
                }
                let flag = if key == "finite" { &mut self.finite } else { &mut self.nonzero };
                if *flag {
                    return Err(meta.error(format!("`{key}` is given twice")));
                }
                *flag = true;
            }
            _ => return Ok(false),
        }
        self.span.get_or_insert(span);
        Ok(true)
    }

    /// The `ValueRule` initializer.
    pub fn tokens(&self, rt: &TokenStream) -> TokenStream {
        if self.is_empty() {
            return quote!(#rt::ValueRule::NONE);
        }
        let opt = |b: &Option<Bound>| match b {
            Some(Bound { literal: Some(x), expr }) => quote_spanned!(expr.span()=> ::core::option::Option::Some(#x)),
            Some(Bound { expr, .. }) => quote_spanned!(expr.span()=> ::core::option::Option::Some((#expr) as f64)),
            None => quote!(::core::option::Option::None),
        };
        let (min, max) = (opt(&self.min), opt(&self.max));
        let (max_exclusive, finite, nonzero) = (self.max_exclusive, self.finite, self.nonzero);
        quote! {
            #rt::ValueRule { min: #min, max: #max, max_exclusive: #max_exclusive, finite: #finite, nonzero: #nonzero }
        }
    }
}

fn bound(expr: Expr) -> Bound {
    let literal = literal_number(&expr);
    Bound { expr, literal }
}

/// The value of a numeric literal, possibly negated.
pub fn literal_number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) => i.base10_parse::<f64>().ok(),
        Expr::Lit(syn::ExprLit { lit: syn::Lit::Float(f), .. }) => f.base10_parse::<f64>().ok(),
        Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => literal_number(expr).map(|x| -x),
        Expr::Group(g) => literal_number(&g.expr),
        Expr::Paren(p) => literal_number(&p.expr),
        _ => None,
    }
}

/// The innermost type name under `Option<..>` / `Vec<..>`.
fn scalar_name(ty: &Type) -> Option<String> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    let name = last.ident.to_string();
    if name == "Option" || name == "Vec" {
        if let syn::PathArguments::AngleBracketed(args) = &last.arguments
            && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
        {
            return scalar_name(inner);
        }
        return None;
    }
    Some(name)
}

const INTEGERS: [&str; 12] = ["i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize"];

/// Report misuse rustc should show on the user's tokens: a rule on a non-number, `finite` on an
/// integer, an empty range, a literal default outside the range.
pub fn check_rule(rule: &RuleDecl, ty: &Type, default: Option<&Expr>, errors: &mut Errors) {
    let Some(span) = rule.span else { return };
    let scalar = scalar_name(ty);
    if let Some(name) = scalar.as_deref()
        && matches!(name, "bool" | "String" | "str")
    {
        errors.at(
            span,
            format!(
                "value rules (`min`, `max`, `range`, `finite`, `nonzero`) apply to numbers; this parameter is `{name}`"
            ),
        );
        return;
    }
    if rule.finite && scalar.as_deref().is_some_and(|n| INTEGERS.contains(&n)) {
        errors.at(span, "`finite` is for floating-point parameters: integers are always finite");
    }
    let lo = rule.min.as_ref().and_then(|b| b.literal);
    let hi = rule.max.as_ref().and_then(|b| b.literal);
    if let (Some(lo), Some(hi)) = (lo, hi)
        && (lo > hi || (rule.max_exclusive && lo >= hi))
    {
        let at = rule.max.as_ref().map_or(span, |b| b.expr.span());
        errors.at(at, format!("empty range: the minimum {lo} is not below the maximum {hi}"));
        return;
    }
    let Some(d) = default.and_then(literal_number) else { return };
    let below = lo.is_some_and(|lo| d < lo);
    let above = hi.is_some_and(|hi| if rule.max_exclusive { d >= hi } else { d > hi });
    if (below || above || (rule.nonzero && d == 0.0))
        && let Some(expr) = default
    {
        errors.spanned(expr, format!("the default {d} is outside what this parameter accepts"));
    }
}

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
