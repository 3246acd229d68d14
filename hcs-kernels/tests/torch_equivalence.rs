//! The torch variants against their ndarray twins, called through the registry exactly as the
//! executor calls them. On the CPU by default (CI); `HCS_TORCH_DEVICE=cuda` runs the same
//! checks on `cuda:0` (the device machine).
#![cfg(feature = "torch")]

use hcs_core::torch::{device_of, from_ndarray, to_ndarray};
use hcs_core::{MemoryType, ParamMap, ParamValue, Registry, SpecialData, SpecialInputs, Stack};
use hcs_kernels as _;
use hcs_kernels::stitch::TilePositions;
use ndarray::Array3;
use rand::{Rng, SeedableRng};

fn device() -> tch::Device {
    let device = match std::env::var("HCS_TORCH_DEVICE").as_deref() {
        Ok("cuda") => device_of(Some(0)),
        _ => tch::Device::Cpu,
    };
    eprintln!("torch variants on {device:?}");
    device
}

/// A microscopy-like stack of integer samples: smooth background, bright spots, noise.
fn stack(n: usize, h: usize, w: usize, seed: u64) -> Array3<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let spots: Vec<(f32, f32, f32)> = (0..12)
        .map(|_| (rng.random_range(0.0..h as f32), rng.random_range(0.0..w as f32), rng.random_range(2.0..6.0)))
        .collect();
    Array3::from_shape_fn((n, h, w), |(p, y, x)| {
        let bg = 300.0 + 2.0 * y as f32 + 1.5 * x as f32 + 40.0 * p as f32;
        let s: f32 = spots
            .iter()
            .map(|&(sy, sx, r)| 5000.0 * (-((y as f32 - sy).powi(2) + (x as f32 - sx).powi(2)) / (2.0 * r * r)).exp())
            .sum();
        (bg + s + rng.random_range(0.0..50.0)).round()
    })
}

fn params(pairs: &[(&str, ParamValue)]) -> ParamMap {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// Run `name` on `input` as ndarray and as torch; return both outputs as host arrays.
fn both(name: &str, input: &Array3<f32>, params: &ParamMap, inputs: &SpecialInputs) -> (Array3<f32>, Array3<f32>) {
    let registry = Registry::global();
    let cpu = registry.get(name, MemoryType::Ndarray).expect("ndarray variant");
    let gpu = registry.get(name, MemoryType::Torch).expect("torch variant registered under the same name");
    let a = match cpu.call(Stack::Ndarray(input.clone()), params, inputs).expect("ndarray call").stack {
        Stack::Ndarray(a) => a,
        other => panic!("ndarray variant returned {:?}", other.memory_type()),
    };
    let t = from_ndarray(input.clone(), device()).expect("to torch");
    let b = match gpu.call(Stack::Torch(t), params, inputs).expect("torch call").stack {
        Stack::Torch(t) => {
            assert_eq!(t.device(), device(), "{name} stays on its device");
            to_ndarray(&t).expect("back to ndarray")
        }
        other => panic!("torch variant returned {:?}", other.memory_type()),
    };
    (a, b)
}

/// Largest absolute difference, after checking the shapes agree.
fn max_diff(name: &str, a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim(), "{name}: shapes");
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn composite_and_projections_match() {
    let input = stack(3, 64, 80, 1);
    let none = SpecialInputs::new();
    let weighted = params(&[(
        "weights",
        ParamValue::List(vec![ParamValue::Float(1.0), ParamValue::Float(3.0), ParamValue::Float(0.5)]),
    )]);
    for p in [ParamMap::new(), weighted] {
        let (a, b) = both("create_composite", &input, &p, &none);
        assert!(max_diff("create_composite", &a, &b) <= 1e-3, "composite {p:?}");
    }
    for method in ["max_projection", "mean_projection", "best_focus"] {
        let p = params(&[("method", ParamValue::Str(method.into()))]);
        let (a, b) = both("create_projection", &input, &p, &none);
        assert!(max_diff(method, &a, &b) <= 1e-3, "{method}");
    }
}

#[test]
fn percentile_normalizations_match() {
    let input = stack(3, 64, 80, 2);
    let none = SpecialInputs::new();
    for name in ["percentile_normalize", "stack_percentile_normalize"] {
        for (lo, hi) in [(1.0, 99.0), (0.0, 100.0), (12.5, 87.25)] {
            let p = params(&[("low_percentile", ParamValue::Float(lo)), ("high_percentile", ParamValue::Float(hi))]);
            let (a, b) = both(name, &input, &p, &none);
            // Same order statistics, same stretch: equal to f32 rounding of a 0..65535 range.
            assert!(max_diff(name, &a, &b) <= 0.05, "{name} {lo}-{hi}: {}", max_diff(name, &a, &b));
        }
    }
    // A flat stack maps to target_min in both.
    let flat = Array3::from_elem((2, 8, 8), 7.0f32);
    let (a, b) = both("percentile_normalize", &flat, &ParamMap::new(), &none);
    assert_eq!(a, b);
    assert!(b.iter().all(|&v| v == 0.0));
}

#[test]
fn gaussian_matches() {
    let input = stack(2, 48, 70, 3);
    let none = SpecialInputs::new();
    for sigma in [0.0, 0.7, 2.0, 5.5] {
        let (a, b) = both("gaussian_filter", &input, &params(&[("sigma", ParamValue::Float(sigma))]), &none);
        let tol = 1e-5 * a.iter().fold(0.0f32, |m, v| m.max(v.abs())) + 1e-3;
        assert!(max_diff("gaussian_filter", &a, &b) <= tol, "sigma {sigma}: {}", max_diff("g", &a, &b));
    }
}

#[test]
fn tophat_matches_exact_and_downsampled() {
    let input = stack(2, 70, 90, 4);
    let none = SpecialInputs::new();
    for (radius, factor) in [(6i64, 1i64), (20, 4), (9, 3)] {
        let p = params(&[("selem_radius", ParamValue::Int(radius)), ("downsample_factor", ParamValue::Int(factor))]);
        let (a, b) = both("tophat", &input, &p, &none);
        let d = max_diff("tophat", &a, &b);
        assert!(d <= 0.02, "radius {radius} factor {factor}: {d}");
    }
}

#[test]
fn assembly_matches_with_subpixel_positions() {
    let input = stack(4, 40, 50, 5);
    let positions = TilePositions {
        grid: (2, 2),
        positions: vec![(0.0, 0.0), (44.3, 0.6), (0.4, 35.75), (44.9, 36.2)],
        edges: Vec::new(),
        ncc_threshold: 0.0,
        model_placed: Vec::new(),
        overlap: (0.1, 0.1),
        overlap_source: String::new(),
    };
    let mut inputs = SpecialInputs::new();
    inputs.insert("positions", SpecialData::new(positions));
    for blend in ["fixed", "dynamic", "none"] {
        let p = params(&[("blend_method", ParamValue::Str(blend.into()))]);
        let (a, b) = both("assemble_stack", &input, &p, &inputs);
        assert_eq!(a.dim(), (1, 77, 95), "mosaic size from the positions");
        assert!(max_diff(blend, &a, &b) <= 1e-2, "{blend}: {}", max_diff(blend, &a, &b));
    }
}

#[test]
fn every_torch_variant_has_the_parameters_of_its_ndarray_twin() {
    let registry = Registry::global();
    let torch: Vec<_> = registry.iter().filter(|c| c.input_memory == MemoryType::Torch).collect();
    let names: Vec<&str> = torch.iter().map(|c| c.name).collect();
    for expected in [
        "assemble_stack",
        "create_composite",
        "create_projection",
        "gaussian_filter",
        "percentile_normalize",
        "stack_percentile_normalize",
        "tophat",
    ] {
        assert!(names.contains(&expected), "{expected} has a torch variant");
    }
    for t in torch {
        let cpu = registry.get(t.name, MemoryType::Ndarray).expect("an ndarray twin");
        let tp: Vec<_> = t.params.iter().map(|p| (p.name, p.rust_type)).collect();
        let cp: Vec<_> = cpu.params.iter().map(|p| (p.name, p.rust_type)).collect();
        assert_eq!(tp, cp, "{}: same parameters", t.name);
        assert_eq!(t.output_planes, cpu.output_planes, "{}: same plane count", t.name);
        let keys = |c: &hcs_core::FunctionContract| c.special_inputs.iter().map(|s| s.key).collect::<Vec<_>>();
        assert_eq!(keys(t), keys(cpu), "{}: same special inputs", t.name);
    }
}
