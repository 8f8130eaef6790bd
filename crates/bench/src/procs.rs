//! The processes a benchmark runs: the simulator, the bare forwarder and the sidecar, each
//! started from this same binary on loopback port 0, found by the address line it prints,
//! and stopped (SIGTERM, then SIGKILL) when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to print its address.
const START_LIMIT: Duration = Duration::from_secs(120);

/// A child process of the benchmark.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// What it printed as its address (a URL).
    pub url: String,
    /// The admin listener's URL (sidecars only).
    pub admin: Option<String>,
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `(VmRSS, VmHWM)` in bytes: resident now and at its peak.
    pub fn rss(&self) -> anyhow::Result<(u64, u64)> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).map_err(|e| {
                anyhow::anyhow!("cannot read the sidecar's memory (Linux /proc only): {e}")
            })?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .ok_or_else(|| anyhow::anyhow!("no {name} in /proc/{}/status", self.pid()))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Stops it: SIGTERM, and SIGKILL after five seconds.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        self.sigterm();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop: SIGTERM, with the `kill` system call (no `kill` command). A
    /// process that is already gone is not an error: `terminate` reaps it next.
    #[cfg(unix)]
    fn sigterm(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let _ = kill_process(Pid::from_child(&self.child), Signal::TERM);
    }

    /// Without Unix signals there is no gentle stop: it is killed at once.
    #[cfg(not(unix))]
    fn sigterm(&mut self) {
        let _ = self.child.kill();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// This binary.
pub fn exe() -> anyhow::Result<PathBuf> {
    std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find this binary: {e}"))
}

/// `exe`, or `wrapper… exe` (a profiler running this binary).
fn command(wrapper: &[String]) -> anyhow::Result<Command> {
    Ok(match wrapper.split_first() {
        None => Command::new(exe()?),
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe()?);
            c
        }
    })
}

/// Starts `exe args…` and waits for a stdout line starting with `prefix`; the rest of the
/// line is the URL. Standard error goes to `log`.
pub fn spawn_printing(args: &[String], prefix: &str, log: &Path) -> anyhow::Result<Proc> {
    spawn_printing_under(&[], args, prefix, log)
}

/// [`spawn_printing`] with `exe` run by `wrapper` (see `profile`).
pub fn spawn_printing_under(
    wrapper: &[String],
    args: &[String],
    prefix: &str,
    log: &Path,
) -> anyhow::Result<Proc> {
    let stderr =
        std::fs::File::create(log).map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
    let mut child = command(wrapper)?
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {args:?}: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        return Err(anyhow::anyhow!("no stdout"));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        let mut found = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !found && let Some(rest) = line.strip_prefix(&prefix) {
                found = true;
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let url = match rx.recv_timeout(START_LIMIT) {
        Ok(url) => url,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(anyhow::anyhow!("{args:?} did not start:\n{log}"));
        }
    };
    Ok(Proc {
        child,
        url,
        admin: None,
    })
}

/// Starts `serve --config config` and waits until `/readyz` answers 200: the sidecar with
/// its SCIM and admin URLs, and how long it took from the spawn.
pub async fn spawn_sidecar(config: &Path, log: &Path) -> anyhow::Result<(Proc, Duration)> {
    spawn_sidecar_under(&[], config, log).await
}

/// [`spawn_sidecar`] with `exe` run by `wrapper` (see `profile`).
pub async fn spawn_sidecar_under(
    wrapper: &[String],
    config: &Path,
    log: &Path,
) -> anyhow::Result<(Proc, Duration)> {
    let started = Instant::now();
    let stderr =
        std::fs::File::create(log).map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
    let mut child = command(wrapper)?
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("SCIM_SIDECAR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start the sidecar: {e}"))?;
    let http = super::load::client();
    loop {
        if started.elapsed() > START_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow::anyhow!(
                "the sidecar did not become ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(anyhow::anyhow!(
                "the sidecar exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        // The serving line names both addresses.
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let serving = text.lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["message"] == "scim-sidecar serving").then(|| {
                (
                    v["addr"].as_str().unwrap_or("").to_owned(),
                    v["admin"].as_str().unwrap_or("").to_owned(),
                )
            })
        });
        if let Some((addr, admin)) = serving {
            let admin = format!("http://{admin}");
            let ready = http::Request::get(format!("{admin}/readyz"))
                .body(http_body_util::Full::new(bytes::Bytes::new()))?;
            if let Ok((status, _)) = super::load::send(&http, ready).await
                && status == http::StatusCode::OK
            {
                let took = started.elapsed();
                return Ok((
                    Proc {
                        child,
                        url: format!("http://{addr}/scim/v2"),
                        admin: Some(admin),
                    },
                    took,
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
