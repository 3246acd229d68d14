//! Synthetic plates: seeded, deterministic, with ground-truth tile positions.
//!
//! Each well is a continuous scene (cells as anisotropic Gaussian blobs plus faint debris for
//! texture). A tile is rendered by evaluating the scene at the tile's float offset, so stage
//! jitter is sub-pixel and exact — no interpolation error to confuse a stitching score. Defocus
//! widens and dims blobs analytically per z-plane; illumination falls off towards tile edges;
//! Gaussian noise is seeded per tile, so output is identical whatever the thread count.
//! Tiles can instead be cut from a real image ([`SourceImage`]) at the same jittered positions.
#![deny(missing_docs)]

mod from_image;
mod scene;
mod write_imagexpress;
mod write_opera;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use hcs_vfs::PlaneData;

pub use from_image::SourceImage;
use hcs_plate::WellId;
pub use scene::{Scene, render_tile};

/// Layout of the plate written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SynthFormat {
    /// ImageXpress: `.HTD` + `TimePoint_N/ZStep_N/A01_s1_w1.tif`.
    Imagexpress,
    /// Opera Phenix: `Images/Index.xml` + `Images/r01c01f01p01-ch1sk1fk1fl1.tiff`, fields in
    /// serpentine acquisition order.
    OperaPhenix,
}

/// What to synthesize. Defaults mirror the peer's integration data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Wells.
    pub wells: Vec<WellId>,
    /// Site grid `(rows, cols)`.
    pub grid: (u32, u32),
    /// Tile edge in pixels.
    pub tile: usize,
    /// Overlap between neighbouring tiles, as a fraction of the tile.
    pub overlap: f64,
    /// Stage jitter: each tile is displaced by up to ± this many pixels in x and y.
    pub jitter_px: f64,
    /// Channels.
    pub channels: u32,
    /// Z-planes.
    pub z_planes: u32,
    /// Time points.
    pub timepoints: u32,
    /// Seed: same seed, same plate, bit for bit.
    pub seed: u64,
    /// Cells per 10 000 px² of well area.
    pub cell_density: f64,
    /// Standard deviation of the additive Gaussian noise (grey levels).
    pub noise: f64,
    /// Relative brightness loss at the tile corners (0 = flat illumination).
    pub falloff: f64,
    /// Output layout.
    pub format: SynthFormat,
    /// Cut the tiles from this real image instead of rendering a scene of blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceImage>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            wells: ["A01", "D02", "B03", "B06"].iter().filter_map(|w| w.parse().ok()).collect(),
            grid: (3, 3),
            tile: 256,
            overlap: 0.1,
            jitter_px: 2.0,
            channels: 2,
            z_planes: 3,
            timepoints: 1,
            seed: 42,
            cell_density: 1.0,
            noise: 100.0,
            falloff: 0.3,
            format: SynthFormat::Imagexpress,
            source: None,
        }
    }
}

impl SynthConfig {
    /// Distance between nominal tile origins, in pixels.
    pub fn step(&self) -> f64 {
        self.tile as f64 * (1.0 - self.overlap)
    }

    /// Margin around the tile grid so jittered tiles stay inside the scene.
    fn margin(&self) -> f64 {
        self.jitter_px.ceil() + 16.0
    }
}

/// The true position of one tile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TilePosition {
    /// 1-based site number (row-major).
    pub site: u32,
    /// Grid row (0-based).
    pub row: u32,
    /// Grid column (0-based).
    pub col: u32,
    /// Tile origin x in well pixels (float: jitter is sub-pixel).
    pub x: f64,
    /// Tile origin y in well pixels.
    pub y: f64,
}

/// Ground truth for a whole plate, written as JSON next to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The configuration that produced the plate.
    pub config: SynthConfig,
    /// Tile positions per well.
    pub positions: Vec<(WellId, Vec<TilePosition>)>,
    /// Number of cells per well (the count a perfect counter would find, in the well scene);
    /// empty for plates cut from a [`SourceImage`].
    pub cells: Vec<(WellId, usize)>,
}

/// A synthesis failure.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A parameter is out of range.
    #[error("invalid synthetic plate: {0}")]
    Invalid(String),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] hcs_vfs::VfsError),
}

/// File name of the ground truth written beside the plate's images.
pub const GROUND_TRUTH_FILE: &str = "hcs_ground_truth.json";

/// Tile positions of one well: nominal grid + seeded sub-pixel jitter (same for every channel,
/// z-plane and timepoint, as a stage revisits the same position).
pub fn tile_positions(config: &SynthConfig, well: WellId) -> Vec<TilePosition> {
    use rand::{Rng, SeedableRng};
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(scene::mix(config.seed, &[u64::from(well.row), u64::from(well.col), 1]));
    let (rows, cols) = config.grid;
    let step = config.step();
    let margin = config.margin();
    let mut out = Vec::new();
    for row in 0..rows {
        for col in 0..cols {
            let mut jitter = || {
                if config.jitter_px > 0.0 { rng.random_range(-config.jitter_px..=config.jitter_px) } else { 0.0 }
            };
            let (jx, jy) = (jitter(), jitter());
            out.push(TilePosition {
                site: row * cols + col + 1,
                row,
                col,
                x: margin + f64::from(col) * step + jx,
                y: margin + f64::from(row) * step + jy,
            });
        }
    }
    out
}

fn validate(config: &SynthConfig) -> Result<(), SynthError> {
    let bad = |m: &str| Err(SynthError::Invalid(m.to_owned()));
    if config.wells.is_empty() {
        return bad("no wells");
    }
    let mut wells = config.wells.clone();
    wells.sort();
    if let Some(twice) = wells.windows(2).find(|w| w[0] == w[1]) {
        return Err(SynthError::Invalid(format!("well {} is listed twice", twice[0])));
    }
    if config.grid.0 == 0 || config.grid.1 == 0 {
        return bad("the grid needs at least one row and one column");
    }
    if config.tile < 16 || config.tile > 16384 {
        return bad("tile must be between 16 and 16384 pixels");
    }
    if !(0.0..0.9).contains(&config.overlap) {
        return bad("overlap must be in [0, 0.9)");
    }
    if config.jitter_px < 0.0 || config.jitter_px > config.tile as f64 / 4.0 {
        return bad("jitter must be between 0 and a quarter tile");
    }
    if config.channels == 0 || config.z_planes == 0 || config.timepoints == 0 {
        return bad("channels, z-planes and timepoints must be at least 1");
    }
    if !(0.0..=MAX_CELL_DENSITY).contains(&config.cell_density) {
        return Err(SynthError::Invalid(format!(
            "cell density must be between 0 and {MAX_CELL_DENSITY} cells per 10 000 px², got {}",
            config.cell_density
        )));
    }
    let cells = scene::cell_count(config);
    if cells > MAX_CELLS_PER_WELL {
        return Err(SynthError::Invalid(format!(
            "{cells} cells per well at cell density {} (at most {MAX_CELLS_PER_WELL}): lower the density or the grid",
            config.cell_density
        )));
    }
    if !(0.0..=65535.0).contains(&config.noise) {
        return Err(SynthError::Invalid(format!(
            "noise must be between 0 and 65535 grey levels (a standard deviation), got {}",
            config.noise
        )));
    }
    if !(0.0..=1.0).contains(&config.falloff) {
        return Err(SynthError::Invalid(format!(
            "falloff must be between 0 (flat) and 1 (dark corners), got {}",
            config.falloff
        )));
    }
    Ok(())
}

/// Densest scene [`synthesize`] renders: one cell per 100 px² (cells overlap far before that).
pub const MAX_CELL_DENSITY: f64 = 100.0;

/// Most cells in one well's scene: each comes with 12 specks of debris, and every blob is kept
/// in memory while the well renders.
pub const MAX_CELLS_PER_WELL: usize = 2_000_000;

/// Write a synthetic plate to `out` and return its ground truth (also written as
/// [`GROUND_TRUTH_FILE`] in `out`).
pub fn synthesize(config: &SynthConfig, out: &Path) -> Result<GroundTruth, SynthError> {
    validate(config)?;
    let source = config.source.as_ref().map(|s| from_image::Source::load(s, config)).transpose()?;
    let scenes: Vec<(WellId, Scene)> = config.wells.iter().map(|&w| (w, Scene::generate(config, w))).collect();
    let positions: Vec<(WellId, Vec<TilePosition>)> =
        config.wells.iter().map(|&w| (w, tile_positions(config, w))).collect();

    let mut jobs = Vec::new();
    for ((well, scene), (_, tiles)) in scenes.iter().zip(&positions) {
        for tile in tiles {
            for t in 1..=config.timepoints {
                for z in 1..=config.z_planes {
                    for c in 1..=config.channels {
                        jobs.push((*well, scene, tile, t, z, c));
                    }
                }
            }
        }
    }
    match config.format {
        SynthFormat::Imagexpress => write_imagexpress::write_htd(config, out)?,
        SynthFormat::OperaPhenix => write_opera::write_index(config, out, &positions)?,
    }
    jobs.par_iter().try_for_each(|&(well, scene, tile, t, z, c)| -> Result<(), SynthError> {
        let plane = match &source {
            Some(source) => from_image::cut_tile(config, source, well, tile, t, z, c),
            None => render_tile(config, scene, well, tile, t, z, c),
        };
        let none = hcs_vfs::tiff::TiffCompression::None;
        match config.format {
            SynthFormat::Imagexpress => {
                // As the instrument does: MetaMorph XML with the pixel size and stage position.
                let path = write_imagexpress::image_path(config, out, well, tile.site, t, z, c);
                let um = write_opera::PIXEL_SIZE_M * 1e6;
                let xml = hcs_plate::formats::metamorph::write(um, (tile.x * um, tile.y * um), &format!("w{c}"));
                hcs_vfs::tiff::write_tiff_described(&path, &[plane], none, &xml)?;
            }
            SynthFormat::OperaPhenix => {
                hcs_vfs::tiff::write_tiff(&write_opera::image_path(config, out, well, tile, t, z, c), &[plane], none)?;
            }
        }
        Ok(())
    })?;
    let truth = GroundTruth {
        config: config.clone(),
        positions,
        // A real image's cells were never counted.
        cells: if source.is_some() { Vec::new() } else { scenes.iter().map(|(w, s)| (*w, s.cell_count())).collect() },
    };
    let json = serde_json::to_vec_pretty(&truth).map_err(|e| SynthError::Invalid(e.to_string()))?;
    hcs_vfs::atomic::write_atomic(&out.join(GROUND_TRUTH_FILE), &json)?;
    Ok(truth)
}

/// Every tile of `well` for timepoint `t`, plane `z`, channel `c` (1-based), in site order, as
/// [`synthesize`] writes them — rendered from the scene, or cut from the source image.
pub fn well_tiles(config: &SynthConfig, well: WellId, t: u32, z: u32, c: u32) -> Result<Vec<PlaneData>, SynthError> {
    validate(config)?;
    let tiles = tile_positions(config, well);
    Ok(match &config.source {
        Some(spec) => {
            let source = from_image::Source::load(spec, config)?;
            tiles.par_iter().map(|tile| from_image::cut_tile(config, &source, well, tile, t, z, c)).collect()
        }
        None => {
            let scene = Scene::generate(config, well);
            tiles.par_iter().map(|tile| render_tile(config, &scene, well, tile, t, z, c)).collect()
        }
    })
}

/// Read the ground truth of a synthetic plate.
pub fn read_ground_truth(plate: &Path) -> Option<GroundTruth> {
    let bytes = std::fs::read(plate.join(GROUND_TRUTH_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Paths written for a plate (for tests and tools).
pub fn image_paths(config: &SynthConfig, out: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for &well in &config.wells {
        for tile in tile_positions(config, well) {
            for t in 1..=config.timepoints {
                for z in 1..=config.z_planes {
                    for c in 1..=config.channels {
                        paths.push(match config.format {
                            SynthFormat::Imagexpress => {
                                write_imagexpress::image_path(config, out, well, tile.site, t, z, c)
                            }
                            SynthFormat::OperaPhenix => write_opera::image_path(config, out, well, &tile, t, z, c),
                        });
                    }
                }
            }
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of the refusal of `change` applied to the default plate.
    fn refusal(change: impl FnOnce(&mut SynthConfig)) -> String {
        let mut config = SynthConfig::default();
        change(&mut config);
        match validate(&config) {
            Err(SynthError::Invalid(m)) => m,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn the_default_plate_and_the_edges_of_each_range_are_accepted() {
        validate(&SynthConfig::default()).expect("default");
        for change in [
            |c: &mut SynthConfig| c.cell_density = 0.0,
            |c: &mut SynthConfig| c.cell_density = MAX_CELL_DENSITY,
            |c: &mut SynthConfig| c.noise = 0.0,
            |c: &mut SynthConfig| c.falloff = 1.0,
        ] {
            let mut config = SynthConfig::default();
            change(&mut config);
            validate(&config).expect("edge of a range");
        }
    }

    #[test]
    fn values_that_cannot_be_rendered_are_refused_before_any_allocation() {
        for density in [f64::INFINITY, 1e30, 1e9, -1.0, f64::NAN] {
            let m = refusal(|c| c.cell_density = density);
            assert!(m.contains("cell density"), "{density}: {m}");
        }
        // Dense enough per pixel, but too many cells for one well's scene.
        let m = refusal(|c| {
            c.cell_density = MAX_CELL_DENSITY;
            c.tile = 16384;
            c.grid = (4, 4);
        });
        assert!(m.contains("cells per well"), "{m}");
        for noise in [f64::NAN, -1.0, f64::INFINITY] {
            assert!(refusal(|c| c.noise = noise).contains("noise"), "{noise}");
        }
        for falloff in [f64::NAN, -0.1, 2.0] {
            assert!(refusal(|c| c.falloff = falloff).contains("falloff"), "{falloff}");
        }
    }

    #[test]
    fn a_well_listed_twice_is_refused() {
        let m = refusal(|c| c.wells = ["A01", "B02", "A01"].iter().filter_map(|w| w.parse().ok()).collect());
        assert!(m.contains("A01") && m.contains("twice"), "{m}");
    }
}
