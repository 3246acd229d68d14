//! Projections of a stack onto one plane.
//!
//! The torch and cuda variants, registered under the same names, are in `torch.rs` and
//! `cuda.rs` beside this file.

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "torch")]
pub mod torch;

use hcs_core::NdarrayStack;
use hcs_macros::memory;
use std::borrow::Cow;

use ndarray::{ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// How [`create_projection`](fn@create_projection) combines planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectionMethod {
    /// Maximum intensity per pixel.
    Max,
    /// Mean intensity per pixel.
    Mean,
    /// The sharpest plane: the one whose Laplacian has the largest variance.
    BestFocus,
}

hcs_core::choice_param!(ProjectionMethod { ProjectionMethod::Max => "max_projection", ProjectionMethod::Mean => "mean_projection", ProjectionMethod::BestFocus => "best_focus" });

/// Pixels per parallel work item of [`reduce_planes`] and [`max_projection_of`]: 32 KiB of f32,
/// so an item's slices of every plane stream through L1/L2 while its output chunk stays
/// resident.
const CHUNK: usize = 8192;

/// Combine the planes pixel-chunk by pixel-chunk: `fold` adds each plane's chunk to the
/// accumulator, `finish` writes the output chunk. Chunks are independent and contiguous in every
/// plane, so this parallelizes over chunks and vectorizes within them. `fold` gets the plane
/// index too.
pub(crate) fn reduce_planes<A: Send + Copy + Default>(
    stack: ArrayView3<'_, f32>,
    fold: impl Fn(&mut [A], usize, &[f32]) + Sync,
    finish: impl Fn(A) -> f32 + Sync,
) -> NdarrayStack {
    let (_, h, w) = stack.dim();
    let stack = stack.as_standard_layout();
    let flat = stack.as_slice().expect("standard layout");
    let planes: Vec<&[f32]> = flat.chunks_exact((h * w).max(1)).collect();
    reduce_plane_slices(&planes, (h, w), fold, finish)
}

/// [`reduce_planes`] over planes that lie apart: each `h × w` plane's samples, row-major. Each
/// chunk's accumulators are folded in a worker's scratch and finished straight into the
/// output's fresh memory: no zeroed output written over.
pub(crate) fn reduce_plane_slices<A: Send + Copy + Default>(
    planes: &[&[f32]],
    (h, w): (usize, usize),
    fold: impl Fn(&mut [A], usize, &[f32]) + Sync,
    finish: impl Fn(A) -> f32 + Sync,
) -> NdarrayStack {
    use hcs_vfs::fill::{F32Out, PlaneSlot, fill_planes_with};
    let plane_len = h * w;
    let chunk = |acc: &mut Vec<A>, start: usize, len: usize, slot: &mut PlaneSlot<'_>| {
        acc.clear();
        acc.resize(len, A::default());
        for (p, plane) in planes.iter().enumerate() {
            fold(acc, p, &plane[start..start + len]);
        }
        slot.append(acc, &finish);
        Ok::<(), ()>(())
    };
    let (full, tail) = (plane_len / CHUNK, plane_len % CHUNK);
    // The whole plane reserved at once: the tail's call then finds its room. Every chunk gets
    // exactly its samples, so neither call refuses one (a refusal would leave `out` short, and
    // the shape below would say so).
    let mut out = Vec::with_capacity(plane_len);
    let _ =
        fill_planes_with(&mut out, CHUNK, full, Vec::new, |acc, i, slot| chunk(acc, i * CHUNK, CHUNK, slot), |_, _| ())
            .and_then(|_| {
                fill_planes_with(
                    &mut out,
                    tail,
                    1,
                    Vec::new,
                    |acc, _, slot| chunk(acc, full * CHUNK, tail, slot),
                    |_, _| (),
                )
            });
    ndarray::Array3::from_shape_vec((1, h, w), out).expect("one plane of h × w")
}

/// `reduce(samples, shape)` over borrowed planes of one shape (what the views invoker hands a
/// form: at least one plane, one shape), each plane as row-major samples: borrowed, or copied
/// when it is a strided view.
pub(crate) fn over_plane_samples<R>(
    planes: &[ArrayView2<'_, f32>],
    reduce: impl FnOnce(&[&[f32]], (usize, usize)) -> R,
) -> R {
    let shape = planes.first().map_or((0, 0), |p| p.dim());
    let samples: Vec<Cow<'_, [f32]>> = planes
        .iter()
        .map(|p| match p.to_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(p.iter().copied().collect()),
        })
        .collect();
    let slices: Vec<&[f32]> = samples.iter().map(|s| &s[..]).collect();
    reduce(&slices, shape)
}

/// Maximum-intensity projection over planes: `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray, planes = one, views = max_projection_views)]
pub fn max_projection(stack: NdarrayStack) -> NdarrayStack {
    let (n, h, w) = stack.dim();
    if n == 0 || !stack.is_standard_layout() {
        return max_projection_of(stack.view());
    }
    // The stack is ours: its first plane becomes the output, and the buffer is cut to that
    // plane (shrinking gives the rest back without a copy). No fresh memory for the output.
    let plane_len = h * w;
    let (mut data, offset) = stack.into_raw_vec_and_offset();
    let start = offset.unwrap_or(0);
    let (head, rest) = data.split_at_mut(start + plane_len);
    head[start..].par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        // The first plane's lines ahead asked for as it goes (a hint, see `hcs_vfs::ahead`).
        hcs_vfs::ahead::chunked(hcs_vfs::ahead::Lines::of(o), o.len(), |r| {
            o[r].iter_mut().for_each(|v| *v = v.max(f32::NEG_INFINITY));
        });
        for p in 1..n {
            let base = (p - 1) * plane_len + c * CHUNK;
            max_into(o, &rest[base..base + o.len()]);
        }
    });
    data.truncate(start + plane_len);
    data.drain(..start);
    data.shrink_to_fit();
    ndarray::Array3::from_shape_vec((1, h, w), data).expect("one plane of h × w")
}

/// [`max_projection`](fn@max_projection) of a borrowed stack. The output starts as the first plane (NaN as −∞,
/// where the running maximum starts), collected straight into fresh memory, and the other planes
/// are folded into it chunk by chunk: no zeroed buffer, no accumulator copied out.
pub fn max_projection_of(stack: ArrayView3<'_, f32>) -> NdarrayStack {
    let (n, h, w) = stack.dim();
    if n == 0 {
        return ndarray::Array3::zeros((1, h, w));
    }
    let stack = stack.as_standard_layout();
    let flat = stack.as_slice().expect("standard layout");
    let planes: Vec<&[f32]> = flat.chunks_exact((h * w).max(1)).collect();
    max_of_plane_slices(&planes, (h, w))
}

/// [`max_projection_of`] over `h × w` planes that lie apart (at least one). Each chunk of the
/// output is written once, from the first plane (NaN as −∞), and the other planes folded into
/// it while it is in the nearest cache: no pass over a whole fresh output before the folds.
fn max_of_plane_slices(planes: &[&[f32]], (h, w): (usize, usize)) -> NdarrayStack {
    use hcs_vfs::fill::F32Out;
    let plane_len = h * w;
    if plane_len == 0 || planes.is_empty() {
        return ndarray::Array3::zeros((1, h, w));
    }
    let chunk = |start: usize, len: usize, slot: &mut hcs_vfs::fill::PlaneSlot<'_>| {
        slot.append(&planes[0][start..start + len], |v| v.max(f32::NEG_INFINITY));
        let o = slot.filled_mut();
        for plane in &planes[1..] {
            max_into(o, &plane[start..start + len]);
        }
        Ok::<(), ()>(())
    };
    let (full, tail) = (plane_len / CHUNK, plane_len % CHUNK);
    // The whole plane reserved at once: the tail's call then finds its room, and does not
    // move what the first call wrote.
    let mut out = Vec::with_capacity(plane_len);
    // Every chunk gets exactly its samples, so neither call refuses one (a refusal would leave
    // `out` short, and the shape below would say so).
    let _ = hcs_vfs::fill::fill_planes(&mut out, CHUNK, full, |i, slot| chunk(i * CHUNK, CHUNK, slot), |_, _| ())
        .and_then(|_| {
            hcs_vfs::fill::fill_planes(&mut out, tail, 1, |_, slot| chunk(full * CHUNK, tail, slot), |_, _| ())
        });
    ndarray::Array3::from_shape_vec((1, h, w), out).expect("one plane of h × w")
}

/// [`max_projection`](fn@max_projection) of planes that lie apart (its plane-views form): the
/// planes are read where they are, not stacked first.
fn max_projection_views(planes: &[ArrayView2<'_, f32>]) -> NdarrayStack {
    over_plane_samples(planes, max_of_plane_slices)
}

/// `acc[i] = max(acc[i], row[i])` (NaN samples leave the running maximum as it is: it is never
/// NaN). Every element is stored (`f32::max`, not a conditional store, which AVX compiles to a
/// masked store that is slower than the scalar loop on some CPUs). Compiled for AVX2 and AVX-512 too and
/// picked at run time, with the same result.
#[multiversion::multiversion(targets("x86_64+avx+avx2+fma+avx512f", "x86_64+avx+avx2+fma"))]
fn max_into(acc: &mut [f32], row: &[f32]) {
    // The plane's lines ahead asked for as it goes (a hint, see `hcs_vfs::ahead`).
    let len = acc.len().min(row.len());
    hcs_vfs::ahead::chunked(hcs_vfs::ahead::Lines::of(row), len, |r| {
        for (a, &v) in acc[r.clone()].iter_mut().zip(&row[r]) {
            *a = a.max(v);
        }
    });
}

/// Mean-intensity projection over planes: `[n, y, x]` → `[1, y, x]` (accumulated in f64).
#[memory(ndarray, planes = one, views = mean_projection_views)]
pub fn mean_projection(stack: NdarrayStack) -> NdarrayStack {
    mean_projection_of(stack.view())
}

/// [`mean_projection`](fn@mean_projection) of a borrowed stack.
pub fn mean_projection_of(stack: ArrayView3<'_, f32>) -> NdarrayStack {
    let n = stack.dim().0.max(1) as f64;
    reduce_planes::<f64>(stack, add_f64, |a| mean_of(a, n))
}

/// [`mean_projection`](fn@mean_projection) of planes that lie apart (its plane-views form).
fn mean_projection_views(planes: &[ArrayView2<'_, f32>]) -> NdarrayStack {
    let n = planes.len().max(1) as f64;
    over_plane_samples(planes, |slices, shape| reduce_plane_slices::<f64>(slices, shape, add_f64, |a| mean_of(a, n)))
}

/// `acc[i] += row[i]` in f64: the fold of the mean.
fn add_f64(acc: &mut [f64], _: usize, row: &[f32]) {
    acc.iter_mut().zip(row).for_each(|(a, &v)| *a += f64::from(v));
}

/// `sum / n` in f32: the finish of the mean.
fn mean_of(sum: f64, n: f64) -> f32 {
    (sum / n) as f32
}

/// Variance of the 4-neighbour Laplacian of a plane (reflected borders): a focus measure.
pub fn laplacian_variance(plane: ndarray::ArrayView2<'_, f32>) -> f64 {
    let (h, w) = plane.dim();
    let at = |y: isize, x: isize| f64::from(plane[[crate::boundary::reflect(y, h), crate::boundary::reflect(x, w)]]);
    let (mut sum, mut sum2) = (0.0, 0.0);
    for y in 0..h as isize {
        for x in 0..w as isize {
            let l = at(y - 1, x) + at(y + 1, x) + at(y, x - 1) + at(y, x + 1) - 4.0 * at(y, x);
            sum += l;
            sum2 += l * l;
        }
    }
    let n = (h * w).max(1) as f64;
    sum2 / n - (sum / n).powi(2)
}

/// The sharpest plane (largest Laplacian variance): `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray, planes = one, views = best_focus_projection_views)]
pub fn best_focus_projection(stack: NdarrayStack) -> NdarrayStack {
    match stack.dim().0 {
        0 => stack,
        _ => stack.index_axis(Axis(0), sharpest(stack.outer_iter())).to_owned().insert_axis(Axis(0)),
    }
}

/// [`best_focus_projection`](fn@best_focus_projection) of planes that lie apart (its plane-views
/// form).
fn best_focus_projection_views(planes: &[ArrayView2<'_, f32>]) -> NdarrayStack {
    match planes.first() {
        None => ndarray::Array3::zeros((1, 0, 0)),
        Some(_) => planes[sharpest(planes.par_iter().cloned())].to_owned().insert_axis(Axis(0)),
    }
}

/// The index of the plane with the largest Laplacian variance (the last of equals, as
/// `Iterator::max_by` gives it; 0 for none).
fn sharpest<'a>(planes: impl IntoParallelIterator<Item = ArrayView2<'a, f32>>) -> usize {
    let scores: Vec<f64> = planes.into_par_iter().map(laplacian_variance).collect();
    scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Project planes with the chosen method: `[n, y, x]` → `[1, y, x]`.
#[memory(ndarray, planes = one, views = create_projection_views)]
pub fn create_projection(
    stack: NdarrayStack,
    #[param(default = ProjectionMethod::Max, doc = "max_projection | mean_projection | best_focus")]
    method: ProjectionMethod,
) -> NdarrayStack {
    match method {
        ProjectionMethod::Max => max_projection(stack),
        ProjectionMethod::Mean => mean_projection(stack),
        ProjectionMethod::BestFocus => best_focus_projection(stack),
    }
}

/// [`create_projection`](fn@create_projection) of planes that lie apart (its plane-views form).
fn create_projection_views(planes: &[ArrayView2<'_, f32>], method: ProjectionMethod) -> NdarrayStack {
    match method {
        ProjectionMethod::Max => max_projection_views(planes),
        ProjectionMethod::Mean => mean_projection_views(planes),
        ProjectionMethod::BestFocus => best_focus_projection_views(planes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcs_core::PipelineParam;
    use ndarray::array;

    fn stack() -> NdarrayStack {
        array![[[1.0, 5.0], [3.0, 0.0]], [[4.0, 2.0], [3.0, 8.0]]]
    }

    #[test]
    fn max_and_mean_projections_reduce_planes() {
        assert_eq!(max_projection(stack()), array![[[4.0, 5.0], [3.0, 8.0]]]);
        assert_eq!(mean_projection(stack()), array![[[2.5, 3.5], [3.0, 4.0]]]);
    }

    #[test]
    fn max_projection_skips_nan_and_keeps_minus_infinity_where_every_plane_is_nan() {
        let nan = f32::NAN;
        let stack = array![[[nan, 2.0, nan, -1.0]], [[1.0, nan, nan, nan]], [[0.5, 3.0, nan, -2.0]]];
        let max = max_projection(stack);
        assert_eq!(max.slice(ndarray::s![0, 0, ..2]), array![1.0, 3.0]);
        assert_eq!(max[[0, 0, 2]], f32::NEG_INFINITY, "no sample: the running maximum's start");
        assert_eq!(max[[0, 0, 3]], -1.0);
        // Several chunks and a partial last one; the maximum in the first, a middle and the last
        // plane by turns: the maximum of each pixel, whichever plane holds it.
        let big = ndarray::Array3::from_shape_fn((4, 3, CHUNK + 5), |(p, y, x)| {
            let top = (y * 7 + x) % 4;
            if p == [0, 2, 3, 1][top] { 1000.0 + x as f32 } else { ((p * 31 + y * 7 + x) % 97) as f32 }
        });
        let want = ndarray::Array3::from_shape_fn((1, 3, CHUNK + 5), |(_, _, x)| 1000.0 + x as f32);
        assert_eq!(max_projection(big), want);
    }

    #[test]
    fn max_projection_in_its_own_buffer_equals_the_borrowed_one_whatever_the_layout() {
        let full = ndarray::Array3::from_shape_fn((6, 3, CHUNK + 7), |(p, y, x)| {
            if (p + x) % 11 == 0 { f32::NAN } else { ((p * 13 + y * 5 + x * 3) % 101) as f32 - 50.0 }
        });
        let want = max_projection_of(full.slice(ndarray::s![2.., .., ..]));
        assert!(want.iter().all(|v| !v.is_nan()));
        assert_eq!(max_projection(full.slice(ndarray::s![2.., .., ..]).to_owned()), want);
        // An owned stack whose first plane is past the start of its buffer (planes cut off).
        let mut cut = full.clone();
        cut.slice_collapse(ndarray::s![2.., .., ..]);
        assert_ne!(cut.clone().into_raw_vec_and_offset().1, Some(0), "the stack starts inside its buffer");
        assert_eq!(max_projection(cut), want);
        // Not in standard layout (rows and columns swapped): computed from a view.
        let mut swapped = full.slice(ndarray::s![2.., .., ..]).to_owned();
        swapped.swap_axes(1, 2);
        assert!(!swapped.is_standard_layout());
        let mut want_swapped = want.clone();
        want_swapped.swap_axes(1, 2);
        assert_eq!(max_projection(swapped), want_swapped);
    }

    #[test]
    fn the_views_forms_give_what_the_stacked_forms_give() {
        // Planes with NaN, several chunks and a partial last one; each plane its own array, one
        // of them a strided view (every other column of a wider plane), as the executor hands
        // them over when another step stacked them.
        let full = ndarray::Array3::from_shape_fn((3, 4, CHUNK + 9), |(p, y, x)| {
            if (p * 7 + x) % 13 == 0 { f32::NAN } else { ((p * 29 + y * 11 + x * 5) % 103) as f32 - 40.0 }
        });
        let wide = ndarray::Array2::from_shape_fn((4, 2 * (CHUNK + 9)), |(y, x)| full[[2, y, x / 2]]);
        let strided = wide.slice(ndarray::s![.., ..;2]);
        let bits = |a: ndarray::ArrayView2<'_, f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert!(strided.as_slice().is_none() && bits(strided) == bits(full.index_axis(Axis(0), 2)));
        let apart: Vec<ndarray::Array2<f32>> = full.outer_iter().map(|p| p.to_owned()).collect();
        let views = [apart[0].view(), apart[1].view(), strided];
        let same = |a: &NdarrayStack, b: &NdarrayStack| {
            a.dim() == b.dim() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        for method in [ProjectionMethod::Max, ProjectionMethod::Mean, ProjectionMethod::BestFocus] {
            let want = create_projection(full.clone(), method);
            assert!(same(&create_projection_views(&views, method), &want), "{method:?}");
        }
        assert!(same(&max_projection_views(&views), &max_projection(full.clone())));
        assert!(same(&mean_projection_views(&views), &mean_projection(full.clone())));
        assert!(same(&best_focus_projection_views(&views), &best_focus_projection(full.clone())));
        // The views form is what the registry calls for planes that lie apart.
        let call = create_projection::FUNC.invoke_views.expect("a views form");
        let params = hcs_core::ParamMap::from([("method".to_string(), ProjectionMethod::Max.to_value())]);
        let out = call(&views, &params, &hcs_core::SpecialInputs::default()).expect("called");
        assert!(matches!(out.stack, hcs_core::Stack::Ndarray(ref s) if same(s, &max_projection(full.clone()))));
        // Planes that fill whole chunks (no tail), and planes with no pixels.
        for (h, w) in [(2, CHUNK), (0, 5)] {
            let even = ndarray::Array3::from_shape_fn((3, h, w), |(p, y, x)| ((p * 17 + y * 3 + x) % 29) as f32);
            assert!(same(&max_projection_of(even.view()), &max_projection(even.clone())), "{h} × {w}");
        }
        // Planes no stack could hold (two shapes), or none, are refused before the form runs,
        // saying what was given.
        let small = ndarray::Array2::<f32>::zeros((2, 2));
        let refused = |planes: &[ArrayView2<'_, f32>]| match call(planes, &params, &hcs_core::SpecialInputs::default())
        {
            Err(e @ hcs_core::InvokeError::UnequalPlanes { .. }) => e.to_string(),
            other => panic!("expected UnequalPlanes, got {other:?}"),
        };
        assert!(refused(&[apart[0].view(), small.view()]).ends_with("got 4×8201, 2×2"), "names both shapes");
        assert!(refused(&[]).ends_with("got none"));
    }

    #[test]
    fn create_projection_dispatches_on_method() {
        assert_eq!(create_projection(stack(), ProjectionMethod::Mean), mean_projection(stack()));
        let v = ProjectionMethod::Mean.to_value();
        assert_eq!(ProjectionMethod::from_value(&v).ok(), Some(ProjectionMethod::Mean));
    }
}
