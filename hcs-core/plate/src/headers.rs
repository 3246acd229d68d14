//! The deep check of a plate (`hcs check --deep`): the header of every image file is read, never
//! its pixels, so damaged files are found before a run starts — an empty file, one that is not a
//! TIFF, one cut short (the file ends before the strips or tiles its header describes), an image
//! of another size than the plate's, and samples hcs does not read or that differ from the rest
//! of the plate's.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::Hash;
use std::path::{Path, PathBuf};

use hcs_vfs::tiff::{TiffHeader, read_tiff_headers};
use hcs_vfs::{Dtype, VfsError};

use crate::{FormatKind, PlaneRef, Plate};

/// What is wrong with one image file; `Display` is one line that names the file.
#[derive(Debug)]
pub enum ImageProblem {
    /// The header cannot be read: an empty file, not a TIFF, truncated, corrupt or unreadable
    /// (the error names the file).
    Unreadable(VfsError),
    /// The image's dimensions differ from the plate's.
    Size {
        /// The file.
        path: PathBuf,
        /// Its `(height, width)`.
        found: (usize, usize),
        /// The plate's `(height, width)`.
        expected: (usize, usize),
        /// Whether the plate's metadata declares `expected` (else most images have it).
        declared: bool,
        /// Whether `expected` is that of the well's other images (a plate OpenHCS wrote: each
        /// well's mosaic has a size of its own), not of the plate's.
        within_well: bool,
    },
    /// Samples hcs does not read: not 8- or 16-bit unsigned or 32-bit float grey.
    SampleType {
        /// The file.
        path: PathBuf,
        /// The samples in words (`16-bit signed`).
        found: String,
    },
    /// More full-size images in the file than the plate reads from it (a z-stack or time
    /// series saved as one multi-page TIFF where the format names one image per file).
    ExtraPages {
        /// The file.
        path: PathBuf,
        /// Its full-size pages.
        pages: u32,
        /// The pages the plate reads.
        read: u32,
    },
    /// Samples hcs reads, but of another type than the rest of the plate's.
    MixedSampleType {
        /// The file.
        path: PathBuf,
        /// Its dtype.
        found: Dtype,
        /// The plate's dtype.
        expected: Dtype,
        /// Whether the plate's metadata declares `expected` (else most images have it).
        declared: bool,
    },
}

fn dtype_words(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::U8 => "8-bit unsigned",
        Dtype::U16 => "16-bit unsigned",
        Dtype::F32 => "32-bit float",
    }
}

fn whose(declared: bool) -> &'static str {
    if declared { "the plate's metadata declares" } else { "the plate's other images are" }
}

impl fmt::Display for ImageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageProblem::Unreadable(e) => write!(f, "{e}"),
            ImageProblem::Size { path, found, expected, declared, within_well } => write!(
                f,
                "{}: wrong size: {}×{} pixels (width×height), but {} {}×{}",
                path.display(),
                found.1,
                found.0,
                if *within_well { "the well's other images are" } else { whose(*declared) },
                expected.1,
                expected.0
            ),
            ImageProblem::SampleType { path, found } => write!(
                f,
                "{}: wrong sample type: {found} samples (hcs reads 8- or 16-bit unsigned or 32-bit float grey images)",
                path.display()
            ),
            ImageProblem::ExtraPages { path, pages, read } => write!(
                f,
                "{}: {pages} full-size images in one file, but the plate's format reads {} from it: the other {} {} not read (a z-stack or time series saved as one multi-page TIFF?)",
                path.display(),
                read,
                pages - read,
                if pages - read == 1 { "is" } else { "are" }
            ),
            ImageProblem::MixedSampleType { path, found, expected, declared } => write!(
                f,
                "{}: wrong bit depth: {} samples, but {} {}",
                path.display(),
                dtype_words(*found),
                whose(*declared),
                dtype_words(*expected)
            ),
        }
    }
}

/// The result of [`Plate::check_image_headers`].
#[derive(Debug, Default)]
pub struct HeaderCheck {
    /// Image files whose header was read (a multi-page file counts once).
    pub files: usize,
    /// Planes stored in OME-Zarr, which this check does not read.
    pub zarr_planes: usize,
    /// The `(height, width)` every image was checked against (declared by the plate's metadata,
    /// else that of most images); `None` when no header could be read, or for a plate OpenHCS
    /// wrote whose wells' images differ in size (each well's were checked against its own).
    pub tile_shape: Option<(usize, usize)>,
    /// The dtype every image was checked against (declared, else that of most images).
    pub dtype: Option<Dtype>,
    /// Every problem found, in plate order.
    pub problems: Vec<ImageProblem>,
}

/// The most frequent value; ties go to the value seen first.
fn majority<T: Copy + Eq + Hash>(values: impl IntoIterator<Item = T>) -> Option<T> {
    let mut counts: HashMap<T, (usize, usize)> = HashMap::new();
    for (i, v) in values.into_iter().enumerate() {
        counts.entry(v).or_insert((0, i)).0 += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1))).map(|(v, _)| v)
}

fn shape(h: &TiffHeader) -> (usize, usize) {
    (h.height as usize, h.width as usize)
}

impl Plate {
    /// Read the header of every image file of the plate (in parallel, no pixels) and report
    /// each file that is empty, not a TIFF, truncated or corrupt, of another size than the plate's
    /// images, or with samples hcs does not read or that differ from the plate's.
    ///
    /// The size and dtype expected are those the plate's metadata declares (plates written by
    /// hcs), else those of most images. 32-bit float samples are read in any plate, as `hcs run`
    /// reads them (a plate exported as float from Fiji); only a file whose type differs from the
    /// plate's is a problem.
    pub fn check_image_headers(&self) -> HeaderCheck {
        let mut seen = BTreeSet::new();
        let mut files: Vec<PathBuf> = Vec::new();
        let mut wells = Vec::new();
        let mut zarr_planes = 0;
        // The pages the plate reads from each file.
        let mut pages_read: HashMap<&Path, BTreeSet<u32>> = HashMap::new();
        for (key, plane) in self.index.iter() {
            match plane {
                PlaneRef::File { path, page } => {
                    pages_read.entry(path.as_path()).or_default().insert(*page);
                    if seen.insert(path) {
                        files.push(self.root.join(path));
                        wells.push(key.well);
                    }
                }
                PlaneRef::Zarr { .. } => zarr_planes += 1,
            }
        }
        let headers = read_tiff_headers(&files);
        let hcs_plate = self.metadata.format == FormatKind::Hcs;
        // A plate OpenHCS wrote holds what a pipeline made: float planes, and a mosaic per well
        // whose size is its own, so sizes are compared within each well.
        let openhcs_plate = self.metadata.format == FormatKind::Openhcs;
        let readable = || headers.iter().filter_map(|h| h.as_ref().ok());
        let declared_shape = self.metadata.tile_shape.filter(|_| hcs_plate);
        let tile_shape = declared_shape.or_else(|| majority(readable().map(shape)));
        let well_shapes: HashMap<_, _> = if openhcs_plate {
            let mut by_well: HashMap<_, Vec<(usize, usize)>> = HashMap::new();
            for (well, header) in wells.iter().zip(&headers) {
                if let Ok(h) = header {
                    by_well.entry(*well).or_default().push(shape(h));
                }
            }
            by_well.into_iter().filter_map(|(w, shapes)| Some((w, majority(shapes)?))).collect()
        } else {
            HashMap::new()
        };
        let declared_dtype = self.metadata.dtype.filter(|_| hcs_plate);
        let dtype = declared_dtype.or_else(|| majority(readable().filter_map(TiffHeader::dtype)));

        let mut problems = Vec::new();
        for ((path, well), header) in files.iter().zip(&wells).zip(headers) {
            let header = match header {
                Ok(h) => h,
                Err(e) => {
                    problems.push(ImageProblem::Unreadable(e));
                    continue;
                }
            };
            let expected = if openhcs_plate { well_shapes.get(well).copied() } else { tile_shape };
            if let Some(expected) = expected
                && shape(&header) != expected
            {
                problems.push(ImageProblem::Size {
                    path: path.clone(),
                    found: shape(&header),
                    expected,
                    declared: declared_shape.is_some(),
                    within_well: openhcs_plate,
                });
            }
            let read = path
                .strip_prefix(&self.root)
                .ok()
                .and_then(|rel| pages_read.get(rel))
                .map_or(1, |p| u32::try_from(p.len()).unwrap_or(u32::MAX));
            if header.pages > read {
                problems.push(ImageProblem::ExtraPages { path: path.clone(), pages: header.pages, read });
            }
            match (header.dtype(), dtype) {
                (Some(found), Some(expected)) if found != expected => {
                    problems.push(ImageProblem::MixedSampleType {
                        path: path.clone(),
                        found,
                        expected,
                        declared: declared_dtype.is_some(),
                    });
                }
                (Some(_), _) => {}
                (None, _) => {
                    problems.push(ImageProblem::SampleType { path: path.clone(), found: header.sample_description() });
                }
            }
        }
        let tile_shape = if openhcs_plate {
            // One size only where every well's images have it.
            let sizes: BTreeSet<_> = well_shapes.values().collect();
            if sizes.len() == 1 { sizes.into_iter().next().copied() } else { None }
        } else {
            tile_shape
        };
        HeaderCheck { files: files.len(), zarr_planes, tile_shape, dtype, problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_wins_and_ties_go_to_the_first_seen() {
        assert_eq!(majority([3, 1, 1, 2]), Some(1));
        assert_eq!(majority([2, 1, 1, 2]), Some(2));
        assert_eq!(majority(Vec::<u8>::new()), None);
    }

    #[test]
    fn every_damaged_file_of_a_plate_is_reported_even_the_first() {
        use hcs_vfs::PlaneData;
        use hcs_vfs::tiff::{TiffCompression, write_tiff};
        use ndarray::Array2;

        let dir = std::env::temp_dir().join(format!("hcs-plate-headers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = hcs_synth::SynthConfig {
            wells: ["A01", "A02", "B01"].iter().map(|w| w.parse().expect("well")).collect(),
            grid: (1, 2),
            tile: 32,
            channels: 1,
            z_planes: 1,
            ..hcs_synth::SynthConfig::default()
        };
        hcs_synth::synthesize(&config, &dir).expect("synthesize");
        let plate = crate::formats::open_plate_unread(&dir, None).expect("open");
        let clean = plate.check_image_headers();
        assert_eq!((clean.files, clean.problems.len()), (6, 0), "{:?}", clean.problems);
        assert_eq!((clean.tile_shape, clean.dtype), (Some((32, 32)), Some(Dtype::U16)));

        let files: Vec<PathBuf> = plate
            .index
            .iter()
            .filter_map(|(_, p)| match p {
                PlaneRef::File { path, .. } => Some(dir.join(path)),
                PlaneRef::Zarr { .. } => None,
            })
            .collect();
        std::fs::write(&files[0], b"").expect("empty");
        std::fs::write(&files[1], b"not an image").expect("text");
        write_tiff(&files[2], &[PlaneData::U16(Array2::zeros((16, 32)))], TiffCompression::None).expect("size");
        write_tiff(&files[3], &[PlaneData::U8(Array2::zeros((32, 32)))], TiffCompression::None).expect("depth");
        write_tiff(&files[4], &[PlaneData::F32(Array2::zeros((32, 32)))], TiffCompression::None).expect("float");
        let plate = crate::formats::open_plate_unread(&dir, None).expect("opens without reading images");
        let report = plate.check_image_headers();
        let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        let name = |i: usize| files[i].display().to_string();
        assert!(lines[0].starts_with(&name(0)) && lines[0].contains("empty file"), "{}", lines[0]);
        assert!(lines[1].starts_with(&name(1)) && lines[1].contains("not a TIFF"), "{}", lines[1]);
        assert_eq!(
            lines[2],
            format!("{}: wrong size: 32×16 pixels (width×height), but the plate's other images are 32×32", name(2))
        );
        assert_eq!(
            lines[3],
            format!(
                "{}: wrong bit depth: 8-bit unsigned samples, but the plate's other images are 16-bit unsigned",
                name(3)
            )
        );
        assert_eq!(
            lines[4],
            format!(
                "{}: wrong bit depth: 32-bit float samples, but the plate's other images are 16-bit unsigned",
                name(4)
            )
        );

        // A plate whose images are all float (exported from Fiji) is read by `hcs run`, so its
        // headers are clean too.
        for file in &files {
            write_tiff(file, &[PlaneData::F32(Array2::zeros((32, 32)))], TiffCompression::None).expect("float");
        }
        let plate = crate::formats::open_plate_unread(&dir, None).expect("opens");
        let report = plate.check_image_headers();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.dtype, Some(Dtype::F32));
        std::fs::remove_dir_all(&dir).ok();
    }
}
