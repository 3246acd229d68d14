//! A special output kept per group (`merge_outputs`) read by a later step: each group of the
//! reader takes the value its own producer group made — tile positions per timepoint for a
//! time-lapse mosaic is the case users meet. Run on a synthetic plate; the values are checked
//! against the plate's pixels, not against the executor's own bookkeeping.

mod common;
use common::read_u16;

use std::path::PathBuf;

use hcs_core::{NdarrayStack, Registry};
use hcs_exec::{RunOptions, WellStatus, run};
use hcs_macros::memory;
use hcs_plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs_plan::pipeline::{ConfigLayer, FunctionStep, Pipeline};
use hcs_plate::formats::open_plate;
use hcs_plate::{Component, ImageKey};
use hcs_synth::{SynthConfig, synthesize};

/// Special output `group_mean`: the mean of the planes this call got; the stack passes through.
#[memory(ndarray)]
#[hcs_macros::special_outputs(group_mean)]
fn pg_group_mean(stack: NdarrayStack) -> (NdarrayStack, f32) {
    let mean = stack.mean().unwrap_or(0.0);
    (stack, mean)
}

/// Every pixel becomes special input `group_mean`.
#[memory(ndarray)]
#[hcs_macros::special_inputs(group_mean)]
fn pg_fill_with_mean(stack: NdarrayStack, group_mean: &f32) -> NdarrayStack {
    stack.mapv(|_| *group_mean)
}

fn registry() -> Registry {
    Registry::from_contracts([pg_group_mean::FUNC, pg_fill_with_mean::FUNC])
}

/// One well, 2 × 1 sites, 2 channels, 1 z-plane, 3 timepoints.
fn plate_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-exec-per-group-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = SynthConfig {
        wells: vec!["A01".parse().expect("well")],
        grid: (2, 1),
        tile: 16,
        channels: 2,
        z_planes: 1,
        timepoints: 3,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir.join("plate")).expect("synthetic plate");
    dir
}

#[test]
fn each_group_of_a_later_step_reads_its_own_groups_merged_value() {
    let r = registry();
    let dir = plate_dir("timepoints");
    // Step 1 keeps one mean per (channel, timepoint) — its groups stack the sites; step 2's
    // groups are the same (channel, timepoint) pairs, and each fills its planes with its mean.
    let pipeline = Pipeline::new("per group")
        .step(FunctionStep::new("measure", "pg_group_mean").merge_outputs(["group_mean"]))
        .step(FunctionStep::new("fill", "pg_fill_with_mean"));
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let options = CompileOptions {
        overrides: ConfigLayer { output_root: Some(dir.join("out")), ..Default::default() },
        ..CompileOptions::new(&r)
    };
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options).expect("compiles");
    let report = run(&compiled, &plate, &r, &RunOptions::default()).expect("runs");
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0].status);

    let mut expected_means = Vec::new();
    for timepoint in 1..=3u32 {
        for channel in 1..=2u32 {
            let keys: Vec<ImageKey> = (1..=2u32)
                .map(|site| ImageKey { well: "A01".parse().expect("well"), timepoint, site, channel, z: 1 })
                .collect();
            let input = plate.load_stack(&keys).expect("load");
            let mean = input.iter().map(|&v| f64::from(v)).sum::<f64>() / input.len() as f64;
            let expected = mean.round() as u16;
            for site in 1..=2u32 {
                let out = read_u16(&dir.join(format!("out/images/A01_s{site:03}_w{channel}_z001_t{timepoint:03}.tif")));
                assert!(
                    out.iter().all(|&v| v.abs_diff(expected) <= 1),
                    "timepoint {timepoint} channel {channel} site {site}: expected {expected}, got {:?}",
                    &out[..4]
                );
            }
            expected_means.push(expected);
        }
    }
    // The groups' means differ, so a group that read another's value would have failed above.
    expected_means.sort_unstable();
    expected_means.dedup();
    assert!(expected_means.len() > 1, "the synthetic groups have distinct means: {expected_means:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_later_step_stacking_what_the_producer_groups_by_is_refused_before_the_run() {
    let r = registry();
    let dir = plate_dir("refused");
    let pipeline = Pipeline::new("per group")
        .step(FunctionStep::new("measure", "pg_group_mean").merge_outputs(["group_mean"]))
        .step(
            FunctionStep::new("fill", "pg_fill_with_mean").variable_components([Component::Site, Component::Timepoint]),
        );
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let options = CompileOptions {
        overrides: ConfigLayer { output_root: Some(dir.join("out")), ..Default::default() },
        ..CompileOptions::new(&r)
    };
    let errors = compile(&pipeline, &PlateInfo::of(&plate), &options).expect_err("refused");
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "step 2 `fill`: `pg_fill_with_mean` needs special input `group_mean`, but step 1 keeps one per channel and timepoint (`merge_outputs`) and this step stacks timepoint (`variable_components`), so a call would need several; leave timepoint out of `variable_components`"
        ]
    );
    assert!(!dir.join("out").exists(), "nothing written");
    std::fs::remove_dir_all(&dir).ok();
}
