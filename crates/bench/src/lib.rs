//! `scim-sidecar bench`: the sidecar's own cost, measured side by side with the floor.
//!
//! Starts, as separate processes on loopback, the Marketing Center simulator, a bare
//! pass-through forwarder ([`forward`]) and the sidecar, then sends the same operations
//! directly to the simulator, through the forwarder (the legacy API's requests) and through
//! the sidecar (Okta's SCIM requests): latency at one client, throughput at many. Then the
//! scenarios only the sidecar has: an initial push, a 10,000-member group `replace` against a
//! slow legacy app, memory, and 1,000 vs 1,000,000 cross-reference rows. Prints one table and
//! writes the figures as JSON.
//!
//! With `--store`, every sidecar keeps its state in a PostgreSQL database of its own on the
//! given server instead of SQLite files ([`state`]).
//!
//! Tooling, like the simulator: never on the `serve` path. Drives the sidecar only over HTTP,
//! as processes of the binary that runs the bench; fills a cross-reference before a scale run,
//! and creates and drops the PostgreSQL databases, through that binary's [`Host`], never
//! linking the sidecar's storage itself.

pub mod forward;
pub mod load;
pub mod procs;
mod profile;
mod report;
mod soak;
pub mod state;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use load::{Http, Op, Stats, Until};
use mapping::ids::{ExternalId, LegacyId, ScimId, TenantId};
use procs::Proc;
use report::Report;
use simulator::marketing_center as mc_app;
use simulator::marketing_center::client as mc;
use state::States;
pub use state::{PgDatabase, State};

/// The tenant name, customer id, API key and bearer token of the benchmark.
const TENANT: &str = "bench";
const CUSTOMER: &str = "BENCH";
const API_KEY: &str = "bench-api-key";
const TOKEN: &str = "bench-scim-token";
/// How long one turn of the alternating one-client runs lasts: `--latency-secs` is cut into
/// turns of about this length. Not shorter: in 50 ms turns the direct path's p50 fell from
/// about 85 to about 35 µs while the others did not move (new connections more often on the
/// same CPU as the simulator), which says more about the machine's scheduler than about the
/// paths. Many of them: each turn is a new connection, and where the scheduler puts the
/// processes of that connection's chain moved a path's p50 by up to 40 µs from one turn to
/// the next; five turns left a path's p50 to the luck of a few draws. (Both measured while
/// the one client still ran on the bench's multi-threaded runtime; see `load`.)
const TURN_SECS: f64 = 0.2;
/// Turns of the alternating many-client runs (each `--throughput-secs` / `THROUGHPUT_TURNS`
/// long), and of the stores' comparison.
const THROUGHPUT_TURNS: u32 = 5;
/// Users per page when reading the simulator's users.
const PAGE: u64 = 200;
/// The group used for member add/remove.
const PUSH_GROUP: &str = "G-PUSH";
/// The group replaced in the 10,000-member scenario.
const BIG_GROUP: &str = "G-BIG";

/// `bench` flags. The defaults finish in about three minutes on a 2-core machine.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// Users the simulator starts with (GET, lookup, PATCH and member scenarios).
    #[arg(long, default_value_t = 2_000)]
    pub users: u64,
    /// Concurrent clients of the throughput runs.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Concurrent clients of the peak-memory run.
    #[arg(long, default_value_t = 200)]
    pub peak_clients: usize,
    /// Seconds of one-client latency per path and scenario, taken in alternating turns of
    /// 200 ms (in the `stores` part, in its 5 turns, each with the many-client runs).
    #[arg(long, default_value_t = 4.0)]
    pub latency_secs: f64,
    /// Seconds of throughput per path and scenario, taken in 5 alternating turns.
    #[arg(long, default_value_t = 2.0)]
    pub throughput_secs: f64,
    /// Users of the initial push (a lookup and a create each).
    #[arg(long, default_value_t = 100_000)]
    pub push_users: u64,
    /// Members of the group `replace`.
    #[arg(long, default_value_t = 10_000)]
    pub group_members: u64,
    /// Legacy latency during the group `replace`, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub group_latency_ms: u64,
    /// Cross-reference rows of the large scale run.
    #[arg(long, default_value_t = 1_000_000)]
    pub scale_rows: u64,
    /// Cross-reference rows of the small scale run.
    #[arg(long, default_value_t = 1_000)]
    pub small_rows: u64,
    /// Run only these parts (comma-separated): the scenario names of the table
    /// (`get_by_id`, `lookup_by_username`, `create`, `patch_deactivate`,
    /// `group_member_add_remove`) and `peak`, `push`, `stores`, `scale`, `replace`,
    /// `webhooks`. All when
    /// absent; figures of parts not run print as "not run". `stores` runs with `--store` only.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(PARTS))]
    pub only: Vec<String>,
    /// Where the JSON report goes.
    #[arg(long, default_value = "target/bench.json")]
    pub out: PathBuf,
    /// Keep the bench's working directory (the processes' logs, and with `--profile` the
    /// callgrind dumps, for `callgrind_annotate`) instead of deleting it when the bench
    /// succeeds; its path is printed.
    #[arg(long)]
    pub keep: bool,
    /// Keep every sidecar's state in PostgreSQL instead of SQLite files: the server's URL as
    /// `[store] url` takes it, `postgres://USER@HOST:PORT/DATABASE?sslmode=…`, without a
    /// password. Each sidecar gets a new database of its own on that server (created through
    /// DATABASE, so USER needs CREATEDB), dropped when the bench ends.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The environment variable holding the password of `--store`'s user. The bench and the
    /// sidecars read it from the environment (`password = { env = … }`), never from the
    /// command line.
    #[arg(long, value_name = "VAR", requires = "store")]
    pub store_password_env: Option<String>,
    /// Instead of the timed parts: instructions and heap allocations per request of GET by
    /// id and create through the sidecar, and of GET by id through the forwarder, counted by
    /// Valgrind's callgrind (needs `valgrind`). Counts, not timings: they hardly move with
    /// the machine's load.
    #[arg(long, conflicts_with_all = ["only", "store", "soak"])]
    pub profile: bool,
    /// Requests counted per operation with `--profile` (after as many to warm up).
    #[arg(long, default_value_t = 2_000, requires = "profile")]
    pub profile_requests: u64,
    /// Instead of the timed parts: a long mixed load (GETs by id, lookups and creates, eight,
    /// one and one in ten; the cross-reference grows all along), printing the sidecar's
    /// resident memory as a curve and its growth after the first fifth of the run.
    #[arg(long, conflicts_with_all = ["only"])]
    pub soak: bool,
    /// Seconds of the soak.
    #[arg(long, default_value_t = 1_800.0, requires = "soak")]
    pub soak_secs: f64,
    /// Concurrent clients of the soak.
    #[arg(long, default_value_t = 100, requires = "soak")]
    pub soak_clients: usize,
}

/// The parts `--only` can name.
const PARTS: [&str; 11] = [
    "get_by_id",
    "lookup_by_username",
    "create",
    "patch_deactivate",
    "group_member_add_remove",
    "peak",
    "push",
    "stores",
    "scale",
    "replace",
    "webhooks",
];

impl Options {
    /// Whether `--only` lets `part` run.
    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

/// What a [`Host`] call returns: a future the bench awaits.
pub type HostFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// What the bench needs from the binary it measures, beyond starting it as processes (the
/// simulator, the forwarder, the sidecar: `simulate`, `forward`, `serve`).
pub trait Host: Sync {
    /// Fills the cross-reference of the new, empty `state` with `rows` users of `tenant`: row
    /// `n` is [`fill_row`]`(tenant, n)`.
    fn fill_xref<'a>(
        &'a self,
        state: &'a State,
        tenant: &'a TenantId,
        rows: u64,
    ) -> HostFuture<'a, ()>;

    /// The cross-reference rows (live and tombstoned, every tenant) of `state`, read once its
    /// sidecar has stopped: what shows the state was kept where the bench says.
    fn xref_rows<'a>(&'a self, state: &'a State) -> HostFuture<'a, u64>;

    /// Brings the query planner's statistics of `state` up to date once its sidecar has
    /// recorded the simulator's users: `ANALYZE` on PostgreSQL, nothing on SQLite (whose
    /// planner takes the primary key without statistics). So that what is measured is a store
    /// in its steady state: a new PostgreSQL database has no statistics until autovacuum's
    /// first pass (up to `autovacuum_naptime`, a minute by default, after the writes), and
    /// until then the planner may take the wrong index. On this bench's first runs a GET by
    /// id read the `userName` index over every row of the tenant and filtered them, instead
    /// of the primary key.
    fn analyze<'a>(&'a self, state: &'a State) -> HostFuture<'a, ()>;

    /// Creates the empty database `name` on `server`'s server, through `server`'s database.
    fn create_database<'a>(&'a self, server: &'a PgDatabase, name: &'a str) -> HostFuture<'a, ()>;

    /// Drops the database `name` on `server`'s server, ending any session still on it.
    fn drop_database<'a>(&'a self, server: &'a PgDatabase, name: &'a str) -> HostFuture<'a, ()>;
}

/// One row of a prefilled cross-reference: a user the legacy app does not have.
#[derive(Clone, Debug)]
pub struct FillRow {
    /// The SCIM id, derived as the sidecar derives it.
    pub scim_id: ScimId,
    /// The legacy id (900000000 and up: no simulator user has one).
    pub legacy_id: LegacyId,
    /// An Okta-like externalId.
    pub external_id: ExternalId,
    /// A userName.
    pub user_name: String,
}

/// Row `n` of a prefilled cross-reference of `tenant`.
pub fn fill_row(tenant: &TenantId, n: u64) -> FillRow {
    let legacy_id = LegacyId::new(format!("{}", 900_000_000 + n));
    FillRow {
        scim_id: ScimId::derive(tenant, "User", &legacy_id),
        legacy_id,
        external_id: ExternalId::new(format!("00ufill{n}")),
        user_name: format!("fill{n:07}@bench.example"),
    }
}

/// Runs the benchmark, prints the table and writes the JSON report.
pub async fn run(opts: Options, host: &dyn Host) -> anyhow::Result<()> {
    if opts.store.is_none() && opts.only.iter().any(|p| p == "stores") {
        return Err(anyhow::anyhow!(
            "--only stores compares SQLite with PostgreSQL: it needs --store"
        ));
    }
    let dir = tempdir()?;
    let server = opts.store.as_ref().map(|url| PgDatabase {
        url: url.clone(),
        password_env: opts.store_password_env.clone(),
    });
    let mut states = States::new(server, &dir, host);
    let outcome = if opts.profile {
        profile(&opts, &dir, &states).await
    } else if opts.soak {
        soak(&opts, &dir, &mut states).await
    } else {
        measure(&opts, &dir, host, &mut states).await
    };
    // `measure` owned every process: the sidecars have stopped, their databases can go.
    states.drop_all().await;
    if opts.keep {
        eprintln!("bench: the working directory is kept: {}", dir.display());
    } else if outcome.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// Every part of the benchmark, the report printed and written.
async fn measure(
    opts: &Options,
    dir: &Path,
    host: &dyn Host,
    states: &mut States<'_>,
) -> anyhow::Result<()> {
    let mut report = Report::new(opts, states.describe());
    let started = Instant::now();

    eprintln!(
        "bench: starting the simulator ({} users), the forwarder and the sidecar ({})",
        opts.users,
        states.engine()
    );
    let sim = simulator(dir, "sim", opts.users, &[(PUSH_GROUP, 0)], 0)?;
    let fwd = procs::spawn_printing(
        &["forward".into(), "--upstream".into(), origin(&sim.url)],
        "forwarding on ",
        &dir.join("forward.log"),
    )?;
    let main = states.fresh("main").await?;
    let (sidecar, _) = start_sidecar(dir, "main", &sim.url, 0, &main).await?;
    let (idle_rss, _) = sidecar.rss()?;
    report.rss_idle(idle_rss);

    let users = legacy_users(&sim.url).await?;
    import(&sidecar.url, users.len()).await?;
    host.analyze(&main).await?;
    let targets = [
        Target::direct(&sim.url),
        Target::forwarded(&fwd.url, &sim.url),
        Target::sidecar(&sidecar.url),
    ];
    let users = Arc::new(users);
    for scenario in Scenario::ALL {
        if !opts.runs(scenario.name()) {
            continue;
        }
        eprintln!("bench: {}", scenario.name());
        let ops = targets
            .iter()
            .enumerate()
            .map(|(t, target)| scenario.op(target, &users, t, opts.clients))
            .collect::<Result<Vec<_>, _>>()?;
        // A read scenario first reads every user once on each path, so that the turns
        // measure reads of records each path has seen before (the sidecar keeps the ones it
        // read; a first read also reads its database). That pass is reported on its own.
        if scenario.reads() {
            for (target, op) in targets.iter().zip(&ops) {
                let first = load::run(1, Until::Count(users.len() as u64), Arc::clone(op));
                report.first_pass(scenario.name(), target.kind, &first.await);
            }
        }
        // One-client latency, then throughput, in alternating short turns, so that a noisy
        // moment on the machine falls on the three paths alike: the figures that matter are
        // their differences and ratios. Each turn starts with the next path, so that none
        // always follows the same one.
        let mut ones = vec![Stats::default(); ops.len()];
        let mut turn_p50s = vec![Vec::new(); ops.len()];
        let (turns, turn) = latency_turns(opts.latency_secs);
        for t in 0..turns as usize {
            for i in (0..ops.len()).map(|k| (k + t) % ops.len()) {
                let run = load::run(1, Until::Elapsed(turn), Arc::clone(&ops[i])).await;
                turn_p50s[i].push(run.quantile_us(0.5));
                ones[i].merge(run);
            }
        }
        for (target, p50s) in targets.iter().zip(turn_p50s) {
            report.turn_p50s(scenario.name(), target.kind, p50s);
        }
        let mut manys = vec![Stats::default(); ops.len()];
        let turn = secs(opts.throughput_secs / f64::from(THROUGHPUT_TURNS));
        for _ in 0..THROUGHPUT_TURNS {
            for (many, op) in manys.iter_mut().zip(&ops) {
                many.merge(load::run(opts.clients, Until::Elapsed(turn), Arc::clone(op)).await);
            }
        }
        for ((target, one), many) in targets.iter().zip(ones).zip(manys) {
            report.pair(scenario.name(), target.kind, &one, &many);
        }
    }

    if opts.runs("peak") {
        eprintln!("bench: peak memory under {} clients", opts.peak_clients);
        let op = Scenario::GetById.op(&targets[2], &users, 2, opts.clients)?;
        let peak = load::run(
            opts.peak_clients,
            Until::Elapsed(secs(opts.throughput_secs)),
            op,
        )
        .await;
        report.stats("get_by_id_peak_clients", &peak);
        report.rss_peak(sidecar.rss()?.1);
    }

    if opts.runs("push") {
        eprintln!("bench: initial push of {} users", opts.push_users);
        let push = load::run(
            opts.clients,
            Until::Count(opts.push_users),
            push_op(&sidecar.url),
        )
        .await;
        report.push(&push, opts.push_users);
    }
    sidecar.stop();
    drop(fwd);
    report.xref_rows("main", host.xref_rows(&main).await?);
    if opts.store.is_some() && opts.runs("stores") {
        stores(opts, &sim.url, &users, &mut report, host, states).await?;
    }
    if opts.runs("scale") {
        scale(opts, dir, &sim.url, &users, &mut report, host, states).await?;
    }
    if opts.runs("webhooks") {
        webhooks(opts, dir, &sim.url, &users, &mut report, states).await?;
    }
    drop(sim);
    if opts.runs("replace") {
        replace(opts, dir, &mut report, host, states).await?;
    }
    report.finish(started.elapsed());
    report.print();
    report.write(&opts.out)?;
    Ok(())
}

/// GET by id and `id eq` lookups against a sidecar whose xref was filled with `--small-rows`,
/// then `--scale-rows` rows; start-to-ready and memory of each. Both sidecars run side by side
/// and are measured in alternating short turns, so a noisy second on the machine falls on
/// both alike.
async fn scale(
    opts: &Options,
    dir: &Path,
    sim_url: &str,
    users: &Arc<Vec<User>>,
    report: &mut Report,
    host: &dyn Host,
    states: &mut States<'_>,
) -> anyhow::Result<()> {
    eprintln!(
        "bench: scale, {} vs {} cross-reference rows",
        opts.small_rows, opts.scale_rows
    );
    let mut sides = Vec::new();
    let mut labelled = Vec::new();
    for rows in [opts.small_rows, opts.scale_rows] {
        let label = format!("rows{rows}");
        let state = states.fresh(&label).await?;
        let filling = Instant::now();
        host.fill_xref(&state, &TenantId::new(TENANT), rows).await?;
        eprintln!(
            "bench: {rows} rows filled in {:.1} s",
            filling.elapsed().as_secs_f64()
        );
        let (side, ready) = start_sidecar(dir, &label, sim_url, 0, &state).await?;
        import(&side.url, users.len()).await?;
        host.analyze(&state).await?;
        sides.push((rows, side, ready, Stats::default(), Stats::default()));
        labelled.push((label, state));
    }
    let (turns, turn) = latency_turns(opts.latency_secs);
    for _ in 0..turns {
        for (_, side, _, get, eq) in &mut sides {
            let target = Target::sidecar(&side.url);
            let op = Scenario::GetById.op(&target, users, 2, 1)?;
            get.merge(load::run(1, Until::Elapsed(turn), op).await);
            let op = id_eq_op(&side.url, users);
            eq.merge(load::run(1, Until::Elapsed(turn), op).await);
        }
    }
    for (rows, side, ready, get, eq) in sides {
        report.scale(rows, ready, &get, &eq, side.rss()?.1);
        side.stop();
    }
    for (label, state) in labelled {
        report.xref_rows(&label, host.xref_rows(&state).await?);
    }
    Ok(())
}

/// The configuration of a webhook endpoint at `url` taking every event of the tenant.
fn hook(url: &str) -> String {
    format!(
        "\n[[tenants.{TENANT}.webhooks]]\nname = \"hook\"\nurl = \"{url}\"\n\
         allow_http = true\ntimeout_secs = 30\n\
         secrets = [{{ value = \"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\" }}]\n"
    )
}

/// Creates through three sidecars on the same simulator: one without webhooks, one whose
/// tenant has an endpoint that answers each delivery at once, one whose endpoint answers
/// after 5 s (every create is an event): one client, then many, in alternating short turns.
/// Delivery runs apart from the SCIM requests, so the last two should not differ; the first
/// two differ by what recording an event costs.
async fn webhooks(
    opts: &Options,
    dir: &Path,
    sim_url: &str,
    users: &Arc<Vec<User>>,
    report: &mut Report,
    states: &mut States<'_>,
) -> anyhow::Result<()> {
    eprintln!("bench: creates without webhooks, with an endpoint answering at once, in 5 s");
    let fast = slow_receiver(Duration::ZERO).await?;
    let slow = slow_receiver(Duration::from_secs(5)).await?;
    let (fast_hook, slow_hook) = (hook(&fast.url), hook(&slow.url));
    let mut sides = Vec::new();
    for (name, extra) in [
        ("hooks-off", ""),
        ("hooks-fast", fast_hook.as_str()),
        ("hooks-slow", slow_hook.as_str()),
    ] {
        let state = states.fresh(name).await?;
        let (side, _) = start_sidecar_under(&[], dir, name, sim_url, 0, &state, extra).await?;
        sides.push(side);
    }
    let ops = (sides.iter().enumerate())
        .map(|(t, side)| Scenario::Create.op(&Target::sidecar(&side.url), users, t, opts.clients))
        .collect::<Result<Vec<_>, _>>()?;
    // Each turn starts with another sidecar, so that none is always measured first or last;
    // and only once the prompt endpoint has every event of the turns before: its deliveries
    // would otherwise run on into the next sidecar's turn and be counted against it.
    let n = ops.len();
    let mut ones = vec![Stats::default(); n];
    let (turns, turn) = latency_turns(opts.latency_secs);
    for t in 0..turns as usize {
        for i in (0..n).map(|k| (k + t) % n) {
            ones[i].merge(load::run(1, Until::Elapsed(turn), Arc::clone(&ops[i])).await);
            delivered(&fast, ones[1].ok).await?;
        }
    }
    let mut manys = vec![Stats::default(); n];
    let turn = secs(opts.throughput_secs / f64::from(THROUGHPUT_TURNS));
    for t in 0..THROUGHPUT_TURNS as usize {
        for i in (0..n).map(|k| (k + t) % n) {
            let run = load::run(opts.clients, Until::Elapsed(turn), Arc::clone(&ops[i]));
            manys[i].merge(run.await);
            delivered(&fast, ones[1].ok + manys[1].ok).await?;
        }
    }
    report.webhooks(&ones, &manys, [fast.taken(), slow.taken()]);
    for side in sides {
        side.stop();
    }
    Ok(())
}

/// An HTTP endpoint on loopback that answers every request after `delay`, counting them.
/// Waits until `receiver` has taken at least `events` deliveries (a minute at most).
async fn delivered(receiver: &SlowReceiver, events: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while receiver.taken() < events {
        if tokio::time::Instant::now() >= deadline {
            return Err(anyhow::anyhow!(
                "the prompt webhook endpoint has {} of {events} events after a minute",
                receiver.taken()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

struct SlowReceiver {
    url: String,
    taken: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowReceiver {
    fn taken(&self) -> u64 {
        self.taken.load(Ordering::Relaxed)
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn slow_receiver(delay: Duration) -> anyhow::Result<SlowReceiver> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    let taken = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Arc::clone(&taken);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let counted = Arc::clone(&counted);
                    async move {
                        counted.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(delay).await;
                        let mut resp = http::Response::new(Full::new(Bytes::new()));
                        *resp.status_mut() = StatusCode::NO_CONTENT;
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(SlowReceiver { url, taken, task })
}

/// With `--store`: GET by id and creates through two sidecars on the same simulator, one on
/// SQLite and one on PostgreSQL, measured in alternating short turns (one client, then many)
/// so that a noisy moment on the machine falls on both alike: separate runs on a shared
/// machine differ from one another by as much as the stores do.
async fn stores(
    opts: &Options,
    sim_url: &str,
    users: &Arc<Vec<User>>,
    report: &mut Report,
    host: &dyn Host,
    states: &mut States<'_>,
) -> anyhow::Result<()> {
    eprintln!("bench: GET by id and creates, SQLite and PostgreSQL side by side");
    let dir = states.dir().to_owned();
    let mut sides = Vec::new();
    for (engine, state) in [
        ("sqlite", states.sqlite("stores-sqlite")),
        ("postgresql", states.fresh("stores-postgresql").await?),
    ] {
        let name = format!("stores-{engine}");
        let (side, _) = start_sidecar(&dir, &name, sim_url, 0, &state).await?;
        import(&side.url, users.len()).await?;
        host.analyze(&state).await?;
        let target = Target::sidecar(&side.url);
        let get_one = Scenario::GetById.op(&target, users, 2, 1)?;
        let get_many = Scenario::GetById.op(&target, users, 2, opts.clients)?;
        let create = Scenario::Create.op(&target, users, 2, opts.clients)?;
        let stats = [Stats::default(), Stats::default(), Stats::default()];
        sides.push((
            engine,
            name,
            state,
            side,
            [get_one, get_many, create],
            stats,
        ));
    }
    let one = secs(opts.latency_secs / f64::from(THROUGHPUT_TURNS));
    let many = secs(opts.throughput_secs / f64::from(THROUGHPUT_TURNS));
    for _ in 0..THROUGHPUT_TURNS {
        for (_, _, _, _, [get_one, get_many, create], [s_one, s_many, s_create]) in &mut sides {
            s_one.merge(load::run(1, Until::Elapsed(one), Arc::clone(get_one)).await);
            s_many.merge(load::run(opts.clients, Until::Elapsed(many), Arc::clone(get_many)).await);
            s_create.merge(load::run(opts.clients, Until::Elapsed(many), Arc::clone(create)).await);
        }
    }
    for (engine, name, state, side, _, [s_one, s_many, s_create]) in sides {
        report.store_side(engine, &s_one, &s_many, &s_create);
        side.stop();
        report.xref_rows(&name, host.xref_rows(&state).await?);
    }
    Ok(())
}

/// A `replace` of a `--group-members` group against a simulator answering after
/// `--group-latency-ms`, through a sidecar with member concurrency 16.
async fn replace(
    opts: &Options,
    dir: &Path,
    report: &mut Report,
    host: &dyn Host,
    states: &mut States<'_>,
) -> anyhow::Result<()> {
    eprintln!(
        "bench: replace of a {}-member group, {} ms legacy latency",
        opts.group_members, opts.group_latency_ms
    );
    let members = opts.group_members;
    let slow = simulator(
        dir,
        "slow",
        members + 1_000,
        &[(BIG_GROUP, 2_000.min(members + 1_000))],
        opts.group_latency_ms,
    )?;
    let state = states.fresh("replace").await?;
    let (side, _) = start_sidecar(dir, "replace", &slow.url, 16, &state).await?;
    let all = legacy_users(&slow.url).await?;
    import(&side.url, all.len()).await?;
    host.analyze(&state).await?;
    let target: Vec<Value> = all
        .iter()
        .skip(1_000)
        .take(usize::try_from(members).unwrap_or(usize::MAX))
        .map(|u| json!({"value": u.scim_id}))
        .collect();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "members", "value": target}],
    });
    let t = Instant::now();
    let http = load::client();
    load::expect(
        &http,
        scim(
            &side.url,
            Method::PATCH,
            &format!("/Groups/{BIG_GROUP}"),
            Some(&body),
        ),
        StatusCode::NO_CONTENT,
    )
    .await
    .map_err(|e| anyhow::anyhow!("the group replace failed: {e}"))?;
    report.replace(members, opts.group_latency_ms, t.elapsed());
    side.stop();
    report.xref_rows("replace", host.xref_rows(&state).await?);
    Ok(())
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.05))
}

/// How many one-client turns `latency_secs` makes, and how long each lasts: about
/// [`TURN_SECS`], at least one.
fn latency_turns(latency_secs: f64) -> (u32, Duration) {
    let turns = (latency_secs / TURN_SECS).round().clamp(1.0, 10_000.0) as u32;
    (turns, secs(latency_secs / f64::from(turns)))
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("scim-sidecar-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// `http://host:port` of a base URL.
fn origin(url: &str) -> String {
    let rest = url.trim_start_matches("http://");
    format!("http://{}", rest.split('/').next().unwrap_or(rest))
}

fn simulator(
    dir: &std::path::Path,
    name: &str,
    users: u64,
    groups: &[(&str, u64)],
    latency_ms: u64,
) -> anyhow::Result<Proc> {
    let mut args: Vec<String> = [
        "simulate",
        "--listen",
        "127.0.0.1:0",
        "--api-key",
        API_KEY,
        "--customer",
        CUSTOMER,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(["--seed-users".into(), users.to_string()]);
    args.extend(["--latency-ms".into(), latency_ms.to_string()]);
    for (g, members) in groups {
        args.extend(["--seed-group".into(), format!("{g}:{members}")]);
    }
    procs::spawn_printing(
        &args,
        "Marketing Center simulator: ",
        &dir.join(format!("{name}.log")),
    )
}

/// `bench --profile` (see `profile`): its table and its JSON report.
async fn profile(opts: &Options, dir: &Path, states: &States<'_>) -> anyhow::Result<()> {
    eprintln!(
        "bench: profiling under callgrind: the simulator ({} users), the sidecar, the forwarder",
        opts.users
    );
    let sim = simulator(dir, "sim", opts.users, &[], 0)?;
    let users = Arc::new(legacy_users(&sim.url).await?);
    let state = states.sqlite("profile");
    let hooked_state = states.sqlite("profile-hooked");
    // An endpoint answering in 5 s: what recording the events costs, none of the delivery.
    let slow = slow_receiver(Duration::from_secs(5)).await?;
    let slow_hook = hook(&slow.url);
    let costs = profile::run(
        opts,
        dir,
        &sim,
        &users,
        async |wrapper: &[String]| {
            start_sidecar_under(wrapper, dir, "profile", &sim.url, 0, &state, "")
                .await
                .map(|(p, _)| p)
        },
        async |wrapper: &[String]| {
            let name = "profile-hooked";
            start_sidecar_under(wrapper, dir, name, &sim.url, 0, &hooked_state, &slow_hook)
                .await
                .map(|(p, _)| p)
        },
    )
    .await?;
    profile::print(&costs);
    write_report(&opts.out, "profile", profile::json(&costs))
}

/// `bench --soak` (see `soak`): one sidecar on the state `--store` names (SQLite files by
/// default), its curve and its JSON report.
async fn soak(opts: &Options, dir: &Path, states: &mut States<'_>) -> anyhow::Result<()> {
    eprintln!(
        "bench: starting the simulator ({} users) and the sidecar ({})",
        opts.users,
        states.engine()
    );
    let sim = simulator(dir, "sim", opts.users, &[], 0)?;
    let users = Arc::new(legacy_users(&sim.url).await?);
    let state = states.fresh("soak").await?;
    let (sidecar, _) = start_sidecar(dir, "soak", &sim.url, 0, &state).await?;
    import(&sidecar.url, users.len()).await?;
    let report = soak::run(opts, &sidecar, &users).await?;
    sidecar.stop();
    write_report(&opts.out, "soak", report)
}

/// Writes `{part: value, machine}` to `out`, as the JSON report of a mode of its own.
fn write_report(out: &Path, part: &str, value: serde_json::Value) -> anyhow::Result<()> {
    let mut report = serde_json::Map::new();
    report.insert(part.to_owned(), value);
    report.insert("machine".to_owned(), report::machine());
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, serde_json::to_vec_pretty(&report)?)?;
    println!("JSON report: {}", out.display());
    Ok(())
}

/// Writes a configuration for the simulator at `legacy`, keeping the state in `state`, and
/// starts a sidecar on it.
async fn start_sidecar(
    dir: &Path,
    name: &str,
    legacy: &str,
    member_concurrency: usize,
    state: &State,
) -> anyhow::Result<(Proc, Duration)> {
    start_sidecar_under(&[], dir, name, legacy, member_concurrency, state, "").await
}

/// [`start_sidecar`] with the sidecar run by `wrapper` (a profiler), and `extra` (TOML) at the
/// end of the tenant's table.
async fn start_sidecar_under(
    wrapper: &[String],
    dir: &Path,
    name: &str,
    legacy: &str,
    member_concurrency: usize,
    state: &State,
    extra: &str,
) -> anyhow::Result<(Proc, Duration)> {
    let home = dir.join(name);
    std::fs::create_dir_all(&home)?;
    let mapping = home.join("marketing-center.toml");
    std::fs::write(&mapping, mc_app::MAPPING)?;
    let mut tenant = format!(
        "[tenants.{TENANT}]\ncustomer_id = \"{CUSTOMER}\"\nlegacy_base_url = \"{legacy}\"\n\
         mapping = \"marketing-center.toml\"\napi_key = {{ value = \"{API_KEY}\" }}\n\
         tokens = [{{ value = \"{TOKEN}\" }}]\n"
    );
    if member_concurrency > 0 {
        tenant.push_str(&format!("member_concurrency = {member_concurrency}\n"));
    }
    tenant.push_str(extra);
    let (data_dir, store) = match state {
        State::Sqlite(data) => (data.clone(), String::new()),
        // The data directory holds nothing then, but `[server]` still names one.
        State::Postgres(db) => (home.join("data"), store_table(db)),
    };
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         data_dir = \"{}\"\nlog_format = \"json\"\n\n{store}{tenant}",
        data_dir.display()
    );
    let path = home.join("sidecar.toml");
    std::fs::write(&path, config)?;
    procs::spawn_sidecar_under(wrapper, &path, &home.join("sidecar.log")).await
}

/// The `[store]` table of a sidecar keeping its state in `db`, with the pool's defaults.
fn store_table(db: &PgDatabase) -> String {
    // A JSON string is a TOML basic string: the same escapes.
    let quoted = |s: &str| Value::String(s.to_owned()).to_string();
    let mut table = format!("[store]\nurl = {}\n", quoted(&db.url));
    if let Some(var) = &db.password_env {
        table.push_str(&format!("password = {{ env = {} }}\n", quoted(var)));
    }
    table.push('\n');
    table
}

/// One user of the simulator.
#[derive(Clone, Debug)]
struct User {
    legacy_id: String,
    login: String,
    scim_id: String,
}

/// Every user of the simulator, read page by page through its API.
async fn legacy_users(base: &str) -> anyhow::Result<Vec<User>> {
    let http = load::client();
    let tenant = TenantId::new(TENANT);
    let mut out = Vec::new();
    for page in 1.. {
        let body = load::expect(
            &http,
            legacy(base, mc::list_users(page, PAGE)),
            StatusCode::OK,
        )
        .await?;
        let v: Value = serde_json::from_slice(&body)?;
        let listed = mc::listed_users(&v);
        let n = listed.len();
        for u in listed {
            out.push(User {
                scim_id: ScimId::derive(&tenant, "User", &LegacyId::new(u.id.clone()))
                    .as_str()
                    .to_owned(),
                legacy_id: u.id,
                login: u.login,
            });
        }
        if (n as u64) < PAGE {
            break;
        }
    }
    Ok(out)
}

/// Lists every user through the sidecar, as Okta's import does: the xref meets them all.
async fn import(scim_base: &str, users: usize) -> anyhow::Result<()> {
    let http = load::client();
    let mut start = 1;
    while start <= users {
        load::expect(
            &http,
            scim(
                scim_base,
                Method::GET,
                &format!("/Users?startIndex={start}&count=1000"),
                None,
            ),
            StatusCode::OK,
        )
        .await?;
        start += 1000;
    }
    Ok(())
}

fn request(url: String, method: Method, body: Option<&Value>) -> http::request::Builder {
    let b = Request::builder().method(method).uri(url);
    match body {
        Some(_) => b.header(http::header::CONTENT_TYPE, "application/json"),
        None => b,
    }
}

fn finish(b: http::request::Builder, body: Option<&Value>) -> Request<Full<Bytes>> {
    let bytes = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
    b.body(Full::new(bytes))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// A legacy API request (as the sidecar would send it).
fn legacy(base: &str, call: mc::Call) -> Request<Full<Bytes>> {
    let body = call.body.as_ref();
    let mut b = request(format!("{base}{}", call.path), call.method.clone(), body)
        .header(http::header::ACCEPT, "application/json");
    for (name, value) in mc::headers(API_KEY, CUSTOMER) {
        b = b.header(name, value);
    }
    finish(b, body)
}

/// A SCIM request (as Okta sends it).
fn scim(base: &str, method: Method, path: &str, body: Option<&Value>) -> Request<Full<Bytes>> {
    let b = request(format!("{base}{path}"), method, body)
        .header(http::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(http::header::ACCEPT, "application/scim+json");
    let b = match body {
        Some(_) => b.header(http::header::CONTENT_TYPE, "application/scim+json"),
        None => b,
    };
    finish(b, body)
}

/// Where the requests go.
#[derive(Clone, Debug)]
struct Target {
    kind: &'static str,
    base: String,
}

impl Target {
    fn direct(sim: &str) -> Self {
        Target {
            kind: "direct",
            base: sim.to_owned(),
        }
    }

    fn forwarded(fwd: &str, sim: &str) -> Self {
        let path = sim.trim_start_matches(&origin(sim));
        Target {
            kind: "forwarder",
            base: format!("{fwd}{path}"),
        }
    }

    fn sidecar(scim: &str) -> Self {
        Target {
            kind: "sidecar",
            base: scim.to_owned(),
        }
    }

    fn is_scim(&self) -> bool {
        self.kind == "sidecar"
    }
}

/// The operations measured on every target.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    GetById,
    Lookup,
    Create,
    Deactivate,
    Members,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::GetById,
        Scenario::Lookup,
        Scenario::Create,
        Scenario::Deactivate,
        Scenario::Members,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::GetById => "get_by_id",
            Scenario::Lookup => "lookup_by_username",
            Scenario::Create => "create",
            Scenario::Deactivate => "patch_deactivate",
            Scenario::Members => "group_member_add_remove",
        }
    }

    /// Whether the scenario only reads (it changes nothing a later run would see).
    fn reads(self) -> bool {
        matches!(self, Scenario::GetById | Scenario::Lookup)
    }

    /// The operation on `target`. Users are taken from a slice of their own per target (the
    /// PATCH and member scenarios flip each worker's user back and forth).
    fn op(
        self,
        target: &Target,
        users: &Arc<Vec<User>>,
        target_no: usize,
        clients: usize,
    ) -> anyhow::Result<Op> {
        let t = target.clone();
        let users = Arc::clone(users);
        let n = users.len();
        let slice = (clients + 1) * 3;
        if n < slice {
            return Err(anyhow::anyhow!(
                "--users must be at least {slice} for {clients} clients"
            ));
        }
        let own = move |w: u64| (target_no * (clients + 1) + w as usize) % n;
        Ok(match self {
            Scenario::GetById => Arc::new(move |http: Http, w, seq| {
                let u = &users[((w * 7919 + seq) as usize) % n];
                let req = if t.is_scim() {
                    scim(&t.base, Method::GET, &format!("/Users/{}", u.scim_id), None)
                } else {
                    legacy(&t.base, mc::get_user(&u.legacy_id))
                };
                Box::pin(async move { load::expect(&http, req, StatusCode::OK).await.map(drop) })
            }),
            Scenario::Lookup => Arc::new(move |http: Http, w, seq| {
                let u = &users[((w * 7919 + seq) as usize) % n];
                let req = if t.is_scim() {
                    let filter = percent_encoding::utf8_percent_encode(
                        &format!("userName eq \"{}\"", u.login),
                        percent_encoding::NON_ALPHANUMERIC,
                    )
                    .to_string();
                    scim(
                        &t.base,
                        Method::GET,
                        &format!("/Users?filter={filter}"),
                        None,
                    )
                } else {
                    legacy(&t.base, mc::find_by_logon_name(&u.login))
                };
                Box::pin(async move { load::expect(&http, req, StatusCode::OK).await.map(drop) })
            }),
            Scenario::Create => {
                let run = uuid::Uuid::new_v4().simple().to_string();
                // Unique across every run of this operation (each run counts from zero).
                let made = Arc::new(std::sync::atomic::AtomicU64::new(0));
                Arc::new(move |http: Http, _w, _seq| {
                    let k = made.fetch_add(1, Ordering::Relaxed);
                    let login = format!("new-{}-{k}@bench.example", &run[..8]);
                    let req = if t.is_scim() {
                        scim(&t.base, Method::POST, "/Users", Some(&okta_user(&login)))
                    } else {
                        let call = mc::create_user(&login, "Push", "User", &external_id(&login));
                        legacy(&t.base, call)
                    };
                    Box::pin(async move {
                        load::expect(&http, req, StatusCode::CREATED)
                            .await
                            .map(drop)
                    })
                })
            }
            Scenario::Deactivate => {
                let active: Arc<Vec<AtomicBool>> =
                    Arc::new((0..n).map(|_| AtomicBool::new(true)).collect());
                Arc::new(move |http: Http, w, _seq| {
                    let i = own(w);
                    let u = &users[i];
                    // Each worker owns its user: flip it.
                    let now_active = !active[i].fetch_xor(true, Ordering::Relaxed);
                    let req = if t.is_scim() {
                        let body = json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "value": {"active": now_active}}],
                        });
                        scim(
                            &t.base,
                            Method::PATCH,
                            &format!("/Users/{}", u.scim_id),
                            Some(&body),
                        )
                    } else {
                        legacy(&t.base, mc::set_active(&u.legacy_id, now_active))
                    };
                    Box::pin(
                        async move { load::expect(&http, req, StatusCode::OK).await.map(drop) },
                    )
                })
            }
            Scenario::Members => {
                let member: Arc<Vec<AtomicBool>> =
                    Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
                Arc::new(move |http: Http, w, _seq| {
                    // Members come from the other end of the user list than the PATCH users.
                    let i = n - 1 - own(w);
                    let u = &users[i];
                    let add = !member[i].fetch_xor(true, Ordering::Relaxed);
                    let (req, want) = if t.is_scim() {
                        let op = if add {
                            json!({"op": "add", "path": "members", "value": [{"value": u.scim_id}]})
                        } else {
                            json!({"op": "remove", "path": format!("members[value eq \"{}\"]", u.scim_id)})
                        };
                        let body = json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [op],
                        });
                        (
                            scim(
                                &t.base,
                                Method::PATCH,
                                &format!("/Groups/{PUSH_GROUP}"),
                                Some(&body),
                            ),
                            StatusCode::NO_CONTENT,
                        )
                    } else {
                        let call = mc::membership(PUSH_GROUP, &u.legacy_id, add);
                        (legacy(&t.base, call), StatusCode::NO_CONTENT)
                    };
                    Box::pin(async move { load::expect(&http, req, want).await.map(drop) })
                })
            }
        })
    }
}

/// Okta's create body.
fn okta_user(login: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": login,
        "name": {"givenName": "Push", "familyName": "User"},
        "emails": [{"primary": true, "value": login, "type": "work"}],
        "displayName": "Push User",
        "externalId": external_id(login),
        "active": true,
    })
}

/// The externalId Okta sends for `login` (`00u` and the local part).
fn external_id(login: &str) -> String {
    format!("00u{}", &login[..login.find('@').unwrap_or(login.len())])
}

/// Okta's initial push of one user: look it up by userName, then create it.
fn push_op(scim_base: &str) -> Op {
    let base = scim_base.to_owned();
    let run = uuid::Uuid::new_v4().simple().to_string();
    Arc::new(move |http: Http, _w, seq| {
        let login = format!("push-{}-{seq:07}@bench.example", &run[..8]);
        let filter = percent_encoding::utf8_percent_encode(
            &format!("userName eq \"{login}\""),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let lookup = scim(
            &base,
            Method::GET,
            &format!("/Users?filter={filter}&startIndex=1&count=100"),
            None,
        );
        let create = scim(&base, Method::POST, "/Users", Some(&okta_user(&login)));
        Box::pin(async move {
            load::expect(&http, lookup, StatusCode::OK).await?;
            load::expect(&http, create, StatusCode::CREATED)
                .await
                .map(drop)
        })
    })
}

/// `filter=id eq "…"` lookups of the known users.
fn id_eq_op(scim_base: &str, users: &Arc<Vec<User>>) -> Op {
    let base = scim_base.to_owned();
    let users = Arc::clone(users);
    Arc::new(move |http: Http, w, seq| {
        let u = &users[((w * 7919 + seq) as usize) % users.len()];
        let filter = percent_encoding::utf8_percent_encode(
            &format!("id eq \"{}\"", u.scim_id),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string();
        let req = scim(&base, Method::GET, &format!("/Users?filter={filter}"), None);
        Box::pin(async move { load::expect(&http, req, StatusCode::OK).await.map(drop) })
    })
}

/// A run with failures is reported with its first failure.
fn health(stats: &Stats) -> Value {
    json!({
        "ok": stats.ok,
        "errors": stats.errors,
        "first_error": stats.first_error,
    })
}
