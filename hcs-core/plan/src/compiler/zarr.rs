//! Phase 2, zarr store declaration: every persistent output written as OME-Zarr (the final
//! output, or a checkpoint) gets a store declared now — folder, wells, axis sizes as the data is
//! at that step, codec — so the executor creates it once before any well writes into it.

use hcs_plate::{Component, WellId};

use super::components::Flow;
use super::init::Init;
use super::plan::{Location, ZarrStorePlan};

/// The values axis `c` stands for: exact, or after a `planes = any` step every value the data
/// can still carry.
fn axis(flow: &Flow, c: Component) -> Vec<u32> {
    flow.values_out.get(&c).cloned().flatten().or_else(|| flow.bound_out.get(&c).cloned()).unwrap_or_else(|| vec![1])
}

pub(crate) fn store_plan(
    store: &std::path::Path,
    wells: &[WellId],
    flow: &Flow,
    config: &crate::pipeline::Config,
) -> ZarrStorePlan {
    let axis_values: std::collections::BTreeMap<Component, Vec<u32>> =
        [Component::Site, Component::Channel, Component::Z, Component::Timepoint]
            .into_iter()
            .map(|c| (c, axis(flow, c)))
            .collect();
    let len = |c: Component| axis_values.get(&c).map_or(1, Vec::len);
    ZarrStorePlan {
        store: store.to_path_buf(),
        wells: wells.to_vec(),
        fields: len(Component::Site),
        channels: len(Component::Channel),
        z_planes: len(Component::Z),
        timepoints: len(Component::Timepoint),
        codec: config.zarr_codec,
        level: config.zarr_level,
        ngff: "0.5".into(),
        axis_values,
    }
}

/// The zarr stores per step: (final output store, checkpoint store), each if zarr.
pub fn declare(init: &Init, flows: &[Flow], wells: &[WellId]) -> Vec<(Option<ZarrStorePlan>, Option<ZarrStorePlan>)> {
    let last = init.steps.len().saturating_sub(1);
    init.steps
        .iter()
        .zip(flows)
        .enumerate()
        .map(|(i, (step, flow))| {
            let main = match &init.final_location {
                Location::Zarr { store } if i == last => Some(store_plan(store, wells, flow, &init.final_config)),
                _ => None,
            };
            let checkpoint = match step.checkpoint.as_ref().map(|c| &c.location) {
                Some(Location::Zarr { store }) => {
                    let filtered: Vec<WellId> = match step.checkpoint.as_ref().and_then(|c| c.wells.as_ref()) {
                        Some(only) => wells.iter().copied().filter(|w| only.contains(w)).collect(),
                        None => wells.to_vec(),
                    };
                    Some(store_plan(store, &filtered, flow, &step.config))
                }
                _ => None,
            };
            (main, checkpoint)
        })
        .collect()
}

/// Notes for stores whose axes are a bound, not exact (after a `planes = any` step): the
/// store has room for every value the data may carry, and a well that produces fewer leaves
/// those planes unwritten.
pub fn notes(
    stores: &[(Option<ZarrStorePlan>, Option<ZarrStorePlan>)],
    flows: &[Flow],
    names: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for (i, ((main, checkpoint), flow)) in stores.iter().zip(flows).enumerate() {
        for plan in [main, checkpoint].into_iter().flatten() {
            for (c, values) in &plan.axis_values {
                if flow.values_out.get(c).is_some_and(Option::is_none) {
                    let by = flow.changed_by.get(c).copied().unwrap_or(i + 1);
                    out.push(format!(
                        "step {} `{}`: the OME-Zarr store {} holds up to {} {} value(s) ({:?}): how many a well \
                         produces is known only at run time (after step {by}, `planes = any`); planes a well \
                         does not produce stay unwritten and read as zeros",
                        i + 1,
                        names.get(i).map_or("", String::as_str),
                        plan.store.display(),
                        values.len(),
                        c.name(),
                        values
                    ));
                }
            }
        }
    }
    out
}

/// Preview stores of the steps with `visualize = true`: `<output>/previews/stepN.ome.zarr` and
/// thumbnails in `<output>/previews/stepN/`.
pub fn previews(init: &Init, flows: &[Flow], wells: &[WellId]) -> Vec<Option<super::plan::PreviewPlan>> {
    init.steps
        .iter()
        .zip(flows)
        .enumerate()
        .map(|(i, (step, flow))| {
            step.config.visualize.then(|| {
                let dir = init.output_root.join("previews");
                let store = dir.join(format!("step{}.ome.zarr", i + 1));
                super::plan::PreviewPlan {
                    store: store_plan(&store, wells, flow, &step.config),
                    thumbnails: dir.join(format!("step{}", i + 1)),
                }
            })
        })
        .collect()
}

/// The viewers a plan needs to show its previews.
pub fn viewers(previews: &[Option<super::plan::PreviewPlan>]) -> Vec<String> {
    if previews.iter().any(Option::is_some) {
        vec!["napari with the napari-ome-zarr plugin (`napari --plugin napari-ome-zarr <store>`) for the preview stores; any image viewer for the PNG thumbnails".into()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn store_axes_are_the_data_at_that_step() {
        let values: super::super::plan::ComponentValues = BTreeMap::from([
            (Component::Site, Some(vec![1])),
            (Component::Channel, Some(vec![1, 2])),
            (Component::Z, None),
            (Component::Timepoint, Some(vec![1])),
        ]);
        let bound_out = BTreeMap::from([(Component::Z, vec![1, 2, 3])]);
        let flow = Flow {
            values_in: values.clone(),
            values_out: values,
            calls_per_well: None,
            changed_by: BTreeMap::new(),
            bound_in: BTreeMap::new(),
            bound_out,
        };
        let plan = store_plan(std::path::Path::new("/o/x.ome.zarr"), &[WellId::new(0, 1)], &flow, &Default::default());
        // z is unknown after a `planes = any` step: the store has room for every z it can carry.
        assert_eq!((plan.fields, plan.channels, plan.z_planes, plan.timepoints), (1, 2, 3, 1));
        assert_eq!(plan.axis_values[&Component::Z], [1, 2, 3]);
        assert_eq!((plan.level, plan.ngff.as_str()), (3, "0.5"));
    }
}
