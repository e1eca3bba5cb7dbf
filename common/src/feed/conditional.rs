//! Conditional GET (RFC 9110 §13) for the feed head, evaluated from in-memory validators only.

use axum::http::{header, HeaderMap};

/// What the server knows about the current head representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The strong entity tag, quotes included.
    pub etag: &'a str,
    /// Whole seconds of the newest entry's time; `None` for an empty feed.
    pub last_modified: Option<i64>,
    /// True when an earlier entry was committed within the same second as the newest one:
    /// then a client holding `Last-Modified: T` may have seen fewer entries than exist now.
    pub second_is_ambiguous: bool,
    /// The server's clock, whole seconds. Dates after it are invalid (RFC 9110 §13.1.3).
    pub now: i64,
}

/// True when the request's preconditions say the client already has this representation.
pub fn not_modified(headers: &HeaderMap, v: Validators<'_>) -> bool {
    // RFC 9110 §13.2.2: If-None-Match is evaluated first; when present, If-Modified-Since is
    // ignored whatever it says.
    let inm: Vec<&str> = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !inm.is_empty() {
        return inm
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .any(|tag| tag == "*" || weak_eq(tag, v.etag));
    }
    let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
    else {
        return false;
    };
    let Ok(ims) = ims.duration_since(std::time::UNIX_EPOCH) else {
        return false;
    };
    let ims = ims.as_secs() as i64;
    let Some(lm) = v.last_modified else {
        return false;
    };
    if ims > v.now {
        return false;
    }
    // Last-Modified has one-second resolution: when the newest entry shares its second with an
    // earlier one, "not modified since T" cannot be told apart from "saw only the earlier one".
    lm < ims || (lm == ims && !v.second_is_ambiguous)
}

/// Weak comparison (RFC 9110 §8.8.3.2): equal opaque tags, either or both may be weak.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const LM: i64 = 1_700_000_000;

    fn validators(ambiguous: bool) -> Validators<'static> {
        Validators {
            etag: "\"h20-5\"",
            last_modified: Some(LM),
            second_is_ambiguous: ambiguous,
            now: LM + 100,
        }
    }

    fn request(inm: Option<&str>, ims: Option<i64>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(tag) = inm {
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(tag).unwrap());
        }
        if let Some(secs) = ims {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
            let date = httpdate::fmt_http_date(t);
            h.insert(
                header::IF_MODIFIED_SINCE,
                HeaderValue::from_str(&date).unwrap(),
            );
        }
        h
    }

    #[test]
    fn matching_etag_wins_over_an_old_if_modified_since() {
        assert!(not_modified(
            &request(Some("\"h20-5\""), Some(LM - 50)),
            validators(false)
        ));
    }

    #[test]
    fn stale_etag_wins_over_a_recent_if_modified_since() {
        assert!(!not_modified(
            &request(Some("\"h20-4\""), Some(LM + 50)),
            validators(false)
        ));
    }

    #[test]
    fn etag_lists_weak_tags_and_star_match() {
        let v = validators(false);
        assert!(not_modified(&request(Some("\"x\", W/\"h20-5\""), None), v));
        assert!(not_modified(&request(Some("*"), None), v));
        assert!(!not_modified(&request(Some("\"h20-50\""), None), v));
    }

    #[test]
    fn if_modified_since_alone_before_at_and_after() {
        let v = validators(false);
        assert!(!not_modified(&request(None, Some(LM - 1)), v));
        assert!(not_modified(&request(None, Some(LM)), v));
        assert!(not_modified(&request(None, Some(LM + 1)), v));
    }

    #[test]
    fn same_second_commits_make_the_date_unusable_for_that_second() {
        let v = validators(true);
        assert!(!not_modified(&request(None, Some(LM)), v));
        assert!(not_modified(&request(None, Some(LM + 1)), v));
    }

    #[test]
    fn dates_in_the_future_and_garbage_are_ignored() {
        let v = validators(false);
        assert!(!not_modified(&request(None, Some(LM + 1000)), v));
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_MODIFIED_SINCE,
            HeaderValue::from_static("yesterday"),
        );
        assert!(!not_modified(&h, v));
    }

    #[test]
    fn empty_feed_has_no_date_to_compare() {
        let v = Validators {
            last_modified: None,
            ..validators(false)
        };
        assert!(!not_modified(&request(None, Some(LM)), v));
    }
}

/// Longest a long poll may wait.
pub const MAX_WAIT_SECS: u64 = 30;

/// How long the client asks to wait for a change: `?wait=N` (seconds; malformed is an error)
/// or `Prefer: wait=N` (RFC 7240 §4.3; malformed is ignored, as preferences are optional).
/// Capped at [`MAX_WAIT_SECS`]; 0 means no wait.
pub fn requested_wait(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<std::time::Duration>, String> {
    let secs = match query {
        Some(q) => Some(
            q.trim()
                .parse::<u64>()
                .map_err(|_| format!("wait must be a whole number of seconds, got {q:?}"))?,
        ),
        None => headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|p| p.trim().strip_prefix("wait="))
            .find_map(|n| n.trim().trim_matches('"').parse::<u64>().ok()),
    };
    Ok(secs
        .filter(|s| *s > 0)
        .map(|s| std::time::Duration::from_secs(s.min(MAX_WAIT_SECS))))
}

#[cfg(test)]
mod wait_tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::time::Duration;

    #[test]
    fn wait_comes_from_the_query_or_the_prefer_header_and_is_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_wait(&h, None), Ok(None));
        assert_eq!(
            requested_wait(&h, Some("5")),
            Ok(Some(Duration::from_secs(5)))
        );
        assert_eq!(requested_wait(&h, Some("0")), Ok(None));
        assert!(requested_wait(&h, Some("soon")).is_err());
        h.insert("prefer", HeaderValue::from_static("respond-async, wait=12"));
        assert_eq!(requested_wait(&h, None), Ok(Some(Duration::from_secs(12))));
        h.insert("prefer", HeaderValue::from_static("wait=999"));
        assert_eq!(requested_wait(&h, None), Ok(Some(Duration::from_secs(30))));
        h.insert("prefer", HeaderValue::from_static("wait=later"));
        assert_eq!(requested_wait(&h, None), Ok(None));
    }
}
