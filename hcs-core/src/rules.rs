//! Value contracts: what values a parameter accepts beyond its type (`#[param(min = .., max = ..,
//! range = .., finite, nonzero)]`), and rules over several parameters and the image a step
//! receives (`#[check(..)]`).
//!
//! The compiler checks every value against these before a plan is frozen, so a value a kernel
//! cannot work with is a plan error naming the step and the parameter, not a failure in every
//! well hours later.

use serde::Serialize;

use crate::error::ParamError;
use crate::params::{ParamMap, ParamValue};

/// What the compiler knows about the images a step receives, for `#[check]` rules that name
/// `image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ImageGeometry {
    /// Rows of each plane.
    pub height: usize,
    /// Columns of each plane.
    pub width: usize,
    /// Planes in one call's stack, when known.
    pub planes: Option<usize>,
    /// Sites (tiles) of a well in the plate's grid, when the plate says.
    pub sites: Option<usize>,
}

/// The outcome of one `#[check]` rule on a set of parameter values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The rule holds.
    Holds,
    /// The rule does not hold.
    Fails,
    /// The rule names `image`, and the image geometry is not known at this point.
    NeedsImage,
}

/// A rule over several parameters (and the image), declared with `#[check(expr, "message")]`.
#[derive(Clone, Copy, Debug)]
pub struct ParamCheck {
    /// The rule as written (`low_percentile < high_percentile`).
    pub rule: &'static str,
    /// What the author says when it fails (may be empty).
    pub message: &'static str,
    /// The parameters the rule reads, in signature order.
    pub params: &'static [&'static str],
    /// Whether the rule reads `image` (an [`ImageGeometry`]).
    pub needs_image: bool,
    /// Evaluate the rule on complete parameter values (defaults filled in).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<CheckOutcome, ParamError>,
}

impl ParamCheck {
    /// Evaluate on `params` (defaults already filled in) and, when known, the image geometry.
    pub fn evaluate(&self, params: &ParamMap, image: Option<&ImageGeometry>) -> Result<CheckOutcome, ParamError> {
        if self.needs_image && image.is_none() {
            return Ok(CheckOutcome::NeedsImage);
        }
        (self.eval)(params, image)
    }

    /// The message shown when the rule fails: the author's words and the rule.
    ///
    /// The rule's source follows the message where it reads as a formula (`low < high`); one
    /// written with closures (`image.planes.is_none_or(|p| ..)`) is Rust a scientist need not
    /// read, and the message stands alone.
    pub fn describe(&self) -> String {
        if self.message.is_empty() {
            format!("`{}` must hold", self.rule)
        } else if self.rule.replace("||", "").contains('|') {
            self.message.to_string()
        } else {
            format!("{} (`{}`)", self.message, self.rule)
        }
    }
}

/// What one call needs in memory beyond its input and output, declared with
/// `#[peak_memory(bytes)]` — an expression over the parameters and `image`. Without one the
/// compiler assumes [`DEFAULT_PEAK_FACTOR`] × the call's input.
#[derive(Clone, Copy, Debug)]
pub struct MemoryEstimate {
    /// The expression as written.
    pub expr: &'static str,
    /// The parameters it reads, in signature order.
    pub params: &'static [&'static str],
    /// Evaluate on complete parameter values and the image geometry (bytes; `None` when the
    /// geometry is not known).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<Option<f64>, ParamError>,
}

/// The size of what one call returns, declared with `#[output_shape((height, width, planes))]`
/// on a function that changes it (`xy = any` or `planes = any`): a tuple expression over the
/// parameters and `image` — `(usize, usize, Option<usize>)`, the planes `None` when they cannot
/// be told. With it the compiler follows the image size past the call and checks later rules
/// on it; the executor checks every call's result against it.
#[derive(Clone, Copy, Debug)]
pub struct OutputShape {
    /// The expression as written.
    pub expr: &'static str,
    /// The parameters it reads, in signature order.
    pub params: &'static [&'static str],
    /// Evaluate on complete parameter values and the input geometry: the output geometry
    /// (`None` when the input geometry it reads is not known).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<Option<ImageGeometry>, ParamError>,
}

/// How a function changes the physical size of a pixel, declared with `#[pixel_scale(factor)]`
/// on a function that changes the image size: an `f64` expression over the parameters and
/// `image` — each output pixel spans `factor` input pixels along y and x (binning by 4: `4`).
/// A size-changing function without it keeps the pixel size (a crop, a mosaic). The compiler
/// multiplies the factors along the pipeline, and outputs carry the pixel size they have.
#[derive(Clone, Copy, Debug)]
pub struct PixelScale {
    /// The expression as written.
    pub expr: &'static str,
    /// The parameters it reads, in signature order.
    pub params: &'static [&'static str],
    /// Evaluate on complete parameter values and the input geometry (`None` when the input
    /// geometry it reads is not known).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<Option<f64>, ParamError>,
}

/// A `(y, x)` pair of pixel coordinates.
pub type YX = (f64, f64);

/// Where a function that changes the image size puts its output in the input, declared with
/// `#[pixel_origin((y, x))]`: a `(f64, f64)` expression over the parameters and `image`, the
/// output's first pixel in input pixels (a crop from row 10, column 20: `(10.0, 20.0)`). The
/// compiler adds the offsets along the pipeline; outputs carry the position they have.
#[derive(Clone, Copy, Debug)]
pub struct PixelOrigin {
    /// The expression as written.
    pub expr: &'static str,
    /// The parameters it reads, in signature order.
    pub params: &'static [&'static str],
    /// Evaluate on complete parameter values and the input geometry (`None` when the input
    /// geometry it reads is not known).
    pub eval: fn(&ParamMap, Option<&ImageGeometry>) -> Result<Option<YX>, ParamError>,
}

/// The geometry a `#[output_shape]` tuple describes, keeping the input's site count.
pub fn output_geometry(
    (height, width, planes): (usize, usize, Option<usize>),
    input: Option<&ImageGeometry>,
) -> ImageGeometry {
    ImageGeometry { height, width, planes, sites: input.and_then(|i| i.sites) }
}

/// Working memory of a call without `#[peak_memory]`, as a multiple of its input.
pub const DEFAULT_PEAK_FACTOR: f64 = 3.0;

/// Bytes of one call's input: `planes × height × width` f32 values.
pub fn input_bytes(image: &ImageGeometry) -> f64 {
    image.planes.unwrap_or(1) as f64 * image.height as f64 * image.width as f64 * 4.0
}

/// How a function changes the plane size (`#[memory(.., xy = ..)]`): whether the compiler still
/// knows the image geometry after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaneShape {
    /// Planes keep their size (filters, normalization, projections).
    #[default]
    Same,
    /// The size depends on the parameters or the data (binning, cropping, mosaics).
    Any,
}

/// Read a parameter for a `#[check]` rule (generated code): the given value or the default.
pub fn rule_arg<T: crate::params::PipelineParam>(
    params: &ParamMap,
    name: &str,
    default: Option<fn() -> ParamValue>,
) -> Result<T, ParamError> {
    match (params.get(name), default) {
        (Some(v), _) => T::from_value(v),
        (None, Some(d)) => T::from_value(&d()),
        (None, None) => Err(ParamError::Missing { param: name.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(rule: &'static str, message: &'static str) -> ParamCheck {
        ParamCheck { rule, message, params: &[], needs_image: false, eval: |_, _| Ok(CheckOutcome::Holds) }
    }

    #[test]
    fn a_formula_follows_the_message_and_rust_closures_do_not() {
        assert_eq!(check("low < high", "low must be below high").describe(), "low must be below high (`low < high`)");
        assert_eq!(
            check("a > 0 || b > 0", "one must be positive").describe(),
            "one must be positive (`a > 0 || b > 0`)"
        );
        let closure = check("image.planes.is_none_or(| p | image.sites.is_none_or(| s | p == s))", "one call per well");
        assert_eq!(closure.describe(), "one call per well");
        assert_eq!(check("low < high", "").describe(), "`low < high` must hold");
    }
}
