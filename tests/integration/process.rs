//! The `scim-sidecar serve` binary as a child process (for the serve and crash tests), and a
//! one-shot SCIM client for it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use http::Method;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use crate::support::WAIT_LIMIT;

/// The `[server]` table of a test configuration: both listeners on port 0 (a test never
/// takes a fixed port), the data directory `data`, JSON logs. Tenants follow it.
pub(crate) fn server_section(data: &std::path::Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         data_dir = \"{}\"\nlog_format = \"json\"\n\n",
        data.display()
    )
}

/// The `[tenants.acme]` table of a test configuration in front of a Marketing Center
/// simulator at `legacy` (customer `ACME`, the shipped mapping): the API key from the
/// environment variable `key_env`, one bearer token.
pub(crate) fn mc_tenant(legacy: &str, key_env: &str, token: &str) -> String {
    format!(
        "[tenants.acme]\ncustomer_id = \"ACME\"\nlegacy_base_url = \"{legacy}\"\n\
         mapping = \"{}/mappings/marketing-center.toml\"\napi_key = {{ env = \"{key_env}\" }}\n\
         tokens = [{{ value = \"{token}\" }}]\n",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// `reconcile --json --config CONFIG` with one environment variable (the API key): its
/// report, which must say the command succeeded.
pub(crate) async fn reconcile(config: &std::path::Path, env: (&str, &str)) -> Value {
    let config = config.to_path_buf();
    let (key, value) = (env.0.to_owned(), env.1.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
            .args(["reconcile", "--json", "--config"])
            .arg(&config)
            .env(key, value)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "{report}");
    report
}

/// Asserts a reconcile report without drift, with `users` users on both sides.
pub(crate) fn assert_no_drift(report: &Value, users: u64) {
    assert_eq!(report["legacy_users"], users, "{report}");
    assert_eq!(report["xref_rows"], users, "{report}");
    for drift in [
        "vanished",
        "unrecorded",
        "external_id_mismatch",
        "duplicates",
    ] {
        assert_eq!(report[drift], serde_json::json!([]), "{drift}: {report}");
    }
}

/// The `scim-sidecar` binary, to be given a command and its arguments.
pub(crate) fn command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scim-sidecar"))
}

/// Runs `cmd` to its end and gives its standard output; the test fails with its standard
/// error when it did not succeed.
pub(crate) fn succeeded(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `serve` process, its log lines, and its SCIM base URL.
pub(crate) struct Served {
    pub(crate) child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
    /// `http://127.0.0.1:PORT/scim/v2` (`https://…` when serving TLS).
    pub(crate) base: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub(crate) admin: String,
}

/// A test that fails before it stops its sidecar leaves no process behind.
impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Served {
    /// Starts `serve --config` with extra environment (debug logs, JSON because stderr is a
    /// pipe) and waits for the "serving" line, which carries the bound address.
    // The child is reaped by `stop`, `stop_after_term` or `kill`, which every caller uses.
    #[allow(clippy::zombie_processes)]
    pub(crate) fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Served {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scim-sidecar"));
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.env("SCIM_SIDECAR_LOG", "debug");
        // Tests run in parallel: never the fixed default admin port.
        cmd.env("SCIM_SIDECAR_SERVER__ADMIN_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let (base, admin) = loop {
            let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not start: {log:?}");
            };
            log.push(line.clone());
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "scim-sidecar serving" {
                let scheme = if v["tls"] == true { "https" } else { "http" };
                break (
                    format!("{scheme}://{}/scim/v2", v["addr"].as_str().unwrap()),
                    format!("http://{}", v["admin"].as_str().unwrap()),
                );
            }
        };
        Served {
            child,
            lines,
            log,
            base,
            admin,
        }
    }

    /// The address of the listener.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        let rest = self.base.split_once("://").unwrap().1;
        rest.trim_end_matches("/scim/v2").parse().unwrap()
    }

    /// The first log line with this `message`, among those read so far (start reads up to
    /// the "serving" line, and a line of the start may come before it) or the next ones.
    pub(crate) fn logged(&mut self, message: &str) -> Value {
        let seen = (self.log.iter())
            .map(|line| serde_json::from_str::<Value>(line).unwrap_or(Value::Null))
            .find(|v| v["message"] == message);
        match seen {
            Some(v) => v,
            None => self.wait_for_log(message),
        }
    }

    /// Waits (at most [`WAIT_LIMIT`]) for the next log line whose message is `message`;
    /// returns it.
    pub(crate) fn wait_for_log(&mut self, message: &str) -> Value {
        let deadline = std::time::Instant::now() + WAIT_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "no log line {message:?} within {} s: {:?}",
                    WAIT_LIMIT.as_secs(),
                    self.log
                );
            };
            self.log.push(line.clone());
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == message {
                return v;
            }
        }
    }

    /// Sends `signal` (`Signal::HUP`, `Signal::TERM`, …) to the process, with the `kill`
    /// system call through `rustix` (no `kill` command).
    pub(crate) fn signal(&self, signal: Signal) {
        let pid = self.child.id();
        kill_process(Pid::from_child(&self.child), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal:?} to serve (pid {pid}): {e}"));
    }

    /// Waits for the clean exit of a process already sent SIGTERM; returns every log line,
    /// down to the last one it wrote (its standard error is read until it closes).
    pub(crate) fn stop_after_term(mut self) -> Vec<String> {
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "serve exited with {exit}");
        let deadline = std::time::Instant::now() + WAIT_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return std::mem::take(&mut self.log),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "serve exited but its standard error did not close within {} s: {:?}",
                    WAIT_LIMIT.as_secs(),
                    self.log
                ),
            }
        }
    }

    /// Sends SIGTERM, waits for a clean exit, returns every log line.
    pub(crate) fn stop(self) -> Vec<String> {
        self.signal(Signal::TERM);
        self.stop_after_term()
    }

    /// SIGKILL, and reap the process.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// One request to a served sidecar; `Err` when no answer came (e.g. the process died).
pub(crate) async fn try_call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/scim+json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

/// One request to a served sidecar that must get an answer.
pub(crate) async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    try_call(base, method, path, token, body).await.unwrap()
}
