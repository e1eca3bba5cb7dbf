//! The feed pattern, shared by every Feedline service.
//!
//! # Layout
//! - [`db`]: one database handle over SQLite or Postgres (sqlx `Any`), migrations, writes.
//! - [`feed`]: publishing an Atom feed with RFC 5005 archives and conditional GET.
//! - [`consumer`]: consuming any such feed exactly once in effect, with a [`consumer::Projection`].
//! - [`http`]: problem+json errors, middleware, serving with graceful shutdown, idle
//!   connections and long polls held outside hyper (woken polls answered there too).
//! - [`metrics`]: Prometheus registries and request metrics, one registry per service.
//! - [`clock`]: time as a dependency, and how times are stored.
//! - [`config`]: parsing shared configuration values (durations).
//! - [`telemetry`]: `tracing` set-up; log lines written in batches by a thread of their own.
//! - [`service`]: a whole consumer service from its [`service::Domain`] (config, routes, run).
//! - [`allocator`]: jemalloc for every binary, memory given back when idle.
//! - [`ui`]: the HTML pages' shell, the consumer panel, and pages for versioned copies.

pub mod allocator;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod db;
mod error;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod service;
pub mod telemetry;
pub mod ui;

pub use clock::Clock;
pub use error::Error;

/// A crate's own migrations, from its `migrations/sqlite` and `migrations/postgres` folders
/// (resolved against the crate that invokes the macro).
#[macro_export]
macro_rules! migrations {
    () => {
        $crate::db::Migrations {
            sqlite: ::sqlx::migrate!("./migrations/sqlite"),
            postgres: ::sqlx::migrate!("./migrations/postgres"),
        }
    };
}

/// The tables of a feed publisher (`feed_entries`, `feed_meta`).
pub fn publisher_migrations() -> db::Migrations {
    db::Migrations {
        sqlite: sqlx::migrate!("./migrations/publisher/sqlite"),
        postgres: sqlx::migrate!("./migrations/publisher/postgres"),
    }
}

/// The tables of a feed consumer (checkpoint, handled entries, parked entries).
pub fn consumer_migrations() -> db::Migrations {
    db::Migrations {
        sqlite: sqlx::migrate!("./migrations/consumer/sqlite"),
        postgres: sqlx::migrate!("./migrations/consumer/postgres"),
    }
}
