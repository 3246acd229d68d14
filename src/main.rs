//! The `hcs` command-line tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// High-content-screening pipelines: contracts checked by rustc, plans checked before any pixel moves.
#[derive(Parser)]
#[command(name = "hcs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every registered processing function and its contract.
    Functions(cli::functions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Functions(args) => cli::functions::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
