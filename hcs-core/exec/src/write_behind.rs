//! A well's plane files written behind its computation.
//!
//! Encoding a plane is CPU work; writing it waits on the device (files of 1 MiB and more are
//! written past the page cache, [`write_atomic_uncached`]). A [`WriteBehind`] owns one writer thread per well, fed
//! through a queue bounded in bytes: the step hands over each encoded file and goes on, the writer
//! puts it in place atomically (temp + rename), and the queue drains in [`WriteBehind::finish`]
//! before the well's completion record vouches for the files. That wait is the recorder's
//! (`crate::state::Settling`): the well thread starts the next well meanwhile (on the standard
//! plate it waited 15 ms a well for its last mosaic, with a core idle).
//!
//! As it writes, the writer hands the files, in batches, to a syncer thread that makes them
//! durable while the well computes (`Syncer`), so the record's sync finds little to flush.
//!
//! The bound is the plan's (`write_behind_bytes`, counted in the well's estimated peak): files
//! wait until that many bytes are queued, and one file always may, so a slow disk slows the well
//! down instead of filling memory. A step writes its planes all at once when it ends; with room
//! for only a file or two, the threads encoding them stood waiting on the disk while the cores
//! idled (the standard plate ran 4–7 % longer than with this queue, 10–14 % longer than with
//! its output on tmpfs). Where no thread can be started, files are written at once by the step
//! itself.
//!
//! Nothing is lost on failure: the first error (a write's, or a sync's) is kept, later files of
//! the well are not written, and [`WriteBehind::finish`] returns that error; the well then fails
//! and its litter (every file its record lists, written or not) is removed once the writer has
//! stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

use hcs_vfs::VfsError;
use hcs_vfs::atomic::write_atomic_uncached;

/// One file to write.
type Job = (PathBuf, Vec<u8>);

/// The writer thread of one well, started on the first file.
#[derive(Default)]
pub struct WriteBehind {
    /// Bytes that may wait in the queue (at least one file always may).
    budget: u64,
    worker: OnceLock<Worker>,
}

struct Worker {
    /// `false`: no thread could be started; files are written by the caller.
    started: bool,
    queue: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<Result<(), VfsError>>>>,
    /// Set by the writer when a write failed, or by its syncer when an fsync did (the error
    /// itself comes out of the join).
    failed: Arc<AtomicBool>,
    waiting: Arc<Waiting>,
}

/// The bytes in the queue, shared by the submitting threads and the writer.
#[derive(Default)]
struct Waiting {
    state: Mutex<Queued>,
    /// Signalled when the writer has taken a file off the queue, or has ended.
    drained: Condvar,
}

#[derive(Default)]
struct Queued {
    bytes: u64,
    /// The most bytes that were ever queued at once.
    peak: u64,
    /// The writer has ended (the queue is not drained any more).
    closed: bool,
}

impl Waiting {
    /// Wait until `len` more bytes fit the budget (or the queue is empty), then count them;
    /// `false` when the writer has ended.
    fn reserve(&self, len: u64, budget: u64) -> bool {
        let Ok(mut queued) = self.state.lock() else { return false };
        while !queued.closed && queued.bytes > 0 && queued.bytes.saturating_add(len) > budget {
            queued = match self.drained.wait(queued) {
                Ok(q) => q,
                Err(_) => return false,
            };
        }
        if queued.closed {
            return false;
        }
        queued.bytes += len;
        queued.peak = queued.peak.max(queued.bytes);
        true
    }

    fn release(&self, len: u64) {
        if let Ok(mut queued) = self.state.lock() {
            queued.bytes = queued.bytes.saturating_sub(len);
        }
        self.drained.notify_all();
    }

    fn close(&self) {
        if let Ok(mut queued) = self.state.lock() {
            queued.closed = true;
        }
        self.drained.notify_all();
    }
}

/// Closes the queue when the writer ends, however it ends: no submitter waits for a writer that
/// is gone.
struct CloseOnDrop(Arc<Waiting>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl WriteBehind {
    /// A writer that lets up to `budget` bytes of files wait for the disk (one file always may).
    pub fn with_budget(budget: u64) -> Self {
        Self { budget, worker: OnceLock::new() }
    }

    /// Queue `bytes` to be written atomically at `path`; waits while the queue holds its budget.
    /// An error here means the writer is gone (an earlier write failed): [`Self::finish`] says why.
    pub fn submit(&self, path: PathBuf, bytes: Vec<u8>) -> Result<(), VfsError> {
        let worker = self.worker.get_or_init(Worker::start);
        if !worker.started {
            return write_atomic_uncached(&path, &bytes);
        }
        let gone =
            || VfsError::Io { path: path.clone(), source: std::io::Error::other("the well's writer has stopped") };
        let sender = worker.queue.lock().ok().and_then(|q| q.clone());
        let Some(sender) = sender else { return Err(gone()) };
        let len = bytes.len() as u64;
        if !worker.waiting.reserve(len, self.budget) {
            return Err(gone());
        }
        sender.send((path.clone(), bytes)).map_err(|_| {
            worker.waiting.release(len);
            gone()
        })
    }

    /// The most bytes of files that waited for the disk at once so far.
    pub fn peak_waiting_bytes(&self) -> u64 {
        self.worker.get().and_then(|w| w.waiting.state.lock().ok().map(|q| q.peak)).unwrap_or(0)
    }

    /// The writer's error, if a write or a sync has failed by now (the writer is then stopped,
    /// and the error is reported here once, not again by [`Self::finish`]); else `Ok` without
    /// waiting.
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
        let (sender, jobs) = channel::<Job>();
        let failed = Arc::new(AtomicBool::new(false));
        let waiting = Arc::new(Waiting::default());
        let (flag, drained) = (Arc::clone(&failed), Arc::clone(&waiting));
        let spawned = std::thread::Builder::new().name("hcs-writer".into()).spawn(move || {
            let _close = CloseOnDrop(Arc::clone(&drained));
            std::thread::scope(|scope| {
                let syncer = Syncer::start(scope, &flag);
                let mut batch = Batch::default();
                let mut first_error = None;
                for (path, bytes) in jobs {
                    let len = bytes.len() as u64;
                    // After a failure the rest are dropped unwritten: the well fails anyway.
                    // A failed sync stops the writing too (the syncer's error is the well's).
                    if first_error.is_none() && !flag.load(Ordering::Acquire) {
                        match write_atomic_uncached(&path, &bytes) {
                            Ok(()) => batch.add(path, len, syncer.as_ref()),
                            Err(e) => {
                                first_error = Some(e);
                                flag.store(true, Ordering::Release);
                            }
                        }
                    }
                    drop(bytes);
                    drained.release(len);
                }
                // The last batch is left to the record's sync, which syncs every file at once.
                let synced = syncer.map_or(Ok(()), Syncer::finish);
                first_error.map_or(synced, Err)
            })
        });
        match spawned {
            Ok(thread) => Self {
                started: true,
                queue: Mutex::new(Some(sender)),
                thread: Mutex::new(Some(thread)),
                failed,
                waiting,
            },
            Err(e) => {
                tracing::debug!("no writer thread ({e}): plane files are written by the step itself");
                Self { started: false, queue: Mutex::new(None), thread: Mutex::new(None), failed, waiting }
            }
        }
    }
}

/// Files written since the last hand-over to the [`Syncer`].
#[derive(Default)]
struct Batch {
    paths: Vec<PathBuf>,
    bytes: u64,
}

impl Batch {
    /// Add a written file; hand the batch over once it holds [`SYNC_BATCH_BYTES`].
    fn add(&mut self, path: PathBuf, len: u64, syncer: Option<&Syncer>) {
        let Some(syncer) = syncer else { return };
        self.paths.push(path);
        self.bytes += len;
        if self.bytes >= SYNC_BATCH_BYTES {
            self.bytes = 0;
            // A syncer that stopped has failed: its error comes out of its join.
            let _ = syncer.batches.send(std::mem::take(&mut self.paths));
        }
    }
}

/// Bytes written between two hand-overs to the [`Syncer`].
const SYNC_BATCH_BYTES: u64 = 16 << 20;

/// Makes the well's files durable while the well computes. The disk's flush, which an fsync
/// waits for, takes time in proportion to the bytes written since the last one (~1.2 ms per
/// MiB of direct writes on the test machine: 180 ms for 140 MiB): with every file left to the
/// record's sync, the standard plate's last well waited 137 ms for its first fsync with both
/// cores idle. Synced in batches as they are written, the record's sync finds at most the last
/// batch unflushed.
struct Syncer<'scope> {
    batches: Sender<Vec<PathBuf>>,
    thread: std::thread::ScopedJoinHandle<'scope, Result<(), VfsError>>,
}

impl<'scope> Syncer<'scope> {
    /// The syncing thread, or none where it cannot be started (the record's sync then does all
    /// the work, as it always does its share).
    fn start<'env>(scope: &'scope std::thread::Scope<'scope, 'env>, failed: &Arc<AtomicBool>) -> Option<Self> {
        let (batches, received) = channel::<Vec<PathBuf>>();
        let failed = Arc::clone(failed);
        let thread = std::thread::Builder::new()
            .name("hcs-syncer".into())
            .spawn_scoped(scope, move || {
                for path in received.into_iter().flatten() {
                    if let Err(e) = hcs_vfs::atomic::sync_file(&path) {
                        // An fsync's error is reported once: the well fails on it.
                        failed.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
                Ok(())
            })
            .inspect_err(|e| {
                tracing::debug!("no syncer thread ({e}): the well's files are all synced before its record")
            })
            .ok()?;
        Some(Self { batches, thread })
    }

    /// Wait for the batches handed over; the first error, if any.
    fn finish(self) -> Result<(), VfsError> {
        drop(self.batches);
        self.thread.join().unwrap_or_else(|_| {
            Err(VfsError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other("the well's syncer thread panicked"),
            })
        })
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
        let budget = 4 << 20;
        let writes = WriteBehind::with_budget(budget);
        // Small files, and files of 1 MiB and more (written past the page cache with direct writes on).
        let len = |i: usize| if i.is_multiple_of(2) { 1000 + i } else { (3 << 20) + i };
        // The first twelve (18 MiB) go to the syncer as one batch; the last is left to the
        // record's sync.
        let files = 13;
        for i in 0..files {
            writes.submit(dir.join(format!("{i}.bin")), vec![i as u8; len(i)]).expect("queued");
        }
        writes.finish().expect("all written");
        for i in 0..files {
            assert_eq!(std::fs::read(dir.join(format!("{i}.bin"))).expect("written"), vec![i as u8; len(i)]);
        }
        // Two 3 MiB files never waited together under a 4 MiB budget; one always may.
        let peak = writes.peak_waiting_bytes();
        assert!(peak <= budget && peak >= len(1) as u64, "peak {peak} against a budget of {budget}");
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
        // Files handed over after the failure never wait on a writer that drops them: each is
        // queued and dropped, or refused.
        for i in 0..4 {
            let _ = failing.submit(dir.join(format!("after-{i}.bin")), vec![1; 1 << 20]);
        }
        let err = failing.finish().expect_err("the write fails");
        assert!(err.to_string().contains("0.bin"), "names the path: {err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A batch goes to the syncer once it holds its bytes; a file that cannot be synced fails
    /// the writer (the flag is set, the error names the file).
    #[test]
    fn the_syncer_takes_full_batches_and_reports_a_failed_sync() {
        let dir = std::env::temp_dir().join(format!("hcs-syncer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("a.bin"), b"a").expect("written");
        let failed = Arc::new(AtomicBool::new(false));
        std::thread::scope(|scope| {
            let syncer = Syncer::start(scope, &failed).expect("a syncing thread");
            let mut batch = Batch::default();
            batch.add(dir.join("a.bin"), 1, Some(&syncer));
            assert_eq!(batch.paths.len(), 1, "under the batch's bytes: kept");
            batch.add(dir.join("missing.bin"), SYNC_BATCH_BYTES, Some(&syncer));
            assert!(batch.paths.is_empty(), "a full batch is handed over");
            let err = syncer.finish().expect_err("a missing file cannot be synced");
            assert!(err.to_string().contains("missing.bin"), "names the file: {err}");
        });
        assert!(failed.load(Ordering::Acquire), "the writer's failure flag is set");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    /// A submitter waiting for room goes on when the writer drains a file, and gives up (no
    /// hang) when the writer ends, however it ends.
    #[test]
    fn a_waiting_submitter_wakes_on_a_drained_file_and_on_a_closed_queue() {
        use std::sync::mpsc::channel;
        use std::time::Duration;
        for close in [false, true] {
            let waiting = Arc::new(Waiting::default());
            assert!(waiting.reserve(10, 10), "an empty queue takes a file");
            let (tx, rx) = channel();
            let other = Arc::clone(&waiting);
            let submitter = std::thread::spawn(move || tx.send(other.reserve(5, 10)));
            assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "no room: the submitter waits");
            if close {
                waiting.close()
            } else {
                waiting.release(10)
            }
            let got = rx.recv_timeout(Duration::from_secs(10)).expect("the submitter woke");
            assert_eq!(got, !close, "drained: queued; closed: refused");
            submitter.join().expect("joined").expect("sent");
        }
    }
}
