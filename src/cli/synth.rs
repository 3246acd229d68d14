//! `hcs synth`: write a seeded synthetic plate with ground-truth tile positions.

use std::path::PathBuf;

use crate::plate::WellId;
use crate::synth::{SynthConfig, SynthFormat, synthesize};

/// Options of `hcs synth`. Defaults mirror the peer's integration data.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Output directory: created, or empty, or holding a plate `hcs synth` wrote with the same
    /// options (rewritten as it was).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a synthetic plate written there with other options (its folder is emptied first).
    #[arg(long)]
    pub force: bool,
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
    /// Cut the tiles from this grayscale TIFF (a real image) instead of rendering blobs; every
    /// well and channel shows the same picture at its own jittered positions.
    #[arg(long, value_name = "TIFF")]
    pub source_image: Option<PathBuf>,
    /// Tile pixels per source-image pixel (magnification of the source image).
    #[arg(long, default_value_t = 1.0, requires = "source_image")]
    pub source_scale: f64,
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
            source: self.source_image.clone().map(|path| crate::synth::SourceImage { path, scale: self.source_scale }),
        })
    }
}

/// Whether `out` may receive a plate written with `config`: refuses a folder holding anything
/// but the same synthetic plate, so that new and old wells are never mixed. With `force`, a
/// synthetic plate written with other options (or left half-written) is removed first — only
/// when the folder holds nothing but what `hcs synth` writes; other files are never removed.
pub(crate) fn guard_output(out: &std::path::Path, config: &SynthConfig, force: bool) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(out) else { return Ok(()) };
    let names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    if names.is_empty() {
        return Ok(());
    }
    let truth_file = out.join(crate::synth::GROUND_TRUTH_FILE);
    let earlier = std::fs::read(&truth_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<crate::synth::GroundTruth>(&bytes).ok());
    if earlier.as_ref().is_some_and(|t| t.config == *config) {
        return Ok(());
    }
    let foreign: Vec<&String> = names.iter().filter(|n| !written_by_synth(n)).collect();
    if !foreign.is_empty() {
        let shown: Vec<&str> = foreign.iter().take(5).map(|n| n.as_str()).collect();
        return Err(format!(
            "{} holds files `hcs synth` did not write ({}{}): choose an empty or new folder",
            out.display(),
            shown.join(", "),
            if foreign.len() > shown.len() { ", …" } else { "" }
        ));
    }
    let what = earlier.map_or_else(
        || format!("a plate left half-written (no {})", crate::synth::GROUND_TRUTH_FILE),
        |t| format!("another synthetic plate ({})", describe(&t.config)),
    );
    if !force {
        return Err(format!(
            "{} holds {what}; now asked for {}: writing beside it would mix their wells. Add --force to replace it, or choose another folder",
            out.display(),
            describe(config)
        ));
    }
    for name in &names {
        let path = out.join(name);
        let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        removed.map_err(|e| format!("{}: cannot remove the earlier plate: {e}", path.display()))?;
    }
    eprintln!("replaced {what} in {}", out.display());
    Ok(())
}

/// Whether a top-level entry of a plate folder is one `hcs synth` writes.
fn written_by_synth(name: &str) -> bool {
    name == crate::synth::GROUND_TRUTH_FILE
        || name == "Images"
        || name.starts_with("TimePoint_")
        || name.ends_with(".HTD")
}

/// A short description of a synthetic plate's options.
fn describe(c: &SynthConfig) -> String {
    let wells: Vec<String> = c.wells.iter().map(ToString::to_string).collect();
    format!(
        "wells {}, {}×{} sites, {} px tiles, {}, {} z, {}, seed {}",
        wells.join(","),
        c.grid.0,
        c.grid.1,
        c.tile,
        super::counted(c.channels as usize, "channel"),
        c.z_planes,
        super::counted(c.timepoints as usize, "timepoint"),
        c.seed
    )
}

/// Write the plate.
pub fn run(args: &Args) -> Result<(), String> {
    let config = args.config()?;
    guard_output(&args.out, &config, args.force)?;
    let started = std::time::Instant::now();
    let truth = synthesize(&config, &args.out).map_err(|e| e.to_string())?;
    let images = truth.positions.iter().map(|(_, p)| p.len()).sum::<usize>()
        * (config.channels * config.z_planes * config.timepoints) as usize;
    println!(
        "wrote {}, {} of {}² u16 to {} in {:.2} s (ground truth: {})",
        super::wells(config.wells.len()),
        super::counted(images, "image"),
        config.tile,
        args.out.display(),
        started.elapsed().as_secs_f64(),
        crate::synth::GROUND_TRUTH_FILE
    );
    Ok(())
}
