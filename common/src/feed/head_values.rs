//! The head's validators and headers, formatted once per position, representation, coding and
//! second rather than once per request: every poll of the head needs them, and formatting them
//! (the `ETag`, `Last-Modified`, `X-Accel-Expires`) was a tenth of a `304`'s CPU
//! (`bench/feed`). Kept per thread: the serving threads each own their connections, so no
//! lock is shared between them on this path.

use std::cell::RefCell;
use std::sync::Arc;

use axum::http::HeaderValue;

use super::paging::Position;

/// What answers to the head at `position` carry during `second`.
pub(super) struct HeadValues {
    pub position: Position,
    pub second: i64,
    /// The `ETag` without quotes or coding suffix: the rendered page's.
    pub etag: String,
    /// The `ETag` as sent, quoted, with its coding's suffix.
    pub quoted: String,
    pub quoted_value: HeaderValue,
    /// The newest entry's second, if there is one.
    pub last_modified: Option<i64>,
    /// Whether the entry before the newest has the same second (`Last-Modified` alone cannot
    /// tell the two heads apart).
    pub second_is_ambiguous: bool,
    /// `Last-Modified` as sent: a second that can no longer gain entries.
    pub sent: Option<HeaderValue>,
    /// `X-Accel-Expires`: the end of `second`.
    pub expires: HeaderValue,
}

/// Values kept on this thread, by key; few (one per publisher, representation and coding).
const KEPT_AT_MOST: usize = 64;

thread_local! {
    static KEPT: RefCell<Vec<(u64, Arc<HeadValues>)>> = const { RefCell::new(Vec::new()) };
}

/// The values kept under `key` if they are for `position` and `second`, else `make`'s, kept.
pub(super) fn kept(
    key: u64,
    position: Position,
    second: i64,
    make: impl FnOnce() -> HeadValues,
) -> Arc<HeadValues> {
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let slot = kept.iter().position(|(k, _)| *k == key);
        if let Some(i) = slot {
            let values = &kept[i].1;
            if values.position == position && values.second == second {
                return values.clone();
            }
        }
        let values = Arc::new(make());
        match slot {
            Some(i) => kept[i].1 = values.clone(),
            None => {
                // Publishers come and go in tests: forget them all rather than grow.
                if kept.len() >= KEPT_AT_MOST {
                    kept.clear();
                }
                kept.push((key, values.clone()));
            }
        }
        values
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(position: Position, second: i64, etag: &str) -> HeadValues {
        HeadValues {
            position,
            second,
            etag: etag.to_owned(),
            quoted: format!("\"{etag}\""),
            quoted_value: HeaderValue::from_static("\"x\""),
            last_modified: None,
            second_is_ambiguous: false,
            sent: None,
            expires: HeaderValue::from_static("@0"),
        }
    }

    #[test]
    fn values_are_made_again_for_another_position_second_or_key() {
        let first = kept(1, 5, 100, || values(5, 100, "a"));
        assert_eq!(kept(1, 5, 100, || values(5, 100, "b")).etag, "a");
        assert!(Arc::ptr_eq(&first, &kept(1, 5, 100, || unreachable!())));
        assert_eq!(kept(1, 6, 100, || values(6, 100, "c")).etag, "c");
        assert_eq!(kept(1, 6, 101, || values(6, 101, "d")).etag, "d");
        assert_eq!(kept(2, 6, 101, || values(6, 101, "e")).etag, "e");
        assert_eq!(kept(1, 6, 101, || values(6, 101, "f")).etag, "d");
    }

    #[test]
    fn many_keys_do_not_grow_without_bound() {
        for key in 0..1000 {
            kept(1_000 + key, 1, 1, || values(1, 1, "x"));
        }
        KEPT.with(|kept| assert!(kept.borrow().len() <= KEPT_AT_MOST));
    }
}
