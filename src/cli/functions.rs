//! `hcs functions [--json]`: the registry as a table or as JSON.

use std::fmt::Write as _;

use crate::{FunctionContract, Registry};

/// Options of `hcs functions`.
#[derive(clap::Args)]
pub struct Args {
    /// Print every contract as JSON (parameter schemas, special I/O, source locations).
    #[arg(long)]
    pub json: bool,
    /// Only functions whose name contains this text.
    pub filter: Option<String>,
}

/// List the registry.
pub fn run(args: &Args) -> Result<(), String> {
    let registry = Registry::global();
    let contracts: Vec<&FunctionContract> =
        registry.iter().filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f))).collect();
    let exact: Vec<&FunctionContract> =
        contracts.iter().copied().filter(|c| args.filter.as_deref() == Some(c.name)).collect();
    if args.json {
        let json = serde_json::to_string_pretty(&contracts).map_err(|e| e.to_string())?;
        println!("{json}");
    } else if !exact.is_empty() {
        print!("{}", details(&exact));
    } else {
        print!("{}", table(&contracts));
    }
    match registry.check() {
        Ok(()) => Ok(()),
        Err(problems) => Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

fn table(contracts: &[&FunctionContract]) -> String {
    let mut out = String::new();
    let name_w = contracts.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(out, "{:<name_w$}  {:<15}  {:<24}  PARAMETERS", "NAME", "MEMORY", "SPECIAL I/O");
    for c in contracts {
        let memory = if c.input_memory == c.output_memory {
            c.input_memory.to_string()
        } else {
            format!("{}->{}", c.input_memory, c.output_memory)
        };
        let mut special: Vec<String> = c.special_inputs.iter().map(|s| format!("<{}", s.key)).collect();
        special.extend(c.special_outputs.iter().map(|s| format!(">{}", s.key)));
        if c.chain_breaker {
            special.push("chain-breaker".to_owned());
        }
        let params: Vec<String> = c
            .params
            .iter()
            .map(|p| {
                let base = match p.default {
                    Some(d) => format!("{}={}", p.name, d()),
                    None => p.name.to_owned(),
                };
                if p.rule.is_empty() { base } else { format!("{base} ({})", p.rule) }
            })
            .collect();
        let _ = writeln!(out, "{:<name_w$}  {:<15}  {:<24}  {}", c.name, memory, special.join(" "), params.join(", "));
    }
    let _ = writeln!(out, "{} function(s)", contracts.len());
    out
}

/// One function in full (`hcs functions NAME`): its doc, every parameter with what it accepts,
/// its rules, special data, and its variants.
fn details(variants: &[&FunctionContract]) -> String {
    let mut out = String::new();
    let Some(c) = variants.first() else { return out };
    let _ = writeln!(out, "{}\n", c.name);
    if !c.doc.is_empty() {
        let _ = writeln!(out, "  {}\n", c.doc);
    }
    let _ = writeln!(out, "variants:");
    for v in variants {
        let _ = writeln!(
            out,
            "  {} -> {}  {}  ({}:{})",
            v.input_memory,
            v.output_memory,
            v.path(),
            v.location.file,
            v.location.line
        );
    }
    let _ = writeln!(out, "parameters:");
    if c.params.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for p in c.params {
        let default = p.default.map_or_else(|| "required".to_string(), |d| format!("default {}", d()));
        let _ = writeln!(out, "  {:<24} {}; {}", p.name, p.accepts(), default);
        if !p.doc.is_empty() {
            let _ = writeln!(out, "  {:<24} {}", "", p.doc);
        }
    }
    if !c.checks.is_empty() {
        let _ = writeln!(out, "rules:");
        for rule in c.checks {
            let _ = writeln!(out, "  {}", rule.describe());
        }
    }
    for s in c.special_inputs {
        let _ = writeln!(out, "special input  {} ({})", s.key, s.rust_type);
    }
    for s in c.special_outputs {
        let _ = writeln!(out, "special output {} ({})", s.key, s.rust_type);
    }
    let _ = writeln!(
        out,
        "planes: {:?}, plane size: {:?}{}",
        c.output_planes,
        c.plane_shape,
        if c.chain_breaker { ", chain breaker" } else { "" }
    );
    out
}
