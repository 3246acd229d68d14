//! Kernel timings on one 9 × 1024 × 1024 stack (a 3×3 well of camera tiles): the ndarray
//! function on every CPU core vs its torch variant on `cuda:0` vs its cuda variant, each called
//! through the registry exactly as the executor calls it. GPU times are given twice: with the
//! stack already on the device (as between consecutive GPU steps), and including the host →
//! device → host copies (as for a lone GPU step). Medians of 7 after 2 warm-up calls.
//!
//! `cargo run --release --features torch,cuda --example device_bench` (needs a GPU; prints the
//! table). Run by `scripts/gpu-check.sh`.

use std::time::Instant;

use hcs_core::cuda::CudaStack;
use hcs_core::torch::{device_of, from_ndarray, to_ndarray};
use hcs_core::{MemoryType, ParamMap, ParamValue, Registry, SpecialInputs, Stack};
use hcs_kernels as _;
use ndarray::Array3;

fn stack() -> Array3<f32> {
    Array3::from_shape_fn((9, 1024, 1024), |(p, y, x)| {
        let h = (p as u64 * 1_000_003 + y as u64 * 1031 + x as u64).wrapping_mul(2_654_435_761) % 4096;
        let spot = if (x / 29 + y / 31 + p) % 11 == 0 { 8000.0 } else { 0.0 };
        (600.0 + spot + h as f64) as f32
    })
}

fn median(mut f: impl FnMut() -> f64) -> f64 {
    (0..2).for_each(|_| {
        f();
    });
    let mut t: Vec<f64> = (0..7).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t[3]
}

fn main() -> Result<(), String> {
    let registry = Registry::global();
    let input = stack();
    let none = SpecialInputs::new();
    let cases: Vec<(&str, &str, ParamMap)> = vec![
        ("create_projection", "max", ParamMap::new()),
        ("create_composite", "equal weights", ParamMap::new()),
        ("stack_percentile_normalize", "0.5–99.5", ParamMap::new()),
        ("percentile_normalize", "per plane", ParamMap::new()),
        ("gaussian_filter", "σ = 4", [("sigma".to_string(), ParamValue::Float(4.0))].into_iter().collect()),
        ("tophat", "r 50, ↓4", ParamMap::new()),
        (
            "tophat",
            "r 15, exact",
            [("selem_radius".to_string(), ParamValue::Int(15)), ("downsample_factor".to_string(), ParamValue::Int(1))]
                .into_iter()
                .collect(),
        ),
    ];
    let cuda0 = device_of(Some(0));
    // The copies alone, 36 MB each way (the input clone is made outside the timed region).
    let to_torch = median(|| {
        let copy = input.clone();
        let t = Instant::now();
        let _ = from_ndarray(copy, cuda0);
        tch::Cuda::synchronize(0);
        t.elapsed().as_secs_f64() * 1e3
    });
    let resident = from_ndarray(input.clone(), cuda0).map_err(|e| e.to_string())?;
    let from_torch = median(|| {
        let t = Instant::now();
        let _ = to_ndarray(&resident);
        t.elapsed().as_secs_f64() * 1e3
    });
    let to_cuda = median(|| {
        let t = Instant::now();
        let _ = CudaStack::from_ndarray(&input, 0);
        t.elapsed().as_secs_f64() * 1e3
    });
    let resident = CudaStack::from_ndarray(&input, 0).map_err(|e| e.to_string())?;
    let from_cuda = median(|| {
        let t = Instant::now();
        let _ = resident.to_ndarray();
        t.elapsed().as_secs_f64() * 1e3
    });
    println!(
        "copies of the 36 MB stack: host → torch {to_torch:.2} ms, torch → host {from_torch:.2} ms, host → cuda {to_cuda:.2} ms, cuda → host {from_cuda:.2} ms\n"
    );
    println!(
        "| function | case | CPU ms | torch cuda ms (on device) | torch ms (+ copies) | cuda ms (on device) | cuda ms (+ copies) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, case, params) in cases {
        let cpu = registry.get(name, MemoryType::Ndarray).ok_or("no ndarray variant")?;
        let cpu_ms = median(|| {
            let copy = input.clone();
            let t = Instant::now();
            let _ = cpu.call(Stack::Ndarray(copy), &params, &none);
            t.elapsed().as_secs_f64() * 1e3
        });
        let cell = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
        let (mut t_dev, mut t_all, mut c_dev, mut c_all) = (None, None, None, None);
        if let Some(f) = registry.get(name, MemoryType::Torch) {
            let on_device = from_ndarray(input.clone(), cuda0).map_err(|e| e.to_string())?;
            t_dev = Some(median(|| {
                let s = Stack::Torch(on_device.shallow_clone());
                let t = Instant::now();
                let _ = f.call(s, &params, &none);
                tch::Cuda::synchronize(0);
                t.elapsed().as_secs_f64() * 1e3
            }));
            t_all = Some(median(|| {
                let copy = input.clone();
                let t = Instant::now();
                let s = from_ndarray(copy, cuda0).map(Stack::Torch);
                if let Ok(Stack::Torch(out)) = s
                    .and_then(|s| {
                        f.call(s, &params, &none).map_err(|e| hcs_core::DeviceError::Unsupported(e.to_string()))
                    })
                    .map(|o| o.stack)
                {
                    let _ = to_ndarray(&out);
                }
                t.elapsed().as_secs_f64() * 1e3
            }));
        }
        if let Some(f) = registry.get(name, MemoryType::Cuda) {
            let on_device = CudaStack::from_ndarray(&input, 0).map_err(|e| e.to_string())?;
            c_dev = Some(median(|| {
                let s = Stack::Cuda(
                    CudaStack::new(
                        on_device.stream().clone_dtod(on_device.data()).expect("copy"),
                        on_device.shape(),
                        on_device.stream().clone(),
                    )
                    .expect("stack"),
                );
                on_device.stream().synchronize().ok();
                let t = Instant::now();
                if let Ok(out) = f.call(s, &params, &none)
                    && let Stack::Cuda(c) = &out.stack
                {
                    c.stream().synchronize().ok();
                }
                t.elapsed().as_secs_f64() * 1e3
            }));
            c_all = Some(median(|| {
                let t = Instant::now();
                if let Ok(s) = CudaStack::from_ndarray(&input, 0)
                    && let Ok(out) = f.call(Stack::Cuda(s), &params, &none)
                    && let Stack::Cuda(c) = out.stack
                {
                    let _ = c.to_ndarray();
                }
                t.elapsed().as_secs_f64() * 1e3
            }));
        }
        println!(
            "| {name} | {case} | {cpu_ms:.2} | {} | {} | {} | {} |",
            cell(t_dev),
            cell(t_all),
            cell(c_dev),
            cell(c_all)
        );
    }
    Ok(())
}
