//! Parsing the hcs attributes: the invoked one and the siblings it absorbs.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, Meta, Path, Token};

/// The hcs attributes on a function.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttrKind {
    Memory,
    SpecialOutputs,
    SpecialInputs,
    ChainBreaker,
    Check,
    PeakMemory,
    OutputShape,
    PixelScale,
    PixelOrigin,
}

impl AttrKind {
    pub fn name(self) -> &'static str {
        match self {
            AttrKind::Memory => "memory",
            AttrKind::SpecialOutputs => "special_outputs",
            AttrKind::SpecialInputs => "special_inputs",
            AttrKind::ChainBreaker => "chain_breaker",
            AttrKind::Check => "check",
            AttrKind::PeakMemory => "peak_memory",
            AttrKind::OutputShape => "output_shape",
            AttrKind::PixelScale => "pixel_scale",
            AttrKind::PixelOrigin => "pixel_origin",
        }
    }

    /// Recognise a sibling attribute by the last segment of its path (`memory`, `hcs::memory`).
    pub fn of(attr: &Attribute) -> Option<AttrKind> {
        let last = attr.path().segments.last()?.ident.to_string();
        [
            AttrKind::Memory,
            AttrKind::SpecialOutputs,
            AttrKind::SpecialInputs,
            AttrKind::ChainBreaker,
            AttrKind::Check,
            AttrKind::PeakMemory,
            AttrKind::OutputShape,
            AttrKind::PixelScale,
            AttrKind::PixelOrigin,
        ]
        .into_iter()
        .find(|k| k.name() == last)
    }
}

/// A memory type as spelled in `#[memory(..)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Memory {
    Ndarray,
    Torch,
    Cuda,
}

const MEMORY_NAMES: [&str; 3] = ["ndarray", "torch", "cuda"];

impl Memory {
    fn parse(ident: &Ident) -> syn::Result<Memory> {
        match ident.to_string().as_str() {
            "ndarray" => Ok(Memory::Ndarray),
            "torch" => Ok(Memory::Torch),
            "cuda" => Ok(Memory::Cuda),
            other => {
                let closest = MEMORY_NAMES
                    .iter()
                    .map(|n| (strsim::damerau_levenshtein(other, n), *n))
                    .min()
                    .filter(|(d, _)| *d <= 2);
                let hint = match closest {
                    Some((_, n)) => format!("did you mean `{n}`? "),
                    None => String::new(),
                };
                Err(syn::Error::new(
                    ident.span(),
                    format!("unknown memory type `{other}`; {hint}expected one of: `ndarray`, `torch`, `cuda`"),
                ))
            }
        }
    }
}

/// How many planes a call returns, as spelled in `#[memory(.., planes = ..)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Planes {
    Same,
    One,
    Any,
}

impl Planes {
    fn parse(ident: &Ident) -> syn::Result<Planes> {
        match ident.to_string().as_str() {
            "same" => Ok(Planes::Same),
            "one" => Ok(Planes::One),
            "any" => Ok(Planes::Any),
            other => Err(syn::Error::new(
                ident.span(),
                format!("unknown `planes = {other}`; expected `same` (the default), `one` or `any`"),
            )),
        }
    }

    /// The `PlaneCount` variant name in hcs-core.
    pub fn variant(self) -> &'static str {
        match self {
            Planes::Same => "Same",
            Planes::One => "One",
            Planes::Any => "Any",
        }
    }
}

/// Whether planes keep their size, as spelled in `#[memory(.., xy = ..)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Xy {
    Same,
    Any,
}

impl Xy {
    fn parse(ident: &Ident) -> syn::Result<Xy> {
        match ident.to_string().as_str() {
            "same" => Ok(Xy::Same),
            "any" => Ok(Xy::Any),
            other => Err(syn::Error::new(
                ident.span(),
                format!("unknown `xy = {other}`; expected `same` (the default: planes keep their size) or `any`"),
            )),
        }
    }

    /// The `PlaneShape` variant name in hcs-core.
    pub fn variant(self) -> &'static str {
        match self {
            Xy::Same => "Same",
            Xy::Any => "Any",
        }
    }
}

/// The declared input and output memory types, the plane count and plane size of the output.
#[derive(Clone, Copy, Debug)]
pub struct MemorySpec {
    pub input: Memory,
    pub output: Memory,
    pub planes: Planes,
    pub xy: Xy,
}

/// One `#[check(rule, "message")]`.
pub struct CheckDecl {
    pub rule: syn::Expr,
    pub message: Option<syn::LitStr>,
}

impl syn::parse::Parse for CheckDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<CheckDecl> {
        if input.is_empty() {
            return Err(input.error(
                "#[check(..)] needs a rule over the parameters, e.g. #[check(low < high, \"low must be below high\")]",
            ));
        }
        let rule: syn::Expr = input.parse()?;
        let message = if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() { None } else { Some(input.parse::<syn::LitStr>()?) }
        } else {
            None
        };
        if !input.is_empty() {
            return Err(input.error("#[check(..)] takes a rule and an optional message string"));
        }
        Ok(CheckDecl { rule, message })
    }
}

/// One `key` or `key = materializer` entry of `#[special_outputs(..)]`.
pub struct OutputDecl {
    pub key: Ident,
    pub materializer: Option<Path>,
}

/// Everything the hcs attributes on one function say.
#[derive(Default)]
pub struct Declared {
    /// `Some` when a valid `#[memory]` was found.
    pub memory: Option<MemorySpec>,
    /// Whether a `#[memory]` attribute was present at all (valid or not).
    pub memory_present: bool,
    /// `#[memory(ndarray, views = f)]`: the function's plane-views form.
    pub views: Option<Ident>,
    pub outputs: Vec<OutputDecl>,
    pub inputs: Vec<Ident>,
    pub chain_breaker: bool,
    pub checks: Vec<CheckDecl>,
    pub peak_memory: Option<syn::Expr>,
    pub output_shape: Option<syn::Expr>,
    pub pixel_scale: Option<syn::Expr>,
    pub pixel_origin: Option<syn::Expr>,
    /// The first non-memory hcs attribute, for "needs #[memory]" errors.
    pub first_other: Option<(AttrKind, Span)>,
}

/// Collects errors so every problem is reported at once.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(e) => e.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn spanned(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub fn take(self) -> Option<syn::Error> {
        self.0
    }
}

impl Declared {
    /// Record one attribute (the invoked one, given as `kind` + `tokens`, or a sibling).
    pub fn add(&mut self, kind: AttrKind, tokens: TokenStream, span: Span, errors: &mut Errors) {
        if kind != AttrKind::Memory && self.first_other.is_none() {
            self.first_other = Some((kind, span));
        }
        let result = match kind {
            AttrKind::Memory => {
                self.memory_present = true;
                parse_memory.parse2(tokens).map(|(m, views)| {
                    self.memory = Some(m);
                    self.views = views;
                })
            }
            AttrKind::SpecialOutputs => parse_outputs.parse2(tokens).map(|o| self.outputs.extend(o)),
            AttrKind::SpecialInputs => {
                Punctuated::<Ident, Token![,]>::parse_terminated.parse2(tokens).map(|i| self.inputs.extend(i))
            }
            AttrKind::Check => syn::parse2::<CheckDecl>(tokens).map(|c| self.checks.push(c)),
            AttrKind::PeakMemory => one_expr(
                &mut self.peak_memory,
                tokens,
                "#[peak_memory(..)]",
                "the bytes one call needs, over the parameters and `image`",
            ),
            AttrKind::OutputShape => one_expr(
                &mut self.output_shape,
                tokens,
                "#[output_shape(..)]",
                "`(height, width, planes)` of what a call returns, over the parameters and `image`",
            ),
            AttrKind::PixelScale => one_expr(
                &mut self.pixel_scale,
                tokens,
                "#[pixel_scale(..)]",
                "how many input pixels one output pixel spans (an `f64`), over the parameters and `image`",
            ),
            AttrKind::PixelOrigin => one_expr(
                &mut self.pixel_origin,
                tokens,
                "#[pixel_origin(..)]",
                "where the output's first pixel lies in the input, `(y, x)` in input pixels (`(f64, f64)`), over the parameters and `image`",
            ),
            AttrKind::ChainBreaker => {
                if tokens.is_empty() {
                    self.chain_breaker = true;
                    Ok(())
                } else {
                    Err(syn::Error::new_spanned(
                        tokens,
                        "#[chain_breaker] takes no arguments: it only marks that the next step reads the pipeline's original input",
                    ))
                }
            }
        };
        if let Err(e) = result {
            errors.push(e);
        }
    }

    /// Record a sibling attribute found on the item.
    pub fn add_sibling(&mut self, kind: AttrKind, attr: &Attribute, errors: &mut Errors) {
        let tokens = match &attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens.clone(),
            Meta::NameValue(nv) => {
                errors.spanned(nv, format!("write `#[{}(..)]`, not `#[{} = ..]`", kind.name(), kind.name()));
                return;
            }
        };
        if let (AttrKind::ChainBreaker, Meta::List(list)) = (kind, &attr.meta) {
            errors.spanned(
                list,
                "#[chain_breaker] takes no arguments: it only marks that the next step reads the pipeline's original input",
            );
            return;
        }
        self.add(kind, tokens, attr.span(), errors);
    }
}

/// Parse an attribute that takes one expression (`#[peak_memory(..)]`, `#[output_shape(..)]`)
/// into `slot`, refusing a second one.
fn one_expr(slot: &mut Option<syn::Expr>, tokens: TokenStream, attr: &str, what: &str) -> syn::Result<()> {
    match syn::parse2::<syn::Expr>(tokens) {
        Ok(e) if slot.is_some() => Err(syn::Error::new_spanned(e, format!("{attr} is given twice"))),
        Ok(e) => {
            *slot = Some(e);
            Ok(())
        }
        Err(e) => Err(syn::Error::new(e.span(), format!("{attr} takes one expression: {what}"))),
    }
}

/// `#[memory(..)]`: the memory spec, and the plane-views form if `views = f` names one.
fn parse_memory(input: ParseStream<'_>) -> syn::Result<(MemorySpec, Option<Ident>)> {
    if input.is_empty() {
        return Err(
            input.error("#[memory(..)] needs a memory type: `ndarray`, `torch`, `cuda`, or `input = .., output = ..`")
        );
    }
    let mut bare: Option<Ident> = None;
    let mut input_mem = None;
    let mut output_mem = None;
    let mut planes = None;
    let mut xy = None;
    let mut views: Option<Ident> = None;
    let entries = Punctuated::<(Ident, Option<Ident>), Token![,]>::parse_terminated_with(input, |s| {
        let k: Ident = s.parse()?;
        if s.peek(Token![=]) {
            s.parse::<Token![=]>()?;
            Ok((k, Some(s.parse()?)))
        } else {
            Ok((k, None))
        }
    })?;
    for (k, v) in entries {
        let Some(v) = v else {
            if bare.is_some() || input_mem.is_some() || output_mem.is_some() {
                return Err(syn::Error::new(
                    k.span(),
                    "#[memory(..)] takes one memory type, or `input = .., output = ..` when they differ",
                ));
            }
            Memory::parse(&k)?;
            bare = Some(k);
            continue;
        };
        match k.to_string().as_str() {
            "input" | "output" if bare.is_some() => {
                return Err(syn::Error::new(
                    k.span(),
                    "#[memory(..)] takes one memory type, or `input = .., output = ..` when they differ",
                ));
            }
            "input" | "output" => {
                let slot = if k == "input" { &mut input_mem } else { &mut output_mem };
                if slot.is_some() {
                    return Err(syn::Error::new(k.span(), format!("`{k}` is given twice in #[memory(..)]")));
                }
                *slot = Some(Memory::parse(&v)?);
            }
            "planes" => {
                if planes.is_some() {
                    return Err(syn::Error::new(k.span(), "`planes` is given twice in #[memory(..)]"));
                }
                planes = Some(Planes::parse(&v)?);
            }
            "xy" => {
                if xy.is_some() {
                    return Err(syn::Error::new(k.span(), "`xy` is given twice in #[memory(..)]"));
                }
                xy = Some(Xy::parse(&v)?);
            }
            "views" => {
                if views.is_some() {
                    return Err(syn::Error::new(k.span(), "`views` is given twice in #[memory(..)]"));
                }
                views = Some(v);
            }
            other => {
                return Err(syn::Error::new(
                    k.span(),
                    format!(
                        "unknown key `{other}` in #[memory(..)]; expected `input`, `output`, `planes`, `xy` and/or `views`"
                    ),
                ));
            }
        }
    }
    let planes = planes.unwrap_or(Planes::Same);
    let xy = xy.unwrap_or(Xy::Same);
    let (input, output) = match (bare, input_mem, output_mem) {
        (Some(b), _, _) => {
            let mem = Memory::parse(&b)?;
            (mem, mem)
        }
        (None, Some(i), Some(o)) => (i, o),
        (None, Some(i), None) => (i, i),
        (None, None, Some(o)) => (o, o),
        (None, None, None) => {
            return Err(input.error("#[memory(..)] needs a memory type, or `input = ..` / `output = ..`"));
        }
    };
    if let Some(v) = &views
        && input != Memory::Ndarray
    {
        return Err(syn::Error::new(
            v.span(),
            format!(
                "`views = {v}` needs `ndarray` input: the plane-views form borrows host planes (`&[ArrayView2<f32>]`)"
            ),
        ));
    }
    Ok((MemorySpec { input, output, planes, xy }, views))
}

fn parse_outputs(input: ParseStream<'_>) -> syn::Result<Vec<OutputDecl>> {
    let entries = Punctuated::<OutputDecl, Token![,]>::parse_terminated_with(input, |s| {
        let key: Ident = s.parse()?;
        let materializer = if s.peek(Token![=]) {
            s.parse::<Token![=]>()?;
            Some(s.parse::<Path>()?)
        } else {
            None
        };
        Ok(OutputDecl { key, materializer })
    })?;
    Ok(entries.into_iter().collect())
}
