//! `bench --soak`: the sidecar under a long mixed load, its memory sampled all along. Many
//! clients send GETs by id, `userName` lookups and creates (eight, one and one in ten), so
//! the cross-reference grows the whole time; the sidecar's resident memory is read every few
//! seconds and printed as a curve. The figure: how much it grew from the end of the first
//! fifth of the run (five minutes of the default thirty) to the end, against ≤ 5 %.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::load::{self, Op, Until};
use super::procs::Proc;
use super::{Options, Scenario, Target, User};

/// Samples of the memory curve.
const SAMPLE: Duration = Duration::from_secs(5);
/// Lines of the printed curve (at most; every sample goes to the JSON report).
const PRINTED: usize = 30;
/// The share of the run counted as warm-up: growth is measured from its end.
const WARM_FRACTION: f64 = 0.2;
/// The growth allowed after the warm-up.
const TARGET_GROWTH: f64 = 0.05;
const MIB: f64 = 1024.0 * 1024.0;

/// One memory sample: seconds since the load began, resident bytes.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    rss: u64,
}

/// Eight GETs by id, one lookup and one create in every ten operations.
fn mixed(target: &Target, users: &Arc<Vec<User>>, clients: usize) -> anyhow::Result<Op> {
    let get = Scenario::GetById.op(target, users, 2, clients)?;
    let lookup = Scenario::Lookup.op(target, users, 2, clients)?;
    let create = Scenario::Create.op(target, users, 2, clients)?;
    Ok(Arc::new(move |http, w, seq| match seq % 10 {
        8 => lookup(http, w, seq),
        9 => create(http, w, seq),
        _ => get(http, w, seq),
    }))
}

/// Runs the soak against `sidecar` (its users imported) and prints the curve and the figure;
/// returns the report.
pub(super) async fn run(
    opts: &Options,
    sidecar: &Proc,
    users: &Arc<Vec<User>>,
) -> anyhow::Result<Value> {
    let secs = opts.soak_secs;
    eprintln!(
        "bench: soak, {} clients for {secs:.0} s (GET, lookup and create: 8/1/1)",
        opts.soak_clients
    );
    let op = mixed(&Target::sidecar(&sidecar.url), users, opts.soak_clients)?;
    let load = tokio::spawn(load::run(
        opts.soak_clients,
        Until::Elapsed(Duration::from_secs_f64(secs)),
        op,
    ));
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE);
    while !load.is_finished() {
        tick.tick().await;
        samples.push(Sample {
            at: started.elapsed().as_secs_f64(),
            rss: sidecar.rss()?.0,
        });
    }
    let stats = load.await?;
    samples.push(Sample {
        at: started.elapsed().as_secs_f64(),
        rss: sidecar.rss()?.0,
    });
    let (growth, warm, end) = growth(&samples, secs * WARM_FRACTION)
        .ok_or_else(|| anyhow::anyhow!("the soak ended before its warm-up: no curve"))?;
    print(&samples, &stats, (growth, warm, end), secs);
    Ok(json!({
        "clients": opts.soak_clients,
        "seconds": secs,
        "operations": stats.ok,
        "errors": stats.errors,
        "first_error": stats.first_error,
        "per_second": stats.per_second(),
        "rss_after_warm_up_bytes": warm,
        "rss_end_bytes": end,
        "growth_after_warm_up": growth,
        "target_growth": TARGET_GROWTH,
        "curve": samples.iter().map(|s| json!([s.at, s.rss])).collect::<Vec<_>>(),
    }))
}

/// The growth from the first sample at or after `warm_up` seconds to the last sample, with
/// both sizes.
fn growth(samples: &[Sample], warm_up: f64) -> Option<(f64, u64, u64)> {
    let warm = samples.iter().find(|s| s.at >= warm_up)?.rss;
    let end = samples.last()?.rss;
    #[allow(clippy::cast_precision_loss)]
    Some(((end as f64 - warm as f64) / warm as f64, warm, end))
}

#[allow(clippy::cast_precision_loss)]
fn print(samples: &[Sample], stats: &load::Stats, (growth, warm, end): (f64, u64, u64), secs: f64) {
    println!("\nsoak: resident memory of the sidecar (MiB) over {secs:.0} s\n");
    let every = samples.len().div_ceil(PRINTED).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % every == 0 || i + 1 == samples.len() {
            let bar = "#".repeat((s.rss as f64 / MIB).round() as usize);
            println!("{:>7.0} s {:>7.1}  {bar}", s.at, s.rss as f64 / MIB);
        }
    }
    println!(
        "\n{} operations ({:.0}/s), {} failed",
        stats.ok,
        stats.per_second(),
        stats.errors
    );
    let met = if growth <= TARGET_GROWTH { "yes" } else { "NO" };
    println!(
        "RSS growth after the first {:.0} s: {:.1} → {:.1} MiB, {:+.1} % (target ≤ {:.0} %): {met}",
        secs * WARM_FRACTION,
        warm as f64 / MIB,
        end as f64 / MIB,
        growth * 100.0,
        TARGET_GROWTH * 100.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_taken_from_the_end_of_the_warm_up() {
        let s = |at: f64, mib: u64| Sample {
            at,
            rss: mib * 1024 * 1024,
        };
        let samples = [
            s(0.0, 10),
            s(5.0, 20),
            s(10.0, 40),
            s(15.0, 41),
            s(20.0, 42),
        ];
        let (g, warm, end) = growth(&samples, 8.0).unwrap();
        assert_eq!((warm, end), (40 << 20, 42 << 20));
        assert!((g - 0.05).abs() < 1e-9, "{g}");
        assert!(growth(&samples, 30.0).is_none());
    }
}
