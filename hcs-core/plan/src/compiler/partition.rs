//! Phase 4b, well partitioning: which runs of consecutive steps the executor may take one part of
//! the well at a time ([`Segment`]), so that a well holds one part's intermediates instead of the
//! whole well's.
//!
//! A group of a step is the planes that agree on every component the step does not stack. When
//! no step of a run stacks some component (say the channel), every group of every step of the run
//! lies within one channel, and no step changes the channel values: the run can go channel by
//! channel, each group seeing exactly the planes it would see on the whole well. The segment's
//! `by` is the set of such components with more than one value; a run is extended while that set
//! stays non-empty.
//!
//! A step joins a segment only when running it part by part changes nothing but the order in
//! which its groups run:
//! - it runs on the CPU (a GPU step holds a device slot for the whole step, and may retry all its
//!   groups on the CPU);
//! - it has no special outputs (one value per well, or materialized per call), no preview, and
//!   writes no OME-Zarr store (a zarr well is published once, whole);
//! - within the segment, each step reads what the one before it wrote (the segment is one chain).

use std::collections::BTreeSet;

use hcs_plate::Component;

use super::plan::{ComponentValues, Location, Segment};

/// What phase 4b needs of one step.
#[derive(Clone, Debug)]
pub struct StepFacts<'a> {
    /// The components the step stacks into one call.
    pub variable: &'a [Component],
    /// The component values of its input.
    pub values_in: &'a ComponentValues,
    /// Whether running it part by part is the same as running it whole (see the module docs).
    pub partitionable: bool,
    /// Where it reads.
    pub reads: &'a Location,
    /// Where it writes.
    pub writes: &'a Location,
    /// The 1-based step that reads its output.
    pub read_by: Option<usize>,
}

/// The components a part can be cut along: not stacked by the step, with more than one known
/// value in its input.
fn cuttable(step: &StepFacts<'_>) -> BTreeSet<Component> {
    [Component::Timepoint, Component::Site, Component::Channel, Component::Z]
        .into_iter()
        .filter(|c| !step.variable.contains(c))
        .filter(|c| step.values_in.get(c).is_some_and(|v| v.as_ref().is_some_and(|v| v.len() > 1)))
        .collect()
}

/// Whether a step may be in a segment at all.
fn eligible(step: &StepFacts<'_>) -> bool {
    step.partitionable
        && !matches!(step.reads, Location::Zarr { .. })
        && matches!(step.writes, Location::Memory { .. } | Location::Disk { .. })
}

/// The segments of a pipeline: maximal runs of two or more chained steps with a common cut.
pub fn segments(steps: &[StepFacts<'_>]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let mut by = cuttable(&steps[i]);
        if !eligible(&steps[i]) || by.is_empty() {
            i += 1;
            continue;
        }
        let mut last = i;
        while let Some(next) = steps.get(last + 1) {
            let chained = steps[last].read_by == Some(last + 2) && next.reads == steps[last].writes;
            let common: BTreeSet<Component> = by.intersection(&cuttable(next)).copied().collect();
            if !chained || !eligible(next) || common.is_empty() {
                break;
            }
            by = common;
            last += 1;
        }
        if last > i {
            let parts = by
                .iter()
                .try_fold(1usize, |n, c| steps[i].values_in.get(c).and_then(Option::as_ref).map(|v| n * v.len()));
            out.push(Segment { first: i + 1, last: last + 1, by: by.into_iter().collect(), parts });
        }
        i = last + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(sites: u32, channels: u32, z: u32) -> ComponentValues {
        [
            (Component::Timepoint, Some(vec![1])),
            (Component::Site, Some((1..=sites).collect())),
            (Component::Channel, Some((1..=channels).collect())),
            (Component::Z, Some((1..=z).collect())),
        ]
        .into_iter()
        .collect()
    }

    fn memory(n: usize) -> Location {
        Location::Memory { namespace: format!("step{n}") }
    }

    #[test]
    fn the_canonical_pipeline_goes_channel_by_channel_where_no_step_stacks_channels() {
        let plate = Location::Plate { root: "p".into() };
        let out = Location::Disk { dir: "o/images".into() };
        let (raw, flat, one, mosaics) = (values(9, 2, 3), values(9, 2, 1), values(9, 1, 1), values(1, 2, 3));
        let (v1, v2, v3) = (memory(1), memory(2), memory(3));
        let (v4, v5, v6) = (memory(4), memory(5), memory(6));
        let step = |variable, values_in, partitionable, reads, writes, read_by| StepFacts {
            variable,
            values_in,
            partitionable,
            reads,
            writes,
            read_by,
        };
        let site = [Component::Site];
        let z = [Component::Z];
        let channel = [Component::Channel];
        let steps = [
            step(&site, &raw, true, &plate, &v1, Some(2)),
            step(&z, &raw, true, &v1, &v2, Some(3)),
            step(&channel, &flat, true, &v2, &v3, Some(4)),
            // Tile positions: a special output.
            step(&site, &one, false, &v3, &v4, None),
            step(&site, &raw, true, &plate, &v5, Some(6)),
            step(&site, &raw, true, &v5, &v6, Some(7)),
            step(&z, &mosaics, true, &v6, &out, None),
        ];
        let found = segments(&steps);
        assert_eq!(
            found,
            [
                Segment { first: 1, last: 2, by: vec![Component::Channel], parts: Some(2) },
                Segment { first: 5, last: 7, by: vec![Component::Channel], parts: Some(2) },
            ]
        );
        // Steps 5 and 6 alone could go plane by plane (channel and z): the z projection after
        // them narrows the cut to the channel.
        let pair = [step(&site, &raw, true, &plate, &v5, Some(2)), step(&site, &raw, true, &v5, &v6, None)];
        let found = segments(&pair);
        assert_eq!(found[0].by, [Component::Channel, Component::Z]);
        assert_eq!(found[0].parts, Some(6));
    }

    #[test]
    fn no_segment_without_a_common_cut_a_chain_or_an_eligible_step() {
        let plate = Location::Plate { root: "p".into() };
        let raw = values(4, 2, 1);
        let (v1, v2) = (memory(1), memory(2));
        let step = |variable, partitionable, reads, read_by| StepFacts {
            variable,
            values_in: &raw,
            partitionable,
            reads,
            writes: if read_by == Some(2) { &v1 } else { &v2 },
            read_by,
        };
        let (site, channel) = ([Component::Site], [Component::Channel]);
        // Sites stacked, then channels: no component is left to cut along (z has one value).
        assert!(segments(&[step(&site, true, &plate, Some(2)), step(&channel, true, &v1, None)]).is_empty());
        // A GPU step (not partitionable) breaks the run.
        assert!(segments(&[step(&site, true, &plate, Some(2)), step(&site, false, &v1, None)]).is_empty());
        // The second step starts again from the plate: not one chain.
        assert!(segments(&[step(&site, true, &plate, None), step(&site, true, &plate, None)]).is_empty());
        // A run of one step is no segment.
        assert!(segments(&[step(&site, true, &plate, None)]).is_empty());
        // Unknown values (after a `planes = any` step) are not cut along.
        let mut unknown = raw.clone();
        unknown.insert(Component::Channel, None);
        let blind = StepFacts { values_in: &unknown, ..step(&site, true, &plate, Some(2)) };
        assert!(cuttable(&blind).is_empty());
    }
}
