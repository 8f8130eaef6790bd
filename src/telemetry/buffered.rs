//! Log lines gathered in memory and written out together, so that a request's line costs a
//! copy and not a `write(2)` on the connection's path (measured in the bench's one-client
//! latency: the system call and the file system's work were as much as the line itself).
//!
//! Lines of INFO and below go to a buffer; a thread of their own writes the buffer out at
//! most [`LINGER`] after the first line of a batch arrived (one wake-up per batch, none when
//! nothing is logged). A WARN or ERROR line is written at once, after whatever the buffer
//! holds, so order is kept and nothing an operator must see waits. Memory is bounded: at
//! [`SOON`] the thread is woken early, and a line that finds [`FULL`] waiting writes the
//! buffer out itself (the output's own pace, as when nothing was buffered).
//! [`Buffered::flush`] writes everything out now: the program calls it before it ends
//! ([`crate::telemetry::flush`]) and from its panic hook.
//!
//! Depends on nothing else in the crate.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};

/// How long a line may wait in the buffer.
pub const LINGER: Duration = Duration::from_millis(10);
/// Bytes buffered at which the writing thread is woken before [`LINGER`] is up.
const SOON: usize = 64 * 1024;
/// Bytes buffered at which a line writes the buffer out itself.
const FULL: usize = 1024 * 1024;

/// Where the buffered lines go: standard error, or a test's sink.
pub trait Output: Send + 'static {
    /// Writes `bytes` whole. The output is locked for it, so lines stay in order.
    fn write_out(&self, bytes: &[u8]);
}

impl Output for std::io::Stderr {
    fn write_out(&self, bytes: &[u8]) {
        // Nothing useful can be done when standard error fails (closed, full disk).
        let _ = self.lock().write_all(bytes);
    }
}

/// A `MakeWriter` for tracing-subscriber: see the module documentation. Clones share the
/// buffer and the thread; the thread ends (having written everything out) when the last
/// clone is dropped.
pub struct Buffered<O: Output>(Arc<Handle<O>>);

impl<O: Output> Clone for Buffered<O> {
    fn clone(&self) -> Self {
        Buffered(Arc::clone(&self.0))
    }
}

/// What the clones share; its drop ends the thread.
struct Handle<O: Output>(Arc<Shared<O>>);

struct Shared<O> {
    /// The lines not yet written, and whether the thread must end.
    state: Mutex<State>,
    /// Wakes the thread: a first line, [`SOON`] reached, or the end.
    wake: Condvar,
    /// Held while writing out, so a WARN line cannot overtake a batch taken just before it.
    output: Mutex<O>,
    linger: Duration,
    /// No thread could be started: every line is written at once.
    direct: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    stop: bool,
}

impl<O: Output> Buffered<O> {
    /// Buffers lines for `output`, written at most `linger` after they arrived, by a thread
    /// started here. When no thread can be started, every line is written at once.
    pub fn start(output: O, linger: Duration) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            output: Mutex::new(output),
            linger,
            direct: std::sync::atomic::AtomicBool::new(false),
        });
        let theirs = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer_loop(&theirs));
        if started.is_err() {
            shared
                .direct
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Buffered(Arc::new(Handle(shared)))
    }

    /// Writes out everything buffered, now.
    pub fn flush(&self) {
        self.shared().write_out(None);
    }

    fn shared(&self) -> &Shared<O> {
        &self.0.0
    }

    /// Adds `line` to the buffer (or writes it out at once, for WARN and ERROR).
    fn add(&self, line: &[u8], at_once: bool) {
        let shared = self.shared();
        if at_once || shared.direct.load(std::sync::atomic::Ordering::Relaxed) {
            shared.write_out(Some(line));
            return;
        }
        let mut state = shared.lock_state();
        let was_empty = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        let len = state.lines.len();
        drop(state);
        if len >= FULL {
            shared.write_out(None);
        } else if was_empty || (len >= SOON && len - line.len() < SOON) {
            shared.wake.notify_one();
        }
    }
}

impl<O> Shared<O> {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<O: Output> Shared<O> {
    /// Writes out what is buffered, then `line`, in one piece.
    fn write_out(&self, line: Option<&[u8]>) {
        let output = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let mut batch = std::mem::take(&mut self.lock_state().lines);
        if let Some(line) = line {
            batch.extend_from_slice(line);
        }
        if !batch.is_empty() {
            output.write_out(&batch);
        }
        drop(output);
        // Give the allocation back for the next batch, unless one was started meanwhile.
        batch.clear();
        let mut state = self.lock_state();
        if state.lines.is_empty() && batch.capacity() <= FULL {
            state.lines = batch;
        }
    }
}

impl<O: Output> Drop for Handle<O> {
    fn drop(&mut self) {
        self.0.lock_state().stop = true;
        self.0.wake.notify_one();
        self.0.write_out(None);
    }
}

/// The thread: waits for a first line, lets more gather for the linger (or until [`SOON`]),
/// writes them out; ends when the last handle is dropped (which writes out what is left).
fn writer_loop<O: Output>(shared: &Shared<O>) {
    loop {
        let mut state = shared.lock_state();
        while state.lines.is_empty() && !state.stop {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stop {
            return;
        }
        let deadline = std::time::Instant::now() + shared.linger;
        while state.lines.len() < SOON && !state.stop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(state);
        shared.write_out(None);
    }
}

/// One line being written: tracing-subscriber formats a line whole, then writes it.
pub struct LineWriter<'a, O: Output> {
    buffered: &'a Buffered<O>,
    at_once: bool,
}

impl<O: Output> Write for LineWriter<'_, O> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffered.add(bytes, self.at_once);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, O: Output> tracing_subscriber::fmt::MakeWriter<'a> for Buffered<O> {
    type Writer = LineWriter<'a, O>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            buffered: self,
            at_once: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        LineWriter {
            buffered: self,
            at_once: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests;
