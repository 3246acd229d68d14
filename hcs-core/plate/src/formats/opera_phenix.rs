//! Opera Phenix plates: `Images/Index.xml` (Harmony) lists every image with its row, column,
//! field, plane, timepoint, channel, stage position and file; images are
//! `r01c01f01p01-ch1sk1fk1fl1.tiff`.
//!
//! Field numbers are acquisition order, not raster order. Sites are renumbered per well in
//! raster order from the stage positions: rows by Y descending (stage Y points up), columns by X
//! ascending, each coordinate clustered with a tolerance of a quarter of the grid step (stage
//! positions jitter; exact float equality is wrong).
//!
//! The XML is parsed without DTD support (no entity expansion) and at most 256 MiB is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::FormatError;
use crate::{FormatKind, ImageKey, PlaneRef, Plate, WellId};

const MAX_XML_BYTES: u64 = 256 * 1024 * 1024;

/// Where the Index.xml of a plate is, if any (`Images/Index.xml`, else `Index.xml`).
pub fn find_index(root: &Path) -> Option<PathBuf> {
    ["Images/Index.xml", "Index.xml", "Images/Index.idx.xml"].iter().map(|p| root.join(p)).find(|p| p.is_file())
}

/// One `<Image>` entry.
#[derive(Clone, Debug, PartialEq)]
struct ImageEntry {
    url: String,
    well: WellId,
    field: u32,
    plane: u32,
    timepoint: u32,
    channel: u32,
    x: f64,
    y: f64,
    /// `AbsPositionZ` in metres, when given.
    z: Option<f64>,
}

fn bad(path: &Path, message: impl Into<String>) -> FormatError {
    FormatError::BadMetadata { path: path.to_path_buf(), message: message.into() }
}

fn child_text<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children().find(|c| c.tag_name().name() == name).and_then(|c| c.text()).map(str::trim)
}

/// A file name from the XML: a plain name, nothing that could leave the images folder.
fn safe_file_name(url: &str) -> bool {
    !url.is_empty() && !url.contains(['/', '\\']) && url != "." && url != ".." && !url.contains('\0')
}

/// What Index.xml says.
#[derive(Debug)]
struct ParsedIndex {
    images: Vec<ImageEntry>,
    channel_names: BTreeMap<u32, String>,
    pixel_size_um: Option<f64>,
}

/// Parse Index.xml text into image entries, channel names and the pixel size (µm).
fn parse_index(xml_path: &Path, text: &str) -> Result<ParsedIndex, FormatError> {
    let options = roxmltree::ParsingOptions { allow_dtd: false, ..roxmltree::ParsingOptions::default() };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| bad(xml_path, format!("invalid Index.xml: {e}")))?;
    let mut images = Vec::new();
    let mut pixel_size = None;
    for node in doc.descendants().filter(|n| n.tag_name().name() == "Image" && n.children().any(|c| c.is_element())) {
        let num = |name: &str| -> Result<u32, FormatError> {
            child_text(node, name)
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad(xml_path, format!("an <Image> lacks a numeric <{name}>")))
        };
        let pos = |name: &str| child_text(node, name).and_then(|t| t.parse::<f64>().ok()).unwrap_or(0.0);
        let url = child_text(node, "URL").ok_or_else(|| bad(xml_path, "an <Image> lacks <URL>"))?.to_owned();
        if !safe_file_name(&url) {
            return Err(FormatError::BadMetadata {
                path: xml_path.to_path_buf(),
                message: format!("image URL `{url}` is not a plain file name (path tricks are refused)"),
            });
        }
        let (row, col) = (num("Row")?, num("Col")?);
        if row == 0 || col == 0 || row > 1000 || col > 1000 {
            return Err(bad(xml_path, format!("well row {row} / column {col} out of range")));
        }
        if pixel_size.is_none() {
            pixel_size = child_text(node, "ImageResolutionX").and_then(|t| t.parse::<f64>().ok()).map(|m| m * 1e6);
        }
        images.push(ImageEntry {
            url,
            well: WellId::new(u16::try_from(row - 1).unwrap_or(0), u16::try_from(col).unwrap_or(0)),
            field: num("FieldID")?,
            plane: num("PlaneID")?,
            timepoint: child_text(node, "TimepointID").and_then(|t| t.parse().ok()).unwrap_or(0) + 1,
            channel: num("ChannelID")?,
            x: pos("PositionX"),
            y: pos("PositionY"),
            z: child_text(node, "AbsPositionZ").and_then(|t| t.parse::<f64>().ok()).filter(|z| z.is_finite()),
        });
    }
    let mut channels = BTreeMap::new();
    for entry in doc.descendants().filter(|n| n.tag_name().name() == "Entry") {
        if let (Some(id), Some(name)) =
            (entry.attribute("ChannelID").and_then(|v| v.parse::<u32>().ok()), child_text(entry, "ChannelName"))
        {
            channels.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    Ok(ParsedIndex { images, channel_names: channels, pixel_size_um: pixel_size })
}

/// The stage step between neighbouring sites in µm ([`crate::stage::site_step`]) of the first
/// well's fields, from their `PositionX/Y` (metres).
fn site_step_um(
    images: &[ImageEntry],
    sites: &BTreeMap<(WellId, u32), u32>,
    grid: (u32, u32),
) -> (Option<f64>, Option<f64>) {
    let Some(first) = images.iter().map(|i| i.well).min() else { return (None, None) };
    let mut at = BTreeMap::new();
    for img in images.iter().filter(|i| i.well == first) {
        if let Some(&site) = sites.get(&(img.well, img.field)) {
            at.entry(site).or_insert((img.x * 1e6, img.y * 1e6));
        }
    }
    crate::stage::site_step(&at.into_iter().collect::<Vec<_>>(), grid)
}

/// Spacing of the z-planes in µm: the median step between consecutive planes' `AbsPositionZ`
/// (metres) in each field, channel and timepoint; `None` without positions or with one plane.
fn z_spacing_um(images: &[ImageEntry]) -> Option<f64> {
    // (well, field, channel, timepoint) → (plane, position) of each plane.
    type Stack = (WellId, u32, u32, u32);
    let mut stacks: BTreeMap<Stack, Vec<(u32, f64)>> = BTreeMap::new();
    for img in images {
        if let Some(z) = img.z {
            stacks.entry((img.well, img.field, img.channel, img.timepoint)).or_default().push((img.plane, z));
        }
    }
    let mut steps: Vec<f64> = Vec::new();
    for planes in stacks.values_mut() {
        planes.sort_by_key(|p| p.0);
        steps.extend(planes.windows(2).map(|w| ((w[1].1 - w[0].1) / f64::from(w[1].0 - w[0].0).max(1.0)).abs()));
    }
    steps.sort_by(f64::total_cmp);
    let median = *steps.get(steps.len() / 2)?;
    // Absolute positions (0.135 m) leave float noise in a 2 µm step: keep picometres.
    (median > 0.0 && median.is_finite()).then_some((median * 1e12).round() / 1e6)
}

/// The largest gap between consecutive sorted values.
fn max_gap(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max)
}

/// Cluster coordinates: values closer than `tol` belong together. Returns the cluster centres in
/// ascending order.
fn clusters(values: &[f64], tol: f64) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mut groups: Vec<Vec<f64>> = Vec::new();
    for x in v {
        match groups.last_mut() {
            Some(g) if x - g[g.len() - 1] <= tol => g.push(x),
            _ => groups.push(vec![x]),
        }
    }
    groups.iter().map(|g| g.iter().sum::<f64>() / g.len() as f64).collect()
}

fn nearest(centres: &[f64], x: f64) -> usize {
    centres.iter().enumerate().min_by(|a, b| (a.1 - x).abs().total_cmp(&(b.1 - x).abs())).map_or(0, |(i, _)| i)
}

/// Per well: field id → raster site number, and the grid `(rows, cols)`.
fn raster_sites(images: &[ImageEntry]) -> (BTreeMap<(WellId, u32), u32>, (u32, u32)) {
    let mut fields: BTreeMap<WellId, BTreeMap<u32, (f64, f64)>> = BTreeMap::new();
    for img in images {
        fields.entry(img.well).or_default().entry(img.field).or_insert((img.x, img.y));
    }
    let mut map = BTreeMap::new();
    let mut grid = (1, 1);
    for (well, fs) in fields {
        let (all_x, all_y): (Vec<f64>, Vec<f64>) = fs.values().copied().unzip();
        // A quarter of the grid step, the largest gap along either axis: along an axis with a
        // single row or column the only gaps are stage error, which must not split it.
        let tol = max_gap(&all_x).max(max_gap(&all_y)) / 4.0;
        let xs = clusters(&all_x, tol);
        let mut ys = clusters(&all_y, tol);
        ys.reverse(); // highest Y is the top row
        let cols = xs.len() as u32;
        grid = (grid.0.max(ys.len() as u32), grid.1.max(cols));
        for (field, (x, y)) in fs {
            let r = nearest(&ys, y) as u32;
            let c = nearest(&xs, x) as u32;
            map.insert((well, field), r * cols + c + 1);
        }
    }
    (map, grid)
}

/// Read an Opera Phenix plate.
pub fn read(root: &Path) -> Result<Plate, FormatError> {
    read_with(root, true)
}

/// Read an Opera Phenix plate; its tile shape and dtype are read from the first image only when
/// `read_first_plane` (else they are `None`).
pub(crate) fn read_with(root: &Path, read_first_plane: bool) -> Result<Plate, FormatError> {
    let xml_path = find_index(root).ok_or_else(|| FormatError::MissingMetadata {
        path: root.to_path_buf(),
        format: "Opera Phenix",
        what: "Images/Index.xml",
    })?;
    let size = std::fs::metadata(&xml_path).map_err(|e| FormatError::io(&xml_path, e))?.len();
    if size > MAX_XML_BYTES {
        return Err(bad(&xml_path, format!("Index.xml is {size} bytes, above the {MAX_XML_BYTES}-byte limit")));
    }
    let bytes = std::fs::read(&xml_path).map_err(|e| FormatError::io(&xml_path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(&xml_path, "Index.xml is not UTF-8"))?;
    let ParsedIndex { images, channel_names, pixel_size_um } = parse_index(&xml_path, text)?;
    if images.is_empty() {
        return Err(bad(&xml_path, "Index.xml lists no images"));
    }
    let image_dir = xml_path.parent().unwrap_or(root).to_path_buf();
    let (sites, grid) = raster_sites(&images);
    let mut entries = Vec::with_capacity(images.len());
    for img in &images {
        let file = image_dir.join(&img.url);
        if !file.is_file() {
            return Err(FormatError::BadMetadata {
                path: xml_path.clone(),
                message: format!("lists {} but the file is missing", file.display()),
            });
        }
        let rel = file.strip_prefix(root).map(Path::to_path_buf).unwrap_or(file.clone());
        let site = sites.get(&(img.well, img.field)).copied().unwrap_or(img.field);
        let key = ImageKey { well: img.well, timepoint: img.timepoint, site, channel: img.channel, z: img.plane };
        entries.push((key, PlaneRef::file(rel)));
    }
    let index = super::checked_index(root, entries)?;
    let name = root.file_name().map_or_else(|| "plate".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut plate = super::finish_plate(
        root,
        read_first_plane,
        index,
        FormatKind::OperaPhenix,
        name,
        Some(grid),
        pixel_size_um,
        |c| channel_names.get(&c).cloned().unwrap_or_else(|| format!("ch{c}")),
    )?;
    plate.metadata.z_spacing_um = z_spacing_um(&images);
    plate.metadata.site_step_um = site_step_um(&images, &sites, grid);
    plate.unmatched = unlisted(root, &image_dir, &images)?;
    Ok(plate)
}

/// The files of the images folder that Index.xml does not list (besides the index files and
/// hidden files such as `.DS_Store` or a Mac's `._` companions): images of a well missing from a
/// stale or partial index, stray files. Not read, and listed like an ImageXpress plate's
/// misnamed files, relative to `root`. Folders are not listed: an index beside the plate's
/// other folders (Index.xml at the root) would list them all.
fn unlisted(root: &Path, image_dir: &Path, images: &[ImageEntry]) -> Result<Vec<PathBuf>, FormatError> {
    let listed: std::collections::BTreeSet<PathBuf> = images.iter().map(|i| image_dir.join(&i.url)).collect();
    let is_index = |name: &str| {
        let lower = name.to_ascii_lowercase();
        lower.starts_with("index") && lower.ends_with(".xml")
    };
    Ok(super::sorted_entries(image_dir)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.is_file() && !listed.contains(p))
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| is_index(n) || n.starts_with('.')))
        .map(|p| p.strip_prefix(root).map(Path::to_path_buf).unwrap_or(p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustering_tolerates_stage_jitter() {
        let xs = [0.0, 1.0e-6, 600.0e-6, 599.0e-6, 1200.2e-6, 1199.9e-6];
        let c = clusters(&xs, max_gap(&xs) / 4.0);
        assert_eq!(c.len(), 3);
        assert!((c[1] - 599.5e-6).abs() < 1e-9);
    }

    #[test]
    fn a_single_row_with_stage_error_stays_one_row() {
        // A 1×2 grid: x differs by a tile step, y only by stage error.
        let entry = |field, x, y| ImageEntry {
            url: format!("f{field}.tiff"),
            well: "A01".parse().expect("well"),
            field,
            plane: 1,
            timepoint: 1,
            channel: 1,
            x,
            y,
            z: None,
        };
        let fields = [entry(1, 0.0, 3.0e-6), entry(2, 600.0e-6, -2.0e-6)];
        let (map, grid) = raster_sites(&fields);
        assert_eq!(grid, (1, 2));
        assert_eq!(map.values().copied().collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn entities_and_path_tricks_are_refused() {
        let p = Path::new("Index.xml");
        let billion_laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><r>&lol2;</r>"#;
        let err = parse_index(p, billion_laughs).expect_err("DTD refused");
        assert!(err.to_string().contains("invalid Index.xml"), "{err}");

        for url in ["../../etc/passwd", "/etc/passwd", "sub/x.tiff", ".."] {
            let xml = format!(
                "<EvaluationInputData><Images><Image><URL>{url}</URL><Row>1</Row><Col>1</Col><FieldID>1</FieldID><PlaneID>1</PlaneID><ChannelID>1</ChannelID></Image></Images></EvaluationInputData>"
            );
            let err = parse_index(p, &xml).expect_err("path trick");
            assert!(err.to_string().contains("not a plain file name"), "{url}: {err}");
        }
        let err = parse_index(p, "<a><Image><URL>x.tiff</URL><Row>one</Row></Image></a>").expect_err("bad row");
        assert!(err.to_string().contains("<Row>"), "{err}");
    }
}
