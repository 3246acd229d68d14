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
