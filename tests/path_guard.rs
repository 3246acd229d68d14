//! The input plate is never written to, however the paths are spelled: an output reached through
//! a symlink into the plate, a plate given through a symlink alias with the output inside the
//! real plate, and an `output_folder` that climbs out with `..` are all refused, and the plate's
//! files are byte-identical afterwards.

mod common;

use std::path::Path;
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

fn hcs(args: &[&str]) -> (bool, String) {
    let out = Command::new(HCS).args(args).output().expect("hcs runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn outputs_that_really_land_in_the_plate_are_refused_and_the_plate_is_unchanged() {
    let dir = std::env::temp_dir().join(format!("hcs-guard-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).expect("scratch");
    let plate = dir.join("plate");
    let (ok, text) = hcs(&["synth", "--out", s(&plate), "--wells", "A01", "--tile", "64"]);
    assert!(ok, "{text}");
    let before = common::output_files(&plate);
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");

    // 1. `--out` through a symlink into the plate.
    std::os::unix::fs::symlink(plate.join("TimePoint_1"), dir.join("innocent")).expect("symlink");
    let out = dir.join("innocent").join("out");
    let (ok, text) = hcs(&["run", pipeline, "--plate", s(&plate), "--out", s(&out)]);
    assert!(!ok, "refused");
    assert!(text.contains("inside the input plate"), "{text}");
    assert!(text.contains(s(&plate.canonicalize().expect("real plate"))), "names the real path: {text}");

    // 2. The plate given through an alias, the output spelled inside the real plate.
    std::os::unix::fs::symlink(&plate, dir.join("alias")).expect("alias");
    let (ok, text) = hcs(&[
        "run",
        pipeline,
        "--plate",
        s(&dir.join("alias")),
        "--out",
        s(&plate.join("outputs")),
        "--backend",
        "zarr",
    ]);
    assert!(!ok, "refused");
    assert!(text.contains("inside the input plate"), "{text}");
    // The option is to blame, not the pipeline file.
    assert!(text.contains("--out ") && !text.contains("canonical.toml"), "{text}");
    let (ok, text) = hcs(&["run", pipeline, "--plate", s(&plate), "--out", s(&plate)]);
    assert!(!ok && text.contains("the output folder is the input plate"), "{text}");

    // 3. The plate inside the output.
    let (ok, text) = hcs(&["run", pipeline, "--plate", s(&dir.join("alias")), "--out", s(&dir)]);
    assert!(!ok, "refused");
    assert!(text.contains("around the input plate") || text.contains("in or around the input plate"), "{text}");

    // 4. An `output_folder` that climbs out of the plate's folder.
    let climbing = dir.join("climbing.toml");
    let original = std::fs::read_to_string(pipeline).expect("pipeline");
    assert!(!original.contains("[config]"), "the table is appended at the end");
    std::fs::write(&climbing, format!("{original}\n[config]\noutput_folder = \"../../../../etc/x\"\n")).expect("write");
    let (ok, text) = hcs(&["check", s(&climbing)]);
    assert!(!ok, "refused by a plain check: {text}");
    assert!(text.contains("output_folder") && text.contains("may not climb"), "{text}");

    assert_eq!(common::output_files(&plate), before, "the input plate is unchanged");
    assert!(!Path::new("/etc/x").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_output_beside_the_plate_spelled_with_dot_dot_is_not_inside_it() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    common::small_plate(&plate, "A01", 32);
    let pipeline = dir.path().join("p.toml");
    common::one_step_pipeline(&pipeline, "percentile_normalize", "");
    // From inside the plate: `--plate . --out ../results` is beside it, not in it.
    let run = Command::new(HCS)
        .current_dir(&plate)
        .args(["run", s(&pipeline), "--plate", ".", "--out", "../results", "-q"])
        .output()
        .expect("hcs runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(dir.path().join("results/images").is_dir(), "written beside the plate");
}
