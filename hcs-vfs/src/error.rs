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
    /// A symbolic link whose target does not exist (a plate copied without what its links
    /// point to).
    #[error("{path}: a symbolic link to {target}, which does not exist")]
    DanglingLink {
        /// The link.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A path that would escape its root or is otherwise not acceptable.
    #[error("{path}: {reason}")]
    BadPath {
        /// The path.
        path: PathBuf,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// Nothing stored at this path.
    #[error("{path}: not found in the {backend} backend")]
    NotFound {
        /// The path.
        path: PathBuf,
        /// The backend asked.
        backend: &'static str,
    },
    /// The file does not start with a TIFF signature.
    #[error("{path}: not a TIFF file (no TIFF signature)")]
    NotTiff {
        /// The path.
        path: PathBuf,
    },
    /// The file ends before the data its header describes.
    #[error("{path}: truncated TIFF (the file ends before the image data its header describes)")]
    TruncatedTiff {
        /// The path.
        path: PathBuf,
    },
    /// The file is empty (0 bytes).
    #[error("{path}: empty file (0 bytes)")]
    EmptyFile {
        /// The path.
        path: PathBuf,
    },
    /// The header is intact but the file ends before the last strip or tile it describes.
    #[error(
        "{path}: truncated TIFF: the file is {file_len} bytes, but its header places image data up to byte {data_end}"
    )]
    TruncatedData {
        /// The path.
        path: PathBuf,
        /// The file's length in bytes.
        file_len: u64,
        /// Where the header says the image data ends (largest strip/tile offset + byte count).
        data_end: u64,
    },
    /// The TIFF structure is invalid.
    #[error("{path}: corrupt TIFF: {message}")]
    CorruptTiff {
        /// The path.
        path: PathBuf,
        /// What the decoder found.
        message: String,
    },
    /// A valid TIFF of a kind hcs does not read.
    #[error("{path}: unsupported TIFF: {what}")]
    UnsupportedTiff {
        /// The path.
        path: PathBuf,
        /// What is unsupported.
        what: String,
    },
    /// The header claims an image larger than the configured limit.
    #[error("{path}: the header claims a {width}×{height} image, above the limit of {max_pixels} pixels")]
    ImageTooLarge {
        /// The path.
        path: PathBuf,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
        /// The limit.
        max_pixels: u64,
    },
    /// A Zarr store or its OME metadata is invalid or cannot be written.
    #[error("{path}: zarr: {message}")]
    Zarr {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An OME-Zarr array whose sample type hcs does not read.
    #[error("{path}: unsupported data type {dtype} (hcs reads uint8, uint16 and float32)")]
    UnsupportedDtype {
        /// The array.
        path: PathBuf,
        /// The data type the array declares.
        dtype: String,
    },
    /// An OME-Zarr image whose axes hcs does not read.
    #[error("{path}: unsupported axes [{axes}]: {reason}")]
    UnsupportedAxes {
        /// The image group.
        path: PathBuf,
        /// The axis names, comma-separated.
        axes: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The stored data has another kind than requested (e.g. bytes where a plane was expected).
    #[error("{path}: holds {found}, expected {expected}")]
    WrongKind {
        /// The path.
        path: PathBuf,
        /// What was requested.
        expected: &'static str,
        /// What is stored.
        found: &'static str,
    },
}

impl VfsError {
    /// An I/O error on `path`; a file not found that is a link to nowhere says so.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound
            && let Ok(target) = std::fs::read_link(&path)
        {
            return VfsError::DanglingLink { path, target };
        }
        VfsError::Io { path, source }
    }
}
