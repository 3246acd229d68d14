//! `hcs check`: a valid pipeline passes; a broken one prints every problem with file and line and
//! fails; a well filter naming a well the plate lacks is caught against the plate.

use std::process::Command;

fn hcs(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcs")).args(args).output().expect("hcs runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_every_problem_with_its_line() {
    let dir = std::env::temp_dir().join(format!("hcs-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let canonical = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, stdout, _) = hcs(&["check", canonical]);
    let shipped_broken = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/broken.toml");
    let (broken_ok, _, broken_err) = hcs(&["check", shipped_broken]);
    assert!(!broken_ok && broken_err.contains("error: 5 problems in"), "{broken_err}");
    assert!(ok && stdout.contains("`canonical` is valid: 7 steps, 8 function calls"), "{stdout}");

    let broken = dir.join("broken.toml");
    let text = "[[steps]]\nname = \"a\"\nmaterialize = { wells = [\"H12\"] }\nfunc = [\"max_projectoin\", { function = \"tophat\", params = { radius = 3 } }]\n";
    std::fs::write(&broken, text).expect("written");
    let (ok, _, stderr) = hcs(&["check", broken.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "broken.toml: line 4: step 1 `a`: unknown function `max_projectoin` (did you mean `max_projection`?)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("broken.toml: line 4: step 1 `a`: `tophat` has no parameter `radius`"), "{stderr}");
    assert!(stderr.contains("error: 2 problems in"), "{stderr}");

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
        "1",
        "--channels",
        "1",
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = hcs(&["check", broken.to_str().expect("utf-8"), "--plate", plate.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(
        stderr.contains("line 1: step 1 `a`: materialize names well H12, which the plate does not have"),
        "{stderr}"
    );
    assert!(stderr.contains("error: 3 problems in"), "{stderr}");
    let (ok, _, stderr) = hcs(&["check", dir.join("missing.toml").to_str().expect("utf-8")]);
    assert!(!ok && stderr.contains("missing.toml: No such file"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_with_a_plate_compiles_and_plan_prints_the_frozen_plans() {
    let dir = std::env::temp_dir().join(format!("hcs-plan-{}", std::process::id()));
    let plate = dir.join("plate");
    let plate_s = plate.to_str().expect("utf-8");
    let (ok, _, stderr) = hcs(&["synth", "--out", plate_s, "--wells", "A01,B02", "--tile", "64"]);
    assert!(ok, "{stderr}");
    let root = env!("CARGO_MANIFEST_DIR");
    let canonical = format!("{root}/examples/pipelines/canonical.toml");

    let (ok, stdout, stderr) = hcs(&["check", &canonical, "--plate", plate_s]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("`canonical` compiles for 2 wells of"), "{stdout}");

    // Errors only the plate reveals, each with its line.
    let broken = format!("{root}/examples/pipelines/broken_for_plate.toml");
    let (ok, _, stderr) = hcs(&["check", &broken, "--plate", plate_s]);
    assert!(!ok);
    assert!(stderr.contains("line 13: step 2 `per z`: dict key \"2\" is not a z_index value at this step (present: 1); step 1 `z max` collapsed z_index (the plate has 1, 2, 3)"), "{stderr}");
    assert!(stderr.contains("line 18: step 3 `count`: the results folder"), "{stderr}");
    assert!(stderr.contains("collides with the final output; choose another `results_folder`"), "{stderr}");
    assert!(stderr.contains("line 20: step 3 `count`: `count_cells_single_channel` produces special output `cell_counts` once per group, and this step runs 2 groups per well (2 channel values)"), "{stderr}");
    assert!(stderr.contains("error: 4 problems in"), "{stderr}");

    // The plan as JSON: one well, stable, with every phase's decisions.
    let (ok, json, stderr) = hcs(&["plan", &canonical, "--plate", plate_s, "--well", "B02", "--json"]);
    assert!(ok, "{stderr}");
    let (_, again, _) = hcs(&["plan", &canonical, "--plate", plate_s, "--well", "B02", "--json"]);
    assert_eq!(json, again, "plans are stable");
    let plan: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    // The shape of the whole plate's plan, with `wells` holding the one asked for.
    for key in ["pipeline", "plate", "output_root", "viewers", "notes"] {
        assert!(plan.get(key).is_some(), "{key} missing: {json}");
    }
    assert_eq!(plan["wells"].as_array().map(Vec::len), Some(1));
    let well = &plan["wells"][0];
    assert_eq!(well["well"], "B02");
    let steps = well["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 7);
    assert_eq!(steps[0]["reads"]["backend"], "plate");
    assert_eq!(steps[0]["writes"], serde_json::json!({"backend": "memory", "namespace": "step1"}));
    assert_eq!(steps[3]["special_inputs"]["grid_dimensions"], serde_json::json!({"from": "plate", "value": [3, 3]}));
    assert_eq!(steps[3]["special_outputs"]["positions"]["stem"], "B02_positions");
    assert_eq!(steps[5]["special_inputs"]["positions"]["step"], 4);
    assert_eq!(steps[6]["writes"]["backend"], "disk");
    assert_eq!(steps[4]["input_source"], "pipeline_start");
    // The kernels' `planes = one` contracts: projection, composite and mosaic collapse their axis.
    assert_eq!(steps[1]["components_out"]["z_index"], serde_json::json!([1]));
    assert_eq!(steps[2]["components_out"]["channel"], serde_json::json!([1]));
    assert_eq!(steps[5]["components_out"]["site"], serde_json::json!([1]));
    assert_eq!(steps[4]["components_in"]["z_index"], serde_json::json!([1, 2, 3]));
    assert_eq!(steps[0]["func"]["members"][1]["params"]["selem_radius"], 50);
    // The readable form names the same decisions.
    let (ok, text, _) = hcs(&["plan", &canonical, "--plate", plate_s]);
    assert!(ok && text.contains("<positions from step 4 `ashlar_compute_tile_positions`"), "{text}");
    // …and how many wells a run takes at once: the steps run 3 groups per part (median of 3,
    // 9, 9, 1, 3, 3, 1), whatever the cores.
    assert!(text.contains("at a time (the steps run 3 groups at once, median)"), "{text}");
    // With the options a run is given, the plan is that run's: its folder, its OME-Zarr store.
    let elsewhere = dir.join("elsewhere");
    let elsewhere_s = elsewhere.to_str().expect("utf-8");
    let (ok, json, stderr) =
        hcs(&["plan", &canonical, "--plate", plate_s, "--json", "--out", elsewhere_s, "--backend", "zarr"]);
    assert!(ok, "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(plan["output_root"], elsewhere_s);
    let last = &plan["wells"][0]["steps"][6]["writes"];
    assert_eq!(last["backend"], "zarr", "{last}");
    assert!(last.to_string().contains("images.ome.zarr"), "{last}");
    assert!(!elsewhere.exists(), "planning writes nothing");
    let (ok, _, stderr) = hcs(&["plan", &canonical, "--plate", plate_s, "--well", "H12"]);
    // About the option, not the pipeline file: the plate's wells are listed.
    assert!(!ok && stderr.contains(": the plate has no well H12 (its wells: A01, B02)"), "{stderr}");
    assert!(!stderr.contains("canonical.toml"), "the pipeline file is not to blame: {stderr}");
    // Zero wells at once is refused before anything runs, naming the option.
    let never = dir.join("never");
    let (ok, _, stderr) =
        hcs(&["run", &canonical, "--plate", plate_s, "--out", &never.to_string_lossy(), "--wells-at-once", "0"]);
    assert!(
        !ok && stderr.contains("invalid value '0' for '--wells-at-once <WELLS_AT_ONCE>': must be 1 or more"),
        "{stderr}"
    );
    assert!(!never.exists(), "nothing was written");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn counts_of_one_well_are_singular() {
    let dir = std::env::temp_dir().join(format!("hcs-one-well-{}", std::process::id()));
    let plate = dir.join("plate");
    let plate_s = plate.to_str().expect("utf-8");
    let (ok, _, stderr) = hcs(&["synth", "--out", plate_s, "--wells", "A01", "--grid", "1", "1", "--tile", "64"]);
    assert!(ok, "{stderr}");
    let canonical = format!("{}/examples/pipelines/canonical.toml", env!("CARGO_MANIFEST_DIR"));
    let (ok, stdout, stderr) = hcs(&["check", &canonical, "--plate", plate_s]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("`canonical` compiles for 1 well of") && !stdout.contains("1 wells"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A file among the images that is not an image of the plate is named by `check --plate` (and
/// by `run`); `--strict` refuses the plate.
#[test]
fn files_that_are_not_images_of_the_plate_are_listed_and_strict_refuses_them() {
    let dir = std::env::temp_dir().join(format!("hcs-check-strict-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plate = dir.join("plate");
    let p = plate.to_str().expect("utf-8");
    assert!(hcs(&["synth", "--out", p, "--wells", "A01", "--tile", "64"]).0);
    std::fs::write(plate.join("TimePoint_1/A01_notes.docx"), b"x").expect("stray file");
    let canonical = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, _, err) = hcs(&["check", canonical, "--plate", p]);
    assert!(ok, "listed, not refused: {err}");
    assert!(err.contains("1 file among the images matches") && err.contains("A01_notes.docx"), "{err}");
    // The warning's hint, followed as written, refuses the plate.
    assert!(err.contains("(`hcs check PIPELINE --plate DIR --strict` refuses such a plate)"), "{err}");
    let (ok, _, err) = hcs(&["check", canonical, "--plate", p, "--strict"]);
    assert!(
        !ok && err.contains("--strict: ")
            && err.contains("holds 1 entry among its images that the plate does not read"),
        "{err}"
    );
    // A folder named like an image is said to be a folder, not a file of an unknown name.
    let folder = plate.join("TimePoint_1/A01_s99_w1.tif");
    std::fs::create_dir(&folder).expect("folder");
    let (ok, _, err) = hcs(&["check", canonical, "--plate", p]);
    assert!(
        ok && err.contains("2 entries among the images are files named like no image")
            && err.contains("A01_s99_w1.tif (a folder)"),
        "{err}"
    );
    std::fs::remove_dir(&folder).expect("removed");
    // The image check alone lists the stray file too, and refuses it with --strict.
    let (ok, _, err) = hcs(&["check", "--plate", p, "--deep"]);
    assert!(ok && err.contains("A01_notes.docx"), "listed by --deep: {err}");
    let (ok, _, err) = hcs(&["check", "--plate", p, "--deep", "--strict"]);
    assert!(!ok && err.contains("--strict") && err.contains("A01_notes.docx"), "{err}");
    // -q: errors only on stderr; the warning and the compiler's note are left out.
    let (ok, _, err) = hcs(&["check", canonical, "--plate", p, "-q"]);
    assert!(ok && !err.contains("warning:") && !err.contains("note:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--config` is read, and refused when wrong, with or without a plate.
#[test]
fn a_wrong_global_configuration_is_refused_without_a_plate_too() {
    let dir = std::env::temp_dir().join(format!("hcs-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.toml");
    std::fs::write(&config, "bakend = \"disk\"\n").expect("config");
    let canonical = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, _, err) = hcs(&["check", canonical, "--config", config.to_str().expect("utf-8")]);
    assert!(!ok && err.contains("bakend"), "{err}");
    std::fs::write(&config, "backend = \"disk\"\n").expect("config");
    let (ok, out, err) = hcs(&["check", canonical, "--config", config.to_str().expect("utf-8")]);
    assert!(ok && out.contains("is valid"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn devices_says_which_version_of_the_hot_loops_this_cpu_runs() {
    let (ok, stdout, stderr) = hcs(&["devices"]);
    assert!(ok, "{stderr}");
    let (json_ok, json, _) = hcs(&["devices", "--json"]);
    assert!(json_ok);
    let inventory: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    // The test process sees the same CPU as the binary it starts.
    #[cfg(target_arch = "x86_64")]
    let (avx512, avx2) = {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx") && has!("avx2") && has!("fma");
        // Ice Lake's AVX-512 set, the one `multiversion` asks of an AVX-512 version.
        let avx512 = avx2
            && has!("avx512f")
            && has!("avx512bw")
            && has!("avx512cd")
            && has!("avx512dq")
            && has!("avx512vl")
            && has!("avx512bitalg")
            && has!("avx512ifma")
            && has!("avx512vbmi")
            && has!("avx512vbmi2")
            && has!("avx512vnni")
            && has!("avx512vpopcntdq")
            && has!("gfni")
            && has!("vaes")
            && has!("vpclmulqdq");
        (avx512, avx2)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (avx512, avx2) = (false, false);
    let (name, line) = if avx512 {
        ("avx512", "CPU: hot loops run their AVX-512 versions")
    } else if avx2 {
        ("avx2", "CPU: hot loops run their AVX2 + FMA versions")
    } else {
        ("portable", "CPU: no AVX2 + FMA on this CPU: hot loops run their portable versions")
    };
    assert_eq!(inventory["cpu_hot_loops"], name, "{json}");
    assert!(stdout.contains(line), "{stdout}");
}

/// `hcs devices` lists exactly the memory types the binary was built with (CI runs this test in
/// a plain build and in one with the `torch` and `cuda` features), and says why no GPU is listed:
/// the build has no GPU type, or none was found (no libcuda on a machine without a GPU must not
/// panic the probe).
#[test]
fn devices_lists_the_memory_types_of_this_build_and_why_no_gpu_is_listed() {
    let (ok, stdout, stderr) = hcs(&["devices"]);
    assert!(ok, "{stderr}");
    let (json_ok, json, json_err) = hcs(&["devices", "--json"]);
    assert!(json_ok, "{json_err}");
    let inventory: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let mut built = vec!["ndarray"];
    if cfg!(feature = "torch") {
        built.push("torch");
    }
    if cfg!(feature = "cuda") {
        built.push("cuda");
    }
    assert_eq!(inventory["memory_types"], serde_json::json!(built), "{json}");
    assert!(stdout.contains(&format!("memory types in this build: {}", built.join(", "))), "{stdout}");
    let gpus = inventory["gpus"].as_array().expect("a list of GPUs");
    if built.len() == 1 {
        assert!(gpus.is_empty(), "{json}");
        assert!(stdout.contains("GPUs: this build has no GPU memory type"), "{stdout}");
    } else if gpus.is_empty() {
        assert!(stdout.contains("GPUs: none found"), "{stdout}");
    } else {
        for gpu in gpus {
            assert!(stdout.contains(&format!("cuda:{}  ", gpu["ordinal"])), "{stdout}");
        }
    }
}

/// The note on a shared result names the setting that turns it off; followed to the letter in the
/// pipeline file, it does (the hint once named a key a step does not take).
#[test]
fn the_shared_result_notes_hint_turns_the_sharing_off_when_followed() {
    let dir = std::env::temp_dir().join(format!("hcs-reuse-hint-{}", std::process::id()));
    let plate = dir.join("plate");
    let plate_s = plate.to_str().expect("utf-8");
    let (ok, _, stderr) = hcs(&["synth", "--out", plate_s, "--wells", "A01", "--tile", "64"]);
    assert!(ok, "{stderr}");
    let canonical = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, _, stderr) = hcs(&["check", canonical, "--plate", plate_s]);
    assert!(ok, "{stderr}");
    let hint = stderr
        .split_once("instead of reading and computing it again (`")
        .and_then(|(_, rest)| rest.split_once("` on step 5 turns this off)"))
        .map(|(setting, _)| setting.to_string())
        .unwrap_or_else(|| panic!("the note names a setting for step 5: {stderr}"));
    let text = std::fs::read_to_string(canonical).expect("canonical pipeline");
    let step5 = "input_source = \"pipeline_start\"\n";
    assert!(text.contains(step5), "step 5 reads the plate again");
    let followed = dir.join("followed.toml");
    std::fs::write(&followed, text.replacen(step5, &format!("{step5}{hint}\n"), 1)).expect("pipeline file");
    let (ok, _, stderr) = hcs(&["check", followed.to_str().expect("utf-8"), "--plate", plate_s]);
    assert!(ok, "the hint `{hint}` is a valid step setting: {stderr}");
    assert!(!stderr.contains("repeats the first call"), "no result is shared any more: {stderr}");
    let (ok, json, stderr) = hcs(&["plan", followed.to_str().expect("utf-8"), "--plate", plate_s, "--json"]);
    assert!(ok, "{stderr}");
    let plans: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let step5 = &plans["wells"][0]["steps"][4];
    assert!(step5["reuses"].is_null(), "step 5 takes no shared result: {step5}");
    assert_eq!(step5["reads"]["backend"], "plate", "step 5 reads the plate: {step5}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_missing_plate_or_config_is_named_once_with_where_it_came_from() {
    let dir = tempfile::tempdir().expect("scratch");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let missing = dir.path().join("no-plate-here");
    let missing_s = missing.to_str().expect("utf-8");
    let (ok, _, stderr) = hcs(&["check", pipeline, "--plate", missing_s]);
    assert!(!ok);
    assert_eq!(stderr.trim_end(), format!("error: {missing_s}: no such folder"), "the path once, and what is wrong");
    let (ok, _, stderr) = hcs(&["check", "--plate", missing_s, "--deep"]);
    assert!(!ok);
    assert_eq!(stderr.trim_end(), format!("error: {missing_s}: no such folder"), "--deep too");
    let only_htd = dir.path().join("only-htd");
    std::fs::create_dir_all(&only_htd).expect("dir");
    std::fs::write(only_htd.join("plate.HTD"), "\"HTSInfoFile\", Version 1.0\r\n").expect("htd");
    let (ok, _, stderr) = hcs(&["check", pipeline, "--plate", only_htd.to_str().expect("utf-8")]);
    assert!(!ok);
    assert_eq!(stderr.matches(only_htd.to_str().expect("utf-8")).count(), 1, "{stderr}");
    assert!(stderr.contains("no images found"), "{stderr}");

    // `HCS_CONFIG=` (empty) is unset; a missing file it names is said to come from it.
    let env = |value: &str| {
        Command::new(env!("CARGO_BIN_EXE_hcs"))
            .args(["check", pipeline])
            .env("HCS_CONFIG", value)
            .output()
            .expect("hcs runs")
    };
    let empty = env("");
    assert!(empty.status.success(), "{}", String::from_utf8_lossy(&empty.stderr));
    let named = env("nope.toml");
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert!(!named.status.success());
    assert!(stderr.contains("nope.toml (the global config file HCS_CONFIG names)"), "{stderr}");
}

#[test]
fn check_without_a_plate_checks_the_global_configurations_values() {
    let dir = tempfile::tempdir().expect("scratch");
    let global = dir.path().join("g.toml");
    std::fs::write(&global, "zarr_level = 99\nmemory_budget_mib = 0\n").expect("config");
    let global = global.to_str().expect("utf-8");
    let canonical = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let (ok, stdout, stderr) = hcs(&["check", canonical, "--config", global]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("global config: `zarr_level`: 99 is outside 1–22"), "{stderr}");
    assert!(stderr.contains("global config: `memory_budget_mib`"), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");

    // A key the file cannot hold, or a value of the wrong type, is named with its line.
    let shaped = dir.path().join("shaped.toml");
    std::fs::write(&shaped, "workers = 2\n\nzarr_level = \"x\"\nnum_workers = 3\n").expect("config");
    let (ok, _, stderr) = hcs(&["check", canonical, "--config", shaped.to_str().expect("utf-8")]);
    assert!(!ok);
    assert!(stderr.contains("shaped.toml: line 3: `zarr_level`: invalid type"), "{stderr}");
    assert!(stderr.contains("shaped.toml: line 4: unknown field `num_workers`"), "{stderr}");
    std::fs::write(&shaped, "workers = 2\nzarr_level = \n").expect("config");
    let (ok, _, stderr) = hcs(&["check", canonical, "--config", shaped.to_str().expect("utf-8")]);
    assert!(!ok && stderr.contains("shaped.toml: line 2: "), "{stderr}");
}

/// Problems are printed in file order, whichever check found them first (a step's `config`
/// value was printed before an unknown function two steps above it).
#[test]
fn problems_are_printed_in_file_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("order.toml");
    let text = "[[steps]]\nname = \"a\"\nfunc = \"nope_function\"\n\n[[steps]]\nname = \"b\"\nfunc = \"tophat\"\nconfig = { zarr_level = 99 }\n";
    std::fs::write(&file, text).expect("written");
    let (ok, _, stderr) = hcs(&["check", file.to_str().expect("utf-8")]);
    assert!(!ok, "{stderr}");
    let unknown = stderr.find("line 3: step 1 `a`: unknown function `nope_function`").expect(&stderr);
    let config = stderr.find("line 8: step 2 `b`: config: `zarr_level`: 99 is outside 1–22").expect(&stderr);
    assert!(unknown < config, "{stderr}");
}
