//! `#[memory(..)]` and its sibling attributes: the function is emitted unchanged and, beside it,
//! one file per generated output:
//!
//! - [`handle`]: the same-name handle module (`FUNC`, `params::`, `inputs::` / `outputs::` typed
//!   keys) and the `SpecialInputAt` / `SpecialOutputAt` slot impls `pipeline!` compares by;
//! - [`contract`]: the static `FunctionContract`, as the `HasContract` impl of the handle's marker;
//! - [`invoker`]: the type-erased `invoke` closure inside that contract;
//! - [`register`]: the `linkme` registration in the runtime's function registry.
//!
//! This file checks the attributes and the item, then orchestrates the generators.

mod contract;
mod handle;
mod invoker;
mod register;

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{Ident, Item, ItemFn, Type};

use crate::attrs::{AttrKind, Declared, Errors, Memory, MemorySpec};
use crate::runtime_path::runtime_path;
use crate::signature::{self, Arg, Param, Returns, Signature, SpecialArg};

/// Entry point shared by the four attributes.
pub fn expand(kind: AttrKind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut declared = Declared::default();
    declared.add(kind, attr, Span::call_site(), &mut errors);

    let mut func = match parse_fn(kind, item) {
        Ok(func) => func,
        Err(tokens) => return tokens,
    };
    absorb_siblings(&mut func, &mut declared, &mut errors);
    check_declared(&declared, &mut errors);
    let sig = signature::analyse(&mut func, &declared, &mut errors);
    let rt = runtime_path().map_err(|e| errors.push(e)).ok();
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

/// The annotated item as a free `fn`; otherwise (`Err`) the tokens to emit instead: the error and
/// the item, without hcs attributes so they are not expanded again.
fn parse_fn(kind: AttrKind, item: TokenStream) -> Result<ItemFn, TokenStream> {
    let parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            let e = e.to_compile_error();
            return Err(quote!(#e #item));
        }
    };
    match parsed {
        Item::Fn(func) => Ok(func),
        mut other => {
            let what = item_kind(&other);
            strip_hcs_attrs(&mut other);
            let message = format!(
                "#[{}] goes on a free `fn`, not on {what}: it declares the contract of a processing function",
                kind.name()
            );
            let e = syn::Error::new(Span::call_site(), message).to_compile_error();
            Err(quote!(#e #other))
        }
    }
}

/// Record the sibling hcs attributes on the function and remove them from it, so the contract is
/// generated exactly once whichever attribute rustc expands first.
fn absorb_siblings(func: &mut ItemFn, declared: &mut Declared, errors: &mut Errors) {
    func.attrs.retain(|a| match AttrKind::of(a) {
        Some(k) => {
            declared.add_sibling(k, a, errors);
            false
        }
        None => true,
    });
}

/// Checks across the attributes: `#[memory]` is present, and at most `MAX_SPECIAL` special
/// inputs and outputs are declared.
fn check_declared(declared: &Declared, errors: &mut Errors) {
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

/// What every generator reads: the checked function, what its attributes declare, and the path
/// of the runtime.
struct Target<'a> {
    func: &'a ItemFn,
    declared: &'a Declared,
    memory: MemorySpec,
    stack_ty: &'a Type,
    args: &'a [Arg],
    returns: &'a Returns,
    rt: &'a TokenStream,
}

impl Target<'_> {
    /// The function's name, which is also the name of its handle module.
    fn name(&self) -> &Ident {
        &self.func.sig.ident
    }

    /// The tunable parameters, in signature order.
    fn params(&self) -> impl Iterator<Item = &Param> {
        self.args.iter().filter_map(|arg| match arg {
            Arg::Param(p) => Some(p),
            Arg::Special(_) => None,
        })
    }

    /// The special inputs as arguments, in the order the attribute declares them.
    fn special_inputs(&self) -> impl Iterator<Item = &SpecialArg> {
        self.declared.inputs.iter().filter_map(|key| {
            self.args.iter().find_map(|arg| match arg {
                Arg::Special(s) if s.ident == *key => Some(s),
                _ => None,
            })
        })
    }

    /// The special outputs as `(key, value type)`, in declaration order.
    fn special_outputs(&self) -> impl Iterator<Item = (&Ident, &Type)> {
        self.declared.outputs.iter().zip(&self.returns.outputs).map(|(decl, ty)| (&decl.key, ty))
    }
}

/// Everything is generated inside the `CONTRACT` initializer (the invoker, defaults and
/// materializers are closures there), so rustc type-checks it as one body and reports a failed
/// bound on the user's type once, not once per use.
fn generate(func: &ItemFn, declared: &Declared, memory: MemorySpec, sig: Signature, rt: &TokenStream) -> TokenStream {
    let Some(returns) = &sig.returns else {
        return quote!(#func);
    };
    let target = Target { func, declared, memory, stack_ty: &sig.stack_ty, args: &sig.args, returns, rt };
    let handle = handle::handle_module(&target);
    let slot_impls = handle::slot_impls(&target);
    let contract = contract::contract_impl(&target, &invoker::invoker(&target), &invoker::views_invoker(&target));
    let registration = register::registration(&target);
    let generated = quote! {
        #handle

        const _: () = {
            #slot_impls
            #contract
            #registration
        };
    };
    let gated = gate(memory, rt, generated);
    quote! {
        #func
        #gated
    }
}

/// The stack trait of a memory type and the variant name of `MemoryType`.
fn memory_items(memory: Memory, rt: &TokenStream) -> (TokenStream, TokenStream) {
    match memory {
        Memory::Ndarray => (quote!(#rt::NdarrayStackType), quote!(Ndarray)),
        Memory::Torch => (quote!(#rt::TorchStackType), quote!(Torch)),
        Memory::Cuda => (quote!(#rt::CudaStackType), quote!(Cuda)),
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
