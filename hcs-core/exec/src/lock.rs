//! The exclusive lock on an output plate: one process at a time prepares and writes an output.
//!
//! The lock is an advisory `flock` on `<output>/.hcs/lock`; the file holds JSON naming the holder
//! (`{pid, host, started, command}`) so a refused run can say who holds it. The kernel releases a
//! `flock` when its process ends however it ends, so a killed run never leaves a lock behind;
//! only its file stays, naming a process that is gone, and the next run takes the lock over (with
//! a message). A run ending normally empties the file as it releases the lock.
//!
//! A Slurm submission holds the lock while it prepares the output and submits its jobs, and
//! leaves the file naming the submission ([`OutputLock::hand_over_to_submission`]): its array
//! tasks and finalize job write concurrently by design and take no lock; a later run checks the
//! submission's jobs instead.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Who holds (or last held) an output's lock: the content of the lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name of the machine the process runs on.
    pub host: String,
    /// When it took the lock (seconds since the Unix epoch).
    pub started: u64,
    /// Its command line.
    pub command: String,
    /// A Slurm submission (`<output>/.hcs/slurm/<name>`) the output was handed to when the
    /// submitting process released the lock: its jobs, not a process, write the output now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on host {}, started {} (", self.pid, self.host, format_time(self.started))?;
        let ago = now_secs().saturating_sub(self.started);
        write!(f, "{ago} s ago): `{}`", self.command)
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "the output is in use by another hcs run: {} holds {}. Wait for it to finish — the lock is released when that process ends — and remove nothing meanwhile",
        holder.as_ref().map_or_else(|| "a process that has not written its name yet".to_string(), ToString::to_string),
        path.display()
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Its holder, as the lock file names it (`None`: not written yet, or unreadable).
        holder: Option<LockHolder>,
    },
    /// The lock file cannot be created, locked or written.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What happened.
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive lock on an output, held until dropped (or until the process ends).
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    path: PathBuf,
    holder: LockHolder,
    taken_over: Option<LockHolder>,
}

/// The lock file of the output `output_root`.
pub fn lock_path(output_root: &Path) -> PathBuf {
    output_root.join(".hcs").join("lock")
}

/// What the lock file of `output_root` says now (`None`: no file, empty, or unreadable). Reading
/// takes no lock.
pub fn read_holder(output_root: &Path) -> Option<LockHolder> {
    parse(&std::fs::read(lock_path(output_root)).ok()?)
}

fn parse(bytes: &[u8]) -> Option<LockHolder> {
    serde_json::from_slice(bytes).ok()
}

impl OutputLock {
    /// Take the lock on `output_root` (creating `<output_root>/.hcs/` as needed) for a process
    /// running `command`; fails at once with [`LockError::Held`] if another process holds it.
    pub fn acquire(output_root: &Path, command: &str) -> Result<OutputLock, LockError> {
        let path = lock_path(output_root);
        let io = |source| LockError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match try_flock(&file) {
            Ok(true) => {}
            Ok(false) => {
                let mut bytes = Vec::new();
                let _ = file.read_to_end(&mut bytes);
                return Err(LockError::Held { holder: parse(&bytes), path });
            }
            Err(e) => return Err(io(e)),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let host = host_name();
        let taken_over = parse(&bytes).filter(|previous| {
            previous.submission.is_none()
                && previous.pid != std::process::id()
                && previous.host == host
                && !process_alive(previous.pid)
        });
        if let Some(dead) = &taken_over {
            tracing::warn!(pid = dead.pid, "taking over the lock of a dead run (pid {})", dead.pid);
        }
        let holder = LockHolder {
            pid: std::process::id(),
            host,
            started: now_secs(),
            command: command.to_string(),
            submission: None,
        };
        let lock = OutputLock { file, path: path.clone(), holder, taken_over };
        lock.write_content(Some(&lock.holder)).map_err(io)?;
        Ok(lock)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This process, as the lock file names it.
    pub fn holder(&self) -> &LockHolder {
        &self.holder
    }

    /// The earlier holder whose lock this one took over: a run on this host whose process is gone
    /// (killed, crashed) — its wells without records are redone. Show it to the user.
    pub fn taken_over(&self) -> Option<&LockHolder> {
        self.taken_over.as_ref()
    }

    /// The message to show for [`taken_over`](Self::taken_over), if any.
    pub fn take_over_message(&self) -> Option<String> {
        self.taken_over.as_ref().map(|dead| format!("taking over the lock of a dead run (pid {})", dead.pid))
    }

    /// Release the lock but leave the file naming the Slurm submission `name`, whose jobs write
    /// the output from now on without a lock.
    pub fn hand_over_to_submission(mut self, name: &str) -> Result<(), LockError> {
        self.holder.submission = Some(name.to_string());
        let holder = self.holder.clone();
        // Dropping releases the flock and, the holder naming a submission, keeps the file.
        self.write_content(Some(&holder)).map_err(|source| LockError::Io { path: self.path.clone(), source })
    }

    fn write_content(&self, holder: Option<&LockHolder>) -> std::io::Result<()> {
        let mut file = &self.file;
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        if let Some(holder) = holder {
            let bytes = serde_json::to_vec(holder).map_err(std::io::Error::other)?;
            file.write_all(&bytes)?;
        }
        file.flush()
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // A normal end leaves an empty file (nothing to take over); a handed-over one names the
        // submission. Closing the file releases the flock.
        if self.holder.submission.is_none() {
            let _ = self.write_content(None);
        }
        unlock(&self.file);
    }
}

#[cfg(unix)]
fn try_flock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor this `File` owns for the call's duration.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

#[cfg(unix)]
fn unlock(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor this `File` owns.
    unsafe {
        libc::flock(file.as_raw_fd(), libc::LOCK_UN);
    }
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(unix)]
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(not(unix))]
fn try_flock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(not(unix))]
fn unlock(_file: &File) {}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    true
}

#[cfg(not(unix))]
fn host_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_else(|_| "unknown".into())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of Unix seconds.
fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn a_second_lock_on_the_same_output_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = OutputLock::acquire(dir.path(), "hcs run one").expect("free");
        let Err(LockError::Held { holder, .. }) = OutputLock::acquire(dir.path(), "hcs run two") else {
            panic!("the second lock must be refused")
        };
        let holder = holder.expect("the holder is named");
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.command, "hcs run one");
        drop(first);
        assert_eq!(read_holder(dir.path()), None, "a released lock leaves an empty file");
        let again = OutputLock::acquire(dir.path(), "hcs run three").expect("free again");
        assert!(again.taken_over().is_none());
    }

    #[test]
    fn the_lock_file_of_a_dead_process_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dead = LockHolder {
            pid: u32::try_from(i32::MAX).expect("fits"),
            host: host_name(),
            started: 1,
            command: "hcs run killed".into(),
            submission: None,
        };
        std::fs::create_dir_all(dir.path().join(".hcs")).expect("dir");
        std::fs::write(lock_path(dir.path()), serde_json::to_vec(&dead).expect("json")).expect("write");
        let lock = OutputLock::acquire(dir.path(), "hcs run").expect("free");
        assert_eq!(lock.taken_over(), Some(&dead));
        assert_eq!(
            lock.take_over_message().as_deref(),
            Some(&*format!("taking over the lock of a dead run (pid {})", i32::MAX))
        );
    }

    #[test]
    fn a_handed_over_lock_names_the_submission() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lock = OutputLock::acquire(dir.path(), "hcs run --executor slurm").expect("free");
        lock.hand_over_to_submission("123-4").expect("written");
        assert_eq!(read_holder(dir.path()).and_then(|h| h.submission).as_deref(), Some("123-4"));
        let next = OutputLock::acquire(dir.path(), "hcs run").expect("free");
        assert!(next.taken_over().is_none(), "a submission is not a dead run");
    }
}
