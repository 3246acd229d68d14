//! Reading a function signature: the stack argument, tunable parameters, special inputs, and the
//! return value (stack + special outputs, optionally inside a `Result`).

use syn::{Expr, FnArg, Ident, ItemFn, LitStr, Pat, PatType, ReturnType, Type};

use crate::attrs::{Declared, Errors};

/// A tunable parameter.
pub struct Param {
    pub ident: Ident,
    pub ty: Type,
    pub default: Option<Expr>,
    pub doc: String,
    pub rule: Box<crate::param_rule::RuleDecl>,
}

/// How a special input is passed.
pub struct SpecialArg {
    pub ident: Ident,
    /// The value type (`T` for both `&T` and `T`).
    pub value_ty: Type,
    pub by_ref: bool,
}

/// One argument, in signature order.
pub enum Arg {
    Param(Param),
    Special(SpecialArg),
}

/// The return value.
pub struct Returns {
    /// Whether the function returns `Result<_, _>`.
    pub fallible: bool,
    /// The stack type (the whole Ok type, or its first element when there are special outputs).
    pub stack: Type,
    /// The special output types, matching the declared keys by position.
    pub outputs: Vec<Type>,
}

/// The analysed signature.
pub struct Signature {
    pub stack_ty: Type,
    pub args: Vec<Arg>,
    pub returns: Option<Returns>,
}

/// Check the item's shape and read its signature. Strips `#[param(..)]` from the arguments.
pub fn analyse(item: &mut ItemFn, declared: &Declared, errors: &mut Errors) -> Option<Signature> {
    let mut shape_ok = check_shape(&item.sig, errors);
    if reject_method(&item.sig, errors) {
        return None;
    }
    check_duplicates(declared.outputs.iter().map(|o| &o.key), "special output", errors);
    check_duplicates(declared.inputs.iter(), "special input", errors);

    let mut inputs = item.sig.inputs.iter_mut();
    let stack_ty = read_stack(inputs.next(), &item.sig.ident, errors)?;
    let mut args = Vec::new();
    for arg in inputs {
        let FnArg::Typed(arg) = arg else { continue };
        match read_arg(arg, declared, errors) {
            Some(arg) => args.push(arg),
            None => shape_ok = false,
        }
    }
    report_missing_inputs(declared, &args, errors);

    let returns = analyse_return(&item.sig.output, item.sig.paren_token.span.close(), declared, errors);
    if !shape_ok {
        return None;
    }
    Some(Signature { stack_ty, args, returns })
}

/// Report the qualifiers a pipeline function cannot have (async, unsafe, ABI, generics,
/// variadic); whether there were none.
fn check_shape(sig: &syn::Signature, errors: &mut Errors) -> bool {
    let mut shape_ok = true;
    if let Some(a) = &sig.asyncness {
        errors.spanned(a, "an `async fn` cannot be a pipeline function: hcs calls functions synchronously on its worker pool; make it a plain `fn`");
        shape_ok = false;
    }
    if let Some(u) = &sig.unsafety {
        errors
            .spanned(u, "an `unsafe fn` cannot be a pipeline function: the pipeline cannot uphold its safety contract");
        shape_ok = false;
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(abi, "a pipeline function must use the Rust ABI");
        shape_ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            "a pipeline function cannot be generic: the registry needs one concrete signature per name; write one function per type",
        );
        shape_ok = false;
    }
    if let Some(v) = &sig.variadic {
        errors.spanned(v, "a pipeline function cannot be variadic");
        shape_ok = false;
    }
    shape_ok
}

/// Report a `self` receiver; whether there was one (then nothing more can be read).
fn reject_method(sig: &syn::Signature, errors: &mut Errors) -> bool {
    let Some(FnArg::Receiver(r)) = sig.inputs.first() else {
        return false;
    };
    errors.spanned(
        r,
        "a method with `self` cannot be a pipeline function: hcs functions are free `fn`s, stateless between calls; move it out of the `impl` block",
    );
    true
}

/// The type of the first argument, the image stack (`None` when there is none, reported on the
/// function name).
fn read_stack(first: Option<&mut FnArg>, fn_name: &Ident, errors: &mut Errors) -> Option<Type> {
    let Some(FnArg::Typed(stack)) = first else {
        errors.spanned(
            fn_name,
            "a pipeline function takes the image stack as its first argument, e.g. `stack: ndarray::Array3<f32>`",
        );
        return None;
    };
    if let Some(attr) = take_param_attr(&mut stack.attrs) {
        errors.spanned(attr, "#[param] belongs on tunable parameters, not on the image stack");
    }
    Some((*stack.ty).clone())
}

/// One argument after the stack: a special input when `#[special_inputs]` names it, else a
/// tunable parameter. `None` (reported) when it is not a plain name.
fn read_arg(arg: &mut PatType, declared: &Declared, errors: &mut Errors) -> Option<Arg> {
    let param_attr = take_param_attr(&mut arg.attrs);
    let Pat::Ident(pat) = &*arg.pat else {
        errors.spanned(&arg.pat, "pipeline parameters need a plain name (it is their key in pipeline files)");
        return None;
    };
    let ident = pat.ident.clone();
    if !declared.inputs.contains(&ident) {
        let (default, doc, rule) = match param_attr {
            Some(attr) => parse_param_attr(&attr, errors),
            None => (None, String::new(), Box::default()),
        };
        crate::param_rule::check_rule(&rule, &arg.ty, default.as_ref(), errors);
        return Some(Arg::Param(Param { ident, ty: (*arg.ty).clone(), default, doc, rule }));
    }
    if let Some(attr) = &param_attr {
        errors.spanned(attr, format!("`{ident}` is a special input; #[param] is only for tunable parameters"));
    }
    let (value_ty, by_ref) = match &*arg.ty {
        Type::Reference(r) if r.mutability.is_none() => ((*r.elem).clone(), true),
        Type::Reference(r) => {
            errors.spanned(r, "a special input is shared between consumers: take it as `&T` or `T`, not `&mut T`");
            ((*r.elem).clone(), true)
        }
        other => (other.clone(), false),
    };
    Some(Arg::Special(SpecialArg { ident, value_ty, by_ref }))
}

/// Report each declared special input that no argument of the function takes, suggesting a
/// parameter with a close name.
fn report_missing_inputs(declared: &Declared, args: &[Arg], errors: &mut Errors) {
    let taken = |key: &Ident| args.iter().any(|a| matches!(a, Arg::Special(s) if s.ident == *key));
    for key in declared.inputs.iter().filter(|key| !taken(key)) {
        let names: Vec<String> = args
            .iter()
            .filter_map(|a| match a {
                Arg::Param(p) => Some(p.ident.to_string()),
                Arg::Special(_) => None,
            })
            .collect();
        let hint = names
            .iter()
            .map(|n| (strsim::damerau_levenshtein(&key.to_string(), n), n))
            .min()
            .filter(|(d, _)| *d <= 2)
            .map(|(_, n)| format!("; did you mean `{n}`?"))
            .unwrap_or_default();
        errors.spanned(
            key,
            format!(
                "#[special_inputs({key})]: the function has no parameter `{key}` (a special input arrives as the parameter of the same name){hint}"
            ),
        );
    }
}

fn check_duplicates<'a>(keys: impl Iterator<Item = &'a Ident>, what: &str, errors: &mut Errors) {
    let mut seen: Vec<&Ident> = Vec::new();
    for key in keys {
        if seen.contains(&key) {
            errors.spanned(key, format!("{what} `{key}` is declared twice; each key names one value"));
        } else {
            seen.push(key);
        }
    }
}

fn analyse_return(
    output: &ReturnType,
    close_paren: proc_macro2::Span,
    declared: &Declared,
    errors: &mut Errors,
) -> Option<Returns> {
    let ReturnType::Type(_, ty) = output else {
        errors.at(close_paren, "a pipeline function must return its output stack (e.g. `-> ndarray::Array3<f32>`)");
        return None;
    };
    let (fallible, ok_ty) = match result_ok_type(ty) {
        Some(ok) => (true, ok),
        None => (false, (**ty).clone()),
    };
    let k = declared.outputs.len();
    if k == 0 {
        return Some(Returns { fallible, stack: ok_ty, outputs: Vec::new() });
    }
    let keys: Vec<String> = declared.outputs.iter().map(|o| o.key.to_string()).collect();
    let expected =
        format!("({})", std::iter::once("stack".to_owned()).chain(keys.iter().cloned()).collect::<Vec<_>>().join(", "));
    match &ok_ty {
        Type::Tuple(t) if t.elems.len() == k + 1 => {
            let mut elems = t.elems.iter().cloned();
            let stack = elems.next()?;
            Some(Returns { fallible, stack, outputs: elems.collect() })
        }
        Type::Tuple(t) => {
            errors.spanned(
                &ok_ty,
                format!(
                    "#[special_outputs({})] declares {k} special output(s), so the function must return a {}-tuple `{expected}`; this tuple has {} element(s)",
                    keys.join(", "),
                    k + 1,
                    t.elems.len()
                ),
            );
            None
        }
        other => {
            errors.spanned(
                other,
                format!(
                    "#[special_outputs({})] declares {k} special output(s), so the function must return a tuple `{expected}`",
                    keys.join(", ")
                ),
            );
            None
        }
    }
}

/// `Result<T, E>` / `Result<T>` (any path ending in `Result`) → `T`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

fn take_param_attr(attrs: &mut Vec<syn::Attribute>) -> Option<syn::Attribute> {
    let pos = attrs.iter().position(|a| a.path().is_ident("param"))?;
    Some(attrs.remove(pos))
}

fn parse_param_attr(
    attr: &syn::Attribute,
    errors: &mut Errors,
) -> (Option<Expr>, String, Box<crate::param_rule::RuleDecl>) {
    let mut default = None;
    let mut doc = String::new();
    let mut rule = Box::<crate::param_rule::RuleDecl>::default();
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("default") {
            default = Some(meta.value()?.parse::<Expr>()?);
            Ok(())
        } else if meta.path.is_ident("doc") {
            doc = meta.value()?.parse::<LitStr>()?.value();
            Ok(())
        } else if rule.parse_key(&meta)? {
            Ok(())
        } else {
            Err(meta.error(
                "unknown #[param] key; expected `default = <value>`, `doc = \"..\"`, `min = ..`, `max = ..`, `range = a..=b`, `finite`, `nonzero` or `sample`",
            ))
        }
    });
    if let Err(e) = result {
        errors.push(e);
    }
    (default, doc, rule)
}
