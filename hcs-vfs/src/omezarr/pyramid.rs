//! The multiscale pyramid of every image: level 0 as written, each next level the 2 × 2 mean of
//! the one before (edge pixels average what they cover), so viewers show a plate without reading
//! every well at full resolution.

use ndarray::Array2;

use crate::plane::{Dtype, PlaneData};

/// Levels are added while the smaller side of the last one is at least this many pixels.
const SMALL_SIDE: usize = 512;

/// Fewest levels an image gets.
const MIN_LEVELS: usize = 3;

/// Number of levels for a `(h, w)` image: at least [`MIN_LEVELS`], and until the smaller side
/// is under [`SMALL_SIDE`].
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

/// The next level of `plane`: 2 × 2 means, in the plane's dtype (integers rounded).
pub fn downsample(plane: &PlaneData) -> PlaneData {
    let values = plane.to_f32();
    let (h, w) = values.dim();
    let (nh, nw) = half((h, w));
    let out = Array2::from_shape_fn((nh, nw), |(y, x)| {
        let (y0, x0) = (2 * y, 2 * x);
        let (y1, x1) = ((y0 + 2).min(h), (x0 + 2).min(w));
        let mut sum = 0f32;
        for yy in y0..y1 {
            for xx in x0..x1 {
                sum += values[[yy, xx]];
            }
        }
        sum / ((y1 - y0) * (x1 - x0)) as f32
    });
    PlaneData::from_f32(out.view(), plane.dtype())
}

/// `plane` placed at the top-left of a zero `canvas`.
pub fn pad(plane: &PlaneData, canvas: (usize, usize)) -> PlaneData {
    let (h, w) = plane.dim();
    let put = |dtype: Dtype| {
        let mut out = Array2::<f32>::zeros(canvas);
        out.slice_mut(ndarray::s![..h.min(canvas.0), ..w.min(canvas.1)])
            .assign(&plane.to_f32().slice(ndarray::s![..h.min(canvas.0), ..w.min(canvas.1)]));
        PlaneData::from_f32(out.view(), dtype)
    };
    put(plane.dtype())
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
    fn levels_are_two_by_two_means_edges_included() {
        let p = PlaneData::U16(Array2::from_shape_vec((3, 3), vec![0, 2, 10, 4, 6, 20, 7, 9, 30]).expect("shape"));
        let PlaneData::U16(d) = downsample(&p) else { panic!("dtype kept") };
        assert_eq!(d, Array2::from_shape_vec((2, 2), vec![3, 15, 8, 30]).expect("shape"));
        let PlaneData::U16(padded) = pad(&p, (4, 5)) else { panic!("dtype kept") };
        assert_eq!(padded[[2, 2]], 30);
        assert_eq!(padded[[3, 4]], 0);
    }
}
