//! Large files written past the page cache (`O_DIRECT`, Linux): the default since the
//! twenty-third session; `HCS_DIRECT_WRITES=0` writes them through the cache instead.
//!
//! A buffered write copies every byte into the page cache, and where the kernel must reclaim
//! cache pages first (a container's memory limit, a full cache), that copy runs at a few hundred
//! MB/s of CPU time: on the 2-core development VM, writing a standard plate's 280 MB of
//! checkpoints and mosaics once cost 0.8–1.1 s of system time, a fifth of the run's CPU. With
//! `O_DIRECT` the device reads the bytes from our buffer: 280 MB took 0.05 s of CPU there.
//! Direct writes were the default until the sixteenth session, when buffered writes whose
//! writeback starts at once (`sync_file_range`) ran the plates faster in every comparison
//! (standard plate 2.24 → 1.91 s median over 12 alternating runs, also with a full page cache;
//! scale plate 7.37 → 6.65 s): a direct write waits for the device, so a step writing its
//! checkpoint faster than the disk takes it stalls once the well's queue is full, while the page
//! cache lets the disk catch up during the steps that write nothing (bench/RESULTS.md). Since
//! then a run holds one well at a time and waits for its writer only at the well's end, and
//! the development machine hands out fresh memory slowly: every page of cache a run writes is
//! one more page the system must back. Measured again in the twenty-third session, direct
//! writes ran every plate faster, with or without a pause before each run (standard plate 1.68
//! → 1.36 s and 2.39 → 2.01 s mean over 8 alternating runs, system time 1.15 → 0.66 s and 2.27
//! → 1.47 s; the scale plate 5.57 → 5.09 s and 6.09 → 5.92 s), so they are the default again.
//!
//! The bytes go through one page-aligned buffer per thread (`O_DIRECT` wants aligned memory,
//! lengths and offsets); the last block is padded with zeros and the file truncated to its real
//! length afterwards. A filesystem that refuses `O_DIRECT` (tmpfs, some network filesystems)
//! is answered by `Ok(false)` and the caller writes through the page cache: the file's
//! bytes are the same either way, only the way there differs. The first refusal is kept for the
//! user ([`take_refusal_note`]: the command that ran the wells prints it and logs it as a
//! warning).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Alignment of buffer, offsets and lengths: the largest logical block size in use.
const ALIGN: usize = 4096;
/// Bytes copied into the aligned buffer and written per call.
const CHUNK: usize = 1 << 20;
/// Files smaller than this are written through the page cache (the copy is cheap, and a small
/// direct write waits on the device for little gain).
pub const MIN_BYTES: usize = 1 << 20;

thread_local! {
    /// This thread's staging buffer: `CHUNK + ALIGN` bytes, so an aligned `CHUNK` fits inside.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Whether direct writes are on: unless `HCS_DIRECT_WRITES` says no ([`on_for`]).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| on_for(std::env::var("HCS_DIRECT_WRITES").ok().as_deref()))
}

/// Whether direct writes are on for a value of `HCS_DIRECT_WRITES`: off for `0` / `false` /
/// `no` / `off` (any case, [`crate::setting::switch`]), on otherwise, unset or empty included
/// (the executor warns about a word it does not read).
fn on_for(value: Option<&str>) -> bool {
    value.and_then(crate::setting::switch) != Some(false)
}

/// Create `path` (which must not be in use) holding `bytes`, written past the page cache.
/// `Ok(false)`: the filesystem refuses direct I/O; nothing is left at `path`.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<bool> {
    let file = match OpenOptions::new().write(true).create(true).truncate(true).custom_flags(libc::O_DIRECT).open(path)
    {
        Ok(file) => file,
        // The refusal may come after the file was created: remove it (the name is the caller's own).
        Err(e) if refused(&e) => {
            let _ = std::fs::remove_file(path);
            note_refusal(path, &e);
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match write_blocks(&file, bytes) {
        Ok(()) => {}
        // Alignment the device does not accept: the caller writes it the ordinary way.
        Err(e) if refused(&e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            note_refusal(path, &e);
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    file.set_len(bytes.len() as u64)?;
    Ok(true)
}

/// Whether `e` is a filesystem's "no direct I/O here" (EINVAL; EOPNOTSUPP on some FUSE and
/// overlay setups).
fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP))
}

/// The first refusal of direct writes, kept for the user, and whether it was handed out.
struct Refusals {
    first: OnceLock<String>,
    told: AtomicBool,
}

impl Refusals {
    const fn new() -> Self {
        Refusals { first: OnceLock::new(), told: AtomicBool::new(false) }
    }

    /// Keep the first refusal (the others say nothing new).
    fn note(&self, path: &Path, e: &io::Error) {
        self.first.get_or_init(|| refusal_note(path, e));
    }

    /// The note, once.
    fn take(&self) -> Option<String> {
        let note = self.first.get()?;
        (!self.told.swap(true, Ordering::Relaxed)).then(|| note.clone())
    }
}

/// This process's refusals.
static REFUSALS: Refusals = Refusals::new();

fn note_refusal(path: &Path, e: &io::Error) {
    REFUSALS.note(path, e);
}

/// What the user is told about a refused direct write of `path`.
fn refusal_note(path: &Path, e: &io::Error) -> String {
    let dir = path.parent().unwrap_or(path);
    format!(
        "files of 1 MiB and more on the filesystem of {} were written through the page cache, \
         not directly (O_DIRECT): the filesystem refused direct writes ({e}); the bytes are the \
         same (HCS_DIRECT_WRITES=0 writes through the cache without trying)",
        dir.display()
    )
}

/// The note on the first refused direct write of this process, handed out once (`None`: no
/// refusal, or already told).
pub fn take_refusal_note() -> Option<String> {
    REFUSALS.take()
}

/// Write `bytes` from offset 0 in aligned blocks, the last padded with zeros.
///
/// Where `bytes` starts at an aligned address (an encoded plane file of 2 MiB and more is a
/// mapping of its own in the `hcs` binary, `hcs_exec::blocks`), its whole blocks go to the
/// device straight from it; only the tail (and a buffer that starts anywhere else) is copied
/// into this thread's aligned staging buffer. The copy of every byte was the writer's main work:
/// `__memcpy` rose from 1.4 to 6.9 % of a standard run's samples with direct writes on.
fn write_blocks(file: &File, bytes: &[u8]) -> io::Result<()> {
    let aligned = if bytes.as_ptr().align_offset(ALIGN) == 0 { bytes.len() / ALIGN * ALIGN } else { 0 };
    let (whole, rest) = bytes.split_at(aligned);
    let mut offset = 0u64;
    // CHUNK is a multiple of ALIGN: every chunk starts aligned and is whole blocks long.
    for chunk in whole.chunks(CHUNK) {
        file.write_all_at(chunk, offset)?;
        offset += chunk.len() as u64;
    }
    if rest.is_empty() {
        return Ok(());
    }
    STAGING.with(|staging| {
        let mut staging = staging.borrow_mut();
        if staging.len() < CHUNK + ALIGN {
            staging.resize(CHUNK + ALIGN, 0);
        }
        let start = staging.as_ptr().align_offset(ALIGN);
        let end = start.checked_add(CHUNK).ok_or_else(|| io::Error::other("unaligned staging buffer"))?;
        let buffer = staging.get_mut(start..end).ok_or_else(|| io::Error::other("unaligned staging buffer"))?;
        for chunk in rest.chunks(CHUNK) {
            let padded = chunk.len().next_multiple_of(ALIGN);
            buffer[..chunk.len()].copy_from_slice(chunk);
            buffer[chunk.len()..padded].fill(0);
            file.write_all_at(&buffer[..padded], offset)?;
            offset += chunk.len() as u64;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_lengths_read_back_exactly_and_leave_no_padding() {
        let dir = std::env::temp_dir().join(format!("hcs-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let lengths = [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, CHUNK - 7, CHUNK, CHUNK + 4097, 3 * CHUNK + 123];
        // Each length from an aligned start (whole blocks written from the bytes themselves)
        // and from one byte past it (all of them through the staging buffer).
        for (len, skew) in lengths.into_iter().flat_map(|len| [(len, 0), (len, 1)]) {
            let mut room = vec![0u8; len + ALIGN + 1];
            let at = room.as_ptr().align_offset(ALIGN) + skew;
            let bytes = &mut room[at..at + len];
            bytes.iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7 + i / 251) as u8);
            let path = dir.join(format!("f{len}-{skew}"));
            // Either written directly or refused (a filesystem without O_DIRECT); never half.
            if write_new(&path, bytes).expect("write") {
                assert_eq!(std::fs::read(&path).expect("read"), bytes, "length {len}, skew {skew}");
            } else {
                assert!(!path.exists(), "a refused direct write leaves nothing");
            }
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn direct_writes_are_on_unless_turned_off() {
        for (value, on) in
            [(None, true), (Some(""), true), (Some("0"), false), (Some(" 0 "), false), (Some("False"), false)]
                .into_iter()
                .chain([(Some("no"), false), (Some("OFF"), false), (Some("1"), true), (Some("yes"), true)])
        {
            assert_eq!(on_for(value), on, "{value:?}");
        }
    }

    #[test]
    fn a_refusal_is_told_once_with_its_directory_and_the_setting() {
        let refusal = io::Error::from_raw_os_error(libc::EINVAL);
        assert!(refused(&refusal) && !refused(&io::Error::from_raw_os_error(libc::ENOSPC)));
        // A table of its own: the process's may hold a refusal of the test above (a temporary
        // directory on a filesystem without O_DIRECT).
        let refusals = Refusals::new();
        assert_eq!(refusals.take(), None, "nothing refused, nothing to tell");
        refusals.note(Path::new("/plates/out/images/A01.tif"), &refusal);
        refusals.note(Path::new("/elsewhere/B02.tif"), &refusal);
        let note = refusals.take().expect("a refusal was noted");
        assert!(note.contains("/plates/out/images") && !note.contains("elsewhere"), "{note}");
        assert!(note.contains("O_DIRECT") && note.contains("HCS_DIRECT_WRITES=0"), "{note}");
        assert_eq!(refusals.take(), None, "told once");
    }
}
