//! Pipeline files and the builder express the same pipelines; plate-free checks report every
//! mistake with the step, the function, the parameter and the file line.

use hcs::Registry;
use hcs::plan::pipeline::{
    ConfigLayer, FunctionPattern, FunctionStep, GpuPolicy, Pipeline, PipelineError, Workers, check_functions,
};
use hcs::plate::Component;
use hcs::vfs::Backend;

#[path = "../examples/canonical_pipeline.rs"]
mod canonical_example;

use canonical_example::canonical as canonical_in_rust;

#[path = "../examples/demo_pipeline.rs"]
mod demo_example;

fn canonical_file() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml")).expect("shipped")
}

#[test]
fn the_canonical_file_and_the_rust_builder_make_the_same_pipeline() {
    let (from_file, _) = Pipeline::from_toml(&canonical_file()).expect("valid file");
    assert_eq!(from_file, canonical_in_rust());
    assert_eq!(check_functions(&from_file, Registry::global(), None), []);
}

#[test]
fn a_pipeline_written_out_reads_back_identically() {
    let mut p = canonical_in_rust();
    p.steps.push(
        FunctionStep::new(
            "per channel",
            FunctionPattern::dict([
                ("1", FunctionPattern::from("max_projection")),
                ("2", FunctionPattern::chain(["mean_projection", "gaussian_filter"])),
            ]),
        )
        .group_by(Component::Channel)
        .variable_components([Component::Z])
        .materialize(Some(vec!["A01".parse().expect("well"), "B03".parse().expect("well")])),
    );
    p.config = ConfigLayer { backend: Some(Backend::Zarr), workers: Some(Workers::Count(3)), ..Default::default() };
    p.steps[0].config =
        ConfigLayer { gpu_policy: Some(GpuPolicy::Never), sub_dir: Some("ckpt".into()), ..Default::default() };
    p.steps.push(FunctionStep::new("count", "count_cells_single_channel").merge_outputs(["cell_counts"]));
    let text = p.to_toml();
    let (back, _) = Pipeline::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, p, "{text}");
    assert!(text.contains("[config]") && text.contains("merge_outputs = [\"cell_counts\"]"), "{text}");
}

fn errors(text: &str) -> Vec<String> {
    let (p, map) = Pipeline::from_toml(text).expect("well-formed");
    check_functions(&p, Registry::global(), Some(&map)).iter().map(ToString::to_string).collect()
}

#[test]
fn every_function_and_parameter_mistake_is_reported_with_its_line() {
    let text = r#"name = "broken"

[[steps]]
name = "first"
func = [
  { function = "tophatt" },
  { function = "gaussian_filter", params = { sigmaa = 2.0 } },
  { function = "tophat", params = { selem_radius = "big" } },
]

[[steps]]
name = "second"
func = "crop"
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert_eq!(errs[0], "line 6: step 1 `first`: unknown function `tophatt` (did you mean `tophat`?)");
    assert!(
        errs[1].starts_with("line 7: step 1 `first`: `gaussian_filter` has no parameter `sigmaa` (it takes: sigma"),
        "{}",
        errs[1]
    );
    assert!(errs[2].starts_with("line 8: step 1 `first`: `tophat` parameter `selem_radius`: expected"), "{}", errs[2]);
    assert!(errs[3].starts_with("line 13: step 2 `second`: `crop` needs parameter `width`"), "{}", errs[3]);
    assert!(errs[4].starts_with("line 13: step 2 `second`: `crop` needs parameter `height`"), "{}", errs[4]);
}

#[test]
fn dict_patterns_need_a_group_by_that_is_not_stacked() {
    let no_group = "[[steps]]\nname = \"d\"\nfunc = { dict = { \"1\" = \"max_projection\" } }\n";
    assert_eq!(
        errors(no_group),
        ["line 1: step 1 `d`: a dict pattern needs `group_by` (the component whose value picks the entry)"]
    );
    let stacked = "[[steps]]\nname = \"d\"\ngroup_by = \"channel\"\nvariable_components = [\"channel\"]\nfunc = { dict = { \"1\" = \"max_projection\" } }\n";
    let errs = errors(stacked);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("`group_by = \"channel\"` is also a variable component"), "{}", errs[0]);
    // Without a dict (the peer's composite step: group_by and variable_components both channel)
    // group_by chooses nothing: no error here (the compiler notes it).
    let plain = "[[steps]]\nname = \"c\"\ngroup_by = \"channel\"\nvariable_components = [\"channel\"]\nfunc = \"create_composite\"\n";
    assert_eq!(errors(plain), Vec::<String>::new());
}

#[test]
fn malformed_files_are_errors_naming_the_line() {
    let cases = [
        (
            "name = \"x\"\n[[steps]]\nname = \"a\"\nfunc = 3\n",
            "line 2: step 1: step `a`: func: a pattern cannot be a integer",
        ),
        ("[[steps]]\nname = \"a\"\nfunc = \"f\"\ncolour = 1\n", "line 1: step 1: unknown key `colour`"),
        (
            "[[steps]]\nname = \"a\"\nvariable_components = [\"zz\"]\nfunc = \"f\"\n",
            "line 1: step 1: step `a`: variable_components: unknown component `zz`",
        ),
        ("name = \n", "line 1: "),
        (
            "[[steps]]\nname = \" \"\nfunc = \"f\"\n",
            "line 1: step 1: a step needs `name = \"…\"`, a name that is not empty",
        ),
    ];
    for (text, want) in cases {
        let err = Pipeline::from_toml(text).map(|_| ()).expect_err(text).to_string();
        assert!(err.starts_with(want), "{text:?}: {err}");
    }
    let empty = Pipeline::from_toml("name = \"e\"\n").expect("valid").0;
    assert_eq!(check_functions(&empty, Registry::global(), None), [PipelineError::Empty]);
}

#[test]
fn every_shape_problem_of_a_file_is_reported_at_once() {
    // One typo per run was a fix-and-rerun loop: every unknown key, refused `[config]` value and
    // bad step is reported together; the first is what `from_toml` gives.
    let text = "colour = 1\n[config]\nnum_workers = 2\nmemory_budget_mib = -3\n\n[[steps]]\nname = \"a\"\nfucn = \"tophat\"\nfunc = \"tophat\"\nvariable_components = \"site\"\ngroup_by = \"well_row\"\n\n[[steps]]\nname = \"b\"\nfunc = 3\nconfig = { workers = -1, backend = \"tape\" }\n\n[[steps]]\nname = \"c\"\nfunc = \"tophat\"\n";
    let errs: Vec<String> =
        Pipeline::from_toml_all(text).map(|_| ()).expect_err("malformed").iter().map(ToString::to_string).collect();
    let want = [
        "line 1: unknown key `colour`",
        // At the refused key's line, not the table's.
        "line 4: [config]: `memory_budget_mib`: invalid value: integer `-3`",
        "line 3: [config]: unknown field `num_workers`",
        "line 6: step 1: unknown key `fucn`",
        "line 6: step 1: step `a`: variable_components must be a list",
        "line 6: step 1: step `a`: group_by: unknown component `well_row`",
        "line 13: step 2: step `b`: func: a pattern cannot be a integer",
        "line 16: step 2: step `b`: config: `backend`",
        "line 16: step 2: step `b`: config: workers is \"auto\" or an integer",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (err, want) in errs.iter().zip(want) {
        assert!(err.starts_with(want), "{err:?} should start with {want:?}");
    }
    let first = Pipeline::from_toml(text).map(|_| ()).expect_err("malformed").to_string();
    assert_eq!(first, errs[0]);

    // A key refused as read does not hide a value out of range beside it.
    let mixed = "[config]
workers = 0
zarr_level = 99
gpu_slots = 0

[[steps]]
name = \"a\"
func = \"tophat\"
";
    let errs: Vec<String> =
        Pipeline::from_toml_all(mixed).map(|_| ()).expect_err("refused").iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(errs[0].starts_with("line 2: [config]: workers is \"auto\" or an integer"), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("line 3: [config]: `zarr_level`: 99 is outside 1–22")), "{errs:#?}");
    assert!(errs.iter().any(|e| e.starts_with("line 4: [config]: `gpu_slots`")), "{errs:#?}");

    // Values refused when checked (not when read) are at their key's line too: the pipeline's
    // `[config]`, a step's `[steps.config]` table and an inline `config = { … }`.
    let checked = "[config]
workers = 2
sub_dir = \"../up\"

[[steps]]
name = \"a\"
func = \"tophat\"
config = { zarr_level = 99, output_folder = \"x\" }

[[steps]]
name = \"b\"
func = \"tophat\"
[steps.config]
backend = \"disk\"
output_suffix = \"_y\"
";
    // A dotted key inside a step table is at its own line too.
    let dotted = "[[steps]]\nname = \"a\"\nfunc = \"tophat\"\nconfig.zarr_level = 99\n";
    let (pipeline, map) = Pipeline::from_toml(dotted).expect("read");
    let errs: Vec<String> =
        hcs::plan::pipeline::check_config(&pipeline, Some(&map)).iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(errs[0].starts_with("line 4: step 1 `a`: config: `zarr_level`"), "{errs:#?}");
    let (pipeline, map) = Pipeline::from_toml(checked).expect("read");
    let errs: Vec<String> =
        hcs::plan::pipeline::check_config(&pipeline, Some(&map)).iter().map(ToString::to_string).collect();
    let want = [
        "line 3: [config]: `sub_dir`",
        "line 8: step 1 `a`: config: `zarr_level`",
        "line 8: step 1 `a`: config: `output_folder` names",
        "line 15: step 2 `b`: config: `output_suffix` names",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (err, want) in errs.iter().zip(want) {
        assert!(err.starts_with(want), "{err:?} should start with {want:?}");
    }
}

#[test]
fn special_inputs_need_an_earlier_producer_and_one_producer_per_step() {
    use hcs::plan::pipeline::check_special_io;
    assert_eq!(
        check_special_io(&canonical_in_rust(), Registry::global(), None),
        [],
        "grid_dimensions comes from the plate"
    );
    let io_errors = |text: &str| {
        let (p, map) = Pipeline::from_toml(text).expect("well-formed");
        check_special_io(&p, Registry::global(), Some(&map)).iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let too_early = "[[steps]]\nname = \"assemble\"\nfunc = \"assemble_stack\"\n\n[[steps]]\nname = \"positions\"\nfunc = \"ashlar_compute_tile_positions\"\n";
    assert_eq!(
        io_errors(too_early),
        [
            "line 3: step 1 `assemble`: `assemble_stack` needs special input `positions`, but no earlier step produces it (it is produced only later, by step 2 `positions`)"
        ]
    );
    let never = "[[steps]]\nname = \"assemble\"\nfunc = \"assemble_stack\"\n";
    assert_eq!(
        io_errors(never),
        [
            "line 3: step 1 `assemble`: `assemble_stack` needs special input `positions`, but no earlier step produces it"
        ]
    );
    let twice =
        "[[steps]]\nname = \"p\"\nfunc = [\"ashlar_compute_tile_positions\", \"ashlar_compute_tile_positions\"]\n";
    let errs = io_errors(twice);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("special output `positions` is produced twice in this step"), "{}", errs[0]);
    let same_chain = "[[steps]]\nname = \"p\"\nfunc = [\"ashlar_compute_tile_positions\", \"assemble_stack\"]\n";
    assert_eq!(io_errors(same_chain), Vec::<String>::new(), "an earlier chain member is an earlier producer");
}

#[test]
fn the_rust_and_file_canonical_pipelines_compile_to_identical_plans_for_a_4_well_plate() {
    let dir = std::env::temp_dir().join(format!("hcs-canonical-plans-{}", std::process::id()));
    let wells = ["A01", "A02", "B01", "B02"].map(|w| w.parse().expect("well")).to_vec();
    let config = hcs::synth::SynthConfig { wells, tile: 64, ..Default::default() };
    hcs::synth::synthesize(&config, &dir).expect("synthetic plate");
    let (from_file, _) = Pipeline::from_toml(&canonical_file()).expect("valid file");
    let a = canonical_example::compile_for(&canonical_in_rust(), &dir).expect("compiles");
    let b = canonical_example::compile_for(&from_file, &dir).expect("compiles");
    assert_eq!(a.wells.len(), 4);
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).expect("json"),
        serde_json::to_string(&b).expect("json"),
        "identical JSON too"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn out_of_range_values_and_unknown_choices_are_refused_with_what_is_accepted() {
    let text = r#"[[steps]]
name = "range"
func = [
  { function = "tophat", params = { selem_radius = -3 } },
  { function = "create_projection", params = { method = "median_projection" } },
]
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        errs[0],
        "line 4: step 1 `range`: `tophat` parameter `selem_radius`: -3 is out of range: expected integer ≥ 0"
    );
    assert!(errs[1].starts_with("line 5: step 1 `range`: `create_projection` parameter `method`:"), "{}", errs[1]);
    assert!(errs[1].contains("max_projection"), "names the accepted choices: {}", errs[1]);
}

#[test]
fn the_demo_file_and_the_rust_demo_pipeline_are_the_same() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/demo.toml")).expect("shipped");
    let (from_file, _) = Pipeline::from_toml(&text).expect("valid file");
    assert_eq!(from_file, demo_example::demo());
}

/// `variable_components = ["well"]`: a call never spans wells, so each call gets one plane —
/// a known count, against which the rules on `image.planes` are checked before the run (they
/// were skipped as unknown, and the well failed at run time).
#[test]
fn stacking_wells_gives_each_call_one_plane_and_the_rules_are_checked_on_it() {
    use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
    let plate = PlateInfo::regular("/data/plate", 2, 2, (2, 2), 2, 2, 1, (64, 64));
    let errors = |func: &str| {
        let text = format!("[[steps]]\nname = \"s\"\nvariable_components = [\"well\"]\nfunc = {func}\n");
        let (pipeline, map) = Pipeline::from_toml(&text).expect("read");
        let options = CompileOptions { source: Some(&map), ..CompileOptions::new(Registry::global()) };
        match compile(&pipeline, &plate, &options) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    };
    let bin = errors("\"spatial_bin_3d\"");
    assert_eq!(bin.len(), 1, "{bin:#?}");
    assert!(
        bin[0].starts_with("line 4: step 1 `s`: `spatial_bin_3d` parameters bin_size = 2 on 1 plane per call"),
        "{bin:#?}"
    );
    let weights = errors("{ function = \"create_composite\", params = { weights = [1.0, 2.0] } }");
    assert!(
        weights.iter().any(|e| e.contains("on 1 plane per call: weights needs one entry per plane")),
        "{weights:#?}"
    );
    assert_eq!(errors("\"gaussian_filter\""), Vec::<String>::new(), "a rule-free function compiles");
}

/// A rule on the site grid says what the grid holds: a plate whose metadata announces more
/// sites than its images have made "3 planes per call: one call must receive exactly the well's
/// tiles" read as if the 3 tiles were wrong.
#[test]
fn a_broken_rule_on_the_site_grid_says_what_the_grid_holds() {
    use hcs::plan::compiler::{CompileOptions, PlateInfo, compile};
    let plate = PlateInfo::regular("/data/plate", 1, 1, (2, 2), 2, 1, 1, (64, 64));
    let text = "[[steps]]\nname = \"p\"\nvariable_components = [\"site\", \"channel\"]\nfunc = \"ashlar_compute_tile_positions\"\n";
    let (pipeline, map) = Pipeline::from_toml(text).expect("read");
    let options = CompileOptions { source: Some(&map), ..CompileOptions::new(Registry::global()) };
    let errors: Vec<String> =
        compile(&pipeline, &plate, &options).err().unwrap_or_default().iter().map(ToString::to_string).collect();
    assert!(
        errors.iter().any(|e| e.contains("`ashlar_compute_tile_positions` on 8 planes per call, in a site grid of 4: one call must receive exactly the well's tiles")),
        "{errors:#?}"
    );
}
