//! Cache lines asked for ahead of a loop that streams a plane larger than the caches.
//!
//! A loop with many instructions per sample (rounding, a Laplacian, f64 sums) keeps only a
//! few cache lines in flight: the processor's reorder window fills with the current lines'
//! work before the next lines' loads are issued. Measured on the development machine (a
//! virtual machine, 4 KiB pages): the rounding of a 1024² f32 plane to u16 ran at 1.8 ms per
//! plane read from memory against 0.37 ms from the cache, and at 0.6 ms when the lines 4 KiB
//! ahead were asked for as it went. A streaming loop runs through [`chunked`], which asks for
//! them once per [`CHUNK_BYTES`] it reads; a loop over rows asks for the next row ([`row`],
//! [`all`]). Only a hint, which changes no value and no result.

/// Bytes a streaming loop handles between two requests for the lines ahead.
pub const CHUNK_BYTES: usize = 1024;

/// How far ahead of the loop the lines are asked for (bytes).
pub const AHEAD_BYTES: usize = 4096;

/// Cache line bytes assumed (x86-64 and most arm64 cores).
const LINE_BYTES: usize = 64;

/// Samples of `T` in [`CHUNK_BYTES`] (at least 1).
pub const fn chunk_samples<T>() -> usize {
    samples_in_chunk(std::mem::size_of::<T>())
}

/// Samples of `size` bytes in [`CHUNK_BYTES`] (at least 1).
const fn samples_in_chunk(size: usize) -> usize {
    if size == 0 || size >= CHUNK_BYTES { 1 } else { CHUNK_BYTES / size }
}

/// Run `body` over `0..len` in consecutive ranges of [`chunk_samples`] samples of the hinted
/// slice's type, asking for `hinted`'s lines [`AHEAD_BYTES`] past each range before it runs:
/// the one shape of every streaming loop that uses these hints. `hinted` is only an address
/// range ([`Lines`]), so the body may write the slice it names.
///
/// ```
/// use hcs_vfs::ahead::{Lines, chunked};
/// let mut plane = vec![1.5f32; 1 << 16];
/// chunked(Lines::of(&plane), plane.len(), |r| plane[r].iter_mut().for_each(|v| *v *= 2.0));
/// assert!(plane.iter().all(|&v| v == 3.0));
/// ```
#[inline(always)]
pub fn chunked(hinted: Lines, len: usize, mut body: impl FnMut(std::ops::Range<usize>)) {
    let step = samples_in_chunk(hinted.sample_bytes);
    let mut at = 0;
    while at < len {
        hinted.ahead_of(at, step);
        let end = at.saturating_add(step).min(len);
        body(at..end);
        at = end;
    }
}

/// The address range of a slice whose cache lines a loop asks for: kept apart from the
/// slice's borrow (a prefetch reads nothing into the program), so the loop may write it.
#[derive(Clone, Copy, Debug)]
pub struct Lines {
    /// The slice's first byte's address.
    base: *const u8,
    /// The slice's length in bytes.
    bytes: usize,
    /// The bytes of one sample.
    sample_bytes: usize,
}

impl Lines {
    /// The lines of `data`.
    #[inline(always)]
    pub fn of<T>(data: &[T]) -> Self {
        Lines { base: data.as_ptr().cast(), bytes: std::mem::size_of_val(data), sample_bytes: std::mem::size_of::<T>() }
    }

    /// Ask for the lines [`AHEAD_BYTES`] past samples `at..at + samples` (those past the
    /// slice's end are not asked for).
    #[inline(always)]
    fn ahead_of(self, at: usize, samples: usize) {
        let from = at.saturating_mul(self.sample_bytes).saturating_add(AHEAD_BYTES);
        let to = at.saturating_add(samples).saturating_mul(self.sample_bytes).saturating_add(AHEAD_BYTES);
        prefetch(self.base, self.bytes, from, to);
    }
}

/// For a loop that reads `samples` samples of `data` from `at` between two calls (a block size
/// of its own, where [`chunked`]'s does not fit): ask for the lines [`AHEAD_BYTES`] past all
/// of them. Only a prefetch hint on x86-64; nothing elsewhere.
#[inline(always)]
pub fn ahead_of<T>(data: &[T], at: usize, samples: usize) {
    Lines::of(data).ahead_of(at, samples);
}

/// Ask for all of `data`'s cache lines now: for a loop over rows, the row it reads for the
/// first time after the current one (a row of a 1024-wide f32 plane is [`AHEAD_BYTES`] long).
#[inline(always)]
pub fn all<T>(data: &[T]) {
    prefetch(data.as_ptr().cast(), std::mem::size_of_val(data), 0, usize::MAX);
}

/// [`all`] of row `y` of `plane`, when it has that row and the row is contiguous: for a loop
/// over a plane's rows, the row it reads next.
#[inline(always)]
pub fn row<T>(plane: &ndarray::ArrayView2<'_, T>, y: usize) {
    if y < plane.nrows()
        && let Some(next) = plane.row(y).to_slice()
    {
        all(next);
    }
}

/// Prefetch the lines of bytes `from..to` (clipped to `bytes`) of the range at `base`.
#[inline(always)]
fn prefetch(base: *const u8, bytes: usize, from: usize, to: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let to = to.min(bytes);
        let mut offset = from;
        while offset < to {
            // SAFETY: a prefetch reads nothing into the program and faults on no address; the
            // address is computed without `add`'s in-bounds promise (`wrapping_add`), so no
            // rule holds on whether the range is still allocated or borrowed.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    base.wrapping_add(offset).cast::<i8>(),
                )
            };
            offset += LINE_BYTES;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (base, bytes, from, to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_ahead_anywhere_in_or_past_a_slice_is_harmless_and_changes_nothing() {
        let data: Vec<u16> = (0..5000).map(|i| i as u16).collect();
        for at in [0, 1, 2047, 2048, 4999, 5000, 10_000, usize::MAX] {
            Lines::of(&data).ahead_of(at, chunk_samples::<u16>());
        }
        ahead_of::<f32>(&[], 0, 256);
        for (at, samples) in [(0, 0), (0, 5000), (4000, 4096), (usize::MAX, usize::MAX), (1, usize::MAX)] {
            ahead_of(&data, at, samples);
        }
        all(&data);
        all::<u8>(&[]);
        ahead_of(&[(); 3], 1, 1);
        row(&ndarray::Array2::<f32>::zeros((3, 4)).view(), 3);
        row(&ndarray::Array2::<f32>::zeros((3, 4)).t(), 1);
        assert!(data.iter().enumerate().all(|(i, &v)| usize::from(v) == i));
        assert_eq!(chunk_samples::<f32>(), 256);
        assert_eq!(chunk_samples::<u8>(), 1024);
        assert_eq!(chunk_samples::<[u8; 4096]>(), 1);
        assert_eq!(chunk_samples::<()>(), 1);
    }

    #[test]
    fn chunked_visits_every_sample_once_in_order_in_chunks_of_a_kilobyte_of_the_hinted_type() {
        let data = vec![0u16; 5000];
        for len in [0, 1, 511, 512, 513, 5000, 7000] {
            let mut ranges = Vec::new();
            chunked(Lines::of(&data), len, |r| ranges.push(r));
            let mut next = 0;
            for r in &ranges {
                assert_eq!(r.start, next);
                assert!(r.end > r.start && r.end - r.start <= 512, "{r:?}");
                next = r.end;
            }
            assert_eq!(next, len);
            assert_eq!(ranges.len(), len.div_ceil(512));
        }
        // The body may write the hinted slice.
        let mut plane: Vec<f32> = (0..3000).map(|i| i as f32).collect();
        chunked(Lines::of(&plane), plane.len(), |r| plane[r].iter_mut().for_each(|v| *v += 1.0));
        assert!(plane.iter().enumerate().all(|(i, &v)| v == i as f32 + 1.0));
        let units = [(); 3];
        let mut seen = 0;
        chunked(Lines::of(&units), 3, |r| seen += r.len());
        assert_eq!(seen, 3);
    }
}
