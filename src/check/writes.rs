//! With `--writes`: what a poller sees while entries arrive. The traps of this pattern live
//! here: a `304` that hides an entry committed within the second of a poll (dates have
//! one-second resolution), and entries that appear below ones a reader has already passed.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::consumer::FeedPage;

use super::report::Check;
use super::{Finding, Page, Probe};
use crate::error::Error;

pub const SAME_SECOND: Check = Check {
    id: "same-second",
    title: "An entry within the second of a poll is not hidden",
    spec: "RFC 9110 §8.8.2, §13.1.3",
};
pub const ON_TOP: Check = Check {
    id: "new-on-top",
    title: "New entries never appear below seen ones",
    spec: "RFC 4287 §4.2.15, RFC 5005 §4.2",
};

/// Tries at landing a write within the same wall-clock second as the poll before it.
const ATTEMPTS: usize = 10;

/// Longest a `--writes` command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Between two conditional polls while waiting for the new entry.
const POLL_EVERY: Duration = Duration::from_millis(200);

pub fn skipped() -> Vec<Finding> {
    let why = "needs --writes COMMAND";
    vec![SAME_SECOND.skip(why), ON_TOP.skip(why)]
}

/// A conditional poll as one kind of client sends it.
struct Variant {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    /// When the new entry showed, and the page it showed on.
    seen: Option<(Duration, FeedPage)>,
    not_modified: usize,
}

pub async fn check(
    probe: &Probe,
    head: &Page,
    command: &str,
    settle: Duration,
) -> Result<Vec<Finding>, Error> {
    let url = head.url().clone();
    // Write, poll, write again, all within one second: the poll's date is then the second
    // of the entry that follows it.
    let mut same_second = false;
    let mut polled = None;
    for _ in 0..ATTEMPTS {
        start_of_next_second().await;
        run(command).await?;
        let second = whole_second(SystemTime::now());
        let answer = probe.get(&url, &[]).await?;
        let page = Page::read(answer).map_err(|reason| Error::NotAFeed {
            url: url.to_string(),
            reason,
        })?;
        run(command).await?;
        same_second = whole_second(SystemTime::now()) == second;
        polled = Some(page);
        if same_second {
            break;
        }
    }
    let Some(before) = polled else {
        return Err(Error::Usage("no attempt was made".into()));
    };
    let Ok(before_page) = &before.parsed else {
        return Ok(vec![
            SAME_SECOND.skip("the head could not be read as a consumer reads it"),
            ON_TOP.skip("the head could not be read as a consumer reads it"),
        ]);
    };
    let seen: HashSet<(String, i64)> = before_page
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.updated_us))
        .collect();
    let etag = before.answer.header("etag").map(str::to_owned);
    let date = before.answer.header("last-modified").map(str::to_owned);

    let mut variants = Vec::new();
    let mut all = Vec::new();
    if let Some(e) = &etag {
        all.push(("if-none-match", e.clone()));
    }
    if let Some(d) = &date {
        all.push(("if-modified-since", d.clone()));
    }
    variants.push(Variant {
        name: "with the validators it was given",
        headers: all,
        seen: None,
        not_modified: 0,
    });
    if let (Some(_), Some(d)) = (&etag, &date) {
        // Many readers (curl -z, feed readers) keep only the date.
        variants.push(Variant {
            name: "with If-Modified-Since alone",
            headers: vec![("if-modified-since", d.clone())],
            seen: None,
            not_modified: 0,
        });
    }

    let started = Instant::now();
    while started.elapsed() < settle && variants.iter().any(|v| v.seen.is_none()) {
        for v in variants.iter_mut().filter(|v| v.seen.is_none()) {
            let headers: Vec<(&str, &str)> =
                v.headers.iter().map(|(k, x)| (*k, x.as_str())).collect();
            let answer = probe.get(&url, &headers).await?;
            if answer.status == 304 {
                v.not_modified += 1;
                continue;
            }
            if let Ok(Page {
                parsed: Ok(page), ..
            }) = Page::read(answer)
            {
                if page
                    .entries
                    .iter()
                    .any(|e| !seen.contains(&(e.id.clone(), e.updated_us)))
                {
                    v.seen = Some((started.elapsed(), page));
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }

    let same_second_finding = same_second_finding(&variants, same_second, date.as_deref(), settle);
    let on_top = match variants.iter().find_map(|v| v.seen.as_ref()) {
        Some((_, page)) => on_top(before_page, page, &seen),
        None => ON_TOP.skip("no new entry became visible"),
    };
    Ok(vec![same_second_finding, on_top])
}

fn same_second_finding(
    variants: &[Variant],
    same_second: bool,
    date: Option<&str>,
    settle: Duration,
) -> Finding {
    let hidden: Vec<&Variant> = variants.iter().filter(|v| v.seen.is_none()).collect();
    if !hidden.is_empty() {
        let names: Vec<&str> = hidden.iter().map(|v| v.name).collect();
        return SAME_SECOND.fail(format!(
            "a new entry stayed hidden behind {} 304s for {:.0} s to a poll {} (Last-Modified {}): such a reader misses it until a later write",
            hidden[0].not_modified,
            settle.as_secs_f64(),
            names.join(" and "),
            date.unwrap_or("none")
        ));
    }
    let delays: Vec<String> = variants
        .iter()
        .filter_map(|v| {
            v.seen
                .as_ref()
                .map(|(t, _)| format!("{} after {} ms", v.name, t.as_millis()))
        })
        .collect();
    let observed = format!("the new entry showed {}", delays.join(", "));
    if same_second {
        SAME_SECOND.pass(format!("written within the poll's second; {observed}"))
    } else {
        SAME_SECOND.warn(format!(
            "no write landed within the second of a poll in {ATTEMPTS} tries (slow command?); {observed}"
        ))
    }
}

/// New entries must sort after every entry already seen (by `atom:updated`, as readers
/// order them), or a reader that stopped at its newest entry never looks at them.
fn on_top(before: &FeedPage, after: &FeedPage, seen: &HashSet<(String, i64)>) -> Finding {
    let newest_seen = before.entries.iter().map(|e| e.updated_us).max();
    let new: Vec<_> = after
        .entries
        .iter()
        .filter(|e| !seen.contains(&(e.id.clone(), e.updated_us)))
        .collect();
    let below: Vec<String> = new
        .iter()
        .filter(|e| newest_seen.is_some_and(|n| e.updated_us < n))
        .map(|e| {
            format!(
                "{} at {}",
                e.id,
                common::clock::rfc3339(common::clock::from_micros(e.updated_us))
            )
        })
        .collect();
    if below.is_empty() {
        ON_TOP.pass(format!(
            "new entries: {}, all at or after the newest one seen",
            new.len()
        ))
    } else {
        ON_TOP.fail(format!(
            "new entries dated before ones already seen: {}",
            super::sample(&below, 3)
        ))
    }
}

/// Runs `command` with `sh -c`, bounded in time; its output is discarded unless it fails.
async fn run(command: &str) -> Result<(), Error> {
    let failed = |reason: String| Error::Writes {
        command: command.to_owned(),
        reason,
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child)
        .await
        .map_err(|_| {
            failed(format!(
                "still running after {} s",
                COMMAND_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| failed(e.to_string()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or("").trim();
    Err(failed(format!(
        "{}{}",
        output.status,
        if first.is_empty() {
            String::new()
        } else {
            format!(": {first}")
        }
    )))
}

fn whole_second(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sleeps until just after the next second starts, so a poll and a write fit in one second.
async fn start_of_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into = Duration::from_nanos(u64::from(now.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into + Duration::from_millis(5)).await;
}
