//! Helpers shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The run report's files in `results/`: they carry the run's timings, so they differ between
/// two runs that write the same images.
pub const RUN_REPORT: [&str; 5] =
    ["results/run.json", "results/trace.tsv", "results/report.html", "results/overview.png", "results/hcs.log"];

/// Every file under `root` with its bytes, except run bookkeeping (`.hcs/`: it names the output
/// folder and the submissions), a Slurm run's `summary.json` and the run report
/// ([`RUN_REPORT`]).
#[allow(dead_code)] // not every test that includes these helpers compares trees
pub fn output_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("inside").to_path_buf();
            if rel.starts_with(".hcs")
                || rel == Path::new("summary.json")
                || RUN_REPORT.iter().any(|r| rel == Path::new(r))
            {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// `1 well`, `N wells`, as the CLI counts wells.
#[allow(dead_code)]
pub fn wells(n: usize) -> String {
    if n == 1 { "1 well".to_string() } else { format!("{n} wells") }
}

/// A small synthetic plate written by `hcs synth` at `plate`: `wells` (comma-separated), a 1 × 2
/// site grid of `tile`² tiles, one z-plane, one channel.
#[allow(dead_code)]
pub fn small_plate(plate: &Path, wells: &str, tile: u32) {
    let synth = std::process::Command::new(env!("CARGO_BIN_EXE_hcs"))
        .args(["synth", "-q", "--wells", wells, "--tile", &tile.to_string()])
        .args(["--grid", "1", "2", "--z", "1", "--channels", "1"])
        .arg("--out")
        .arg(plate)
        .output()
        .expect("synth runs");
    assert!(synth.status.success(), "{}", String::from_utf8_lossy(&synth.stderr));
}

/// A pipeline file at `path` of one step calling `function` over the sites, with `params` (TOML
/// key-value pairs, may be empty).
#[allow(dead_code)]
pub fn one_step_pipeline(path: &Path, function: &str, params: &str) {
    let text = format!(
        "[[steps]]\nname = \"stretch\"\nvariable_components = [\"site\"]\nfunc = {{ function = \"{function}\", params = {{ {params} }} }}\n"
    );
    std::fs::write(path, text).expect("pipeline written");
}

/// `hcs run PIPELINE --plate PLATE --out OUT EXTRA…`, which must succeed: its stderr.
#[allow(dead_code)]
pub fn run_ok(pipeline: &Path, plate: &Path, out: &Path, extra: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hcs"))
        .arg("run")
        .arg(pipeline)
        .arg("--plate")
        .arg(plate)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("hcs run starts");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}
