//! The `hcs` command-line tool. All of it lives in [`hcs::cli`], so a crate with its own kernels
//! can ship the same tool with its functions linked in (see `examples/plugin-kernels`).

fn main() -> std::process::ExitCode {
    hcs::cli::main()
}
