//! Diagnostics on stderr, terminal or not: `-q` leaves errors only, `-v`/`-vv` add info/debug
//! lines, `HCS_LOG` (an EnvFilter directive) wins over both, and a filter that does not parse
//! is reported, not silently replaced.

use std::process::Command;

fn hcs(args: &[&str], log: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hcs"));
    command.args(args).env_remove("RUST_LOG").env_remove("HCS_LOG");
    if let Some(filter) = log {
        command.env("HCS_LOG", filter);
    }
    let out = command.output().expect("hcs runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh `dir` holding a synthetic plate of one well of one small tile, and a one-step blur
/// pipeline; their paths.
fn one_tile_plate_and_blur(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::remove_dir_all(dir).ok();
    let plate = dir.join("plate");
    let p = plate.to_str().expect("utf-8");
    let (ok, _, err) =
        hcs(&["synth", "--out", p, "--wells", "A01", "--grid", "1", "1", "--tile", "32", "--z", "1"], None);
    assert!(ok, "{err}");
    let pipeline = dir.join("blur.toml");
    std::fs::write(&pipeline, "[[steps]]\nname = \"b\"\nfunc = \"gaussian_filter\"\n").expect("pipeline");
    (plate, pipeline)
}

#[test]
fn quiet_verbose_and_hcs_log_set_what_reaches_stderr() {
    let dir = std::env::temp_dir().join(format!("hcs-logging-{}", std::process::id()));
    let (plate, pipeline) = one_tile_plate_and_blur(&dir);
    let (p, pl) = (plate.to_str().expect("utf-8"), pipeline.to_str().expect("utf-8"));
    let run = |flags: &[&str], log: Option<&str>, out: &str| {
        let o = dir.join(out);
        let mut args = vec!["run", pl, "--plate", p, "--out", o.to_str().expect("utf-8")];
        args.extend_from_slice(flags);
        hcs(&args, log)
    };

    // Not a terminal: info lines by default (they are the progress), none with -q.
    let (ok, stdout, stderr) = run(&[], None, "default");
    assert!(ok && stdout.contains("1 well done"), "{stdout}{stderr}");
    assert!(stderr.contains(" INFO "), "info lines by default when stderr is not a terminal: {stderr}");
    let (ok, stdout, stderr) = run(&["-q"], None, "quiet");
    assert!(ok && stdout.contains("1 well done"), "results still on stdout: {stdout}");
    assert!(!stderr.contains(" INFO ") && !stderr.contains(" DEBUG "), "{stderr}");
    // -vv and HCS_LOG=debug add debug lines; HCS_LOG wins over -q.
    let (_, _, stderr) = run(&["-vv"], None, "vv");
    assert!(stderr.contains(" DEBUG "), "{stderr}");
    let (_, _, stderr) = run(&["-q"], Some("debug"), "env");
    assert!(stderr.contains(" DEBUG "), "HCS_LOG takes precedence: {stderr}");
    // A filter that does not parse is reported.
    let (ok, _, stderr) = run(&[], Some("hcs=[bad"), "bad");
    assert!(ok && stderr.contains("warning: HCS_LOG=hcs=[bad is not a log filter"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_on_off_setting_holding_another_word_is_warned_about_and_the_run_goes_on() {
    let dir = std::env::temp_dir().join(format!("hcs-settings-{}", std::process::id()));
    let (plate, pipeline) = one_tile_plate_and_blur(&dir);
    let p = plate.to_str().expect("utf-8");
    let out = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_hcs"))
        .args(["run", pipeline.to_str().expect("utf-8"), "--plate", p, "--out", out.to_str().expect("utf-8")])
        .env_remove("RUST_LOG")
        .env_remove("HCS_LOG")
        .env("HCS_KEEP_BLOCKS", "perhaps")
        .env("HCS_DIRECT_WRITES", "sometimes")
        .env("HCS_PREFETCH", "ahead")
        .env("HCS_HUGE_PAGES", " Off ")
        .output()
        .expect("hcs runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success() && String::from_utf8_lossy(&run.stdout).contains("1 well done"), "{stderr}");
    for (name, value) in [("HCS_KEEP_BLOCKS", "perhaps"), ("HCS_DIRECT_WRITES", "sometimes"), ("HCS_PREFETCH", "ahead")]
    {
        let line = stderr.lines().find(|l| l.contains(&format!("{name} is not 1, 0,"))).unwrap_or_default();
        assert!(line.contains(" WARN ") && line.contains(value), "{name}: {stderr}");
    }
    assert!(!stderr.contains("HCS_HUGE_PAGES is not"), "` Off ` is a word for off: {stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_wells_raw_files_are_read_ahead_unless_hcs_prefetch_is_off_and_the_outputs_are_the_same() {
    let dir = std::env::temp_dir().join(format!("hcs-prefetch-{}", std::process::id()));
    let (plate, pipeline) = one_tile_plate_and_blur(&dir);
    let files = std::fs::read_dir(plate.join("TimePoint_1"))
        .expect("the plate's images")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "tif")))
        .count();
    assert!(files > 0, "a plate with images");
    let run = |prefetch: Option<&str>, out: &str| {
        let out = dir.join(out);
        let mut command = Command::new(env!("CARGO_BIN_EXE_hcs"));
        command
            .args(["run", pipeline.to_str().expect("utf-8"), "--plate", plate.to_str().expect("utf-8")])
            .args(["--out", out.to_str().expect("utf-8")])
            .env_remove("RUST_LOG")
            .env("HCS_LOG", "hcs_exec::prefetch=debug")
            .env_remove("HCS_PREFETCH");
        if let Some(value) = prefetch {
            command.env("HCS_PREFETCH", value);
        }
        let run = command.output().expect("hcs runs");
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{stderr}");
        (stderr, out)
    };
    let (said, on) = run(None, "on");
    let line = said.lines().find(|l| l.contains("raw files read ahead")).unwrap_or_default();
    assert!(line.contains("well=A01") && line.contains(&format!("hinted={files}")), "{files} files: {said}");
    // Run again into the same output: the well is complete there, skipped, and not read ahead.
    let (said, _) = run(None, "on");
    assert!(!said.contains("read ahead"), "a complete well is not read again: {said}");
    let (said, off) = run(Some("0"), "off");
    assert!(!said.contains("read ahead"), "HCS_PREFETCH=0: {said}");
    // The same output files, byte for byte, either way.
    let tiffs = |root: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        let mut todo = vec![root.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).expect("output dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else if p.extension().is_some_and(|x| x == "tif") {
                    let name = p.strip_prefix(root).expect("under root").display().to_string();
                    found.push((name, std::fs::read(&p).expect("read")));
                }
            }
        }
        found.sort();
        found
    };
    let (a, b) = (tiffs(&on), tiffs(&off));
    assert!(!a.is_empty(), "the run wrote planes");
    assert_eq!(a.len(), b.len());
    for ((na, ba), (nb, bb)) in a.iter().zip(&b) {
        assert!(na == nb && ba == bb, "{na} against {nb}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
