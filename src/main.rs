//! The `scim-sidecar` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = scim_sidecar::cli::Cli::parse();
    scim_sidecar::cli::run(cli)
}
