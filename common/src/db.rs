//! One database handle for both backends.
//!
//! We use sqlx's `Any` driver: one code path and one set of queries serve SQLite (the embedded
//! default) and Postgres (production). Queries use `$1` placeholders, which both drivers accept.
//! The few places where the backends differ (migrations, write serialization, advisory locks)
//! branch on [`Backend`].

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::Error;

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend `conn` talks to.
    pub fn of(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name().eq_ignore_ascii_case("postgresql") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        }
    }
}

/// The migrations of one schema, one folder per backend because the DDL differs.
pub struct Migrations {
    pub sqlite: Migrator,
    pub postgres: Migrator,
}

/// A cloneable pool plus what we need to know about its backend.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Kept for connections outside the pool (Postgres LISTEN).
    url: Arc<str>,
    backend: Backend,
    /// SQLite allows one writer at a time and fails rather than waits when a reading transaction
    /// tries to upgrade to a writer. Serializing our own writers in-process avoids both busy
    /// retries and `SQLITE_BUSY_SNAPSHOT`; `busy_timeout` still covers other processes.
    sqlite_writer: Arc<Mutex<()>>,
}

/// A write transaction. On SQLite it also holds the in-process writer lock until it ends.
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    /// The connection to run statements on.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). SQLite files and their folder are
    /// created when missing.
    pub async fn connect(url: &str) -> Result<Db, Error> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Config(format!(
                "unsupported DATABASE_URL {url:?}: expected sqlite://… or postgres://…"
            )));
        };
        let mut url = url.to_owned();
        let mut max_connections = 10;
        if backend == Backend::Sqlite {
            if url.contains(":memory:") {
                // Every connection to `sqlite::memory:` is a different database.
                max_connections = 1;
            } else {
                ensure_sqlite_parent(&url)?;
                if !url.contains("mode=") {
                    url.push(if url.contains('?') { '&' } else { '?' });
                    url.push_str("mode=rwc");
                }
            }
        }
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| Error::Config(format!("invalid DATABASE_URL: {e}")))?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // Not a ping before each use: that is a round trip per statement (to SQLite's
            // worker thread, to the Postgres server), a fifth of the order service's CPU when
            // serving stored archive pages. A connection that died is found by the statement
            // that uses it, which fails like any database error (the caller retries or
            // answers 503) and the pool drops that connection.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers proceed while a writer commits; NORMAL sync is
                        // durable across application crashes (only power loss can drop the
                        // last transactions, never corrupt the file).
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            "PRAGMA synchronous=NORMAL",
                            "PRAGMA busy_timeout=10000",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| Error::Connect(redact(&url), e))?;
        Ok(Db {
            pool,
            url: Arc::from(url.as_str()),
            backend,
            sqlite_writer: Arc::new(Mutex::new(())),
        })
    }

    /// Applies the migrations for this backend. Several migration sets may share a database
    /// (a service's own and those of `common`), so each ignores versions it does not know.
    pub async fn migrate(&self, migrations: Migrations) -> Result<(), Error> {
        let mut migrator = match self.backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database file, for SQLite files (not `:memory:`).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite || self.url.contains(":memory:") {
            return None;
        }
        let path = self
            .url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        Some(path.split('?').next().unwrap_or(path).into())
    }

    /// A dedicated Postgres connection listening on `channel`; `None` on SQLite.
    pub async fn listen(&self, channel: &str) -> Result<Option<sqlx::postgres::PgListener>, Error> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.url)
            .await
            .map_err(|e| Error::Connect(redact(&self.url), e))?;
        listener.listen(channel).await?;
        Ok(Some(listener))
    }

    /// Starts a transaction that will write.
    pub async fn begin_write(&self) -> Result<WriteTx, Error> {
        let writer = match self.backend {
            Backend::Sqlite => Some(self.sqlite_writer.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        let tx = self.pool.begin().await?;
        Ok(WriteTx {
            tx,
            _writer: writer,
        })
    }

    /// True when the database answers and the migrations in `migrations` are applied.
    pub async fn ready(&self, migrations: &Migrations) -> bool {
        let expected = match self.backend {
            Backend::Sqlite => &migrations.sqlite,
            Backend::Postgres => &migrations.postgres,
        };
        let applied: Result<Vec<(i64,)>, _> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_all(&self.pool)
                .await;
        match applied {
            Ok(rows) => expected
                .iter()
                .all(|m| rows.iter().any(|(v,)| *v == m.version)),
            Err(_) => false,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn ensure_sqlite_parent(url: &str) -> Result<(), Error> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if let Some(parent) = Path::new(path).parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::Config(format!("cannot create database folder {parent:?}: {e}"))
            })?;
        }
    }
    Ok(())
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Most parameters Postgres takes in one statement (the protocol counts them in 16 bits).
pub const POSTGRES_MAX_PARAMS: usize = 65_535;

/// What both kinds of sqlx query have in common: binding the next parameter. Lets one function
/// bind a row's values whether the statement returns rows or not.
pub trait Binds<'q>: Sized {
    fn push<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>;
}

impl<'q> Binds<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    fn push<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
    {
        self.bind(value)
    }
}

impl<'q, O> Binds<'q> for sqlx::query::QueryAs<'q, Any, O, sqlx::any::AnyArguments<'q>> {
    fn push<T>(self, value: T) -> Self
    where
        T: 'q + sqlx::Encode<'q, Any> + sqlx::Type<Any>,
    {
        self.bind(value)
    }
}

/// Parameters per multi-row statement, at most: a consumer batch of 256 entries takes a few
/// statements per table (SQLite allows 32 766 parameters, Postgres 65 535). (On SQLite, multi-row statements use anonymous `?` parameters: sqlx
/// looks up each named `$N` by a linear scan of the statement's parameter list, so binding
/// named ones costs the square of their count; a profile of a catch-up found 13 % of the
/// consumer's time there.)
pub const MAX_PARAMS_PER_STATEMENT: usize = 2048;

/// Rows of `cols` columns per multi-row statement (see [`MAX_PARAMS_PER_STATEMENT`]).
pub const fn rows_per_statement(cols: usize) -> usize {
    let rows = MAX_PARAMS_PER_STATEMENT / cols;
    if rows == 0 {
        1
    } else {
        rows
    }
}

/// Whether a multi-row statement of `rows` rows of `cols` parameters is worth keeping prepared
/// (sqlx caches prepared statements per connection): a full chunk recurs, the remainder's
/// size rarely does, and each kept statement of a few thousand parameters holds hundreds of
/// KB of compiled program.
pub const fn keep_prepared(rows: usize, cols: usize) -> bool {
    rows == rows_per_statement(cols)
}

/// `($1, $2), ($3, $4), …` (Postgres) or `(?, ?), (?, ?), …` (SQLite): placeholders for a
/// multi-row `VALUES` of `rows` rows of `cols` columns, the statement's only parameters.
pub fn values_placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    values_placeholders_from(backend, 1, rows, cols)
}

/// [`values_placeholders`] numbered from `first` (Postgres): for a statement whose first
/// `first - 1` parameters are others.
pub fn values_placeholders_from(
    backend: Backend,
    first: usize,
    rows: usize,
    cols: usize,
) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            push_param(&mut sql, backend, first + r * cols + c);
        }
        sql.push(')');
    }
    sql
}

/// `$1, $2, …` or `?, ?, …`: placeholders for an `IN (…)` list, the statement's only
/// parameters.
pub fn list_placeholders(backend: Backend, n: usize) -> String {
    let mut sql = String::with_capacity(n * 5);
    for i in 1..=n {
        if i > 1 {
            sql.push_str(", ");
        }
        push_param(&mut sql, backend, i);
    }
    sql
}

fn push_param(sql: &mut String, backend: Backend, n: usize) {
    match backend {
        Backend::Postgres => {
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        Backend::Sqlite => sql.push('?'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        let pg = Backend::Postgres;
        assert_eq!(values_placeholders(pg, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(list_placeholders(pg, 3), "$1, $2, $3");
        assert_eq!(values_placeholders(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(list_placeholders(Backend::Sqlite, 2), "?, ?");
    }
}
