//! ImageXpress plates: `<plate>.HTD` in the root, images in `TimePoint_N/[ZStep_N/]` named
//! `A01_s1_w1.tif` (site, channel and z parts optional; `_thumb` images skipped).

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::{FormatError, htd, sorted_entries};
use crate::{FormatKind, ImageKey, PlaneRef, Plate, WellId};

static NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // The well is upper case (so a prefix like `A01_` cannot make `s3` a well); s/w/z and the
    // extension in any case.
    Regex::new(r"^(?:.*?_)?([A-Z]{1,2}\d{1,3})(?:_[sS](\d+))?(?:_[wW](\d+))?(?:_[zZ](\d+))?\.(?i:tif|tiff)$").ok()
});
static TIMEPOINT_DIR: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)^TimePoint[_-]?(\d+)$").ok());
static ZSTEP_DIR: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"(?i)^ZStep[_-]?(\d+)$").ok());

/// The components an ImageXpress file name carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedName {
    /// Well.
    pub well: WellId,
    /// Site, if named.
    pub site: Option<u32>,
    /// Channel, if named.
    pub channel: Option<u32>,
    /// Z, if named.
    pub z: Option<u32>,
}

/// Parse `A01_s1_w2_z3.tif` and its shorter forms; `None` for thumbnails and other files.
pub fn parse_name(name: &str) -> Option<ParsedName> {
    if name.to_ascii_lowercase().contains("_thumb") {
        return None;
    }
    let caps = NAME.as_ref()?.captures(name)?;
    let well: WellId = caps.get(1)?.as_str().parse().ok()?;
    let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    Some(ParsedName { well, site: num(2), channel: num(3), z: num(4) })
}

fn dir_number(re: &LazyLock<Option<Regex>>, name: &str) -> Option<u32> {
    re.as_ref()?.captures(name)?.get(1)?.as_str().parse().ok()
}

/// Read an ImageXpress plate.
pub fn read(root: &Path) -> Result<Plate, FormatError> {
    read_with(root, true)
}

/// Read an ImageXpress plate; its tile shape and dtype are read from the first image only when
/// `read_first_plane` (else they are `None`).
pub(crate) fn read_with(root: &Path, read_first_plane: bool) -> Result<Plate, FormatError> {
    let htd_path = htd::find_htd(root)?.ok_or_else(|| FormatError::MissingMetadata {
        path: root.to_path_buf(),
        format: "ImageXpress",
        what: ".HTD file",
    })?;
    let htd = htd::read(&htd_path)?;
    let num = |k: &str| htd.get(k).and_then(|v| v.trim().parse::<u32>().ok());
    let grid = match (num("YSites").or(num("SiteRows")), num("XSites").or(num("SiteColumns"))) {
        (Some(r), Some(c)) if r > 0 && c > 0 => Some((r, c)),
        _ => None,
    };

    let mut entries = Vec::new();
    let mut timepoint_dirs = Vec::new();
    for entry in sorted_entries(root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(t) = dir_number(&TIMEPOINT_DIR, &name)
            && entry.path().is_dir()
        {
            timepoint_dirs.push((t, entry.path()));
        }
    }
    if timepoint_dirs.is_empty() {
        // Some exports put the images in the root.
        timepoint_dirs.push((1, root.to_path_buf()));
    }
    for (t, dir) in &timepoint_dirs {
        for entry in sorted_entries(dir)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(z) = dir_number(&ZSTEP_DIR, &name) {
                if path.is_dir() {
                    for file in sorted_entries(&path)? {
                        push_image(root, &file.path(), *t, Some(z), &mut entries);
                    }
                }
                continue;
            }
            push_image(root, &path, *t, None, &mut entries);
        }
    }
    let index = super::checked_index(root, entries)?;
    let name = htd_path.file_stem().map_or_else(|| "plate".to_owned(), |s| s.to_string_lossy().into_owned());
    let pixel_size_um = first_plane_calibration(root, &index);
    super::finish_plate(root, read_first_plane, index, FormatKind::Imagexpress, name, grid, pixel_size_um, |c| {
        htd.get(&format!("WaveName{c}")).cloned().unwrap_or_else(|| format!("w{c}"))
    })
}

/// The pixel size the first image's MetaMorph XML gives (ImageXpress writes it into every
/// TIFF's ImageDescription); `None` when it has none or is not calibrated in a length unit.
fn first_plane_calibration(root: &Path, index: &crate::ComponentIndex) -> Option<f64> {
    let (_, plane) = index.iter().next()?;
    let crate::PlaneRef::File { path, .. } = plane else { return None };
    let text = hcs_vfs::tiff::read_tiff_description(&root.join(path)).ok().flatten()?;
    super::metamorph::parse(&text)?.pixel_size_um
}

fn push_image(root: &Path, path: &Path, t: u32, z_dir: Option<u32>, out: &mut Vec<(ImageKey, PlaneRef)>) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let Some(parsed) = parse_name(&name) else {
        return;
    };
    if !path.is_file() {
        return;
    }
    let Ok(rel) = path.strip_prefix(root) else {
        return;
    };
    let key = ImageKey {
        well: parsed.well,
        timepoint: t,
        site: parsed.site.unwrap_or(1),
        channel: parsed.channel.unwrap_or(1),
        z: z_dir.or(parsed.z).unwrap_or(1),
    };
    out.push((key, PlaneRef::file(rel)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_optional_parts_and_thumbnails() {
        let p = parse_name("A01_s3_w2.tif").expect("parses");
        assert_eq!((p.well.to_string(), p.site, p.channel, p.z), ("A01".into(), Some(3), Some(2), None));
        let p = parse_name("Plate1_B12_s001_w1_z005.TIFF").expect("parses");
        assert_eq!((p.well.to_string(), p.site, p.channel, p.z), ("B12".into(), Some(1), Some(1), Some(5)));
        let p = parse_name("C04.tif").expect("parses");
        assert_eq!((p.site, p.channel), (None, None));
        assert!(parse_name("A01_s1_w1_thumb1234.tif").is_none());
        assert!(parse_name("notes.txt").is_none());
    }
}
