//! `hcs demo`: synthesize a seeded plate, read it back, and run a pipeline of registered
//! functions over every well in parallel, writing TIFF results and a summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::core_runtime::formats::open_plate;
use crate::core_runtime::plate::{Component, ImageKey, Plate, WellId};
use crate::vfs::tiff::{TiffCompression, write_tiff};
use crate::vfs::{Dtype, PlaneData};
use crate::{MemoryType, ParamMap, ParamValue, Registry, SpecialInputs, Stack};

/// Options of `hcs demo`.
#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Output directory: the synthetic plate goes to `<out>/plate`, results to `<out>/results`.
    #[arg(long, default_value = "hcs-demo")]
    pub out: PathBuf,
    /// Tile edge in pixels.
    #[arg(long, default_value_t = 1024)]
    pub tile: usize,
    /// Wells, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "A01,D02,B03,B06")]
    pub wells: Vec<String>,
    /// Random seed of the synthetic plate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// One step of the demo pipeline: a registered function and its parameters.
struct DemoStep {
    function: &'static str,
    params: &'static [(&'static str, f64)],
    /// The axis stacked into one call.
    over: Component,
}

const STEPS: [DemoStep; 3] = [
    DemoStep { function: "max_projection", params: &[], over: Component::Z },
    DemoStep {
        function: "stack_percentile_normalize",
        params: &[("low_percentile", 0.5), ("high_percentile", 99.5)],
        over: Component::Channel,
    },
    DemoStep { function: "create_composite", params: &[], over: Component::Channel },
];

/// Run the demo.
pub fn run(args: &Args) -> Result<(), String> {
    let total = Instant::now();
    let synth_args = super::synth::Args {
        out: args.out.join("plate"),
        format: super::synth::Format::Imagexpress,
        wells: args.wells.clone(),
        grid: vec![3, 3],
        tile: args.tile,
        overlap: 0.1,
        jitter: 2.0,
        channels: 2,
        z: 3,
        timepoints: 1,
        seed: args.seed,
        cell_density: 1.0,
        noise: 100.0,
        falloff: 0.3,
    };
    let config = synth_args.config()?;
    let started = Instant::now();
    crate::core_runtime::synth::synthesize(&config, &synth_args.out).map_err(|e| e.to_string())?;
    let synth_time = started.elapsed();

    let started = Instant::now();
    let plate = open_plate(&synth_args.out, None).map_err(|e| e.to_string())?;
    let index_time = started.elapsed();

    let registry = Registry::global();
    registry.check().map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))?;
    for step in &STEPS {
        if registry.get(step.function, MemoryType::Ndarray).is_none() {
            return Err(format!("function `{}` is not registered", step.function));
        }
    }

    let results = args.out.join("results");
    let wells = plate.index.wells();
    let sites = plate.index.values(Component::Site);
    let bar = indicatif::ProgressBar::new((wells.len() * sites.len()) as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sites {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let timings: Mutex<BTreeMap<&'static str, Duration>> = Mutex::new(BTreeMap::new());
    let started = Instant::now();
    let outputs: Vec<PathBuf> = wells
        .par_iter()
        .flat_map_iter(|&well| sites.iter().map(move |&site| (well, site)))
        .map(|(well, site)| {
            let out = run_site(&plate, well, site, &results, &timings);
            bar.inc(1);
            out
        })
        .collect::<Result<Vec<_>, String>>()?;
    bar.finish_and_clear();
    let run_time = started.elapsed();

    let bytes_in: u64 = crate::core_runtime::synth::image_paths(&config, &plate.root)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "hcs demo: synthetic ImageXpress plate, {} wells × {} sites × 2 channels × 3 z, {}² u16",
        wells.len(),
        sites.len(),
        args.tile
    );
    println!("  plate       {}  ({} images, {:.1} MB)", plate.root.display(), plate.index.len(), bytes_in as f64 / 1e6);
    println!(
        "  pipeline    max_projection over z → stack_percentile_normalize(0.5, 99.5) over channels → create_composite"
    );
    println!("  results     {}  ({} composite TIFFs)", results.display(), outputs.len());
    println!("  synthesize  {:>8.2} s", synth_time.as_secs_f64());
    println!("  index       {:>8.2} s", index_time.as_secs_f64());
    println!(
        "  run         {:>8.2} s  ({:.0} MB/s of raw input, {} threads)",
        run_time.as_secs_f64(),
        bytes_in as f64 / 1e6 / run_time.as_secs_f64().max(1e-9),
        rayon::current_num_threads()
    );
    if let Ok(t) = timings.lock() {
        for (name, d) in t.iter() {
            println!("    {name:<28} {:>8.2} s (summed over threads)", d.as_secs_f64());
        }
    }
    println!("  total       {:>8.2} s", total.elapsed().as_secs_f64());
    Ok(())
}

fn run_site(
    plate: &Plate,
    well: WellId,
    site: u32,
    results: &Path,
    timings: &Mutex<BTreeMap<&'static str, Duration>>,
) -> Result<PathBuf, String> {
    let time = |name: &'static str, d: Duration| {
        if let Ok(mut t) = timings.lock() {
            *t.entry(name).or_default() += d;
        }
    };
    let channels = plate.index.values(Component::Channel);
    let zs = plate.index.values(Component::Z);
    // Step 1: per channel, stack the z-planes and project.
    let mut projected = Vec::with_capacity(channels.len());
    for &channel in &channels {
        let started = Instant::now();
        let planes = zs
            .iter()
            .map(|&z| load(plate, &ImageKey { well, timepoint: 1, site, channel, z }))
            .collect::<Result<Vec<_>, _>>()?;
        time("read", started.elapsed());
        let out = call(&STEPS[0], stack(&planes)?, &time)?;
        projected.push(out.index_axis_move(Axis(0), 0));
    }
    // Steps 2-3: stack the channels, normalize together, composite.
    let mut current = stack(&projected)?;
    for step in &STEPS[1..] {
        debug_assert_eq!(step.over, Component::Channel);
        current = call(step, current, &time)?;
    }
    let started = Instant::now();
    let path = results.join(well.to_string()).join(format!("{well}_s{site}_composite.tif"));
    let plane = PlaneData::from_f32(&current.index_axis(Axis(0), 0).to_owned(), Dtype::U16);
    write_tiff(&path, &[plane], TiffCompression::None).map_err(|e| e.to_string())?;
    time("write", started.elapsed());
    Ok(path)
}

fn load(plate: &Plate, key: &ImageKey) -> Result<ndarray::Array2<f32>, String> {
    let plane = plate.index.get(key).ok_or_else(|| format!("{key}: not in the plate"))?;
    plane.load(&plate.root).map(|p| p.to_f32()).map_err(|e| e.to_string())
}

fn stack(planes: &[ndarray::Array2<f32>]) -> Result<Array3<f32>, String> {
    let views: Vec<_> = planes.iter().map(|p| p.view()).collect();
    ndarray::stack(Axis(0), &views).map_err(|e| format!("planes of different sizes: {e}"))
}

fn call(step: &DemoStep, input: Array3<f32>, time: &dyn Fn(&'static str, Duration)) -> Result<Array3<f32>, String> {
    let contract = Registry::global()
        .get(step.function, MemoryType::Ndarray)
        .ok_or_else(|| format!("function `{}` is not registered", step.function))?;
    let params: ParamMap = step.params.iter().map(|(k, v)| ((*k).to_owned(), ParamValue::Float(*v))).collect();
    let started = Instant::now();
    let out = contract.call(Stack::Ndarray(input), &params, &SpecialInputs::new()).map_err(|e| e.to_string())?;
    time(step.function, started.elapsed());
    match out.stack {
        Stack::Ndarray(a) => Ok(a),
        #[allow(unreachable_patterns)]
        other => Err(format!("`{}` returned a {} stack", step.function, other.memory_type())),
    }
}
