//! Label images — segmentation masks — as a special output any function can produce. The
//! executor knows this type: besides the producing function's own materializer (files in
//! `results/`), it writes a [`LabelStack`] into the OME-Zarr plate of the step's images as NGFF
//! labels, one label image per plane the function received, named by the special output's key.

use serde::{Deserialize, Serialize};

/// One label image: 0 = background, `k` = the object with id `k`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelPlane {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Labels in row-major order.
    pub labels: Vec<u32>,
}

/// Label images in the order of the planes of the stack the producing function received (and,
/// for a function that passes its stack through, of the planes it returns); empty when the
/// function was not asked for them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelStack {
    /// Label images in slice order.
    pub planes: Vec<LabelPlane>,
}

impl LabelPlane {
    /// The labels as a `height × width` array (`None` when the lengths disagree).
    pub fn to_array(&self) -> Option<ndarray::Array2<u32>> {
        ndarray::Array2::from_shape_vec((self.height, self.width), self.labels.clone()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plane_becomes_an_array_only_when_its_lengths_agree() {
        let p = LabelPlane { height: 2, width: 3, labels: vec![0, 1, 1, 0, 2, 2] };
        assert_eq!(p.to_array().map(|a| a[[1, 2]]), Some(2));
        assert_eq!(LabelPlane { labels: vec![1], ..p }.to_array(), None);
    }
}
