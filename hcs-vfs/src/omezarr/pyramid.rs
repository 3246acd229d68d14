//! The multiscale pyramid of every image: level 0 as written, each next level the 2 × 2 mean of
//! the one before (edge pixels average what they cover), so viewers show a plate without reading
//! every well at full resolution.

use ndarray::Array2;

use crate::plane::PlaneData;

/// Levels are added while the smaller side of the last one is at least this many pixels.
const SMALL_SIDE: usize = 512;

/// Fewest levels an image gets.
const MIN_LEVELS: usize = 3;

/// Number of levels for a `(h, w)` image: at least `MIN_LEVELS` (3), and until the smaller side
/// is under `SMALL_SIDE` (512 pixels).
pub fn levels(shape: (usize, usize)) -> usize {
    let mut n = 1;
    let mut s = shape;
    while s.0.min(s.1) >= SMALL_SIDE {
        s = half(s);
        n += 1;
    }
    n.max(MIN_LEVELS)
}

/// The shape of the next level.
pub fn half((h, w): (usize, usize)) -> (usize, usize) {
    (h.div_ceil(2), w.div_ceil(2))
}

/// The shape of level `level` of a `shape` image.
pub fn level_shape(shape: (usize, usize), level: usize) -> (usize, usize) {
    (0..level).fold(shape, |s, _| half(s))
}

/// The next level of `plane`: 2 × 2 means, in the plane's dtype (integers rounded half up).
pub fn downsample(plane: &PlaneData) -> PlaneData {
    match plane {
        PlaneData::U8(a) => PlaneData::U8(halve(a, |sum, n| ((sum + n / 2) / n) as u8)),
        PlaneData::U16(a) => PlaneData::U16(halve(a, |sum, n| ((sum + n / 2) / n) as u16)),
        PlaneData::F32(a) => {
            let (h, w) = a.dim();
            let (nh, nw) = half((h, w));
            PlaneData::F32(Array2::from_shape_fn((nh, nw), |(y, x)| {
                let (y1, x1) = ((2 * y + 2).min(h), (2 * x + 2).min(w));
                let block = a.slice(ndarray::s![2 * y..y1, 2 * x..x1]);
                block.sum() / block.len() as f32
            }))
        }
    }
}

/// 2 × 2 integer means of `a`, rows two at a time (edge blocks average what they cover).
fn halve<T: Copy + Into<u32>>(a: &Array2<T>, mean: impl Fn(u32, u32) -> T) -> Array2<T> {
    let (h, w) = a.dim();
    let (nh, nw) = half((h, w));
    let mut out = Vec::with_capacity(nh * nw);
    let mut sums = vec![0u32; nw];
    let mut counts = vec![0u32; nw];
    for y in 0..nh {
        sums.iter_mut().for_each(|s| *s = 0);
        counts.iter_mut().for_each(|c| *c = 0);
        for row in a.rows().into_iter().skip(2 * y).take(2) {
            for (x, v) in row.iter().enumerate() {
                sums[x / 2] += (*v).into();
                counts[x / 2] += 1;
            }
        }
        out.extend(sums.iter().zip(&counts).map(|(&s, &n)| mean(s, n)));
    }
    Array2::from_shape_vec((nh, nw), out).unwrap_or_else(|_| Array2::from_elem((nh, nw), mean(0, 1)))
}

/// The next level of a label image: the top-left label of every 2 × 2 block (nearest
/// neighbour) — a mean would invent labels that are in neither cell.
pub fn downsample_labels(labels: &Array2<u32>) -> Array2<u32> {
    let (nh, nw) = half(labels.dim());
    Array2::from_shape_fn((nh, nw), |(y, x)| labels[[2 * y, 2 * x]])
}

/// A label image placed at the top-left of a zero (background) `canvas` (cut to it if larger).
pub fn pad_labels(labels: &Array2<u32>, canvas: (usize, usize)) -> Array2<u32> {
    let (h, w) = (labels.dim().0.min(canvas.0), labels.dim().1.min(canvas.1));
    let mut out = Array2::zeros(canvas);
    out.slice_mut(ndarray::s![..h, ..w]).assign(&labels.slice(ndarray::s![..h, ..w]));
    out
}

/// `plane` placed at the top-left of a zero `canvas` (cut to it if larger).
pub fn pad(plane: &PlaneData, canvas: (usize, usize)) -> PlaneData {
    fn put<T: Copy + Default>(a: &Array2<T>, canvas: (usize, usize)) -> Array2<T> {
        let (h, w) = (a.dim().0.min(canvas.0), a.dim().1.min(canvas.1));
        let mut out = Array2::from_elem(canvas, T::default());
        out.slice_mut(ndarray::s![..h, ..w]).assign(&a.slice(ndarray::s![..h, ..w]));
        out
    }
    match plane {
        PlaneData::U8(a) => PlaneData::U8(put(a, canvas)),
        PlaneData::U16(a) => PlaneData::U16(put(a, canvas)),
        PlaneData::F32(a) => PlaneData::F32(put(a, canvas)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_three_levels_and_until_the_small_side_is_under_512() {
        assert_eq!(levels((128, 100)), 3);
        assert_eq!(levels((1024, 1024)), 3);
        assert_eq!(levels((3000, 2800)), 4);
        assert_eq!(level_shape((3000, 2800), 3), (375, 350));
        assert_eq!(level_shape((5, 3), 2), (2, 1));
    }

    #[test]
    fn label_levels_keep_labels_and_pad_with_background() {
        let labels = Array2::from_shape_fn((5, 3), |(y, x)| (y * 3 + x) as u32 + 1);
        let next = downsample_labels(&labels);
        assert_eq!(next.dim(), half((5, 3)));
        // Every label of the next level is one of the level's own, never a mean of two.
        assert!(next.iter().all(|l| labels.iter().any(|m| m == l)));
        assert_eq!(next[[1, 1]], labels[[2, 2]]);
        let padded = pad_labels(&labels, (6, 4));
        assert_eq!((padded[[4, 2]], padded[[5, 0]], padded[[0, 3]]), (15, 0, 0));
    }

    #[test]
    fn levels_are_two_by_two_means_edges_included() {
        let p = PlaneData::U16(Array2::from_shape_vec((3, 3), vec![0, 2, 10, 4, 6, 20, 7, 9, 30]).expect("shape"));
        let PlaneData::U16(d) = downsample(&p) else { panic!("dtype kept") };
        assert_eq!(d, Array2::from_shape_vec((2, 2), vec![3, 15, 8, 30]).expect("shape"));
        let PlaneData::U16(padded) = pad(&p, (4, 5)) else { panic!("dtype kept") };
        assert_eq!(padded[[2, 2]], 30);
        assert_eq!(padded[[3, 4]], 0);
    }
}
