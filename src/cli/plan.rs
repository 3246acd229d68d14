//! `hcs plan PIPELINE --plate DIR [--well A01] [--json]`: compile and show the frozen per-well
//! plans — a readable summary, or stable JSON (sorted keys, one document) for diffs and tools.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::plan::compiler::{Location, ResolvedPattern, SpecialInputPlan, WellPlan};
use crate::plate::WellId;

use crate::plan::pipeline::ConfigLayer;

use super::compile_args::compile_file;

/// Options of `hcs plan`.
#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// The plate to compile for.
    #[arg(long)]
    pub plate: PathBuf,
    /// Only this well (e.g. A01).
    #[arg(long)]
    pub well: Option<WellId>,
    /// Print the plans as JSON.
    #[arg(long)]
    pub json: bool,
    /// Global configuration file (the layer under the pipeline's `[config]`; default `$HCS_CONFIG`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The output plate folder, as `hcs run --out` would be given it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Storage of the output images, as `hcs run --backend` would be given it.
    #[arg(long, value_parser = ["disk", "zarr"])]
    pub backend: Option<String>,
}

fn location(l: &Location) -> String {
    match l {
        Location::Plate { .. } => "plate".into(),
        Location::Memory { namespace } => format!("memory:{namespace}"),
        Location::Disk { dir } => format!("disk:{}", dir.display()),
        Location::Zarr { store } => format!("zarr:{}", store.display()),
    }
}

fn pattern(p: &ResolvedPattern) -> String {
    match p {
        ResolvedPattern::Call(c) => {
            let params: Vec<String> = c.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let conv = c.convert_input.map(|c| format!("[{}→{}] ", c.from, c.to)).unwrap_or_default();
            format!("{conv}{}({})", c.function, params.join(", "))
        }
        ResolvedPattern::Chain { members } => members.iter().map(pattern).collect::<Vec<_>>().join(" → "),
        ResolvedPattern::Dict { by, entries } => {
            let e: Vec<String> = entries.iter().map(|(k, v)| format!("{by} {k}: {}", pattern(v))).collect();
            format!("{{ {} }}", e.join("; "))
        }
    }
}

/// A readable summary of one well's plan.
pub fn summary(plan: &WellPlan) -> String {
    let mut s = String::new();
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1048576.0);
    let mut peak = plan.estimated_peak_bytes.map_or("unknown".into(), mib);
    if plan.write_behind_bytes > 0 && plan.estimated_peak_bytes.is_some() {
        peak = format!("{peak}, {} of it files waiting for the disk", mib(plan.write_behind_bytes));
    }
    let _ = writeln!(s, "well {} → {} (peak in memory ~{peak})", plan.well, plan.output_root.display());
    if let Some(r) = &plan.spill_reason {
        let _ = writeln!(s, "  spills to scratch: {r}");
    }
    for st in &plan.steps {
        if let Some(seg) = plan.segments.iter().find(|g| g.first == st.index) {
            let by: Vec<&str> = seg.by.iter().map(|c| c.name()).collect();
            let parts = seg.parts.map_or("parts".to_string(), |n| format!("{n} parts"));
            let _ = writeln!(
                s,
                "  steps {}-{} run one part of the well at a time ({parts}, by {}):",
                seg.first,
                seg.last,
                by.join(",")
            );
        }
        let comps: Vec<&str> = st.variable_components.iter().map(|c| c.name()).collect();
        let calls = match st.calls_per_well {
            Some(1) => "1 call".to_string(),
            Some(n) => format!("{n} calls"),
            None => "? calls".to_string(),
        };
        let _ = writeln!(
            s,
            "  {}. {} [{}] {}: {} → {}",
            st.index,
            st.name,
            comps.join(","),
            calls,
            location(&st.reads),
            location(&st.writes)
        );
        match &st.reuses {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "       {} (the result of step {}'s first call: not called again)",
                    pattern(&st.func),
                    r.step
                );
            }
            None => {
                let _ = writeln!(s, "       {}", pattern(&st.func));
            }
        }
        if let Some(shared) = &st.shares {
            let _ = writeln!(s, "       first call's result kept → {} for step {}", shared.namespace, shared.step);
        }
        for (k, src) in st.special_inputs.iter() {
            let from = match src {
                SpecialInputPlan::Plate { value } => format!("plate metadata = {value}"),
                SpecialInputPlan::Step { step, function, by, .. } if by.is_empty() => {
                    format!("step {step} `{function}`")
                }
                SpecialInputPlan::Step { step, function, by, .. } => format!(
                    "step {step} `{function}`, the value of this group's {}",
                    by.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
                ),
            };
            let _ = writeln!(s, "       <{k} from {from}");
        }
        for (k, o) in &st.special_outputs {
            let _ = writeln!(s, "       >{k} → {}/{}*", o.results_dir.display(), o.stem);
        }
        if let Some(c) = &st.checkpoint {
            let _ = writeln!(s, "       checkpoint → {}", location(c));
        }
        if let Some(p) = &st.preview {
            let _ = writeln!(
                s,
                "       preview → zarr:{} + {}/<well>.png",
                p.store.store.display(),
                p.thumbnails.display()
            );
        }
        if let Some(g) = &st.gpu {
            let _ = writeln!(s, "       GPU {} ({} slots)", g.device, g.slots);
        }
    }
    s
}

/// How many wells a run of `compiled` takes at once with its default workers, why, and the
/// memory they hold together.
fn wells_at_once_line(compiled: &crate::plan::compiler::CompiledPlate, first: &WellPlan) -> String {
    use crate::exec::wells_at_once::{Reason, wells_at_once};
    let workers = crate::exec::worker_count(None, first);
    let (at_once, reason) = wells_at_once(None, workers, first, compiled.wells.len());
    let why = match reason {
        Reason::Groups(groups) => format!(" (the steps run {} at once, median)", super::counted(groups, "group")),
        Reason::CpuGroups(groups) => {
            format!(
                " (the steps on the CPU run {} at once, median; the GPU's do not count)",
                super::counted(groups, "group")
            )
        }
        Reason::Asked | Reason::Unknown => String::new(),
    };
    let memory = first
        .estimated_peak_bytes
        .map(|b| format!(", ~{:.1} MiB in memory for them", (b as f64) * (at_once as f64) / 1048576.0))
        .unwrap_or_default();
    format!(
        "a run on {} takes {} at a time{why}{memory}; `hcs run --workers N --wells-at-once N` changes that",
        super::counted(workers, "worker"),
        super::wells(at_once)
    )
}

/// Compile and print.
pub fn run(args: &Args) -> Result<(), String> {
    let wells = args.well.map(|w| vec![w]);
    // The command line's layer as `hcs run` makes it from the same options, so the plan shown
    // is the run's.
    let overrides = ConfigLayer {
        output_root: args.out.clone(),
        backend: super::backend_option(args.backend.as_deref()),
        ..ConfigLayer::default()
    };
    let (_, _, compiled) = compile_file(&args.pipeline, &args.plate, args.config.as_deref(), overrides, wells)?;
    if args.json {
        // One shape with or without `--well` (its `wells` then holds that well), so a script
        // reads `.wells` either way.
        let text = serde_json::to_string_pretty(&compiled);
        println!("{}", text.map_err(|e| format!("cannot write JSON: {e}"))?);
        return Ok(());
    }
    println!(
        "`{}` for {} ({}); every well has the same steps, shown for {}:",
        compiled.pipeline,
        compiled.plate.display(),
        super::wells(compiled.wells.len()),
        compiled.wells.first().map_or("none".into(), |w| w.well.to_string())
    );
    if let Some(first) = compiled.wells.first() {
        print!("{}", summary(first));
        println!("{}", wells_at_once_line(&compiled, first));
    }
    for viewer in &compiled.viewers {
        println!("viewers: {viewer}");
    }
    Ok(())
}
