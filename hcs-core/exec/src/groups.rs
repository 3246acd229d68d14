//! Pattern groups and output naming.
//!
//! A step's input planes of one well are split into groups: planes that agree on every component
//! *not* in `variable_components` form one group, stacked in natural component order (timepoint,
//! site, channel, z — numeric, so site 10 follows site 9) into one call.
//!
//! **Output naming.** A call's output planes are named by components, not by file names: when it
//! returns as many planes as it received, plane *i* keeps the components of input plane *i*; when
//! it returns fewer (a projection, composite or mosaic returns one), plane *i* takes the
//! components of input plane *i* — so a single plane carries every variable component at its
//! first value (z 1 after a z projection, site 1 after assembly), exactly the values the compiler
//! planned; more planes than it received is an error.

use std::collections::BTreeMap;

use hcs_plate::{Component, ImageKey};

use crate::error::StepError;

/// The components that identify a group (the non-variable ones), as a sortable key.
pub type GroupKey = [u32; 4];

fn fixed(key: &ImageKey, variable: &[Component]) -> GroupKey {
    let f = |c: Component| if variable.contains(&c) { 0 } else { key.get(c) };
    [f(Component::Timepoint), f(Component::Site), f(Component::Channel), f(Component::Z)]
}

/// Split one well's planes into groups, each in stacking order.
pub fn groups(keys: &[ImageKey], variable: &[Component]) -> BTreeMap<GroupKey, Vec<ImageKey>> {
    let mut out: BTreeMap<GroupKey, Vec<ImageKey>> = BTreeMap::new();
    for k in keys {
        out.entry(fixed(k, variable)).or_default().push(*k);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// A readable group label for file names of per-group outputs (`c2_z1`): the fixed components
/// with more than one value in the step.
pub fn label(keys: &[ImageKey], variable: &[Component], varying: &[Component]) -> String {
    let Some(k) = keys.first() else { return "all".into() };
    let parts: Vec<String> =
        [(Component::Timepoint, "t"), (Component::Site, "s"), (Component::Channel, "c"), (Component::Z, "z")]
            .iter()
            .filter(|(c, _)| !variable.contains(c) && varying.contains(c))
            .map(|(c, p)| format!("{p}{}", k.get(*c)))
            .collect();
    if parts.is_empty() { "all".into() } else { parts.join("_") }
}

/// Whether `text` is a label [`label`] gives: `all`, or fixed components joined by `_`, each a
/// letter (`t`, `s`, `c`, `z`) and a number (`c2_z1`). Readers of per-group output files
/// (`<well>_<label>_<key>…`) use it to tell them from other files.
pub fn is_label(text: &str) -> bool {
    text == "all"
        || text.split('_').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some('t' | 's' | 'c' | 'z'))
                && !chars.as_str().is_empty()
                && chars.all(|c| c.is_ascii_digit())
        })
}

/// The names of `n` output planes of a call that received `inputs` (see the module docs).
pub fn output_keys(inputs: &[ImageKey], n: usize) -> Result<Vec<ImageKey>, StepError> {
    if n > inputs.len() {
        return Err(StepError::TooManyPlanes { returned: n, received: inputs.len() });
    }
    Ok(inputs[..n].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_plate::WellId;

    fn key(site: u32, channel: u32, z: u32) -> ImageKey {
        ImageKey { well: WellId::new(0, 1), timepoint: 1, site, channel, z }
    }

    #[test]
    fn planes_group_by_the_non_variable_components_in_natural_order() {
        let keys = vec![key(10, 1, 1), key(2, 1, 1), key(2, 2, 1), key(10, 2, 1), key(1, 1, 1)];
        let g = groups(&keys, &[Component::Site]);
        assert_eq!(g.len(), 2, "one group per channel");
        let first: Vec<u32> = g.values().next().expect("group").iter().map(|k| k.site).collect();
        assert_eq!(first, [1, 2, 10]);
        let by_channel = groups(&keys, &[Component::Channel]);
        assert_eq!(by_channel.len(), 3, "one group per site");
        assert_eq!(label(&g[&[1, 0, 2, 1]], &[Component::Site], &[Component::Channel]), "c2");
    }

    #[test]
    fn every_label_given_reads_as_one_and_other_names_do_not() {
        let all = [Component::Timepoint, Component::Site, Component::Channel, Component::Z];
        let k = ImageKey { well: WellId::new(0, 1), timepoint: 3, site: 12, channel: 2, z: 10 };
        for variable in [&all[..0], &all[..1], &all[1..3], &all[..]] {
            for varying in [&all[..0], &all[2..], &all[..]] {
                let given = label(&[k], variable, varying);
                assert!(is_label(&given), "{given}");
            }
        }
        assert_eq!(label(&[k], &[], &all), "t3_s12_c2_z10");
        assert!(is_label(&label(&[], &[], &all)), "no keys: all");
        for other in ["", "tile", "c", "c2_", "x2", "c2_zz", "All"] {
            assert!(!is_label(other), "{other}");
        }
    }

    #[test]
    fn fewer_outputs_take_the_first_components_and_more_are_refused() {
        let inputs = [key(1, 1, 1), key(1, 1, 2), key(1, 1, 3)];
        assert_eq!(output_keys(&inputs, 1).expect("one"), [key(1, 1, 1)]);
        assert_eq!(output_keys(&inputs, 3).expect("same"), inputs);
        assert!(output_keys(&inputs, 4).expect_err("more").to_string().contains("never more"));
    }
}
