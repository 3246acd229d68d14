//! A run over an output whose wells are all complete verifies each well's files once: the
//! read-ahead thread decides from the wells' records alone, where it read every file of every
//! complete well a second time (a resumed run of the 8-well synthetic plate read 158 MiB
//! instead of 88). Measured with the process's own read counter (`/proc/self/io`), so this file
//! holds one test: no other test's reads run beside it.

#![cfg(target_os = "linux")]

use std::path::Path;

use hcs_exec::{RunOptions, WellStatus, run};
// The kernels register through linkme: referenced, or the linker drops them.
use hcs_kernels as _;
use hcs_plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs_plan::pipeline::{ConfigLayer, FunctionStep, Pipeline};
use hcs_plate::formats::open_plate;
use hcs_synth::{SynthConfig, synthesize};

/// Bytes this process has read through `read` and its kin so far.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines().find_map(|l| l.strip_prefix("rchar: ")).and_then(|v| v.trim().parse().ok()).expect("rchar")
}

fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { tree_bytes(&path) } else { e.metadata().map_or(0, |m| m.len()) }
        })
        .sum()
}

#[test]
fn a_resumed_run_reads_each_complete_wells_files_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = SynthConfig {
        wells: ["A01", "A02", "B01", "B02"].iter().map(|w| w.parse().expect("well")).collect(),
        grid: (2, 2),
        tile: 128,
        channels: 2,
        z_planes: 2,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir.path().join("plate")).expect("synthetic plate");
    let registry = hcs_core::Registry::global();
    let pipeline = Pipeline::new("normalize").step(FunctionStep::new("normalize", "percentile_normalize"));
    let plate = open_plate(&dir.path().join("plate"), None).expect("plate");
    let options = CompileOptions {
        overrides: ConfigLayer { output_root: Some(dir.path().join("out")), ..Default::default() },
        ..CompileOptions::new(registry)
    };
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options).expect("compiles");
    let first = run(&compiled, &plate, registry, &RunOptions::default()).expect("runs");
    assert!(first.wells.iter().all(|w| w.status == WellStatus::Done));
    let images = tree_bytes(&dir.path().join("out/images"));
    assert!(images > 4 * 16 * 128 * 128, "the outputs are the plate's planes: {images} bytes");

    let before = bytes_read();
    let again = run(&compiled, &plate, registry, &RunOptions::default()).expect("runs");
    let read = bytes_read() - before;
    assert!(again.wells.iter().all(|w| w.status == WellStatus::Resumed));
    // Each file is read once to verify it (its CRC), plus records and headers: well under two
    // passes over the outputs.
    assert!(read >= images, "every output file verified: {read} bytes read, {images} of outputs");
    assert!(read < images + images / 2, "{read} bytes read for {images} bytes of outputs");
}
