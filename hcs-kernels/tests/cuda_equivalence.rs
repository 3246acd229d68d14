//! The cuda variants against their ndarray twins, on a real GPU when this machine has one.
//! Without libcuda (CI), the same file checks that the build reports no GPU and refuses to
//! move a stack to one with a clear error instead of panicking.
#![cfg(feature = "cuda")]

use hcs_core::cuda::{CudaStack, culib_present};
use hcs_core::{MemoryType, ParamMap, ParamValue, Registry, SpecialInputs, Stack};
use hcs_device::cuda_inventory as inventory;
use hcs_kernels as _;
use ndarray::Array3;
use rand::{Rng, SeedableRng};

fn has_gpu() -> bool {
    culib_present() && !inventory().is_empty()
}

fn stack(n: usize, h: usize, w: usize, seed: u64, integer: bool) -> Array3<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array3::from_shape_fn((n, h, w), |(p, y, x)| {
        let v = 200.0 + 3.0 * y as f32 + 2.0 * x as f32 + 50.0 * p as f32 + rng.random_range(0.0..400.0f32);
        let v = if (y * 7 + x * 3) % 97 == 0 { v + 20000.0 } else { v };
        if integer { v.round() } else { v * 1.37 }
    })
}

fn both(name: &str, input: &Array3<f32>, params: &ParamMap) -> (Array3<f32>, Array3<f32>) {
    let registry = Registry::global();
    let cpu = registry.get(name, MemoryType::Ndarray).expect("ndarray variant");
    let gpu = registry.get(name, MemoryType::Cuda).expect("cuda variant registered under the same name");
    let none = SpecialInputs::new();
    let a = match cpu.call(Stack::Ndarray(input.clone()), params, &none).expect("ndarray call").stack {
        Stack::Ndarray(a) => a,
        other => panic!("ndarray variant returned {:?}", other.memory_type()),
    };
    let on_gpu = CudaStack::from_ndarray(input, 0).expect("to the GPU");
    let b = match gpu.call(Stack::Cuda(on_gpu), params, &none).expect("cuda call").stack {
        Stack::Cuda(s) => s.to_ndarray().expect("back to the host"),
        other => panic!("cuda variant returned {:?}", other.memory_type()),
    };
    (a, b)
}

fn max_diff(a: &Array3<f32>, b: &Array3<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn params(pairs: &[(&str, ParamValue)]) -> ParamMap {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn without_a_gpu_moving_a_stack_is_a_clear_error() {
    if has_gpu() {
        let inv = inventory();
        assert!(inv.devices.iter().all(|d| d.memory_mib > 0 && d.compute_capability.is_some()), "{inv:?}");
        return;
    }
    assert!(inventory().is_empty());
    let e = CudaStack::from_ndarray(&Array3::zeros((1, 2, 2)), 0).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("CUDA is not available") || e.contains("cuda:0"), "{e}");
}

#[test]
fn cuda_variants_match_ndarray_on_a_gpu() {
    let registry = Registry::global();
    for name in
        ["create_composite", "create_projection", "percentile_normalize", "stack_percentile_normalize", "tophat"]
    {
        assert!(registry.get(name, MemoryType::Cuda).is_some(), "{name} has a cuda variant");
    }
    if !has_gpu() {
        return; // checked by `without_a_gpu_moving_a_stack_is_a_clear_error`
    }
    let input = stack(3, 130, 150, 7, true);
    let round_trip = CudaStack::from_ndarray(&input, 0).and_then(|s| s.to_ndarray()).expect("round trip");
    assert_eq!(round_trip, input);
    for method in ["max_projection", "mean_projection", "best_focus"] {
        let (a, b) = both("create_projection", &input, &params(&[("method", ParamValue::Str(method.into()))]));
        assert!(max_diff(&a, &b) <= 1e-3, "{method}: {}", max_diff(&a, &b));
    }
    let weights = ParamValue::List(vec![ParamValue::Float(2.0), ParamValue::Float(0.0), ParamValue::Float(1.0)]);
    for p in [ParamMap::new(), params(&[("weights", weights)])] {
        let (a, b) = both("create_composite", &input, &p);
        assert!(max_diff(&a, &b) <= 1e-3, "composite {p:?}");
    }
    for integer in [true, false] {
        let input = stack(3, 130, 150, 8, integer);
        for name in ["percentile_normalize", "stack_percentile_normalize"] {
            for (lo, hi) in [(1.0, 99.0), (0.0, 100.0), (12.5, 87.25)] {
                let p =
                    params(&[("low_percentile", ParamValue::Float(lo)), ("high_percentile", ParamValue::Float(hi))]);
                let (a, b) = both(name, &input, &p);
                assert!(max_diff(&a, &b) <= 0.05, "{name} {lo}-{hi} integer={integer}: {}", max_diff(&a, &b));
            }
        }
    }
    for (radius, factor) in [(6i64, 1i64), (20, 4), (9, 3)] {
        let p = params(&[("selem_radius", ParamValue::Int(radius)), ("downsample_factor", ParamValue::Int(factor))]);
        let (a, b) = both("tophat", &input, &p);
        assert!(max_diff(&a, &b) <= 0.02, "tophat r{radius} f{factor}: {}", max_diff(&a, &b));
    }
}

#[cfg(feature = "torch")]
#[test]
fn torch_and_cuda_stacks_share_the_device() {
    if !has_gpu() {
        return; // no device to share
    }
    let input = stack(2, 33, 47, 9, true);
    let t = hcs_core::torch::from_ndarray(input.clone(), hcs_core::torch::device_of(Some(0))).expect("torch on cuda:0");
    let ptr = t.data_ptr();
    let c = CudaStack::from_torch(t).expect("shared");
    use cudarc::driver::DevicePtr;
    let (dev_ptr, _sync) = c.data().device_ptr(c.stream());
    assert_eq!(dev_ptr as usize, ptr as usize, "torch → cuda shares the buffer");
    assert_eq!(c.to_ndarray().expect("host"), input);
    let back = c.to_torch().expect("cuda → torch");
    assert_eq!(hcs_core::torch::to_ndarray(&back).expect("host"), input);
}
