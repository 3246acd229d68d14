//! BaSiC-style flatfield correction against a numpy implementation of the same definition
//! (scripts/make_references.py: inexact-ALM robust PCA with LAPACK's SVD) and against the known
//! vignetting the fixture was made with.
//!
//! Tolerances: corrected images within 1 grey level of the reference; with the default settings
//! the estimated flatfield within 3 % of the true one everywhere and 1 % RMS (cells and noise bias
//! the estimate a little).

use std::path::PathBuf;

use hcs_kernels::flatfield::{
    CorrectionMode, RpcaSettings, basic_flatfield_correction, estimate_illumination, flatfield,
};
use ndarray::{Array3, Axis};
use ndarray_npy::read_npy;

fn npy(name: &str) -> Array3<f32> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{name}.npy"));
    read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[track_caller]
fn assert_within(name: &str, got: &Array3<f32>, want: &Array3<f32>, tol: f32) {
    assert_eq!(got.dim(), want.dim());
    let worst = got.iter().zip(want.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst <= tol, "{name}: max |diff| {worst} > {tol}");
}

#[test]
fn corrections_match_the_numpy_reference() {
    for (mode, size, name) in [
        (CorrectionMode::Divide, 128, "flatfield_divide_128"),
        (CorrectionMode::Divide, 48, "flatfield_divide_48"),
        (CorrectionMode::Subtract, 48, "flatfield_subtract_48"),
    ] {
        let got = basic_flatfield_correction(npy("flatfield_input"), 500, 1.0, 3, 1e-6, mode, size).expect("runs");
        assert_within(name, &got, &npy(name), 1.0);
    }
}

#[test]
fn the_estimated_flatfield_is_the_true_vignetting() {
    let stack = npy("flatfield_input");
    let settings = RpcaSettings { lambda_scale: 0.5, max_rank: 3, max_iters: 500, tol: 1e-6 };
    let illum = estimate_illumination(&stack, 64, settings).expect("estimates");
    assert!(illum.residual < 1e-6, "converged: {} after {}", illum.residual, illum.iterations);
    let (_, h, w) = stack.dim();
    let f = flatfield(&illum, h, w).expect("positive");
    let truth = npy("flatfield_truth");
    let truth = truth.index_axis(Axis(0), 0);
    let t_mean = f64::from(truth.sum()) / truth.len() as f64;
    let worst = f.iter().zip(truth.iter()).map(|(&a, &t)| (a - f64::from(t) / t_mean).abs()).fold(0.0, f64::max);
    let rms = (f.iter().zip(truth.iter()).map(|(&a, &t)| (a - f64::from(t) / t_mean).powi(2)).sum::<f64>()
        / f.len() as f64)
        .sqrt();
    assert!(worst < 0.03 && rms < 0.01, "flatfield off by {worst} (max), {rms} (rms)");
    // The correction flattens the corners relative to the centre.
    let corrected =
        basic_flatfield_correction(stack.clone(), 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 64).expect("runs");
    let corner_ratio = |s: &Array3<f32>| {
        let median = |mut v: Vec<f32>| {
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        let corner = median(s.slice(ndarray::s![.., 0..12, 0..12]).iter().copied().collect());
        let centre = median(s.slice(ndarray::s![.., 42..54, 58..70]).iter().copied().collect());
        corner / centre
    };
    assert!(corner_ratio(&stack) < 0.7, "the raw stack is vignetted: {}", corner_ratio(&stack));
    let after = corner_ratio(&corrected);
    assert!((after - 1.0).abs() < 0.05, "corrected corner/centre background ratio {after}");
}

#[test]
fn few_images_are_not_flattened_to_a_constant() {
    // The peer divides each image by its own rank-3 approximation, so three images come back
    // constant; a shared field keeps the structure.
    let stack = npy("flatfield_input").slice(ndarray::s![0..3, .., ..]).to_owned();
    let got = basic_flatfield_correction(stack, 500, 1.0, 3, 1e-6, CorrectionMode::Divide, 128).expect("runs");
    let plane = got.index_axis(Axis(0), 0);
    let (lo, hi) = plane.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi - lo > 1000.0, "cells remain: range {lo}..{hi}");
}

#[test]
fn one_image_or_bad_parameters_are_errors() {
    let one = npy("flatfield_input").slice(ndarray::s![0..1, .., ..]).to_owned();
    let err = basic_flatfield_correction(one, 500, 1.0, 3, 1e-6, CorrectionMode::Divide, 128).expect_err("one image");
    assert!(err.to_string().contains("at least 2 images"), "{err}");
    let err = basic_flatfield_correction(npy("flatfield_input"), 500, 0.0, 3, 1e-6, CorrectionMode::Divide, 128)
        .expect_err("lambda 0");
    assert!(err.to_string().contains("lambda_sparse"), "{err}");
}

#[test]
fn stacks_at_or_below_zero_are_corrected_above_their_dark_level() {
    // An earlier step (a normalization to a range starting below zero, a background subtraction)
    // can leave intensities at or below zero; the multiplicative model is then applied above the
    // stack's dark level and the level is put back.
    let raw = npy("flatfield_input");
    let shift = raw.iter().copied().fold(0.0f32, f32::max) / 2.0;
    let below = raw.mapv(|v| v - shift);
    assert!(below.iter().any(|&v| v < 0.0), "the shifted stack has negative values");
    let (lo, hi) = below.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let dark = lo - 1e-3 * (hi - lo);
    let corner_ratio = |s: &Array3<f32>| {
        let median = |mut v: Vec<f32>| {
            v.sort_by(f32::total_cmp);
            v[v.len() / 2]
        };
        let corner = median(s.slice(ndarray::s![.., 0..12, 0..12]).iter().map(|v| v - dark).collect());
        let centre = median(s.slice(ndarray::s![.., 42..54, 58..70]).iter().map(|v| v - dark).collect());
        corner / centre
    };
    let got = basic_flatfield_correction(below.clone(), 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 64).expect("runs");
    assert!(got.iter().all(|v| v.is_finite()));
    let (before, after) = (corner_ratio(&below), corner_ratio(&got));
    assert!(before < 0.7 && (after - 1.0).abs() < 0.1, "corner/centre above the dark level: {before} → {after}");
    let sub = basic_flatfield_correction(below, 500, 0.5, 3, 1e-6, CorrectionMode::Subtract, 64).expect("runs");
    assert!(sub.iter().all(|v| v.is_finite()));
}

#[test]
fn a_constant_stack_has_no_shading_and_comes_back_unchanged() {
    for value in [0.0f32, -3.0, 7.0] {
        let flat = Array3::<f32>::from_elem((4, 16, 16), value);
        let got = basic_flatfield_correction(flat.clone(), 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 8).expect("runs");
        assert_eq!(got, flat, "constant {value}");
    }
}

#[test]
fn a_few_sparse_images_with_no_shared_background_come_back_uncorrected() {
    // Two images of a few bright cells on a black background: at the default lambda_sparse the
    // decomposition puts everything in the sparse part, so there is no field to divide by.
    let mut stack = Array3::<f32>::zeros((2, 64, 64));
    for (k, (y, x)) in [(5usize, 7usize), (40, 12), (22, 50), (60, 33)].into_iter().enumerate() {
        stack[(k % 2, y, x)] = 4000.0 + k as f32 * 500.0;
        stack[(k % 2, (y + 1) % 64, x)] = 3000.0;
    }
    let settings = RpcaSettings { lambda_scale: 0.5, max_rank: 3, max_iters: 500, tol: 1e-6 };
    let illum = estimate_illumination(&stack, 64, settings).expect("estimates");
    assert_eq!(illum.background.mean(), Some(0.0), "the case under test: no low-rank part");
    let got =
        basic_flatfield_correction(stack.clone(), 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 64).expect("no error");
    assert_eq!(got, stack);
    // The same below zero, on a fractional scale: still returned bit for bit.
    let fractional = stack.mapv(|v| v * 1e-4 - 0.05);
    let got = basic_flatfield_correction(fractional.clone(), 500, 0.5, 3, 1e-6, CorrectionMode::Divide, 64)
        .expect("no error");
    assert_eq!(got, fractional);
}
