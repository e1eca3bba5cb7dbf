//! The threads connections are served on: one single-threaded tokio runtime per core, each
//! connection on one of them from accept to close.
//!
//! On tokio's work-stealing runtime a request's tasks move between workers: the one that polled
//! the reactor wakes a connection, another steals it, and each hand-off is a futex wake-up and
//! cache lines crossing cores. Measured on the feed head (`bench/feed`, 2 cores), that was the
//! gap to nginx, whose workers each own their connections. Here a connection's socket is
//! registered with its own thread's reactor and every task it spawns stays on that thread.
//!
//! The threads live as long as the process, shared by every [`super::serve`] in it: a database
//! connection a handler opens (sqlx's Postgres pool) is registered with the reactor of the thread
//! that opened it and may be used from any other, so a runtime must never be dropped while the
//! pool can still hand that connection out.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::runtime::Handle;

/// One serving thread: its runtime, and how many connections it serves now.
struct Worker {
    handle: Handle,
    load: Arc<AtomicUsize>,
}

/// The serving threads of this process.
pub(super) struct Workers {
    workers: Vec<Worker>,
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

impl Workers {
    /// The process's serving threads, started on first use: as many as the cores this process
    /// may run on.
    pub(super) fn get() -> io::Result<Arc<Workers>> {
        let mut workers = WORKERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(workers) = workers.as_ref() {
            return Ok(workers.clone());
        }
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let started = Arc::new(Workers::start(count)?);
        *workers = Some(started.clone());
        Ok(started)
    }

    fn start(count: usize) -> io::Result<Workers> {
        let mut workers = Vec::with_capacity(count);
        for n in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
            workers.push(Worker {
                handle,
                load: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Workers { workers })
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

    fn least_loaded(&self) -> Option<usize> {
        (0..self.workers.len()).min_by_key(|&i| self.workers[i].load.load(Ordering::Relaxed))
    }
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
    fn there_is_a_thread_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(Workers::get().unwrap().workers.len(), cores);
    }
}
