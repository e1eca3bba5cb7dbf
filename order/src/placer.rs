//! Group commit for placements. Appends to the feed are serialized by design (commit order is
//! position order), so one transaction per order caps the rate at one commit's latency. Instead
//! one writer task takes every placement waiting at that moment, writes them all in one
//! transaction with one multi-row feed append, commits once, and answers each. An order is
//! answered only after its transaction committed, exactly as before. A placement already handed
//! to the writer is written even if its client has gone away meanwhile (its transaction is shared
//! with others); a retry under the same Idempotency-Key then finds that order.

use std::collections::HashMap;
use std::sync::Arc;

use common::db::Db;
use common::feed::{NewEntry, Publisher};
use common::Clock;
use tokio::sync::{mpsc, oneshot};

use crate::catalog::Catalog;
use crate::model::{IdempotencyKey, NewOrder};
use crate::service::{self, Placed};
use crate::{store, Error};

/// Most placements in one transaction: bounds a transaction's size and a batch's latency.
const MAX_BATCH: usize = 256;
/// Placements that may wait for the writer before senders wait too (backpressure).
const QUEUE: usize = 4 * MAX_BATCH;

/// A validated placement with its idempotency key and the hash of its request.
#[derive(Debug)]
pub struct Placement {
    pub new: NewOrder,
    pub key: Option<IdempotencyKey>,
    /// SHA-256 of the canonical request: a key reused with another body is refused.
    pub hash: String,
}

struct Job {
    placement: Placement,
    reply: oneshot::Sender<Result<Placed, Error>>,
}

/// Hands placements to the writer task. The task ends when the last `Placer` is dropped.
#[derive(Clone)]
pub struct Placer {
    jobs: mpsc::Sender<Job>,
}

/// What the writer writes with.
#[derive(Clone)]
pub struct Writer {
    pub db: Db,
    pub feed: Publisher,
    pub clock: Clock,
    pub catalog: Arc<Catalog>,
}

impl Placer {
    pub fn start(writer: Writer) -> Placer {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(writer.run(queue));
        Placer { jobs }
    }

    /// Places one order, in whichever transaction the writer puts it.
    pub async fn place(&self, placement: Placement) -> Result<Placed, Error> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::WriterStopped;
        self.jobs
            .send(Job { placement, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = queue.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.write(&mut batch).await;
        }
    }

    /// Writes `jobs` in one transaction and answers each; `jobs` is empty afterwards.
    async fn write(&self, jobs: &mut Vec<Job>) {
        match self.write_together(jobs).await {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                // A statement failed and took the transaction with it; nothing was committed.
                // One by one, a bad placement fails alone (and a Postgres race on a new
                // idempotency key is retried).
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, placements = jobs.len(), "group commit failed; writing one by one");
                }
                for job in jobs.drain(..) {
                    let result = self.write_alone(&job).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    async fn write_together(&self, jobs: &[Job]) -> Result<Vec<Result<Placed, Error>>, Error> {
        let mut tx = self.db.begin_write().await?;
        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.placement.key.as_ref().map(IdempotencyKey::as_str))
            .collect();
        let mut known: HashMap<&str, (&str, Target)> = HashMap::new();
        let stored = store::idempotency_keys(tx.conn(), &keys).await?;
        for (key, (hash, order_id)) in &stored {
            known.insert(key, (hash, Target::Stored(*order_id)));
        }
        // Decide every placement first; refusals write nothing.
        let now_us = self.clock.now().timestamp_micros();
        let mut plans = Vec::with_capacity(jobs.len());
        let mut new_orders = Vec::with_capacity(jobs.len());
        for job in jobs {
            let p = &job.placement;
            let key = p.key.as_ref().map(IdempotencyKey::as_str);
            if let Some((hash, target)) = key.and_then(|k| known.get(k)) {
                plans.push(if *hash == p.hash {
                    Plan::Replay(*target)
                } else {
                    Plan::Refused(Error::invalid(format!(
                        "Idempotency-Key {:?} was already used with a different request",
                        key.unwrap_or_default()
                    )))
                });
                continue;
            }
            match service::new_order(&self.catalog, &p.new, now_us) {
                Ok(order) => {
                    if let Some(key) = key {
                        known.insert(key, (&p.hash, Target::New(new_orders.len())));
                    }
                    plans.push(Plan::Create(new_orders.len()));
                    new_orders.push(order);
                }
                Err(e) => plans.push(Plan::Refused(e)),
            }
        }
        let ids = store::allocate_ids(tx.conn(), self.db.backend(), new_orders.len()).await?;
        for (order, id) in new_orders.iter_mut().zip(ids) {
            order.id = id;
        }
        store::insert_all(tx.conn(), &new_orders, now_us).await?;
        let new_keys: Vec<(&str, &str, i64)> = known
            .iter()
            .filter_map(|(key, (hash, target))| match target {
                Target::New(i) => Some((*key, *hash, new_orders[*i].id)),
                Target::Stored(_) => None,
            })
            .collect();
        store::remember_keys(tx.conn(), &new_keys, now_us).await?;
        let mut results = Vec::with_capacity(plans.len());
        for plan in plans {
            results.push(match plan {
                Plan::Create(i) => Ok(Placed::Created(new_orders[i].clone())),
                Plan::Replay(Target::New(i)) => Ok(Placed::Replayed(new_orders[i].clone())),
                Plan::Replay(Target::Stored(id)) => store::by_id(tx.conn(), id)
                    .await?
                    .map(Placed::Replayed)
                    .ok_or_else(|| Error::NotFound(format!("order {id} not found"))),
                Plan::Refused(e) => Err(e),
            });
        }
        let entries: Vec<NewEntry> = new_orders.iter().map(service::entry).collect();
        self.feed.append(tx, &entries).await?.commit().await?;
        log_placed(&results);
        Ok(results)
    }

    /// One placement in a transaction of its own, after a group commit failed.
    async fn write_alone(&self, job: &Job) -> Result<Placed, Error> {
        let once = || async {
            let mut results = self.write_together(std::slice::from_ref(job)).await?;
            results
                .pop()
                .unwrap_or_else(|| Err(Error::invalid("nothing was placed")))
        };
        match once().await {
            // On Postgres two instances can race on one new key; the loser finds the winner's
            // row on its second try.
            Err(Error::Db(e)) if job.placement.key.is_some() && is_unique_violation(&e) => {
                once().await
            }
            other => other,
        }
    }
}

/// Which order an idempotency key stands for.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// One committed before.
    Stored(i64),
    /// One created in this transaction (index into its new orders).
    New(usize),
}

/// What one placement of a group commit comes to.
enum Plan {
    Create(usize),
    Replay(Target),
    Refused(Error),
}

fn log_placed(results: &[Result<Placed, Error>]) {
    for result in results {
        if let Ok(Placed::Created(order)) = result {
            tracing::info!(
                order_id = order.id,
                total_cents = order.total_cents,
                "order placed"
            );
        }
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
