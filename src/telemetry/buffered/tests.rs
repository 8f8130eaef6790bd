//! The buffer of log lines: when lines go out, in which order, and that none is lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Buffered, FULL, Output, SOON};

/// Every write the buffer made, as made; with `slow`, the buffer's own thread takes 200 ms
/// to write (an output that cannot keep up).
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Vec<u8>>>>, bool);

impl Output for Sink {
    fn write_out(&self, bytes: &[u8]) {
        if self.1 && std::thread::current().name() == Some("log-writer") {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.0.lock().unwrap().push(bytes.to_vec());
    }
}

impl Sink {
    fn writes(&self) -> Vec<String> {
        let writes = self.0.lock().unwrap();
        writes
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    /// Waits (at most 10 s) until something was written.
    fn wait_for_a_write(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let writes = self.writes();
            if !writes.is_empty() || Instant::now() > deadline {
                return writes;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Longer than any test: a line goes out only when something makes it.
const NEVER: Duration = Duration::from_secs(3600);

/// Logs through a subscriber writing to `buffer`, as the program does.
fn log(buffer: &Buffered<Sink>, f: impl FnOnce()) {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .without_time()
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
}

#[test]
fn info_lines_wait_in_the_buffer_and_go_out_together() {
    let sink = Sink::default();
    let buffer = Buffered::start(sink.clone(), NEVER);
    log(&buffer, || {
        tracing::info!("one");
        tracing::info!("two");
        tracing::debug!("not logged at info");
        tracing::info!("three");
    });
    assert!(sink.writes().is_empty(), "{:?}", sink.writes());
    buffer.flush();
    let writes = sink.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let lines: Vec<&str> = writes[0].lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (line, word) in lines.iter().zip(["one", "two", "three"]) {
        assert!(line.ends_with(word), "{line}");
    }
}

#[test]
fn a_warning_goes_out_at_once_after_the_lines_before_it() {
    let sink = Sink::default();
    let buffer = Buffered::start(sink.clone(), NEVER);
    log(&buffer, || {
        tracing::info!("first");
        tracing::info!("second");
        tracing::warn!("careful");
    });
    let writes = sink.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    let lines: Vec<&str> = writes[0].lines().collect();
    assert!(
        lines[0].contains("INFO") && lines[0].ends_with("first"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with("second"), "{lines:?}");
    assert!(
        lines[2].contains("WARN") && lines[2].ends_with("careful"),
        "{lines:?}"
    );
    log(&buffer, || tracing::error!("broken"));
    assert_eq!(sink.writes().len(), 2);
}

#[test]
fn buffered_lines_go_out_by_themselves_after_the_linger() {
    let sink = Sink::default();
    let buffer = Buffered::start(sink.clone(), Duration::from_millis(5));
    log(&buffer, || tracing::info!("on its own"));
    let writes = sink.wait_for_a_write();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].trim_end().ends_with("on its own"), "{writes:?}");
}

#[test]
fn dropping_the_last_handle_writes_everything_out() {
    let sink = Sink::default();
    let buffer = Buffered::start(sink.clone(), NEVER);
    let other = buffer.clone();
    log(&buffer, || tracing::info!("last words"));
    drop(buffer);
    assert!(sink.writes().is_empty(), "a clone is still alive");
    drop(other);
    let writes = sink.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].trim_end().ends_with("last words"), "{writes:?}");
}

#[test]
fn a_buffer_past_soon_wakes_the_thread_before_the_linger() {
    let sink = Sink::default();
    let buffer = Buffered::start(sink.clone(), NEVER);
    let line = vec![b'x'; 1024];
    for _ in 0..SOON / line.len() {
        buffer.add(&line, false);
    }
    let writes = sink.wait_for_a_write();
    let written: usize = writes.iter().map(String::len).sum();
    assert!(written >= SOON, "{written} bytes written");
}

#[test]
fn a_buffer_never_holds_more_than_full_when_the_output_is_slow() {
    let sink = Sink(Arc::default(), true);
    let buffer = Buffered::start(sink.clone(), NEVER);
    let line = vec![b'y'; 4096];
    let mut added = 0;
    while added < 2 * FULL {
        buffer.add(&line, false);
        added += line.len();
        let held = buffer.shared().lock_state().lines.len();
        assert!(held < FULL, "{held} bytes held after {added} added");
    }
    buffer.flush();
    let written: usize = sink.writes().iter().map(String::len).sum();
    assert_eq!(written, added, "every byte written once");
}
