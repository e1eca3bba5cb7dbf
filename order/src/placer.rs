//! Group commit for placements. Appends to the feed are serialized by design (commit order is
//! position order), so one transaction per order caps the rate at one commit's latency. Instead
//! one writer task takes every placement waiting at that moment, writes them all at once with
//! one multi-row feed append, commits once, and answers each. On Postgres that is a single
//! statement, one round trip, on a connection the writer keeps; on SQLite one transaction. An
//! order is answered only after it committed. A placement already handed to the writer is
//! written even if its client has gone away meanwhile (its commit is shared with others); a
//! retry under the same Idempotency-Key then finds that order.
//!
//! More writers were measured and lost: on Postgres their batches serialize at the feed append
//! anyway, and smaller batches cost more per order (two cores, 16 clients: 4 writers 3 400/s,
//! 2 writers 4 900–6 800/s, one 6 000–7 000/s, before the writer kept its connection).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::db::{Backend, Binds, Db};
use common::feed::{NewEntry, Publisher, Writes};
use common::Clock;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};
use tokio::sync::{mpsc, oneshot};

use crate::catalog::Catalog;
use crate::model::{IdempotencyKey, NewOrder, Order};
use crate::service::{self, Placed};
use crate::store::{self, NewKey};
use crate::Error;

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

/// What the writer is sent: a placement, or a request to say when every placement sent
/// before it has been written.
// `Drained` is sent once, at stop: boxing the placements instead would allocate for each.
#[allow(clippy::large_enum_variant)]
enum Message {
    Place(Job),
    Drained(oneshot::Sender<()>),
}

/// Hands placements to the writer task. The task ends when the last `Placer` is dropped.
#[derive(Clone)]
pub struct Placer {
    jobs: mpsc::Sender<Message>,
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
    pub fn start(writer: Writer) -> Result<Placer, Error> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        common::http::spawn_on_writer_thread(writer.run(queue))
            .map_err(|e| common::Error::Config(e.to_string()))?;
        Ok(Placer { jobs })
    }

    /// Places one order, in whichever transaction the writer puts it.
    pub async fn place(&self, placement: Placement) -> Result<Placed, Error> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::WriterStopped;
        self.jobs
            .send(Message::Place(Job { placement, reply }))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Returns once every placement handed to the writer before this call has been written
    /// (or failed), so that the database can be closed: a placement whose request went away
    /// while it waited is still written, and must not find the pool closed.
    pub async fn drained(&self) {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Message::Drained(done)).await.is_ok() {
            // An error means the writer has stopped: nothing is left to write.
            let _ = wait.await;
        }
    }
}

impl Writer {
    /// Waits for a placement, takes every other one waiting and writes them together.
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut held = Held::default();
        while let Some(first) = queue.recv().await {
            let mut drained = None;
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Place(job) => batch.push(job),
                    // Placements sent after it wait for the next batch.
                    Message::Drained(done) => {
                        drained = Some(done);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.write(&mut batch, &mut held).await;
            }
            if let Some(done) = drained {
                let _ = done.send(());
            }
        }
    }

    /// Writes `jobs` in one transaction and answers each; `jobs` is empty afterwards.
    async fn write(&self, jobs: &mut Vec<Job>, held: &mut Held) {
        match self.write_together(jobs, held).await {
            Ok(results) => {
                for (job, result) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                // The connection may be what failed: the next statement takes another.
                held.reset();
                // A statement failed and took the transaction with it; nothing was committed.
                // One by one, a bad placement fails alone (and a Postgres race on a new
                // idempotency key is retried).
                if jobs.len() > 1 {
                    tracing::warn!(error = %e, placements = jobs.len(), "group commit failed; writing one by one");
                }
                for job in jobs.drain(..) {
                    let result = self.write_alone(&job, held).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    async fn write_together(
        &self,
        jobs: &[Job],
        held: &mut Held,
    ) -> Result<Vec<Result<Placed, Error>>, Error> {
        if self.db.backend() == Backend::Postgres {
            if let Some(results) = self.write_in_one_statement(jobs, held).await? {
                return Ok(results);
            }
        }
        self.write_in_transaction(jobs).await
    }

    /// Every write in one transaction: the orders, their lines, keys and feed entries.
    async fn write_in_transaction(
        &self,
        jobs: &[Job],
    ) -> Result<Vec<Result<Placed, Error>>, Error> {
        let mut tx = self.db.begin_write().await?;
        let now_us = self.clock.now().timestamp_micros();
        let mut batch = self.decide(tx.conn(), jobs, now_us).await?;
        let ids = store::allocate_ids(tx.conn(), self.db.backend(), batch.orders.len()).await?;
        batch.number(ids);
        store::insert_all(tx.conn(), &batch.orders, now_us).await?;
        let keys = batch.new_keys();
        store::remember_keys(tx.conn(), &keys, now_us).await?;
        let entries: Vec<NewEntry> = batch.orders.iter().map(service::entry).collect();
        let results = batch.results(tx.conn()).await?;
        self.feed.append(tx, &entries).await?.commit().await?;
        log_placed(&results);
        Ok(results)
    }

    /// Postgres: the orders, lines, keys and feed entries in one statement that commits on its
    /// own (a transaction took nine round trips: begin, ids, orders, lines, lock, last entry,
    /// entries, notify, commit). Under load that statement also draws the ids of the next
    /// batch ([`Spare`]); otherwise one statement before it draws them. `None` (nothing
    /// written) when the batch is too big for one statement.
    async fn write_in_one_statement(
        &self,
        jobs: &[Job],
        held: &mut Held,
    ) -> Result<Option<Vec<Result<Placed, Error>>>, Error> {
        let conn = match &mut held.conn {
            Some(conn) => conn,
            none => none.insert(self.db.pool().acquire().await?),
        };
        let now_us = self.clock.now().timestamp_micros();
        let mut batch = self.decide(conn, jobs, now_us).await?;
        let n = batch.orders.len();
        let now = Instant::now();
        let mut ids = held.spare.take(n, now);
        if ids.len() < n {
            ids.extend(store::allocate_ids(conn, Backend::Postgres, n - ids.len()).await?);
        }
        batch.number(ids);
        if n > 0 {
            let keys = batch.new_keys();
            let (ctes, params, first) = store::inserts_as_ctes(&batch.orders, &keys);
            let draw = store::draw_ids_sql(params + 1);
            let writes = Writes {
                ctes: &ctes,
                params: params + 1,
                first: &first,
                returning: Some(&draw),
            };
            let entries: Vec<NewEntry> = batch.orders.iter().map(service::entry).collect();
            let Some(sql) = Publisher::append_alone_sql(&writes, entries.len()) else {
                // The ids taken are dropped (a gap): the transaction draws its own, and these
                // used later would commit below them.
                return Ok(None);
            };
            let wanted = held.spare.wanted(n, now);
            let query = store::bind_inserts(sqlx::query_as(&sql), &batch.orders, &keys, now_us)
                .push(wanted as i64);
            let drawn = self.feed.append_alone(conn, query, &entries).await?;
            held.spare.put(store::drawn_ids(drawn.as_deref())?, now);
        }
        let results = batch.results(conn).await?;
        log_placed(&results);
        Ok(Some(results))
    }

    /// Decides every placement of `jobs` (refusals write nothing) against the keys stored
    /// before; the new orders have no ids yet.
    async fn decide<'j>(
        &self,
        conn: &mut AnyConnection,
        jobs: &'j [Job],
        now_us: i64,
    ) -> Result<Batch<'j>, Error> {
        let keys: Vec<&str> = jobs
            .iter()
            .filter_map(|j| j.placement.key.as_ref().map(IdempotencyKey::as_str))
            .collect();
        let mut known: HashMap<&str, (&str, Target)> = HashMap::new();
        let stored = store::idempotency_keys(conn, &keys).await?;
        let stored: HashMap<&str, (&str, i64)> = stored
            .iter()
            .map(|(k, (h, id))| (k.as_str(), (h.as_str(), *id)))
            .collect();
        let mut plans = Vec::with_capacity(jobs.len());
        let mut orders = Vec::with_capacity(jobs.len());
        for job in jobs {
            let p = &job.placement;
            let key = p.key.as_ref().map(IdempotencyKey::as_str);
            let seen = key.and_then(|k| {
                known
                    .get(k)
                    .copied()
                    .or_else(|| stored.get(k).map(|(hash, id)| (*hash, Target::Stored(*id))))
            });
            if let Some((hash, target)) = seen {
                plans.push(if hash == p.hash {
                    Plan::Replay(target)
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
                        known.insert(key, (&p.hash, Target::New(orders.len())));
                    }
                    plans.push(Plan::Create(orders.len()));
                    orders.push(order);
                }
                Err(e) => plans.push(Plan::Refused(e)),
            }
        }
        let new_keys = known
            .into_iter()
            .filter_map(|(key, (hash, target))| match target {
                Target::New(i) => Some((key, hash, i)),
                Target::Stored(_) => None,
            })
            .collect();
        Ok(Batch {
            plans,
            orders,
            new_keys,
        })
    }

    /// One placement in a transaction of its own, after a group commit failed.
    async fn write_alone(&self, job: &Job, held: &mut Held) -> Result<Placed, Error> {
        match self.write_one(job, held).await {
            // On Postgres two instances can race on one new key; the loser finds the winner's
            // row on its second try.
            Err(Error::Db(e)) if job.placement.key.is_some() && is_unique_violation(&e) => {
                held.reset();
                self.write_one(job, held).await
            }
            other => other,
        }
    }

    async fn write_one(&self, job: &Job, held: &mut Held) -> Result<Placed, Error> {
        let result = self.write_together(std::slice::from_ref(job), held).await;
        if result.is_err() {
            held.reset();
        }
        result?
            .pop()
            .unwrap_or_else(|| Err(Error::invalid("nothing was placed")))
    }
}

/// A decided batch: what each placement comes to, the orders to create, the keys to remember.
struct Batch<'j> {
    plans: Vec<Plan>,
    orders: Vec<Order>,
    /// `(key, request hash, index into orders)`.
    new_keys: Vec<(&'j str, &'j str, usize)>,
}

impl<'j> Batch<'j> {
    /// Gives the new orders their ids, in order.
    fn number(&mut self, ids: Vec<i64>) {
        for (order, id) in self.orders.iter_mut().zip(ids) {
            order.id = id;
        }
    }

    fn new_keys(&self) -> Vec<NewKey<'j>> {
        self.new_keys
            .iter()
            .map(|(key, hash, i)| (*key, *hash, self.orders[*i].id))
            .collect()
    }

    /// Each placement's answer; a replay of a stored order reads it.
    async fn results(self, conn: &mut AnyConnection) -> Result<Vec<Result<Placed, Error>>, Error> {
        let mut results = Vec::with_capacity(self.plans.len());
        for plan in self.plans {
            results.push(match plan {
                Plan::Create(i) => Ok(Placed::Created(self.orders[i].clone())),
                Plan::Replay(Target::New(i)) => Ok(Placed::Replayed(self.orders[i].clone())),
                Plan::Replay(Target::Stored(id)) => store::by_id(conn, id)
                    .await?
                    .map(Placed::Replayed)
                    .ok_or_else(|| Error::NotFound(format!("order {id} not found"))),
                Plan::Refused(e) => Err(e),
            });
        }
        Ok(results)
    }
}

/// What a writer task keeps between batches (Postgres): its connection, so that its
/// statements stay prepared on one server process (the pool hands out its connections in
/// turn, and a statement new to a connection is parsed and planned again), and the ids drawn
/// for the next batch.
#[derive(Default)]
struct Held {
    conn: Option<PoolConnection<Any>>,
    spare: Spare,
}

impl Held {
    /// After a failure: another connection, and ids drawn afresh.
    fn reset(&mut self) {
        *self = Held::default();
    }
}

/// How long ids drawn ahead are used, and how recent the last batch must be for a batch to
/// draw ids ahead.
const SPARE_FOR: Duration = Duration::from_secs(1);

/// Order ids drawn ahead (Postgres). Drawing a batch's ids is a round trip of its own before
/// its statement, which cost 25–30 % of the rate with 16 clients; so while placements keep
/// coming (the last batch less than [`SPARE_FOR`] ago) each batch's statement also draws ids
/// for the next. Ids stay ascending in commit order within this writer.
/// Those left unused for [`SPARE_FOR`] are dropped, leaving a gap in the ids as a rolled-back
/// insert does, so an order's id never trails other instances' orders committed meanwhile by
/// more than that. One placement now and then draws nothing ahead and leaves no gaps.
#[derive(Debug, Default)]
struct Spare {
    ids: VecDeque<i64>,
    /// When the last batch was written.
    last: Option<Instant>,
}

impl Spare {
    fn recent(&self, now: Instant) -> bool {
        self.last
            .is_some_and(|last| now.saturating_duration_since(last) < SPARE_FOR)
    }

    /// Up to `n` ids drawn ahead, the lowest first; none if they are stale (then dropped).
    fn take(&mut self, n: usize, now: Instant) -> Vec<i64> {
        if !self.recent(now) {
            self.ids.clear();
        }
        let n = n.min(self.ids.len());
        self.ids.drain(..n).collect()
    }

    /// How many ids a batch of `n` new orders written at `now` draws for the next: enough for
    /// one twice as big (batch sizes wander; a bigger one than drawn for takes a round trip).
    fn wanted(&self, n: usize, now: Instant) -> usize {
        if self.recent(now) {
            (2 * n).min(MAX_BATCH).saturating_sub(self.ids.len())
        } else {
            0
        }
    }

    /// Keeps the ids a batch written at `now` drew.
    fn put(&mut self, ids: Vec<i64>, now: Instant) {
        self.ids.extend(ids);
        self.last = Some(now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_drawn_ahead_are_used_lowest_first_while_placements_keep_coming() {
        let start = Instant::now();
        let mut spare = Spare::default();
        // The first batch after a pause draws nothing ahead.
        assert_eq!(spare.take(3, start), Vec::<i64>::new());
        assert_eq!(spare.wanted(3, start), 0);
        spare.put(Vec::new(), start);
        // The next, soon after, draws enough for one twice as big.
        let soon = start + Duration::from_millis(5);
        assert_eq!(spare.wanted(2, soon), 4);
        spare.put(vec![10, 11, 12, 13], soon);
        let later = soon + Duration::from_millis(5);
        assert_eq!(spare.take(3, later), vec![10, 11, 12]);
        // One is left: a batch of three draws five more.
        assert_eq!(spare.wanted(3, later), 5);
        assert_eq!(spare.take(9, later), vec![13]);
        assert_eq!(spare.wanted(MAX_BATCH, later), MAX_BATCH);
    }

    #[test]
    fn ids_drawn_ahead_and_left_unused_go_stale() {
        let start = Instant::now();
        let mut spare = Spare::default();
        spare.put(vec![7, 8], start);
        let late = start + SPARE_FOR;
        assert_eq!(spare.wanted(2, late), 0, "a pause: nothing drawn ahead");
        assert_eq!(
            spare.take(2, late),
            Vec::<i64>::new(),
            "stale ids are dropped"
        );
        assert!(spare.ids.is_empty());
    }
}
