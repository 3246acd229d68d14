//! The input plate is never written to, whatever the spelling of the paths: before anything is
//! written, every persistent location of a compiled plate is resolved to its real path (symlinks
//! followed, `..` gone) and compared with the plate's real path — and, folder by folder, by device
//! and inode, so a bind-mount alias or a second name of the plate's folder is caught too.
//!
//! The compiler already refuses outputs whose *spelling* lands in the plate; this guard is the
//! check on the filesystem as it is when the run starts, which planning (pure, no I/O) cannot do.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hcs_plan::compiler::{CompiledPlate, Location};

/// An output that would land in (or around) the input plate.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// An output is the plate, or inside it, or contains it.
    #[error(
        "{what} {} is really {}, which is {relation} the input plate {}; write the output somewhere else",
        path.display(), real.display(), plate.display()
    )]
    IntoPlate {
        /// What the path is for (the output plate, a checkpoint, …).
        what: String,
        /// The path as the plan spells it.
        path: PathBuf,
        /// Where it really is.
        real: PathBuf,
        /// `inside` or `around`.
        relation: &'static str,
        /// The plate's real path.
        plate: PathBuf,
    },
    /// The plate's folder cannot be resolved.
    #[error("cannot resolve the input plate {}: {source}", path.display())]
    Plate {
        /// The plate as given.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// The real path of `path`, which need not exist yet: its deepest existing ancestor resolved
/// (symlinks followed), the rest appended.
pub fn real_path(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// `(device, inode)` of an existing path.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether `inner` is `outer` or inside it: by real path, or by the identity of a folder on the
/// way up (a bind mount or another name of `outer`).
fn is_within(inner: &Path, outer: &Path) -> bool {
    if inner.starts_with(outer) {
        return true;
    }
    let Some(target) = identity(outer) else { return false };
    inner.ancestors().any(|a| identity(a) == Some(target))
}

/// Every persistent location a compiled plate writes, with what it is for.
fn persistent_paths(compiled: &CompiledPlate) -> Vec<(String, PathBuf)> {
    let mut paths = vec![("the output plate".to_string(), compiled.output_root.clone())];
    let Some(first) = compiled.wells.first() else { return paths };
    for step in &first.steps {
        let located = [Some(&step.writes), step.checkpoint.as_ref()].into_iter().flatten();
        for location in located.filter(|l| !matches!(l, Location::Memory { .. } | Location::Plate { .. })) {
            if let Some(p) = location.persistent_path() {
                paths.push((format!("the output of step {} `{}`", step.index, step.name), p.clone()));
            }
        }
        if let Some(preview) = &step.preview {
            paths.push((format!("the preview of step {}", step.index), preview.store.store.clone()));
            paths.push((format!("the thumbnails of step {}", step.index), preview.thumbnails.clone()));
        }
        for out in step.special_outputs.values() {
            paths.push((format!("the results of step {}", step.index), out.results_dir.clone()));
        }
    }
    paths
}

/// Refuse a compiled plate any of whose persistent outputs is really in or around its input
/// plate. Call before writing anything (the CLI calls it before it takes the output's lock;
/// [`crate::prepare`] calls it too).
pub fn check_outputs_outside_plate(compiled: &CompiledPlate) -> Result<(), GuardError> {
    let plate =
        compiled.plate.canonicalize().map_err(|source| GuardError::Plate { path: compiled.plate.clone(), source })?;
    for (what, path) in persistent_paths(compiled) {
        let real = real_path(&path);
        let relation = if is_within(&real, &plate) {
            "inside"
        } else if is_within(&plate, &real) {
            "around"
        } else {
            continue;
        };
        return Err(GuardError::IntoPlate { what, path, real, relation, plate });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hcs-guard-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).expect("scratch");
        dir
    }

    #[test]
    fn a_symlink_into_the_plate_is_seen_through() {
        let dir = scratch("link");
        let plate = dir.join("plate");
        std::fs::create_dir_all(plate.join("TimePoint_1")).expect("plate");
        std::os::unix::fs::symlink(plate.join("TimePoint_1"), dir.join("innocent")).expect("link");
        let out = dir.join("innocent").join("out");
        let real = real_path(&out);
        assert_eq!(real, plate.canonicalize().expect("real plate").join("TimePoint_1").join("out"));
        assert!(is_within(&real, &plate.canonicalize().expect("real plate")));
        assert!(!is_within(&real_path(&dir.join("elsewhere")), &plate.canonicalize().expect("real plate")));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_plate_inside_the_output_is_around_it() {
        let dir = scratch("around");
        let plate = dir.join("data").join("plate");
        std::fs::create_dir_all(&plate).expect("plate");
        let real_plate = plate.canonicalize().expect("real");
        assert!(is_within(&real_plate, &real_path(&dir.join("data"))));
        std::fs::remove_dir_all(&dir).ok();
    }
}
