//! The threads connections are served on: one single-threaded tokio runtime per core, each
//! connection on one of them from accept to close.
//!
//! On tokio's work-stealing runtime a request's tasks move between workers: the one that polled
//! the reactor wakes a connection, another steals it, and each hand-off is a futex wake-up and
//! cache lines crossing cores. Measured on the feed head (`bench/feed`, 2 cores), that was the
//! gap to nginx, whose workers each own their connections. Here a connection's socket is
//! registered with its own thread's reactor and every task it spawns stays on that thread.
//!
//! Off by default (`HTTP_THREADS=cores` turns them on). A task that requests hand work to and
//! wait on (the order placer's group-committing writer) then runs on a thread of its own beside
//! them ([`spawn_on_writer_thread`]): on the main runtime each hand-off and each answer crossed
//! to a parked work-stealing pool (10–23 % of the SQLite placement rate); on a serving thread
//! the writer queued behind that thread's requests between statements. Even so, requests that
//! wait on the database lose 7–10 % on SQLite with the threads (placements with 16 clients, a
//! catch-up fetching details by link; BENCHMARKS.md): pinned to a thread, a handler cannot move
//! to the free core while SQLite's and the writer's threads run. The feed head gains.
//!
//! The threads live as long as the process, shared by every [`super::serve`] in it: a database
//! connection a handler opens (sqlx's Postgres pool) is registered with the reactor of the thread
//! that opened it and may be used from any other, so a runtime must never be dropped while the
//! pool can still hand that connection out.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// One serving thread: its runtime, and how many connections it serves now.
struct Worker {
    handle: Handle,
    load: Arc<AtomicUsize>,
}

/// The serving threads of this process, and the writer thread beside them.
pub(super) struct Workers {
    workers: Vec<Worker>,
    /// Where [`spawn_on_writer_thread`] runs its tasks; `None` when there are no serving threads.
    writer: Option<Handle>,
}

/// A connection's place on a worker, given up when dropped.
pub(super) struct Seat {
    load: Arc<AtomicUsize>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.load.fetch_sub(1, Ordering::Relaxed);
    }
}

static WORKERS: Mutex<Option<Arc<Workers>>> = Mutex::new(None);

/// Runs `task` on the process's writer thread, a single-threaded runtime beside the serving
/// threads, or on the current runtime when connections are served there (`HTTP_THREADS=0`).
/// For a task that requests hand work to and wait on: it then never waits behind a serving
/// thread's requests, nor wakes a work-stealing pool for each hand-off.
pub fn spawn_on_writer_thread<F>(task: F) -> io::Result<JoinHandle<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Ok(match &Workers::get()?.writer {
        Some(writer) => writer.spawn(task),
        None => tokio::spawn(task),
    })
}

/// How many serving threads: a number (`0`, the default, serves connections on the main
/// runtime), or `cores` for one per core this process may use. Read once, by the first
/// [`super::serve`] or [`spawn_on_writer_thread`] at start-up.
pub const HTTP_THREADS: &str = "HTTP_THREADS";

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The serving threads `value` (of [`HTTP_THREADS`]) asks for.
fn configured(value: Option<&str>) -> Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some("cores") => Ok(cores()),
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= 1024)
            .ok_or_else(|| {
                format!(
                    "{HTTP_THREADS}={n:?}: expected a number of threads up to 1024, or \"cores\""
                )
            }),
    }
}

impl Workers {
    /// The process's serving threads, started on first use: as many as [`HTTP_THREADS`] says
    /// (with none, connections are served on the runtime that accepts them).
    pub(super) fn get() -> io::Result<Arc<Workers>> {
        let mut workers = WORKERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(workers) = workers.as_ref() {
            return Ok(workers.clone());
        }
        let count = configured(std::env::var(HTTP_THREADS).ok().as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let started = Arc::new(Workers::start(count)?);
        *workers = Some(started.clone());
        Ok(started)
    }

    fn start(count: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(count);
        for n in 0..count {
            workers.push(Worker {
                handle: thread(format!("http-{n}"))?,
                load: Arc::new(AtomicUsize::new(0)),
            });
        }
        let writer = match count {
            0 => None,
            _ => Some(thread("writer".to_owned())?),
        };
        Ok(Workers { workers, writer })
    }

    /// The least loaded worker (the first of equals), a seat on it taken; `None` only if
    /// there are no workers.
    pub(super) fn pick(&self) -> Option<(&Handle, Seat)> {
        let worker = &self.workers[self.least_loaded()?];
        worker.load.fetch_add(1, Ordering::Relaxed);
        let seat = Seat {
            load: worker.load.clone(),
        };
        Some((&worker.handle, seat))
    }

    /// Whether connections are served where they are accepted.
    #[cfg(test)]
    pub(super) fn workers_empty(&self) -> bool {
        self.workers.is_empty()
    }

    fn least_loaded(&self) -> Option<usize> {
        (0..self.workers.len()).min_by_key(|&i| self.workers[i].load.load(Ordering::Relaxed))
    }
}

/// A thread running a single-threaded runtime for as long as the process.
fn thread(name: String) -> io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(name)
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each connection goes to the thread serving the fewest, the first of equals; a closed
    /// connection gives its place back.
    #[test]
    fn connections_go_to_the_least_loaded_thread() {
        let workers = Workers::start(3).unwrap();
        let taken: Vec<(usize, Seat)> = (0..4)
            .map(|_| {
                let i = workers.least_loaded().unwrap();
                (i, workers.pick().unwrap().1)
            })
            .collect();
        let order: Vec<usize> = taken.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 0]);
        let mut taken = taken;
        taken.remove(2);
        assert_eq!(workers.least_loaded(), Some(2), "thread 2 serves none now");
        let loads: Vec<usize> = workers
            .workers
            .iter()
            .map(|w| w.load.load(Ordering::Relaxed))
            .collect();
        assert_eq!(loads, [2, 1, 0]);
        drop(taken);
        assert!(workers
            .workers
            .iter()
            .all(|w| w.load.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn the_number_of_threads_is_configured_or_none() {
        assert_eq!(configured(None), Ok(0));
        assert_eq!(configured(Some("")), Ok(0));
        assert_eq!(configured(Some("cores")), Ok(cores()));
        assert_eq!(configured(Some("0")), Ok(0));
        assert_eq!(configured(Some(" 3 ")), Ok(3));
        for bad in ["-1", "two", "1025", "2.5"] {
            let e = configured(Some(bad)).unwrap_err();
            assert!(e.starts_with("HTTP_THREADS=") && e.contains(bad), "{e}");
        }
    }
}
