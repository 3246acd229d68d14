//! The parts of a segment: a well's planes split by the values of the components no step of the
//! segment stacks (see [`hcs_plan::compiler::Segment`]). The executor runs the segment's steps on
//! one part, then on the next, so the well holds one part's intermediates at a time.

use std::collections::BTreeSet;

use hcs_plate::{Component, ImageKey};

/// One part: a value for each component of the segment's `by`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    by: Vec<(Component, u32)>,
}

impl Part {
    /// Whether the plane `key` belongs to this part.
    pub fn holds(&self, key: &ImageKey) -> bool {
        self.by.iter().all(|(c, v)| key.get(*c) == *v)
    }

    /// A readable name (`channel 2`), for messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self.by.iter().map(|(c, v)| format!("{} {v}", c.name())).collect();
        parts.join(", ")
    }
}

/// The parts of `keys` along `by`, in natural component order. No key is left out: every key
/// belongs to exactly one part.
pub fn parts(keys: &[ImageKey], by: &[Component]) -> Vec<Part> {
    let values: BTreeSet<Vec<u32>> = keys.iter().map(|k| by.iter().map(|c| k.get(*c)).collect()).collect();
    values.into_iter().map(|v| Part { by: by.iter().copied().zip(v).collect() }).collect()
}

/// How a step takes part in a segment's run.
#[derive(Clone, Copy, Debug)]
pub struct PartOf<'a> {
    /// The part this run of the step sees.
    pub part: &'a Part,
    /// Whether the step frees its input location afterwards: not the segment's first step
    /// before its last part (its input, written before the segment, holds the parts still to
    /// come).
    pub frees_input: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_plate::WellId;

    fn key(site: u32, channel: u32, z: u32) -> ImageKey {
        ImageKey { well: WellId::new(0, 1), timepoint: 1, site, channel, z }
    }

    #[test]
    fn every_plane_is_in_exactly_one_part_in_natural_order() {
        let keys: Vec<ImageKey> =
            (1..=3).flat_map(|s| (1..=2).flat_map(move |c| (1..=2).map(move |z| key(s, c, z)))).collect();
        let by_channel = parts(&keys, &[Component::Channel]);
        assert_eq!(by_channel.len(), 2);
        assert_eq!(by_channel[1].describe(), "channel 2");
        for k in &keys {
            assert_eq!(by_channel.iter().filter(|p| p.holds(k)).count(), 1, "{k:?}");
        }
        let fine = parts(&keys, &[Component::Channel, Component::Z]);
        assert_eq!(fine.len(), 4);
        assert_eq!(fine[1].describe(), "channel 1, z_index 2");
        assert_eq!(keys.iter().filter(|k| fine[1].holds(k)).count(), 3, "one plane per site");
        assert!(parts(&[], &[Component::Channel]).is_empty());
    }
}
