//! A well's plane files written behind its computation.
//!
//! Encoding a plane is CPU work; writing it is mostly waiting on the device (large files go past
//! the page cache: [`write_atomic_uncached`]). A [`WriteBehind`] owns one writer thread per well, fed
//! through a bounded queue: the step hands over each encoded file and goes on, the writer puts
//! it in place atomically (temp + rename), and the well waits for the queue to drain in
//! [`WriteBehind::finish`] before its completion record vouches for the files. The queue holds
//! at most [`QUEUE`] files, so a slow disk slows the well down instead of filling memory. Where
//! no thread can be started, files are written at once by the step itself.
//!
//! Nothing is lost on failure: the first error is kept, later files of the well are not written,
//! and [`WriteBehind::finish`] returns that error; the well then fails and its litter (every file
//! its record lists, written or not) is removed once the writer has stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use hcs_vfs::VfsError;
use hcs_vfs::atomic::write_atomic_uncached;

/// Files that may wait in the queue. Few: a file waiting here is memory the plan's estimate does
/// not count (a mosaic can be hundreds of MB), and two keep the writer busy while the step
/// encodes the next (a 2 MiB plane takes about as long to encode as to write).
pub const QUEUE: usize = 2;

/// One file to write.
type Job = (PathBuf, Vec<u8>);

/// The writer thread of one well, started on the first file.
#[derive(Default)]
pub struct WriteBehind {
    worker: OnceLock<Worker>,
}

struct Worker {
    /// `false`: no thread could be started; files are written by the caller.
    started: bool,
    queue: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<Result<(), VfsError>>>>,
    /// Set by the writer when a write failed (the error itself comes out of the join).
    failed: Arc<AtomicBool>,
}

impl WriteBehind {
    /// Queue `bytes` to be written atomically at `path`; waits while the queue is full. An error
    /// here means the writer is gone (an earlier write failed): [`Self::finish`] says why.
    pub fn submit(&self, path: PathBuf, bytes: Vec<u8>) -> Result<(), VfsError> {
        let worker = self.worker.get_or_init(Worker::start);
        if !worker.started {
            return write_atomic_uncached(&path, &bytes);
        }
        let sender = worker.queue.lock().ok().and_then(|q| q.clone());
        let gone =
            || VfsError::Io { path: path.clone(), source: std::io::Error::other("the well's writer has stopped") };
        let Some(sender) = sender else { return Err(gone()) };
        sender.send((path.clone(), bytes)).map_err(|_| gone())
    }

    /// The writer's error, if a write has failed by now (the writer is then stopped, and the
    /// error is reported here once, not again by [`Self::finish`]); else `Ok` without waiting.
    pub fn check(&self) -> Result<(), VfsError> {
        let Some(worker) = self.worker.get() else { return Ok(()) };
        // A write failed, or the thread ended while the queue is open (it panicked).
        let ended = || worker.thread.lock().ok().is_some_and(|t| t.as_ref().is_some_and(JoinHandle::is_finished));
        if worker.failed.load(Ordering::Acquire) || ended() { self.finish() } else { Ok(()) }
    }

    /// Wait until every queued file is written; the first error, if any. The writer stops; a
    /// later [`Self::submit`] starts no new one.
    pub fn finish(&self) -> Result<(), VfsError> {
        let Some(worker) = self.worker.get() else { return Ok(()) };
        if let Ok(mut queue) = worker.queue.lock() {
            queue.take(); // the writer ends once the queue drains
        }
        let thread = worker.thread.lock().ok().and_then(|mut t| t.take());
        match thread.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(VfsError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("the well's writer thread panicked"),
            }),
        }
    }
}

impl Worker {
    fn start() -> Self {
        let (sender, jobs) = sync_channel::<Job>(QUEUE);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let spawned = std::thread::Builder::new().name("hcs-writer".into()).spawn(move || {
            let mut first_error = None;
            for (path, bytes) in jobs {
                // After a failure the rest are dropped unwritten: the well fails anyway.
                if first_error.is_none()
                    && let Err(e) = write_atomic_uncached(&path, &bytes)
                {
                    first_error = Some(e);
                    flag.store(true, Ordering::Release);
                }
            }
            first_error.map_or(Ok(()), Err)
        });
        match spawned {
            Ok(thread) => {
                Self { started: true, queue: Mutex::new(Some(sender)), thread: Mutex::new(Some(thread)), failed }
            }
            Err(e) => {
                tracing::debug!("no writer thread ({e}): plane files are written by the step itself");
                Self { started: false, queue: Mutex::new(None), thread: Mutex::new(None), failed }
            }
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_waits_for_every_file_and_reports_the_first_failure() {
        let dir = std::env::temp_dir().join(format!("hcs-write-behind-{}", std::process::id()));
        let writes = WriteBehind::default();
        // Small files and files large enough to be written past the page cache.
        let len = |i: usize| if i.is_multiple_of(2) { 1000 + i } else { (3 << 20) + i };
        for i in 0..(3 * QUEUE) {
            writes.submit(dir.join(format!("{i}.bin")), vec![i as u8; len(i)]).expect("queued");
        }
        writes.finish().expect("all written");
        for i in 0..(3 * QUEUE) {
            assert_eq!(std::fs::read(dir.join(format!("{i}.bin"))).expect("written"), vec![i as u8; len(i)]);
        }
        assert!(writes.submit(dir.join("late.bin"), vec![1]).is_err(), "a finished writer takes no more");

        // A path under a regular file cannot be written: the error comes out of finish.
        let failing = WriteBehind::default();
        failing.submit(dir.join("0.bin").join("under_a_file.bin"), vec![1]).expect("queued");
        // `check` reports the failure once the writer has met it, without a finish.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let err = loop {
            match failing.check() {
                Err(e) => break e,
                Ok(()) => assert!(std::time::Instant::now() < deadline, "the failure never showed"),
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(err.to_string().contains("0.bin"), "names the path: {err}");
        assert!(failing.submit(dir.join("1.bin"), vec![1]).is_err(), "a failed writer takes no more");

        // Without a check, finish reports it.
        let failing = WriteBehind::default();
        failing.submit(dir.join("0.bin").join("again.bin"), vec![1]).expect("queued");
        let err = failing.finish().expect_err("the write fails");
        assert!(err.to_string().contains("0.bin"), "names the path: {err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
