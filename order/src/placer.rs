//! Group commit for placements. Appends to the feed are serialized by design (commit order is
//! position order), so one transaction per order caps the rate at one commit's latency. Instead
//! one writer task takes every placement waiting at that moment, writes them all in one
//! transaction with one multi-row feed append, commits once, and answers each. An order is
//! answered only after its transaction committed, exactly as before.

use std::sync::Arc;

use common::db::{Db, WriteTx};
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
        let gone = || Error::Common(common::Error::Feed("the order writer has stopped".into()));
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
                    let result = self.write_alone(&job.placement).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    async fn write_together(&self, jobs: &[Job]) -> Result<Vec<Result<Placed, Error>>, Error> {
        let mut tx = self.db.begin_write().await?;
        let mut results = Vec::with_capacity(jobs.len());
        let mut entries = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.write_one(&mut tx, &job.placement).await {
                Ok((placed, entry)) => {
                    entries.extend(entry);
                    results.push(Ok(placed));
                }
                // Refused before writing anything of its own: the others go on.
                Err(e @ (Error::Invalid(_) | Error::NotFound(_))) => results.push(Err(e)),
                Err(e) => return Err(e),
            }
        }
        self.commit(tx, &entries).await?;
        log_placed(&results);
        Ok(results)
    }

    async fn write_alone(&self, placement: &Placement) -> Result<Placed, Error> {
        let once = async {
            let mut tx = self.db.begin_write().await?;
            let (placed, entry) = self.write_one(&mut tx, placement).await?;
            self.commit(tx, entry.as_slice()).await?;
            Ok(placed)
        };
        let result = match once.await {
            // On Postgres two instances can race on one new key; the loser finds the winner's
            // row on its second try.
            Err(Error::Db(e)) if placement.key.is_some() && is_unique_violation(&e) => {
                let mut tx = self.db.begin_write().await?;
                let (placed, entry) = self.write_one(&mut tx, placement).await?;
                self.commit(tx, entry.as_slice()).await?;
                Ok(placed)
            }
            other => other,
        };
        log_placed(std::slice::from_ref(&result));
        result
    }

    async fn commit(&self, mut tx: WriteTx, entries: &[NewEntry]) -> Result<(), Error> {
        match self.feed.append_all(&mut tx, entries).await? {
            Some(appended) => self.feed.commit(tx, appended).await?,
            None => tx.commit().await?,
        }
        Ok(())
    }

    /// Writes one placement in `tx` and returns it with the feed entry to append (none for a
    /// replay). Refusals happen before anything is written.
    async fn write_one(
        &self,
        tx: &mut WriteTx,
        p: &Placement,
    ) -> Result<(Placed, Option<NewEntry>), Error> {
        if let Some(key) = &p.key {
            if let Some((stored_hash, order_id)) =
                store::idempotency_key(tx.conn(), key.as_str()).await?
            {
                if stored_hash != p.hash {
                    return Err(Error::invalid(format!(
                        "Idempotency-Key {:?} was already used with a different request",
                        key.as_str()
                    )));
                }
                let order = store::by_id(tx.conn(), order_id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("order {order_id} not found")))?;
                return Ok((Placed::Replayed(order), None));
            }
        }
        let now_us = self.clock.now().timestamp_micros();
        let mut order = service::new_order(&self.catalog, &p.new, now_us)?;
        order.id = store::insert(tx.conn(), &order, now_us).await?;
        if let Some(key) = &p.key {
            store::remember_key(tx.conn(), key.as_str(), &p.hash, order.id, now_us).await?;
        }
        let entry = service::entry(&order);
        Ok((Placed::Created(order), Some(entry)))
    }
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
