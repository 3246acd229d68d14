//! rustc (through `pipeline!`) and the runtime compiler (through pipeline files) judge every
//! `pipeline_fail` case the same way: each case has a pipeline-file twin here, the runtime
//! compiler rejects the twin, and the case's `.stderr` snapshot shows rustc rejecting it for the
//! same reason. Where the compile-time check is a constant evaluating the shared wiring rule, the
//! rustc message *is* the runtime error's text, and that is what is asserted.

use std::path::{Path, PathBuf};

use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
use hcs::plan::pipeline::Pipeline;
use hcs::plate::WellId;
use hcs::plate::formats::open_plate;
use hcs::synth::{SynthConfig, synthesize};
use ui_tests as _;

/// How the two sides are compared.
enum Expect {
    /// The runtime error's text appears verbatim in rustc's output (a shared const rule).
    SameText,
    /// Runtime error contains the first text; rustc's output contains each of the others.
    Says(&'static str, &'static [&'static str]),
}

struct Case {
    file: &'static str,
    toml: &'static str,
    expect: Expect,
}

const CASES: &[Case] = &[
    Case {
        file: "p01_special_input_without_producer",
        toml: r#"
            name = "no producer"
            [[steps]]
            name = "smooth"
            func = "smooth"
            [[steps]]
            name = "place"
            func = "place_tiles"
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p02_special_input_produced_later",
        toml: r#"
            name = "producer later"
            [[steps]]
            name = "place"
            func = "place_tiles"
            [[steps]]
            name = "find"
            func = "find_positions"
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p03_special_input_type_mismatch",
        toml: r#"
            name = "type mismatch"
            [[steps]]
            name = "find"
            func = "find_positions"
            [[steps]]
            name = "place"
            func = "place_tiles_u32"
        "#,
        expect: Expect::Says(
            "step 2 `place`: `place_tiles_u32` takes special input `positions` as `Vec<u32>`, but `find_positions` (step 1) produces",
            &["special data produced as `Vec<(f64, f64)>` is consumed as `Vec<u32>`", "place_tiles_u32"],
        ),
    },
    Case {
        file: "p04_unknown_parameter",
        toml: r#"
            name = "unknown parameter"
            [[steps]]
            name = "smooth"
            func = { function = "smooth", params = { sigmaa = 2.0 } }
        "#,
        expect: Expect::Says(
            "step 1 `smooth`: `smooth` has no parameter `sigmaa`",
            &["cannot find type `sigmaa` in module `smooth::params`", "similar name exists"],
        ),
    },
    Case {
        file: "p05_parameter_wrong_type",
        toml: r#"
            name = "wrong parameter type"
            [[steps]]
            name = "smooth"
            func = { function = "smooth", params = { sigma = "wide", passes = 2.5 } }
        "#,
        expect: Expect::Says(
            "step 1 `smooth`: `smooth` parameter `passes`",
            &[
                "`&str` is not a value for a parameter of type `f64`",
                "`{float}` is not a value for a parameter of type `usize`",
            ],
        ),
    },
    Case {
        file: "p06_dict_without_group_by",
        toml: r#"
            name = "dict without group_by"
            [[steps]]
            name = "per channel"
            func = { dict = { "1" = { function = "smooth", params = { sigma = 1.0 } }, "2" = { function = "smooth", params = { sigma = 3.0 } } } }
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p07_typed_key_typo",
        toml: r#"
            name = "key typo"
            [[steps]]
            name = "count"
            variable_components = ["site"]
            merge_outputs = ["objects_counts"]
            func = "count_objects"
        "#,
        expect: Expect::Says(
            "step 1 `count`: `merge_outputs` names `objects_counts`, which no function of this step produces",
            &["cannot find type `objects_counts` in module `count_objects::outputs`", "object_counts"],
        ),
    },
    Case {
        file: "p08_unknown_function",
        toml: r#"
            name = "unknown function"
            [[steps]]
            name = "smooth"
            func = { function = "smoth", params = { sigma = 2.0 } }
        "#,
        expect: Expect::Says("step 1 `smooth`: unknown function `smoth` (did you mean `smooth`?)", &["smoth"]),
    },
    Case {
        file: "p09_plate_input_wrong_type",
        toml: r#"
            name = "plate input type"
            [[steps]]
            name = "scale"
            func = "scale_bar_u32"
        "#,
        expect: Expect::Says(
            "step 1 `scale`: `scale_bar_u32` needs special input `pixel_size` from the plate, but the plate supplies it as `f64`",
            &["special data produced as `f64` is consumed as `u32`"],
        ),
    },
    Case {
        file: "p10_producer_in_a_later_chain_member",
        toml: r#"
            name = "chain order"
            [[steps]]
            name = "place then find"
            func = ["place_tiles", "find_positions"]
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p11_choice_parameter_wrong_type",
        toml: r#"
            name = "choice"
            [[steps]]
            name = "project"
            variable_components = ["z_index"]
            func = { function = "create_projection", params = { method = 3 } }
        "#,
        expect: Expect::Says(
            "step 1 `project`: `create_projection` parameter `method`",
            &["`{integer}` is not a value for a parameter of type `ProjectionMethod`"],
        ),
    },
    Case {
        file: "p12_merge_output_of_another_step",
        toml: r#"
            name = "merge elsewhere"
            [[steps]]
            name = "find"
            func = "find_positions"
            [[steps]]
            name = "count"
            merge_outputs = ["positions"]
            func = "count_objects"
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p13_special_input_from_a_sibling_dict_entry",
        toml: r#"
            name = "sibling entries"
            [[steps]]
            name = "stitch"
            group_by = "channel"
            func = { dict = { "1" = "find_positions", "2" = "place_tiles" } }
        "#,
        expect: Expect::SameText,
    },
    Case {
        file: "p14_literal_outside_the_parameter_range",
        toml: r#"
            name = "out of range"
            [[steps]]
            name = "smooth"
            func = { function = "smooth", params = { sigma = 100.0, passes = 0 } }
        "#,
        expect: Expect::Says(
            "step 1 `smooth`: `smooth` parameter `sigma`: 100 is out of range: expected in 0..=50",
            &[
                "`smooth` parameter `sigma`: this value is outside what the parameter accepts",
                "`smooth` parameter `passes`: this value is outside what the parameter accepts",
            ],
        ),
    },
];

fn case_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/pipeline_fail")
}

/// A small synthetic plate (2 channels, so dict keys "1" and "2" exist; pixel size recorded).
fn plate(dir: &Path) -> PlateInfo {
    let config = SynthConfig {
        wells: vec!["A01".parse::<WellId>().expect("well id")],
        grid: (2, 2),
        tile: 32,
        channels: 2,
        z_planes: 1,
        ..SynthConfig::default()
    };
    synthesize(&config, dir).expect("synthesize");
    PlateInfo::of(&open_plate(dir, None).expect("open plate"))
}

#[test]
fn every_compile_fail_case_has_a_file_twin() {
    let mut files: Vec<String> = std::fs::read_dir(case_dir())
        .expect("case dir")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().expect("utf-8 name");
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    files.sort();
    let twins: Vec<&str> = CASES.iter().map(|c| c.file).collect();
    assert_eq!(files, twins, "every tests/ui/pipeline_fail case needs a twin in CASES (and no stale twins)");
}

#[test]
fn runtime_compiler_and_rustc_reject_each_case_for_the_same_reason() {
    let dir = std::env::temp_dir().join(format!("hcs-ui-agree-{}", std::process::id()));
    let info = plate(&dir);
    let options = CompileOptions::new(hcs::Registry::global());
    for case in CASES {
        let (pipeline, _) = Pipeline::from_toml(case.toml).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let errors: Vec<String> = match compile(&pipeline, &info, &options) {
            Ok(_) => panic!("{}: the runtime compiler accepted the twin", case.file),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        let stderr = std::fs::read_to_string(case_dir().join(format!("{}.stderr", case.file)))
            .unwrap_or_else(|e| panic!("{}: no .stderr snapshot: {e}", case.file));
        match &case.expect {
            Expect::SameText => {
                assert!(
                    errors.iter().any(|e| stderr.contains(&format!("evaluation panicked: {e}\n"))),
                    "{}: rustc says none of the runtime errors {errors:?}:\n{stderr}",
                    case.file
                );
            }
            Expect::Says(runtime, rustc) => {
                assert!(
                    errors.iter().any(|e| e.contains(runtime)),
                    "{}: no runtime error contains `{runtime}`: {errors:?}",
                    case.file
                );
                for text in *rustc {
                    assert!(stderr.contains(text), "{}: rustc does not say `{text}`:\n{stderr}", case.file);
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
