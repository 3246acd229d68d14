//! Cell counting on one channel: Laplacian-of-Gaussian blobs, or threshold (+ watershed)
//! regions, filtered by area and border contact. Counts, per-cell measurements and (optionally)
//! label masks are special outputs.
//!
//! Each slice is processed alone: optional smoothing (Gaussian `gaussian_sigma`, then a median
//! over a disk of `median_disk_size`), then scaled to `[0, 1]` by its own minimum and maximum;
//! `threshold` (blobs, or the manual region threshold) applies to that scaled image. Areas are
//! pixel counts for regions and the disk area 2πσ² (radius σ√2) for blobs; intensities are means
//! of the raw input over the cell.

mod blob;
mod filters;
mod regions;
mod threshold;

use hcs_core::{MaterializeError, MaterializeResult, MaterializeTarget, NdarrayStack};
use hcs_macros::memory;
use hcs_vfs::PlaneData;
use hcs_vfs::tiff::{TiffCompression, encode_tiff};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use blob::{Blob, blob_log, sigma_list};
pub use regions::{distance_peaks, distance_transform, label, watershed};
pub use threshold::{li, otsu};

use crate::error::KernelError;

/// How cells are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectionMethod {
    /// Scale-space maxima of the Laplacian of Gaussian (`skimage.feature.blob_log`).
    BlobLog,
    /// Foreground by a global threshold, split by a watershed of the distance transform.
    Watershed,
    /// Foreground by a global threshold, one cell per 8-connected component.
    Threshold,
}

hcs_core::choice_param!(DetectionMethod {
    DetectionMethod::BlobLog => "blob_log",
    DetectionMethod::Watershed => "watershed",
    DetectionMethod::Threshold => "threshold",
});

/// The global threshold of the region methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMethod {
    /// Otsu's between-class variance (256 bins).
    Otsu,
    /// Li's minimum cross-entropy.
    Li,
    /// The `threshold` parameter, on the image scaled to `[0, 1]`.
    Manual,
}

hcs_core::choice_param!(ThresholdMethod {
    ThresholdMethod::Otsu => "otsu",
    ThresholdMethod::Li => "li",
    ThresholdMethod::Manual => "manual",
});

/// One counted cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// 1-based id within the slice; the cell's value in the label mask.
    pub id: u32,
    /// Centre column (pixels).
    pub x: f64,
    /// Centre row (pixels).
    pub y: f64,
    /// Area in pixels (the disk area 2πσ² for blobs).
    pub area: f64,
    /// Mean raw intensity over the cell.
    pub mean_intensity: f64,
    /// The LoG response at the blob's peak (blob method only).
    pub confidence: Option<f64>,
}

/// The cells of one slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceCount {
    /// Index of the slice in the input stack.
    pub slice_index: usize,
    /// Number of cells kept.
    pub cell_count: usize,
    /// The foreground threshold used (region methods), on the `[0, 1]` scale.
    pub threshold: Option<f64>,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// Special output `cell_counts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellCounts {
    /// `blob_log`, `watershed` or `threshold`.
    pub method: String,
    /// One entry per input slice.
    pub slices: Vec<SliceCount>,
}

impl CellCounts {
    /// Cells over all slices.
    pub fn total(&self) -> usize {
        self.slices.iter().map(|s| s.cell_count).sum()
    }
}

pub use hcs_core::labels::LabelPlane;

/// Special output `segmentation_masks`: one label image per slice when
/// `return_segmentation_mask` is set, else empty. The executor also writes them into the step's
/// OME-Zarr plate as NGFF labels ([`hcs_core::labels`]).
pub type SegmentationMasks = hcs_core::labels::LabelStack;

/// Write `<stem>.json` (method, total, per-slice counts) and `<stem>_details.csv` (one row per
/// cell: `slice_index,cell_id,x,y,area,mean_intensity,confidence,method`).
pub fn write_cell_counts(counts: &CellCounts, target: &MaterializeTarget) -> MaterializeResult {
    let summary = serde_json::json!({
        "method": counts.method,
        "total_cells": counts.total(),
        "slices": counts.slices.iter().map(|s| serde_json::json!({
            "slice_index": s.slice_index, "cell_count": s.cell_count, "threshold": s.threshold,
        })).collect::<Vec<_>>(),
    });
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| MaterializeError::Encode(e.to_string()))?;
    let rows = counts.slices.iter().flat_map(|s| {
        s.cells.iter().map(move |c| {
            (
                s.slice_index,
                c.id,
                format!("{:.3}", c.x),
                format!("{:.3}", c.y),
                format!("{:.3}", c.area),
                format!("{:.3}", c.mean_intensity),
                c.confidence.map(|v| format!("{v:.6}")).unwrap_or_default(),
                counts.method.as_str(),
            )
        })
    });
    let csv = crate::csv_table::csv_bytes(
        &["slice_index", "cell_id", "x", "y", "area", "mean_intensity", "confidence", "method"],
        rows,
    )?;
    Ok(vec![target.write(".json", &json)?, target.write("_details.csv", &csv)?])
}

/// Write one label TIFF per slice, `<stem>_slice_NNN.tif`: uint16 when the labels fit, else
/// float32 (exact up to 2²⁴ cells). Nothing is written when masks were not requested.
pub fn write_segmentation_masks(masks: &SegmentationMasks, target: &MaterializeTarget) -> MaterializeResult {
    let mut written = Vec::new();
    for (i, p) in masks.planes.iter().enumerate() {
        let shape = (p.height, p.width);
        let bad = |e: ndarray::ShapeError| MaterializeError::Encode(format!("label plane {i}: {e}"));
        let plane = if p.labels.iter().all(|&l| l <= u32::from(u16::MAX)) {
            PlaneData::U16(Array2::from_shape_vec(shape, p.labels.iter().map(|&l| l as u16).collect()).map_err(bad)?)
        } else {
            PlaneData::F32(Array2::from_shape_vec(shape, p.labels.iter().map(|&l| l as f32).collect()).map_err(bad)?)
        };
        let suffix = format!("_slice_{i:03}.tif");
        let path = target.dir().join(format!("{}{suffix}", target.stem()));
        let bytes = encode_tiff(&[plane], TiffCompression::Deflate, &path)
            .map_err(|e| MaterializeError::Encode(format!("label plane {i}: {e}")))?;
        written.push(target.write(&suffix, &bytes)?);
    }
    Ok(written)
}

/// The settings of one counting run, checked once.
#[derive(Clone, Debug)]
struct Settings {
    method: DetectionMethod,
    sigmas: Vec<f64>,
    threshold: f64,
    overlap: f64,
    footprint: usize,
    min_distance: usize,
    threshold_method: ThresholdMethod,
    preprocess: Option<(f64, usize)>,
    area: (f64, f64),
    remove_border: bool,
    masks: bool,
}

/// Count cells in every slice of the stack; the stack passes through unchanged.
#[memory(ndarray)]
#[hcs_macros::check(min_cell_area <= max_cell_area, "min_cell_area must not exceed max_cell_area")]
#[hcs_macros::peak_memory((num_sigma as f64 + 4.0) * image.planes.unwrap_or(1) as f64 * image.height as f64 * image.width as f64 * 4.0)]
#[hcs_macros::check(watershed_footprint_size <= image.height.max(image.width) && watershed_min_distance <= image.height.max(image.width) && median_disk_size <= image.height.max(image.width), "watershed and median sizes must not exceed the larger side of the image")]
#[hcs_macros::check(max_sigma <= image.height.max(image.width) as f64 && gaussian_sigma <= image.height.max(image.width) as f64, "blob and smoothing σ must not exceed the larger side of the image")]
#[hcs_macros::check(min_sigma <= max_sigma, "min_sigma must not exceed max_sigma")]
#[hcs_macros::special_outputs(cell_counts = write_cell_counts, segmentation_masks = write_segmentation_masks)]
#[allow(clippy::too_many_arguments)]
pub fn count_cells_single_channel(
    stack: NdarrayStack,
    #[param(default = DetectionMethod::BlobLog, doc = "blob_log | watershed | threshold")]
    detection_method: DetectionMethod,
    #[param(default = 1.0, doc = "smallest blob σ (pixels)", range = 0.1..=100.0)] min_sigma: f64,
    #[param(default = 10.0, doc = "largest blob σ (pixels)", range = 0.1..=100.0)] max_sigma: f64,
    #[param(default = 10, doc = "number of σ values from min_sigma to max_sigma", range = 1..=100)] num_sigma: usize,
    #[param(default = 0.1, doc = "blob response threshold, or the manual foreground threshold (scaled image)", range = 0.0..=65535.0)]
    threshold: f64,
    #[param(default = 0.5, doc = "blobs overlapping more than this fraction are merged into the larger", range = 0.0..=1.0)]
    overlap: f64,
    #[param(default = 3, doc = "window (pixels) in which a watershed seed is a distance maximum", range = 1..=1024)]
    watershed_footprint_size: usize,
    #[param(default = 5, doc = "smallest distance (pixels) between watershed seeds", range = 0..=1024)]
    watershed_min_distance: usize,
    #[param(default = ThresholdMethod::Otsu, doc = "otsu | li | manual")] watershed_threshold_method: ThresholdMethod,
    #[param(default = true, doc = "smooth (Gaussian, then median) before detection")] enable_preprocessing: bool,
    #[param(default = 1.0, doc = "σ of the smoothing Gaussian (pixels)", range = 0.0..=100.0)] gaussian_sigma: f64,
    #[param(default = 1, doc = "radius of the median filter's disk (pixels, 0 = off)", range = 0..=100)]
    median_disk_size: usize,
    #[param(default = 10.0, doc = "smallest cell area kept (pixels)", range = 0.0..=1e12)] min_cell_area: f64,
    #[param(default = 1000.0, doc = "largest cell area kept (pixels)", range = 0.0..=1e12)] max_cell_area: f64,
    #[param(default = true, doc = "drop cells touching the image border")] remove_border_cells: bool,
    #[param(default = false, doc = "also return label masks (special output segmentation_masks)")]
    return_segmentation_mask: bool,
) -> Result<(NdarrayStack, CellCounts, SegmentationMasks), KernelError> {
    crate::gaussian::check_sigma("gaussian_sigma", gaussian_sigma)?;
    let bad = |m: String| Err(KernelError::BadParameter(m));
    if !(min_sigma.is_finite() && min_sigma > 0.0 && max_sigma.is_finite() && max_sigma >= min_sigma) {
        return bad(format!("need 0 < min_sigma ≤ max_sigma, got min_sigma {min_sigma}, max_sigma {max_sigma}"));
    }
    if num_sigma == 0 {
        return bad("num_sigma must be at least 1".into());
    }
    if !threshold.is_finite() || !(0.0..=1.0).contains(&overlap) {
        return bad(format!("threshold must be finite and overlap within [0, 1], got {threshold} and {overlap}"));
    }
    if !(min_cell_area >= 0.0 && max_cell_area >= min_cell_area) {
        return bad(format!("need 0 ≤ min_cell_area ≤ max_cell_area, got {min_cell_area} and {max_cell_area}"));
    }
    if watershed_footprint_size == 0 {
        return bad("watershed_footprint_size must be at least 1".into());
    }
    let (_, h, w) = stack.dim();
    check_sizes(
        (h, w),
        (min_sigma, max_sigma, num_sigma),
        (gaussian_sigma, median_disk_size),
        (watershed_footprint_size, watershed_min_distance),
        (min_cell_area, max_cell_area),
    )?;
    let settings = Settings {
        method: detection_method,
        sigmas: sigma_list(min_sigma, max_sigma, num_sigma),
        threshold,
        overlap,
        footprint: watershed_footprint_size,
        min_distance: watershed_min_distance,
        threshold_method: watershed_threshold_method,
        preprocess: enable_preprocessing.then_some((gaussian_sigma, median_disk_size)),
        area: (min_cell_area, max_cell_area),
        remove_border: remove_border_cells,
        masks: return_segmentation_mask,
    };
    let per_slice: Vec<(SliceCount, Option<LabelPlane>)> = stack
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(i, plane)| count_slice(i, plane, &settings))
        .collect();
    let method = match detection_method {
        DetectionMethod::BlobLog => "blob_log",
        DetectionMethod::Watershed => "watershed",
        DetectionMethod::Threshold => "threshold",
    };
    let (slices, planes): (Vec<_>, Vec<_>) = per_slice.into_iter().unzip();
    let masks = SegmentationMasks { planes: planes.into_iter().flatten().collect() };
    Ok((stack, CellCounts { method: method.into(), slices }, masks))
}

/// Smallest blob σ: below it the LoG kernel degenerates to its centre tap and σ⁴ underflows.
const MIN_BLOB_SIGMA: f64 = 0.01;

/// Largest median disk radius (pixels): the median costs `π·r²` samples per pixel.
const MAX_MEDIAN_RADIUS: usize = 100;

/// The size guards of [`count_cells_single_channel`] on `h × w` planes: every allocation and
/// loop derived from a parameter is bounded by the image (σ values and windows at most its
/// larger side) or by a fixed cap (at most [`crate::checks::MAX_SCALES`] σ values, each a
/// full-size plane; a median disk of at most [`MAX_MEDIAN_RADIUS`]).
fn check_sizes(
    (h, w): (usize, usize),
    (min_sigma, max_sigma, num_sigma): (f64, f64, usize),
    (gaussian_sigma, median_disk_size): (f64, usize),
    (footprint, min_distance): (usize, usize),
    (min_cell_area, max_cell_area): (f64, f64),
) -> Result<(), KernelError> {
    use crate::checks::{MAX_SCALES, bad, finite, int_in, larger_side, sigma_for};
    let side = larger_side(h, w);
    sigma_for("max_sigma", max_sigma, (h, w))?;
    if min_sigma < MIN_BLOB_SIGMA {
        return bad(format!("min_sigma must be in {MIN_BLOB_SIGMA}..=max_sigma, got {min_sigma}"));
    }
    int_in("num_sigma", num_sigma, 1, MAX_SCALES, "")?;
    sigma_for("gaussian_sigma", gaussian_sigma, (h, w))?;
    int_in(
        "median_disk_size",
        median_disk_size,
        0,
        MAX_MEDIAN_RADIUS.min(side),
        &format!("at most {MAX_MEDIAN_RADIUS} and the larger side of the image"),
    )?;
    int_in("watershed_footprint_size", footprint, 1, side, "the larger side of the image")?;
    int_in("watershed_min_distance", min_distance, 0, side, "the larger side of the image")?;
    finite("min_cell_area", min_cell_area)?;
    finite("max_cell_area", max_cell_area)
}

/// The detection image: optionally smoothed (Gaussian σ, then a median over a disk of the given
/// radius), then scaled to `[0, 1]` by its minimum and maximum (`None` if constant).
pub fn detection_image(plane: ArrayView2<'_, f32>, preprocess: Option<(f64, usize)>) -> Option<Array2<f64>> {
    let mut img = plane.mapv(f64::from);
    if let Some((sigma, disk)) = preprocess {
        img = filters::median_disk(filters::gaussian(img.view(), sigma).view(), disk);
    }
    let (lo, hi) = img.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    img.mapv_inplace(|v| (v - lo) / (hi - lo));
    Some(img)
}

fn count_slice(index: usize, plane: ArrayView2<'_, f32>, s: &Settings) -> (SliceCount, Option<LabelPlane>) {
    let (h, w) = plane.dim();
    let mut labels = Array2::<u32>::zeros((h, w));
    let mut used_threshold = None;
    let cells = match detection_image(plane, s.preprocess) {
        None => Vec::new(),
        Some(img) => match s.method {
            DetectionMethod::BlobLog => blob_cells(&img, plane, s, &mut labels),
            DetectionMethod::Watershed | DetectionMethod::Threshold => {
                let values = img.as_slice().map(<[f64]>::to_vec).unwrap_or_else(|| img.iter().copied().collect());
                let t = match s.threshold_method {
                    ThresholdMethod::Otsu => otsu(&values),
                    ThresholdMethod::Li => li(&values),
                    ThresholdMethod::Manual => Some(s.threshold),
                };
                used_threshold = t;
                match t {
                    None => Vec::new(),
                    Some(t) => region_cells(&img, t, plane, s, &mut labels),
                }
            }
        },
    };
    let mask = s.masks.then(|| LabelPlane { height: h, width: w, labels: labels.iter().copied().collect() });
    (SliceCount { slice_index: index, cell_count: cells.len(), threshold: used_threshold, cells }, mask)
}

fn blob_cells(img: &Array2<f64>, raw: ArrayView2<'_, f32>, s: &Settings, labels: &mut Array2<u32>) -> Vec<Cell> {
    let (h, w) = img.dim();
    let mut cells = Vec::new();
    for b in blob_log(img.view(), &s.sigmas, s.threshold, s.overlap) {
        let r = b.sigma * std::f64::consts::SQRT_2;
        let area = 2.0 * std::f64::consts::PI * b.sigma * b.sigma;
        if area < s.area.0 || area > s.area.1 {
            continue;
        }
        let (yf, xf) = (b.y as f64, b.x as f64);
        if s.remove_border && (yf < r || xf < r || ((h - 1 - b.y) as f64) < r || ((w - 1 - b.x) as f64) < r) {
            continue;
        }
        let id = cells.len() as u32 + 1;
        let (mut sum, mut n) = (0.0, 0usize);
        let ri = r.ceil() as isize;
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                let (y, x) = (b.y as isize + dy, b.x as isize + dx);
                if (dy * dy + dx * dx) as f64 > r * r || y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                    continue;
                }
                let (y, x) = (y as usize, x as usize);
                sum += f64::from(raw[(y, x)]);
                n += 1;
                if labels[(y, x)] == 0 {
                    labels[(y, x)] = id;
                }
            }
        }
        cells.push(Cell {
            id,
            x: xf,
            y: yf,
            area,
            mean_intensity: sum / n.max(1) as f64,
            confidence: Some(b.response),
        });
    }
    cells
}

fn region_cells(
    img: &Array2<f64>,
    t: f64,
    raw: ArrayView2<'_, f32>,
    s: &Settings,
    labels: &mut Array2<u32>,
) -> Vec<Cell> {
    let mask = img.mapv(|v| v > t);
    let (found, n) = match s.method {
        DetectionMethod::Watershed => {
            let d = distance_transform(mask.view());
            let seeds = distance_peaks(d.view(), s.footprint, s.min_distance);
            let n = seeds.len() as u32;
            (watershed(d.view(), &seeds, mask.view()), n)
        }
        _ => label(mask.view()),
    };
    let kept: Vec<regions::Region> = regions::measure(found.view(), n, raw)
        .into_iter()
        .filter(|r| (s.area.0..=s.area.1).contains(&(r.area as f64)) && !(s.remove_border && r.touches_border))
        .collect();
    let mut new_id = vec![0u32; n as usize + 1];
    for (i, r) in kept.iter().enumerate() {
        new_id[r.label as usize] = i as u32 + 1;
    }
    labels.zip_mut_with(&found, |o, &l| *o = new_id[l as usize]);
    kept.iter()
        .enumerate()
        .map(|(i, r)| Cell {
            id: i as u32 + 1,
            x: r.cx,
            y: r.cy,
            area: r.area as f64,
            mean_intensity: r.mean_intensity,
            confidence: None,
        })
        .collect()
}
