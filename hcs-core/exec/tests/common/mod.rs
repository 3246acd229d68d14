//! Helpers shared by the executor's tests.

use std::path::Path;

/// The first page of the 16-bit TIFF at `path`, row by row.
#[allow(dead_code)] // not every test that includes these helpers reads TIFFs
pub fn read_u16(path: &Path) -> Vec<u16> {
    let pages = hcs_vfs::tiff::read_tiff(path, hcs_vfs::tiff::TiffLimits::default()).expect("tiff");
    match &pages[0] {
        hcs_vfs::PlaneData::U16(a) => a.iter().copied().collect(),
        other => panic!("unexpected {:?}", other.dtype()),
    }
}
