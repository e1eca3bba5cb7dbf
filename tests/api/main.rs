//! Integration tests: real services on port 0, real HTTP, a fresh database per test.
//! Set `TEST_DATABASE_URL=postgres://…` to run them all on Postgres.

mod all_in_one;
mod bad_input;
mod check;
mod check_lab;
mod consumer_helpers;
mod consumers;
mod crash;
mod deployment;
mod example_sales;
mod fault_proxy;
mod feed_conditional;
mod feed_format;
mod feed_identity;
mod feed_ordering;
mod feed_schema;
mod foreign_feed;
mod helpers;
mod hostile_feed;
mod instances;
mod logs;
mod long_poll;
mod metrics;
mod openapi;
mod orders;
mod outage;
mod process;
mod readers;
mod rebuild;
mod representations;
mod tail;
mod ui;
