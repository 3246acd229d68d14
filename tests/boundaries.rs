//! Architecture invariants that Cargo and the sources can prove (ARCHITECTURE.md lists them):
//!
//! - every workspace crate depends only on the workspace crates its row below allows (normal
//!   dependencies; tests may reach further through dev-dependencies);
//! - a plugin crate that depends on `hcs` without default features compiles no CLI, storage,
//!   format or pipeline-file crate (clap, zarrs, tiff, toml);
//! - `hcs-core`, which every kernel compiles against, pulls none of them either;
//! - inside each library crate, no two top-level modules import each other, directly or
//!   through others (`use crate::a` in `b` and `use crate::b` in `a`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace crates each crate may depend on (normal dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("hcs-macros", &[]),
    ("hcs-vfs", &[]),
    ("hcs-core", &[]),
    ("hcs-plate", &["hcs-vfs"]),
    ("hcs-plan", &["hcs-core", "hcs-plate", "hcs-vfs"]),
    ("hcs-device", &["hcs-core"]),
    ("hcs-synth", &["hcs-plate", "hcs-vfs"]),
    ("hcs-exec", &["hcs-core", "hcs-plan", "hcs-plate", "hcs-device", "hcs-vfs"]),
    ("hcs-kernels", &["hcs-core", "hcs-macros", "hcs-vfs"]),
    (
        "hcs",
        &[
            "hcs-macros",
            "hcs-core",
            "hcs-plan",
            "hcs-plate",
            "hcs-device",
            "hcs-exec",
            "hcs-synth",
            "hcs-vfs",
            "hcs-kernels",
        ],
    ),
    ("plugin-kernels", &["hcs"]),
    ("hcs-with-plugins", &["hcs", "plugin-kernels"]),
    ("ui-tests", &["hcs"]),
];

/// Crates a plugin (and `hcs-core`) must never compile.
const HEAVY: &[&str] = &["clap", "zarrs", "tiff", "toml", "indicatif", "tracing-subscriber"];

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(workspace_root());
    c
}

/// `cargo metadata --no-deps`: each workspace package with its declared dependencies.
fn metadata() -> serde_json::Value {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

#[test]
fn every_crate_depends_only_on_the_crates_its_layer_allows() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages.iter().filter_map(|p| p["name"].as_str().map(String::from)).collect();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut forbidden = Vec::new();
    for package in packages {
        let name = package["name"].as_str().expect("name");
        let Some(ok) = allowed.get(name) else {
            forbidden.push(format!("{name}: a workspace crate with no row in ALLOWED (add one)"));
            continue;
        };
        for dep in package["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().expect("dependency name");
            let normal = dep["kind"].is_null();
            if normal && members.contains(dep_name) && !ok.contains(&dep_name) {
                forbidden.push(format!("{name} → {dep_name}"));
            }
        }
    }
    assert!(forbidden.is_empty(), "forbidden dependency edges:\n  {}", forbidden.join("\n  "));
}

/// The crates `cargo tree` resolves for `package` alone (normal edges, its default features).
fn resolved_tree(package: &str) -> BTreeSet<String> {
    let out = cargo()
        .args(["tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}", "--offline"])
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().next().map(String::from)).collect()
}

#[test]
fn a_plugin_and_the_contracts_compile_no_cli_storage_or_pipeline_file_crates() {
    for package in ["plugin-kernels", "hcs-core", "hcs-device"] {
        let tree = resolved_tree(package);
        assert!(tree.contains("linkme"), "{package}: the tree was read ({} crates)", tree.len());
        let heavy: Vec<&&str> = HEAVY.iter().filter(|h| tree.contains(**h)).collect();
        assert!(heavy.is_empty(), "{package} pulls {heavy:?}");
    }
    // The check can fail: the full facade does pull them.
    let full = resolved_tree("hcs");
    assert!(full.contains("clap") && full.contains("zarrs"), "the facade's default features bring the CLI and storage");
}

/// The top-level module a source file belongs to (`src/a.rs` and `src/a/…` are `a`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list sources").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::NAME` references in code (comments skipped), as module names.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            let ident: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // `$crate::` (macros) and `hcs_crate::`-like names are not module references.
            if !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == '$') && !ident.is_empty() {
                refs.insert(ident);
            }
            rest = after;
        }
    }
    refs
}

/// Module edges of one crate's `src/`: module → modules it names through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top_module(src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = top_module(src, file) else { continue };
        let text = std::fs::read_to_string(file).expect("read source");
        // Unit tests may reach anywhere in their crate.
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(&text);
        for to in crate_references(text) {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

/// One cycle of `graph`, if it has any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_of_a_library_crate_import_each_other() {
    let root = workspace_root();
    let crates = [
        "hcs-core",
        "hcs-core/plan",
        "hcs-core/plate",
        "hcs-core/device",
        "hcs-core/exec",
        "hcs-core/synth",
        "hcs-vfs",
        "hcs-kernels",
        "hcs-macros",
        ".",
    ];
    let mut cycles = Vec::new();
    let mut edges = 0;
    for krate in crates {
        let graph = module_graph(&root.join(krate).join("src"));
        edges += graph.values().map(BTreeSet::len).sum::<usize>();
        if let Some(cycle) = find_cycle(&graph) {
            cycles.push(format!("{krate}: {}", cycle.join(" → ")));
        }
    }
    assert!(edges > 20, "the module graphs were read ({edges} edges)");
    assert!(cycles.is_empty(), "module import cycles:\n  {}", cycles.join("\n  "));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(
        crate_references("use crate::stack::Stack; // crate::error\n$crate::x; hcs_crate::y"),
        BTreeSet::from(["stack".to_string()])
    );
}
