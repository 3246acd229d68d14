//! Decoded chunks that hold several planes, kept so that each is decoded once, not once per plane.
//!
//! OpenHCS stores each field as one Zarr chunk holding all its channels and z-planes, compressed
//! with zlib, which cannot be decoded in part: reading the field plane by plane decoded the whole
//! chunk for every plane (a 2-channel, 3-plane field six times). Such a chunk is decoded once
//! here, cut into its planes and kept in a process-wide cache bounded in bytes (least recently
//! used first out: moka's LRU policy, not its default, which would refuse a new chunk while the
//! cache is full of chunks read more often). Each plane is handed over, not copied, to its first reader, and the chunk
//! leaves the cache when every plane has been taken: the executor reads a well one channel at a
//! time, so a chunk waits for its other channel's planes. A plane read a second time (a later
//! step reading the input again) has its chunk decoded afresh. Threads that ask for a chunk being
//! decoded wait for that decoding instead of doing it again.
//!
//! Only chunks spanning more than one plane, whose codecs cannot decode part of a chunk, and
//! that take at most half the cache go through it: hcs writes one chunk or shard per plane, a
//! shard's inner chunks and an uncompressed chunk are read in part anyway, and a chunk the cache
//! could not keep would be decoded and copied whole for every plane. A chunk is known by its
//! file, the file's size, modification time and inode, and its array's shape, chunk shape and
//! sample type, so a chunk file or array replaced since it was cached is decoded afresh (a
//! same-sized rewrite in place within one tick of the file system's clock would not be seen:
//! stores are inputs, not rewritten while a run reads them).
//!
//! `HCS_ZARR_CHUNK_CACHE_MIB` sets the bound (default 256 MiB, `0` turns the cache off); a value
//! that is not a whole number fails the read that needs the cache, naming the setting.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use ndarray::{Array2, ArrayD};
use zarrs::array::codec::api::CodecTraits;
use zarrs::array::{Array, ArrayShardedExt, ArraySubset};
use zarrs::filesystem::FilesystemStore;

use super::writer::zarr_err;
use crate::VfsError;
use crate::plane::{Dtype, PlaneData};

/// The environment variable that bounds the cache, in MiB.
pub const CACHE_SETTING: &str = "HCS_ZARR_CHUNK_CACHE_MIB";

/// The bound when [`CACHE_SETTING`] is not set: two wells of a 3×3-field, 2-channel, 3-plane
/// plate of 1024² 16-bit images (12 MiB a field) with room to spare.
const DEFAULT_MIB: u64 = 256;

/// A chunk file as it is on disk: its path, size, modification time (ns) and inode.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ChunkId {
    file: PathBuf,
    len: u64,
    modified_ns: u128,
    inode: u64,
    array_shape: Vec<u64>,
    chunk_shape: Vec<u64>,
    dtype: Dtype,
}

/// A decoded chunk cut into its planes (C order of the leading axes; `None` past the array's
/// edge, or once taken), and how many are still to be taken.
#[derive(Debug)]
struct Planes {
    planes: Vec<Mutex<Option<PlaneData>>>,
    left: AtomicUsize,
    bytes: usize,
}

type Cache = moka::sync::Cache<ChunkId, Arc<Planes>>;

/// The cache and its bound in bytes, or why there is none: `Ok(None)` when the setting turns it
/// off.
static CACHE: LazyLock<Result<Option<(Cache, u64)>, String>> = LazyLock::new(|| {
    let bytes = cache_mib(std::env::var(CACHE_SETTING).ok().as_deref())?.map(|mib| mib.saturating_mul(1024 * 1024));
    Ok(bytes.map(|bytes| (new_cache(bytes), bytes)))
});

/// The bound a value of [`CACHE_SETTING`] asks for: `None` for `0` (no cache), the default when
/// unset or blank; an error naming the setting for anything but a whole number.
fn cache_mib(value: Option<&str>) -> Result<Option<u64>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(Some(DEFAULT_MIB)) };
    match value.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(mib) => Ok(Some(mib)),
        Err(_) => Err(format!("{CACHE_SETTING}={value:?} is not a whole number of MiB (0 turns the chunk cache off)")),
    }
}

fn new_cache(bytes: u64) -> Cache {
    // A chunk weighs what it held when decoded, however many of its planes were taken since.
    moka::sync::Cache::builder()
        .max_capacity(bytes)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .weigher(|_: &ChunkId, chunk: &Arc<Planes>| u32::try_from(chunk.bytes).unwrap_or(u32::MAX))
        .build()
}

/// The plane `subset` (extent 1 on every axis but the last two) of `array` (at `dir`, in the
/// filesystem store at `store`), taken from its decoded chunk through the cache; `None` when the
/// plane does not go through the cache (see the module's documentation) and is read the ordinary
/// way.
pub(super) fn cached_plane(
    array: &Array<FilesystemStore>,
    store: &Path,
    dir: &Path,
    subset: &ArraySubset,
    dtype: Dtype,
) -> Result<Option<PlaneData>, VfsError> {
    if array.is_sharded() || array.codecs().partial_decoder_capability().partial_decode {
        return Ok(None);
    }
    let Some(chunks) = array.chunks_in_array_subset(subset).map_err(|e| zarr_err(dir, e))? else { return Ok(None) };
    if chunks.num_elements() != 1 {
        return Ok(None); // the plane spans several chunks
    }
    let index = chunks.start().to_vec();
    let chunk = array.chunk_subset(&index).map_err(|e| zarr_err(dir, e))?;
    let n = chunk.dimensionality();
    if n < 2 || chunk.shape()[..n - 2].iter().product::<u64>() < 2 {
        return Ok(None);
    }
    let (cache, bound) = match &*CACHE {
        Ok(Some((cache, bound))) => (cache, *bound),
        Ok(None) => return Ok(None),
        Err(message) => return Err(zarr_err(dir, message)),
    };
    let chunk_bytes = chunk.shape().iter().try_fold(dtype.size() as u64, |b, &n| b.checked_mul(n));
    if chunk_bytes.is_none_or(|b| b > bound / 2) {
        return Ok(None);
    }
    let file = store.join(array.chunk_key(&index).as_str());
    let Some(id) = chunk_id(file, array.shape(), chunk.shape(), dtype) else { return Ok(None) }; // no file: the fill value, read the ordinary way
    let position = plane_position(subset.start(), chunk.start(), chunk.shape());
    // A plane already taken is being read a second time (a later step reads the input again):
    // the chunk is decoded afresh, once.
    for _ in 0..2 {
        let planes = cache
            .try_get_with(id.clone(), || {
                let bounds = array.shape().to_vec();
                decode(array, &index, dtype, chunk.start(), &bounds).map(Arc::new)
            })
            .map_err(|e| zarr_err(dir, format!("chunk {index:?}: {e}")))?;
        let taken = planes.planes.get(position).and_then(|slot| slot.lock().ok()?.take());
        match taken {
            Some(plane) => {
                if planes.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    forget(cache, &id, &planes); // every plane taken: the chunk's memory goes now
                }
                return Ok(Some(plane));
            }
            None => forget(cache, &id, &planes),
        }
    }
    Ok(None)
}

/// Remove `planes` from the cache, unless another thread has put a fresh decoding there since.
fn forget(cache: &Cache, id: &ChunkId, planes: &Arc<Planes>) {
    cache.entry_by_ref(id).and_compute_with(|entry| match entry {
        Some(entry) if Arc::ptr_eq(entry.value(), planes) => moka::ops::compute::Op::Remove,
        _ => moka::ops::compute::Op::Nop,
    });
}

/// The index, in C order of the chunk's leading axes, of the plane starting at `start` (array
/// coordinates) in the chunk starting at `chunk_start` of shape `chunk_shape`.
fn plane_position(start: &[u64], chunk_start: &[u64], chunk_shape: &[u64]) -> usize {
    let leading = chunk_shape.len().saturating_sub(2);
    (0..leading).fold(0u64, |at, i| at * chunk_shape[i] + (start[i] - chunk_start[i])) as usize
}

/// The identity of the chunk file at `file` of an array of `array_shape` in chunks of
/// `chunk_shape`; `None` when the file cannot be read.
fn chunk_id(file: PathBuf, array_shape: &[u64], chunk_shape: &[u64], dtype: Dtype) -> Option<ChunkId> {
    let meta = std::fs::metadata(&file).ok()?;
    let modified_ns = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(ChunkId {
        file,
        len: meta.len(),
        modified_ns,
        inode,
        array_shape: array_shape.to_vec(),
        chunk_shape: chunk_shape.to_vec(),
        dtype,
    })
}

#[cfg(test)]
thread_local! {
    /// Chunks this thread has decoded through the cache (a chunk is decoded on the thread that
    /// first asks for it).
    static DECODED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many chunks this thread has decoded through the cache.
#[cfg(test)]
pub(crate) fn decoded_count() -> u64 {
    DECODED.with(std::cell::Cell::get)
}

/// Decode the chunk at `index` (starting at `chunk_start`) of an array of shape `bounds` and cut
/// it into its planes.
fn decode(
    array: &Array<FilesystemStore>,
    index: &[u64],
    dtype: Dtype,
    chunk_start: &[u64],
    bounds: &[u64],
) -> Result<Planes, String> {
    #[cfg(test)]
    DECODED.with(|d| d.set(d.get() + 1));
    let e = |e: zarrs::array::ArrayError| e.to_string();
    match dtype {
        Dtype::U8 => split(array.retrieve_chunk(index).map_err(e)?, chunk_start, bounds, PlaneData::U8),
        Dtype::U16 => split(array.retrieve_chunk(index).map_err(e)?, chunk_start, bounds, PlaneData::U16),
        Dtype::F32 => split(array.retrieve_chunk(index).map_err(e)?, chunk_start, bounds, PlaneData::F32),
    }
}

/// The planes of the decoded `chunk` (starting at `chunk_start` in an array of shape `bounds`),
/// each as large as the array's planes; a plane past the array's edge is `None`.
fn split<T: Clone>(
    chunk: ArrayD<T>,
    chunk_start: &[u64],
    bounds: &[u64],
    wrap: fn(Array2<T>) -> PlaneData,
) -> Result<Planes, String> {
    let shape = chunk.shape().to_vec();
    let n = shape.len();
    if n < 2 || chunk_start.len() != n || bounds.len() != n {
        return Err(format!("a chunk of shape {shape:?} where {n} axes ending in y, x were expected"));
    }
    let (h, w) = ((bounds[n - 2] - chunk_start[n - 2]) as usize, (bounds[n - 1] - chunk_start[n - 1]) as usize);
    let (h, w) = (h.min(shape[n - 2]), w.min(shape[n - 1]));
    let count: usize = shape[..n - 2].iter().product();
    let stack = chunk
        .into_shape_with_order((count, shape[n - 2], shape[n - 1]))
        .map_err(|e| format!("chunk of {shape:?}: {e}"))?;
    let mut planes = Vec::with_capacity(count);
    let mut bytes = 0;
    for (i, plane) in stack.outer_iter().enumerate() {
        // The plane's position along each leading axis, last axis fastest.
        let mut rest = i;
        let mut inside = true;
        for axis in (0..n - 2).rev() {
            let at = (rest % shape[axis]) as u64;
            rest /= shape[axis];
            inside &= chunk_start[axis] + at < bounds[axis];
        }
        let kept = inside.then(|| plane.slice(ndarray::s![..h, ..w]).to_owned());
        bytes += kept.as_ref().map_or(0, |p| p.len() * std::mem::size_of::<T>());
        planes.push(Mutex::new(kept.map(wrap)));
    }
    let left = planes.iter().filter(|p| p.lock().is_ok_and(|p| p.is_some())).count();
    Ok(Planes { planes, left: AtomicUsize::new(left), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_whole_mib_zero_as_off_and_refuses_anything_else_by_name() {
        assert_eq!(cache_mib(None), Ok(Some(DEFAULT_MIB)));
        assert_eq!(cache_mib(Some("  ")), Ok(Some(DEFAULT_MIB)));
        assert_eq!(cache_mib(Some(" 64 ")), Ok(Some(64)));
        assert_eq!(cache_mib(Some("0")), Ok(None));
        for bad in ["-1", "1.5", "lots", "64MiB"] {
            let e = cache_mib(Some(bad)).expect_err(bad);
            assert!(e.contains(CACHE_SETTING) && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_chunk_is_cut_into_planes_in_c_order_and_those_past_the_array_edge_are_left_out() {
        // A 2 × 3 × 4 × 5 chunk (c, z, y, x) at the array's origin; the array is 2 × 2 × 4 × 4,
        // so z 2 of each channel and the last column lie past its edge.
        let a = ArrayD::from_shape_fn(vec![2, 3, 4, 5], |i| (i[0] * 1000 + i[1] * 100 + i[2] * 10 + i[3]) as u16);
        let planes = split(a, &[0, 0, 0, 0], &[2, 2, 4, 4], PlaneData::U16).expect("split");
        assert_eq!(planes.planes.len(), 6);
        assert_eq!(planes.left.load(Ordering::Relaxed), 4);
        assert_eq!(planes.bytes, 4 * 16 * 2);
        let take = |c: u64, z: u64| {
            planes.planes[plane_position(&[c, z, 0, 0], &[0, 0, 0, 0], &[2, 3, 4, 5])].lock().expect("lock").take()
        };
        let want = ndarray::Array2::from_shape_fn((4, 4), |(y, x)| (1100 + y * 10 + x) as u16);
        assert_eq!(take(1, 1), Some(PlaneData::U16(want)));
        assert_eq!(take(1, 1), None, "taken once");
        assert_eq!(take(0, 2), None, "past the edge");
        assert!(split(ArrayD::<u16>::zeros(vec![4]), &[0], &[4], PlaneData::U16).is_err(), "one axis");
    }

    #[test]
    fn a_full_cache_keeps_the_new_chunk_and_lets_the_least_recently_used_go() {
        let planes = |bytes| Arc::new(Planes { planes: Vec::new(), left: AtomicUsize::new(0), bytes });
        let id = |i: u64| ChunkId {
            file: PathBuf::from(format!("chunk{i}")),
            len: 0,
            modified_ns: 0,
            inode: i,
            array_shape: vec![2, 64, 64],
            chunk_shape: vec![2, 64, 64],
            dtype: Dtype::U16,
        };
        let cache = new_cache(3000);
        for i in 0..3 {
            cache.insert(id(i), planes(1000));
            for _ in 0..5 {
                assert!(cache.get(&id(i)).is_some());
            }
        }
        cache.run_pending_tasks();
        // A chunk decoded once while the cache is full of chunks read often: kept (the channel
        // read next needs it), where moka's default policy would refuse it.
        cache.insert(id(3), planes(1000));
        cache.run_pending_tasks();
        assert!(cache.contains_key(&id(3)), "the new chunk is kept");
        assert!(!cache.contains_key(&id(0)), "the least recently used chunk went");
        assert!(cache.contains_key(&id(2)));
    }

    #[test]
    fn a_plane_position_counts_the_leading_axes_in_c_order_from_the_chunk_start() {
        assert_eq!(plane_position(&[0, 1, 2, 0, 0], &[0, 0, 0, 0, 0], &[1, 2, 3, 64, 64]), 5);
        assert_eq!(plane_position(&[5, 7, 0, 0], &[4, 6, 0, 0], &[2, 3, 8, 8]), 4);
        assert_eq!(plane_position(&[0, 0], &[0, 0], &[8, 8]), 0);
    }
}
