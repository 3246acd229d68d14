//! Pictures of the output: each finished well's final image, channels composited in colour with
//! one contrast per channel for the whole plate (so wells compare), as the labelled
//! `results/overview.png` and as the report's thumbnails.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use rayon::prelude::*;

use crate::plate::formats::open_plate;
use crate::plate::{ImageKey, WellId};
use crate::vfs::PlaneData;

use super::RunFacts;
use super::run_json::RunJson;

/// File name in `results/`.
pub const FILE: &str = "overview.png";

/// Channel colours, in the order of the plate's channels (magenta and green first: they stay
/// distinct for colour-blind readers).
const PALETTE: [(&str, [f32; 3]); 6] = [
    ("#ff00ff", [1.0, 0.0, 1.0]),
    ("#00ff00", [0.0, 1.0, 0.0]),
    ("#00ffff", [0.0, 1.0, 1.0]),
    ("#ff0000", [1.0, 0.0, 0.0]),
    ("#ffff00", [1.0, 1.0, 0.0]),
    ("#4080ff", [0.25, 0.5, 1.0]),
];

/// A channel as the pictures show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChannelColor {
    /// 1-based index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// CSS colour.
    pub color: String,
    /// Grey level shown black (the plate's 0.5th percentile).
    pub low: f32,
    /// Grey level shown full colour (the 99.5th percentile).
    pub high: f32,
}

/// One well's thumbnail for the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Thumbnail {
    /// `data:image/png;base64,…`.
    pub src: String,
    /// Pixels.
    pub width: usize,
    /// Pixels.
    pub height: usize,
    /// Micrometres per thumbnail pixel, where the plate gives a pixel size.
    pub um_per_px: Option<f64>,
}

/// What [`render`] made.
#[derive(Debug, Default)]
pub struct Pictures {
    /// `overview.png`, unless no well could be shown.
    pub overview_png: Option<Vec<u8>>,
    /// By well name.
    pub thumbnails: BTreeMap<String, Thumbnail>,
    /// The channels' colours and contrast.
    pub channels: Vec<ChannelColor>,
    /// What could not be shown, and what the pictures assume.
    pub notes: Vec<String>,
}

/// One band of rows summed column by column: what [`shrink_by`] walks for each kind of sample.
trait BandSums<T>: Send {
    /// Forget the previous band.
    fn clear(&mut self);
    /// Add one row of the band to the column sums (whole rows at once, without branches, so the
    /// loop vectorizes).
    fn add(&mut self, row: &[T]);
    /// The mean of the block made of `columns` of the band's `rows` rows.
    fn mean(&self, columns: std::ops::Range<usize>, rows: usize) -> f32;
}

/// Block means of `plane` so neither side exceeds `max_side`; also the factor. Each band of
/// `step` rows is added into per-column sums by a [`BandSums`] from `sums`, then each block's
/// columns finished. Bands are independent: they are shrunk by every worker (a final mosaic is
/// shrunk as it is written, by the step's thread, while the other cores had nothing to do).
fn shrink_by<T, S>(
    plane: ArrayView2<'_, T>,
    max_side: usize,
    sums: impl Fn(usize) -> S + Sync + Send,
) -> (Array2<f32>, usize)
where
    T: Copy + Sync,
    S: BandSums<T>,
{
    let (h, w) = plane.dim();
    let step = h.max(w).div_ceil(max_side.max(1)).max(1);
    let (sh, sw) = (h.div_ceil(step).max(1), w.div_ceil(step).max(1));
    let mut small = Array2::zeros((sh, sw));
    small.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each_init(
        || (sums(w), Vec::new()),
        |(sums, strided), (y, mut out)| {
            sums.clear();
            let band = plane.slice(s![(y * step).min(h)..((y + 1) * step).min(h), ..]);
            for row in band.rows() {
                match row.as_slice() {
                    Some(row) => sums.add(row),
                    None => {
                        strided.clear();
                        strided.extend(row.iter().copied());
                        sums.add(strided);
                    }
                }
            }
            for (x, o) in out.iter_mut().enumerate() {
                *o = sums.mean(x * step..((x + 1) * step).min(w), band.nrows());
            }
        },
    );
    (small, step)
}

/// Column sums and counts of finite samples, in f64.
struct FloatSums {
    sums: Vec<f64>,
    counts: Vec<u32>,
}

impl<T: Copy + Into<f64>> BandSums<T> for FloatSums {
    fn clear(&mut self) {
        self.sums.fill(0.0);
        self.counts.fill(0);
    }

    fn add(&mut self, row: &[T]) {
        for ((s, n), &v) in self.sums.iter_mut().zip(self.counts.iter_mut()).zip(row) {
            let v: f64 = v.into();
            let finite = v.is_finite();
            *s += if finite { v } else { 0.0 };
            *n += u32::from(finite);
        }
    }

    fn mean(&self, columns: std::ops::Range<usize>, _: usize) -> f32 {
        let n: u32 = self.counts[columns.clone()].iter().sum();
        if n == 0 { 0.0 } else { (self.sums[columns].iter().sum::<f64>() / f64::from(n)) as f32 }
    }
}

/// Column sums of integer samples, which are all finite: exact, as the f64 sums of integers
/// below 2⁵³ are, and each block's sum divided by its sample count in f64 as there — the same
/// means bit for bit as [`FloatSums`], without its conversion and finiteness test of every
/// sample (a final mosaic is shrunk as it is written).
struct IntegerSums(Vec<u64>);

impl<T: Copy + Into<u64>> BandSums<T> for IntegerSums {
    fn clear(&mut self) {
        self.0.fill(0);
    }

    fn add(&mut self, row: &[T]) {
        self.0.iter_mut().zip(row).for_each(|(s, &v)| *s += v.into());
    }

    fn mean(&self, columns: std::ops::Range<usize>, rows: usize) -> f32 {
        let n = rows * columns.len();
        if n == 0 { 0.0 } else { (self.0[columns].iter().sum::<u64>() as f64 / n as f64) as f32 }
    }
}

/// Block means of float samples (non-finite ones left out); see [`shrink_by`].
fn shrink<T: Copy + Into<f64> + Sync>(plane: ArrayView2<'_, T>, max_side: usize) -> (Array2<f32>, usize) {
    shrink_by(plane, max_side, |w| FloatSums { sums: vec![0.0; w], counts: vec![0; w] })
}

/// Block means of integer samples; see [`shrink_by`].
fn shrink_integers<T: Copy + Into<u64> + Sync>(plane: ArrayView2<'_, T>, max_side: usize) -> (Array2<f32>, usize) {
    shrink_by(plane, max_side, |w| IntegerSums(vec![0; w]))
}

/// The `q` quantile of `values` (the sample at rank `round((n - 1) q)` in `f32::total_cmp`
/// order; 0 when there is none): the sample a full sort would put there, found in linear time
/// (the full sort was ~5–8 ms of the standard plate's report, written after the wells on one
/// thread). Reorders `values`.
fn percentile(values: &mut [f32], q: f64) -> f32 {
    let rank = ((values.len().saturating_sub(1)) as f64 * q).round() as usize;
    if rank >= values.len() {
        return 0.0;
    }
    *values.select_nth_unstable_by(rank, f32::total_cmp).1
}

/// An RGB image, `(height, width, 3)`.
type Rgb = Array3<u8>;

fn composite(planes: &[(usize, &Array2<f32>)], channels: &[ChannelColor]) -> Option<Rgb> {
    let (h, w) = planes.first()?.1.dim();
    let mut sum = Array3::<f32>::zeros((h, w, 3));
    for &(c, plane) in planes {
        let (Some(ch), Some((_, colour))) = (channels.get(c), PALETTE.get(c % PALETTE.len())) else { continue };
        let span = (ch.high - ch.low).max(f32::EPSILON);
        for ((y, x), &v) in plane.indexed_iter() {
            if y >= h || x >= w {
                continue;
            }
            let t = ((v - ch.low) / span).clamp(0.0, 1.0);
            for k in 0..3 {
                sum[(y, x, k)] += t * colour[k];
            }
        }
    }
    Some(sum.mapv(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
}

/// Draw `text` with the 8×8 font at `scale`, top-left at `(x, y)`; clipped to the image.
fn draw_text(img: &mut Rgb, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 3]) {
    let (h, w, _) = img.dim();
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits >> gx & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (py, px) = (y + gy * scale + dy, x + (i * 8 + gx) * scale + dx);
                        if py < h && px < w {
                            img.slice_mut(s![py, px, ..]).assign(&ndarray::arr1(&colour));
                        }
                    }
                }
            }
        }
    }
}

fn fill(img: &mut Rgb, y: std::ops::Range<usize>, x: std::ops::Range<usize>, colour: [u8; 3]) {
    let (h, w, _) = img.dim();
    for py in y.start.min(h)..y.end.min(h) {
        for px in x.start.min(w)..x.end.min(w) {
            img.slice_mut(s![py, px, ..]).assign(&ndarray::arr1(&colour));
        }
    }
}

/// A round scale-bar length (µm) near a quarter of `width_um`.
pub fn scale_bar_um(width_um: f64) -> f64 {
    let target = width_um / 4.0;
    [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
        .into_iter()
        .rev()
        .find(|&l| l <= target)
        .unwrap_or(1.0)
}

/// Draw a scale bar (and its length) in the lower right of the region at `(x0, y0)`.
fn scale_bar(img: &mut Rgb, (y0, x0): (usize, usize), (h, w): (usize, usize), um_per_px: f64) {
    let um = scale_bar_um(w as f64 * um_per_px);
    let px = (um / um_per_px).round() as usize;
    if px < 2 || px + 8 > w || h < 24 {
        return;
    }
    let (bx, by) = (x0 + w - px - 6, y0 + h - 8);
    fill(img, by..by + 3, bx..bx + px, [255, 255, 255]);
    let label = format!("{um} um");
    draw_text(img, (x0 + w - 6).saturating_sub(label.len() * 8), by - 10, &label, 1, [255, 255, 255]);
}

fn encode_rgb(img: &Rgb) -> Option<Vec<u8>> {
    let (h, w, _) = img.dim();
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, u32::try_from(w).ok()?, u32::try_from(h).ok()?);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // A picture for a page: fast compression (deflate took ~25 ms of a run before; the file is a
    // few percent larger).
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&img.iter().copied().collect::<Vec<u8>>()).ok()?;
    writer.finish().ok()?;
    Some(bytes)
}

/// The longest side of a well's picture for a run that shows `wells` wells.
fn side_for(wells: usize) -> usize {
    match wells {
        0..=24 => 256,
        25..=96 => 160,
        _ => 96,
    }
}

/// Where a plane comes in the order the pictures pick from: the first timepoint, z-plane and
/// site of its well and channel.
fn picture_order(key: &ImageKey) -> (u32, u32, u32) {
    (key.timepoint, key.z, key.site)
}

/// The pictures' planes, shrunk while the run writes its final output (the executor's
/// `on_output`), so that the report need not read the mosaics back after the last well: for
/// each well and channel, the first plane seen in picture order (first timepoint, z-plane,
/// site), shrunk from its samples as stored. The report takes a plane from here only when it is the one it would have read, at the
/// size it draws; any other (a resumed well, an OME-Zarr output, a run whose failed wells change
/// the pictures' size) is read back as before, so the pictures are the same either way. What
/// reading back also checked, that the file can be read, the well's record vouches for with
/// each file's CRC.
pub struct ShrunkAsWritten {
    side: usize,
    /// By well and channel value.
    planes: Mutex<BTreeMap<(WellId, u32), KeptPlane>>,
}

/// A plane [`ShrunkAsWritten`] keeps.
struct KeptPlane {
    key: ImageKey,
    small: Array2<f32>,
    /// The shrink factor.
    step: usize,
}

impl ShrunkAsWritten {
    /// For a run of `wells` wells (the pictures are smaller on larger plates).
    pub fn new(wells: usize) -> Self {
        ShrunkAsWritten { side: side_for(wells), planes: Mutex::new(BTreeMap::new()) }
    }

    /// Keep `plane` (of `key`, as stored) shrunk, unless a plane before it in picture order
    /// (first timepoint, z-plane, site) is already kept for its well and channel. The same key
    /// seen again (a well redone) replaces the earlier one.
    pub fn observe(&self, key: &ImageKey, plane: &PlaneData) {
        let slot = (key.well, key.channel);
        let earlier_kept =
            |kept: &BTreeMap<_, KeptPlane>| kept.get(&slot).is_some_and(|k| picture_order(&k.key) < picture_order(key));
        if self.planes.lock().map_or(true, |kept| earlier_kept(&kept)) {
            return;
        }
        let (small, step) = shrink_plane(plane, self.side);
        if let Ok(mut kept) = self.planes.lock()
            && !earlier_kept(&kept)
        {
            kept.insert(slot, KeptPlane { key: *key, small, step });
        }
    }

    /// The shrunk plane of `key`, if it is the one kept for its well and channel at `side`.
    fn take(&self, key: &ImageKey, side: usize) -> Option<(Array2<f32>, usize)> {
        if side != self.side {
            return None;
        }
        let mut kept = self.planes.lock().ok()?;
        let slot = (key.well, key.channel);
        if kept.get(&slot).is_none_or(|k| k.key != *key) {
            return None;
        }
        kept.remove(&slot).map(|k| (k.small, k.step))
    }
}

/// [`shrink`] of a plane's samples as stored.
fn shrink_plane(plane: &PlaneData, side: usize) -> (Array2<f32>, usize) {
    match plane {
        PlaneData::U8(p) => shrink_integers(p.view(), side),
        PlaneData::U16(p) => shrink_integers(p.view(), side),
        PlaneData::F32(p) => shrink(p.view(), side),
    }
}

/// Every finished well's final image per channel (first timepoint, z-plane and site), shrunk.
struct Shrunk {
    planes: BTreeMap<(WellId, usize), Array2<f32>>,
    step: usize,
}

fn load(facts: &RunFacts<'_>, wells: &[WellId], side: usize, notes: &mut Vec<String>) -> Option<(Shrunk, Vec<u32>)> {
    let as_written = facts.shrunk_as_written;
    let out = match open_plate(&facts.compiled.output_root, None) {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!("no overview or thumbnails: the output plate cannot be read ({e})"));
            return None;
        }
    };
    let channels = out.index.values(crate::plate::Component::Channel);
    let (sites, zs) = (out.index.values(crate::plate::Component::Site), out.index.values(crate::plate::Component::Z));
    if sites.len() > 1 {
        notes.push(format!(
            "the pictures show site {} of {} (the pipeline's output is not assembled)",
            sites[0],
            sites.len()
        ));
    }
    if zs.len() > 1 {
        notes.push(format!("the pictures show z-plane {} of {}", zs[0], zs.len()));
    }
    // The first plane of each well and channel, read and shrunk two at a time (mosaics are large,
    // and the run's output files are not in the page cache); notes in well and channel order.
    let mut todo: Vec<(WellId, usize, u32, ImageKey)> = Vec::new();
    for &well in wells {
        let mut keys: Vec<ImageKey> = out.index.well(well).map(|(k, _)| *k).collect();
        keys.sort_by_key(picture_order);
        for (c, channel) in channels.iter().enumerate() {
            if let Some(key) = keys.iter().find(|k| k.channel == *channel) {
                todo.push((well, c, *channel, *key));
            }
        }
    }
    // Planes shrunk as the run wrote them need no reading back.
    let (mut loaded, mut unread) = (Vec::new(), Vec::new());
    for (well, c, channel, key) in todo {
        match as_written.and_then(|a| a.take(&key, side)) {
            Some(small) => loaded.push((well, c, channel, Ok(small))),
            None => unread.push((well, c, channel, key)),
        }
    }
    let todo = unread;
    tracing::debug!(shrunk_as_written = loaded.len(), read_back = todo.len(), "the pictures' planes");
    // The rest two at a time: a whole-plate mosaic can take gigabytes.
    loaded.extend(todo.chunks(2).flat_map(|pair| {
        pair.par_iter()
            .map(|&(well, c, channel, key)| {
                // Shrunk from the samples as stored: no f32 copy of the mosaic.
                let small = out.load_plane(&key).map(|plane| shrink_plane(&plane, side));
                (well, c, channel, small)
            })
            .collect::<Vec<_>>()
    }));
    loaded.sort_by_key(|(well, c, _, _)| (*well, *c));
    let mut shrunk = Shrunk { planes: BTreeMap::new(), step: 1 };
    for (well, c, channel, small) in loaded {
        match small {
            Ok((small, step)) => {
                shrunk.step = shrunk.step.max(step);
                shrunk.planes.insert((well, c), small);
            }
            Err(e) => notes.push(format!("{well}: channel {channel} not shown ({e})")),
        }
    }
    Some((shrunk, channels))
}

/// The pictures of `run`'s finished wells.
pub fn render(facts: &RunFacts<'_>, run: &RunJson) -> Pictures {
    let mut pictures = Pictures::default();
    let finished: Vec<WellId> = run
        .wells
        .iter()
        .filter(|w| matches!(w.status.as_str(), "done" | "resumed" | "done_earlier"))
        .filter_map(|w| w.well.parse().ok())
        .collect();
    if finished.is_empty() {
        pictures.notes.push("no overview or thumbnails: no well finished".into());
        return pictures;
    }
    let side = side_for(finished.len());
    let Some((shrunk, channel_values)) = load(facts, &finished, side, &mut pictures.notes) else { return pictures };
    let names: BTreeMap<u32, String> = run.plate.channels.iter().map(|c| (c.index, c.name.clone())).collect();
    for (c, &index) in channel_values.iter().enumerate() {
        let mut values: Vec<f32> = shrunk
            .planes
            .iter()
            .filter(|((_, k), _)| *k == c)
            .flat_map(|(_, p)| p.iter().copied())
            .filter(|v| v.is_finite())
            .collect();
        pictures.channels.push(ChannelColor {
            index,
            name: names.get(&index).cloned().unwrap_or_else(|| format!("channel {index}")),
            color: PALETTE[c % PALETTE.len()].0.to_string(),
            low: percentile(&mut values, 0.005),
            high: percentile(&mut values, 0.995),
        });
    }
    let um_per_px = run.plate.pixel_size_um.map(|p| p * shrunk.step as f64);
    if um_per_px.is_none() {
        pictures.notes.push("the plate gives no pixel size: no scale bars".into());
    }
    let mut composites: BTreeMap<WellId, Rgb> = BTreeMap::new();
    for &well in &finished {
        let planes: Vec<(usize, &Array2<f32>)> =
            (0..channel_values.len()).filter_map(|c| shrunk.planes.get(&(well, c)).map(|p| (c, p))).collect();
        if let Some(rgb) = composite(&planes, &pictures.channels) {
            composites.insert(well, rgb);
        }
    }
    for (well, rgb) in &composites {
        let half = rgb.slice(s![..;2, ..;2, ..]).to_owned();
        if let Some(png) = encode_rgb(&half) {
            use base64::Engine as _;
            let (h, w, _) = half.dim();
            pictures.thumbnails.insert(
                well.to_string(),
                Thumbnail {
                    src: format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)),
                    width: w,
                    height: h,
                    um_per_px: um_per_px.map(|u| u * 2.0),
                },
            );
        }
    }
    pictures.overview_png = overview_png(run, &composites, side, um_per_px, &pictures.channels);
    pictures
}

/// The labelled plate overview: the run's wells on their plate positions (rows and columns
/// spanning them), well names and cell counts above each, a scale bar in each, the channels'
/// colours and contrast below.
fn overview_png(
    run: &RunJson,
    composites: &BTreeMap<WellId, Rgb>,
    side: usize,
    um_per_px: Option<f64>,
    channels: &[ChannelColor],
) -> Option<Vec<u8>> {
    const GAP: usize = 8;
    const LABEL: usize = 20;
    let wells: Vec<(WellId, &super::run_json::WellJson)> =
        run.wells.iter().filter_map(|w| Some((w.well.parse::<WellId>().ok()?, w))).collect();
    let (r0, r1) = (wells.iter().map(|w| w.0.row).min()?, wells.iter().map(|w| w.0.row).max()?);
    let (c0, c1) = (wells.iter().map(|w| w.0.col).min()?, wells.iter().map(|w| w.0.col).max()?);
    let (rows, cols) = (usize::from(r1 - r0) + 1, usize::from(c1 - c0) + 1);
    let legend = 12 + 14 * channels.len();
    let (cell_h, cell_w) = (LABEL + side + GAP, side + GAP);
    let (h, w) = (GAP + rows * cell_h + legend, GAP + cols * cell_w);
    let mut img = Array3::<u8>::from_elem((h, w.max(320), 3), 24);
    // Plate positions between the run's wells: dim and labelled, so the layout reads as a plate.
    for row in r0..=r1 {
        for col in c0..=c1 {
            let well = WellId { row, col };
            if wells.iter().any(|(w, _)| *w == well) {
                continue;
            }
            let (y0, x0) = (GAP + usize::from(row - r0) * cell_h, GAP + usize::from(col - c0) * cell_w);
            draw_text(&mut img, x0, y0 + 2, &well.to_string(), 2, [90, 90, 90]);
            fill(&mut img, y0 + LABEL..y0 + LABEL + side, x0..x0 + side, [36, 36, 36]);
        }
    }
    for (well, info) in &wells {
        let y0 = GAP + usize::from(well.row - r0) * cell_h;
        let x0 = GAP + usize::from(well.col - c0) * cell_w;
        let label = match (info.status.as_str(), info.qc.cells) {
            ("done" | "resumed" | "done_earlier", Some(n)) => format!("{well} {n} cells"),
            ("done" | "resumed" | "done_earlier", None) => well.to_string(),
            (status, _) => format!("{well} {}", status.to_uppercase()),
        };
        let scale = if label.len() * 16 <= side { 2 } else { 1 };
        draw_text(&mut img, x0, y0 + 2, &label, scale, [255, 255, 255]);
        let (ty, tx) = (y0 + LABEL, x0);
        match composites.get(well) {
            Some(rgb) => {
                let (th, tw, _) = rgb.dim();
                img.slice_mut(s![ty..ty + th.min(side), tx..tx + tw.min(side), ..]).assign(&rgb.slice(s![
                    ..th.min(side),
                    ..tw.min(side),
                    ..
                ]));
                if let Some(u) = um_per_px {
                    scale_bar(&mut img, (ty, tx), (th.min(side), tw.min(side)), u);
                }
            }
            None => fill(&mut img, ty..ty + side, tx..tx + side, [60, 20, 20]),
        }
    }
    let mut y = GAP + rows * cell_h + 4;
    for ch in channels {
        let colour = PALETTE.iter().find(|p| p.0 == ch.color).map_or([255; 3], |p| p.1.map(|v| (v * 255.0) as u8));
        fill(&mut img, y..y + 10, GAP..GAP + 10, colour);
        let text = format!("{} {}: {:.0}-{:.0} (one contrast for the plate)", ch.index, ch.name, ch.low, ch.high);
        draw_text(&mut img, GAP + 16, y + 1, &text, 1, [230, 230, 230]);
        y += 14;
    }
    encode_rgb(&img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_gives_each_block_the_mean_of_its_finite_samples() {
        // Ragged edge blocks (13 × 10 by 4), non-finite samples skipped, an all-NaN block 0.
        let mut plane = Array2::from_shape_fn((13, 10), |(y, x)| (y * 10 + x) as f32 * 0.37 + 1.0);
        plane[[0, 0]] = f32::NAN;
        plane[[5, 9]] = f32::INFINITY;
        plane.slice_mut(s![12.., 8..]).fill(f32::NAN);
        let (small, step) = shrink(plane.view(), 4);
        assert_eq!((small.dim(), step), ((4, 3), 4));
        for ((y, x), &got) in small.indexed_iter() {
            let block = plane.slice(s![y * 4..((y + 1) * 4).min(13), x * 4..((x + 1) * 4).min(10)]);
            let finite: Vec<f64> = block.iter().filter(|v| v.is_finite()).map(|&v| f64::from(v)).collect();
            let want = if finite.is_empty() { 0.0 } else { (finite.iter().sum::<f64>() / finite.len() as f64) as f32 };
            // Summed row by row instead of in one run: equal up to f64 rounding.
            assert!((got - want).abs() <= want.abs() * 1e-6, "block ({y}, {x}): {got} vs {want}");
        }
        assert_eq!(small[[3, 2]], 0.0, "a block of NaN only");
        assert_eq!(shrink(plane.view(), 100).0, plane.mapv(|v| if v.is_finite() { v } else { 0.0 }), "step 1");
        // A view that is not contiguous in memory (every other column) is shrunk the same way.
        let wide = Array2::from_shape_fn((13, 20), |(y, x)| plane[[y, x / 2]]);
        let strided = wide.slice(s![.., ..;2]);
        assert_eq!(shrink(strided, 4).0, small, "a strided view");
        assert_eq!(shrink(Array2::<f32>::zeros((0, 0)).view(), 4), (Array2::zeros((1, 1)), 1), "an empty plane");
    }

    #[test]
    fn integer_planes_shrink_as_their_values_in_float_do() {
        // The pictures shrink mosaics as stored: 16- and 8-bit samples give what the same values
        // as f32 give, bit for bit, on the integer path as on the float one; ragged edge blocks,
        // values up to the type's maximum, a strided view.
        let wide = Array2::from_shape_fn((37, 23), |(y, x)| ((y * 7919 + x * 104_729) % 65_536) as u16);
        let as_f32 = wide.mapv(f32::from);
        let want = shrink(as_f32.view(), 5);
        assert_eq!(shrink(wide.view(), 5), want);
        assert_eq!(shrink_integers(wide.view(), 5), want);
        assert_eq!(shrink_plane(&PlaneData::U16(wide.clone()), 5), want);
        let full = Array2::from_elem((64, 61), u16::MAX);
        assert_eq!(shrink_integers(full.view(), 2), shrink(full.mapv(f32::from).view(), 2), "maximal values");
        let strided = wide.slice(s![.., ..;3]);
        assert_eq!(shrink_integers(strided, 4), shrink(strided.mapv(f32::from).view(), 4), "a strided view");
        let narrow = wide.mapv(|v| (v % 256) as u8);
        assert_eq!(shrink(narrow.view(), 5), shrink(narrow.mapv(f32::from).view(), 5));
        assert_eq!(shrink_integers(narrow.view(), 5), shrink(narrow.mapv(f32::from).view(), 5));
        let empty = Array2::<u16>::zeros((0, 0));
        assert_eq!(shrink_integers(empty.view(), 4), shrink(Array2::<f32>::zeros((0, 0)).view(), 4), "an empty plane");
    }

    #[test]
    fn planes_shrunk_as_written_keep_the_first_of_each_well_and_channel() {
        let well: WellId = "B03".parse().expect("well");
        let key = |site, channel, z| ImageKey { well, site, channel, z, timepoint: 1 };
        let plane = |v: u16| PlaneData::U16(Array2::from_shape_fn((600, 300), |(y, x)| v + (y * 3 + x) as u16 % 7));
        let kept = ShrunkAsWritten::new(2);
        kept.observe(&key(2, 1, 1), &plane(10));
        kept.observe(&key(1, 1, 2), &plane(20)); // z 2 comes after any site of z 1
        kept.observe(&key(1, 2, 1), &plane(30)); // another channel: kept beside
        kept.observe(&key(1, 1, 1), &plane(40)); // site 1 of z 1 comes first
        let (side, shrunk) = (side_for(2), |v| shrink_plane(&plane(v), side_for(2)));
        // Only the plane the pictures read for its well and channel, and only at their size.
        assert_eq!(kept.take(&key(2, 1, 1), side), None, "replaced by an earlier site");
        assert_eq!(kept.take(&key(1, 1, 1), side_for(200)), None, "another size is read back");
        assert_eq!(kept.take(&key(1, 1, 1), side), Some(shrunk(40)));
        assert_eq!(kept.take(&key(1, 1, 1), side), None, "taken once");
        // A plane written again (a well redone) replaces the one kept.
        kept.observe(&key(1, 2, 1), &plane(50));
        assert_eq!(kept.take(&key(1, 2, 1), side), Some(shrunk(50)));
    }

    #[test]
    fn percentiles_are_the_samples_a_full_sort_puts_at_their_rank() {
        let mut values: Vec<f32> = (0..1001u32).map(|i| ((i * 7919) % 1009) as f32 * 0.5 - 3.0).collect();
        values.extend([-0.0, 0.0, 0.0, f32::MAX]);
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        for q in [0.0, 0.005, 0.25, 0.5, 0.995, 1.0] {
            let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
            assert_eq!(percentile(&mut values.clone(), q).to_bits(), sorted[rank].to_bits(), "q = {q}");
        }
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn scale_bars_are_round_and_about_a_quarter_of_the_width() {
        assert_eq!(scale_bar_um(1000.0), 200.0);
        assert_eq!(scale_bar_um(170.0), 20.0);
        assert_eq!(scale_bar_um(3.0), 1.0);
    }

    #[test]
    fn text_is_drawn_inside_the_image_only() {
        let mut img = Array3::<u8>::zeros((10, 20, 3));
        draw_text(&mut img, 0, 0, "A01", 1, [255, 255, 255]);
        let lit = img.iter().filter(|&&v| v == 255).count();
        assert!(lit > 0, "some pixels are lit");
        draw_text(&mut img, 18, 8, "WWW", 3, [255, 0, 0]);
    }

    #[test]
    fn channels_are_composited_with_the_plate_contrast() {
        let a = Array2::from_elem((2, 2), 100.0f32);
        let b = Array2::from_elem((2, 2), 0.0f32);
        let ch = |index, low, high| ChannelColor { index, name: String::new(), color: String::new(), low, high };
        let rgb = composite(&[(0, &a), (1, &b)], &[ch(1, 0.0, 200.0), ch(2, 0.0, 10.0)]).expect("composite");
        // Channel 1 (magenta) at half its range; channel 2 (green) off.
        assert_eq!([rgb[(0, 0, 0)], rgb[(0, 0, 1)], rgb[(0, 0, 2)]], [128, 0, 128]);
    }
}
