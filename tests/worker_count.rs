//! More workers than cores is slow, not faster: idle workers spin for work before they sleep,
//! so on 2 cores `--workers 64` ran a one-well plate 7× slower than the default. A run that asks
//! for more than twice the cores says so; one at the core count does not.

use std::process::Command;

const HCS: &str = env!("CARGO_BIN_EXE_hcs");

#[test]
fn workers_far_beyond_the_cores_are_warned_about_and_the_default_is_not() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    let synth = Command::new(HCS)
        .args(["synth", "-q", "--wells", "A01", "--tile", "32", "--grid", "1", "2", "--z", "1", "--channels", "1"])
        .arg("--out")
        .arg(&plate)
        .output()
        .expect("synth");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "[[steps]]\nname = \"s\"\nvariable_components = [\"site\"]\nfunc = \"percentile_normalize\"\n",
    )
    .expect("pipeline");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let run = |workers: usize| {
        let out = dir.path().join(format!("out-{workers}"));
        let o = Command::new(HCS)
            .arg("run")
            .arg(&pipeline)
            .arg("--plate")
            .arg(&plate)
            .arg("--out")
            .arg(&out)
            .args(["--workers", &workers.to_string()])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{stderr}");
        stderr
    };
    let many = run(2 * cores + 1);
    assert!(many.contains(&format!("{} workers on {cores} cores", 2 * cores + 1)), "{many}");
    let fitting = run(cores);
    assert!(!fitting.contains("workers on"), "{fitting}");
}
