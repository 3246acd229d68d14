//! A well's continuous scene and the rendering of tiles from it.

use hcs_vfs::PlaneData;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::{SynthConfig, TilePosition};
use hcs_plate::WellId;

/// Mix a seed with identifying numbers (SplitMix64 finalizer) so every tile gets its own stream.
pub(crate) fn mix(seed: u64, parts: &[u64]) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        h = h.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

/// One Gaussian blob of the scene.
#[derive(Clone, Copy, Debug)]
struct Blob {
    x: f64,
    y: f64,
    /// Widths along the blob's own axes.
    sx: f64,
    sy: f64,
    /// Orientation (cos, sin).
    cos: f64,
    sin: f64,
    /// Peak intensity per channel index (0-based); channel 3+ reuse channel 2's pattern.
    amp: [f64; 2],
    /// Cytoplasm blobs are wider in channel 2.
    is_cell: bool,
}

/// Width and height (pixels) of a well's scene: the jittered grid and its margins.
fn extent(config: &SynthConfig) -> (f64, f64) {
    let (rows, cols) = config.grid;
    let margin = config.margin();
    let w = 2.0 * margin + f64::from(cols.saturating_sub(1)) * config.step() + config.tile as f64;
    let h = 2.0 * margin + f64::from(rows.saturating_sub(1)) * config.step() + config.tile as f64;
    (w, h)
}

/// Cells in one well's scene (`cell_density` per 10 000 px² of its extent); saturates at
/// `usize::MAX` for densities [`crate::synthesize`] refuses.
pub(crate) fn cell_count(config: &SynthConfig) -> usize {
    let (w, h) = extent(config);
    let cells = (w * h / 10_000.0 * config.cell_density).round();
    if cells.is_nan() { 0 } else { cells as usize }
}

/// The continuous content of one well.
#[derive(Clone, Debug)]
pub struct Scene {
    blobs: Vec<Blob>,
    cells: usize,
}

impl Scene {
    /// Generate the scene of `well`.
    pub fn generate(config: &SynthConfig, well: WellId) -> Scene {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, &[u64::from(well.row), u64::from(well.col), 2]));
        let (w, h) = extent(config);
        let cells = cell_count(config);
        let debris = cells * 12;
        let mut blobs = Vec::with_capacity(cells + debris);
        for i in 0..cells + debris {
            let is_cell = i < cells;
            let angle: f64 = rng.random_range(0.0..std::f64::consts::PI);
            let (base, ecc) = if is_cell {
                (rng.random_range(2.5..4.5), rng.random_range(1.0..1.5))
            } else {
                (rng.random_range(0.8..2.0), 1.0)
            };
            let amp = if is_cell {
                [rng.random_range(12_000.0..25_000.0), rng.random_range(4_000.0..10_000.0)]
            } else {
                [rng.random_range(300.0..1_500.0), rng.random_range(300.0..1_500.0)]
            };
            blobs.push(Blob {
                x: rng.random_range(0.0..w),
                y: rng.random_range(0.0..h),
                sx: base * ecc,
                sy: base / ecc,
                cos: angle.cos(),
                sin: angle.sin(),
                amp,
                is_cell,
            });
        }
        Scene { blobs, cells }
    }

    /// Number of cells (not debris) in the scene.
    pub fn cell_count(&self) -> usize {
        self.cells
    }
}

/// Render one u16 tile of `scene` at `tile`'s position for timepoint `t`, plane `z`, channel `c`
/// (all 1-based).
pub fn render_tile(
    config: &SynthConfig,
    scene: &Scene,
    well: WellId,
    tile: &TilePosition,
    t: u32,
    z: u32,
    c: u32,
) -> PlaneData {
    let n = config.tile;
    // Defocus: the middle plane is in focus.
    let center = f64::from(config.z_planes - 1) / 2.0;
    let zf = if center > 0.0 { 1.0 - (f64::from(z - 1) - center).abs() / center } else { 1.0 };
    let defocus = 0.5 + 1.5 * (1.0 - zf);
    let brightness = 0.3 + 0.7 * zf;
    let ci = usize::from(c >= 2);
    let background = if c == 1 { 800.0 } else { 400.0 };
    // Slow drift over time so timepoints differ.
    let drift = 1.0 + 0.02 * f64::from(t - 1);

    let mut img = Array2::<f64>::from_elem((n, n), background);
    let (x0, y0) = (tile.x, tile.y);
    for b in &scene.blobs {
        let widen = if ci == 1 && b.is_cell { 1.8 } else { 1.0 };
        let (sx0, sy0) = (b.sx * widen, b.sy * widen);
        let sx = (sx0 * sx0 + defocus * defocus).sqrt();
        let sy = (sy0 * sy0 + defocus * defocus).sqrt();
        let amp = b.amp[ci] * brightness * drift * (sx0 * sy0) / (sx * sy);
        let reach = 4.0 * sx.max(sy);
        let (lx, ly) = (b.x - x0, b.y - y0);
        if lx < -reach || ly < -reach || lx > n as f64 + reach || ly > n as f64 + reach {
            continue;
        }
        let xa = (lx - reach).floor().max(0.0) as usize;
        let xb = ((lx + reach).ceil().max(0.0) as usize).min(n);
        let ya = (ly - reach).floor().max(0.0) as usize;
        let yb = ((ly + reach).ceil().max(0.0) as usize).min(n);
        let (ix2, iy2) = (1.0 / (2.0 * sx * sx), 1.0 / (2.0 * sy * sy));
        for py in ya..yb {
            let dy = py as f64 - ly;
            for px in xa..xb {
                let dx = px as f64 - lx;
                let u = dx * b.cos + dy * b.sin;
                let v = -dx * b.sin + dy * b.cos;
                img[[py, px]] += amp * (-(u * u * ix2 + v * v * iy2)).exp();
            }
        }
    }
    camera(config, [well.row, well.col], [tile.site, t, z, c, 3], |py, px| img[[py, px]])
}

/// What the camera makes of a tile's light `value(y, x)` (grey levels): the illumination falloff
/// towards the corners, then Gaussian noise seeded by the tile's numbers `ids` (the last one a
/// stream per kind of tile), rounded to u16.
pub(crate) fn camera(
    config: &SynthConfig,
    [row, col]: [u16; 2],
    ids: [u32; 5],
    value: impl Fn(usize, usize) -> f64,
) -> PlaneData {
    let n = config.tile;
    let mut parts = vec![u64::from(row), u64::from(col)];
    parts.extend(ids.map(u64::from));
    let mut rng = ChaCha8Rng::seed_from_u64(mix(config.seed, &parts));
    let noise = Normal::new(0.0, config.noise.max(0.0)).ok();
    let half = (n as f64 - 1.0) / 2.0;
    PlaneData::U16(Array2::from_shape_fn((n, n), |(py, px)| {
        let (dx, dy) = ((px as f64 - half) / half, (py as f64 - half) / half);
        let vignette = 1.0 - config.falloff * (dx * dx + dy * dy) / 2.0;
        let mut v = value(py, px) * vignette;
        if let Some(noise) = &noise {
            v += noise.sample(&mut rng);
        }
        v.round().clamp(0.0, 65535.0) as u16
    }))
}
