//! Process signals: `SIGINT`/`SIGTERM` ask for shutdown, `SIGHUP` for a reload (of mappings
//! and certificates), alongside polling. Depends on nothing else in the crate.

use std::time::Duration;

/// SIGINT and SIGTERM, listened for from the moment this is made: one that arrives before it
/// is awaited is not lost, and never meets the default action (which ends the process without
/// draining). Make it before saying the process is ready (the "serving" line, `dev`'s banner).
#[derive(Debug)]
pub struct Shutdown {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Starts listening.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Shutdown {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// Resolves when SIGINT or SIGTERM arrives (or arrived since [`Shutdown::listen`]).
    pub async fn wait(self) {
        #[cfg(unix)]
        {
            let Shutdown { term, int } = self;
            let one = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = one(term) => {},
                () = one(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received");
    }
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
