//! The output folder belongs to one pipeline on one plate. `hcs run` records who owns it
//! (`.hcs/identity.json`: the pipeline's fingerprint, the plate, the folders it writes) and
//! refuses to write into a folder holding another pipeline's or plate's outputs, or files hcs did
//! not write, unless `--force`: then the previous run's outputs are removed first (only the
//! folders and files that run recorded; nothing else in the folder is touched), so old and new
//! wells never mix. Re-running the same command finds its own identity and resumes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::compiler::CompiledPlate;

/// Who owns an output folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The pipeline's name.
    pub pipeline: String,
    /// CRC-32 (hex) of the pipeline and the configuration that decides what is written.
    pub fingerprint: String,
    /// The input plate (absolute).
    pub plate: PathBuf,
    /// The folders and files the run writes, relative to the output folder.
    pub outputs: Vec<PathBuf>,
    /// What the fingerprint covers, one line per step and one for the configuration, so a
    /// refusal can say what differs (empty in identities written before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub described: Vec<String>,
}

/// The identity file.
pub fn identity_path(output_root: &Path) -> PathBuf {
    output_root.join(".hcs").join("identity.json")
}

/// The identity of the pipeline compiled into `compiled`: its steps as compiled (functions with
/// every parameter, grouping) and the configuration that decides what is written.
pub fn identity(compiled: &CompiledPlate) -> Identity {
    let root = &compiled.output_root;
    let first = compiled.wells.first();
    let mut config =
        first.and_then(|w| w.steps.first()).and_then(|s| serde_json::to_value(&s.config).ok()).unwrap_or_default();
    if let Some(map) = config.as_object_mut() {
        // What does not change the bytes written, or names this very folder.
        for key in ["workers", "output_root", "gpu_slots", "visualize", "memory_budget_mib"] {
            map.remove(key);
        }
    }
    // The functions and their parameters, not the variants the machine's devices chose: a run
    // resumed on a node without a GPU is the same run.
    let steps: Vec<_> = first
        .map(|w| {
            w.steps
                .iter()
                .map(|s| {
                    let calls: Vec<_> = s.func.calls().into_iter().map(|c| (&c.function, &c.params)).collect();
                    (&s.name, calls, &s.variable_components, &s.group_by)
                })
                .collect()
        })
        .unwrap_or_default();
    let text = format!("{}\n{config}", serde_json::to_string(&steps).unwrap_or_default());
    let mut described: Vec<String> = steps
        .iter()
        .enumerate()
        .map(|(i, (name, calls, variable, group_by))| {
            let calls: Vec<String> = calls
                .iter()
                .map(|(function, params)| {
                    let params: Vec<String> = params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{function}({})", params.join(", "))
                })
                .collect();
            let names: Vec<&str> = variable.iter().map(|c| c.name()).collect();
            let by = group_by.map(|c| format!(", group_by {}", c.name())).unwrap_or_default();
            format!("step {} `{name}`: {}; variable_components [{}]{by}", i + 1, calls.join(" → "), names.join(", "))
        })
        .collect();
    described.push(format!("config {config}"));
    let mut outputs: Vec<PathBuf> = Vec::new();
    let mut add = |path: &Path| {
        if let Ok(rel) = path.strip_prefix(root)
            && rel.components().next().is_some()
            && !rel.starts_with(".hcs")
            && !outputs.iter().any(|o| o == rel)
        {
            outputs.push(rel.to_path_buf());
        }
    };
    if let Some(first) = first {
        let last = first.steps.len().saturating_sub(1);
        for (i, step) in first.steps.iter().enumerate() {
            if i == last
                && let Some(p) = step.writes.persistent_path()
            {
                add(p);
            }
            for store in [step.zarr_store.as_ref(), step.checkpoint_zarr_store.as_ref()].into_iter().flatten() {
                add(&store.store);
            }
            if let Some(p) = step.checkpoint.as_ref().and_then(|c| c.persistent_path()) {
                add(p);
            }
            if let Some(preview) = &step.preview {
                add(&preview.store.store);
                add(&preview.thumbnails);
            }
            for out in step.special_outputs.values() {
                add(&out.results_dir);
            }
        }
    }
    add(&crate::report::results_dir(compiled));
    add(&root.join(crate::plate::formats::native::METADATA_FILE));
    add(&root.join(crate::plate::formats::openhcs::METADATA_FILE));
    Identity {
        pipeline: compiled.pipeline.clone(),
        fingerprint: format!("{:08x}", crc32fast::hash(text.as_bytes())),
        plate: std::path::absolute(&compiled.plate).unwrap_or_else(|_| compiled.plate.clone()),
        outputs,
        described,
    }
}

/// What differs between two pipelines' descriptions, at most three lines of it (`None` when an
/// older identity recorded none): the step count where it differs, then the steps that differ
/// at the same place, then the configuration (its line is compared on its own, so an added
/// step does not read as a changed configuration).
fn differences(theirs: &Identity, mine: &Identity) -> Option<String> {
    let split = |d: &[String]| -> (Vec<String>, Option<String>) {
        let mut steps = d.to_vec();
        let config = steps.pop_if(|l| l.starts_with("config "));
        (steps, config)
    };
    if theirs.described.is_empty() {
        return None;
    }
    let ((their_steps, their_config), (my_steps, my_config)) = (split(&theirs.described), split(&mine.described));
    let mut lines: Vec<String> = Vec::new();
    if their_steps.len() != my_steps.len() {
        lines.push(format!(
            "{} there, {} now",
            super::counted(their_steps.len(), "step"),
            super::counted(my_steps.len(), "step")
        ));
    }
    for (a, b) in their_steps.iter().zip(&my_steps) {
        if a != b {
            lines.push(format!("there: {a}; now: {b}"));
        }
    }
    if their_config != my_config {
        lines.push(format!(
            "there: {}; now: {}",
            their_config.as_deref().unwrap_or("config {}"),
            my_config.as_deref().unwrap_or("config {}")
        ));
    }
    let more = lines.len().saturating_sub(3);
    lines.truncate(3);
    if more > 0 {
        lines.push(format!("and {more} more"));
    }
    (!lines.is_empty()).then(|| lines.join("\n  "))
}

/// What an output folder holds.
#[derive(Debug, PartialEq)]
pub enum Occupant {
    /// Nothing (or only hcs's lock).
    Empty,
    /// This pipeline's outputs on this plate: the run resumes.
    Same,
    /// Another pipeline's or plate's outputs.
    Other(Identity),
    /// Files hcs did not record writing (the first few).
    Foreign(Vec<PathBuf>),
}

/// Who holds `output_root`.
pub fn occupant(output_root: &Path, mine: &Identity) -> Occupant {
    if let Ok(bytes) = std::fs::read(identity_path(output_root))
        && let Ok(theirs) = serde_json::from_slice::<Identity>(&bytes)
    {
        let same = theirs.fingerprint == mine.fingerprint && same_path(&theirs.plate, &mine.plate);
        return if same { Occupant::Same } else { Occupant::Other(theirs) };
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(output_root)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| !p.ends_with(".hcs")).collect())
        .unwrap_or_default();
    // An earlier hcs wrote records but no identity: whose outputs they are is unknown.
    if output_root.join(".hcs").join("wells").is_dir() {
        entries.push(output_root.join(".hcs").join("wells"));
    }
    entries.sort();
    entries.truncate(5);
    if entries.is_empty() { Occupant::Empty } else { Occupant::Foreign(entries) }
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Refuse (naming the occupant and the way out) unless `force`; with `force`, remove what the
/// previous owner recorded. Then record `mine` as the owner.
pub fn claim(output_root: &Path, mine: &Identity, force: bool) -> Result<(), String> {
    match occupant(output_root, mine) {
        // Its own identity stays as first written (it may leave out folders that were there).
        Occupant::Same => return Ok(()),
        Occupant::Empty => {}
        Occupant::Other(theirs) if force => {
            eprintln!(
                "--force: removing the outputs of pipeline `{}` on {} from {}",
                theirs.pipeline,
                theirs.plate.display(),
                output_root.display()
            );
            remove_outputs(output_root, &theirs)?;
        }
        Occupant::Other(theirs) => {
            let (what, detail) = if theirs.fingerprint == mine.fingerprint {
                (format!("the same pipeline on another plate ({})", theirs.plate.display()), String::new())
            } else {
                let what = format!(
                    "the outputs of pipeline `{}` (another pipeline or configuration) on {}",
                    theirs.pipeline,
                    theirs.plate.display()
                );
                (what, differences(&theirs, mine).map(|d| format!("\nwhat differs:\n  {d}")).unwrap_or_default())
            };
            return Err(format!(
                "{} holds {what}; writing `{}` there would mix the two. Choose another --out, or pass --force to remove those outputs first{detail}",
                output_root.display(),
                mine.pipeline
            ));
        }
        Occupant::Foreign(_) if force => {
            eprintln!("--force: writing into {}, which holds files hcs did not write", output_root.display());
            // What was there is not this run's to remove later: record only what it creates.
            let mut mine = mine.clone();
            mine.outputs.retain(|o| !output_root.join(o).exists());
            return write_identity(output_root, &mine);
        }
        Occupant::Foreign(files) => {
            return Err(format!(
                "{} is not empty and holds no hcs run ({}); choose an empty folder, or pass --force to write into it anyway",
                output_root.display(),
                files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    write_identity(output_root, mine)
}

fn write_identity(output_root: &Path, identity: &Identity) -> Result<(), String> {
    let path = identity_path(output_root);
    let bytes = serde_json::to_vec_pretty(identity).map_err(|e| e.to_string())?;
    crate::vfs::atomic::write_atomic(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Remove the outputs `theirs` recorded and every well's completion record.
fn remove_outputs(output_root: &Path, theirs: &Identity) -> Result<(), String> {
    let mut paths: Vec<PathBuf> = theirs
        .outputs
        .iter()
        // Only inside the folder: a tampered identity cannot point elsewhere.
        .filter(|rel| rel.is_relative() && rel.components().all(|c| matches!(c, std::path::Component::Normal(_))))
        .map(|rel| output_root.join(rel))
        .collect();
    paths.push(output_root.join(".hcs").join("wells"));
    for path in paths {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else if path.exists() {
            std::fs::remove_file(&path)
        } else {
            Ok(())
        };
        removed.map_err(|e| format!("{}: {e}", path.display()))?;
        // Folders left empty (`checkpoints/` once its steps' folders are gone) go too.
        let mut parent = path.parent();
        while let Some(dir) = parent.filter(|d| *d != output_root && d.starts_with(output_root)) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(fingerprint: &str, plate: &str) -> Identity {
        Identity {
            pipeline: "p".into(),
            fingerprint: fingerprint.into(),
            plate: PathBuf::from(plate),
            outputs: vec![PathBuf::from("images"), PathBuf::from("../outside")],
            described: vec![format!("step 1 `s`: f(x = {fingerprint})"), "config {}".into()],
        }
    }

    #[test]
    fn an_empty_folder_is_claimed_and_the_same_run_resumes() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        claim(&out, &id("1", "/p"), false).expect("empty");
        assert_eq!(occupant(&out, &id("1", "/p")), Occupant::Same);
        claim(&out, &id("1", "/p"), false).expect("same");
    }

    #[test]
    fn another_pipeline_is_refused_and_force_removes_only_what_it_recorded() {
        let dir = tempfile::tempdir().expect("tmp");
        let out = dir.path().join("out");
        claim(&out, &id("1", "/p"), false).expect("claim");
        std::fs::create_dir_all(out.join("images")).expect("dir");
        std::fs::write(out.join("images/a.tif"), b"x").expect("write");
        std::fs::write(out.join("notes.txt"), b"mine").expect("write");
        std::fs::write(dir.path().join("outside"), b"keep").expect("write");
        let err = claim(&out, &id("2", "/p"), false).expect_err("refused");
        assert!(err.contains("--force") && err.contains("pipeline `p`"), "{err}");
        // What differs is said: the step whose parameter changed, as it was and as it is.
        assert!(err.contains("what differs:\n  there: step 1 `s`: f(x = 1); now: step 1 `s`: f(x = 2)"), "{err}");
        assert!(!err.contains("config {"), "the configuration is the same: {err}");
        // A step added: the count, not a changed configuration.
        let mut longer = id("1", "/p");
        longer.described.insert(1, "step 2 `t`: g()".into());
        let said = differences(&id("1", "/p"), &longer).expect("differs");
        assert_eq!(said, "1 step there, 2 steps now", "{said}");
        let err = claim(&out, &id("1", "/q"), false).expect_err("another plate");
        assert!(err.contains("another plate"), "{err}");
        claim(&out, &id("2", "/p"), true).expect("forced");
        assert!(!out.join("images").exists(), "the old outputs are gone");
        assert!(out.join("notes.txt").is_file(), "what hcs did not write stays");
        assert!(dir.path().join("outside").is_file(), "nothing outside the folder is touched");
        assert_eq!(occupant(&out, &id("2", "/p")), Occupant::Same);
    }

    #[test]
    fn a_folder_of_other_files_is_refused_unless_forced() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("thesis.docx"), b"x").expect("write");
        let err = claim(dir.path(), &id("1", "/p"), false).expect_err("refused");
        assert!(err.contains("thesis.docx") && err.contains("--force"), "{err}");
        std::fs::create_dir_all(dir.path().join("images")).expect("dir");
        claim(dir.path(), &id("1", "/p"), true).expect("forced");
        assert!(dir.path().join("thesis.docx").is_file());
        // The user's own `images/` is not recorded as this run's: a later --force keeps it.
        claim(dir.path(), &id("2", "/p"), true).expect("forced again");
        assert!(dir.path().join("images").is_dir(), "the folder that was there stays");
    }
}
