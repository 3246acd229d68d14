//! Every kernel on a 9 × 1024 × 1024 f32 stack (a 3×3 well of camera tiles). The input copy each
//! call consumes is made outside the timed region. The reductions (projections, composite) are
//! timed on a borrowed stack, as numpy's are: freeing a consumed 36 MB input costs more than the
//! reduction itself, and that cost belongs to whoever owns the stack.
//! `bench/kernels_vs_python.sh` runs the same operations in scikit-image / scipy / numpy on the
//! same data and prints python_time / hcs_time.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use hcs_kernels::binning::{BinMethod, spatial_bin_2d, spatial_bin_3d};
use hcs_kernels::cells::{DetectionMethod, ThresholdMethod, count_cells_single_channel};
use hcs_kernels::composite::composite_of;
use hcs_kernels::crop::crop;
use hcs_kernels::equalize::stack_equalize_histogram;
use hcs_kernels::flatfield::{CorrectionMode, basic_flatfield_correction};
use hcs_kernels::gaussian::gaussian_filter;
use hcs_kernels::morphology::tophat;
use hcs_kernels::normalize::{percentile_normalize, stack_percentile_normalize};
use hcs_kernels::projection::{best_focus_projection, max_projection_of, mean_projection_of};
use hcs_kernels::sharpen::sharpen;
use hcs_kernels::stitch::TilePositions;
use hcs_kernels::stitch::assemble::{Blend, assemble_stack};
use hcs_kernels::stitch::positions::ashlar_compute_tile_positions;
use hcs_synth::{Scene, SynthConfig, render_tile, tile_positions};
use ndarray::Array3;

/// Deterministic u16-valued data shared with bench/kernels_python.py (same formula).
pub fn bench_stack() -> Array3<f32> {
    Array3::from_shape_fn((9, 1024, 1024), |(p, y, x)| {
        let h = (p as u64 * 1_000_003 + y as u64 * 1031 + x as u64).wrapping_mul(2_654_435_761) % 4096;
        let spot = if (x / 29 + y / 31 + p) % 11 == 0 { 8000.0 } else { 0.0 };
        (600.0 + spot + h as f64) as f32
    })
}

/// Nine overlapping 1024² tiles of a synthetic well (3 × 3, 10 % overlap), for registration.
fn synthetic_tiles() -> Array3<f32> {
    let config = SynthConfig { wells: vec!["A01".parse().expect("well")], tile: 1024, ..SynthConfig::default() };
    let well = config.wells[0];
    let scene = Scene::generate(&config, well);
    let positions = tile_positions(&config, well);
    let mut stack = Array3::<f32>::zeros((positions.len(), 1024, 1024));
    for (i, t) in positions.iter().enumerate() {
        stack.index_axis_mut(ndarray::Axis(0), i).assign(&render_tile(&config, &scene, well, t, 1, 2, 1).to_f32());
    }
    stack
}

/// A 3 × 3 grid of 1024² tiles at 10 % overlap (origins 921.6 px apart).
fn grid_positions() -> TilePositions {
    let positions = (0..9).map(|i| (f64::from(i % 3) * 921.6, f64::from(i / 3) * 921.6)).collect();
    TilePositions {
        grid: (3, 3),
        positions,
        edges: Vec::new(),
        ncc_threshold: 0.0,
        model_placed: Vec::new(),
        overlap: (0.1, 0.1),
        overlap_source: String::new(),
    }
}

fn bench(c: &mut Criterion) {
    let stack = bench_stack();
    let mut g = c.benchmark_group("kernels_9x1024x1024");
    g.sample_size(10);
    g.bench_function("max_projection", |b| b.iter(|| black_box(max_projection_of(stack.view()))));
    g.bench_function("mean_projection", |b| b.iter(|| black_box(mean_projection_of(stack.view()))));
    g.bench_function("create_composite", |b| b.iter(|| black_box(composite_of(stack.view(), None))));
    g.bench_function("stack_percentile_normalize", |b| {
        b.iter_batched(
            || stack.clone(),
            |s| black_box(stack_percentile_normalize(s, 1.0, 99.0, 0.0, 65535.0).expect("valid")),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("percentile_normalize", |b| {
        b.iter_batched(
            || stack.clone(),
            |s| black_box(percentile_normalize(s, 1.0, 99.0, 0.0, 65535.0).expect("valid")),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("gaussian_filter", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(gaussian_filter(s, 2.0)), BatchSize::LargeInput)
    });
    g.bench_function("sharpen", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(sharpen(s, 1.0, 1.0)), BatchSize::LargeInput)
    });
    g.bench_function("stack_equalize_histogram", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(stack_equalize_histogram(s, 65536)), BatchSize::LargeInput)
    });
    g.bench_function("spatial_bin_2d", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(spatial_bin_2d(s, 2, BinMethod::Mean)), BatchSize::LargeInput)
    });
    g.bench_function("tophat_r50_ds4", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(tophat(s, 50, 4)), BatchSize::LargeInput)
    });
    g.bench_function("crop", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(crop(s, 100, 100, 0, 800, 800, 9)), BatchSize::LargeInput)
    });
    g.bench_function("spatial_bin_3d", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(spatial_bin_3d(s, 2, BinMethod::Mean)), BatchSize::LargeInput)
    });
    g.bench_function("best_focus_projection", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(best_focus_projection(s)), BatchSize::LargeInput)
    });
    let tiles = synthetic_tiles();
    g.bench_function("ashlar_compute_tile_positions", |b| {
        b.iter_batched(
            || tiles.clone(),
            |s| black_box(ashlar_compute_tile_positions(s, &(3, 3), &None, 0.1, 15.0, 0.01, 10, 100)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("assemble_stack", |b| {
        let positions = grid_positions();
        b.iter_batched(
            || stack.clone(),
            |s| black_box(assemble_stack(s, &positions, Blend::Fixed, 0.1, 1.0)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("basic_flatfield_correction", |b| {
        b.iter_batched(
            || stack.clone(),
            |s| black_box(basic_flatfield_correction(s, 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 64)),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("count_cells_blob_log", |b| {
        b.iter_batched(
            || stack.clone(),
            |s| {
                black_box(count_cells_single_channel(
                    s,
                    DetectionMethod::BlobLog,
                    1.0,
                    10.0,
                    10,
                    0.1,
                    0.5,
                    3,
                    5,
                    ThresholdMethod::Otsu,
                    true,
                    1.0,
                    1,
                    10.0,
                    1000.0,
                    true,
                    false,
                ))
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("tophat_r50_exact", |b| {
        b.iter_batched(|| stack.clone(), |s| black_box(tophat(s, 50, 1)), BatchSize::LargeInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
