//! Conditional GET and caching of the head (RFC 9110 §13, RFC 9111), and long polling.

use std::time::Duration;

use super::report::Check;
use super::{cache_control, has, max_age, Finding, Page, Probe};
use crate::error::Error;

pub const VALIDATORS: Check = Check {
    id: "validators",
    title: "Validators on the head",
    spec: "RFC 9110 §8.8",
};
pub const NOT_MODIFIED: Check = Check {
    id: "not-modified",
    title: "304 without a body for the current validators",
    spec: "RFC 9110 §13.1.2, §15.4.5",
};
pub const PRECEDENCE: Check = Check {
    id: "precedence",
    title: "If-None-Match before If-Modified-Since",
    spec: "RFC 9110 §13.2.2",
};
pub const STALE: Check = Check {
    id: "stale-validators",
    title: "Stale validators answered 200",
    spec: "RFC 9110 §13.1.1, §13.1.3",
};
pub const HEAD_CACHING: Check = Check {
    id: "head-caching",
    title: "Head revalidated, not kept",
    spec: "RFC 9111 §5.2.2",
};
pub const LONG_POLL: Check = Check {
    id: "long-poll",
    title: "Long polling",
    spec: "RFC 7240 §4.3",
};

/// An entity tag no server hands out.
const STALE_ETAG: &str = "\"feedline-check-stale\"";

/// A change between two requests makes a 200 right; the probe is repeated this often.
const ATTEMPTS: usize = 3;

/// The seconds of `Prefer: wait` asked for.
const WAIT_SECS: u64 = 2;

/// The validators of a head answer.
struct Current {
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Current {
    fn of(page: &Page) -> Current {
        Current {
            etag: page.answer.header("etag").map(str::to_owned),
            last_modified: page.answer.header("last-modified").map(str::to_owned),
        }
    }
}

pub async fn check(probe: &Probe, head: &Page) -> Result<Vec<Finding>, Error> {
    let url = head.url().clone();
    let mut current = Current::of(head);
    let validators = match (&current.etag, &current.last_modified) {
        (Some(e), Some(lm)) => VALIDATORS.pass(format!("ETag {e}, Last-Modified {lm}")),
        (Some(e), None) => VALIDATORS.pass(format!("ETag {e}")),
        (None, Some(lm)) => VALIDATORS.warn(format!(
            "Last-Modified {lm} only: one-second resolution, so entries within a second rely on the server's care"
        )),
        (None, None) => {
            let why = "no ETag nor Last-Modified on the head";
            return Ok(vec![
                VALIDATORS.fail(format!("{why}: every poll downloads the whole head")),
                NOT_MODIFIED.skip(why),
                PRECEDENCE.skip(why),
                STALE.skip(why),
                head_caching(head),
                LONG_POLL.skip(why),
            ]);
        }
    };

    // 304 for what the head just said, retried when the feed moved on in between.
    let mut not_modified = None;
    for _ in 0..ATTEMPTS {
        let headers = conditional_headers(&current);
        let a = probe.get(&url, &as_refs(&headers)).await?;
        match a.status {
            304 if a.body.is_empty() => {
                not_modified =
                    Some(NOT_MODIFIED.pass(format!("304, no body, for {}", names(&headers))));
                break;
            }
            304 => {
                not_modified =
                    Some(NOT_MODIFIED.fail(format!("304 with a {}-byte body", a.body.len())));
                break;
            }
            200 if a.header("etag") == current.etag.as_deref()
                && a.header("last-modified") == current.last_modified.as_deref() =>
            {
                not_modified = Some(NOT_MODIFIED.warn(format!(
                    "200 ({} bytes) for the current validators: every poll downloads the whole head",
                    a.body.len()
                )));
                break;
            }
            200 => {
                current = Current {
                    etag: a.header("etag").map(str::to_owned),
                    last_modified: a.header("last-modified").map(str::to_owned),
                }
            }
            s => {
                not_modified = Some(NOT_MODIFIED.fail(format!("HTTP {s} to a conditional GET")));
                break;
            }
        }
    }
    let not_modified = not_modified.unwrap_or_else(|| {
        NOT_MODIFIED.skip(format!("the head changed on each of {ATTEMPTS} attempts"))
    });

    let mut findings = vec![validators, not_modified];
    findings.push(precedence(probe, head, &current).await?);
    findings.push(stale(probe, head, &current).await?);
    findings.push(head_caching(head));
    findings.push(long_poll(probe, head, &current).await?);
    Ok(findings)
}

/// RFC 9110 §13.2.2: with If-None-Match present, If-Modified-Since is ignored. A server that
/// lets a current date win over a stale tag hides the entries the tag would have revealed.
async fn precedence(probe: &Probe, head: &Page, current: &Current) -> Result<Finding, Error> {
    let (Some(etag), Some(lm)) = (&current.etag, &current.last_modified) else {
        return Ok(PRECEDENCE.skip("needs both ETag and Last-Modified"));
    };
    let url = head.url();
    let stale_tag = probe
        .get(
            url,
            &[("if-none-match", STALE_ETAG), ("if-modified-since", lm)],
        )
        .await?;
    if stale_tag.status == 304 {
        return Ok(PRECEDENCE.fail(format!(
            "304 to If-None-Match {STALE_ETAG} with a current If-Modified-Since: the date won"
        )));
    }
    let old_date = "Thu, 01 Jan 1970 00:00:01 GMT";
    let current_tag = probe
        .get(
            url,
            &[("if-none-match", etag), ("if-modified-since", old_date)],
        )
        .await?;
    Ok(match current_tag.status {
        304 => PRECEDENCE
            .pass("a stale tag with a current date: 200; the current tag with an old date: 304"),
        200 if current_tag.header("etag") != Some(etag) => {
            PRECEDENCE.pass("a stale tag with a current date: 200 (the head changed meanwhile)")
        }
        s => PRECEDENCE.warn(format!(
            "the current tag with an old date: HTTP {s}, not 304 (safe, but each poll costs a body)"
        )),
    })
}

/// A validator that is not the current one must get the page.
async fn stale(probe: &Probe, head: &Page, current: &Current) -> Result<Finding, Error> {
    let url = head.url();
    let mut seen = Vec::new();
    if current.etag.is_some() {
        let a = probe.get(url, &[("if-none-match", STALE_ETAG)]).await?;
        if a.status == 304 {
            return Ok(STALE.fail(format!("304 to If-None-Match {STALE_ETAG}")));
        }
        seen.push(format!("If-None-Match {STALE_ETAG}: {}", a.status));
    }
    if let Some(lm) = current
        .last_modified
        .as_deref()
        .and_then(|lm| httpdate::parse_http_date(lm).ok())
    {
        let before = httpdate::fmt_http_date(lm - Duration::from_secs(3600));
        let a = probe.get(url, &[("if-modified-since", &before)]).await?;
        if a.status == 304 {
            return Ok(STALE.fail(format!(
                "304 to If-Modified-Since {before}, an hour before Last-Modified"
            )));
        }
        seen.push(format!("If-Modified-Since an hour earlier: {}", a.status));
    }
    Ok(STALE.pass(seen.join("; ")))
}

/// The head changes: a cache must revalidate it (no-cache, or a max-age of seconds), never
/// keep it for long.
fn head_caching(head: &Page) -> Finding {
    let cc = cache_control(&head.answer);
    let value = head.answer.header("cache-control").unwrap_or("(none)");
    let age = max_age(&cc);
    if has(&cc, "immutable") || age.is_some_and(|s| s > 60) {
        HEAD_CACHING.fail(format!(
            "Cache-Control: {value}: caches may serve an old head and hide new entries for that long"
        ))
    } else if has(&cc, "no-cache") || age.is_some_and(|s| s <= 5) {
        HEAD_CACHING.pass(format!("Cache-Control: {value}"))
    } else if cc.is_empty() {
        HEAD_CACHING.warn(
            "no Cache-Control: caches may keep the head by heuristic (a tenth of its age since Last-Modified)",
        )
    } else {
        HEAD_CACHING.warn(format!(
            "Cache-Control: {value}: the head may be up to that old"
        ))
    }
}

/// RFC 7240 `Prefer: wait`: a server that holds an unchanged conditional GET spares readers
/// their poll interval.
async fn long_poll(probe: &Probe, head: &Page, current: &Current) -> Result<Finding, Error> {
    // A change during the wait answers 200: try again with what it said, a few times.
    let mut current = Current {
        etag: current.etag.clone(),
        last_modified: current.last_modified.clone(),
    };
    let mut a = None;
    for _ in 0..ATTEMPTS {
        let mut headers = conditional_headers(&current);
        headers.push(("prefer", format!("wait={WAIT_SECS}")));
        let answer = probe.get(head.url(), &as_refs(&headers)).await?;
        if answer.status != 200 {
            a = Some(answer);
            break;
        }
        current = Current {
            etag: answer.header("etag").map(str::to_owned),
            last_modified: answer.header("last-modified").map(str::to_owned),
        };
        a = Some(answer);
    }
    let Some(a) = a else {
        return Ok(LONG_POLL.skip("no attempt was made"));
    };
    let applied = a
        .header("preference-applied")
        .unwrap_or_default()
        .to_owned();
    let held = a.elapsed.as_secs_f64();
    Ok(match a.status {
        304 if held >= WAIT_SECS as f64 * 0.75 => LONG_POLL.pass(format!(
            "supported: an unchanged head was held {held:.1} s of wait={WAIT_SECS}{}",
            if applied.is_empty() {
                String::new()
            } else {
                format!(" (Preference-Applied: {applied})")
            }
        )),
        304 => LONG_POLL.pass(format!(
            "not offered: 304 after {:.0} ms; readers poll on an interval",
            held * 1000.0
        )),
        200 => LONG_POLL.skip("the head changed during the wait"),
        s => LONG_POLL.warn(format!("HTTP {s} to Prefer: wait={WAIT_SECS}")),
    })
}

fn conditional_headers(current: &Current) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(etag) = &current.etag {
        headers.push(("if-none-match", etag.clone()));
    }
    if let Some(lm) = &current.last_modified {
        headers.push(("if-modified-since", lm.clone()));
    }
    headers
}

fn as_refs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn names(headers: &[(&'static str, String)]) -> String {
    headers
        .iter()
        .map(|(k, _)| match *k {
            "if-none-match" => "If-None-Match",
            _ => "If-Modified-Since",
        })
        .collect::<Vec<_>>()
        .join(" + ")
}
