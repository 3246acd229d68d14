//! Compile time of the canonical pipeline's first 6 steps for 1, 96, 384 and 1536 wells (3 × 3
//! sites, 2 channels, 3 z-planes): plate-level phases once, then one small per-well expansion,
//! wells in parallel. `cargo bench -p hcs-plan --bench compile`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hcs_core::Registry;
use hcs_plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs_plan::pipeline::Pipeline;
// The shipped kernels, linked so the canonical pipeline's functions are registered.
use hcs_kernels as _;

fn six_steps() -> Pipeline {
    let text = include_str!("../../../examples/pipelines/canonical.toml");
    let (mut pipeline, _) = Pipeline::from_toml(text).expect("the shipped canonical pipeline parses");
    pipeline.steps.truncate(6);
    pipeline
}

fn bench(c: &mut Criterion) {
    let pipeline = six_steps();
    let options = CompileOptions::new(Registry::global());
    let mut group = c.benchmark_group("compile_6_steps");
    for (wells, rows, cols) in [(1usize, 1u16, 1u16), (96, 8, 12), (384, 16, 24), (1536, 32, 48)] {
        let plate = PlateInfo::regular("/data/plate", rows, cols, (3, 3), 2, 3, 1, (1024, 1024));
        assert_eq!(plate.wells.len(), wells);
        group.bench_with_input(BenchmarkId::from_parameter(wells), &plate, |b, plate| {
            b.iter(|| compile(black_box(&pipeline), plate, &options).expect("compiles"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
