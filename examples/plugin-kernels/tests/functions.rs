//! The plugin's functions called the way a pipeline calls them: by registered name, with
//! parameters as a pipeline file gives them (`hcs::testing`), and their materializer run.

use hcs::ParamValue;
use hcs::testing::{call, params, ramp};
// Name the crate so the linker keeps its registrations in this test binary.
use plugin_kernels::{PlaneStats, write_plane_stats_csv};

#[test]
fn invert_by_name_uses_the_parameter_and_its_default() {
    let stack = ramp(1, 2, 3); // samples 0..=12
    let out = call("invert", stack.clone(), &params(&[("max_value", ParamValue::Float(100.0))])).expect("invert");
    assert_eq!(out.stack[[0, 1, 2]], 100.0 - 12.0);
    let default = call("invert", stack, &params(&[])).expect("invert with its default");
    assert_eq!(default.stack[[0, 0, 1]], 65535.0 - 1.0);
    let bad = call("invert", ramp(1, 1, 1), &params(&[("max_value", ParamValue::Str("lots".into()))]));
    assert!(bad.is_err_and(|e| e.to_string().contains("max_value")), "a wrong parameter type is named");
}

#[test]
fn measure_planes_returns_its_special_output_and_the_materializer_writes_csv() {
    let out = call("measure_planes", ramp(2, 2, 2), &params(&[])).expect("measure");
    let [(key, value)] = out.special_outputs.as_slice() else { panic!("one special output") };
    assert_eq!(*key, "plane_stats");
    let stats = value.downcast_ref::<PlaneStats>().expect("PlaneStats");
    assert_eq!(stats.means, [5.5, 1005.5]);

    let dir = std::env::temp_dir().join(format!("plugin-kernels-{}", std::process::id()));
    let target = hcs::MaterializeTarget::new(&dir, "A01_plane_stats");
    let written = write_plane_stats_csv(stats, &target).expect("materialize");
    assert_eq!(written, [dir.join("A01_plane_stats.csv")]);
    assert_eq!(std::fs::read_to_string(&written[0]).expect("read"), "plane,mean\n0,5.5\n1,1005.5\n");
    std::fs::remove_dir_all(&dir).ok();
}
