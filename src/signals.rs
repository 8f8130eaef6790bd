//! Process signals: `SIGINT`/`SIGTERM` ask for shutdown, `SIGHUP` for a reload (of mappings
//! and certificates), alongside polling. Depends on nothing else in the crate.

use std::time::Duration;

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// What starts a reload: `SIGHUP` (forced: reload even an unchanged file) or the poll
/// interval (zero: never). The `SIGHUP` handler is installed by [`Triggers::new`], so a
/// watcher made before the "serving" line never leaves a `SIGHUP` to the default action
/// (which ends the process). Shared by the mapping and certificate watchers.
#[derive(Debug)]
pub struct Triggers {
    poll: Duration,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl Triggers {
    /// Triggers every `poll` and on every `SIGHUP`.
    pub fn new(poll: Duration) -> Self {
        Self {
            poll,
            #[cfg(unix)]
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// Waits for the next trigger: `true` for `SIGHUP`, `false` for a poll tick.
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        let hangup = async {
            match self.hup.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<()>();
        let poll = self.poll;
        let tick = async {
            if poll.is_zero() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(poll).await;
        };
        tokio::select! {
            () = hangup => true,
            () = tick => false,
        }
    }
}
