//! The `hcs` command line, one module per subcommand.
//!
//! A crate that registers its own functions builds the same tool by linking itself in:
//!
//! ```no_run
//! // src/bin/hcs-with-plugins.rs of a plugin crate
//! // use my_plugin as _;   // keeps the plugin's registrations in the binary
//! fn main() -> std::process::ExitCode {
//!     hcs::cli::main()
//! }
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod functions;

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
    Functions(functions::Args),
}

/// Parse the process arguments and run the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Functions(args) => functions::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
