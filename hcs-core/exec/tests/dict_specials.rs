//! Special data around dict patterns, run on a synthetic plate (issue 19): what the compiler
//! accepts — a dict entry reading a special output of an earlier step, a later step reading a
//! special output a dict entry produced — runs and hands over the right values; a dict entry
//! reading another entry's output is refused before anything runs.

mod common;
use common::read_u16;

use std::path::{Path, PathBuf};

use hcs_core::{NdarrayStack, Registry};
use hcs_exec::{RunOptions, WellStatus, run};
use hcs_macros::memory;
use hcs_plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs_plan::pipeline::{ConfigLayer, FunctionPattern, FunctionStep, Pipeline, PipelineError};
use hcs_plate::formats::open_plate;
use hcs_plate::{Component, ImageKey};
use hcs_synth::{SynthConfig, synthesize};

/// Special output `offset` = 10; the stack passes through.
#[memory(ndarray)]
#[hcs_macros::special_outputs(offset)]
fn dict_offset(stack: NdarrayStack) -> (NdarrayStack, f32) {
    (stack, 10.0)
}

/// Adds special input `offset`.
#[memory(ndarray)]
#[hcs_macros::special_inputs(offset)]
fn dict_add_offset(stack: NdarrayStack, offset: &f32) -> NdarrayStack {
    stack + *offset
}

/// Special output `plane_count`: the planes this call got; the stack passes through.
#[memory(ndarray)]
#[hcs_macros::special_outputs(plane_count)]
fn dict_plane_count(stack: NdarrayStack) -> (NdarrayStack, f32) {
    let n = stack.shape()[0] as f32;
    (stack, n)
}

/// Adds special input `plane_count`.
#[memory(ndarray)]
#[hcs_macros::special_inputs(plane_count)]
fn dict_add_count(stack: NdarrayStack, plane_count: &f32) -> NdarrayStack {
    stack + *plane_count
}

/// Adds 1.
#[memory(ndarray)]
fn dict_plus_one(stack: NdarrayStack) -> NdarrayStack {
    stack + 1.0
}

/// Adds 2.
#[memory(ndarray)]
fn dict_plus_two(stack: NdarrayStack) -> NdarrayStack {
    stack + 2.0
}

fn registry() -> Registry {
    Registry::from_contracts([
        dict_offset::FUNC,
        dict_add_offset::FUNC,
        dict_plane_count::FUNC,
        dict_add_count::FUNC,
        dict_plus_one::FUNC,
        dict_plus_two::FUNC,
    ])
}

/// One well, 2 × 2 sites, 2 channels, 2 z-planes.
fn plate_dir(name: &str) -> PathBuf {
    plate_dir_of(name, &["A01"])
}

/// [`plate_dir`] with these wells.
fn plate_dir_of(name: &str, wells: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-exec-dict-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = SynthConfig {
        wells: wells.iter().map(|w| w.parse().expect("well")).collect(),
        grid: (2, 2),
        tile: 16,
        channels: 2,
        z_planes: 2,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir.join("plate")).expect("synthetic plate");
    dir
}

fn options<'a>(registry: &'a Registry, dir: &Path) -> CompileOptions<'a> {
    CompileOptions {
        overrides: ConfigLayer { output_root: Some(dir.join("out")), ..Default::default() },
        ..CompileOptions::new(registry)
    }
}

#[test]
fn dict_entries_read_specials_of_earlier_steps_and_later_steps_read_an_entrys_specials() {
    let r = registry();
    let dir = plate_dir("accepted");
    let pipeline = Pipeline::new("dict specials")
        // One call per well: `offset` = 10.
        .step(FunctionStep::new("measure", "dict_offset").variable_components([
            Component::Site,
            Component::Channel,
            Component::Z,
        ]))
        // Channel 1 counts its planes (4 sites × 2 z = 8, in one call); channel 2 adds step 1's
        // `offset`.
        .step(
            FunctionStep::new(
                "per channel",
                FunctionPattern::dict([("1", "dict_plane_count"), ("2", "dict_add_offset")]),
            )
            .group_by(Component::Channel)
            .variable_components([Component::Site, Component::Z]),
        )
        // Every group adds the count entry "1" of step 2 made.
        .step(FunctionStep::new("add count", "dict_add_count"));
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options(&r, &dir)).expect("compiles");
    let report = run(&compiled, &plate, &r, &RunOptions::default()).expect("runs");
    assert_eq!(report.wells[0].status, WellStatus::Done, "{:?}", report.wells[0].status);

    for (channel, delta) in [(1u32, 8.0f32), (2, 18.0)] {
        for (site, z) in [(1u32, 1u32), (4, 2)] {
            let key = ImageKey { well: "A01".parse().expect("well"), timepoint: 1, site, channel, z };
            let input = plate.load_stack(&[key]).expect("load");
            let out = read_u16(&dir.join(format!("out/images/A01_s{site:03}_w{channel}_z{z:03}_t001.tif")));
            assert_eq!(out.len(), input.len());
            for (o, i) in out.iter().zip(input.iter()) {
                assert_eq!(f32::from(*o), (i + delta).min(f32::from(u16::MAX)), "channel {channel} site {site} z {z}");
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dict_keyed_by_well_runs_each_wells_entry() {
    // The entries are written as the plate names its wells; the router once matched them against
    // the well's number (row × 1000 + column), so no entry ran and every plane passed through.
    let r = registry();
    let dir = plate_dir_of("by-well", &["A01", "B02"]);
    let pipeline = Pipeline::new("per well").step(
        FunctionStep::new("per well", FunctionPattern::dict([("A01", "dict_plus_one"), ("B02", "dict_plus_two")]))
            .group_by(Component::Well),
    );
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options(&r, &dir)).expect("compiles");
    let report = run(&compiled, &plate, &r, &RunOptions::default()).expect("runs");
    assert!(report.wells.iter().all(|w| w.status == WellStatus::Done), "{:?}", report.wells);
    for (well, delta) in [("A01", 1.0f32), ("B02", 2.0)] {
        let key = ImageKey { well: well.parse().expect("well"), timepoint: 1, site: 2, channel: 2, z: 1 };
        let input = plate.load_stack(&[key]).expect("load");
        let out = read_u16(&dir.join(format!("out/images/{well}_s002_w2_z001_t001.tif")));
        assert_eq!(out.len(), input.len());
        for (o, i) in out.iter().zip(input.iter()) {
            assert_eq!(f32::from(*o), (i + delta).min(f32::from(u16::MAX)), "{well}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_dict_entry_reading_another_entrys_special_is_refused_before_running() {
    let r = registry();
    let dir = plate_dir("refused");
    let pipeline = Pipeline::new("siblings").step(
        FunctionStep::new("per channel", FunctionPattern::dict([("1", "dict_plane_count"), ("2", "dict_add_count")]))
            .group_by(Component::Channel)
            .variable_components([Component::Site, Component::Z]),
    );
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let errors = match compile(&pipeline, &PlateInfo::of(&plate), &options(&r, &dir)) {
        Ok(_) => panic!("a link between two entries of one dict compiled"),
        Err(errors) => errors,
    };
    assert!(
        matches!(&errors[..], [PipelineError::DictEntryLink { link, .. }] if link.key == "plane_count"),
        "{errors:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
