//! `hcs synth` never mixes two plates in one folder: the same options rewrite the plate, other
//! options are refused unless `--force` (which replaces the earlier synthetic plate), and a
//! folder holding anything else is never emptied.

use std::path::Path;
use std::process::Command;

fn hcs(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hcs")).args(args).output().expect("hcs runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn tif_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("TimePoint_1"))
        .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "tif")).count())
        .unwrap_or(0)
}

#[test]
fn synth_refuses_to_mix_plates_and_force_replaces_only_a_synthetic_plate() {
    let dir = std::env::temp_dir().join(format!("hcs-synth-guard-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let plate = dir.join("plate");
    let p = plate.to_str().expect("utf-8");
    let base = ["synth", "--out", p, "--grid", "1", "1", "--tile", "32", "--z", "1", "--channels", "1"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();

    let (ok, text) = hcs(&with(&["--wells", "A01"]));
    assert!(ok && text.contains("wrote 1 well,"), "{text}");
    let (ok, text) = hcs(&with(&["--wells", "A01"]));
    assert!(ok, "the same options rewrite the same plate: {text}");
    assert_eq!(tif_count(&plate), 1);

    let (ok, text) = hcs(&with(&["--wells", "A01,B02"]));
    assert!(!ok && text.contains("holds another synthetic plate") && text.contains("--force"), "{text}");
    assert_eq!(tif_count(&plate), 1, "nothing was written beside the old plate");

    let (ok, text) = hcs(&with(&["--wells", "B02", "--force"]));
    assert!(ok && text.contains("replaced another synthetic plate"), "{text}");
    let names: Vec<String> = std::fs::read_dir(plate.join("TimePoint_1"))
        .expect("images")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tif"))
        .collect();
    assert_eq!(names, ["B02_s1_w1.tif"], "the old plate's wells are gone");

    let other = dir.join("notes");
    std::fs::create_dir_all(&other).expect("folder");
    std::fs::write(other.join("keep.txt"), "mine").expect("file");
    let o = other.to_str().expect("utf-8");
    let (ok, text) = hcs(&["synth", "--out", o, "--wells", "A01", "--tile", "32", "--force"]);
    assert!(!ok && text.contains("holds files `hcs synth` did not write (keep.txt)"), "{text}");
    assert_eq!(std::fs::read_to_string(other.join("keep.txt")).expect("kept"), "mine");
    // A user's file beside a synthetic plate is never removed, even with --force.
    std::fs::write(plate.join("keep.txt"), "mine").expect("file");
    let (ok, text) = hcs(&with(&["--wells", "A01", "--force"]));
    assert!(!ok && text.contains("keep.txt"), "{text}");
    assert!(plate.join("keep.txt").is_file());
    // A half-written plate (no ground truth yet) is replaced with --force.
    std::fs::remove_file(plate.join("keep.txt")).expect("removed");
    std::fs::remove_file(plate.join("hcs_ground_truth.json")).expect("removed");
    let (ok, text) = hcs(&with(&["--wells", "B02"]));
    assert!(!ok && text.contains("half-written"), "{text}");
    let (ok, text) = hcs(&with(&["--wells", "A01", "--force"]));
    assert!(ok, "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
