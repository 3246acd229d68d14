//! Registry behaviour on hand-built contracts (no macros: hcs-core is tested on its own).

use hcs_core::{
    FunctionContract, InvokeError, InvokeOutput, MemoryType, ParamMap, Registry, RegistryError, SourceLocation,
    SpecialInputs, Stack,
};

fn passthrough(stack: Stack, _: &ParamMap, _: &SpecialInputs) -> Result<InvokeOutput, InvokeError> {
    Ok(InvokeOutput { stack, special_outputs: Vec::new() })
}

const fn contract(name: &'static str, module_path: &'static str, memory: MemoryType, line: u32) -> FunctionContract {
    FunctionContract {
        name,
        module_path,
        crate_name: "test",
        input_memory: memory,
        output_memory: memory,
        output_planes: hcs_core::PlaneCount::Same,
        plane_shape: hcs_core::PlaneShape::Same,
        special_inputs: &[],
        special_outputs: &[],
        chain_breaker: false,
        params: &[],
        checks: &[],
        peak_memory: None,
        output_shape: None,
        pixel_scale: None,
        pixel_origin: None,
        doc: "",
        location: SourceLocation { file: "src/lib.rs", line, column: 8 },
        invoke: passthrough,
        invoke_views: None,
    }
}

static TOPHAT_CPU: FunctionContract = contract("tophat", "a::cpu", MemoryType::Ndarray, 10);
static TOPHAT_TORCH: FunctionContract = contract("tophat", "a::gpu", MemoryType::Torch, 20);
static TOPHAT_AGAIN: FunctionContract = contract("tophat", "b::cpu", MemoryType::Ndarray, 30);
static BLUR: FunctionContract = contract("gaussian_filter", "a::cpu", MemoryType::Ndarray, 40);

#[test]
fn one_name_holds_one_variant_per_memory_type() {
    let r = Registry::from_contracts([&TOPHAT_TORCH, &BLUR, &TOPHAT_CPU]);
    assert!(r.check().is_ok());
    assert_eq!(r.len(), 3);
    assert_eq!(r.variants("tophat").len(), 2);
    assert_eq!(r.get("tophat", MemoryType::Torch).map(|c| c.module_path), Some("a::gpu"));
    assert!(r.get("tophat", MemoryType::Cuda).is_none());
    // Listing is sorted by name, whatever the link order.
    let names: Vec<_> = r.iter().map(|c| c.name).collect();
    assert_eq!(names, ["gaussian_filter", "tophat", "tophat"]);
}

#[test]
fn duplicate_registration_is_reported_with_both_locations() {
    let r = Registry::from_contracts([&TOPHAT_AGAIN, &TOPHAT_CPU]);
    let problems = r.check().expect_err("duplicate");
    assert_eq!(problems.len(), 1);
    assert!(matches!(problems[0], RegistryError::Duplicate { name: "tophat", memory: MemoryType::Ndarray, .. }));
    assert_eq!(
        problems[0].to_string(),
        "function `tophat` is registered twice for memory type ndarray: `a::cpu::tophat` (src/lib.rs:10:8) and `b::cpu::tophat` (src/lib.rs:30:8); rename one of them"
    );
    // The first registration (in sorted order) stays usable.
    assert_eq!(r.get("tophat", MemoryType::Ndarray).map(|c| c.module_path), Some("a::cpu"));
}

#[test]
fn unknown_names_get_a_suggestion() {
    let r = Registry::from_contracts([&TOPHAT_CPU, &BLUR]);
    assert_eq!(r.suggest("tophta"), Some("tophat"));
    assert_eq!(r.suggest("gaussian_filtr"), Some("gaussian_filter"));
    assert_eq!(r.suggest("segment_nuclei"), None);
}

const RADIUS: hcs_core::ParamSpec = hcs_core::ParamSpec {
    name: "selem_radius",
    rust_type: "usize",
    ty: hcs_core::ParamType::Int { min: 0, max: i64::MAX },
    default: None,
    doc: "",
    rule: hcs_core::ValueRule { min: Some(1.0), max: Some(100.0), ..hcs_core::ValueRule::NONE },
};
static TOPHAT_RANGED: FunctionContract =
    FunctionContract { params: &[RADIUS], ..contract("tophat", "a::cpu", MemoryType::Ndarray, 50) };
static TOPHAT_WIDER: FunctionContract = FunctionContract {
    params: &[hcs_core::ParamSpec { rule: hcs_core::ValueRule { max: Some(1000.0), ..RADIUS.rule }, ..RADIUS }],
    ..contract("tophat", "a::gpu", MemoryType::Torch, 60)
};
static TOPHAT_NO_PARAMS: FunctionContract = contract("tophat", "a::cuda", MemoryType::Cuda, 70);

#[test]
fn variants_that_disagree_are_a_registry_error_naming_both_locations() {
    let r = Registry::from_contracts([&TOPHAT_WIDER, &TOPHAT_RANGED, &TOPHAT_NO_PARAMS]);
    let problems = r.check().expect_err("variants disagree");
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0].function(), "tophat");
    assert_eq!(
        problems[0].to_string(),
        "the ndarray and torch variants of `tophat` disagree on the accepted values of parameter `selem_radius`: in 1..=100 vs in 1..=1000 (src/lib.rs:50:8 and src/lib.rs:60:8); variants must accept the same pipelines"
    );
    assert!(problems[1].to_string().contains("disagree on parameters [selem_radius] vs []"), "{}", problems[1]);
    // Both variants stay registered: the compiler refuses pipelines that call the function.
    assert_eq!(r.variants("tophat").len(), 3);
}
