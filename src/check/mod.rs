//! `feedline check URL`: is this feed safe to poll?
//!
//! Runs against any publisher over HTTP and reports, per check, pass / warn / fail with the
//! spec section and what was seen. The checks are about what makes polling lose entries or
//! cost too much: the document (RFC 4287), the archive chain (RFC 5005), conditional GET and
//! caching (RFC 9110, RFC 9111), and with `--writes` what a poller sees while entries arrive.
//!
//! Layout: [`probe`] sends the requests, [`outline`] reads what a page holds, [`document`],
//! [`chain`], [`conditional`] and [`writes`] hold the checks, [`report`] the table and JSON.

mod chain;
mod conditional;
mod document;
mod outline;
mod probe;
pub mod report;
mod writes;

use std::time::Duration;

use common::consumer::FeedPage;
use url::Url;

use crate::error::Error;
pub use report::{Finding, Report, Status};

use outline::Outline;
use probe::{Answer, Probe};

/// `feedline check`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The feed's subscription document (its head), over http or https.
    pub url: String,
    /// Print the report as JSON (for CI) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A shell command that adds one entry to the feed (a curl POST, say). Enables the checks
    /// that watch entries arrive; it is run a few times (at most twenty).
    #[arg(long, value_name = "COMMAND")]
    pub writes: Option<String>,
    /// Most archive pages walked back from the head.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_pages: usize,
    /// How long a new entry may take to show on the head (a cache in front may delay it).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub settle: Duration,
}

/// One fetched feed page, read two ways: structurally (what it holds) and as a consumer reads
/// it (entries, links); the second may refuse a page the first accepts.
#[derive(Debug, Clone)]
pub struct Page {
    pub answer: Answer,
    pub outline: Outline,
    pub parsed: Result<FeedPage, String>,
}

impl Page {
    /// `Err` when the answer is not a feed page at all.
    fn read(answer: Answer) -> Result<Page, String> {
        if answer.status != 200 {
            return Err(format!("HTTP {}", answer.status));
        }
        let outline = outline::read(&answer.body).map_err(|reason| {
            let ct = answer.header("content-type").unwrap_or("no Content-Type");
            format!("{reason} ({ct}, {} bytes)", answer.body.len())
        })?;
        let parsed = common::consumer::page::parse(&answer.url, &answer.body);
        Ok(Page {
            answer,
            outline,
            parsed,
        })
    }

    fn url(&self) -> &Url {
        &self.answer.url
    }
}

/// Runs every check against the feed at `args.url`.
pub async fn run(args: &CheckArgs) -> Result<Report, Error> {
    let url = parse_url(&args.url)?;
    // Long enough for a long poll of a few seconds and a slow archive page.
    let probe = Probe::new(Duration::from_secs(15))?;
    let head = fetch_head(&probe, &url).await?;
    let chain = chain::walk(&probe, head.clone(), args.max_pages).await;
    let mut findings = document::check(&probe, &chain).await;
    findings.extend(chain::check(&probe, &chain).await?);
    findings.extend(conditional::check(&probe, &head).await?);
    findings.extend(match &args.writes {
        Some(command) => writes::check(&probe, &head, command, args.settle).await?,
        None => writes::skipped(),
    });
    Ok(Report::new(url.to_string(), findings))
}

/// `Err` with a one-line reason unless `raw` is an absolute http(s) URL.
pub fn parse_url(raw: &str) -> Result<Url, Error> {
    let url = Url::parse(raw).map_err(|e| Error::Usage(format!("{raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(Error::Usage(format!(
            "{raw:?} is not an http(s) URL with a host"
        )));
    }
    Ok(url)
}

/// The head, unconditionally; anything but an Atom feed ends the run.
async fn fetch_head(probe: &Probe, url: &Url) -> Result<Page, Error> {
    let answer = probe.get(url, &[]).await?;
    Page::read(answer).map_err(|reason| Error::NotAFeed {
        url: url.to_string(),
        reason,
    })
}

/// The `Cache-Control` directives of an answer, lower-cased, all header lines together.
fn cache_control(answer: &Answer) -> Vec<(String, Option<String>)> {
    answer
        .headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|d| {
            let d = d.trim().to_ascii_lowercase();
            if d.is_empty() {
                return None;
            }
            Some(match d.split_once('=') {
                Some((k, v)) => (
                    k.trim().to_owned(),
                    Some(v.trim().trim_matches('"').to_owned()),
                ),
                None => (d, None),
            })
        })
        .collect()
}

/// `max-age` in seconds, if given and a number.
fn max_age(directives: &[(String, Option<String>)]) -> Option<u64> {
    directives
        .iter()
        .find(|(k, _)| k == "max-age")
        .and_then(|(_, v)| v.as_deref()?.parse().ok())
}

fn has(directives: &[(String, Option<String>)], name: &str) -> bool {
    directives.iter().any(|(k, _)| k == name)
}

/// At most `n` items joined, with how many more there were.
fn sample<T: std::fmt::Display>(items: &[T], n: usize) -> String {
    let shown: Vec<String> = items.iter().take(n).map(|i| i.to_string()).collect();
    let more = items.len().saturating_sub(n);
    if more > 0 {
        format!("{} (and {more} more)", shown.join("; "))
    } else {
        shown.join("; ")
    }
}
