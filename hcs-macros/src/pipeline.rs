//! `pipeline! { .. }`: a pipeline written in Rust whose wiring rustc checks.
//!
//! The macro cannot see the contracts of the functions it names (they live in other items, often
//! other crates), so it generates code that makes rustc check them: parameter names resolve to the
//! type aliases in each handle's `params` module (a typo is a resolution error with a suggestion),
//! values must convert to those types, and constants evaluate the runtime's own wiring rules
//! (`hcs_plan::pipeline::wiring`) on the handles' `FUNC` contracts — special inputs without an
//! earlier producer, special inputs linked to another dict entry of the same step, dict patterns
//! without `group_by`, adjacent memory types without a conversion — failing with the runtime
//! error's text. The types of linked special data are
//! compared through the `SpecialOutputAt` / `SpecialInputAt` slots of the producer the constant
//! picked. Every check is spanned on the user's tokens.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitBool, LitStr, Path, Token, braced, bracketed, parenthesized};

use crate::runtime_path::pipeline_runtime_path;

/// The whole input.
struct PipelineInput {
    name: LitStr,
    config: Option<Expr>,
    steps: Vec<Step>,
}

struct Step {
    name: LitStr,
    func: Option<Pattern>,
    variable_components: Option<Vec<Ident>>,
    group_by: Option<Ident>,
    input_source: Option<Ident>,
    materialize: Option<LitBool>,
    merge_outputs: Vec<Path>,
    config: Option<Expr>,
}

enum Pattern {
    Call(Call),
    Chain(Vec<Pattern>),
    Dict(Span, Vec<(LitStr, Pattern)>),
}

struct Call {
    path: Path,
    params: Vec<(Ident, Expr)>,
}

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(step);
    syn::custom_keyword!(config);
}

impl Parse for PipelineInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.parse::<kw::name>()?;
        input.parse::<Token![=]>()?;
        let name: LitStr = input.parse()?;
        input.parse::<Token![;]>()?;
        let mut config = None;
        if input.peek(kw::config) {
            input.parse::<kw::config>()?;
            input.parse::<Token![=]>()?;
            config = Some(input.parse()?);
            input.parse::<Token![;]>()?;
        }
        let mut steps = Vec::new();
        while !input.is_empty() {
            steps.push(input.parse()?);
        }
        if steps.is_empty() {
            return Err(syn::Error::new(name.span(), "the pipeline has no steps: add `step \"name\" { func = ..; }`"));
        }
        Ok(Self { name, config, steps })
    }
}

const STEP_FIELDS: &str = "func, variable_components, group_by, input_source, materialize, merge_outputs, config";

impl Parse for Step {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        input.parse::<kw::step>()?;
        let name: LitStr = input.parse()?;
        let body;
        braced!(body in input);
        let mut step = Step {
            name,
            func: None,
            variable_components: None,
            group_by: None,
            input_source: None,
            materialize: None,
            merge_outputs: Vec::new(),
            config: None,
        };
        let mut seen: Vec<String> = Vec::new();
        while !body.is_empty() {
            let field: Ident = body.parse()?;
            let key = field.to_string();
            if seen.contains(&key) {
                return Err(syn::Error::new_spanned(&field, format!("`{key}` is given twice in this step")));
            }
            seen.push(key.clone());
            body.parse::<Token![=]>()?;
            match key.as_str() {
                "func" => step.func = Some(body.parse()?),
                "variable_components" => {
                    let list;
                    bracketed!(list in body);
                    step.variable_components =
                        Some(Punctuated::<Ident, Token![,]>::parse_terminated(&list)?.into_iter().collect());
                }
                "group_by" => step.group_by = Some(body.parse()?),
                "input_source" => step.input_source = Some(body.parse()?),
                "materialize" => step.materialize = Some(body.parse()?),
                "merge_outputs" => {
                    let list;
                    bracketed!(list in body);
                    step.merge_outputs = Punctuated::<Path, Token![,]>::parse_terminated(&list)?.into_iter().collect();
                }
                "config" => step.config = Some(body.parse()?),
                _ => {
                    return Err(syn::Error::new_spanned(
                        &field,
                        format!("unknown step field `{key}` (a step takes: {STEP_FIELDS})"),
                    ));
                }
            }
            body.parse::<Token![;]>()?;
        }
        if step.func.is_none() {
            return Err(syn::Error::new(step.name.span(), "this step has no `func = ..;`"));
        }
        Ok(step)
    }
}

impl Parse for Pattern {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(syn::token::Bracket) {
            let list;
            bracketed!(list in input);
            let members: Vec<Pattern> =
                Punctuated::<Pattern, Token![,]>::parse_terminated(&list)?.into_iter().collect();
            return Ok(Pattern::Chain(members));
        }
        if input.peek(syn::token::Brace) {
            let list;
            let brace = braced!(list in input);
            let mut entries = Vec::new();
            while !list.is_empty() {
                let key: LitStr = list.parse()?;
                list.parse::<Token![:]>()?;
                let value: Pattern = list.parse()?;
                entries.push((key, value));
                if list.is_empty() {
                    break;
                }
                list.parse::<Token![,]>()?;
            }
            return Ok(Pattern::Dict(brace.span.join(), entries));
        }
        let path: Path = input.parse()?;
        let mut params = Vec::new();
        if input.peek(syn::token::Paren) {
            let args;
            parenthesized!(args in input);
            while !args.is_empty() {
                let name: Ident = args.parse()?;
                args.parse::<Token![=]>()?;
                let value: Expr = args.parse()?;
                params.push((name, value));
                if args.is_empty() {
                    break;
                }
                args.parse::<Token![,]>()?;
            }
        }
        Ok(Pattern::Call(Call { path, params }))
    }
}

/// `tokens` with every span set to `span`, so an error in a generated check (a failed constant
/// names the span of its whole expression) points at the user's tokens, not the macro call.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// Entry point.
pub fn expand(input: TokenStream) -> TokenStream {
    let parsed: PipelineInput = match syn::parse2(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error(),
    };
    match pipeline_runtime_path().and_then(|rt| generate(&parsed, &rt)) {
        Ok(tokens) => tokens,
        Err(e) => e.to_compile_error(),
    }
}

/// The calls of a pattern depth first, dict entries in key order (as `FunctionPattern::calls`).
fn flatten<'a>(p: &'a Pattern, out: &mut Vec<&'a Call>) {
    match p {
        Pattern::Call(c) => out.push(c),
        Pattern::Chain(members) => members.iter().for_each(|m| flatten(m, out)),
        Pattern::Dict(_, entries) => sorted(entries).into_iter().for_each(|(_, v)| flatten(v, out)),
    }
}

/// The dict path of every call (the keys on its way through the pattern, outermost first), in
/// [`flatten`]'s order.
fn dict_paths<'a>(p: &'a Pattern, path: &mut Vec<&'a LitStr>, out: &mut Vec<Vec<&'a LitStr>>) {
    match p {
        Pattern::Call(_) => out.push(path.clone()),
        Pattern::Chain(members) => members.iter().for_each(|m| dict_paths(m, path, out)),
        Pattern::Dict(_, entries) => {
            let by_key: BTreeMap<String, (&LitStr, &Pattern)> =
                entries.iter().map(|(k, v)| (k.value(), (k, v))).collect();
            for (key, value) in by_key.into_values() {
                path.push(key);
                dict_paths(value, path, out);
                path.pop();
            }
        }
    }
}

fn sorted(entries: &[(LitStr, Pattern)]) -> Vec<(String, &Pattern)> {
    let map: BTreeMap<String, &Pattern> = entries.iter().map(|(k, v)| (k.value(), v)).collect();
    map.into_iter().collect()
}

fn has_dict(p: &Pattern) -> bool {
    match p {
        Pattern::Call(_) => false,
        Pattern::Chain(m) => m.iter().any(has_dict),
        Pattern::Dict(..) => true,
    }
}

/// The edges along which a stack flows between calls (`None` = storage), as the runtime's
/// memory-contract phase walks them: `(from, to, span of the receiving call)`.
fn edges(
    p: &Pattern,
    incoming: Vec<Option<usize>>,
    index: &mut usize,
    out: &mut Vec<(Option<usize>, Option<usize>, Span)>,
) -> Vec<Option<usize>> {
    match p {
        Pattern::Call(c) => {
            let me = *index;
            *index += 1;
            for from in incoming {
                out.push((from, Some(me), c.path.span()));
            }
            vec![Some(me)]
        }
        Pattern::Chain(members) => members.iter().fold(incoming, |inc, m| edges(m, inc, index, out)),
        Pattern::Dict(_, entries) => {
            let mut outs = Vec::new();
            for (_, v) in sorted(entries) {
                outs.extend(edges(v, incoming.clone(), index, out));
            }
            outs
        }
    }
}

fn component(ident: &Ident, rt: &TokenStream) -> syn::Result<TokenStream> {
    let variant = match ident.to_string().as_str() {
        "well" => quote!(Well),
        "site" => quote!(Site),
        "channel" => quote!(Channel),
        "z_index" => quote!(Z),
        "timepoint" => quote!(Timepoint),
        other => {
            return Err(syn::Error::new_spanned(
                ident,
                format!("unknown component `{other}` (components: well, site, channel, z_index, timepoint)"),
            ));
        }
    };
    Ok(quote_spanned!(ident.span()=> #rt::Component::#variant))
}

fn pattern_value(p: &Pattern, rt: &TokenStream) -> syn::Result<TokenStream> {
    Ok(match p {
        Pattern::Call(c) => {
            let path = &c.path;
            let mut params = Vec::new();
            for (name, value) in &c.params {
                let key = name.to_string();
                let alias = quote_spanned!(name.span()=> #path::params::#name);
                let checked = quote_spanned!(value.span()=> #rt::param_value::<#alias, _>(#value));
                // A numeric literal is checked against the parameter's value rule by rustc.
                let range_check = crate::param_rule::literal_number(value).map(|x| {
                    respan(
                        quote! {
                            const _: () = #rt::const_check_value(
                                <#path::Contract as #rt::HasContract>::CONTRACT.name,
                                <#path::Contract as #rt::HasContract>::CONTRACT.params,
                                #key,
                                #x,
                            );
                        },
                        value.span(),
                    )
                });
                params.push(quote!(.param(#key, { #range_check #checked })));
            }
            let func = quote_spanned!(path.span()=> #path::FUNC.name);
            quote!(#rt::FunctionPattern::Call(#rt::FunctionCall::new(#func) #(#params)*))
        }
        Pattern::Chain(members) => {
            let members = members.iter().map(|m| pattern_value(m, rt)).collect::<syn::Result<Vec<_>>>()?;
            quote!(#rt::FunctionPattern::Chain(::std::vec![#(#members),*]))
        }
        Pattern::Dict(span, entries) => {
            let mut seen = Vec::new();
            let mut values = Vec::new();
            for (key, value) in entries {
                if seen.contains(&key.value()) {
                    return Err(syn::Error::new_spanned(key, format!("dict key \"{}\" is given twice", key.value())));
                }
                seen.push(key.value());
                let v = pattern_value(value, rt)?;
                values.push(quote!((#key, #v)));
            }
            if values.is_empty() {
                return Err(syn::Error::new(*span, "a dict pattern needs at least one entry"));
            }
            quote!(#rt::FunctionPattern::dict([#(#values),*]))
        }
    })
}

/// The pipeline value, preceded by the items that make rustc check its wiring.
fn generate(p: &PipelineInput, rt: &TokenStream) -> syn::Result<TokenStream> {
    let all_calls: Vec<Vec<&Call>> = p.steps.iter().map(step_calls).collect();
    let mut checks = Checks::default();
    let mut step_values = Vec::new();
    let mut global = 0usize;
    for (s, (step, calls)) in p.steps.iter().zip(&all_calls).enumerate() {
        let Some(func) = &step.func else { continue };
        checks.shapes.push(step_shape(step, calls, rt));
        for (c, call) in calls.iter().enumerate() {
            checks.call_impls.push(call_at_impl(call, global + c, rt));
            checks.consts.extend(special_link_checks(call, s, c, rt));
        }
        global += calls.len();
        checks.consts.extend(entry_link_checks(func, calls, s, rt));
        checks.consts.push(grouping_check(step, func, s, rt));
        checks.consts.extend(conversion_checks(step, func, s, rt));
        checks.consts.extend(merge_output_checks(step, s, rt));
        step_values.push(step_value(step, func, rt)?);
    }
    Ok(assemble(p, global, &checks, &step_values, rt))
}

/// The items that check a pipeline's wiring, in the order they are emitted.
#[derive(Default)]
struct Checks {
    /// `CallAt<N>` for every call, numbered over all steps depth first.
    call_impls: Vec<TokenStream>,
    /// One `StepShape` per step: what the runtime's wiring rules evaluate.
    shapes: Vec<TokenStream>,
    /// The `const _` checks.
    consts: Vec<TokenStream>,
}

/// The calls of a step, depth first (none when it has no `func`).
fn step_calls(step: &Step) -> Vec<&Call> {
    let mut calls = Vec::new();
    if let Some(f) = &step.func {
        flatten(f, &mut calls);
    }
    calls
}

/// `StepShape { name, calls: &[<path>::FUNC, ..] }`.
fn step_shape(step: &Step, calls: &[&Call], rt: &TokenStream) -> TokenStream {
    let step_name = &step.name;
    let funcs: Vec<TokenStream> = calls
        .iter()
        .map(|c| {
            let path = &c.path;
            quote_spanned!(path.span()=> #path::FUNC)
        })
        .collect();
    quote!(#rt::StepShape { name: #step_name, calls: &[#(#funcs),*] })
}

/// `CallAt<n>` naming the contract marker of the pipeline's `n`-th call.
fn call_at_impl(call: &Call, n: usize, rt: &TokenStream) -> TokenStream {
    let path = &call.path;
    quote_spanned! {path.span()=>
        impl #rt::CallAt<#n> for __HcsPipeline { type Contract = #path::Contract; }
    }
}

/// For every special-input slot of call `c` of step `s`: the type its producer (picked by the
/// runtime's `const_link`) outputs is the type the call takes.
fn special_link_checks(call: &Call, s: usize, c: usize, rt: &TokenStream) -> Vec<TokenStream> {
    let path = &call.path;
    (0..crate::MAX_SPECIAL)
        .map(|slot| {
            let rt = &respan(rt.clone(), path.span());
            quote_spanned! {path.span()=>
                const _: () = {
                    const LINK: (usize, usize) = #rt::const_link(__HCS_STEPS, #s, #c, #slot);
                    #rt::same_special::<
                        <<__HcsPipeline as #rt::CallAt<{ LINK.0 }>>::Contract as #rt::SpecialOutputAt<{ LINK.1 }>>::Value,
                        <#path::Contract as #rt::SpecialInputAt<#slot>>::Value,
                    >();
                };
            }
        })
        .collect()
}

/// In a step with a dict: no special input of a call is linked to a call of the same step in a
/// dict entry the call does not run in (each group runs only the entry its `group_by` value
/// selects) — the runtime's `StepShape::const_check_entry_link`, spanned on the consumer's dict
/// entry key (on the call when it runs outside every dict).
fn entry_link_checks(func: &Pattern, calls: &[&Call], s: usize, rt: &TokenStream) -> Vec<TokenStream> {
    if !has_dict(func) {
        return Vec::new();
    }
    let mut paths = Vec::new();
    dict_paths(func, &mut Vec::new(), &mut paths);
    let path_values: Vec<TokenStream> = paths
        .iter()
        .map(|path| {
            let keys = path.iter().map(|k| k.value());
            quote!(&[#(#keys),*])
        })
        .collect();
    let mut out = Vec::new();
    for (c, (call, path)) in calls.iter().zip(&paths).enumerate() {
        let span = path.last().map_or_else(|| call.path.span(), |key| key.span());
        for slot in 0..crate::MAX_SPECIAL {
            let check = respan(
                quote! {
                    const _: () = #rt::StepShape::const_check_entry_link(__HCS_STEPS, #s, #c, #slot, &[#(#path_values),*]);
                },
                span,
            );
            out.push(check);
        }
    }
    out
}

/// A dict pattern needs `group_by` (and the grouping rules of the runtime hold).
fn grouping_check(step: &Step, func: &Pattern, s: usize, rt: &TokenStream) -> TokenStream {
    let step_name = &step.name;
    let dict = has_dict(func);
    let grouped = step.group_by.is_some();
    let rt_step = respan(rt.clone(), step_name.span());
    quote_spanned! {step_name.span()=>
        const _: () = #rt_step::const_check_grouping(__HCS_STEPS, #s, #dict, #grouped);
    }
}

/// Every edge a stack flows along (storage → calls → storage) has a memory conversion in this
/// build, spanned on the receiving call (on the step name for the edges into storage).
fn conversion_checks(step: &Step, func: &Pattern, s: usize, rt: &TokenStream) -> Vec<TokenStream> {
    let step_name = &step.name;
    let mut flow = Vec::new();
    let mut index = 0;
    let outs = edges(func, vec![None], &mut index, &mut flow);
    for from in outs {
        flow.push((from, None, step_name.span()));
    }
    let opt = |o: Option<usize>| match o {
        Some(k) => quote!(::core::option::Option::Some(#k)),
        None => quote!(::core::option::Option::None),
    };
    flow.into_iter()
        .map(|(from, to, span)| {
            let (from, to) = (respan(opt(from), span), respan(opt(to), span));
            let rt_edge = respan(rt.clone(), span);
            quote_spanned! {span=>
                const _: () = #rt_edge::const_check_conversion(__HCS_STEPS, #s, #from, #to);
            }
        })
        .collect()
}

/// Every `merge_outputs` key is a special output of the step.
fn merge_output_checks(step: &Step, s: usize, rt: &TokenStream) -> Vec<TokenStream> {
    step.merge_outputs
        .iter()
        .map(|key| {
            let rt_key = respan(rt.clone(), key.span());
            quote_spanned! {key.span()=>
                const _: () = #rt_key::const_check_merge_output(__HCS_STEPS, #s, <#key as #rt_key::SpecialKey>::NAME);
            }
        })
        .collect()
}

/// The `FunctionStep` value: `FunctionStep::new(name, pattern)` and one builder call per field.
fn step_value(step: &Step, func: &Pattern, rt: &TokenStream) -> syn::Result<TokenStream> {
    let step_name = &step.name;
    let pattern = pattern_value(func, rt)?;
    let mut value = quote!(#rt::FunctionStep::new(#step_name, #pattern));
    if let Some(components) = &step.variable_components {
        let components = components.iter().map(|c| component(c, rt)).collect::<syn::Result<Vec<_>>>()?;
        value = quote!(#value.variable_components([#(#components),*]));
    }
    if let Some(g) = &step.group_by {
        let g = component(g, rt)?;
        value = quote!(#value.group_by(#g));
    }
    if let Some(source) = &step.input_source {
        value = input_source(value, source)?;
    }
    if let Some(m) = &step.materialize
        && m.value
    {
        value = quote!(#value.materialize(::core::option::Option::None));
    }
    if !step.merge_outputs.is_empty() {
        let keys = step.merge_outputs.iter().map(|k| quote_spanned!(k.span()=> <#k as #rt::SpecialKey>::NAME));
        value = quote!(#value.merge_outputs([#(#keys),*]));
    }
    if let Some(config) = &step.config {
        value = quote!(#value.config(#config));
    }
    Ok(value)
}

/// `value` reading from the given `input_source`.
fn input_source(value: TokenStream, source: &Ident) -> syn::Result<TokenStream> {
    match source.to_string().as_str() {
        "pipeline_start" => Ok(quote!(#value.from_pipeline_start())),
        "previous_step" => Ok(value),
        other => Err(syn::Error::new_spanned(
            source,
            format!("unknown input source `{other}` (sources: previous_step, pipeline_start)"),
        )),
    }
}

/// The block the macro evaluates to: the marker type with its `CallAt` impls (`total` calls, then
/// `NoCall` and `PlateCall`), the step shapes, the checks, and the `Pipeline` value.
fn assemble(
    p: &PipelineInput,
    total: usize,
    checks: &Checks,
    step_values: &[TokenStream],
    rt: &TokenStream,
) -> TokenStream {
    let Checks { call_impls, shapes, consts } = checks;
    let (no_call, plate_call) = (total, total + 1);
    let name = &p.name;
    let mut pipeline = quote!(#rt::Pipeline::new(#name));
    if let Some(config) = &p.config {
        pipeline = quote!(#pipeline.config(#config));
    }
    quote! {
        {
            #[allow(dead_code)]
            struct __HcsPipeline;
            #(#call_impls)*
            impl #rt::CallAt<#no_call> for __HcsPipeline { type Contract = #rt::NoCall; }
            impl #rt::CallAt<#plate_call> for __HcsPipeline { type Contract = #rt::PlateCall; }
            const __HCS_STEPS: &[#rt::StepShape<'static>] = &[#(#shapes),*];
            #(#consts)*
            #pipeline #(.step(#step_values))*
        }
    }
}
