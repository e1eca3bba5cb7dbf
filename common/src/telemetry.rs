//! Logging set-up: `RUST_LOG` sets the level (`info` by default); `LOG_FORMAT=json` writes one
//! JSON object per line for machines, anything else readable text, coloured only on a terminal.
//!
//! Lines are formatted on the thread that logs them and written to standard output by a thread
//! of its own, many per `write` (see [`LineSink`]).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Keeps the log writer's thread: dropping it (at the end of `main`) writes the lines still
/// buffered and stops the thread. Hold it for the whole process.
#[must_use = "dropping it stops the log writer; hold it until the process ends"]
pub struct Logs {
    sink: Option<LineSink>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for Logs {
    fn drop(&mut self) {
        if let Some(sink) = &self.sink {
            sink.stop();
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// Installs the global subscriber, writing to standard output. A later call installs nothing
/// and returns a guard that does nothing.
pub fn init() -> Logs {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let sink = LineSink::default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(sink.clone());
    let installed = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    if installed.is_err() {
        return Logs {
            sink: None,
            writer: None,
        };
    }
    let writer = sink.spawn_writer(std::io::stdout());
    Logs {
        sink: Some(sink),
        writer: writer.ok(),
    }
}

/// For command-line tools whose standard output is their result: warnings and errors only
/// (unless `RUST_LOG` says otherwise), on standard error, written at once.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init();
}

/// Bytes of lines waiting to be written before the threads that log wait for the writer:
/// nothing is dropped.
const BUFFERED: usize = 4 << 20;
/// How long the writer lets lines gather after each `write`: at most one `write` per interval
/// under load, while a quiet service's line is written as soon as it is logged.
const GATHER: Duration = Duration::from_millis(2);

/// Where the subscriber puts each formatted line: appended under a lock to one buffer that a
/// writer thread swaps out and writes whole.
///
/// Measured on the feed head's `304` (`wrk -t1 -c32`, 3 alternating rounds, medians against
/// the same build at `warn`): written line by line from the request's thread, as
/// `tracing_subscriber` does by default, a `write` call per request, 0.71–0.74×; through
/// `tracing_appender`'s non-blocking writer (an allocation and a channel send per line, and a
/// writer thread that wakes and spins for nearly every line: 11 % of the process's samples)
/// 0.80–0.81×; here 0.82×, the writer thread 1.7 % of the samples. What is left is formatting
/// the line itself (BENCHMARKS.md).
#[derive(Clone, Default)]
struct LineSink {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The writer waits on it for a first line, or for the stop.
    lines_waiting: Condvar,
    /// Threads that log wait on it while [`BUFFERED`] bytes are waiting.
    room: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    stopping: bool,
}

impl LineSink {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left whole lines or none: go on.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append(&self, line: &[u8]) {
        let mut state = self.lock();
        while state.lines.len() >= BUFFERED && !state.stopping {
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let first = state.lines.is_empty();
        state.lines.extend_from_slice(line);
        drop(state);
        // Only a first line can find the writer waiting: one wake-up per write at most.
        if first {
            self.shared.lines_waiting.notify_one();
        }
    }

    /// Asks the writer to write what is left and end.
    fn stop(&self) {
        self.lock().stopping = true;
        self.shared.lines_waiting.notify_one();
        self.shared.room.notify_all();
    }

    /// The next lines to write, swapped into `batch` (emptied first); `false` once stopped
    /// with nothing left.
    fn take(&self, batch: &mut Vec<u8>) -> bool {
        batch.clear();
        let mut state = self.lock();
        while state.lines.is_empty() && !state.stopping {
            state = self
                .shared
                .lines_waiting
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.lines.is_empty() {
            return false;
        }
        std::mem::swap(&mut state.lines, batch);
        drop(state);
        self.shared.room.notify_all();
        true
    }

    fn spawn_writer<W: Write + Send + 'static>(
        &self,
        mut out: W,
    ) -> std::io::Result<JoinHandle<()>> {
        let sink = self.clone();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while sink.take(&mut batch) {
                    if let Err(e) = out.write_all(&batch).and_then(|()| out.flush()) {
                        // Nowhere left to log it but standard error; the lines are lost.
                        eprintln!("cannot write {} bytes of log lines: {e}", batch.len());
                    }
                    std::thread::sleep(GATHER);
                }
            })
    }
}

impl Write for &LineSink {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.append(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LineSink {
    type Writer = &'a LineSink;

    fn make_writer(&'a self) -> &'a LineSink {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink, what its writer thread writes, and the guard that stops it.
    fn started() -> (LineSink, Captured, Logs) {
        let sink = LineSink::default();
        let out = Captured::default();
        let logs = Logs {
            sink: Some(sink.clone()),
            writer: Some(sink.spawn_writer(out.clone()).unwrap()),
        };
        (sink, out, logs)
    }

    #[test]
    fn every_line_logged_is_written_in_order_by_the_time_the_logs_stop() {
        // Arrange: more bytes than the buffer holds, from two threads, so that some wait.
        let (sink, out, logs) = started();
        let line_count = 2 * BUFFERED / 100 + 1000;
        // Act
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..line_count {
                        let line = format!("thread {t} line {i:>8} {}\n", "x".repeat(70));
                        (&sink).write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(logs);
        // Assert: every line whole, each thread's in order.
        let written = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        for t in 0..2 {
            let prefix = format!("thread {t} line ");
            let numbers: Vec<usize> = written
                .lines()
                .filter_map(|l| l.strip_prefix(&prefix))
                .map(|rest| rest[..8].trim().parse().unwrap())
                .collect();
            assert_eq!(numbers, (0..line_count).collect::<Vec<_>>());
        }
        assert_eq!(written.lines().count(), 2 * line_count);
    }

    #[test]
    fn a_line_logged_while_the_service_is_quiet_is_written_without_waiting_for_more() {
        let (sink, out, logs) = started();
        (&sink).write_all(b"alone\n").unwrap();
        // The writer is woken by the line itself; the wait is bounded so a failure ends.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while out.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"alone\n");
        drop(logs);
    }
}
