//! Issue 19's list of values that used to pass `hcs check --plate` and then fail, panic, abort or
//! write garbage in every well: each one is now refused by `hcs check --plate`, with a message
//! naming the step and the parameter (or config key). `HCS_CONTRACT_TABLE=path` writes the table
//! of cases and messages (for the closing note).

use std::path::{Path, PathBuf};
use std::process::Command;

fn hcs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcs")).args(args).output().expect("hcs runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A scratch folder, removed when the test ends.
fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("hcs-contracts-{name}-")).tempdir().expect("scratch dir")
}

fn synth(dir: &Path) -> PathBuf {
    let plate = dir.join("plate");
    let (ok, _, stderr) = hcs(&[
        "synth",
        "--out",
        plate.to_str().expect("utf-8"),
        "--wells",
        "A01",
        "--tile",
        "64",
        "--z",
        "2",
        "--channels",
        "2",
    ]);
    assert!(ok, "{stderr}");
    plate
}

/// One case: what the user wrote, the pipeline body, extra flags, and words the message must hold.
struct Case {
    what: &'static str,
    toml: String,
    flags: &'static [&'static str],
    must_name: &'static [&'static str],
}

fn step(func: &str, params: &str) -> String {
    format!("[[steps]]\nname = \"s\"\nfunc = {{ function = \"{func}\", params = {{ {params} }} }}\n")
}

fn cases() -> Vec<Case> {
    let one = |what, func: &str, params: &str, must_name: &'static [&'static str]| Case {
        what,
        toml: step(func, params),
        flags: &[],
        must_name,
    };
    vec![
        one("tophat selem_radius = i64::MAX", "tophat", "selem_radius = 9223372036854775807", &["selem_radius"]),
        one("tophat selem_radius = 2^32", "tophat", "selem_radius = 4294967296", &["selem_radius"]),
        one("tophat downsample_factor = 0", "tophat", "downsample_factor = 0", &["downsample_factor"]),
        one("gaussian_filter sigma = 1e308", "gaussian_filter", "sigma = 1e308", &["sigma"]),
        one("gaussian_filter sigma = -2", "gaussian_filter", "sigma = -2.0", &["sigma"]),
        one("stack_equalize_histogram bins = 9e12", "stack_equalize_histogram", "bins = 9e12", &["bins"]),
        one(
            "stack_equalize_histogram bins = 9000000000000",
            "stack_equalize_histogram",
            "bins = 9000000000000",
            &["bins"],
        ),
        one("stack_equalize_histogram bins = 0", "stack_equalize_histogram", "bins = 0", &["bins"]),
        one("spatial_bin_2d bin_size = 0", "spatial_bin_2d", "bin_size = 0", &["bin_size"]),
        one("spatial_bin_2d bin_size = 1e9", "spatial_bin_2d", "bin_size = 1000000000", &["bin_size"]),
        one(
            "spatial_bin_2d bin_size = 100 (> 64 px image)",
            "spatial_bin_2d",
            "bin_size = 100",
            &["bin_size", "64×64"],
        ),
        one("crop wider than the image", "crop", "width = 100, height = 10", &["width", "64×64"]),
        one("crop past the last plane", "crop", "width = 10, height = 10, start_z = 20", &["start_z"]),
        one("BaSiC rank = 100000", "basic_flatfield_correction", "rank = 100000", &["rank"]),
        one("BaSiC working_size = 0", "basic_flatfield_correction", "working_size = 0", &["working_size"]),
        one("ashlar overlap_ratio = 2", "ashlar_compute_tile_positions", "overlap_ratio = 2.0", &["overlap_ratio"]),
        one("ashlar overlap_ratio = -0.5", "ashlar_compute_tile_positions", "overlap_ratio = -0.5", &["overlap_ratio"]),
        one("ashlar upsample_factor = 0", "ashlar_compute_tile_positions", "upsample_factor = 0", &["upsample_factor"]),
        one("count_cells max_sigma = 1e9", "count_cells_single_channel", "max_sigma = 1e9", &["max_sigma"]),
        one("count_cells num_sigma = 100000", "count_cells_single_channel", "num_sigma = 100000", &["num_sigma"]),
        one(
            "count_cells min_sigma > max_sigma",
            "count_cells_single_channel",
            "min_sigma = 8.0, max_sigma = 2.0",
            &["min_sigma", "max_sigma"],
        ),
        one(
            "percentile normalize low = nan",
            "stack_percentile_normalize",
            "low_percentile = nan, high_percentile = 99.0",
            &["low_percentile"],
        ),
        one(
            "percentile normalize high = inf",
            "stack_percentile_normalize",
            "low_percentile = 1.0, high_percentile = inf",
            &["high_percentile"],
        ),
        one(
            "percentile normalize 150 / -3",
            "stack_percentile_normalize",
            "low_percentile = 150.0, high_percentile = -3.0",
            &["low_percentile", "150 is out of range"],
        ),
        one(
            "percentile normalize low > high",
            "stack_percentile_normalize",
            "low_percentile = 90.0, high_percentile = 10.0",
            &["low_percentile", "high_percentile"],
        ),
        Case {
            what: "count_cells num_sigma = 100 with memory_budget_mib = 1",
            toml: format!("[config]\nmemory_budget_mib = 1\n{}", step("count_cells_single_channel", "num_sigma = 100")),
            flags: &[],
            must_name: &["num_sigma = 100", "memory_budget_mib = 1"],
        },
        Case {
            what: "[config] workers = 100000000",
            toml: format!("[config]\nworkers = 100000000\n{}", step("gaussian_filter", "")),
            flags: &[],
            must_name: &["workers"],
        },
        Case {
            what: "hcs run --workers 100000",
            toml: step("gaussian_filter", ""),
            flags: &["--workers", "100000"],
            must_name: &["workers"],
        },
        Case {
            what: "[config] zarr_level = 99",
            toml: format!("[config]\nzarr_level = 99\n{}", step("gaussian_filter", "")),
            flags: &[],
            must_name: &["zarr_level"],
        },
        Case {
            what: "[config] prefer lists a type twice",
            toml: format!("[config]\nprefer = [\"torch\", \"torch\"]\n{}", step("gaussian_filter", "")),
            flags: &[],
            must_name: &["prefer"],
        },
    ]
}

#[test]
fn every_listed_value_is_refused_by_check_naming_step_and_parameter() {
    let scratch_dir = scratch("cases");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    let mut table = String::from("| case | `hcs check --plate` (or `hcs run`) says |\n| --- | --- |\n");
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let file = dir.join(format!("case{i}.toml"));
        std::fs::write(&file, &case.toml).expect("pipeline written");
        // `--workers` belongs to `hcs run`, which refuses before reading any image.
        let command = if case.flags.contains(&"--workers") { "run" } else { "check" };
        let mut args = vec![command, file.to_str().expect("utf-8"), "--plate", plate.to_str().expect("utf-8")];
        args.extend(case.flags);
        let (ok, _, stderr) = hcs(&args);
        // A message line, not a line of the source excerpt under one (`3 │ func = …`).
        let message = stderr
            .lines()
            .filter(|l| !l.contains('│'))
            .find(|l| case.must_name.iter().all(|w| l.contains(w)))
            .map(str::to_string);
        // A step's or a config layer's value names them; a command-line option names the option.
        let names_step = message
            .as_deref()
            .is_some_and(|m| m.contains("step 1 `s`") || m.contains("config") || m.contains("'--workers <WORKERS>'"));
        table.push_str(&format!(
            "| {} | {} |\n",
            case.what,
            message.as_deref().map_or("(no message)".to_string(), |m| m.replace('|', "\\|"))
        ));
        if ok || message.is_none() || !names_step {
            failures.push(format!("{}: ok = {ok}\n{stderr}", case.what));
        }
    }
    if let Ok(path) = std::env::var("HCS_CONTRACT_TABLE") {
        std::fs::write(path, &table).expect("table written");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// `hcs check --plate` on `toml` in `dir`: (accepted, stdout + stderr).
fn check_plate(dir: &Path, plate: &Path, name: &str, toml: &str) -> (bool, String) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, toml).expect("written");
    let (ok, stdout, stderr) =
        hcs(&["check", file.to_str().expect("utf-8"), "--plate", plate.to_str().expect("utf-8")]);
    (ok, format!("{stdout}{stderr}"))
}

#[test]
fn image_rules_follow_the_declared_output_size_and_are_noted_only_where_it_is_unknown() {
    let scratch_dir = scratch("valid");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    // spatial_bin_2d declares its output size: 64 px tiles binned by 2 are 32 px, and the rule
    // on the next call is decided on that.
    let binned = |sigma: f64| {
        format!(
            "[[steps]]\nname = \"bin\"\nfunc = {{ function = \"spatial_bin_2d\", params = {{ bin_size = 2 }} }}\n\
             [[steps]]\nname = \"smooth\"\nfunc = {{ function = \"gaussian_filter\", params = {{ sigma = {sigma:?} }} }}\n"
        )
    };
    let (ok, all) = check_plate(dir, &plate, "ok", &binned(2.0));
    assert!(ok && !all.contains("cannot check"), "{all}");
    let (ok, all) = check_plate(dir, &plate, "too_wide", &binned(40.0));
    assert!(!ok, "{all}");
    assert!(all.contains("step 2 `smooth`") && all.contains("sigma = 40") && all.contains("32×32"), "{all}");
    // A mosaic's size depends on the tile positions found at run time: a rule on it is noted.
    let (ok, all) = check_plate(
        dir,
        &plate,
        "mosaic",
        "[[steps]]\nname = \"stitch\"\nmerge_outputs = [\"positions\"]\nfunc = [\"ashlar_compute_tile_positions\", \"assemble_stack\"]\n\
         [[steps]]\nname = \"smooth\"\nvariable_components = [\"z_index\"]\nfunc = { function = \"gaussian_filter\", params = { sigma = 2.0 } }\n",
    );
    assert!(ok, "{all}");
    assert!(
        all.contains("step 2 `smooth`: `gaussian_filter`: cannot check `sigma <= image.height.max(image.width) as f64` before the run (step 1 `stitch`: `assemble_stack` changes the image size)"),
        "{all}"
    );
}

#[test]
fn dict_entries_that_return_different_sizes_are_refused_when_read_as_one_stack() {
    let scratch_dir = scratch("ragged");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    let dict = |two: &str| {
        format!(
            "[[steps]]\nname = \"per channel\"\ngroup_by = \"channel\"\n\
             func = {{ dict = {{ \"1\" = {{ function = \"spatial_bin_2d\", params = {{ bin_size = 2 }} }}, \"2\" = {two} }} }}\n\
             [[steps]]\nname = \"project\"\nvariable_components = [\"channel\"]\nfunc = \"max_projection\"\n"
        )
    };
    let crop =
        |edge: u32| format!("{{ function = \"crop\", params = {{ width = {edge}, height = {edge}, depth = 1 }} }}");
    let (ok, all) = check_plate(dir, &plate, "ragged", &dict(&crop(10)));
    assert!(!ok, "{all}");
    assert!(
        all.contains("step 1 `per channel`")
            && all.contains("return planes of different sizes")
            && all.contains("entry \"1\" → 32×32")
            && all.contains("entry \"2\" → 10×10"),
        "{all}"
    );
    // Different calls that give the same size are fine.
    let (ok, all) = check_plate(dir, &plate, "same_size", &dict(&crop(32)));
    assert!(ok, "{all}");
    // One entry stitched (size known only at run time) beside one binned: refused as well.
    let (ok, all) =
        check_plate(dir, &plate, "unknowable", &dict("[\"ashlar_compute_tile_positions\", \"assemble_stack\"]"));
    assert!(!ok && all.contains("the compiler cannot tell whether the sizes agree"), "{all}");
    // An entry without calls passes its planes through at their size.
    let (ok, all) = check_plate(dir, &plate, "empty_entry", &dict("[]"));
    assert!(!ok && all.contains("entry \"2\" → 64×64"), "{all}");
    // Sizes that differ between channels are fine when no later step stacks channels.
    let per_channel =
        dict(&crop(10)).replace("variable_components = [\"channel\"]", "variable_components = [\"site\"]");
    let (ok, all) = check_plate(dir, &plate, "per_channel", &per_channel);
    assert!(ok, "{all}");
}

#[test]
fn a_special_output_from_an_unknown_number_of_groups_needs_merge_outputs() {
    let scratch_dir = scratch("groups");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    // Step 1's dict projects each channel's z planes, so the z count after it is not known to
    // the compiler (a dict entry might not project); the counts of step 2 could come from 2 z
    // values and must be merged.
    let (ok, all) = check_plate(
        dir,
        &plate,
        "groups",
        "[[steps]]\nname = \"project\"\nvariable_components = [\"z_index\"]\ngroup_by = \"channel\"\n\
         func = { dict = { \"1\" = \"max_projection\", \"2\" = \"max_projection\" } }\n\
         [[steps]]\nname = \"count\"\nvariable_components = [\"site\", \"channel\"]\nfunc = \"count_cells_single_channel\"\n",
    );
    assert!(!ok, "{all}");
    assert!(
        all.contains("step 2 `count`") && all.contains("up to 2 groups per well") && all.contains("cell_counts"),
        "{all}"
    );
}

#[test]
fn functions_shows_what_each_parameter_accepts_and_the_rules() {
    let (ok, stdout, stderr) = hcs(&["functions", "stack_percentile_normalize"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("low_percentile"), "{stdout}");
    assert!(stdout.contains("number, in 0..=100; default 1.0"), "{stdout}");
    assert!(
        stdout.contains("the lower percentile must be below the upper one (`low_percentile < high_percentile`)"),
        "{stdout}"
    );
    let (ok, json, _) = hcs(&["functions", "--json", "tophat"]);
    assert!(ok);
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let radius = &value[0]["params"][0];
    assert_eq!(radius["name"], "selem_radius");
    assert_eq!(radius["rule"]["min"], 1.0);
    assert_eq!(radius["rule"]["max"], 1000.0);
}

#[test]
fn shipped_variants_agree_on_their_contracts() {
    // The registry refuses same-name variants that disagree on parameters, rules, special data,
    // planes or chain breaking; `hcs functions` fails and lists every such problem.
    let problems = hcs::Registry::global().problems();
    assert!(problems.is_empty(), "{problems:?}");
    let (ok, _, stderr) = hcs(&["functions"]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_dict_entry_fed_by_its_sibling_is_refused_by_plain_check() {
    // Issue 19's case: entries of one dict run on their own groups, so `assemble_stack` (channel
    // 2) can never see the positions `ashlar_compute_tile_positions` (channel 1) computes.
    let scratch_dir = scratch("dict");
    let dir = scratch_dir.path();
    let file = dir.join("dict.toml");
    std::fs::write(
        &file,
        "[[steps]]\nname = \"stitch\"\ngroup_by = \"channel\"\n\
         func = { dict = { \"1\" = \"ashlar_compute_tile_positions\", \"2\" = \"assemble_stack\" } }\n",
    )
    .expect("written");
    let (ok, _, stderr) = hcs(&["check", file.to_str().expect("utf-8")]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("step 1 `stitch`: dict entry \"2\" (`assemble_stack`) takes special input `positions` from dict entry \"1\" (`ashlar_compute_tile_positions`)"), "{stderr}");
    assert!(stderr.contains("error: 1 problem in"), "{stderr}");
}

#[test]
fn a_call_that_declares_its_plane_count_keeps_the_component_values_known() {
    let scratch_dir = scratch("declared-planes");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    // crop keeps one z plane of the two: z is exactly [1] after it, so step 2's counts come from
    // one group per well-channel and need no merge — and the OME-Zarr store has one z.
    let (ok, all) = check_plate(
        dir,
        &plate,
        "crop_z",
        "[config]\nbackend = \"zarr\"\n\
         [[steps]]\nname = \"one z\"\nvariable_components = [\"z_index\"]\nfunc = { function = \"crop\", params = { width = 64, height = 64, depth = 1 } }\n\
         [[steps]]\nname = \"count\"\nvariable_components = [\"site\", \"channel\"]\nfunc = \"count_cells_single_channel\"\n",
    );
    assert!(ok && !all.contains("note:"), "{all}");
}

#[test]
fn a_zero_memory_budget_is_one_problem_not_two() {
    let scratch_dir = scratch("budget0");
    let dir = scratch_dir.path();
    let plate = synth(dir);
    let file = dir.join("zero.toml");
    std::fs::write(&file, format!("[config]\nmemory_budget_mib = 0\n{}", step("gaussian_filter", "")))
        .expect("written");
    let (ok, _, stderr) = hcs(&["check", file.to_str().expect("utf-8"), "--plate", plate.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(stderr.contains("memory_budget_mib") && stderr.contains("must be ≥ 1"), "{stderr}");
    // Not also "needs ~0 MiB per call … over memory_budget_mib = 0".
    assert!(!stderr.contains("over memory_budget_mib"), "{stderr}");
    assert!(stderr.contains("error: 1 problem in"), "{stderr}");
}
