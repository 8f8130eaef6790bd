//! The `scim-sidecar` binary: settle glibc's malloc (`scim_sidecar::malloc`), parse the command
//! line and run it.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // First: it may execute this binary again, which only works before any thread starts.
    scim_sidecar::malloc::settle();
    let cli = scim_sidecar::cli::Cli::parse();
    scim_sidecar::cli::run(cli)
}
