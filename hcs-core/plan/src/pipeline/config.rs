//! Layered configuration: built-in defaults → global (a user's config file) → plate/run (the
//! pipeline file's `[config]`) → step (a step's `config`). Each layer sets only what it names;
//! [`Config::resolve`] merges them in that order, and the compiled plan shows the result.
//!
//! ```toml
//! [config]                       # the run layer
//! backend = "zarr"
//! zarr_level = 5
//! workers = 8
//!
//! [[steps]]
//! name = "positions"
//! func = "ashlar_compute_tile_positions"
//! config = { gpu_policy = "never" }     # a step layer
//! ```

use std::fmt;
use std::path::{Component as PathPart, Path, PathBuf};

use hcs_core::MemoryType;
use hcs_vfs::Backend;
use serde::{Deserialize, Serialize};

/// Zarr chunk compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZarrCompression {
    /// zstd at `zarr_level`.
    #[default]
    Zstd,
    /// Uncompressed.
    None,
}

/// What a run does when a well's stitching falls back to the nominal grid for some tiles (no
/// accepted edge reached them): the report and a warning say so either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FallbackPolicy {
    /// Warn, naming the wells; the exit status is unchanged.
    #[default]
    Warn,
    /// Warn, and end the run with the wells-failed exit status.
    Fail,
}

/// What to do with functions that have a GPU variant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuPolicy {
    /// Use a GPU when one is available, else the CPU variant; fail only if neither exists.
    #[default]
    Prefer,
    /// GPU steps must get a GPU: compiling without one fails.
    Require,
    /// Always the CPU variant; fail for functions that have none.
    Never,
}

impl GpuPolicy {
    /// The name used in configuration files.
    pub const fn name(self) -> &'static str {
        match self {
            GpuPolicy::Prefer => "prefer",
            GpuPolicy::Require => "require",
            GpuPolicy::Never => "never",
        }
    }
}

/// Worker threads: a number, or `"auto"` (every core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Workers {
    /// One per core.
    #[default]
    Auto,
    /// Exactly this many (≥ 1).
    Count(usize),
}

impl Serialize for Workers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Workers::Auto => s.serialize_str("auto"),
            Workers::Count(n) => s.serialize_u64(*n as u64),
        }
    }
}

impl Workers {
    /// The most worker threads a run may ask for: beyond this many, threads only contend (and a
    /// typo such as `100000000` would start thousands of them and never finish).
    pub const MAX: usize = 1024;
}

impl<'de> Deserialize<'de> for Workers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Name(s) if s == "auto" => Ok(Workers::Auto),
            Raw::Count(n) if n >= 1 => Ok(Workers::Count(n as usize)),
            _ => Err(serde::de::Error::custom("workers is \"auto\" or an integer ≥ 1")),
        }
    }
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workers::Auto => f.write_str("auto"),
            Workers::Count(n) => write!(f, "{n}"),
        }
    }
}

/// One configuration layer: every field optional, unknown keys rejected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// The output plate folder itself (overrides `output_folder` and `output_suffix`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_root: Option<PathBuf>,
    /// Folder that receives `<plate name><output_suffix>` (default: the plate's parent folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_folder: Option<PathBuf>,
    /// Appended to the plate name to name the output plate (default `_outputs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_suffix: Option<String>,
    /// Image folder inside the output plate (default `images`); for a step, its checkpoint folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_dir: Option<String>,
    /// Storage of persistent outputs (final images, checkpoints): `disk` (TIFF) or `zarr`
    /// (OME-Zarr); `memory` keeps nothing and is refused.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "layer_backend")]
    pub backend: Option<Backend>,
    /// Zarr compression: `zstd` or `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zarr_codec: Option<ZarrCompression>,
    /// zstd level, 1–22 (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zarr_level: Option<i32>,
    /// Worker threads (`"auto"` or ≥ 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Workers>,
    /// `prefer`, `require` or `never`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_policy: Option<GpuPolicy>,
    /// Which variant of a function runs, most wanted first, among those registered and allowed
    /// by `gpu_policy` (default `["cuda", "torch", "ndarray"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Vec<MemoryType>>,
    /// Wells a GPU runs at once (default 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_slots: Option<usize>,
    /// Folder of special outputs (counts, positions) inside the output plate (default `results`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_folder: Option<String>,
    /// Intermediates of one well above this many MiB go to scratch files instead of memory
    /// (default 4096).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_budget_mib: Option<u64>,
    /// Publish the step's output while the run goes on: a preview OME-Zarr store (napari with
    /// napari-ome-zarr opens it) and a PNG thumbnail per well (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visualize: Option<bool>,
    /// `warn` (default) or `fail`: whether a well whose stitching fell back to the nominal grid
    /// fails the run's exit status. The step that computed the positions (whose edge table
    /// showed the fallback) and the steps that read its special outputs decide
    /// ([`crate::compiler::CompiledPlate::fails_on_stitch_fallback_at`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_stitch_fallback: Option<FallbackPolicy>,
    /// Whether a step whose call repeats the first call of an earlier step's chain on the same
    /// planes (same function and parameters, same grouping) takes that call's result, kept in
    /// memory, instead of reading and computing it again (default true; the compiler says in a
    /// note when it does, and when the memory budget keeps it from doing so). Set on the step
    /// that repeats the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse_results: Option<bool>,
}

/// Every configuration value, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// See [`ConfigLayer::output_root`].
    pub output_root: Option<PathBuf>,
    /// `None`: beside the input plate.
    pub output_folder: Option<PathBuf>,
    /// See [`ConfigLayer::output_suffix`].
    pub output_suffix: String,
    /// See [`ConfigLayer::sub_dir`].
    pub sub_dir: String,
    /// See [`ConfigLayer::backend`].
    pub backend: Backend,
    /// See [`ConfigLayer::zarr_codec`].
    pub zarr_codec: ZarrCompression,
    /// See [`ConfigLayer::zarr_level`].
    pub zarr_level: i32,
    /// See [`ConfigLayer::workers`].
    pub workers: Workers,
    /// See [`ConfigLayer::gpu_policy`].
    pub gpu_policy: GpuPolicy,
    /// See [`ConfigLayer::prefer`].
    #[serde(default = "default_prefer")]
    pub prefer: Vec<MemoryType>,
    /// See [`ConfigLayer::gpu_slots`].
    pub gpu_slots: usize,
    /// See [`ConfigLayer::results_folder`].
    pub results_folder: String,
    /// See [`ConfigLayer::memory_budget_mib`].
    pub memory_budget_mib: u64,
    /// See [`ConfigLayer::visualize`].
    pub visualize: bool,
    /// See [`ConfigLayer::on_stitch_fallback`].
    #[serde(default)]
    pub on_stitch_fallback: FallbackPolicy,
    /// See [`ConfigLayer::reuse_results`].
    #[serde(default = "reuse_by_default")]
    pub reuse_results: bool,
}

fn reuse_by_default() -> bool {
    true
}

fn default_prefer() -> Vec<MemoryType> {
    vec![MemoryType::Cuda, MemoryType::Torch, MemoryType::Ndarray]
}

impl Default for Config {
    fn default() -> Self {
        Self {
            output_root: None,
            output_folder: None,
            output_suffix: "_outputs".into(),
            sub_dir: "images".into(),
            backend: Backend::Disk,
            zarr_codec: ZarrCompression::Zstd,
            zarr_level: 3,
            workers: Workers::Auto,
            gpu_policy: GpuPolicy::Prefer,
            prefer: default_prefer(),
            gpu_slots: 2,
            results_folder: "results".into(),
            memory_budget_mib: 4096,
            visualize: false,
            on_stitch_fallback: FallbackPolicy::Warn,
            reuse_results: true,
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct ConfigError {
    /// The key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Why a configuration layer could not be read ([`ConfigLayer::from_toml`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigReadError {
    /// Not shaped like a layer: an unknown key, a value of the wrong type (the parser's message).
    #[error("{message}")]
    Shape {
        /// The key refused, where one key alone is.
        key: Option<String>,
        /// The parser's message, naming the key.
        message: String,
    },
    /// A value that can never be used here (`backend = "memory"`).
    #[error(transparent)]
    Value(#[from] ConfigError),
}

impl ConfigReadError {
    /// The key refused, where one key is to blame.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigReadError::Shape { key, .. } => key.as_deref(),
            ConfigReadError::Value(e) => Some(e.key),
        }
    }
}

/// A layer's `backend` by name. `memory` is read so that [`ConfigLayer::from_toml`] can say why
/// it is refused; any other unknown name is reported as one of the two persistent backends.
fn layer_backend<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Backend>, D::Error> {
    let name = String::deserialize(d)?;
    match name.as_str() {
        "disk" => Ok(Some(Backend::Disk)),
        "zarr" => Ok(Some(Backend::Zarr)),
        "memory" => Ok(Some(Backend::Memory)),
        other => Err(serde::de::Error::unknown_variant(other, &["disk", "zarr"])),
    }
}

/// Persistent outputs need a backend that keeps them: `disk` or `zarr`.
fn output_backend(backend: Option<Backend>) -> Result<(), ConfigError> {
    match backend {
        Some(Backend::Memory) => Err(ConfigError {
            key: "backend",
            message: "`memory` keeps nothing after the run; persistent outputs are written to `disk` or `zarr`".into(),
        }),
        None | Some(Backend::Disk | Backend::Zarr) => Ok(()),
    }
}

/// A folder name inside the output plate: relative, no `..`, not empty.
fn inner_folder(key: &'static str, value: &str) -> Result<(), ConfigError> {
    let bad = |message: &str| Err(ConfigError { key, message: format!("`{value}` {message}") });
    let path = Path::new(value);
    if value.trim().is_empty() {
        return bad("is empty");
    }
    if path.components().any(|c| !matches!(c, PathPart::Normal(_))) {
        return bad("must be a relative folder inside the output plate, without `..`, `.` or a leading `/`");
    }
    if value.chars().any(char::is_control) {
        return bad("holds a control character (a NUL, a line break…), which a folder name cannot have");
    }
    let first = path.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    if first.as_deref() == Some(HCS_FOLDER) {
        return bad("is inside `.hcs`, hcs's own folder of the output (its lock and the wells' completion records)");
    }
    if let Some(file) = METADATA_FILES.iter().find(|f| first.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(f))) {
        return bad(&format!(
            "puts a folder where hcs writes the plate metadata file `{file}`, at the top of the output"
        ));
    }
    Ok(())
}

/// hcs's own folder in an output plate (`hcs_exec`'s lock and completion records).
const HCS_FOLDER: &str = ".hcs";

/// The metadata files hcs writes at the top of an output plate: a folder of that name would
/// make the file unwritable after the wells were computed.
const METADATA_FILES: [&str; 2] =
    [hcs_plate::formats::native::METADATA_FILE, hcs_plate::formats::openhcs::METADATA_FILE];

impl ConfigLayer {
    /// Check the values this layer sets (path tricks, ranges).
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors: Vec<ConfigError> = output_backend(self.backend).err().into_iter().collect();
        if let Some(s) = &self.sub_dir {
            errors.extend(inner_folder("sub_dir", s).err());
        }
        if let Some(s) = &self.results_folder {
            errors.extend(inner_folder("results_folder", s).err());
        }
        if let Some(folder) = &self.output_folder
            && folder.components().any(|c| matches!(c, PathPart::ParentDir))
        {
            errors.push(ConfigError {
                key: "output_folder",
                message: format!(
                    "`{}` may not climb with `..`: give an absolute folder, or one relative to the plate's folder",
                    folder.display()
                ),
            });
        }
        if let Some(s) = &self.output_suffix
            && (s.contains('/') || s.contains('\\') || s.contains(".."))
        {
            errors.push(ConfigError {
                key: "output_suffix",
                message: format!("`{s}` must be a plain name suffix (no `/`, `\\` or `..`)"),
            });
        }
        if let Some(l) = self.zarr_level
            && !(1..=22).contains(&l)
        {
            errors.push(ConfigError { key: "zarr_level", message: format!("{l} is outside 1–22") });
        }
        if let Some(Workers::Count(n)) = self.workers
            && !(1..=Workers::MAX).contains(&n)
        {
            errors.push(ConfigError {
                key: "workers",
                message: format!("{n} is outside 1–{}: use \"auto\" for one per core", Workers::MAX),
            });
        }
        if let Some(prefer) = &self.prefer {
            let mut seen = Vec::new();
            for m in prefer {
                if seen.contains(m) {
                    errors.push(ConfigError { key: "prefer", message: format!("`{m}` is listed twice") });
                }
                seen.push(*m);
            }
            if prefer.is_empty() {
                errors.push(ConfigError {
                    key: "prefer",
                    message: "is empty: list memory types, most wanted first, e.g. [\"cuda\", \"torch\", \"ndarray\"]"
                        .into(),
                });
            }
        }
        if self.gpu_slots == Some(0) {
            errors.push(ConfigError { key: "gpu_slots", message: "must be ≥ 1".into() });
        }
        if self.memory_budget_mib == Some(0) {
            errors.push(ConfigError { key: "memory_budget_mib", message: "must be ≥ 1".into() });
        }
        errors
    }

    /// Read a layer from a TOML table (`[config]`, a step's `config`, or a global config file).
    /// Shape errors and a `memory` backend are refused here; [`ConfigLayer::validate`] checks
    /// the rest. The first problem only: [`ConfigLayer::from_toml_all`] gives every one.
    pub fn from_toml(value: toml::Value) -> Result<ConfigLayer, ConfigReadError> {
        Self::from_toml_all(value).map_err(|mut errors| errors.swap_remove(0))
    }

    /// [`ConfigLayer::from_toml`] with every problem (at least one on `Err`), one per key: an
    /// unknown key, a value of the wrong type, a `memory` backend.
    pub fn from_toml_all(value: toml::Value) -> Result<ConfigLayer, Vec<ConfigReadError>> {
        let layer: ConfigLayer = match value.clone().try_into() {
            Ok(layer) => layer,
            Err(e) => {
                let e: toml::de::Error = e;
                return Err(shape_errors(&value, e.message()));
            }
        };
        output_backend(layer.backend).map_err(|e| vec![ConfigReadError::Value(e)])?;
        Ok(layer)
    }
    /// Whether the layer sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == ConfigLayer::default()
    }
}

/// Every key of `value` that is refused when read on its own, with toml's message naming the
/// key where it does not already ("invalid value: integer `-1`, expected u64"); toml's
/// `message` for the whole table when no key alone is refused (or it is not a table).
fn shape_errors(value: &toml::Value, message: &str) -> Vec<ConfigReadError> {
    let whole = || vec![ConfigReadError::Shape { key: None, message: message.to_string() }];
    let Some(table) = value.as_table() else { return whole() };
    let errors: Vec<ConfigReadError> = table
        .iter()
        .filter_map(|(key, v)| {
            let mut one = toml::Table::new();
            one.insert(key.clone(), v.clone());
            let e = toml::Value::Table(one).try_into::<ConfigLayer>().err()?;
            let message = e.message();
            let message =
                if message.contains(key.as_str()) { message.to_string() } else { format!("`{key}`: {message}") };
            Some(ConfigReadError::Shape { key: Some(key.clone()), message })
        })
        .collect();
    if errors.is_empty() {
        return whole();
    }
    // The keys that are read alone are checked as a layer would be, so that one refused key does
    // not hide a value out of range beside it (every problem at once, as `hcs check` promises).
    let readable: toml::Table = table
        .iter()
        .filter(|(key, v)| {
            let mut one = toml::Table::new();
            one.insert((*key).clone(), (*v).clone());
            toml::Value::Table(one).try_into::<ConfigLayer>().is_ok()
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let rest = toml::Value::Table(readable).try_into::<ConfigLayer>().map(|l| l.validate()).unwrap_or_default();
    errors.into_iter().chain(rest.into_iter().map(ConfigReadError::Value)).collect()
}

impl Config {
    /// Apply one layer on top of this configuration.
    pub fn apply(&mut self, layer: &ConfigLayer) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        if layer.output_root.is_some() {
            self.output_root.clone_from(&layer.output_root);
        }
        if layer.output_folder.is_some() {
            self.output_folder.clone_from(&layer.output_folder);
        }
        set(&mut self.output_suffix, &layer.output_suffix);
        set(&mut self.sub_dir, &layer.sub_dir);
        set(&mut self.backend, &layer.backend);
        set(&mut self.zarr_codec, &layer.zarr_codec);
        set(&mut self.zarr_level, &layer.zarr_level);
        set(&mut self.workers, &layer.workers);
        set(&mut self.gpu_policy, &layer.gpu_policy);
        set(&mut self.prefer, &layer.prefer);
        set(&mut self.gpu_slots, &layer.gpu_slots);
        set(&mut self.results_folder, &layer.results_folder);
        set(&mut self.memory_budget_mib, &layer.memory_budget_mib);
        set(&mut self.visualize, &layer.visualize);
        set(&mut self.on_stitch_fallback, &layer.on_stitch_fallback);
        set(&mut self.reuse_results, &layer.reuse_results);
    }

    /// Defaults, then each layer in order (global, run, step).
    pub fn resolve<'a>(layers: impl IntoIterator<Item = &'a ConfigLayer>) -> Config {
        let mut config = Config::default();
        for layer in layers {
            config.apply(layer);
        }
        config
    }

    /// The output plate folder for a plate at `plate_root`: `--out` as given; else
    /// `<output_folder>/<plate name><output_suffix>`, where a relative `output_folder` (from a
    /// pipeline or config file) is taken relative to the plate's folder — never to the working
    /// directory of whoever runs the pipeline — and `..` is refused by [`ConfigLayer::validate`].
    pub fn output_root(&self, plate_root: &Path) -> PathBuf {
        if let Some(root) = &self.output_root {
            return root.clone();
        }
        let name = plate_root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "plate".into());
        let beside_plate = plate_root.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = match &self.output_folder {
            Some(folder) if folder.is_absolute() => folder.clone(),
            Some(folder) => beside_plate.join(folder),
            None => beside_plate,
        };
        base.join(format!("{name}{}", self.output_suffix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_override_earlier_ones_field_by_field() {
        let global = ConfigLayer { zarr_level: Some(9), workers: Some(Workers::Count(4)), ..Default::default() };
        let run = ConfigLayer { backend: Some(Backend::Zarr), zarr_level: Some(5), ..Default::default() };
        let step = ConfigLayer { gpu_policy: Some(GpuPolicy::Never), ..Default::default() };
        let c = Config::resolve([&global, &run, &step]);
        assert_eq!(c.zarr_level, 5);
        assert_eq!(c.workers, Workers::Count(4));
        assert_eq!(c.backend, Backend::Zarr);
        assert_eq!(c.gpu_policy, GpuPolicy::Never);
        assert_eq!(c.sub_dir, "images");
    }

    #[test]
    fn layers_read_from_toml_and_reject_unknown_keys() {
        let v: toml::Value = toml::from_str("backend = \"zarr\"\nworkers = \"auto\"\nzarr_level = 7").expect("toml");
        let layer = ConfigLayer::from_toml(v).expect("layer");
        assert_eq!(layer.backend, Some(Backend::Zarr));
        assert_eq!(layer.workers, Some(Workers::Auto));
        let v: toml::Value = toml::from_str("bakend = \"zarr\"").expect("toml");
        let err = ConfigLayer::from_toml(v).expect_err("unknown key").to_string();
        assert!(err.contains("unknown field `bakend`"), "{err}");
        let v: toml::Value = toml::from_str("workers = 0").expect("toml");
        assert!(ConfigLayer::from_toml(v).expect_err("0 workers").to_string().contains("integer ≥ 1"));
    }

    #[test]
    fn memory_is_no_backend_for_persistent_outputs() {
        let v: toml::Value = toml::from_str("backend = \"memory\"").expect("toml");
        let err = ConfigLayer::from_toml(v).expect_err("memory keeps nothing");
        assert!(matches!(&err, ConfigReadError::Value(ConfigError { key: "backend", .. })), "{err:?}");
        assert_eq!(
            err.to_string(),
            "`backend`: `memory` keeps nothing after the run; persistent outputs are written to `disk` or `zarr`"
        );
        let v: toml::Value = toml::from_str("backend = \"tiff\"").expect("toml");
        let err = ConfigLayer::from_toml(v).expect_err("no such backend");
        assert_eq!(
            err,
            ConfigReadError::Shape {
                key: Some("backend".into()),
                message: "`backend`: unknown variant `tiff`, expected `disk` or `zarr`".into()
            }
        );
        let v: toml::Value = toml::from_str("backend = \"disk\"").expect("toml");
        assert_eq!(ConfigLayer::from_toml(v).expect("disk").backend, Some(Backend::Disk));
        // A layer built in Rust (a command-line flag) is refused by `validate`.
        let layer = ConfigLayer { backend: Some(Backend::Memory), ..Default::default() };
        let keys: Vec<&str> = layer.validate().iter().map(|e| e.key).collect();
        assert_eq!(keys, ["backend"]);
    }

    #[test]
    fn path_tricks_and_out_of_range_values_are_refused() {
        let layer = ConfigLayer {
            sub_dir: Some("../../etc".into()),
            results_folder: Some("/tmp/x".into()),
            output_suffix: Some("/x".into()),
            zarr_level: Some(30),
            ..Default::default()
        };
        let keys: Vec<&str> = layer.validate().iter().map(|e| e.key).collect();
        assert_eq!(keys, ["sub_dir", "results_folder", "output_suffix", "zarr_level"]);
        assert!(layer.validate()[0].to_string().contains("without `..`"));
        // hcs's own folder of the output is no place for images or results.
        let layer = ConfigLayer {
            sub_dir: Some(".hcs".into()),
            results_folder: Some(".hcs/wells".into()),
            ..Default::default()
        };
        let errors = layer.validate();
        assert_eq!(errors.iter().map(|e| e.key).collect::<Vec<_>>(), ["sub_dir", "results_folder"]);
        assert!(errors.iter().all(|e| e.to_string().contains("hcs's own folder")), "{errors:?}");
        let fine = ConfigLayer { sub_dir: Some("hcs/images".into()), ..Default::default() };
        assert!(fine.validate().is_empty());
        // A folder named like the metadata files hcs writes at the top of the output, or with
        // a control character, would fail only when the run ends.
        let layer = ConfigLayer {
            sub_dir: Some("hcs_plate.json".into()),
            results_folder: Some("OpenHCS_metadata.json/x".into()),
            ..Default::default()
        };
        let errors = layer.validate();
        assert_eq!(errors.iter().map(|e| e.key).collect::<Vec<_>>(), ["sub_dir", "results_folder"]);
        assert!(
            errors[0].to_string().contains("puts a folder where hcs writes the plate metadata file `hcs_plate.json`"),
            "{errors:?}"
        );
        assert!(errors[1].to_string().contains("`openhcs_metadata.json`"), "{errors:?}");
        let nul = ConfigLayer { sub_dir: Some("a\0b".into()), ..Default::default() };
        assert!(nul.validate()[0].to_string().contains("control character"), "{:?}", nul.validate());
        let nested = ConfigLayer { sub_dir: Some("x/hcs_plate.json".into()), ..Default::default() };
        assert!(nested.validate().is_empty(), "below the top, the name is free");
    }

    #[test]
    fn output_root_sits_beside_the_plate_unless_a_folder_is_given() {
        let c = Config::default();
        assert_eq!(c.output_root(Path::new("/data/plate1")), Path::new("/data/plate1_outputs"));
        let c = Config::resolve([&ConfigLayer {
            output_folder: Some("/scratch".into()),
            output_suffix: Some("".into()),
            ..Default::default()
        }]);
        assert_eq!(c.output_root(Path::new("/data/plate1")), Path::new("/scratch/plate1"));
        let relative = Config::resolve([&ConfigLayer { output_folder: Some("results".into()), ..Default::default() }]);
        assert_eq!(relative.output_root(Path::new("/data/plate1")), Path::new("/data/results/plate1_outputs"));
    }

    #[test]
    fn worker_counts_are_bounded() {
        let huge = ConfigLayer { workers: Some(Workers::Count(100_000_000)), ..Default::default() };
        let errors = huge.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].to_string(), "`workers`: 100000000 is outside 1–1024: use \"auto\" for one per core");
        let zero = ConfigLayer { workers: Some(Workers::Count(0)), ..Default::default() };
        assert_eq!(zero.validate().len(), 1);
        let fine = ConfigLayer { workers: Some(Workers::Count(Workers::MAX)), ..Default::default() };
        assert!(fine.validate().is_empty());
    }

    #[test]
    fn an_output_folder_may_not_climb_out() {
        let layer = ConfigLayer { output_folder: Some("../../../../etc/x".into()), ..Default::default() };
        let errors = layer.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].key, "output_folder");
        assert!(errors[0].to_string().contains("may not climb with `..`"), "{}", errors[0]);
        let fine = ConfigLayer { output_folder: Some("/scratch/run 1".into()), ..Default::default() };
        assert!(fine.validate().is_empty());
    }
}
