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
