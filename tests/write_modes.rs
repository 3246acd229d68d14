//! The two ways plane files reach the disk write the same bytes: past the page cache (the
//! default, `O_DIRECT` where the output's filesystem takes it) and through it
//! (`HCS_DIRECT_WRITES=0`). The plate's planes are 768² (1.1 MiB as 16-bit TIFF), above the 1 MiB from which files
//! are written directly, so both the checkpoints and the mosaics take the direct path.

mod common;

use std::path::Path;
use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

#[test]
fn direct_and_buffered_writes_give_the_same_files() {
    let dir = std::env::temp_dir().join(format!("hcs-write-modes-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let plate = dir.join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "--out", plate.to_str().expect("utf-8"), "--wells", "A01", "--grid", "2", "2"])
        .args(["--tile", "768", "--channels", "1", "--z", "2"])
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/pipelines/canonical.toml");
    let run = |out: &Path, direct: Option<&str>| {
        let mut cmd = Command::new(HCS);
        cmd.args(["run", pipeline, "--plate", plate.to_str().expect("utf-8")])
            .args(["--out", out.to_str().expect("utf-8"), "--workers", "1"])
            .env_remove("HCS_DIRECT_WRITES");
        if let Some(v) = direct {
            cmd.env("HCS_DIRECT_WRITES", v);
        }
        let o = cmd.output().expect("run starts");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (buffered, direct) = (dir.join("buffered"), dir.join("direct"));
    let said_buffered = run(&buffered, Some("0"));
    let said_direct = run(&direct, None);
    assert!(!said_buffered.contains("O_DIRECT"), "no direct write was tried: {said_buffered}");
    // A filesystem that refuses O_DIRECT (tmpfs) is named once; then both went through the cache.
    if said_direct.contains("O_DIRECT") {
        assert!(said_direct.contains("HCS_DIRECT_WRITES=0"), "{said_direct}");
        eprintln!("the output's filesystem refused direct writes: both runs went through the page cache");
    }
    // Every output file but the run report (its timings differ), byte for byte.
    let (a, b) = (common::output_files(&buffered), common::output_files(&direct));
    for sub in ["images", "checkpoints"] {
        let large = a.iter().filter(|(p, bytes)| p.starts_with(sub) && bytes.len() >= 1 << 20).count();
        assert!(large > 0, "{sub}: files of 1 MiB and more");
    }
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same files");
    for (path, bytes) in &a {
        assert!(b[path] == *bytes, "{}: bytes differ between the write modes", path.display());
    }
    std::fs::remove_dir_all(&dir).ok();
}
