//! Which consumer instance may apply entries.
//!
//! On Postgres, several instances of one consumer may run against one database: a lease row
//! names the holder until an expiry (database time, so clocks of different machines do not
//! matter); the holder renews it, and when it stops renewing another instance takes over.
//! Each takeover increments a fencing number; every apply transaction re-checks it while
//! locking the lease row, so a stale holder's write is refused even if it has not noticed.
//! On SQLite one instance per database file is enforced by an exclusive file lock instead.

use std::fs::File;
use std::time::Duration;

use serde::Serialize;
use sqlx::AnyConnection;
use tokio::sync::watch;

use crate::db::{Backend, Db};
use crate::Error;

/// Microseconds on the database's clock (Postgres only).
const DB_NOW_US: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT";

pub struct Lease {
    db: Db,
    /// This instance's name in the lease row.
    holder: String,
    ttl: Duration,
    /// The fencing number while this instance holds the lease.
    fence: watch::Sender<Option<i64>>,
    /// Held open for the life of the instance on SQLite: the OS releases it even on a crash.
    _file_lock: Option<File>,
}

/// The lease as `/consumer` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseReport {
    pub holder: String,
    pub active: bool,
    pub fence: Option<i64>,
}

impl Lease {
    pub fn new(db: Db, name: &str, ttl: Duration) -> Result<Lease, Error> {
        let holder = format!(
            "{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        let mut file_lock = None;
        let mut fence = None;
        if db.backend() == Backend::Sqlite {
            if let Some(path) = db.sqlite_path() {
                let lock_path = path.with_extension("consumer-lock");
                let file = File::create(&lock_path).map_err(|e| {
                    Error::Config(format!(
                        "cannot create lock file {}: {e}",
                        lock_path.display()
                    ))
                })?;
                file.try_lock().map_err(|_| {
                    Error::Config(format!(
                        "another {name} instance is running on {}: SQLite supports one \
                         instance per database; use Postgres to run several",
                        path.display()
                    ))
                })?;
                file_lock = Some(file);
            }
            fence = Some(0);
        }
        Ok(Lease {
            db,
            holder,
            ttl,
            fence: watch::Sender::new(fence),
            _file_lock: file_lock,
        })
    }

    pub fn fence(&self) -> Option<i64> {
        *self.fence.borrow()
    }

    pub fn changes(&self) -> watch::Receiver<Option<i64>> {
        self.fence.subscribe()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn report(&self) -> LeaseReport {
        LeaseReport {
            holder: self.holder.clone(),
            active: self.fence().is_some(),
            fence: self.fence(),
        }
    }

    /// Renews the lease if held, else tries to take it over. Returns whether it is held.
    pub async fn tick(&self) -> Result<bool, Error> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(true);
        }
        let ttl_us = self.ttl.as_micros() as i64;
        if let Some(fence) = self.fence() {
            let renewed = sqlx::query(&format!(
                "UPDATE consumer_lease SET expires_us = {DB_NOW_US} + $1 \
                 WHERE id = 1 AND holder = $2 AND fence = $3"
            ))
            .bind(ttl_us)
            .bind(&self.holder)
            .bind(fence)
            .execute(self.db.pool())
            .await?;
            if renewed.rows_affected() == 1 {
                return Ok(true);
            }
            tracing::warn!(holder = %self.holder, fence, "lease lost to another instance");
            self.fence.send_replace(None);
        }
        let taken = sqlx::query(&format!(
            "UPDATE consumer_lease SET holder = $1, fence = fence + 1, expires_us = {DB_NOW_US} + $2 \
             WHERE id = 1 AND (expires_us < {DB_NOW_US} OR holder = '')"
        ))
        .bind(&self.holder)
        .bind(ttl_us)
        .execute(self.db.pool())
        .await?;
        if taken.rows_affected() == 1 {
            let (fence,): (i64,) = sqlx::query_as("SELECT fence FROM consumer_lease WHERE id = 1")
                .fetch_one(self.db.pool())
                .await?;
            tracing::info!(holder = %self.holder, fence, "lease acquired; this instance applies entries");
            self.fence.send_replace(Some(fence));
            return Ok(true);
        }
        Ok(false)
    }

    /// Inside an apply transaction: locks the lease row and checks the fence, so that no
    /// takeover can slip in before this transaction commits.
    pub async fn check(&self, conn: &mut AnyConnection) -> Result<(), Error> {
        if self.db.backend() == Backend::Sqlite {
            return Ok(());
        }
        let fence = self
            .fence()
            .ok_or_else(|| Error::Fenced("this instance holds no lease".into()))?;
        let held = sqlx::query(
            "UPDATE consumer_lease SET fence = fence WHERE id = 1 AND holder = $1 AND fence = $2",
        )
        .bind(&self.holder)
        .bind(fence)
        .execute(conn)
        .await?;
        if held.rows_affected() == 1 {
            Ok(())
        } else {
            self.fence.send_replace(None);
            Err(Error::Fenced(format!(
                "fence {fence} is stale: another instance took over the lease"
            )))
        }
    }

    /// Gives the lease up at shutdown so another instance takes over at once.
    pub async fn release(&self) {
        if self.db.backend() == Backend::Sqlite || self.fence().is_none() {
            return;
        }
        let released =
            sqlx::query("UPDATE consumer_lease SET expires_us = 0 WHERE id = 1 AND holder = $1")
                .bind(&self.holder)
                .execute(self.db.pool())
                .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "cannot release the lease; it will expire");
        }
        self.fence.send_replace(None);
    }
}
