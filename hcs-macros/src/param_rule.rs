//! Value rules of one parameter: `#[param(min = .., max = .., range = .., finite, nonzero, sample)]` —
//! parsing, the misuse rustc reports, and the generated `ValueRule`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, Ident, RangeLimits, Type};

use crate::attrs::Errors;

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
    /// `sample`: the value is an image sample value, weighed against the storage range.
    pub sample: bool,
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
            "finite" | "nonzero" | "sample" => {
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(meta.error(format!("`{key}` is a flag: write `{key}`, not `{key} = ..`")));
                }
                let flag = match key.as_str() {
                    "finite" => &mut self.finite,
                    "nonzero" => &mut self.nonzero,
                    _ => &mut self.sample,
                };
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
        let (max_exclusive, finite, nonzero, sample) = (self.max_exclusive, self.finite, self.nonzero, self.sample);
        quote! {
            #rt::ValueRule {
                min: #min, max: #max, max_exclusive: #max_exclusive, finite: #finite, nonzero: #nonzero, sample: #sample
            }
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
                "value rules (`min`, `max`, `range`, `finite`, `nonzero`, `sample`) apply to numbers; this parameter is `{name}`"
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
