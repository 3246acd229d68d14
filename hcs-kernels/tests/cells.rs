//! Cell counting against scikit-image / scipy on the same slices (fixtures by
//! scripts/make_references.py: `cells_input`, `cells_blobs_<i>`, `cells_edt_<i>`, `cells.json`).
//!
//! Tolerances: blob sets identical (positions and σ); Otsu identical, Li within 1e-9 relative;
//! distance transform within f32 rounding; blob, threshold and watershed cell counts identical.

use std::path::PathBuf;

use hcs_kernels::cells::{
    CellCounts, DetectionMethod, SegmentationMasks, ThresholdMethod, blob_log, count_cells_single_channel,
    detection_image, distance_transform, li, otsu, sigma_list,
};
use ndarray::{Array3, Axis};
use ndarray_npy::read_npy;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn npy(name: &str) -> Array3<f32> {
    let path = fixtures().join(format!("{name}.npy"));
    read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn summary() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixtures().join("cells.json")).expect("cells.json");
    serde_json::from_str(&text).expect("valid json")
}

/// The kernel's defaults (as registered) except the arguments given.
struct Args {
    method: DetectionMethod,
    threshold_method: ThresholdMethod,
    sigmas: (f64, f64),
    min_area: f64,
    masks: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            method: DetectionMethod::BlobLog,
            threshold_method: ThresholdMethod::Otsu,
            sigmas: (1.0, 10.0),
            min_area: 10.0,
            masks: false,
        }
    }
}

type Counted = (Array3<f32>, CellCounts, SegmentationMasks);

fn run(stack: Array3<f32>, a: Args) -> Result<Counted, hcs_kernels::KernelError> {
    let (lo, hi) = a.sigmas;
    count_cells_single_channel(
        stack,
        a.method,
        lo,
        hi,
        10,
        0.1,
        0.5,
        3,
        5,
        a.threshold_method,
        true,
        1.0,
        1,
        a.min_area,
        1000.0,
        true,
        a.masks,
    )
}

fn count(method: DetectionMethod, stack: Array3<f32>, masks: bool) -> (CellCounts, usize) {
    let (out, counts, m) = run(stack, Args { method, masks, ..Args::default() }).expect("valid parameters");
    assert_eq!(out, npy("cells_input"), "the stack passes through");
    (counts, m.planes.len())
}

#[test]
fn blobs_are_the_ones_scikit_image_finds() {
    let input = npy("cells_input");
    for (i, plane) in input.axis_iter(Axis(0)).enumerate() {
        let img = detection_image(plane, Some((1.0, 1))).expect("not constant");
        let mut got: Vec<(usize, usize, f64)> =
            blob_log(img.view(), &sigma_list(1.0, 10.0, 10), 0.1, 0.5).iter().map(|b| (b.y, b.x, b.sigma)).collect();
        let want = npy(&format!("cells_blobs_{i}"));
        let mut want: Vec<(usize, usize, f64)> = want
            .index_axis(Axis(0), 0)
            .rows()
            .into_iter()
            .map(|r| (r[0] as usize, r[1] as usize, f64::from(r[2])))
            .collect();
        got.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        want.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        assert!(!want.is_empty());
        assert_eq!(got, want, "slice {i}");
    }
}

#[test]
fn thresholds_and_distance_transform_match() {
    let input = npy("cells_input");
    for (i, (plane, s)) in input.axis_iter(Axis(0)).zip(summary()).enumerate() {
        let img = detection_image(plane, Some((1.0, 1))).expect("not constant");
        let values: Vec<f64> = img.iter().copied().collect();
        let t = otsu(&values).expect("two populations");
        assert_eq!(t, s["otsu"].as_f64().expect("otsu"), "slice {i}");
        let l = li(&values).expect("two populations");
        let want = s["li"].as_f64().expect("li");
        assert!(((l - want) / want).abs() < 1e-9, "slice {i}: li {l} vs {want}");
        let edt = distance_transform(img.mapv(|v| v > t).view());
        let want = npy(&format!("cells_edt_{i}"));
        let worst = edt.iter().zip(want.iter()).map(|(a, &b)| (a - f64::from(b)).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "slice {i}: edt differs by {worst}");
    }
}

#[test]
fn counts_match_the_reference_pipeline() {
    let want = summary();
    let (blobs, masks) = count(DetectionMethod::BlobLog, npy("cells_input"), true);
    let (thr, _) = count(DetectionMethod::Threshold, npy("cells_input"), false);
    let (ws, none) = count(DetectionMethod::Watershed, npy("cells_input"), false);
    assert_eq!((masks, none), (2, 0), "masks only when asked for");
    for (i, w) in want.iter().enumerate() {
        let n = |k: &str| w[k].as_u64().expect("count") as usize;
        assert_eq!(blobs.slices[i].cell_count, n("blob_cells"), "blob_log, slice {i}");
        assert_eq!(thr.slices[i].cell_count, n("threshold_cells"), "threshold, slice {i}");
        let got = ws.slices[i].cell_count;
        assert_eq!(got, n("watershed_cells"), "watershed, slice {i}");
    }
    assert_eq!(blobs.total(), blobs.slices.iter().map(|s| s.cells.len()).sum::<usize>());
}

#[test]
fn counts_and_masks_are_materialized() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = Args {
        method: DetectionMethod::Watershed,
        threshold_method: ThresholdMethod::Li,
        masks: true,
        ..Args::default()
    };
    let (_, counts, masks) = run(npy("cells_input"), args).expect("valid parameters");
    let target = hcs_core::MaterializeTarget::new(dir.path(), "A01_cell_counts");
    let written = hcs_kernels::cells::write_cell_counts(&counts, &target).expect("written");
    assert_eq!(written.len(), 2);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written[0]).expect("json")).expect("valid json");
    assert_eq!(json["total_cells"].as_u64(), Some(counts.total() as u64));
    let csv = std::fs::read_to_string(&written[1]).expect("csv");
    assert_eq!(csv.lines().count(), counts.total() + 1, "one row per cell plus the header");
    let target = hcs_core::MaterializeTarget::new(dir.path(), "A01_segmentation_masks");
    let tiffs = hcs_kernels::cells::write_segmentation_masks(&masks, &target).expect("written");
    assert_eq!(tiffs.len(), 2);
    for (i, path) in tiffs.iter().enumerate() {
        let planes = hcs_vfs::tiff::read_tiff(path, hcs_vfs::tiff::TiffLimits::default()).expect("readable");
        let hcs_vfs::PlaneData::U16(labels) = &planes[0] else { panic!("labels are u16") };
        let max = labels.iter().copied().max().unwrap_or(0);
        assert_eq!(usize::from(max), counts.slices[i].cell_count, "slice {i}: labels 1..=count");
    }
}

#[test]
fn bad_parameters_are_errors_that_name_them() {
    let fails = |sigmas: (f64, f64), min_area: f64| {
        run(npy("cells_input"), Args { sigmas, min_area, ..Args::default() })
            .map(|_| ())
            .expect_err("invalid")
            .to_string()
    };
    assert!(fails((0.0, 10.0), 10.0).contains("min_sigma"));
    assert!(fails((5.0, 2.0), 10.0).contains("max_sigma"));
    assert!(fails((1.0, 10.0), 2000.0).contains("min_cell_area"));
}

#[test]
fn a_blank_slice_has_no_cells() {
    let blank = Array3::from_elem((1, 32, 32), 500.0);
    let (_, counts, _) = run(blank, Args { method: DetectionMethod::Threshold, ..Args::default() }).expect("valid");
    assert_eq!((counts.total(), counts.slices[0].threshold), (0, None));
}
