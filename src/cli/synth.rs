//! `hcs synth`: write a seeded synthetic plate with ground-truth tile positions.

use std::path::PathBuf;

use crate::plate::WellId;
use crate::synth::{SynthConfig, SynthFormat, synthesize};

/// Options of `hcs synth`. Defaults mirror the peer's integration data.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Output directory (created; existing images are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Plate layout.
    #[arg(long, value_enum, default_value = "imagexpress")]
    pub format: Format,
    /// Wells, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "A01,D02,B03,B06")]
    pub wells: Vec<String>,
    /// Site grid: rows and columns.
    #[arg(long, num_args = 2, value_names = ["ROWS", "COLS"], default_values = ["3", "3"])]
    pub grid: Vec<u32>,
    /// Tile edge in pixels.
    #[arg(long, default_value_t = 256)]
    pub tile: usize,
    /// Overlap between neighbouring tiles (fraction).
    #[arg(long, default_value_t = 0.1)]
    pub overlap: f64,
    /// Stage jitter in pixels (sub-pixel, uniform in ±jitter).
    #[arg(long, default_value_t = 2.0)]
    pub jitter: f64,
    /// Channels.
    #[arg(long, default_value_t = 2)]
    pub channels: u32,
    /// Z-planes.
    #[arg(long, default_value_t = 3)]
    pub z: u32,
    /// Time points.
    #[arg(long, default_value_t = 1)]
    pub timepoints: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Cells per 10 000 px².
    #[arg(long, default_value_t = 1.0)]
    pub cell_density: f64,
    /// Noise standard deviation (grey levels).
    #[arg(long, default_value_t = 100.0)]
    pub noise: f64,
    /// Illumination falloff at the tile corners (fraction).
    #[arg(long, default_value_t = 0.3)]
    pub falloff: f64,
}

/// Plate layouts `hcs synth` can write.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// ImageXpress (`.HTD`, `TimePoint_N/ZStep_N/A01_s1_w1.tif`).
    Imagexpress,
    /// Opera Phenix (`Images/Index.xml`, `r01c01f01p01-ch1sk1fk1fl1.tiff`).
    OperaPhenix,
}

impl Args {
    /// The synthesizer configuration these options describe.
    pub fn config(&self) -> Result<SynthConfig, String> {
        let wells =
            self.wells.iter().map(|w| w.parse::<WellId>().map_err(|e| e.to_string())).collect::<Result<Vec<_>, _>>()?;
        let grid = match self.grid.as_slice() {
            [r, c] => (*r, *c),
            _ => return Err("--grid takes two numbers: ROWS COLS".into()),
        };
        Ok(SynthConfig {
            wells,
            grid,
            tile: self.tile,
            overlap: self.overlap,
            jitter_px: self.jitter,
            channels: self.channels,
            z_planes: self.z,
            timepoints: self.timepoints,
            seed: self.seed,
            cell_density: self.cell_density,
            noise: self.noise,
            falloff: self.falloff,
            format: match self.format {
                Format::Imagexpress => SynthFormat::Imagexpress,
                Format::OperaPhenix => SynthFormat::OperaPhenix,
            },
        })
    }
}

/// Write the plate.
pub fn run(args: &Args) -> Result<(), String> {
    let config = args.config()?;
    let started = std::time::Instant::now();
    let truth = synthesize(&config, &args.out).map_err(|e| e.to_string())?;
    let images = truth.positions.iter().map(|(_, p)| p.len()).sum::<usize>()
        * (config.channels * config.z_planes * config.timepoints) as usize;
    println!(
        "wrote {} wells, {images} images of {}² u16 to {} in {:.2} s (ground truth: {})",
        config.wells.len(),
        config.tile,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        crate::synth::GROUND_TRUTH_FILE
    );
    Ok(())
}
