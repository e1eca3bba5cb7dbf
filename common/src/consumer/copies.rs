//! The common kind of local copy, declared instead of written: one row per aggregate guarded
//! by its version, with child rows (lines) replaced together with it. A service describes its
//! tables and maps a details document to values ([`Versioned`]); [`Copies`] is then its
//! [`Projection`] and reads the copies back for the API.

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::{Outcome, Projection};
use crate::db::{
    keep_prepared, list_placeholders, rows_per_statement, values_placeholders, Backend, Db,
};
use crate::http::PageQuery;
use crate::service::ServiceState;
use crate::Error;

/// Longest text stored from a details document, in bytes.
pub const MAX_TEXT: usize = 1000;

/// A value bound into a statement (what sqlx's `Any` driver stores: integers and text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Value<'a> {
        Value::Text(std::borrow::Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(s: &'a String) -> Value<'a> {
        Value::Text(std::borrow::Cow::Borrowed(s))
    }
}

impl From<i64> for Value<'_> {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

/// An enum stored as its serde name (`"placed"`): the name to store.
pub fn variant_name<T: Serialize>(value: &T) -> Value<'static> {
    let name = match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    };
    Value::Text(std::borrow::Cow::Owned(name))
}

/// A stored column and the field of the copy's JSON it holds (a dotted path for nested
/// objects: `customer.customerId`). A column whose name ends in `_us` holds a time in
/// microseconds and shows as RFC 3339 text.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub field: &'static str,
}

/// Shorthand for [`Column`] in table declarations.
pub const fn col(name: &'static str, field: &'static str) -> Column {
    Column { name, field }
}

/// The tables of a versioned copy, which say both how to store a copy and how to read it
/// back as JSON. The copy table has the key column first and a `version` column (field
/// `version`) after it; the line table the key column and `line_no`, and its rows are the
/// copy's `lines` array.
#[derive(Debug, Clone, Copy)]
pub struct Tables {
    /// The copies, e.g. `invoices`; also the collection's name in URLs.
    pub copies: &'static str,
    /// The aggregate's id, e.g. `order_id` shown as `orderId`.
    pub key: Column,
    /// The other columns of a copy, in the order [`Versioned::row`] gives their values.
    pub columns: &'static [Column],
    /// The child rows, e.g. `invoice_lines`.
    pub lines: &'static str,
    /// The other columns of a line, in the order [`Versioned::lines`] gives their values.
    pub line_columns: &'static [Column],
    /// How the API names one copy and its key in messages: `invoice`, `order`.
    pub noun: &'static str,
    pub key_noun: &'static str,
}

fn names(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored row as the JSON object its columns describe.
fn to_json(row: &AnyRow, columns: &[Column]) -> Result<serde_json::Value, sqlx::Error> {
    let mut object = serde_json::Value::Object(Default::default());
    for c in columns {
        let value = match sqlx::Row::try_get::<i64, _>(row, c.name) {
            Ok(us) if c.name.ends_with("_us") => {
                crate::clock::rfc3339(crate::clock::from_micros(us)).into()
            }
            Ok(i) => i.into(),
            Err(_) => serde_json::Value::String(column(row, c.name)?),
        };
        let mut at = &mut object;
        let mut path = c.field.split('.').peekable();
        while let Some(part) = path.next() {
            let map = at
                .as_object_mut()
                .ok_or_else(|| decode(c.name, "not an object"))?;
            if path.peek().is_none() {
                map.insert(part.to_owned(), value);
                break;
            }
            at = map
                .entry(part)
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
    }
    Ok(object)
}

fn decode(column: &str, why: impl std::fmt::Display) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: why.to_string().into(),
    }
}

/// A copy from its row and its lines (in `line_no` order).
fn read<V: Versioned>(row: &AnyRow, lines: &[AnyRow]) -> Result<V::Copy, sqlx::Error> {
    let t = V::TABLES;
    let mut columns = vec![t.key, col("version", "version")];
    columns.extend_from_slice(t.columns);
    let mut copy = to_json(row, &columns)?;
    let lines = lines
        .iter()
        .map(|l| to_json(l, t.line_columns))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(object) = copy.as_object_mut() {
        object.insert("lines".into(), lines.into());
    }
    serde_json::from_value(copy).map_err(|e| decode(t.copies, e))
}

/// A details document that describes one version of one aggregate.
pub trait Document {
    /// The aggregate's id and version (both at least 1).
    fn identity(&self) -> (i64, i64);
    /// Refuses documents that parse but make no sense; the entry is parked with the reason.
    fn check(&self) -> Result<(), String>;
}

/// A service's versioned copy: which tables, which details, and the mapping both ways.
pub trait Versioned: Send + Sync + 'static {
    /// The details document as this service reads it.
    type Details: Document + DeserializeOwned + Send + Sync + 'static;
    /// The copy as the API shows it, read back from its columns (see [`Tables`]).
    type Copy: Serialize + DeserializeOwned + Send + Sync + 'static;

    const TABLES: Tables;

    /// Values of [`Tables::columns`].
    fn row(details: &Self::Details) -> Vec<Value<'_>>;
    /// Values of [`Tables::line_columns`], one vector per line.
    fn lines(details: &Self::Details) -> Vec<Vec<Value<'_>>>;
}

/// The projection that keeps `V`'s copies.
pub struct Copies<V>(std::marker::PhantomData<fn() -> V>);

impl<V> Default for Copies<V> {
    fn default() -> Self {
        Copies(std::marker::PhantomData)
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    v: &'q Value<'q>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match v {
        Value::Int(i) => q.bind(*i),
        Value::Text(t) => q.bind(t.as_ref()),
    }
}

impl<V: Versioned> Projection for Copies<V> {
    type Details = V::Details;

    fn check(&self, details: &V::Details) -> Result<(), String> {
        let (key, version) = details.identity();
        let noun = V::TABLES.key_noun;
        if key < 1 || version < 1 {
            return Err(format!("{noun} id {key} / version {version} out of range"));
        }
        details.check()?;
        // Every stored text is bounded, whatever the service stores.
        let row = V::row(details);
        let lines = V::lines(details);
        let too_long = |v: &Value| matches!(v, Value::Text(t) if t.len() > MAX_TEXT);
        if row.iter().chain(lines.iter().flatten()).any(too_long) {
            return Err(format!(
                "{noun} {key}: a text field is longer than {MAX_TEXT} bytes"
            ));
        }
        Ok(())
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        batch: &[&V::Details],
    ) -> Result<Vec<Outcome>, sqlx::Error> {
        let t = V::TABLES;
        let backend = Backend::of(conn);
        // Within the batch only the highest version of each aggregate is written; the others
        // are stale already.
        let mut newest: HashMap<i64, usize> = HashMap::new();
        for (i, d) in batch.iter().enumerate() {
            let best = newest.entry(key_of::<V>(d)).or_insert(i);
            if version_of::<V>(batch[*best]) < version_of::<V>(d) {
                *best = i;
            }
        }
        let mut winners: Vec<usize> = newest.into_values().collect();
        winners.sort_unstable();
        // The versions kept of the winners' aggregates, read first: which copies will change,
        // and which exist at all (a new copy has no old lines to delete), are known before
        // writing, so the writes return nothing. Rows streamed back by `RETURNING` cost a
        // message between sqlx's SQLite worker and the task each; this read returns only the
        // copies that exist, none during a first catch-up.
        let keys: Vec<i64> = winners.iter().map(|&i| key_of::<V>(batch[i])).collect();
        let kept = versions::<V>(conn, &keys).await?;
        let written: Vec<&V::Details> = winners
            .iter()
            .map(|&i| batch[i])
            .filter(|d| {
                kept.get(&key_of::<V>(d))
                    .is_none_or(|&v| v < version_of::<V>(d))
            })
            .collect();
        let width = t.columns.len() + 2;
        let updates: Vec<String> = std::iter::once("version")
            .chain(t.columns.iter().map(|c| c.name))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        // An older (or the same) version never overwrites what is kept (guarded here too,
        // whatever was read above).
        let upsert = |rows: usize| {
            format!(
                "INSERT INTO {copies} ({key}, version, {columns}) VALUES {values} \
                 ON CONFLICT ({key}) DO UPDATE SET {updates} \
                 WHERE {copies}.version < excluded.version",
                copies = t.copies,
                key = t.key.name,
                columns = names(t.columns),
                values = values_placeholders(backend, rows, width),
                updates = updates.join(", "),
            )
        };
        for chunk in written.chunks(rows_per_statement(width)) {
            let sql = upsert(chunk.len());
            let rows: Vec<Vec<Value>> = chunk.iter().map(|d| V::row(d)).collect();
            let mut q = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), width));
            for (d, row) in chunk.iter().zip(&rows) {
                q = q.bind(key_of::<V>(d)).bind(version_of::<V>(d));
                for v in row {
                    q = bind(q, v);
                }
            }
            q.execute(&mut *conn).await?;
        }
        let applied: HashSet<i64> = written.iter().map(|d| key_of::<V>(d)).collect();
        let replaced: Vec<i64> = written
            .iter()
            .map(|d| key_of::<V>(d))
            .filter(|k| kept.contains_key(k))
            .collect();
        replace_lines::<V>(conn, &replaced, &written).await?;
        Ok(batch
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if applied.contains(&key_of::<V>(d)) && winners.binary_search(&i).is_ok() {
                    Outcome::Applied
                } else {
                    Outcome::Stale
                }
            })
            .collect())
    }

    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for table in [V::TABLES.lines, V::TABLES.copies] {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    fn describe(d: &V::Details) -> String {
        let t = V::TABLES;
        format!(
            "{} {} version {}",
            t.key_noun,
            key_of::<V>(d),
            version_of::<V>(d)
        )
    }
}

fn key_of<V: Versioned>(d: &V::Details) -> i64 {
    d.identity().0
}

fn version_of<V: Versioned>(d: &V::Details) -> i64 {
    d.identity().1
}

/// The version kept of each of `keys` that has a copy.
async fn versions<V: Versioned>(
    conn: &mut AnyConnection,
    keys: &[i64],
) -> Result<HashMap<i64, i64>, sqlx::Error> {
    let t = V::TABLES;
    let backend = Backend::of(conn);
    let mut kept = HashMap::new();
    for chunk in keys.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT {key}, version FROM {copies} WHERE {key} IN ({list})",
            key = t.key.name,
            copies = t.copies,
            list = list_placeholders(backend, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(&sql).persistent(keep_prepared(chunk.len(), 1));
        for k in chunk {
            q = q.bind(*k);
        }
        kept.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(kept)
}

/// The lines of the copies just written (`written`) replace the old ones of those that
/// existed before (`replaced`).
async fn replace_lines<V: Versioned>(
    conn: &mut AnyConnection,
    replaced: &[i64],
    written: &[&V::Details],
) -> Result<(), sqlx::Error> {
    let t = V::TABLES;
    let backend = Backend::of(conn);
    for chunk in replaced.chunks(rows_per_statement(1)) {
        let sql = format!(
            "DELETE FROM {} WHERE {} IN ({})",
            t.lines,
            t.key.name,
            list_placeholders(backend, chunk.len())
        );
        let mut q = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), 1));
        for k in chunk {
            q = q.bind(*k);
        }
        q.execute(&mut *conn).await?;
    }
    let lines: Vec<(i64, i64, Vec<Value>)> = written
        .iter()
        .flat_map(|d| {
            V::lines(d)
                .into_iter()
                .enumerate()
                .map(|(no, values)| (key_of::<V>(d), no as i64, values))
        })
        .collect();
    let width = t.line_columns.len() + 2;
    for chunk in lines.chunks(rows_per_statement(width)) {
        let sql = format!(
            "INSERT INTO {} ({}, line_no, {}) VALUES {}",
            t.lines,
            t.key.name,
            names(t.line_columns),
            values_placeholders(backend, chunk.len(), width)
        );
        let mut q = sqlx::query(&sql).persistent(keep_prepared(chunk.len(), width));
        for (key, no, values) in chunk {
            q = q.bind(*key).bind(*no);
            for v in values {
                q = bind(q, v);
            }
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl<V: Versioned> Copies<V> {
    fn select() -> String {
        let t = V::TABLES;
        format!(
            "SELECT {}, version, {} FROM {}",
            t.key.name,
            names(t.columns),
            t.copies
        )
    }

    fn select_lines() -> String {
        let t = V::TABLES;
        format!(
            "SELECT {}, line_no, {} FROM {}",
            t.key.name,
            names(t.line_columns),
            t.lines
        )
    }

    /// Copies with keys below `before`, highest key first.
    pub async fn list(db: &Db, before: i64, limit: i64) -> Result<Vec<V::Copy>, Error> {
        let t = V::TABLES;
        let sql = format!(
            "{} WHERE {key} < $1 ORDER BY {key} DESC LIMIT $2",
            Self::select(),
            key = t.key.name
        );
        let rows = sqlx::query(&sql)
            .bind(before)
            .bind(limit)
            .fetch_all(db.pool())
            .await?;
        let key_of = |r: &AnyRow| sqlx::Row::try_get::<i64, _>(r, 0);
        let (Some(max), Some(min)) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        let (max, min) = (key_of(max)?, key_of(min)?);
        let sql = format!(
            "{} WHERE {key} >= $1 AND {key} <= $2 ORDER BY {key} DESC, line_no",
            Self::select_lines(),
            key = t.key.name
        );
        let lines = sqlx::query(&sql)
            .bind(min)
            .bind(max)
            .fetch_all(db.pool())
            .await?;
        let mut lines = lines.into_iter().peekable();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let key = key_of(&row)?;
            let mut own = Vec::new();
            while let Some(line) = lines.peek() {
                match key_of(line)? {
                    k if k > key => {
                        lines.next();
                    }
                    k if k == key => own.extend(lines.next()),
                    _ => break,
                }
            }
            out.push(read::<V>(&row, &own)?);
        }
        Ok(out)
    }

    /// The copy of aggregate `key`, if there is one.
    pub async fn get(db: &Db, key: i64) -> Result<Option<V::Copy>, Error> {
        let t = V::TABLES;
        let sql = format!("{} WHERE {} = $1", Self::select(), t.key.name);
        let Some(row) = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(db.pool())
            .await?
        else {
            return Ok(None);
        };
        let sql = format!(
            "{} WHERE {} = $1 ORDER BY line_no",
            Self::select_lines(),
            t.key.name
        );
        let lines = sqlx::query(&sql).bind(key).fetch_all(db.pool()).await?;
        Ok(Some(read::<V>(&row, &lines)?))
    }
}

/// Reading a stored column by name, with the column named in the error.
pub fn column<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Row::try_get(row, name)
}

/// `GET /{copies}` (paged, highest key first) and `GET /{copies}/{key}` as JSON, relative
/// to the service's prefix (the table name is the collection's name in the URL).
pub fn routes<V: Versioned>() -> Router<ServiceState<Copies<V>>> {
    let t = V::TABLES;
    Router::new()
        .route(&format!("/{}", t.copies), get(list::<V>))
        .route(&format!("/{}/{{key}}", t.copies), get(show::<V>))
}

async fn list<V: Versioned>(
    State(state): State<ServiceState<Copies<V>>>,
    Query(page): Query<PageQuery>,
) -> Result<Response, Response> {
    let page = page.parse().map_err(IntoResponse::into_response)?;
    let copies = Copies::<V>::list(&state.db, page.before, page.limit)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok(Json(copies).into_response())
}

async fn show<V: Versioned>(
    State(state): State<ServiceState<Copies<V>>>,
    Path(key): Path<i64>,
) -> Result<Response, Error> {
    let t = V::TABLES;
    let copy = Copies::<V>::get(&state.db, key)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no {} for {} {key}", t.noun, t.key_noun)))?;
    Ok(Json(copy).into_response())
}
