//! `bench --profile`: instructions and heap allocations per request, counted by Valgrind's
//! callgrind in the sidecar and in the bare forwarder. Each process runs under callgrind; after
//! a warm-up the counters are zeroed (`callgrind_control --zero`), one client sends the
//! requests, and a dump (`callgrind_control --dump`) gives the instructions executed by every
//! thread of the process and the allocations it made, each divided by the requests sent.
//! Counts, not timings: they do not move with the machine's load, so two commits can be
//! compared from one run each.
//!
//! Through the sidecar: GET by id (the same users read again, unchanged: their kept answers
//! serve them), create, and GET by id of records changed since their last read (`get_changed`:
//! the whole translation). Then create through a sidecar whose tenant has a webhook endpoint
//! answering in 5 s (`hooked`): what recording the events costs.
//!
//! An allocation is a call into Rust's global allocator (`__rust_alloc`, `__rust_alloc_zeroed`,
//! `__rust_realloc`: whichever allocator the binary installs) or a call into the C allocator
//! (`malloc`, `calloc`, `realloc`, the aligned ones) from C code such as SQLite's; the C calls
//! that Rust's default allocator makes on behalf of `__rust_alloc` are not counted twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, StatusCode};
use simulator::marketing_center::client as mc;

use serde_json::{Value, json};

use super::load::{self, Op, Until};
use super::procs::{self, Proc};
use super::{Options, Scenario, Target, User};

/// Rust's global allocator entry points; a call to any is one allocation.
const RUST_ALLOCATORS: [&str; 3] = ["__rust_alloc", "__rust_alloc_zeroed", "__rust_realloc"];

/// The C allocator's entry points; a call to any from C code is one allocation.
const C_ALLOCATORS: [&str; 6] = [
    "malloc",
    "calloc",
    "realloc",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
];

/// Rust's default (system) allocator: its calls into the C allocator serve a `__rust_*` call
/// already counted.
const RUST_SYSTEM_ALLOCATOR: [&str; 3] = ["__rdl_alloc", "__rdl_alloc_zeroed", "__rdl_realloc"];

/// A symbol without its `__rustc::` path and callgrind's `'N` recursion suffix.
fn bare(symbol: &str) -> &str {
    let symbol = symbol.split('\'').next().unwrap_or(symbol);
    symbol.strip_prefix("__rustc::").unwrap_or(symbol)
}

/// What one profiled operation cost per request.
#[derive(Clone, Debug)]
pub(super) struct Cost {
    /// `sidecar` or `forwarder`.
    pub(super) process: &'static str,
    /// The scenario's name.
    pub(super) operation: &'static str,
    pub(super) requests: u64,
    pub(super) instructions: f64,
    pub(super) allocations: f64,
}

/// The `valgrind` wrapper of a profiled process, writing its dumps next to `out`.
pub(super) fn wrapper(out: &Path) -> anyhow::Result<Vec<String>> {
    for tool in ["valgrind", "callgrind_control"] {
        let found = Command::new(tool).arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Err(anyhow::anyhow!(
                "bench --profile runs the processes under Valgrind's callgrind, and `{tool}` \
                 is not on PATH (Debian: apt-get install valgrind)"
            ));
        }
    }
    Ok(vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        "--quiet".into(),
        format!("--callgrind-out-file={}", out.display()),
    ])
}

/// Sends `requests` of `op` from one client to the profiled process `proc` and reads the cost
/// from the dump written next to `out`. The same requests go first to warm up (zeroed before
/// the counted ones): connections, caches and buffers are then as in a steady state.
pub(super) async fn measure(
    proc: &Proc,
    out: &Path,
    op: Op,
    requests: u64,
    (process, operation): (&'static str, &'static str),
) -> anyhow::Result<Cost> {
    check(
        &load::run(1, Until::Count(requests), Arc::clone(&op)).await,
        operation,
    )?;
    control(proc.pid(), "--zero").await?;
    check(&load::run(1, Until::Count(requests), op).await, operation)?;
    let before = dumps(out)?;
    control(proc.pid(), "--dump").await?;
    let dump = dumps(out)?
        .into_iter()
        .find(|d| !before.contains(d))
        .ok_or_else(|| anyhow::anyhow!("callgrind wrote no dump next to {}", out.display()))?;
    let text =
        std::fs::read_to_string(&dump).map_err(|e| anyhow::anyhow!("{}: {e}", dump.display()))?;
    let (instructions, allocations) = parse(&text)?;
    #[allow(clippy::cast_precision_loss)]
    let per = |n: u64| n as f64 / requests as f64;
    Ok(Cost {
        process,
        operation,
        requests,
        instructions: per(instructions),
        allocations: per(allocations),
    })
}

fn check(stats: &load::Stats, operation: &str) -> anyhow::Result<()> {
    if stats.errors > 0 {
        return Err(anyhow::anyhow!(
            "{operation}: {} requests failed while profiling; the first: {}",
            stats.errors,
            stats.first_error.as_deref().unwrap_or("?")
        ));
    }
    Ok(())
}

/// Runs `callgrind_control OPTION PID` (it waits until the process has done it).
async fn control(pid: u32, option: &'static str) -> anyhow::Result<()> {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("callgrind_control")
            .arg(option)
            .arg(pid.to_string())
            .output()
    })
    .await??;
    if !out.status.success() {
        return Err(anyhow::anyhow!(
            "callgrind_control {option} {pid} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The dump files callgrind wrote for `out` so far (`out.1`, `out.2`, …).
fn dumps(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let prefix = format!("{}.", out.file_name().unwrap_or_default().to_string_lossy());
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect())
}

/// The total instructions and the allocations (see the module's note) of a callgrind dump.
///
/// The format (<https://valgrind.org/docs/manual/cl-format.html>): `totals:` (or `summary:`)
/// gives the events of the whole dump, the first being instructions; a call is a `cfn=`
/// line naming the callee, then `calls=COUNT …`. Names are compressed: the first mention is
/// `(id) name`, later ones `(id)`.
pub(super) fn parse(text: &str) -> anyhow::Result<(u64, u64)> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut caller: Option<&str> = None;
    let mut callee: Option<&str> = None;
    let mut totals = None;
    let mut allocations = 0u64;
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("totals:")
            .or_else(|| line.strip_prefix("summary:"))
        {
            let first = rest.split_whitespace().next().unwrap_or("");
            totals = Some(
                first
                    .parse::<u64>()
                    .map_err(|_| anyhow::anyhow!("a callgrind dump with totals {rest:?}"))?,
            );
        } else if let Some(rest) = line.strip_prefix("cfn=") {
            callee = Some(name(&mut names, rest));
        } else if let Some(rest) = line.strip_prefix("fn=") {
            caller = Some(name(&mut names, rest));
        } else if let Some(rest) = line.strip_prefix("calls=") {
            let count: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let (from, to) = (caller.map_or("", bare), callee.map_or("", bare));
            // With link-time optimisation `__rdl_alloc` may be inlined into `__rust_alloc`,
            // which then calls `malloc` itself: the same allocation.
            let counted = RUST_ALLOCATORS.contains(&to)
                || (C_ALLOCATORS.contains(&to)
                    && !RUST_SYSTEM_ALLOCATOR.contains(&from)
                    && !RUST_ALLOCATORS.contains(&from));
            if counted {
                allocations += count;
            }
        }
    }
    let instructions = totals.ok_or_else(|| anyhow::anyhow!("a callgrind dump without totals"))?;
    Ok((instructions, allocations))
}

/// The name of a `fn=`/`cfn=` value, remembering `(id) name` for later `(id)`s.
fn name<'a>(names: &mut HashMap<&'a str, &'a str>, value: &'a str) -> &'a str {
    let value = value.trim();
    let Some(rest) = value.strip_prefix('(') else {
        return value;
    };
    let Some((id, name)) = rest.split_once(')') else {
        return value;
    };
    let name = name.trim();
    if name.is_empty() {
        names.get(id).copied().unwrap_or("")
    } else {
        names.insert(id, name);
        name
    }
}

/// Profiles GET by id, create and GET of changed records through the sidecar and GET by id
/// through the forwarder.
pub(super) async fn run(
    opts: &Options,
    dir: &Path,
    sim: &Proc,
    users: &Arc<Vec<User>>,
    start_sidecar: impl AsyncFnOnce(&[String]) -> anyhow::Result<Proc>,
    start_hooked: impl AsyncFnOnce(&[String]) -> anyhow::Result<Proc>,
) -> anyhow::Result<Vec<Cost>> {
    let requests = opts.profile_requests;
    let sidecar_out = dir.join("sidecar.callgrind");
    let sidecar = start_sidecar(&wrapper(&sidecar_out)?).await?;
    super::import(&sidecar.url, users.len()).await?;
    let mut costs = Vec::new();
    let target = Target::sidecar(&sidecar.url);
    for scenario in [Scenario::GetById, Scenario::Create] {
        eprintln!("bench: profiling {} through the sidecar", scenario.name());
        let op = scenario.op(&target, users, 2, 1)?;
        let key = ("sidecar", scenario.name());
        costs.push(measure(&sidecar, &sidecar_out, op, requests, key).await?);
    }
    eprintln!(
        "bench: profiling get_changed (records changed since their last read) through the sidecar"
    );
    let op = changed_get(&sidecar.url, &sim.url, users);
    let key = ("sidecar", "get_changed");
    costs.push(measure(&sidecar, &sidecar_out, op, requests, key).await?);
    sidecar.stop();

    eprintln!("bench: profiling create through a sidecar whose webhook endpoint answers in 5 s");
    let hooked_out = dir.join("hooked.callgrind");
    let hooked = start_hooked(&wrapper(&hooked_out)?).await?;
    let op = Scenario::Create.op(&Target::sidecar(&hooked.url), users, 3, 1)?;
    let key = ("hooked", Scenario::Create.name());
    costs.push(measure(&hooked, &hooked_out, op, requests, key).await?);
    hooked.stop();

    eprintln!("bench: profiling get_by_id through the forwarder");
    let fwd_out = dir.join("forwarder.callgrind");
    let fwd = procs::spawn_printing_under(
        &wrapper(&fwd_out)?,
        &[
            "forward".into(),
            "--upstream".into(),
            super::origin(&sim.url),
        ],
        "forwarding on ",
        &dir.join("forward.log"),
    )?;
    let op = Scenario::GetById.op(&Target::forwarded(&fwd.url, &sim.url), users, 1, 1)?;
    costs.push(measure(&fwd, &fwd_out, op, requests, ("forwarder", "get_by_id")).await?);
    fwd.stop();
    Ok(costs)
}

/// GET by id of a record the legacy app changed since the sidecar last read it: a field of
/// the record is changed first, straight at the simulator (a process the profile does not
/// count), to a title never used before, so no kept answer (`answers`) serves the GET and the
/// whole translation runs, as for a record read for the first time.
fn changed_get(sidecar: &str, sim: &str, users: &Arc<Vec<User>>) -> Op {
    let (sidecar, sim, users) = (sidecar.to_owned(), sim.to_owned(), Arc::clone(users));
    let titles = Arc::new(AtomicU64::new(0));
    Arc::new(move |http, w, seq| {
        let u = &users[((w * 7919 + seq) as usize) % users.len()];
        let title = format!("Title {}", titles.fetch_add(1, Ordering::Relaxed));
        let change = super::legacy(&sim, mc::set_title(&u.legacy_id, &title));
        let path = format!("/Users/{}", u.scim_id);
        let get = super::scim(&sidecar, Method::GET, &path, None);
        Box::pin(async move {
            load::expect(&http, change, StatusCode::OK).await?;
            load::expect(&http, get, StatusCode::OK).await.map(drop)
        })
    })
}

/// The profile's table, with the targets of GET by id.
pub(super) fn print(costs: &[Cost]) {
    println!("\nprofile (callgrind, one client; per request, after as many to warm up)\n");
    println!(
        "{:<11} {:<11} {:>9} {:>14} {:>12}   target",
        "process", "operation", "requests", "instructions", "allocations"
    );
    for c in costs {
        let target = if (c.process, c.operation) == ("sidecar", "get_by_id") {
            let met = |ok: bool| if ok { "met" } else { "NOT met" };
            format!(
                "≤ 100,000 ({}) / ≤ 60 ({})",
                met(c.instructions <= 100_000.0),
                met(c.allocations <= 60.0)
            )
        } else {
            String::new()
        };
        println!(
            "{:<11} {:<11} {:>9} {:>14.0} {:>12.1}   {target}",
            c.process, c.operation, c.requests, c.instructions, c.allocations
        );
    }
}

/// The profile as JSON.
pub(super) fn json(costs: &[Cost]) -> Value {
    Value::Array(
        costs
            .iter()
            .map(|c| {
                json!({
                    "process": c.process,
                    "operation": c.operation,
                    "requests": c.requests,
                    "instructions_per_request": c.instructions,
                    "allocations_per_request": c.allocations,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_gives_its_totals_and_its_allocator_calls() {
        let dump = "version: 1\nevents: Ir\nfn=(1) main\n0 10\ncfn=(2) malloc\ncalls=3 0\n0 30\n\
                    cfn=(3) free\ncalls=3 0\n0 9\nfn=(4) other\ncfn=(2)\ncalls=2 0\n0 20\n\
                    cfn=(5) realloc'2\ncalls=1 0\n0 5\ntotals: 1234 56\n";
        assert_eq!(parse(dump).unwrap(), (1234, 6));
        assert!(parse("fn=(1) main\n").is_err(), "no totals");
    }

    #[test]
    fn rust_allocations_count_once_whichever_allocator_serves_them() {
        // The system allocator: `__rust_alloc` calls `__rdl_alloc`, which calls `malloc`;
        // SQLite calls `malloc` itself.
        let system = "fn=(1) main\ncfn=(2) __rustc::__rust_alloc\ncalls=4 0\n0 40\n\
                      cfn=(3) __rustc::__rust_realloc\ncalls=1 0\n0 9\n\
                      fn=(2)\ncfn=(4) __rustc::__rdl_alloc\ncalls=4 0\n0 30\n\
                      fn=(4)\ncfn=(5) malloc\ncalls=4 0\n0 20\n\
                      fn=(3)\ncfn=(6) __rustc::__rdl_realloc\ncalls=1 0\n0 8\n\
                      fn=(6)\ncfn=(7) realloc\ncalls=1 0\n0 7\n\
                      fn=(8) sqlite3Malloc\ncfn=(5)\ncalls=2 0\n0 10\ntotals: 500\n";
        assert_eq!(parse(system).unwrap(), (500, 7));
        // mimalloc: `__rust_alloc` calls `mi_malloc_aligned`, never `malloc`.
        let mimalloc = "fn=(1) main\ncfn=(2) __rustc::__rust_alloc\ncalls=4 0\n0 40\n\
                        fn=(2)\ncfn=(3) mi_malloc_aligned\ncalls=4 0\n0 30\n\
                        fn=(4) sqlite3Malloc\ncfn=(5) malloc\ncalls=2 0\n0 10\ntotals: 400\n";
        assert_eq!(parse(mimalloc).unwrap(), (400, 6));
        // Link-time optimised: `__rdl_alloc` inlined, `__rust_alloc` calls `malloc`.
        let inlined = "fn=(1) main\ncfn=(2) __rustc::__rust_alloc\ncalls=4 0\n0 40\n\
                       fn=(2)\ncfn=(3) malloc\ncalls=4 0\n0 20\n\
                       fn=(4) sqlite3Malloc\ncfn=(3)\ncalls=2 0\n0 10\ntotals: 300\n";
        assert_eq!(parse(inlined).unwrap(), (300, 6));
    }
}
