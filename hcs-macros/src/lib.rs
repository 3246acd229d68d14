//! Attributes that declare the contract of an hcs processing function.
//!
//! Put `#[memory(..)]` on a free `fn` (plus, as needed, `#[special_outputs(..)]`,
//! `#[special_inputs(..)]`, `#[chain_breaker]`, in any order). The function is emitted unchanged;
//! beside it the macro generates a static `FunctionContract`, a type-erased invoker, a `linkme`
//! registration, and a same-name module holding `FUNC`, the handle Rust pipelines use.
//!
//! Whichever attribute rustc expands first absorbs its siblings, so the order does not matter and
//! the contract is generated exactly once. Every problem found is reported at once, on the user's
//! tokens, and the function is still emitted so no "cannot find function" errors follow.
//!
//! Use these through the `hcs` facade (`use hcs::prelude::*;`); see the `hcs` crate docs.
#![deny(missing_docs)]

use proc_macro::TokenStream;

mod attrs;
mod expand;
mod param_rule;
mod pipeline;
mod rule;
mod runtime_path;
mod signature;
mod type_text;

use attrs::AttrKind;

/// At most this many special inputs and outputs per function. Must equal
/// `hcs_core::__private::MAX_SPECIAL` (hcs-core/src/__private.rs), which a proc-macro cannot
/// import: every generated handle asserts the two agree at compile time (`expand::handle`).
const MAX_SPECIAL: usize = 8;

/// Declare the memory type of a function's stack: `#[memory(ndarray)]`, `#[memory(torch)]`,
/// `#[memory(cuda)]`, or `#[memory(input = torch, output = ndarray)]`.
///
/// `planes = one` declares that each call returns one plane whatever it was given (projections,
/// composites, mosaics), `planes = any` that the count depends on parameters (cropping in z,
/// 3-D binning); the default `planes = same` returns as many planes as it received. The pipeline
/// compiler uses this to know which component values exist after each step.
///
/// `views = f` (ndarray input only) names the function's plane-views form: `f` takes
/// `&[ArrayView2<'_, f32>]` in place of the stack, then the same arguments, and returns what the
/// function returns for those planes stacked (same type, same values). The executor calls it
/// when a group's planes lie apart (a step before stacked them differently), so they are read
/// where they are instead of gathered into a new stack first (projections over z of planes
/// another step grouped by site). The planes have one shape, and may be strided views.
#[proc_macro_attribute]
pub fn memory(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::Memory, attr.into(), item.into()).into()
}

/// Declare special outputs, returned after the stack in declaration order:
/// `#[special_outputs(positions, cell_counts = write_cell_counts_csv)]`.
#[proc_macro_attribute]
pub fn special_outputs(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::SpecialOutputs, attr.into(), item.into()).into()
}

/// Declare special inputs; each arrives as the parameter of the same name:
/// `#[special_inputs(positions)]`.
#[proc_macro_attribute]
pub fn special_inputs(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::SpecialInputs, attr.into(), item.into()).into()
}

/// Make the next step read the pipeline's original input instead of this step's output.
#[proc_macro_attribute]
pub fn chain_breaker(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::ChainBreaker, attr.into(), item.into()).into()
}

/// Declare a rule over a function's parameters that the pipeline compiler checks before any
/// image is read: `#[check(low_percentile < high_percentile, "the lower percentile must be below the upper")]`.
///
/// The rule is a Rust `bool` expression over the parameters (with their declared types and
/// defaults filled in) and, optionally, `image` — an `ImageGeometry` with the `height`, `width`
/// (and, when known, `planes`) of the images the step receives. Needs `#[memory(..)]` on the same
/// function.
#[proc_macro_attribute]
pub fn check(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::Check, attr.into(), item.into()).into()
}

/// Declare the working memory one call needs, in bytes, as an expression over the parameters
/// and `image` (an `ImageGeometry`: `height`, `width`, `planes`):
/// `#[peak_memory(num_sigma as f64 * image.height as f64 * image.width as f64 * 8.0)]`.
///
/// The pipeline compiler refuses a plan whose step needs more than `memory_budget_mib` (or a
/// GPU's memory), naming the step and the parameters the estimate reads. Without it, a call is
/// assumed to need 3 × its input.
#[proc_macro_attribute]
pub fn peak_memory(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::PeakMemory, attr.into(), item.into()).into()
}

/// Declare the size of what one call returns, for a function that changes it
/// (`#[memory(.., xy = any)]` or `planes = any`): a tuple `(height, width, planes)` —
/// `(usize, usize, Option<usize>)` — over the parameters and `image`:
/// `#[output_shape((image.height / bin_size, image.width / bin_size, image.planes))]`.
///
/// The pipeline compiler then follows the image size past the call (and checks later rules and
/// memory estimates on it); the executor checks each call's result against it.
#[proc_macro_attribute]
pub fn output_shape(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::OutputShape, attr.into(), item.into()).into()
}

/// Declare how a function that changes the image size changes the pixel size: an `f64`
/// expression over the parameters and `image`, the number of input pixels one output pixel
/// spans along y and x — `#[pixel_scale(bin_size as f64)]` on a binning. Without it a
/// size-changing function keeps the pixel size (a crop, a mosaic).
///
/// The pipeline compiler multiplies the factors along the pipeline, so every output carries
/// its own pixel size (OME-Zarr scale, OME-TIFF calibration).
#[proc_macro_attribute]
pub fn pixel_scale(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::PixelScale, attr.into(), item.into()).into()
}

/// Declare where a function that changes the image size puts its output in the input: a
/// `(f64, f64)` expression over the parameters and `image`, the `(y, x)` of the output's first
/// pixel in input pixels — `#[pixel_origin((start_y as f64, start_x as f64))]` on a crop.
/// Without it the output starts where the input does.
///
/// The pipeline compiler adds the offsets along the pipeline (scaled by the pixel size each
/// step has), so every output carries its position (OME-Zarr translation).
#[proc_macro_attribute]
pub fn pixel_origin(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(AttrKind::PixelOrigin, attr.into(), item.into()).into()
}

/// A pipeline written in Rust, checked by rustc: evaluates to the same `hcs::plan::pipeline::Pipeline`
/// a pipeline file with the same content gives (the `hcs` crate docs have a tested example).
///
/// ```text
/// let pipeline = hcs::pipeline! {
///     name = "example";
///     step "denoise" {
///         func = [stack_percentile_normalize(low_percentile = 1.0), gaussian_filter(sigma = 2.0)];
///         materialize = true;
///     }
///     step "per channel" {
///         variable_components = [z_index];
///         group_by = channel;
///         func = { "1": create_projection(method = ProjectionMethod::Max), "2": create_projection };
///     }
/// };
/// ```
///
/// Functions are named by path (their handle modules); steps take the fields of a pipeline file
/// (`func`, `variable_components`, `group_by`, `input_source`, `materialize`, `merge_outputs` as
/// typed keys such as `count_cells::outputs::cell_counts`, `config`). rustc rejects, on the
/// offending tokens: unknown parameters (with a suggestion), values of the wrong type, special
/// inputs no earlier step produces or that only a later step produces, special data consumed as
/// another type than produced, dict patterns without `group_by`, and adjacent memory types this
/// build cannot convert — by the same rules the runtime compiler applies to pipeline files.
#[proc_macro]
pub fn pipeline(input: TokenStream) -> TokenStream {
    pipeline::expand(input.into()).into()
}
