//! Diagnostics on stderr: one `tracing` subscriber for every command, terminal or not.
//!
//! The level comes from `HCS_LOG` (or `RUST_LOG`), an `EnvFilter` directive such as `debug` or
//! `hcs_exec=debug,warn`; without one, from `-q` (errors only) or `-v` / `-vv` (info / debug);
//! by default warnings on a terminal (progress bars show the rest) and info lines otherwise.
//! Log lines are written around the progress bar, never through it.
//!
//! A run also keeps a log in its output ([`log_to`], `results/hcs.log`, appended run after run):
//! every event at info level or above (or at the `HCS_LOG` / `RUST_LOG` filter), whatever `-q`
//! or `-v` chose for the terminal, each line with its time.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The progress bar log lines must not tear, while one is drawn.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// The run's log file in its output, once [`log_to`] opened it.
static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Whether `-q` asked for errors only ([`init`]).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Print `kind: message` on stderr — a `warning` or a `note` printed outside the log (a plate's
/// stray files, the compiler's notes) — unless `-q` asked for errors only.
pub fn say(kind: &str, message: impl std::fmt::Display) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{kind}: {message}");
    }
}

/// The log file's name in the output's `results/`.
pub const LOG_FILE: &str = "hcs.log";

/// The filter for `verbosity` (−1 for `-q`, the count of `-v` otherwise) when no environment
/// variable sets one.
fn default_directive(verbosity: i8, terminal: bool) -> &'static str {
    match verbosity {
        i8::MIN..=-1 => "error",
        0 if terminal => "warn",
        0 | 1 => "info",
        _ => "debug",
    }
}

/// Install the subscriber (once; later calls do nothing).
pub fn init(verbosity: i8) {
    QUIET.store(verbosity < 0, Ordering::Relaxed);
    let default = default_directive(verbosity, std::io::stderr().is_terminal());
    let from_env = ["HCS_LOG", "RUST_LOG"]
        .iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()).map(|v| (*key, v)));
    let (filter, file_filter) = match &from_env {
        Some((key, value)) => match EnvFilter::try_new(value) {
            Ok(f) => (f, EnvFilter::new(value)),
            Err(e) => {
                say("warning", format_args!("{key}={value} is not a log filter ({e}); logging at `{default}`"));
                (EnvFilter::new(default), EnvFilter::new("info"))
            }
        },
        None => (EnvFilter::new(default), EnvFilter::new("info")),
    };
    let terminal = tracing_subscriber::fmt::layer().with_writer(AroundBar).with_ansi(false).with_filter(filter);
    let file = tracing_subscriber::fmt::layer().with_writer(ToFile).with_ansi(false).with_filter(file_filter);
    let _ = tracing_subscriber::registry().with(terminal).with(file).try_init();
}

/// From now on, also append the log to `path` (its folder is created), starting with a line
/// naming the command. A file that cannot be opened is a warning, not a failure.
pub fn log_to(path: &std::path::Path) {
    let opened = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(path));
    match opened {
        Ok(file) => {
            if let Ok(mut slot) = FILE.lock() {
                *slot = Some(file);
            }
            tracing::info!(version = env!("CARGO_PKG_VERSION"), command = %super::run::command_line(), "hcs started");
        }
        Err(e) => tracing::warn!("cannot write the run's log to {}: {e}", path.display()),
    }
}

/// Draw log lines around `bar` from now on.
pub fn attach(bar: &indicatif::ProgressBar) {
    if let Ok(mut slot) = BAR.lock() {
        *slot = Some(bar.clone());
    }
}

/// Where one log event goes.
#[derive(Clone, Copy)]
enum Target {
    /// stderr, around the progress bar.
    Stderr,
    /// The run's log file, if one is open.
    File,
}

/// Makes the writer of one log event for the run's log file.
struct ToFile;
/// Makes the writer of one log event for stderr.
struct AroundBar;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ToFile {
    type Writer = EventLines;

    fn make_writer(&'a self) -> EventLines {
        EventLines(Vec::new(), Target::File)
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AroundBar {
    type Writer = EventLines;

    fn make_writer(&'a self) -> EventLines {
        EventLines(Vec::new(), Target::Stderr)
    }
}

/// One event's text, written in one piece when complete: to stderr with the bar hidden, or
/// appended to the log file (nothing while none is open).
struct EventLines(Vec<u8>, Target);

impl Write for EventLines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventLines {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        if let Target::File = self.1 {
            if let Ok(mut slot) = FILE.lock()
                && let Some(file) = slot.as_mut()
            {
                let _ = file.write_all(&bytes);
            }
            return;
        }
        let write = || {
            let _ = std::io::stderr().lock().write_all(&bytes);
        };
        match BAR.lock().ok().and_then(|slot| slot.clone()) {
            Some(bar) if !bar.is_finished() => bar.suspend(write),
            _ => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_verbose_flags_pick_the_level() {
        assert_eq!(default_directive(-1, true), "error");
        assert_eq!(default_directive(0, true), "warn");
        assert_eq!(default_directive(0, false), "info");
        assert_eq!(default_directive(1, true), "info");
        assert_eq!(default_directive(2, false), "debug");
    }
}
