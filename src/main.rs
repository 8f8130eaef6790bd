//! The `scim-sidecar` binary: parse the command line and run it.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the C library's allocator: a request makes some two hundred small
/// allocations, and glibc's `malloc`/`free` (with its consolidation passes) cost about a
/// quarter of a GET's instructions; mimalloc's thread-local free lists cost a fraction.
/// Version 2 without transparent huge pages (`no_thp`): version 3, and huge pages, raised the
/// resident memory past its targets (idle 27 MiB, peak 67 MiB in `bench`, against 16 and 48).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = scim_sidecar::cli::Cli::parse();
    scim_sidecar::cli::run(cli)
}
