//! More workers than cores is slow, not faster: idle workers spin for work before they sleep,
//! so on 2 cores `--workers 64` ran a one-well plate 7× slower than the default. A run that asks
//! for more than twice the cores says so; one at the core count does not.

mod common;

#[test]
fn workers_far_beyond_the_cores_are_warned_about_and_the_default_is_not() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    common::small_plate(&plate, "A01", 32);
    let pipeline = dir.path().join("p.toml");
    common::one_step_pipeline(&pipeline, "percentile_normalize", "");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let run = |workers: usize| {
        let out = dir.path().join(format!("out-{workers}"));
        common::run_ok(&pipeline, &plate, &out, &["--workers", &workers.to_string()])
    };
    let many = run(2 * cores + 1);
    assert!(many.contains(&format!("{} workers on {cores} cores", 2 * cores + 1)), "{many}");
    let fitting = run(cores);
    assert!(!fitting.contains("workers on"), "{fitting}");
}

#[test]
fn workers_out_of_range_are_a_bad_option_not_a_problem_of_the_pipeline_file() {
    let dir = tempfile::tempdir().expect("scratch");
    let plate = dir.path().join("plate");
    common::small_plate(&plate, "A01", 32);
    let pipeline = dir.path().join("p.toml");
    common::one_step_pipeline(&pipeline, "percentile_normalize", "");
    for (workers, why) in [("0", "0 is outside 1–1024"), ("5000", "5000 is outside 1–1024"), ("two", "whole number")]
    {
        let out = dir.path().join(format!("out-{workers}"));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_hcs"))
            .arg("run")
            .arg(&pipeline)
            .arg("--plate")
            .arg(&plate)
            .arg("--out")
            .arg(&out)
            .args(["--workers", workers])
            .output()
            .expect("hcs run starts");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("'--workers <WORKERS>'") && stderr.contains(why), "{workers}: {stderr}");
        assert!(!stderr.contains("p.toml"), "the pipeline file is not to blame: {stderr}");
        assert!(!out.exists(), "nothing written for --workers {workers}");
    }
}
