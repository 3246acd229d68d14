//! ImageXpress plates: `<plate>.HTD` in the root, images in `TimePoint_N/[ZStep_N/]` (or in the
//! root) named `A01_s1_w1.tif` (site, channel, `_z<N>` and `_t<N>` parts optional; a plate-name
//! prefix and a GUID after the wavelength, as MetaXpress exports write them, accepted; `_thumb`
//! images skipped). Every other file or folder among the images is listed in
//! [`Plate::unmatched`] — never skipped silently; a name's `_t`/`_z` that its `TimePoint_N` /
//! `ZStep_N` folder contradicts is listed in [`Plate::disagreements`] (the folder's is used).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::{FormatError, htd, sorted_entries};
use crate::{FormatKind, ImageKey, PlaneRef, Plate, WellId};

static NAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // The well is upper case (so a prefix like `A01_` cannot make `s3` a well); s/w/z/t and the
    // extension in any case. The prefix is as short as can be (`??`), so in `A01_S3_W1.tif` the
    // well is A01, not S3.
    // MetaXpress exports append a GUID straight after the wavelength number (`_w1C5C6F2A5-…`).
    // Z and time, when named, come last, in that order (`_z2_t3`, or either alone).
    Regex::new(
        r"^(?:.*?_)??([A-Z]{1,2}\d{1,3})(?:_[sS](\d+))?(?:_[wW](\d+?)(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})?)?(?:_[zZ](\d+))?(?:_[tT](\d+))?\.(?i:tif|tiff)$",
    )
    .ok()
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
    /// Timepoint, if named.
    pub timepoint: Option<u32>,
}

/// Parse `A01_s1_w2_z3_t4.tif` and its shorter forms; `None` for thumbnails and macOS
/// AppleDouble files (`._A01_s1_w1.tif`, the resource forks a Mac leaves on a file share), which
/// a scan skips, and for names whose numbers do not fit 32 bits and other files, which it lists
/// as not read.
pub fn parse_name(name: &str) -> Option<ParsedName> {
    if is_thumbnail(name) || is_apple_double(name) {
        return None;
    }
    let caps = NAME.as_ref()?.captures(name)?;
    let well: WellId = caps.get(1)?.as_str().parse().ok()?;
    // A number named but out of range is no image name, not a component left unnamed (which
    // would make `_s99999999999` site 1).
    let num = |i: usize| -> Option<Option<u32>> {
        match caps.get(i) {
            None => Some(None),
            Some(m) => m.as_str().parse::<u32>().ok().map(Some),
        }
    };
    Some(ParsedName { well, site: num(2)?, channel: num(3)?, z: num(4)?, timepoint: num(5)? })
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
    let htd_files = htd::htd_files(root)?;
    let htd_path = htd_files.first().cloned().ok_or_else(|| FormatError::MissingMetadata {
        path: root.to_path_buf(),
        format: "ImageXpress",
        what: ".HTD file",
    })?;
    let htd = htd::read(&htd_path)?;
    let grid = htd_grid(&htd);
    let scan = scan(root)?;
    if scan.entries.is_empty() {
        no_image_names(root, &scan.unmatched)?;
    }
    let index = super::checked_index(root, scan.entries)?;
    let mut disagreements = htd_disagreements(&htd, &index);
    disagreements.extend(folder_disagreements(&scan.conflicts));
    if htd_files.len() > 1 {
        let names: Vec<String> =
            htd_files.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        disagreements.push(format!(
            "the plate holds {} .HTD files ({}): {} was read (a name with \"plate\" first, then by name); remove the others or check they agree",
            names.len(),
            names.join(", "),
            names[0]
        ));
    }
    let name = htd_path.file_stem().map_or_else(|| "plate".to_owned(), |s| s.to_string_lossy().into_owned());
    let pixel_size_um = first_plane_calibration(root, &index);
    let mut plate =
        super::finish_plate(root, read_first_plane, index, FormatKind::Imagexpress, name, grid, pixel_size_um, |c| {
            htd.get(&format!("WaveName{c}")).cloned().unwrap_or_else(|| format!("w{c}"))
        })?;
    plate.metadata.site_step_um = first_well_site_step(root, &plate.index, plate.metadata.grid);
    plate.unmatched = scan.unmatched.iter().filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf)).collect();
    plate.disagreements.extend(disagreements);
    Ok(plate)
}

/// The error of a plate whose image folders hold TIFF files but no image name: what they are
/// named instead (`Ok` where there is no TIFF file at all: then "no images found").
fn no_image_names(root: &Path, unmatched: &[PathBuf]) -> Result<(), FormatError> {
    let is_tiff = |p: &&PathBuf| {
        p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff")) && p.is_file()
    };
    let tiffs: Vec<&PathBuf> = unmatched.iter().filter(is_tiff).collect();
    if tiffs.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> =
        tiffs.iter().take(3).map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string()).collect();
    Err(FormatError::NoImageNames {
        path: root.to_path_buf(),
        format: "ImageXpress",
        pattern: "`A01_s1_w1.tif`: a well, then `_s` site and `_w` wavelength when there are several, optionally a plate-name prefix, a MetaXpress GUID after the wavelength, `_z` and `_t`; thumbnails and `._` files are skipped",
        tiffs: tiffs.len(),
        examples: shown.join(", "),
    })
}

/// What a scan of a plate's image folders found.
#[derive(Default)]
struct Scan {
    /// Every image, by its components.
    entries: Vec<(ImageKey, PlaneRef)>,
    /// Files and folders among the images that are not images of the plate.
    unmatched: Vec<PathBuf>,
    /// Images whose name's `_t` / `_z` their folder contradicts.
    conflicts: Vec<Conflict>,
}

/// The folders an image lies in: its `TimePoint_N` (`None` for images in the plate root) and
/// its `ZStep_N`, by number.
#[derive(Clone, Copy, Debug, Default)]
struct Folders {
    timepoint: Option<u32>,
    z: Option<u32>,
}

/// An image whose name gives another timepoint or z than its folder does.
#[derive(Debug)]
struct Conflict {
    /// The image, relative to the plate root.
    path: PathBuf,
    /// `"timepoint"` or `"z"`.
    what: &'static str,
    /// The name's value.
    named: u32,
    /// The folder's value (the one indexed).
    folder: u32,
}

/// Index the images of `TimePoint_N/[ZStep_N/]` folders, or of the root (and its `ZStep_N`
/// folders) when there are no timepoint folders.
fn scan(root: &Path) -> Result<Scan, FormatError> {
    let mut timepoint_dirs = Vec::new();
    for entry in sorted_entries(root)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(t) = dir_number(&TIMEPOINT_DIR, &name)
            && entry.path().is_dir()
        {
            timepoint_dirs.push((Some(t), entry.path()));
        }
    }
    if timepoint_dirs.is_empty() {
        // Some exports put the images in the root.
        timepoint_dirs.push((None, root.to_path_buf()));
    }
    let mut scan = Scan::default();
    for (timepoint, dir) in &timepoint_dirs {
        for entry in sorted_entries(dir)? {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(z) = dir_number(&ZSTEP_DIR, &name)
                && path.is_dir()
            {
                for file in sorted_entries(&path)? {
                    scan.push(root, &file.path(), Folders { timepoint: *timepoint, z: Some(z) });
                }
                continue;
            }
            let folders = Folders { timepoint: *timepoint, z: None };
            let metadata = timepoint.is_none() && is_plate_metadata(&name);
            if !push_image(root, &path, folders, &mut scan) && !metadata {
                scan.unmatched.push(path);
            }
        }
    }
    Ok(scan)
}

impl Scan {
    /// Index `path` if it is an image, else list it as unmatched.
    fn push(&mut self, root: &Path, path: &Path, folders: Folders) {
        if !push_image(root, path, folders, self) {
            self.unmatched.push(path.to_path_buf());
        }
    }
}

/// One line per component for the images whose name's `_t` / `_z` their folder contradicts:
/// how many, and the first of them.
fn folder_disagreements(conflicts: &[Conflict]) -> Vec<String> {
    ["timepoint", "z"]
        .into_iter()
        .filter_map(|what| {
            let mut these = conflicts.iter().filter(|c| c.what == what);
            let first = these.next()?;
            let n = 1 + these.count();
            let folder = if what == "z" { "ZStep" } else { "TimePoint" };
            let images =
                if n == 1 { "1 image's name gives".to_owned() } else { format!("{n} images' names give") };
            let its = if n == 1 { "its" } else { "their" };
            Some(format!(
                "{images} another {what} than {its} {folder}_N folder (the folder's is used), e.g. {}: {what} {} in the name, {} by the folder",
                first.path.display(),
                first.named,
                first.folder
            ))
        })
        .collect()
}

/// `"Key", FALSE` in the `.HTD` (`"Sites", FALSE`: one site per well, whatever `XSites` and
/// `YSites` say).
fn htd_false(htd: &BTreeMap<String, String>, key: &str) -> bool {
    htd.get(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// The site grid `(rows, columns)` of the `.HTD`: `YSites` × `XSites` (or the older `SiteRows` ×
/// `SiteColumns`); 1 × 1 when `Sites` is `FALSE`.
fn htd_grid(htd: &BTreeMap<String, String>) -> Option<(u32, u32)> {
    if htd_false(htd, "Sites") {
        return Some((1, 1));
    }
    let num = |k: &str| htd.get(k).and_then(|v| v.trim().parse::<u32>().ok());
    match (num("YSites").or(num("SiteRows")), num("XSites").or(num("SiteColumns"))) {
        (Some(r), Some(c)) if r > 0 && c > 0 => Some((r, c)),
        _ => None,
    }
}

/// The `TRUE`s of the `.HTD`'s `<prefix><row>` lines (`"SiteSelection1", TRUE, FALSE`); `None`
/// when it has no such line.
fn htd_trues(htd: &BTreeMap<String, String>, prefix: &str) -> Option<usize> {
    let rows: Vec<&String> = htd.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).collect();
    (!rows.is_empty())
        .then(|| rows.iter().flat_map(|v| v.split(',')).filter(|t| t.trim().eq_ignore_ascii_case("true")).count())
}

/// A count the `.HTD` gives (`"TimePoints", 3`).
fn htd_count(htd: &BTreeMap<String, String>, key: &str) -> Option<usize> {
    htd.get(key).and_then(|v| v.trim().parse::<usize>().ok())
}

/// The sites per well the `.HTD` announces: 1 when `Sites` is `FALSE`, else the `TRUE`s of its
/// `SiteSelection` rows, else `XSites` × `YSites`.
fn htd_sites(htd: &BTreeMap<String, String>) -> Option<usize> {
    if htd_false(htd, "Sites") {
        return Some(1);
    }
    htd_trues(htd, "SiteSelection").or_else(|| Some(htd_count(htd, "XSites")? * htd_count(htd, "YSites")?))
}

/// A report when the `.HTD`'s `SiteSelection` leaves out sites of its `XSites` × `YSites` grid:
/// the sites then do not fill the grid that [`crate::PlateMetadata::grid`] gives.
fn sparse_site_grid(htd: &BTreeMap<String, String>) -> Option<String> {
    if htd_false(htd, "Sites") {
        return None;
    }
    let selected = htd_trues(htd, "SiteSelection")?;
    let (rows, cols) = (htd_count(htd, "YSites")?, htd_count(htd, "XSites")?);
    (selected < rows * cols).then(|| {
        format!(
            "the .HTD selects {selected} of its {rows} × {cols} sites (SiteSelection): a site grid with gaps, which \
             the plate's {rows} × {cols} grid does not describe (tiles placed by site number on it would be misplaced)"
        )
    })
}

/// Where the `.HTD` and the images disagree: how many timepoints (`TimePoints`), z-steps
/// (`ZSteps`; 1 when `ZSeries` is `FALSE`), wavelengths (`NWavelengths`), sites per well (see
/// [`htd_sites`]) and wells (the `TRUE`s of its `WellsSelection` rows) it announces, and a site
/// selection with gaps.
fn htd_disagreements(htd: &BTreeMap<String, String>, index: &crate::ComponentIndex) -> Vec<String> {
    use crate::Component;
    let num = |k: &str| htd_count(htd, k);
    let (z_key, zs) = if htd_false(htd, "ZSeries") { ("ZSeries FALSE", Some(1)) } else { ("ZSteps", num("ZSteps")) };
    let found_sites = index
        .wells()
        .iter()
        .map(|w| {
            let mut s: Vec<u32> = index.well(*w).map(|(k, _)| k.site).collect();
            s.sort_unstable();
            s.dedup();
            s.len()
        })
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    let mut compare = |what: &str, key: &str, announced: Option<usize>, found: usize, values: String| {
        if let Some(n) = announced
            && n != found
        {
            out.push(format!("the .HTD announces {n} {what} ({key}); the images have {found}{values}"));
        }
    };
    let listed = |c: Component| {
        let v = index.values(c);
        format!(" ({})", v.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))
    };
    compare(
        "timepoints",
        "TimePoints",
        num("TimePoints"),
        index.values(Component::Timepoint).len(),
        listed(Component::Timepoint),
    );
    compare("z-steps", z_key, zs, index.values(Component::Z).len(), listed(Component::Z));
    compare(
        "wavelengths",
        "NWavelengths",
        num("NWavelengths"),
        index.values(Component::Channel).len(),
        listed(Component::Channel),
    );
    let sites_key = if htd_false(htd, "Sites") { "Sites FALSE" } else { "XSites × YSites / SiteSelection" };
    compare("sites per well", sites_key, htd_sites(htd), found_sites, String::new());
    compare("wells", "WellsSelection", htd_trues(htd, "WellsSelection"), index.wells().len(), String::new());
    out.extend(sparse_site_grid(htd));
    out
}

/// Files beside images in a plate's root that are not images: the `.HTD`, hcs's and the
/// instrument's own files, hidden files.
fn is_plate_metadata(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with('.')
        || lower.ends_with(".htd")
        || lower.ends_with(".json")
        || lower.ends_with(".db")
        || lower.ends_with(".txt")
}

/// The pixel size the first image's MetaMorph XML gives (ImageXpress writes it into every
/// TIFF's ImageDescription); `None` when it has none or is not calibrated in a length unit.
fn first_plane_calibration(root: &Path, index: &crate::ComponentIndex) -> Option<f64> {
    let (_, plane) = index.iter().next()?;
    let crate::PlaneRef::File { path, .. } = plane else { return None };
    metamorph_of(&root.join(path))?.pixel_size_um
}

/// The MetaMorph metadata of an image: the first of its ImageDescription tags that is
/// MetaMorph's XML (tifffile, given the XML, adds its own JSON description after it).
fn metamorph_of(path: &Path) -> Option<super::metamorph::MetaMorph> {
    hcs_vfs::tiff::read_tiff_descriptions(path).ok()?.iter().find_map(|text| super::metamorph::parse(text))
}

/// The stage step between neighbouring sites in µm ([`crate::stage::site_step`]) from the
/// MetaMorph `stage-position-x/y` of the first well's sites (first timepoint, channel and z).
fn first_well_site_step(
    root: &Path,
    index: &crate::ComponentIndex,
    grid: Option<(u32, u32)>,
) -> (Option<f64>, Option<f64>) {
    let (Some(grid), Some(first)) = (grid, index.wells().first().copied()) else { return (None, None) };
    let mut at: std::collections::BTreeMap<u32, (f64, f64)> = std::collections::BTreeMap::new();
    for (key, plane) in index.well(first) {
        if at.contains_key(&key.site) {
            continue;
        }
        let crate::PlaneRef::File { path, .. } = plane else { return (None, None) };
        let Some(stage) = metamorph_of(&root.join(path)).and_then(|m| m.stage_um) else {
            return (None, None);
        };
        at.insert(key.site, stage);
    }
    crate::stage::site_step(&at.into_iter().collect::<Vec<_>>(), grid)
}

/// Index `path` if it is an image; `false` if it is not (a thumbnail counts as handled). The
/// folders' timepoint and z win over the name's; where they differ, the image is noted in
/// [`Scan::conflicts`].
fn push_image(root: &Path, path: &Path, folders: Folders, scan: &mut Scan) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return false;
    };
    if is_thumbnail(&name) || is_apple_double(&name) {
        return true; // expected beside the images, never one of them
    }
    let Some(parsed) = parse_name(&name) else {
        return false;
    };
    // A link whose target is gone is indexed: reading it fails naming the file (its well
    // fails, `check --deep` lists it), where skipping it called the plate ragged.
    if !path.is_file() && !path.is_symlink() {
        return false;
    }
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut conflict = |what: &'static str, named: Option<u32>, folder: Option<u32>| {
        if let (Some(named), Some(folder)) = (named, folder)
            && named != folder
        {
            scan.conflicts.push(Conflict { path: rel.to_path_buf(), what, named, folder });
        }
    };
    conflict("timepoint", parsed.timepoint, folders.timepoint);
    conflict("z", parsed.z, folders.z);
    let key = ImageKey {
        well: parsed.well,
        timepoint: folders.timepoint.or(parsed.timepoint).unwrap_or(1),
        site: parsed.site.unwrap_or(1),
        channel: parsed.channel.unwrap_or(1),
        z: folders.z.or(parsed.z).unwrap_or(1),
    };
    scan.entries.push((key, PlaneRef::file(rel)));
    true
}

/// MetaXpress's `_thumb` images beside the real ones.
/// A Mac's AppleDouble companion of a file (`._name`): its resource fork, not an image.
fn is_apple_double(name: &str) -> bool {
    name.starts_with("._")
}

fn is_thumbnail(name: &str) -> bool {
    name.to_ascii_lowercase().contains("_thumb")
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
        // Upper-case parts are parts, not a well after a prefix.
        let p = parse_name("A01_S3_W2_Z4.tif").expect("parses");
        assert_eq!((p.well.to_string(), p.site, p.channel, p.z), ("A01".into(), Some(3), Some(2), Some(4)));
        let p = parse_name("P1_A01_S3_W2.tif").expect("parses");
        assert_eq!((p.well.to_string(), p.site, p.channel), ("A01".into(), Some(3), Some(2)));
        let p = parse_name("C04.tif").expect("parses");
        assert_eq!((p.site, p.channel), (None, None));
        assert!(parse_name("A01_s1_w1_thumb1234.tif").is_none());
        assert!(parse_name("notes.txt").is_none());
        // A Mac's AppleDouble companion of an image is not that image a second time.
        assert!(parse_name("._A01_s1_w1.tif").is_none());
        assert!(parse_name("x._A01_s1_w1.tif").is_some(), "a prefix that merely contains `._`");
        // A number past 32 bits is no image name, not an unnamed component (site 1).
        assert!(parse_name("A01_s4294967297_w1.tif").is_none());
        assert!(parse_name("A01_s1_w1_t99999999999.tif").is_none());
        assert_eq!(parse_name("A01_s4294967295_w1.tif").and_then(|p| p.site), Some(u32::MAX));
    }

    #[test]
    fn metaxpress_export_names_with_a_plate_prefix_and_a_guid_after_the_wavelength() {
        let guid = "C5C6F2A5-1234-4ABC-9DEF-0123456789AB";
        let p = parse_name(&format!("Screen 3_A01_s4_w2{guid}.tif")).expect("parses");
        assert_eq!((p.well.to_string(), p.site, p.channel, p.z), ("A01".into(), Some(4), Some(2), None));
        // A GUID that starts with digits does not change the wavelength.
        let p = parse_name("P_B03_s1_w31234ABCD-1234-4ABC-9DEF-0123456789AB.tif").expect("parses");
        assert_eq!(p.channel, Some(3));
        let p = parse_name(&format!("P_B03_w1{guid}_z2.tif")).expect("parses");
        assert_eq!((p.site, p.channel, p.z), (None, Some(1), Some(2)));
        assert!(parse_name(&format!("P_B03_s1_w1{guid}_thumb.tif")).is_none());
        assert!(parse_name("P_B03_s1_w1junk.tif").is_none(), "only a GUID may follow the wavelength");
    }

    #[test]
    fn z_and_time_name_parts_alone_together_and_after_a_guid() {
        let parts = |n: &str| parse_name(n).map(|p| (p.well.to_string(), p.site, p.channel, p.z, p.timepoint));
        assert_eq!(parts("A01_s1_w1_z2_t3.tif"), Some(("A01".into(), Some(1), Some(1), Some(2), Some(3))));
        assert_eq!(parts("A01_s1_w1_t3.tif"), Some(("A01".into(), Some(1), Some(1), None, Some(3))));
        assert_eq!(parts("A01_t12.TIF"), Some(("A01".into(), None, None, None, Some(12))));
        assert_eq!(parts("A01_s002_w1_Z003_T004.tif"), Some(("A01".into(), Some(2), Some(1), Some(3), Some(4))));
        let guid = "3A741B01-366B-FA26-2EEB-B860EA267C9B";
        assert_eq!(
            parts(&format!("Plate1_A01_w1{guid}_z2_t3.tif")),
            Some(("A01".into(), None, Some(1), Some(2), Some(3)))
        );
        // Single-site MetaXpress exports name no site.
        assert_eq!(parts(&format!("Plate1_A01_w1{guid}.tif")), Some(("A01".into(), None, Some(1), None, None)));
        // Time before z is not a form MetaXpress writes.
        assert_eq!(parts("A01_s1_w1_t3_z2.tif"), None);
        assert_eq!(parts("A01_s1_w1_t.tif"), None);
    }

    #[test]
    fn sites_false_means_one_site_and_a_sparse_selection_is_reported() {
        let htd = |lines: &[(&str, &str)]| -> BTreeMap<String, String> {
            lines.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let stale = htd(&[("Sites", "FALSE"), ("XSites", "3"), ("YSites", "2")]);
        assert_eq!((htd_grid(&stale), htd_sites(&stale)), (Some((1, 1)), Some(1)));
        let grid = htd(&[("Sites", "TRUE"), ("XSites", "3"), ("YSites", "2")]);
        assert_eq!((htd_grid(&grid), htd_sites(&grid)), (Some((2, 3)), Some(6)));
        let legacy = htd(&[("SiteColumns", "4"), ("SiteRows", "1")]);
        assert_eq!(htd_grid(&legacy), Some((1, 4)));
        assert_eq!(sparse_site_grid(&grid), None);

        let mut sparse = grid.clone();
        sparse.insert("SiteSelection1".into(), "TRUE, FALSE, TRUE".into());
        sparse.insert("SiteSelection2".into(), "FALSE, TRUE, TRUE".into());
        assert_eq!(htd_sites(&sparse), Some(4));
        let report = sparse_site_grid(&sparse).expect("gaps reported");
        assert!(report.starts_with("the .HTD selects 4 of its 2 × 3 sites (SiteSelection)"), "{report}");
        let mut full = grid;
        full.insert("SiteSelection1".into(), "TRUE, TRUE, TRUE".into());
        full.insert("SiteSelection2".into(), "TRUE, TRUE, TRUE".into());
        assert_eq!((htd_sites(&full), sparse_site_grid(&full)), (Some(6), None));
    }
}
