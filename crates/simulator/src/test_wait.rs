//! How the simulators' tests wait: they poll a state until a deadline, never sleep a fixed
//! time.

use std::time::{Duration, Instant};

/// How long a test waits for a state it expects before it fails: generous, so a loaded
/// machine makes a test slower, never red.
const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// Polls `done` every 5 ms until it returns `true`; panics naming `what` if it has not within
/// [`WAIT_LIMIT`].
pub(crate) async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "gave up after {} s waiting for {what}",
            WAIT_LIMIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
