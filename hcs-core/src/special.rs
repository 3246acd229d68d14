//! Special inputs and outputs: values besides the image stack that flow between steps of a well
//! (tile positions, cell counts, masks), and the materializers that write them to storage.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{InvokeError, MaterializeError};

/// A value that can be a special output or input: owned, thread-safe, and serializable, so it can
/// be kept per well, handed to a later step, checkpointed for resume, and materialized.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot travel between steps as special data",
    label = "not storable as special data",
    note = "special outputs and inputs must be `Send + Sync + 'static` and implement `serde::Serialize + serde::de::DeserializeOwned`, so they can be stored per well, checkpointed and materialized"
)]
pub trait SpecialValue: Any + Send + Sync + Serialize + DeserializeOwned {}

impl<T: Any + Send + Sync + Serialize + DeserializeOwned> SpecialValue for T {}

/// A special value of any type, shared cheaply between the producer's output and its consumers.
#[derive(Clone)]
pub struct SpecialData {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

impl SpecialData {
    /// Wrap a value.
    pub fn new<T: SpecialValue>(value: T) -> Self {
        Self { value: Arc::new(value), type_name: std::any::type_name::<T>() }
    }

    /// Borrow the value as `T`, or `None` if it has another type.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.value.downcast_ref::<T>()
    }

    /// The Rust type name of the value.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// The `TypeId` of the value.
    pub fn type_id(&self) -> TypeId {
        (*self.value).type_id()
    }

    /// Borrow the value as `dyn Any`.
    pub fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &*self.value
    }
}

impl fmt::Debug for SpecialData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecialData").field("type", &self.type_name).finish_non_exhaustive()
    }
}

/// The special inputs handed to one function call, by key.
#[derive(Clone, Debug, Default)]
pub struct SpecialInputs {
    values: BTreeMap<String, SpecialData>,
}

impl SpecialInputs {
    /// No special inputs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys present, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Add (or replace) the value for `key`.
    pub fn insert(&mut self, key: impl Into<String>, value: SpecialData) {
        self.values.insert(key.into(), value);
    }

    /// Borrow the value for `key` as `T`, with an error naming the function, the key and the types.
    pub fn get<T: Any>(&self, function: &'static str, key: &'static str) -> Result<&T, InvokeError> {
        let data = self.values.get(key).ok_or(InvokeError::MissingSpecialInput { function, key })?;
        data.downcast_ref::<T>().ok_or_else(|| InvokeError::SpecialInputType {
            function,
            key,
            expected: std::any::type_name::<T>(),
            found: data.type_name(),
        })
    }
}

/// Where a materializer's bytes go. The executor routes them through its store; on its own a
/// [`MaterializeTarget`] writes files atomically with [`FileSink`].
pub trait ByteSink: Send + Sync {
    /// Replace the file at `path` with `bytes`, atomically (readers see the old file or the new
    /// one, never a part).
    fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// Plain files: a temporary beside the target, flushed, then renamed over it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileSink;

impl ByteSink for FileSink {
    fn put(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// Where a materializer writes: a results directory and a file stem (`<well>_<key>`).
#[derive(Clone)]
pub struct MaterializeTarget {
    dir: PathBuf,
    stem: String,
    sink: Arc<dyn ByteSink>,
}

impl std::fmt::Debug for MaterializeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterializeTarget").field("dir", &self.dir).field("stem", &self.stem).finish_non_exhaustive()
    }
}

impl MaterializeTarget {
    /// A target writing `<dir>/<stem><suffix>` files with [`FileSink`].
    pub fn new(dir: impl Into<PathBuf>, stem: impl Into<String>) -> Self {
        Self::with_sink(dir, stem, Arc::new(FileSink))
    }

    /// A target whose bytes go to `sink` (the executor's store).
    pub fn with_sink(dir: impl Into<PathBuf>, stem: impl Into<String>, sink: Arc<dyn ByteSink>) -> Self {
        Self { dir: dir.into(), stem: stem.into(), sink }
    }

    /// The results directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file stem, e.g. `A01_positions`.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// Atomically write `<dir>/<stem><suffix>` (e.g. suffix `.csv`) and return its path.
    pub fn write(&self, suffix: &str, bytes: &[u8]) -> Result<PathBuf, MaterializeError> {
        let path = self.dir.join(format!("{}{suffix}", self.stem));
        self.sink.put(&path, bytes).map_err(|source| MaterializeError::Io { path: path.clone(), source })?;
        Ok(path)
    }
}

/// What a materializer returns: the paths it wrote.
pub type MaterializeResult = Result<Vec<PathBuf>, MaterializeError>;

/// Implemented by functions usable as materializers of a special output of type `T`:
/// `fn(&T, &MaterializeTarget) -> Result<Vec<PathBuf>, MaterializeError>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a materializer for special output type `{T}`",
    label = "wrong materializer signature",
    note = "a materializer is `fn(&{T}, &hcs::MaterializeTarget) -> Result<Vec<std::path::PathBuf>, hcs::MaterializeError>`"
)]
pub trait MaterializerFn<T> {
    /// Run the materializer.
    fn materialize(&self, value: &T, target: &MaterializeTarget) -> MaterializeResult;
}

impl<T, F> MaterializerFn<T> for F
where
    F: Fn(&T, &MaterializeTarget) -> MaterializeResult,
{
    fn materialize(&self, value: &T, target: &MaterializeTarget) -> MaterializeResult {
        self(value, target)
    }
}

/// A materializer with its value type erased, as stored in a contract.
pub type ErasedMaterializer = fn(&SpecialData, &MaterializeTarget) -> MaterializeResult;

/// A special-data key as a typed item. `#[special_outputs(..)]` and `#[special_inputs(..)]`
/// generate one per key in the function's handle module (`count_cells::outputs::cell_counts`), so
/// Rust code names keys with rustc checking the spelling and the value type; pipeline files keep
/// using [`SpecialKey::NAME`].
pub trait SpecialKey {
    /// The key as pipeline files and plans spell it.
    const NAME: &'static str;
    /// The type of the value stored under the key.
    type Value;
}

/// Special value types measured in the pixels of the images they were made from (tile
/// positions, say): the compiler refuses to hand such a value to a step whose images have
/// another pixel size (a binning in between), where it would land at the wrong places. Counts,
/// statistics and other values are handed on whatever the images' size. A crate adds its type
/// with [`pixel_valued!`](crate::pixel_valued).
#[linkme::distributed_slice]
pub static PIXEL_VALUED: [fn() -> TypeId];

/// Whether values of the type `t` are measured in pixels ([`PIXEL_VALUED`]).
pub fn is_pixel_valued(t: TypeId) -> bool {
    PIXEL_VALUED.iter().any(|of| of() == t)
}

/// Register a special value type as measured in pixels ([`PIXEL_VALUED`]), beside the type:
///
/// ```
/// /// Offsets between tiles, in pixels.
/// pub struct Offsets(pub Vec<(f64, f64)>);
/// hcs_core::pixel_valued!(Offsets);
///
/// use std::any::TypeId;
/// assert!(hcs_core::special::is_pixel_valued(TypeId::of::<Offsets>()));
/// assert!(!hcs_core::special::is_pixel_valued(TypeId::of::<f64>()));
/// ```
#[macro_export]
macro_rules! pixel_valued {
    ($ty:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::special::PIXEL_VALUED)]
            #[linkme(crate = $crate::__private::linkme)]
            static PIXEL_VALUED_TYPE: fn() -> $crate::__private::TypeId = || $crate::__private::TypeId::of::<$ty>();
        };
    };
}

/// A special input a function declares.
#[derive(Clone, Copy, Debug)]
pub struct SpecialInputSpec {
    /// The key (also the parameter name).
    pub key: &'static str,
    /// The value type as written in the signature.
    pub rust_type: &'static str,
    /// The value's `TypeId`, to match producers and consumers.
    pub type_id: fn() -> TypeId,
}

/// A special output a function declares, in declaration order.
#[derive(Clone, Copy, Debug)]
pub struct SpecialOutputSpec {
    /// The key.
    pub key: &'static str,
    /// The value type as written in the signature.
    pub rust_type: &'static str,
    /// The value's `TypeId`, to match producers and consumers.
    pub type_id: fn() -> TypeId,
    /// The materializer, if declared: its name and its erased form.
    pub materializer: Option<MaterializerSpec>,
}

/// A materializer attached to a special output.
#[derive(Clone, Copy, Debug)]
pub struct MaterializerSpec {
    /// The path of the materializer as written in the attribute.
    pub name: &'static str,
    /// The materializer with its value type erased.
    pub run: ErasedMaterializer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_inputs_report_missing_keys_and_wrong_types() {
        let mut inputs = SpecialInputs::new();
        inputs.insert("positions", SpecialData::new(vec![(1.0f64, 2.0f64)]));
        let got: &Vec<(f64, f64)> = inputs.get("assemble", "positions").expect("present");
        assert_eq!(got, &vec![(1.0, 2.0)]);

        let missing = inputs.get::<u32>("assemble", "grid").expect_err("absent");
        assert_eq!(missing.to_string(), "function `assemble` needs special input `grid`, but none was provided");

        let wrong = inputs.get::<u32>("assemble", "positions").expect_err("wrong type");
        assert!(wrong.to_string().contains("alloc::vec::Vec<(f64, f64)>"), "{wrong}");
    }

    #[test]
    fn materialize_target_writes_stem_plus_suffix() {
        let dir = std::env::temp_dir().join(format!("hcs-mat-{}", std::process::id()));
        let target = MaterializeTarget::new(&dir, "A01_positions");
        let path = target.write(".csv", b"x,y\n").expect("write");
        assert_eq!(path, dir.join("A01_positions.csv"));
        assert_eq!(std::fs::read(&path).expect("read back"), b"x,y\n");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
