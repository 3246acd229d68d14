//! Special values in pixels handed across a change of pixel size. Tile positions found on
//! full-size tiles and applied to binned ones (or the reverse) place every tile at the wrong
//! offset — a mosaic that is mostly empty, or collapsed — and nothing fails at run time. A special
//! input of a type measured in pixels ([`hcs_core::special::PIXEL_VALUED`]) read by a step whose
//! images have another pixel size than the images its producer saw is refused; where the
//! compiler cannot tell (a step that changes the pixel size between its own calls, or an unknown
//! scale) it says so in a note. Other values (counts, statistics) are handed on as they are.

use hcs_core::Registry;

use super::init::Init;
use super::plan::SpecialInputPlan;
use crate::pipeline::{InputSource, Line, Pipeline, PipelineError, SourceMap, StepRef, step_calls};

/// The errors and notes of every special link between steps whose images differ in pixel size.
/// `scales` are each step's output scale (plate pixels per output pixel), as phase 1b found them.
pub fn check(
    pipeline: &Pipeline,
    registry: &Registry,
    init: &Init,
    scales: &[Option<f64>],
    source: Option<&SourceMap>,
) -> (Vec<PipelineError>, Vec<String>) {
    let calls = step_calls(pipeline, registry);
    // A step that changes the pixel size itself: which of its calls saw which size is not
    // tracked at step level.
    let rescales =
        |i: usize| calls.get(i).is_some_and(|c| c.iter().any(|(_, contract, _)| contract.pixel_scale.is_some()));
    let input_scale = |i: usize| match (i, init.steps.get(i).map(|s| s.input_source)) {
        (0, _) | (_, Some(InputSource::PipelineStart)) => Some(1.0),
        _ => scales.get(i - 1).copied().flatten(),
    };
    let (mut errors, mut notes) = (Vec::new(), Vec::new());
    // The keys step `i` reads as a value measured in pixels.
    let in_pixels = |i: usize, key: &str| {
        calls.get(i).is_some_and(|c| {
            c.iter().any(|(_, contract, _)| {
                contract
                    .special_inputs
                    .iter()
                    .any(|s| s.key == key && hcs_core::special::is_pixel_valued((s.type_id)()))
            })
        })
    };
    for (i, step) in init.steps.iter().enumerate() {
        for (key, input) in &step.special_inputs {
            let SpecialInputPlan::Step { step: from, function, .. } = input else { continue };
            if !in_pixels(i, key) {
                continue;
            }
            let producer = from.saturating_sub(1);
            if producer == i {
                continue; // an earlier call of the same chain
            }
            let here = StepRef { index: i + 1, name: pipeline.steps[i].name.clone() };
            let there = format!("step {from} `{}`", pipeline.steps.get(producer).map_or("?", |s| s.name.as_str()));
            match (input_scale(producer), input_scale(i)) {
                _ if rescales(producer) || rescales(i) => notes.push(format!(
                    "{here}: special input `{key}` from `{function}` of {there}: one of the two steps changes the pixel size between its calls, so whether both saw images of the same pixel size is not checked"
                )),
                (Some(a), Some(b)) if (a - b).abs() > 1e-9 * a.max(b) => errors.push(PipelineError::Special {
                    at: Line(source.and_then(|s| s.step_line(i))),
                    step: here,
                    message: format!(
                        "special input `{key}` was made by `{function}` of {there} on images of {}, but this step's images are {}: its values are in pixels and would land at the wrong places; give both steps images of one pixel size (bin before {there}, or after this step)",
                        scale_text(a),
                        scale_text(b)
                    ),
                }),
                (Some(_), Some(_)) => {}
                _ => notes.push(format!(
                    "{here}: special input `{key}` from `{function}` of {there}: the pixel size of one of the two steps' images is not known before the run, so whether they match is not checked"
                )),
            }
        }
    }
    (errors, notes)
}

/// `1×` the plate's pixel size, `4×`, `0.5×`.
fn scale_text(scale: f64) -> String {
    if (scale - 1.0).abs() < 1e-9 {
        "the plate's pixel size".into()
    } else {
        format!("{scale}× the plate's pixel size")
    }
}
