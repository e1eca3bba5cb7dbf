//! `feedline tail URL`: follows any feed live and prints each new entry as it commits.
//!
//! The consumer library does the reading: [`FeedClient`] (one origin, bounded requests,
//! conditional GETs, `Prefer: wait` long polls) and the consumer's page parser (any valid
//! RFC 4287/5005 feed). What is new is what has not been printed: the walk back through
//! `prev-archive` goes as far as the newest entry printed, as a consumer's does to its
//! checkpoint, but in memory.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::time::Duration;

use common::consumer::client::{Conditional, Fetched, Validators, Waited};
use common::consumer::{page, Backoff, ClientLimits, FeedClient, FeedEntry, FeedPage, FetchError};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::Error;

/// `feedline tail`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// The feed's subscription document (its head), over http or https.
    pub url: String,
    /// Print the whole feed first, from its oldest archive page.
    #[arg(long)]
    pub from_start: bool,
    /// Entries of the head printed at the start (without --from-start).
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    pub lines: usize,
    /// One JSON object per entry and line (NDJSON).
    #[arg(long)]
    pub json: bool,
    /// Longest long poll asked of the server (Prefer: wait).
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wait: Duration,
    /// Between polls when the server does not long-poll.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub interval: Duration,
}

/// Revisions remembered as printed; older ones are forgotten first.
const MAX_REMEMBERED: usize = 100_000;

/// Pages walked back at most from the head to the newest entry printed.
const MAX_WALK: usize = 10_000;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(200),
    max: Duration::from_secs(10),
};

/// Follows the feed until `shutdown`; output goes to `out`.
pub async fn run(
    args: &TailArgs,
    shutdown: CancellationToken,
    out: &mut dyn Write,
) -> Result<(), Error> {
    // Ctrl-C ends it at once, whatever it is waiting for (a long poll, a slow page, a
    // backoff); each line is written whole, so nothing is cut.
    tokio::select! {
        _ = shutdown.cancelled() => Ok(()),
        result = follow(args, &shutdown, out) => result,
    }
}

async fn follow(
    args: &TailArgs,
    shutdown: &CancellationToken,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let url = crate::check::parse_url(&args.url)?;
    let client = FeedClient::new(&url, ClientLimits::default())?;
    let mut tail = Tail {
        client,
        url: url.clone(),
        printed: Printed::default(),
        feed_id: None,
        json: args.json,
    };
    let head = match tail.client.page(&url, &Validators::default()).await {
        Ok(Conditional::Modified(f)) => f,
        Ok(Conditional::NotModified) => return Err(unasked_304(&url)),
        Err(e) => return Err(fetch_error(&url, e)),
    };
    let mut validators = head.validators.clone();
    tail.start(head, args, out).await?;

    let mut failures = 0;
    loop {
        let waited = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            w = tail.client.wait_for_change(&url, &validators, args.wait) => w,
        };
        let changed = match waited {
            Ok(Waited::Changed(f)) => Some(f),
            Ok(Waited::Unchanged) => None,
            Ok(Waited::Unsupported) => {
                // No long polling here: poll on an interval instead.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(args.interval) => {}
                }
                match tail.client.page(&url, &validators).await {
                    Ok(Conditional::Modified(f)) => Some(f),
                    Ok(Conditional::NotModified) => None,
                    Err(e) => {
                        failures += 1;
                        tail.failed(&e, failures, shutdown).await?;
                        continue;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                tail.failed(&e, failures, shutdown).await?;
                continue;
            }
        };
        failures = 0;
        if let Some(head) = changed {
            let next = head.validators.clone();
            match tail.changed(head, out).await {
                Ok(()) => validators = next,
                Err(Error::Unreachable { reason, .. }) => {
                    failures += 1;
                    tail.failed(&FetchError::Transient(reason), failures, shutdown)
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

struct Tail {
    client: FeedClient,
    url: Url,
    printed: Printed,
    /// The feed's `atom:id`: another one at the same URL is another feed.
    feed_id: Option<String>,
    json: bool,
}

impl Tail {
    async fn start(
        &mut self,
        head: Fetched,
        args: &TailArgs,
        out: &mut dyn Write,
    ) -> Result<(), Error> {
        let head = self.parse(&head)?;
        if args.from_start {
            // Walk to the oldest page, remembering only where each page is, then print
            // forwards; archives are immutable, so fetching them again is safe (and cached).
            let mut urls = Vec::new();
            let mut prev = head.prev_archive.clone();
            while let Some(url) = prev {
                if urls.contains(&url) || urls.len() >= MAX_WALK {
                    break;
                }
                prev = self.fetch(&url).await?.prev_archive;
                urls.push(url);
            }
            for url in urls.iter().rev() {
                let page = self.fetch(url).await?;
                self.print(&page.entries, out)?;
            }
            self.print(&head.entries, out)?;
        } else {
            let skip = head.entries.len().saturating_sub(args.lines);
            self.print(&head.entries[skip..], out)?;
            self.printed.remember(&head.entries[..skip]);
        }
        Ok(())
    }

    /// The head changed: prints what is new, walking back as far as the newest entry printed.
    async fn changed(&mut self, head: Fetched, out: &mut dyn Write) -> Result<(), Error> {
        let mut pages = vec![self.parse(&head)?];
        let mut visited = HashSet::new();
        while let Some(top) = pages.last() {
            if top.entries.iter().any(|e| self.printed.is_newest(e)) || pages.len() >= MAX_WALK {
                break;
            }
            let Some(prev) = top.prev_archive.clone() else {
                if self.printed.newest.is_some() {
                    eprintln!(
                        "feedline tail: {}: the newest entry printed is no longer in the feed; printing every entry not printed yet",
                        self.url
                    );
                }
                break;
            };
            if !visited.insert(prev.clone()) {
                break;
            }
            pages.push(self.fetch(&prev).await?);
        }
        for page in pages.iter().rev() {
            self.print(&page.entries, out)?;
        }
        Ok(())
    }

    async fn fetch(&mut self, url: &Url) -> Result<FeedPage, Error> {
        let mut attempt = 0;
        loop {
            match self.client.page(url, &Validators::default()).await {
                Ok(Conditional::Modified(f)) => return self.parse(&f),
                Ok(Conditional::NotModified) => return Err(unasked_304(url)),
                Err(FetchError::Transient(reason)) if attempt < 5 => {
                    attempt += 1;
                    eprintln!("feedline tail: {reason}; retrying");
                    tokio::time::sleep(BACKOFF.delay(attempt)).await;
                }
                Err(e) => return Err(fetch_error(url, e)),
            }
        }
    }

    fn parse(&mut self, fetched: &Fetched) -> Result<FeedPage, Error> {
        let page = page::parse(&fetched.url, &fetched.body).map_err(|reason| Error::NotAFeed {
            url: fetched.url.to_string(),
            reason,
        })?;
        match &self.feed_id {
            Some(id) if *id != page.feed_id => Err(Error::OtherFeed {
                url: fetched.url.to_string(),
                expected: id.clone(),
                found: page.feed_id,
            }),
            Some(_) => Ok(page),
            None => {
                self.feed_id = Some(page.feed_id.clone());
                Ok(page)
            }
        }
    }

    /// Prints the entries (oldest first) not printed yet.
    fn print(&mut self, entries: &[FeedEntry], out: &mut dyn Write) -> Result<(), Error> {
        for e in entries {
            if !self.printed.insert(e) {
                continue;
            }
            let line = if self.json {
                line_json(e)
            } else {
                line_text(e)
            };
            writeln!(out, "{line}")?;
        }
        out.flush()?;
        Ok(())
    }

    /// A failure while following: a line on stderr and a backoff; permanent ones end it.
    async fn failed(
        &self,
        e: &FetchError,
        attempt: u32,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        match e {
            FetchError::Permanent(_) => Err(fetch_error(&self.url, e.clone())),
            FetchError::Transient(reason) => {
                let delay = BACKOFF.delay(attempt);
                eprintln!(
                    "feedline tail: {reason}; retrying in {} ms",
                    delay.as_millis()
                );
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(delay) => {}
                }
                Ok(())
            }
        }
    }
}

/// A failed GET of `url` as the error that ends the tail.
fn fetch_error(url: &Url, e: FetchError) -> Error {
    match e {
        FetchError::Transient(reason) => Error::Unreachable {
            url: url.to_string(),
            reason,
        },
        FetchError::Permanent(reason) => Error::NotAFeed {
            url: url.to_string(),
            reason,
        },
    }
}

fn unasked_304(url: &Url) -> Error {
    Error::NotAFeed {
        url: url.to_string(),
        reason: "304 to an unconditional GET".into(),
    }
}

fn updated(e: &FeedEntry) -> String {
    common::clock::rfc3339(common::clock::from_micros(e.updated_us))
}

fn line_text(e: &FeedEntry) -> String {
    let categories = if e.categories.is_empty() {
        "-".to_owned()
    } else {
        e.categories.join(",")
    };
    let link = e.link.as_ref().map_or("-".to_owned(), Url::to_string);
    format!("{}  {categories}  {}  {link}", updated(e), e.id)
}

fn line_json(e: &FeedEntry) -> String {
    serde_json::json!({
        "id": e.id,
        "updated": updated(e),
        "categories": e.categories,
        "link": e.link.as_ref().ok().map(Url::as_str),
    })
    .to_string()
}

/// The revisions printed, bounded, and the newest of them.
#[derive(Default)]
struct Printed {
    set: HashSet<(String, i64)>,
    order: VecDeque<(String, i64)>,
    newest: Option<(String, i64)>,
}

impl Printed {
    /// False when `e` was printed already.
    fn insert(&mut self, e: &FeedEntry) -> bool {
        let key = (e.id.clone(), e.updated_us);
        if !self.set.insert(key.clone()) {
            return false;
        }
        if self.newest.as_ref().is_none_or(|(_, t)| e.updated_us >= *t) {
            self.newest = Some(key.clone());
        }
        self.order.push_back(key);
        if self.order.len() > MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    /// Counts `entries` as printed without printing them.
    fn remember(&mut self, entries: &[FeedEntry]) {
        for e in entries {
            self.insert(e);
        }
    }

    fn is_newest(&self, e: &FeedEntry) -> bool {
        self.newest
            .as_ref()
            .is_some_and(|(id, t)| e.is_revision(id, *t))
    }
}
