//! Helpers shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every file under `root` with its bytes, except run bookkeeping (`.hcs/`: it names the output
/// folder and the submissions) and a Slurm run's `summary.json`.
pub fn output_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("list").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("inside").to_path_buf();
            if rel.starts_with(".hcs") || rel == Path::new("summary.json") {
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
