//! Reading files ahead: the executor hints a well's raw image files before the well's steps
//! read them, so that a read finds its file in the page cache instead of waiting for the
//! device (a guest that hands its free memory back to its host keeps a plate only partly
//! cached between runs).

use std::fs;
use std::path::Path;

use crate::VfsError;

/// Ask the kernel to start reading all of `path` into the page cache now, without waiting for
/// it (`posix_fadvise(POSIX_FADV_WILLNEED)` on Linux; elsewhere the file is only opened), and
/// return the file's length. A hint: whatever the kernel makes of it, a later read returns the
/// same bytes. An error names the file (it cannot be opened, or the hint is refused).
///
/// ```
/// let path = std::env::temp_dir().join(format!("hcs-will-need-doc-{}.bin", std::process::id()));
/// std::fs::write(&path, [7u8; 4096]).unwrap();
/// assert_eq!(hcs_vfs::prefetch::will_need(&path).unwrap(), 4096);
/// assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 4096]);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn will_need(path: &Path) -> Result<u64, VfsError> {
    let file = fs::File::open(path).map_err(|e| VfsError::io(path, e))?;
    let len = file.metadata().map_err(|e| VfsError::io(path, e))?.len();
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the call's duration; the call changes no data.
        let refused = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
        if refused != 0 {
            return Err(VfsError::io(path, std::io::Error::from_raw_os_error(refused)));
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_hinted_and_a_missing_one_is_named() {
        let dir = std::env::temp_dir().join(format!("hcs-prefetch-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("plane.tif");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&file, &bytes).expect("write");
        assert_eq!(will_need(&file).expect("an existing file can be hinted"), 300_000);
        assert_eq!(fs::read(&file).expect("read"), bytes, "the hint changes no byte");
        let missing = dir.join("gone.tif");
        let err = will_need(&missing).expect_err("a missing file cannot be hinted");
        assert!(err.to_string().contains("gone.tif"), "{err}");
        // A directory opens but is no file to read ahead: refused or accepted, never a panic.
        let _ = will_need(&dir);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
