//! The static contract every annotated function publishes, and the type-erased call into it.

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::error::InvokeError;
use crate::params::{ParamMap, ParamSpec};
use crate::special::{SpecialData, SpecialInputSpec, SpecialInputs, SpecialOutputSpec};
use crate::stack::{MemoryType, Stack};

/// Where a function was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SourceLocation {
    /// Source file, as `file!()` gives it.
    pub file: &'static str,
    /// Line of the `fn` item.
    pub line: u32,
    /// Column of the `fn` item.
    pub column: u32,
}

/// How many planes a call returns (`#[memory(.., planes = ..)]`): what the compiler needs to know
/// which component values exist after a step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaneCount {
    /// As many as it received (filters, normalization).
    #[default]
    Same,
    /// One, whatever it received: the call's variable components collapse to their first value
    /// (projections, composites, mosaics).
    One,
    /// It depends on the parameters (cropping in z, 3-D binning): later steps cannot rely on the
    /// component values of the collapsed axes.
    Any,
}

/// What a call returns: the stack and the special outputs in declaration order.
#[derive(Debug)]
pub struct InvokeOutput {
    /// The output stack.
    pub stack: Stack,
    /// One value per declared special output, in declaration order, with its key.
    pub special_outputs: Vec<(&'static str, SpecialData)>,
}

/// The type-erased call generated for every annotated function.
pub type Invoker = fn(Stack, &ParamMap, &SpecialInputs) -> Result<InvokeOutput, InvokeError>;

/// The type-erased call of a function's plane-views form (`#[memory(ndarray, views = f)]`): the
/// same parameters and special inputs, the planes borrowed where they lie instead of copied into
/// one owned stack first.
pub type ViewsInvoker =
    fn(&[ndarray::ArrayView2<'_, f32>], &ParamMap, &SpecialInputs) -> Result<InvokeOutput, InvokeError>;

/// Everything the pipeline compiler knows about a function, fixed at build time by the attributes.
#[derive(Clone, Copy, Debug)]
pub struct FunctionContract {
    /// Registry name: the function's identifier.
    pub name: &'static str,
    /// `module_path!()` where it was declared.
    pub module_path: &'static str,
    /// The crate that declared it.
    pub crate_name: &'static str,
    /// Memory type of the stack it takes.
    pub input_memory: MemoryType,
    /// Memory type of the stack it returns.
    pub output_memory: MemoryType,
    /// How many planes a call returns, relative to the planes it receives.
    pub output_planes: PlaneCount,
    /// Whether planes keep their size (`#[memory(.., xy = ..)]`).
    pub plane_shape: crate::rules::PlaneShape,
    /// Special inputs, in declaration order.
    pub special_inputs: &'static [SpecialInputSpec],
    /// Special outputs, in declaration order (the order of the returned tuple).
    pub special_outputs: &'static [SpecialOutputSpec],
    /// Whether the next step reads the pipeline's original input instead of this step's output.
    pub chain_breaker: bool,
    /// Tunable parameters, in signature order.
    pub params: &'static [ParamSpec],
    /// Rules over several parameters and the image (`#[check(..)]`), in declaration order.
    pub checks: &'static [crate::rules::ParamCheck],
    /// Working memory of one call (`#[peak_memory(..)]`), if declared.
    pub peak_memory: Option<crate::rules::MemoryEstimate>,
    /// Size of what one call returns (`#[output_shape(..)]`), if declared.
    pub output_shape: Option<crate::rules::OutputShape>,
    /// How a call changes the pixel size (`#[pixel_scale(..)]`), if declared.
    pub pixel_scale: Option<crate::rules::PixelScale>,
    /// Where a call puts its output in its input (`#[pixel_origin(..)]`), if declared.
    pub pixel_origin: Option<crate::rules::PixelOrigin>,
    /// First paragraph of the doc comment.
    pub doc: &'static str,
    /// Where it was declared.
    pub location: SourceLocation,
    /// The type-erased call.
    pub invoke: Invoker,
    /// The type-erased call of its plane-views form, if it declares one (`views = ..`): the
    /// executor uses it when a group's planes lie apart (another step stacked them differently),
    /// so they are read in place rather than gathered into a new stack. It must return what
    /// [`invoke`](Self::invoke) returns for the same planes stacked; the planes it gets have
    /// one shape and may be strided views (no planes, or planes of different shapes, are
    /// refused with [`InvokeError::UnequalPlanes`] before the form is called).
    pub invoke_views: Option<ViewsInvoker>,
}

impl FunctionContract {
    /// Look up a parameter by name.
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Look up a special output by key.
    pub fn special_output(&self, key: &str) -> Option<&SpecialOutputSpec> {
        self.special_outputs.iter().find(|s| s.key == key)
    }

    /// The full Rust path of the function.
    pub fn path(&self) -> String {
        format!("{}::{}", self.module_path, self.name)
    }

    /// Call the function through its erased form.
    pub fn call(
        &self,
        stack: Stack,
        params: &ParamMap,
        special_inputs: &SpecialInputs,
    ) -> Result<InvokeOutput, InvokeError> {
        (self.invoke)(stack, params, special_inputs)
    }
}

/// JSON form used by `hcs functions --json`: the full contract minus the function pointers
/// (defaults are rendered as values).
impl Serialize for FunctionContract {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Param<'a> {
            name: &'a str,
            rust_type: &'a str,
            #[serde(rename = "type")]
            ty: &'a crate::params::ParamType,
            required: bool,
            default: Option<crate::params::ParamValue>,
            doc: &'a str,
            accepts: String,
            #[serde(skip_serializing_if = "crate::value_rule::ValueRule::is_none")]
            rule: crate::value_rule::ValueRule,
        }
        #[derive(Serialize)]
        struct Check<'a> {
            rule: &'a str,
            message: &'a str,
            params: &'a [&'a str],
            needs_image: bool,
        }
        #[derive(Serialize)]
        struct Input<'a> {
            key: &'a str,
            rust_type: &'a str,
        }
        #[derive(Serialize)]
        struct Output<'a> {
            key: &'a str,
            rust_type: &'a str,
            materializer: Option<&'a str>,
        }
        let params: Vec<Param<'_>> = self
            .params
            .iter()
            .map(|p| Param {
                name: p.name,
                rust_type: p.rust_type,
                ty: &p.ty,
                required: p.is_required(),
                default: p.default.map(|d| d()),
                doc: p.doc,
                accepts: p.accepts(),
                rule: p.rule,
            })
            .collect();
        let checks: Vec<Check<'_>> = self
            .checks
            .iter()
            .map(|c| Check { rule: c.rule, message: c.message, params: c.params, needs_image: c.needs_image })
            .collect();
        let inputs: Vec<Input<'_>> =
            self.special_inputs.iter().map(|s| Input { key: s.key, rust_type: s.rust_type }).collect();
        let outputs: Vec<Output<'_>> = self
            .special_outputs
            .iter()
            .map(|s| Output { key: s.key, rust_type: s.rust_type, materializer: s.materializer.map(|m| m.name) })
            .collect();
        let mut st = serializer.serialize_struct("FunctionContract", 17)?;
        st.serialize_field("name", self.name)?;
        st.serialize_field("module_path", self.module_path)?;
        st.serialize_field("crate", self.crate_name)?;
        st.serialize_field("input_memory", &self.input_memory)?;
        st.serialize_field("output_memory", &self.output_memory)?;
        st.serialize_field("output_planes", &self.output_planes)?;
        st.serialize_field("plane_shape", &self.plane_shape)?;
        st.serialize_field("special_inputs", &inputs)?;
        st.serialize_field("special_outputs", &outputs)?;
        st.serialize_field("chain_breaker", &self.chain_breaker)?;
        st.serialize_field("params", &params)?;
        st.serialize_field("checks", &checks)?;
        st.serialize_field("peak_memory", &self.peak_memory.map(|m| m.expr))?;
        st.serialize_field("pixel_scale", &self.pixel_scale.map(|m| m.expr))?;
        st.serialize_field("pixel_origin", &self.pixel_origin.map(|m| m.expr))?;
        st.serialize_field("doc", self.doc)?;
        st.serialize_field("location", &self.location)?;
        st.end()
    }
}
