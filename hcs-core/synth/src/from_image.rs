//! Plates cut from a real image: every tile is a window of one grayscale picture (a microscopy
//! or astronomy sample, say) taken at the tile's sub-pixel stage position by Lanczos-3
//! resampling, then vignetted and given noise like a rendered tile. Stitching tested on such
//! plates meets textures no one here drew.

use std::path::PathBuf;

use hcs_vfs::PlaneData;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{SynthConfig, SynthError, TilePosition};
use hcs_plate::WellId;

/// Where the tiles come from when they are cut from a real image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceImage {
    /// A grayscale TIFF (8 or 16 bit, or float); its first plane is used.
    pub path: PathBuf,
    /// Tile pixels per source pixel (2 = the image seen at twice the magnification).
    pub scale: f64,
}

/// A loaded source image, its values spread to 0..=1 (0.1 and 99.9 percentiles).
pub(crate) struct Source {
    data: Array2<f32>,
    scale: f64,
}

/// Lanczos kernel half-width (source pixels).
const LOBES: isize = 3;

impl Source {
    /// Read `spec.path` and check that `config`'s tile grid fits inside it.
    pub(crate) fn load(spec: &SourceImage, config: &SynthConfig) -> Result<Source, SynthError> {
        let bad = |m: String| SynthError::Invalid(format!("source image {}: {m}", spec.path.display()));
        if !(spec.scale.is_finite() && (0.25..=16.0).contains(&spec.scale)) {
            return Err(bad(format!("scale {} is outside 0.25–16", spec.scale)));
        }
        let planes = hcs_vfs::tiff::read_tiff(&spec.path, hcs_vfs::tiff::TiffLimits::default())?;
        let plane = planes.into_iter().next().ok_or_else(|| bad("holds no image".into()))?;
        let raw = plane.to_f32();
        let mut sorted: Vec<f32> = raw.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f32::total_cmp);
        let at = |q: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied();
        let (Some(lo), Some(hi)) = (at(0.001), at(0.999)) else { return Err(bad("holds no finite values".into())) };
        if hi <= lo {
            return Err(bad("is flat: nothing to register".into()));
        }
        let data = raw.mapv(|v| ((v - lo) / (hi - lo)).clamp(0.0, 1.0));
        let source = Source { data, scale: spec.scale };
        let (need_w, need_h) = extent(config);
        let (h, w) = source.data.dim();
        let (have_w, have_h) =
            ((w as f64 - 2.0 * LOBES as f64) * spec.scale, (h as f64 - 2.0 * LOBES as f64) * spec.scale);
        if need_w > have_w || need_h > have_h {
            return Err(bad(format!(
                "{w}×{h} px at scale {} covers {have_w:.0}×{have_h:.0} tile pixels; the {}×{} grid of {} px tiles \
                 at {} overlap with {} px jitter needs {need_w:.0}×{need_h:.0}",
                spec.scale, config.grid.0, config.grid.1, config.tile, config.overlap, config.jitter_px
            )));
        }
        Ok(source)
    }

    /// Lanczos-3 taps for output coordinate `u` (tile pixels): the first source index and the
    /// six normalized weights.
    fn taps(&self, u: f64) -> (isize, [f32; 6]) {
        // Source pixels are centred at integer coordinates; the window starts LOBES pixels in.
        let s = u / self.scale + LOBES as f64;
        let base = s.floor() as isize - (LOBES - 1);
        let mut w = [0f32; 6];
        let mut sum = 0.0;
        for (k, wk) in w.iter_mut().enumerate() {
            let d = s - (base + k as isize) as f64;
            let v = lanczos(d);
            *wk = v as f32;
            sum += v;
        }
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v = (f64::from(*v) / sum) as f32);
        }
        (base, w)
    }

    /// The `n × n` window whose top-left corner is at `(x, y)` tile pixels, resampled.
    fn window(&self, x: f64, y: f64, n: usize) -> Array2<f32> {
        let cols: Vec<(isize, [f32; 6])> = (0..n).map(|px| self.taps(x + px as f64)).collect();
        let rows: Vec<(isize, [f32; 6])> = (0..n).map(|py| self.taps(y + py as f64)).collect();
        let (h, w) = self.data.dim();
        let clamp = |i: isize, len: usize| i.clamp(0, len as isize - 1) as usize;
        // Horizontal pass over every source row the vertical taps reach, then the vertical pass.
        let first = rows.first().map_or(0, |r| r.0);
        let last = rows.last().map_or(0, |r| r.0 + 5);
        let across: Vec<Vec<f32>> = (first..=last)
            .map(|sy| {
                let src = self.data.row(clamp(sy, h));
                cols.iter()
                    .map(|(bx, wx)| wx.iter().enumerate().map(|(k, &wk)| wk * src[clamp(bx + k as isize, w)]).sum())
                    .collect()
            })
            .collect();
        Array2::from_shape_fn((n, n), |(py, px)| {
            let (by, wy) = &rows[py];
            wy.iter().enumerate().map(|(k, &wk)| wk * across[(by - first) as usize + k][px]).sum()
        })
    }
}

fn lanczos(d: f64) -> f64 {
    let a = LOBES as f64;
    if d.abs() < 1e-12 {
        1.0
    } else if d.abs() >= a {
        0.0
    } else {
        let p = std::f64::consts::PI * d;
        a * p.sin() * (p / a).sin() / (p * p)
    }
}

/// Width and height (tile pixels) a well's jittered grid covers, margins included.
fn extent(config: &SynthConfig) -> (f64, f64) {
    let (rows, cols) = config.grid;
    let span = |k: u32| 2.0 * config.margin() + f64::from(k.saturating_sub(1)) * config.step() + config.tile as f64;
    (span(cols), span(rows))
}

/// Cut one u16 tile for timepoint `t`, plane `z`, channel `c` (1-based): the window at the tile's
/// position, mapped to 16-bit counts above a camera background (dimmer away from focus and in
/// later channels), vignetted by `falloff` and with seeded Gaussian noise.
pub(crate) fn cut_tile(
    config: &SynthConfig,
    source: &Source,
    well: WellId,
    tile: &TilePosition,
    t: u32,
    z: u32,
    c: u32,
) -> PlaneData {
    let n = config.tile;
    let window = source.window(tile.x, tile.y, n);
    let center = f64::from(config.z_planes - 1) / 2.0;
    let focus = if center > 0.0 { 1.0 - (f64::from(z - 1) - center).abs() / center } else { 1.0 };
    let amplitude = 20_000.0 * (0.4 + 0.6 * focus) / f64::from(c);
    let background = 500.0;
    super::scene::camera(config, [well.row, well.col], [tile.site, t, z, c, 4], |py, px| {
        background + amplitude * f64::from(window[[py, px]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_source(scale: f64) -> Source {
        Source { data: Array2::from_shape_fn((64, 64), |(y, x)| (x as f32) + 100.0 * y as f32), scale }
    }

    #[test]
    fn integer_positions_copy_source_pixels() {
        let s = ramp_source(1.0);
        let w = s.window(5.0, 7.0, 8);
        // Tile (0, 0) at (5, 7) is source pixel (5 + 3, 7 + 3) (the window starts LOBES in).
        assert!((w[[0, 0]] - (8.0 + 1000.0)).abs() < 1e-3, "{}", w[[0, 0]]);
        assert!((w[[2, 3]] - (11.0 + 1200.0)).abs() < 1e-3, "{}", w[[2, 3]]);
    }

    #[test]
    fn sub_pixel_positions_interpolate_a_linear_ramp_exactly() {
        let s = ramp_source(1.0);
        let w = s.window(5.25, 7.5, 8);
        assert!((w[[1, 1]] - (9.25 + 100.0 * 11.5)).abs() < 0.05, "{}", w[[1, 1]]);
    }

    #[test]
    fn magnification_spreads_source_pixels() {
        let s = ramp_source(2.0);
        let w = s.window(0.0, 0.0, 8);
        // Two tile pixels per source pixel: x advances by 0.5 per tile pixel.
        assert!((w[[0, 2]] - w[[0, 0]] - 1.0).abs() < 0.05, "{} {}", w[[0, 0]], w[[0, 2]]);
    }
}
