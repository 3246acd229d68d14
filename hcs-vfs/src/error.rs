use std::path::PathBuf;

/// A storage failure, always naming the path involved.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A path that would escape its root or is otherwise not acceptable.
    #[error("{path}: {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why it is rejected.
        reason: &'static str,
    },
}

impl VfsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VfsError::Io {
            path: path.into(),
            source,
        }
    }
}
