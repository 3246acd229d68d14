//! One module per subcommand.

pub mod functions;
