//! Giving a dead plane's memory back while the stack it is part of lives on.
//!
//! A step's group output is one stack whose planes are shared, not copied, into the
//! intermediate store ([`crate::state`]); the buffer goes only when its last plane does. A
//! reader that stacks other components takes those planes one at a time: the z flattening
//! takes each site's planes from three stacks of nine sites each, so every stack stayed whole
//! until the ninth site was taken, while the new outputs grew beside them. [`discard_plane`]
//! hands the pages of a plane just taken back to the system at once (`madvise(MADV_DONTNEED)`):
//! the mapping stays (the allocator frees the block as before), the resident memory drops.
//!
//! Only whole base pages inside the plane are given back, so the neighbours' bytes and the
//! allocator's headers are never touched. A page given back reads as zeros if read again, which
//! is why the caller must hold the plane's last use: nothing may read it afterwards.

use ndarray::ArcArray2;

/// Give back the memory of `plane`, the last holder of its elements, when its buffer is shared
/// with other planes (a group's stack); a plane alone in its buffer is freed by dropping it.
/// Returns the bytes given back (0 where nothing was: a plane of its own, one not laid out in
/// one run, a range inside one page, or not Linux).
///
/// # Safety
/// Nothing reads or writes the elements of `plane` after this call (no other array, plane or
/// view of its buffer covers them): their pages read as zeros from here on. The other elements
/// of the buffer are untouched.
pub unsafe fn discard_plane(plane: ArcArray2<f32>) -> usize {
    if plane.is_unique() {
        return 0;
    }
    let Some(values) = plane.as_slice() else { return 0 };
    // SAFETY: the caller vouches that these elements are dead; the range is exactly theirs.
    unsafe { discard_range(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// Give back the whole base pages inside `[ptr, ptr + len)`; the bytes given back.
///
/// # Safety
/// The range is private anonymous memory of a live allocation, and nothing reads or writes it
/// afterwards (it then reads as zeros).
unsafe fn discard_range(ptr: *const u8, len: usize) -> usize {
    #[cfg(target_os = "linux")]
    {
        let page = crate::huge_pages::page_bytes();
        let start = (ptr as usize).next_multiple_of(page);
        let end = (ptr as usize).saturating_add(len) / page * page;
        if end <= start {
            return 0;
        }
        // SAFETY: the pages lie wholly inside the caller's dead range; MADV_DONTNEED drops their
        // contents and keeps the mapping, so the block stays valid for the allocator to free.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        if r == 0 { end - start } else { 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (ptr, len);
        0
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use ndarray::{ArcArray3, Axis};

    fn stack(planes: usize, side: usize) -> ArcArray3<f32> {
        ArcArray3::from_shape_fn((planes, side, side), |(p, y, x)| (p * 7 + y + x) as f32 + 1.0)
    }

    #[test]
    fn a_plane_of_a_shared_stack_reads_zeros_afterwards_and_its_neighbours_keep_their_values() {
        let side = 1024; // 4 MiB planes: whole pages inside each, wherever the buffer starts
        let whole = stack(3, side);
        let expected = whole.to_owned();
        let middle = whole.clone().index_axis_move(Axis(0), 1);
        // SAFETY: the test reads the plane's bytes afterwards only to see them gone.
        let given = unsafe { discard_plane(middle) };
        let page = crate::huge_pages::page_bytes();
        assert!(given >= side * side * 4 - page, "all but the edge pages go: {given} bytes");
        let plane = whole.index_axis(Axis(0), 1);
        assert_eq!(plane[[side / 2, side / 2]], 0.0, "the plane's pages were given back");
        // The pages the plane shares with its neighbours at both ends are kept.
        assert_eq!(whole.index_axis(Axis(0), 0), expected.index_axis(Axis(0), 0));
        assert_eq!(whole.index_axis(Axis(0), 2), expected.index_axis(Axis(0), 2));
    }

    #[test]
    fn a_plane_alone_in_its_buffer_or_not_in_one_run_is_left_to_drop() {
        let alone = stack(1, 1024).index_axis_move(Axis(0), 0);
        // SAFETY: the plane is not used afterwards.
        assert_eq!(unsafe { discard_plane(alone) }, 0, "dropping it frees the block");
        let whole = stack(2, 1024);
        let expected = whole.to_owned();
        let column = whole.clone().index_axis_move(Axis(2), 0);
        // SAFETY: the strided column is not used afterwards.
        assert_eq!(unsafe { discard_plane(column) }, 0, "a strided plane's range holds other planes");
        assert_eq!(whole, expected);
    }
}
