//! Atomic file writes: write a temporary file in the target's directory, flush it to disk, then
//! rename it over the target. Readers see the old file or the whole new one, never a part.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::VfsError;

#[cfg(target_os = "linux")]
mod direct;

/// Atomically replace `path` with `bytes`, creating parent directories as needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VfsError> {
    write_via_temporary(path, bytes, true, false)
}

/// [`write_atomic`] without waiting for the data to reach the disk: readers still never see a
/// partial file under `path`, but after a crash the file may be incomplete. For files whose
/// durability a later step establishes with [`sync_files`] before anything relies on them
/// (the executor syncs a well's files before writing its completion record), so the disk
/// writes of many files overlap instead of one waiting for the next.
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<(), VfsError> {
    write_via_temporary(path, bytes, false, false)
}

/// [`write_atomic_unsynced`] for large files this process reads again at most once (a run's
/// outputs: the run report reads one plane per well and channel back for its overview
/// picture), which should not stay in the page cache: the file's writeback starts at once, so
/// the fsync that later makes it durable ([`sync_files`]) does not find a well's whole output
/// waiting, and that fsync lets the cache drop its pages. Files of 1 MiB and more are written
/// past the cache (`O_DIRECT`, where the platform and filesystem take it; the ordinary way
/// elsewhere and with `HCS_DIRECT_WRITES=0`, with the same bytes), which spares the kernel's
/// copy of every byte into the cache but makes the writer wait for the device.
pub fn write_atomic_uncached(path: &Path, bytes: &[u8]) -> Result<(), VfsError> {
    write_via_temporary(path, bytes, false, true)
}

/// Wait until the files' contents are on disk (fsync each), then let the page cache drop them:
/// they are on disk, and a run's outputs are not read again by this process (the page cache
/// stays free for what is). The files are synced by eight threads at once: each fsync
/// mostly waits for the device, and one after another a standard-plate well's 63 files took
/// ~15 ms (0.25 ms each), which the run's last well waits for. On error, the first failure in
/// the files' order.
pub fn sync_files<P: AsRef<Path> + Sync>(paths: impl IntoIterator<Item = P>) -> Result<(), VfsError> {
    let paths: Vec<P> = paths.into_iter().collect();
    if paths.len() < 2 {
        return paths.iter().try_for_each(|p| sync_file(p.as_ref()));
    }
    let share = paths.len().div_ceil(SYNC_THREADS);
    let results: Vec<Result<(), VfsError>> = std::thread::scope(|scope| {
        let parts: Vec<_> = paths
            .chunks(share)
            .map(|part| (part, scope.spawn(move || part.iter().try_for_each(|p| sync_file(p.as_ref())))))
            .collect();
        parts
            .into_iter()
            .map(|(part, t)| {
                t.join().unwrap_or_else(|_| {
                    let first = part.first().map_or(Path::new(""), AsRef::as_ref);
                    Err(VfsError::io(
                        first,
                        std::io::Error::other("the thread syncing this file and the next panicked"),
                    ))
                })
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Wait until `path`'s contents are on disk (fsync), then let the page cache drop them (see
/// [`sync_files`]).
pub fn sync_file(path: &Path) -> Result<(), VfsError> {
    let file = fs::File::open(path).map_err(|e| VfsError::io(path, e))?;
    file.sync_all().map_err(|e| VfsError::io(path, e))?;
    drop_cached(&file);
    Ok(())
}

/// Threads that sync a well's files at once ([`sync_files`]).
const SYNC_THREADS: usize = 8;

/// Ask the kernel to start writing `file`'s data to the device now, without waiting for it: a
/// later fsync then finds it written or under way, instead of a well's whole output at once.
/// A hint only: where it is refused, the fsync writes the data.
fn start_writeback(file: &fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the call's duration; the call only schedules
        // writeback of the file's dirty pages.
        unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Let the page cache drop `file`'s pages (clean after an fsync). A hint only.
fn drop_cached(file: &fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the call's duration; the call changes no data.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

fn write_via_temporary(path: &Path, bytes: &[u8], sync: bool, uncached: bool) -> Result<(), VfsError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or(VfsError::BadPath { path: path.to_path_buf(), reason: "has no file name" })?;
    fs::create_dir_all(parent).map_err(|e| VfsError::io(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        if !(uncached && written_directly(&tmp, bytes)?) {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            if sync {
                file.sync_all()?;
            } else if uncached {
                start_writeback(&file);
            }
        } else if sync {
            // The data is on the device; this makes the file's size and blocks durable.
            fs::File::open(&tmp)?.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        VfsError::io(path, e)
    })
}

/// Write a large file past the page cache where the platform and filesystem allow it (see
/// `direct`); `false`: not written, write it the ordinary way.
#[cfg(target_os = "linux")]
fn written_directly(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    if bytes.len() < direct::MIN_BYTES || !direct::enabled() {
        return Ok(false);
    }
    direct::write_new(path, bytes)
}

/// The note on the first refused direct write of this process (a filesystem without
/// `O_DIRECT`, where [`write_atomic_uncached`] wrote through the page cache instead), handed
/// out once: the caller tells the user.
#[cfg(target_os = "linux")]
pub fn take_direct_write_refusal() -> Option<String> {
    direct::take_refusal_note()
}

/// Direct writes are only tried on Linux: nothing is ever refused elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn take_direct_write_refusal() -> Option<String> {
    None
}

#[cfg(not(target_os = "linux"))]
fn written_directly(_: &Path, _: &[u8]) -> std::io::Result<bool> {
    Ok(false)
}

/// Remove temporaries that an interrupted [`write_atomic`] left in `dir` (not recursive). Call
/// only while no other process writes there; returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize, VfsError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(VfsError::io(dir, e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") && entry.path().is_file() {
            fs::remove_file(entry.path()).map_err(|e| VfsError::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("hcs-atomic-{}", std::process::id()));
        let path = dir.join("sub").join("a.txt");
        write_atomic(&path, b"first").expect("first write");
        write_atomic(&path, b"second").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = fs::read_dir(dir.join("sub")).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn stale_temporaries_are_removed_and_real_files_kept() {
        let dir = std::env::temp_dir().join(format!("hcs-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join(".a.tif.tmp-123-4"), b"half").expect("tmp");
        fs::write(dir.join("a.tif"), b"whole").expect("file");
        assert_eq!(remove_stale_temporaries(&dir).expect("clean"), 1);
        let names: Vec<_> = fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.tif")]);
        assert_eq!(remove_stale_temporaries(&dir.join("absent")).expect("absent is fine"), 0);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn unsynced_writes_are_atomic_and_syncing_a_missing_file_names_it() {
        let dir = std::env::temp_dir().join(format!("hcs-unsynced-{}", std::process::id()));
        let (a, b) = (dir.join("a.tif"), dir.join("b.tif"));
        write_atomic_unsynced(&a, b"plane a").expect("write a");
        write_atomic_unsynced(&b, b"plane b").expect("write b");
        sync_files([&a, &b]).expect("both exist");
        assert_eq!(fs::read(&a).expect("read"), b"plane a");
        let mut names: Vec<_> = fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
        names.sort();
        assert_eq!(names, [std::ffi::OsString::from("a.tif"), std::ffi::OsString::from("b.tif")]);
        let missing = dir.join("gone.tif");
        let err = sync_files([&a, &missing]).expect_err("a missing file cannot be synced");
        assert!(err.to_string().contains("gone.tif"), "{err}");
        // Many files, synced by several threads: the first missing one in order is named.
        let many: Vec<std::path::PathBuf> = (0..37).map(|i| dir.join(format!("p{i:02}.tif"))).collect();
        for p in &many {
            write_atomic_unsynced(p, b"plane").expect("write");
        }
        sync_files(&many).expect("all exist");
        let mut holed = many.clone();
        holed.insert(30, dir.join("gone30.tif"));
        holed.insert(9, dir.join("gone9.tif"));
        let err = sync_files(&holed).expect_err("missing files");
        assert!(err.to_string().contains("gone9.tif"), "{err}");
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn uncached_writes_give_the_same_bytes_small_or_large() {
        let dir = std::env::temp_dir().join(format!("hcs-uncached-{}", std::process::id()));
        for len in [10, (3 << 20) + 5] {
            let bytes: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let path = dir.join(format!("{len}.tif"));
            write_atomic_uncached(&path, &bytes).expect("first write");
            write_atomic_uncached(&path, &bytes[..len / 2]).expect("replaced by a shorter file");
            assert_eq!(fs::read(&path).expect("read"), &bytes[..len / 2]);
        }
        let names = fs::read_dir(&dir).expect("list").flatten().count();
        assert_eq!(names, 2, "no temporaries left");
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_path_without_file_name_is_an_error_not_a_panic() {
        let err = write_atomic(Path::new("/"), b"x").expect_err("root has no file name");
        assert!(err.to_string().contains("has no file name"), "{err}");
    }
}
