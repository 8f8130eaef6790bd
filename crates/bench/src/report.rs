//! The benchmark's figures: collected as the runs finish, printed as one table with the
//! issue's targets, and written as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Options;
use super::load::Stats;

const MIB: f64 = 1024.0 * 1024.0;

/// One measured figure against its target.
struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    target: String,
    /// `None` when the run's parameters differ from the ones the target is set for.
    met: Option<bool>,
}

/// Everything measured in one run.
pub(super) struct Report {
    json: serde_json::Map<String, Value>,
    /// scenario → target kind → (one-client stats, many-client stats).
    pairs: BTreeMap<&'static str, BTreeMap<&'static str, (Value, Value)>>,
    /// scenario → target kind → what else its one-client runs measured (`first_pass`, the
    /// read of every user before the turns; `turn_p50_us`, each turn's p50).
    details: BTreeMap<&'static str, BTreeMap<&'static str, serde_json::Map<String, Value>>>,
    clients: usize,
    /// Whether the run had `--store`: then the store comparison's figures are reported.
    compares_stores: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn latency(s: &Stats) -> Value {
    json!({
        "ops": s.ok,
        "p50_us": s.quantile_us(0.5),
        "p95_us": s.quantile_us(0.95),
        "p99_us": s.quantile_us(0.99),
        "per_second": s.per_second(),
        "health": super::health(s),
    })
}

impl Report {
    /// An empty report of a run with `opts`, its sidecars keeping their state in `store`
    /// ([`States::describe`](super::state::States::describe)).
    pub(super) fn new(opts: &Options, store: Value) -> Self {
        let mut json = serde_json::Map::new();
        json.insert("machine".into(), machine());
        json.insert("store".into(), store);
        json.insert(
            "parameters".into(),
            json!({
                "users": opts.users,
                "clients": opts.clients,
                "peak_clients": opts.peak_clients,
                "latency_secs": opts.latency_secs,
                "throughput_secs": opts.throughput_secs,
                "push_users": opts.push_users,
                "group_members": opts.group_members,
                "group_latency_ms": opts.group_latency_ms,
                "scale_rows": opts.scale_rows,
                "small_rows": opts.small_rows,
            }),
        );
        Self {
            json,
            pairs: BTreeMap::new(),
            details: BTreeMap::new(),
            clients: opts.clients,
            compares_stores: opts.store.is_some(),
        }
    }

    fn set(&mut self, key: &str, v: Value) {
        self.json.insert(key.to_owned(), v);
    }

    pub(super) fn pair(
        &mut self,
        scenario: &'static str,
        kind: &'static str,
        one: &Stats,
        many: &Stats,
    ) {
        self.pairs
            .entry(scenario)
            .or_default()
            .insert(kind, (latency(one), latency(many)));
    }

    fn detail(&mut self, scenario: &'static str, kind: &'static str, key: &str, v: Value) {
        let by_kind = self.details.entry(scenario).or_default();
        by_kind.entry(kind).or_default().insert(key.to_owned(), v);
    }

    /// The read of every user once, before the turns of a read scenario.
    pub(super) fn first_pass(&mut self, scenario: &'static str, kind: &'static str, s: &Stats) {
        self.detail(scenario, kind, "first_pass", latency(s));
    }

    /// Each one-client turn's p50, in the order run.
    pub(super) fn turn_p50s(&mut self, scenario: &'static str, kind: &'static str, p50s: Vec<f64>) {
        self.detail(scenario, kind, "turn_p50_us", json!(p50s));
    }

    pub(super) fn stats(&mut self, key: &str, s: &Stats) {
        self.set(key, latency(s));
    }

    pub(super) fn rss_idle(&mut self, bytes: u64) {
        self.set("rss_idle_bytes", json!(bytes));
    }

    pub(super) fn rss_peak(&mut self, bytes: u64) {
        self.set("rss_peak_bytes", json!(bytes));
    }

    pub(super) fn push(&mut self, s: &Stats, users: u64) {
        self.set(
            "initial_push",
            json!({
                "users": users,
                "seconds": s.elapsed.as_secs_f64(),
                "users_per_second": s.per_second(),
                "p50_ms": s.quantile_us(0.5) / 1000.0,
                "p99_ms": s.quantile_us(0.99) / 1000.0,
                "health": super::health(s),
            }),
        );
    }

    pub(super) fn scale(&mut self, rows: u64, ready: Duration, get: &Stats, eq: &Stats, hwm: u64) {
        let entry = self.json.entry("scale").or_insert_with(|| json!({}));
        entry[rows.to_string()] = json!({
            "start_to_ready_ms": ms(ready),
            "get_by_id": latency(get),
            "id_eq_lookup": latency(eq),
            "rss_peak_bytes": hwm,
        });
    }

    /// Creates without webhooks, with an endpoint answering at once and with one answering
    /// in 5 s (`ones`, `manys` in that order; `taken`: deliveries each endpoint received).
    pub(super) fn webhooks(&mut self, ones: &[Stats], manys: &[Stats], taken: [u64; 2]) {
        let side = |i: usize| {
            json!({
                "one_client": ones.get(i).map(latency),
                "many_clients": manys.get(i).map(latency),
            })
        };
        self.set(
            "webhooks",
            json!({
                "without": side(0),
                "fast_endpoint": side(1),
                "slow_endpoint": side(2),
                "slow_endpoint_answers_after_ms": 5000,
                "deliveries_received": {"fast": taken[0], "slow": taken[1]},
            }),
        );
    }

    /// The cross-reference rows the sidecar `name` left in its state.
    pub(super) fn xref_rows(&mut self, name: &str, rows: u64) {
        if let Some(store) = self.json.get_mut("store").and_then(Value::as_object_mut) {
            let counts = store.entry("xref_rows").or_insert_with(|| json!({}));
            counts[name] = json!(rows);
        }
    }

    /// One store's figures in the store comparison: GET by id at one client and at many,
    /// creates at many.
    pub(super) fn store_side(
        &mut self,
        engine: &str,
        get_one: &Stats,
        get_many: &Stats,
        creates: &Stats,
    ) {
        let entry = self.json.entry("stores").or_insert_with(|| json!({}));
        entry[engine] = json!({
            "get_by_id": {"one_client": latency(get_one), "many_clients": latency(get_many)},
            "create": {"many_clients": latency(creates)},
        });
    }

    pub(super) fn replace(&mut self, members: u64, latency_ms: u64, took: Duration) {
        self.set(
            "group_replace",
            json!({"members": members, "legacy_latency_ms": latency_ms, "seconds": took.as_secs_f64()}),
        );
    }

    pub(super) fn finish(&mut self, total: Duration) {
        let pairs: serde_json::Map<String, Value> = self
            .pairs
            .iter()
            .map(|(s, by_kind)| {
                let v: serde_json::Map<String, Value> = by_kind
                    .iter()
                    .map(|(k, (one, many))| {
                        let mut v = json!({"one_client": one, "many_clients": many});
                        let more = self.details.get(s).and_then(|d| d.get(k));
                        if let (Value::Object(v), Some(more)) = (&mut v, more) {
                            v.extend(more.clone());
                        }
                        ((*k).to_owned(), v)
                    })
                    .collect();
                ((*s).to_owned(), Value::Object(v))
            })
            .collect();
        self.set("scenarios", Value::Object(pairs));
        self.set("total_seconds", json!(total.as_secs_f64()));
        let figures: Vec<Value> = self
            .figures()
            .iter()
            .map(|f| {
                let met = if f.value.is_nan() { None } else { f.met };
                json!({"figure": f.name, "value": f.value, "unit": f.unit, "target": f.target, "met": met})
            })
            .collect();
        self.set("targets", Value::Array(figures));
    }

    fn get(&self, path: &[&str]) -> f64 {
        let mut v = Value::Object(self.json.clone());
        for p in path {
            v = v.get(*p).cloned().unwrap_or(Value::Null);
        }
        v.as_f64().unwrap_or(f64::NAN)
    }

    fn pair_value(&self, scenario: &str, kind: &str, many: bool, key: &str) -> f64 {
        self.pairs
            .get(scenario)
            .and_then(|m| m.get(kind))
            .map(|(one, m)| if many { m } else { one })
            .and_then(|v| v[key].as_f64())
            .unwrap_or(f64::NAN)
    }

    fn figures(&self) -> Vec<Figure> {
        let p50 = |kind| self.pair_value("get_by_id", kind, false, "p50_us");
        let tput = |kind| self.pair_value("get_by_id", kind, true, "per_second");
        let added = p50("sidecar") - p50("direct");
        let floor = p50("forwarder") - p50("direct");
        let creates = self.pair_value("create", "sidecar", true, "per_second");
        let push = self.get(&["initial_push", "seconds"]);
        let replace = self.get(&["group_replace", "seconds"]);
        let idle = self.get(&["rss_idle_bytes"]) / MIB;
        let peak = self.get(&["rss_peak_bytes"]) / MIB;
        let scale = self.json.get("scale").cloned().unwrap_or(Value::Null);
        let (mut small, mut big) = (Value::Null, Value::Null);
        if let Value::Object(m) = &scale {
            let mut rows: Vec<(u64, &Value)> = m
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v)))
                .collect();
            rows.sort_by_key(|(r, _)| *r);
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                small = first.1.clone();
                big = last.1.clone();
            }
        }
        let f = |v: &Value, k: &[&str]| {
            let mut v = v.clone();
            for p in k {
                v = v.get(*p).cloned().unwrap_or(Value::Null);
            }
            v.as_f64().unwrap_or(f64::NAN)
        };
        let big_rss = f(&big, &["rss_peak_bytes"]) / MIB;
        let slower = f(&big, &["get_by_id", "p50_us"]) / f(&small, &["get_by_id", "p50_us"]);
        let ready = f(&big, &["start_to_ready_ms"]);
        let param = |k: &str| self.get(&["parameters", k]);
        let big_scale = param("scale_rows") == 1_000_000.0 && param("small_rows") == 1_000.0;
        let mut figures = vec![
            Figure {
                name: "added latency, GET by id, 1 client, p50".into(),
                value: added,
                unit: "µs",
                target: format!("≤ 1.5× the floor's {floor:.0} µs"),
                met: Some(added <= 1.5 * floor),
            },
            Figure {
                name: format!(
                    "throughput, GET by id, {} clients, vs the floor",
                    self.clients
                ),
                value: tput("sidecar") / tput("forwarder"),
                unit: "×",
                target: "≥ 0.6×".into(),
                met: (param("clients") == 64.0)
                    .then_some(tput("sidecar") / tput("forwarder") >= 0.6),
            },
            Figure {
                name: "creates per second end to end".into(),
                value: creates,
                unit: "/s",
                target: "≥ 5,000".into(),
                met: (param("clients") == 64.0).then_some(creates >= 5000.0),
            },
            Figure {
                name: "initial push".into(),
                value: push,
                unit: "s",
                target: "≤ 30 s (100,000 users)".into(),
                met: (param("push_users") == 100_000.0 && param("clients") == 64.0)
                    .then_some(push <= 30.0),
            },
            Figure {
                name: "group replace".into(),
                value: replace,
                unit: "s",
                target: "≤ 15 s (10,000 members, 20 ms)".into(),
                met: (param("group_members") == 10_000.0 && param("group_latency_ms") == 20.0)
                    .then_some(replace <= 15.0),
            },
            Figure {
                name: "RSS idle".into(),
                value: idle,
                unit: "MiB",
                target: "≤ 16 MiB".into(),
                met: Some(idle <= 16.0),
            },
            Figure {
                name: "RSS peak under load".into(),
                value: peak,
                unit: "MiB",
                target: "≤ 48 MiB".into(),
                met: (param("peak_clients") == 200.0).then_some(peak <= 48.0),
            },
            Figure {
                name: "RSS peak with the large xref".into(),
                value: big_rss,
                unit: "MiB",
                target: "≤ 64 MiB".into(),
                met: big_scale.then_some(big_rss <= 64.0),
            },
            Figure {
                name: "GET by id, large vs small xref, p50".into(),
                value: slower,
                unit: "×",
                target: "≤ 1.2×".into(),
                met: big_scale.then_some(slower <= 1.2),
            },
            Figure {
                name: "start to ready with the large xref".into(),
                value: ready,
                unit: "ms",
                target: "≤ 1,000 ms".into(),
                met: big_scale.then_some(ready <= 1000.0),
            },
        ];
        let hooks = |side: &str, n: &str, k: &str| self.get(&["webhooks", side, n, k]);
        let slow_vs_fast = hooks("slow_endpoint", "one_client", "p50_us")
            / hooks("fast_endpoint", "one_client", "p50_us");
        figures.push(Figure {
            name: "webhooks: create p50, 1 client, 5 s endpoint vs prompt one".into(),
            value: slow_vs_fast,
            unit: "×",
            target: "≤ 1.1× (delivery runs apart)".into(),
            met: Some(slow_vs_fast <= 1.1),
        });
        let slow_vs_fast_many = hooks("slow_endpoint", "many_clients", "per_second")
            / hooks("fast_endpoint", "many_clients", "per_second");
        figures.push(Figure {
            name: format!(
                "webhooks: creates/s, {} cl., 5 s endpoint vs prompt",
                self.clients
            ),
            value: slow_vs_fast_many,
            unit: "×",
            target: "≥ 0.9× (delivery runs apart)".into(),
            met: Some(slow_vs_fast_many >= 0.9),
        });
        figures.extend(self.against_sqlite());
        figures
    }

    /// The store comparison (`--store`): how many times slower the sidecar on PostgreSQL is
    /// than the sidecar on SQLite, measured side by side in the same run.
    fn against_sqlite(&self) -> Vec<Figure> {
        if !self.compares_stores {
            return Vec::new();
        }
        let at = |path: &[&str]| self.get(&[&["stores"], path].concat());
        let p50 = at(&["postgresql", "get_by_id", "one_client", "p50_us"])
            / at(&["sqlite", "get_by_id", "one_client", "p50_us"]);
        let per_second =
            |engine: &str, scenario: &str| at(&[engine, scenario, "many_clients", "per_second"]);
        let tput = per_second("sqlite", "get_by_id") / per_second("postgresql", "get_by_id");
        let creates = per_second("sqlite", "create") / per_second("postgresql", "create");
        let at_64 = self.get(&["parameters", "clients"]) == 64.0;
        // A ratio against its limit; judged only where the run is comparable to the target.
        let ratio = |name: String, value: f64, limit: f64, judged: bool| Figure {
            name,
            value,
            unit: "×",
            target: format!("≤ {limit}×"),
            met: judged.then_some(value <= limit),
        };
        let clients = self.clients;
        vec![
            ratio(
                "GET by id p50, 1 client, PostgreSQL / SQLite".into(),
                p50,
                1.3,
                true,
            ),
            ratio(
                format!("GET by id/s, {clients} clients, SQLite / PostgreSQL"),
                tput,
                1.3,
                at_64,
            ),
            ratio(
                format!("creates/s, {clients} clients, SQLite / PostgreSQL"),
                creates,
                1.5,
                at_64,
            ),
        ]
    }

    /// Per read scenario: the first pass's p50 and the spread of the turns' p50s, on each
    /// path (direct / forwarder / sidecar).
    fn print_details(&self) {
        const KINDS: [&str; 3] = ["direct", "forwarder", "sidecar"];
        for (scenario, by_kind) in &self.details {
            let first: Vec<String> = KINDS
                .iter()
                .map(|k| {
                    let p50 = by_kind.get(k).and_then(|d| d.get("first_pass"));
                    p50.and_then(|f| f["p50_us"].as_f64())
                        .map_or("-".into(), |p| format!("{p:.0}"))
                })
                .collect();
            let spread: Vec<String> = KINDS
                .iter()
                .map(|k| {
                    let p50s = by_kind.get(k).and_then(|d| d.get("turn_p50_us"));
                    let p50s: Vec<f64> = p50s
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_f64).collect())
                        .unwrap_or_default();
                    let min = p50s.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = p50s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    if p50s.is_empty() {
                        "-".into()
                    } else {
                        format!("{min:.0}–{max:.0}")
                    }
                })
                .collect();
            if by_kind.values().any(|d| d.contains_key("first_pass")) {
                println!(
                    "{scenario}: first read of each user, p50 µs (direct / forwarder / sidecar): {}",
                    first.join(" / ")
                );
            }
            println!(
                "{scenario}: one-client p50 of each turn, lowest–highest µs: {}",
                spread.join(" / ")
            );
        }
    }

    pub(super) fn print(&self) {
        let machine = &self.json["machine"];
        println!(
            "\nscim-sidecar bench — {} CPU(s), {}, {}",
            machine["cpus"],
            machine["cpu"].as_str().unwrap_or("?"),
            machine["kernel"].as_str().unwrap_or("?")
        );
        let store = &self.json["store"];
        match store["server"].as_str() {
            Some(server) => println!(
                "store: {} at {server}",
                store["engine"].as_str().unwrap_or("?")
            ),
            None => println!("store: {}", store["engine"].as_str().unwrap_or("?")),
        }
        println!(
            "\n{:<24} {:>10} {:>10} {:>10} {:>12} {:>11} {:>11} {:>11} {:>9}",
            "operation",
            "direct",
            "forwarder",
            "sidecar",
            "added/floor",
            "direct/s",
            "forward/s",
            "sidecar/s",
            "sc/fwd"
        );
        println!(
            "{:<24} {:>10} {:>10} {:>10} {:>12} {:>11} {:>11} {:>11} {:>9}",
            "",
            "p50 µs",
            "p50 µs",
            "p50 µs",
            "(1 client)",
            format!("({} cl.)", self.clients),
            "",
            "",
            ""
        );
        for (scenario, kinds) in &self.pairs {
            let v = |kind: &str, many: bool, key: &str| {
                kinds
                    .get(kind)
                    .map(|(o, m)| if many { m } else { o })
                    .and_then(|x| x[key].as_f64())
                    .unwrap_or(f64::NAN)
            };
            let added = v("sidecar", false, "p50_us") - v("direct", false, "p50_us");
            let floor = v("forwarder", false, "p50_us") - v("direct", false, "p50_us");
            let errors: u64 = kinds
                .values()
                .flat_map(|(o, m)| [o, m])
                .filter_map(|x| x["health"]["errors"].as_u64())
                .sum();
            println!(
                "{:<24} {:>10.0} {:>10.0} {:>10.0} {:>12} {:>11.0} {:>11.0} {:>11.0} {:>9.2}{}",
                scenario,
                v("direct", false, "p50_us"),
                v("forwarder", false, "p50_us"),
                v("sidecar", false, "p50_us"),
                format!("{added:.0}/{floor:.0}"),
                v("direct", true, "per_second"),
                v("forwarder", true, "per_second"),
                v("sidecar", true, "per_second"),
                v("sidecar", true, "per_second") / v("forwarder", true, "per_second"),
                if errors > 0 {
                    format!("  ({errors} errors)")
                } else {
                    String::new()
                }
            );
        }
        self.print_details();
        self.print_webhooks();
        println!(
            "\n{:<52} {:>12}  {:<34} met",
            "figure", "measured", "target"
        );
        for f in self.figures() {
            if f.value.is_nan() {
                println!("{:<52} {:>12}  {:<34} -", f.name, "not run", f.target);
                continue;
            }
            // Ratios with two decimals: 0.44 and 0.36 are not both "0.4".
            let value = if f.unit == "×" {
                format!("{:.2}", f.value)
            } else {
                format!("{:.1}", f.value)
            };
            println!(
                "{:<52} {:>8} {:<3}  {:<34} {}",
                f.name,
                value,
                f.unit,
                f.target,
                match f.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "- (other parameters)",
                }
            );
        }
        println!("\ntotal {:.0} s", self.get(&["total_seconds"]));
    }

    /// The webhooks part's three sidecars side by side, when it ran: what an endpoint's speed
    /// changes (nothing, the figures below say) and what recording events costs (the first
    /// row against the others).
    fn print_webhooks(&self) {
        let side = |s: &str, n: &str, k: &str| self.get(&["webhooks", s, n, k]);
        if side("without", "one_client", "p50_us").is_nan() {
            return;
        }
        println!(
            "\n{:<28} {:>16} {:>18}",
            "webhooks (creates)",
            "p50 µs, 1 client",
            format!("per s, {} cl.", self.clients)
        );
        for (label, s) in [
            ("no endpoint", "without"),
            ("endpoint answering at once", "fast_endpoint"),
            ("endpoint answering in 5 s", "slow_endpoint"),
        ] {
            println!(
                "{label:<28} {:>16.0} {:>18.0}",
                side(s, "one_client", "p50_us"),
                side(s, "many_clients", "per_second")
            );
        }
    }

    pub(super) fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&Value::Object(self.json.clone()))?;
        std::fs::write(path, text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        println!("JSON report: {}", path.display());
        Ok(())
    }
}

/// What the figures were measured on.
pub(super) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    json!({
        "cpus": std::thread::available_parallelism().map_or(0, usize::from),
        "cpu": cpu,
        "kernel": kernel,
        "date": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "version": env!("CARGO_PKG_VERSION"),
    })
}
