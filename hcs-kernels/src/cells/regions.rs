//! Segmentation by regions: connected components, the exact Euclidean distance transform
//! (Felzenszwalb–Huttenlocher), distance-peak markers and a marker-controlled watershed, as
//! `scipy.ndimage` / scikit-image define them. Written here because the maintained image crates
//! work on `image` buffers with integer pixels, not on the f64 ndarray planes the kernels use.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView2};

/// Label 8-connected components of `mask` as 1, 2, … in raster order of their first pixel.
pub fn label(mask: ArrayView2<'_, bool>) -> (Array2<u32>, u32) {
    let (h, w) = mask.dim();
    let mut labels = Array2::<u32>::zeros((h, w));
    let mut next = 0u32;
    let mut stack = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if !mask[(y, x)] || labels[(y, x)] != 0 {
                continue;
            }
            next += 1;
            labels[(y, x)] = next;
            stack.push((y, x));
            while let Some((cy, cx)) = stack.pop() {
                for (ny, nx) in neighbours8(cy, cx, h, w) {
                    if mask[(ny, nx)] && labels[(ny, nx)] == 0 {
                        labels[(ny, nx)] = next;
                        stack.push((ny, nx));
                    }
                }
            }
        }
    }
    (labels, next)
}

fn neighbours8(y: usize, x: usize, h: usize, w: usize) -> impl Iterator<Item = (usize, usize)> {
    (-1isize..=1).flat_map(move |dy| (-1isize..=1).map(move |dx| (dy, dx))).filter_map(move |(dy, dx)| {
        let (ny, nx) = (y as isize + dy, x as isize + dx);
        ((dy, dx) != (0, 0) && ny >= 0 && nx >= 0 && (ny as usize) < h && (nx as usize) < w)
            .then_some((ny as usize, nx as usize))
    })
}

fn neighbours4(y: usize, x: usize, h: usize, w: usize) -> impl Iterator<Item = (usize, usize)> {
    [(-1isize, 0isize), (0, -1), (0, 1), (1, 0)].into_iter().filter_map(move |(dy, dx)| {
        let (ny, nx) = (y as isize + dy, x as isize + dx);
        (ny >= 0 && nx >= 0 && (ny as usize) < h && (nx as usize) < w).then_some((ny as usize, nx as usize))
    })
}

/// One-dimensional squared distance transform of `f` (0 at features, ∞ elsewhere).
fn edt_1d(f: &[f64], d: &mut [f64], v: &mut Vec<usize>, z: &mut Vec<f64>) {
    let n = f.len();
    v.clear();
    z.clear();
    for q in 0..n {
        if f[q].is_infinite() {
            continue;
        }
        while let Some(&p) = v.last() {
            let s = ((f[q] + (q * q) as f64) - (f[p] + (p * p) as f64)) / (2.0 * (q as f64 - p as f64));
            if s <= z.last().copied().unwrap_or(f64::NEG_INFINITY) {
                v.pop();
                z.pop();
            } else {
                z.push(s);
                break;
            }
        }
        if v.is_empty() {
            z.clear();
            z.push(f64::NEG_INFINITY);
        }
        v.push(q);
    }
    if v.is_empty() {
        d.iter_mut().for_each(|x| *x = f64::INFINITY);
        return;
    }
    z.push(f64::INFINITY);
    let mut k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f64 {
            k += 1;
        }
        let p = v[k];
        *dq = (q as f64 - p as f64).powi(2) + f[p];
    }
}

/// Euclidean distance of every foreground pixel to the nearest background pixel
/// (`scipy.ndimage.distance_transform_edt`). An all-foreground plane is measured to the outside.
pub fn distance_transform(mask: ArrayView2<'_, bool>) -> Array2<f64> {
    let (h, w) = mask.dim();
    if mask.iter().all(|&m| m) {
        return Array2::from_shape_fn((h, w), |(y, x)| {
            let d = [y + 1, x + 1, h - y, w - x].into_iter().min().unwrap_or(0);
            d as f64
        });
    }
    let mut sq = mask.mapv(|m| if m { f64::INFINITY } else { 0.0 });
    let (mut v, mut z) = (Vec::new(), Vec::new());
    let (mut col, mut out) = (vec![0.0; h], vec![0.0; h]);
    for x in 0..w {
        col.iter_mut().enumerate().for_each(|(y, c)| *c = sq[(y, x)]);
        edt_1d(&col, &mut out, &mut v, &mut z);
        out.iter().enumerate().for_each(|(y, &o)| sq[(y, x)] = o);
    }
    let (mut row, mut out) = (vec![0.0; w], vec![0.0; w]);
    for y in 0..h {
        row.iter_mut().enumerate().for_each(|(x, r)| *r = sq[(y, x)]);
        edt_1d(&row, &mut out, &mut v, &mut z);
        out.iter().enumerate().for_each(|(x, &o)| sq[(y, x)] = o.sqrt());
    }
    sq
}

/// Markers at the peaks of `distance`: pixels equal to the maximum of their `footprint`×`footprint`
/// window and positive, taken brightest first (ties in raster order); a peak closer than
/// `min_distance` (Chebyshev) to an accepted one is dropped (`peak_local_max`'s spacing rule).
pub fn distance_peaks(distance: ArrayView2<'_, f64>, footprint: usize, min_distance: usize) -> Vec<(usize, usize)> {
    let (h, w) = distance.dim();
    let r = footprint / 2;
    let mut peaks = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = distance[(y, x)];
            if v <= 0.0 {
                continue;
            }
            let ys = y.saturating_sub(r)..=(y + r).min(h - 1);
            if ys.clone().all(|yy| (x.saturating_sub(r)..=(x + r).min(w - 1)).all(|xx| distance[(yy, xx)] <= v)) {
                peaks.push((y, x));
            }
        }
    }
    peaks.sort_by(|a, b| distance[*b].total_cmp(&distance[*a]));
    let mut accepted: Vec<(usize, usize)> = Vec::new();
    for p in peaks {
        if accepted.iter().all(|a| a.0.abs_diff(p.0).max(a.1.abs_diff(p.1)) >= min_distance) {
            accepted.push(p);
        }
    }
    accepted
}

/// Marker-controlled watershed of `-distance` within `mask` (4-connected flooding, lowest first,
/// first come first served on ties), as `skimage.segmentation.watershed(-d, markers, mask=mask)`.
pub fn watershed(distance: ArrayView2<'_, f64>, markers: &[(usize, usize)], mask: ArrayView2<'_, bool>) -> Array2<u32> {
    let (h, w) = distance.dim();
    let mut labels = Array2::<u32>::zeros((h, w));
    // Ordered by (-distance, age): a max-heap of Reverse keys pops the highest distance first.
    let mut heap = BinaryHeap::new();
    let key = |d: f64| Reverse(ordered(-d));
    let mut age = 0u64;
    for (i, &(y, x)) in markers.iter().enumerate() {
        labels[(y, x)] = i as u32 + 1;
        heap.push((key(distance[(y, x)]), Reverse(age), y, x));
        age += 1;
    }
    while let Some((_, _, y, x)) = heap.pop() {
        let l = labels[(y, x)];
        for (ny, nx) in neighbours4(y, x, h, w) {
            if mask[(ny, nx)] && labels[(ny, nx)] == 0 {
                labels[(ny, nx)] = l;
                heap.push((key(distance[(ny, nx)]), Reverse(age), ny, nx));
                age += 1;
            }
        }
    }
    labels
}

/// A total order on f64 for heap keys.
fn ordered(v: f64) -> i64 {
    let b = v.to_bits() as i64;
    if b < 0 { b ^ i64::MAX } else { b }
}

/// Per-region measurements.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// The label in the input label image.
    pub label: u32,
    /// Pixel count.
    pub area: usize,
    /// Centroid row.
    pub cy: f64,
    /// Centroid column.
    pub cx: f64,
    /// Mean of `intensity` over the region.
    pub mean_intensity: f64,
    /// Whether a pixel of the region lies on the image border.
    pub touches_border: bool,
}

/// Measure every label `1..=n` of `labels` (labels without pixels are left out).
pub fn measure(labels: ArrayView2<'_, u32>, n: u32, intensity: ArrayView2<'_, f32>) -> Vec<Region> {
    let (h, w) = labels.dim();
    let n = n as usize;
    let (mut area, mut sy, mut sx, mut si, mut border) =
        (vec![0usize; n], vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![false; n]);
    for ((y, x), &l) in labels.indexed_iter() {
        if l == 0 {
            continue;
        }
        let i = l as usize - 1;
        area[i] += 1;
        sy[i] += y as f64;
        sx[i] += x as f64;
        si[i] += f64::from(intensity[(y, x)]);
        border[i] |= y == 0 || x == 0 || y + 1 == h || x + 1 == w;
    }
    (0..n)
        .filter(|&i| area[i] > 0)
        .map(|i| {
            let a = area[i] as f64;
            Region {
                label: i as u32 + 1,
                area: area[i],
                cy: sy[i] / a,
                cx: sx[i] / a,
                mean_intensity: si[i] / a,
                touches_border: border[i],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_diagonal_neighbours_as_one_component() {
        let mask =
            ndarray::arr2(&[[true, false, false], [false, true, false], [false, false, false], [true, true, false]]);
        let (labels, n) = label(mask.view());
        assert_eq!(n, 2);
        assert_eq!(labels[(1, 1)], 1);
        assert_eq!(labels[(3, 1)], 2);
    }

    #[test]
    fn distance_transform_is_exact_euclidean() {
        let mut mask = Array2::from_elem((7, 7), true);
        mask[(0, 0)] = false;
        let d = distance_transform(mask.view());
        assert_eq!(d[(0, 0)], 0.0);
        assert!((d[(3, 4)] - 5.0).abs() < 1e-12);
        assert!((d[(6, 6)] - 72f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn watershed_splits_two_touching_discs() {
        let mask = Array2::from_shape_fn((20, 34), |(y, x)| {
            let (y, x) = (y as f64, x as f64);
            (y - 10.0).powi(2) + (x - 10.0).powi(2) <= 49.0 || (y - 10.0).powi(2) + (x - 22.0).powi(2) <= 49.0
        });
        let d = distance_transform(mask.view());
        let peaks = distance_peaks(d.view(), 3, 5);
        assert_eq!(peaks.len(), 2, "{peaks:?}");
        let labels = watershed(d.view(), &peaks, mask.view());
        assert_ne!(labels[(10, 10)], labels[(10, 22)]);
        assert!(labels.iter().zip(mask.iter()).all(|(&l, &m)| (l > 0) == m));
    }
}
