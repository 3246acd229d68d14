//! `hcs devices [--json]`: the memory types this build has, the GPUs it can use here and which
//! version of the kernels' hot loops this CPU runs.

/// Options of `hcs devices`.
#[derive(clap::Args)]
pub struct Args {
    /// Print the inventory as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Print what the compiler would plan with.
pub fn run(args: &Args) -> Result<(), String> {
    let inventory = hcs_device::detect();
    let memory: Vec<&str> = hcs_device::built_in_memory_types().iter().map(|m| m.name()).collect();
    let cpu = hcs_kernels::vector::HotLoops::detect();
    if args.json {
        let json =
            serde_json::json!({ "memory_types": memory, "cpu_hot_loops": cpu.name(), "gpus": inventory.devices });
        println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
        return Ok(());
    }
    println!("memory types in this build: {}", memory.join(", "));
    println!("CPU: {}", cpu.describe());
    if inventory.is_empty() {
        let why = if memory.len() == 1 {
            "this build has no GPU memory type (build with --features torch and/or cuda)"
        } else {
            "none found (no libcuda / no CUDA device visible)"
        };
        println!("GPUs: {why}");
    }
    for d in &inventory.devices {
        let cc = d.compute_capability.map(|(a, b)| format!(", compute capability {a}.{b}")).unwrap_or_default();
        let mem = if d.memory_mib > 0 { format!("{} MiB", d.memory_mib) } else { "memory unknown".into() };
        println!("cuda:{}  {}  ({mem}{cc})", d.ordinal, d.name);
    }
    Ok(())
}
