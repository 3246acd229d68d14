//! The raw planes' quality measures (`qc::measure`) against SciPy / NumPy on real photographs
//! (scikit-image's camera and coins as 16-bit planes): `scripts/make_references.py` writes the
//! planes and the measures to `hcs-kernels/tests/fixtures/` (`qc_input.npy`, `qc.json`).

use std::path::PathBuf;

use hcs_exec::qc::measure;
use hcs_plate::ImageKey;
use hcs_vfs::Dtype;
use ndarray::{Array3, Axis};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../hcs-kernels/tests/fixtures")
}

#[test]
fn quality_measures_match_scipy_on_real_photographs() {
    let planes: Array3<f32> = ndarray_npy::read_npy(fixtures().join("qc_input.npy")).expect("qc_input.npy");
    let text = std::fs::read_to_string(fixtures().join("qc.json")).expect("qc.json");
    let expected: Vec<serde_json::Value> = serde_json::from_str(&text).expect("qc.json parses");
    assert_eq!(planes.len_of(Axis(0)), expected.len());
    // 300 × 300: more pixels than the background sample takes, so the sample's stride is tested.
    assert!(planes.len_of(Axis(1)) * planes.len_of(Axis(2)) > 65_536);
    let number = |v: &serde_json::Value, name: &str| v[name].as_f64().unwrap_or_else(|| panic!("{name} in qc.json"));
    for (i, (plane, want)) in planes.axis_iter(Axis(0)).zip(&expected).enumerate() {
        let key = ImageKey { well: "A01".parse().expect("well"), timepoint: 1, site: 1, channel: 1, z: 1 };
        let qc = measure(key, plane, Dtype::U16);
        // The Laplacian of integer samples below 2²⁴ is exact in f32; only the sums' order differs.
        let focus = number(want, "focus");
        assert!((qc.focus - focus).abs() <= 1e-9 * focus, "plane {i}: focus {} vs SciPy {focus}", qc.focus);
        assert_eq!(qc.saturated_fraction, number(want, "saturated_fraction"), "plane {i}: saturated fraction");
        assert_eq!(qc.background, number(want, "background"), "plane {i}: background");
    }
    // The camera saturates (its 255s); the coins do not.
    assert!(number(&expected[0], "saturated_fraction") > 0.0);
    assert_eq!(number(&expected[1], "saturated_fraction"), 0.0);
}
