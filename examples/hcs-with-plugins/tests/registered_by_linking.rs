//! A binary that merely links the plugin crate sees its functions in the registry.

use plugin_kernels as _;

use hcs::{MemoryType, ParamType, Registry};

#[test]
fn plugin_functions_appear_in_the_registry_next_to_the_builtin_ones() {
    let registry = Registry::global();
    registry.check().expect("no duplicate registrations");

    let invert = registry.get("invert", MemoryType::Ndarray).expect("plugin function `invert` registered");
    assert_eq!(invert.crate_name, "plugin-kernels");
    assert_eq!(invert.module_path, "plugin_kernels");
    assert_eq!(invert.params[0].name, "max_value");
    assert_eq!(invert.params[0].ty, ParamType::Float);

    let measure =
        registry.get("measure_planes", MemoryType::Ndarray).expect("plugin function `measure_planes` registered");
    assert_eq!(measure.special_outputs[0].key, "plane_stats");
    assert_eq!(measure.special_outputs[0].materializer.map(|m| m.name), Some("write_plane_stats_csv"));

    // The facade re-exports hcs-kernels, so the built-in functions are linked too.
    assert!(registry.get("max_projection", MemoryType::Ndarray).is_some());
}

#[test]
fn the_hcs_tool_built_with_the_plugin_lists_its_functions_as_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcs-with-plugins"))
        .args(["functions", "--json"])
        .output()
        .expect("run hcs-with-plugins");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let invert = list.as_array().and_then(|a| a.iter().find(|f| f["name"] == "invert")).expect("invert listed");
    assert_eq!(invert["crate"], "plugin-kernels");
    assert_eq!(invert["params"][0]["name"], "max_value");
    assert_eq!(invert["params"][0]["type"]["kind"], "float");
    assert_eq!(invert["params"][0]["default"], 65535.0);
    let measure = list.as_array().and_then(|a| a.iter().find(|f| f["name"] == "measure_planes")).expect("listed");
    assert_eq!(measure["special_outputs"][0]["materializer"], "write_plane_stats_csv");
}
