//! Device out-of-memory through the whole executor: a torch function that asks for far more
//! memory than any GPU has. On a GPU machine the well is retried one group at a time, then falls
//! back to the function's ndarray twin (`prefer`) — both logged in the well's notes — or fails
//! (`require`). Without a GPU the compiler picks the ndarray twin and nothing is retried.
#![cfg(feature = "torch")]

use std::path::{Path, PathBuf};

use hcs_core::{MemoryType, NdarrayStack, Registry, TorchStack};
use hcs_exec::{RunOptions, RunReport, WellStatus, run};
use hcs_macros::memory;
use hcs_plan::compiler::{CompileOptions, ConversionTable, PlateInfo, compile};
use hcs_plan::pipeline::{ConfigLayer, FunctionStep, GpuPolicy, Pipeline};
use hcs_plate::formats::open_plate;
use hcs_synth::{SynthConfig, synthesize};

mod gpu {
    use super::*;
    /// Asks for 16 TiB on the stack's device, then would add one.
    #[memory(torch)]
    pub fn hungry(stack: TorchStack) -> Result<TorchStack, hcs_kernels::KernelError> {
        let device = stack.device();
        let _huge = hcs_core::torch::tch::Tensor::f_empty([1i64 << 42], (hcs_core::torch::tch::Kind::Float, device))
            .map_err(|e| hcs_kernels::KernelError::Device(hcs_core::torch::error(device, e)))?;
        Ok(stack + 1.0)
    }
}

mod cpu {
    use super::*;
    /// Adds one.
    #[memory(ndarray)]
    pub fn hungry(stack: NdarrayStack) -> NdarrayStack {
        stack + 1.0
    }
}

fn plate(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hcs-oom-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let config = SynthConfig {
        wells: vec!["A01".parse().expect("well")],
        grid: (2, 1),
        tile: 32,
        channels: 2,
        z_planes: 2,
        ..SynthConfig::default()
    };
    synthesize(&config, &dir.join("plate")).expect("synthetic plate");
    dir
}

fn run_with(dir: &Path, out: &str, policy: GpuPolicy, registry: &Registry) -> Result<RunReport, String> {
    let plate = open_plate(&dir.join("plate"), None).expect("plate");
    let options = CompileOptions {
        registry,
        global: ConfigLayer::default(),
        overrides: ConfigLayer { output_root: Some(dir.join(out)), gpu_policy: Some(policy), ..Default::default() },
        gpus: hcs_device::detect(),
        conversions: ConversionTable::built_in(),
        wells: None,
        source: None,
    };
    let pipeline = Pipeline::new("oom").step(FunctionStep::new("add", "hungry"));
    let compiled = compile(&pipeline, &PlateInfo::of(&plate), &options).map_err(|e| format!("{e:?}"))?;
    let calls = compiled.wells[0].steps[0].func.calls();
    let expected = match policy {
        GpuPolicy::Never => MemoryType::Ndarray,
        _ if options.gpus.is_empty() => MemoryType::Ndarray,
        _ => MemoryType::Torch,
    };
    assert_eq!(calls[0].input_memory, expected, "the variant the policy picks");
    Ok(run(&compiled, &plate, registry, &RunOptions::default()).expect("runs"))
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("images")
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).expect("read")))
        .collect();
    v.sort();
    v
}

#[test]
fn out_of_device_memory_retries_then_falls_back_per_policy() {
    let registry = Registry::from_contracts([gpu::hungry::FUNC, cpu::hungry::FUNC]);
    let dir = plate("policy");
    let reference = run_with(&dir, "cpu", GpuPolicy::Never, &registry).expect("compiles");
    assert_eq!(reference.wells[0].status, WellStatus::Done);
    let prefer = run_with(&dir, "prefer", GpuPolicy::Prefer, &registry).expect("compiles");
    let well = &prefer.wells[0];
    assert_eq!(well.status, WellStatus::Done);
    assert_eq!(files(&dir.join("prefer/images")), files(&dir.join("cpu/images")), "same output as the CPU run");
    if hcs_device::detect().is_empty() {
        assert!(well.notes.is_empty(), "no GPU: nothing to retry, {:?}", well.notes);
        assert!(run_with(&dir, "require", GpuPolicy::Require, &registry).is_err(), "require needs a GPU");
    } else {
        assert_eq!(well.notes.len(), 2, "{:?}", well.notes);
        assert!(well.notes[0].contains("out of memory on cuda:") && well.notes[0].contains("one group at a time"));
        assert!(well.notes[1].contains("falling back to the CPU variants"), "{}", well.notes[1]);
        let require = run_with(&dir, "require", GpuPolicy::Require, &registry).expect("compiles with a GPU");
        match &require.wells[0].status {
            WellStatus::Failed(m) => assert!(m.contains("out of memory") && m.contains("require"), "{m}"),
            other => panic!("require must not fall back: {other:?}"),
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
