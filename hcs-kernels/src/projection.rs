//! Projections of a stack onto one plane.

use hcs_core::{NdarrayStack, ParamError, ParamType, ParamValue, PipelineParam};
use hcs_macros::memory;
use ndarray::{Axis, Zip};

/// How [`create_projection`] combines planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionMethod {
    /// Maximum intensity per pixel.
    Max,
    /// Mean intensity per pixel.
    Mean,
}

impl ProjectionMethod {
    const NAMES: &'static [&'static str] = &["max_projection", "mean_projection"];
    const VALUES: &'static [ProjectionMethod] = &[ProjectionMethod::Max, ProjectionMethod::Mean];
}

impl PipelineParam for ProjectionMethod {
    const TYPE: ParamType = ParamType::Choice { options: Self::NAMES };
    fn from_value(value: &ParamValue) -> Result<Self, ParamError> {
        hcs_core::params::parse_choice(value, Self::NAMES, Self::VALUES)
    }
    fn to_value(&self) -> ParamValue {
        let i = Self::VALUES.iter().position(|v| v == self).unwrap_or(0);
        ParamValue::Str(Self::NAMES[i].to_owned())
    }
}

/// Maximum-intensity projection over planes: `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray)]
pub fn max_projection(stack: NdarrayStack) -> NdarrayStack {
    let (_, h, w) = stack.dim();
    let mut out = ndarray::Array2::<f32>::from_elem((h, w), f32::NEG_INFINITY);
    for plane in stack.axis_iter(Axis(0)) {
        Zip::from(&mut out).and(&plane).par_for_each(|o, &v| *o = o.max(v));
    }
    if stack.dim().0 == 0 {
        out.fill(0.0);
    }
    out.insert_axis(Axis(0))
}

/// Mean-intensity projection over planes: `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray)]
pub fn mean_projection(stack: NdarrayStack) -> NdarrayStack {
    let (n, h, w) = stack.dim();
    let mut sum = ndarray::Array2::<f64>::zeros((h, w));
    for plane in stack.axis_iter(Axis(0)) {
        Zip::from(&mut sum).and(&plane).par_for_each(|s, &v| *s += f64::from(v));
    }
    let n = n.max(1) as f64;
    sum.mapv(|s| (s / n) as f32).insert_axis(Axis(0))
}

/// Project planes with the chosen method: `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray)]
pub fn create_projection(
    stack: NdarrayStack,
    #[param(default = ProjectionMethod::Max, doc = "max_projection | mean_projection")] method: ProjectionMethod,
) -> NdarrayStack {
    match method {
        ProjectionMethod::Max => max_projection(stack),
        ProjectionMethod::Mean => mean_projection(stack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn stack() -> NdarrayStack {
        array![[[1.0, 5.0], [3.0, 0.0]], [[4.0, 2.0], [3.0, 8.0]]]
    }

    #[test]
    fn max_and_mean_projections_reduce_planes() {
        assert_eq!(max_projection(stack()), array![[[4.0, 5.0], [3.0, 8.0]]]);
        assert_eq!(mean_projection(stack()), array![[[2.5, 3.5], [3.0, 4.0]]]);
    }

    #[test]
    fn create_projection_dispatches_on_method() {
        assert_eq!(create_projection(stack(), ProjectionMethod::Mean), mean_projection(stack()));
        let v = ProjectionMethod::Mean.to_value();
        assert_eq!(ProjectionMethod::from_value(&v).ok(), Some(ProjectionMethod::Mean));
    }
}
