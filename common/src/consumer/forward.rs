//! Reading a feed forward from its oldest archive, for a reader that has handled nothing yet.
//!
//! Walking back from the head to the oldest archive before handling anything means holding
//! every page or fetching most of them twice. A head that names its oldest archive (`first`,
//! RFC 5005 §3) lets a new reader start there and follow `next-archive` instead: each page
//! fetched once, handled as it arrives. Nothing about the feed is taken on trust: the first
//! page must be an archive of the same feed with no older page, and each next page must be an
//! archive of the same feed whose `prev-archive` is the page before, up to the head's own
//! `prev-archive`. So the pages handled are exactly those a walk back would have found.

use std::collections::{HashSet, VecDeque};

use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;
use url::Url;

use super::pipeline::{AbortOnDrop, Pages};
use super::{lock, Consumer, FeedPage, FetchError, PollError, Projection};

/// Pages read ahead of the ones being handled.
const PAGES_AHEAD: usize = 8;

/// Pages fetched at once on a guess of their URL.
const GUESSES: usize = 3;

/// Fetches of the pages expected next, oldest first.
#[derive(Default)]
struct Ahead {
    guesses: VecDeque<(Url, Guess)>,
}

type Guess = AbortOnDrop<Result<FeedPage, PollError>>;

impl Ahead {
    /// The guessed fetch of `url` when it is the next one guessed; a wrong guess (the links
    /// went another way) drops them all.
    fn take(&mut self, url: &Url) -> Option<Guess> {
        match self.guesses.front() {
            Some((guess, _)) if guess == url => self.guesses.pop_front().map(|(_, fetch)| fetch),
            _ => {
                self.guesses.clear();
                None
            }
        }
    }
}

/// `url` split around its last run of digits: (before, number, after).
fn numbered(url: &Url) -> Option<(&str, u64, &str)> {
    let text = url.as_str();
    let end = text.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = text[..end]
        .rfind(|c: char| !c.is_ascii_digit())
        .map_or(0, |i| i + 1);
    let n = text[start..end].parse().ok()?;
    Some((&text[..start], n, &text[end..]))
}

/// The URL after `url` if archive pages are numbered: its last run of digits plus one
/// (`/feed/archive/41` → `/feed/archive/42`, `?page=9` → `?page=10`).
fn successor(url: &Url) -> Option<Url> {
    let (before, n, after) = numbered(url)?;
    let next = format!("{before}{}{after}", n.checked_add(1)?);
    // Never a port or a host counted up: only pages on the same origin are guessed.
    Url::parse(&next)
        .ok()
        .filter(|n| n.origin() == url.origin())
}

/// Pages after `from` up to and including `to`, when both are numbered alike.
fn pages_between(from: &Url, to: &Url) -> Option<usize> {
    let (before, a, after) = numbered(from)?;
    let (to_before, b, to_after) = numbered(to)?;
    if before != to_before || after != to_after || b < a {
        return None;
    }
    usize::try_from(b - a).ok()
}

impl<P: Projection> Consumer<P> {
    /// The oldest archive of the feed whose subscription document is `head`, when `head`
    /// names one that checks out; `None` (with a warning when a named one did not) means
    /// walking back instead.
    pub(super) async fn first_archive(
        &self,
        head: &FeedPage,
    ) -> Result<Option<FeedPage>, PollError> {
        let Some(first) = &head.first else {
            return Ok(None);
        };
        if head.prev_archive.is_none() || *first == head.url {
            return Ok(None);
        }
        if !self.inner.client.allowed(first) {
            tracing::warn!(%first, "the feed's first page is not on its origin; walking back instead");
            return Ok(None);
        }
        let page = match self.fetch_page(first).await {
            Ok(page) => page,
            Err(PollError::Fetch(FetchError::Permanent(reason)) | PollError::Refused(reason)) => {
                tracing::warn!(%first, %reason, "the feed's first page cannot be read; walking back instead");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let unfit = if page.feed_id != head.feed_id {
            Some("it is another feed")
        } else if !page.archive {
            Some("it is not an archive")
        } else if page.prev_archive.is_some() {
            Some("it has an older page")
        } else if page.next_archive.is_none() {
            Some("it has no next-archive link")
        } else {
            None
        };
        if let Some(reason) = unfit {
            tracing::warn!(%first, reason, "the feed's first page is not its oldest archive; walking back instead");
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// The pages from `first` (see [`Self::first_archive`]) along `next-archive` to the
    /// head's `prev-archive`, then `head` itself, fetched by a task of their own a few pages
    /// ahead. A page that breaks the chain ends the stream with [`PollError::ForwardBroken`]
    /// after the pages before it, which are consistent and can be handled.
    pub(super) fn walk_forward(&self, first: FeedPage, head: FeedPage) -> Pages {
        let (sender, receiver) = mpsc::channel(PAGES_AHEAD);
        let this = self.clone();
        let walker = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = this.forward(first, head, &sender).await {
                let _ = sender.send(Err(e)).await;
            }
        }));
        // The stream owns the walker: dropping it (a poll ending early) stops the fetching.
        stream::unfold((receiver, walker), |(mut receiver, walker)| async move {
            let page = receiver.recv().await?;
            Some((page, (receiver, walker)))
        })
        .boxed()
    }

    async fn forward(
        &self,
        first: FeedPage,
        head: FeedPage,
        pages: &mpsc::Sender<Result<FeedPage, PollError>>,
    ) -> Result<(), PollError> {
        let last = head
            .prev_archive
            .clone()
            .ok_or(crate::Error::Invariant("a forward walk ends at an archive"))?;
        let mut followed = head.first.clone().unwrap_or_else(|| first.url.clone());
        let mut visited = HashSet::from([followed.clone(), first.url.clone()]);
        let mut ahead = Ahead::default();
        let mut page = first;
        loop {
            let reached = followed == last || page.url == last;
            let next = page.next_archive.clone();
            let (link, url) = (followed.clone(), page.url.clone());
            let unread = if reached {
                head.entries.len()
            } else {
                pages_between(&link, &last).map_or(0, |n| n * page.entries.len())
                    + head.entries.len()
            };
            self.add_pending(page.entries.len(), unread);
            if pages.send(Ok(page)).await.is_err() {
                return Ok(());
            }
            if reached {
                break;
            }
            let next = next.ok_or_else(|| {
                PollError::ForwardBroken(format!("archive {url} has no next-archive link"))
            })?;
            if !visited.insert(next.clone()) {
                return Err(PollError::ForwardBroken(format!(
                    "next-archive links loop at {next}"
                )));
            }
            // Guessing ahead pays only while the links count up as guessed.
            let counting = successor(&link).is_some_and(|guess| guess == next);
            let guessed = ahead.take(&next);
            if counting && next != last {
                self.guess_ahead(&mut ahead, &next, &last);
            }
            let fetched = match guessed {
                Some(mut fetch) => match (&mut fetch.0).await {
                    Ok(Ok(page)) => page,
                    // A guess that failed proves nothing: fetched again, with retries.
                    _ => self.fetch_page(&next).await?,
                },
                None => self.fetch_page(&next).await?,
            };
            let broken = if fetched.feed_id != head.feed_id {
                Some("is another feed")
            } else if !fetched.archive {
                Some("is not an archive")
            } else if fetched
                .prev_archive
                .as_ref()
                .is_none_or(|prev| *prev != link && *prev != url)
            {
                Some("does not link back to the page before it")
            } else {
                None
            };
            if let Some(reason) = broken {
                return Err(PollError::ForwardBroken(format!(
                    "{next}, the next archive after {url}, {reason}"
                )));
            }
            followed = next;
            page = fetched;
        }
        self.add_pending(head.entries.len(), 0);
        let _ = pages.send(Ok(head)).await;
        Ok(())
    }

    /// Starts fetching the pages expected after `from`, up to `last`, so that several are on
    /// the wire while one is parsed and handled. A guess is only ever used for the URL it was
    /// made for, and checked like any page.
    fn guess_ahead(&self, ahead: &mut Ahead, from: &Url, last: &Url) {
        let mut tail = ahead
            .guesses
            .back()
            .map_or(from.clone(), |(url, _)| url.clone());
        while ahead.guesses.len() < GUESSES && tail != *last {
            let Some(guess) = successor(&tail) else {
                return;
            };
            let this = self.clone();
            let url = guess.clone();
            let fetch = tokio::spawn(async move { this.fetch_page_once(&url).await });
            ahead.guesses.push_back((guess.clone(), AbortOnDrop(fetch)));
            tail = guess;
        }
    }

    /// `n` more entries read and not handled yet, and an estimate of those not read yet.
    fn add_pending(&self, n: usize, unread: usize) {
        let mut status = lock(&self.inner.status);
        status.pending += n as u64;
        status.unread = unread as u64;
        status.sample_lag();
        self.inner.metrics.lag_entries.set(status.behind() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_successor_counts_up_the_last_number() {
        let next = |u: &str| successor(&Url::parse(u).unwrap()).map(|u| u.to_string());
        assert_eq!(
            next("http://h.test/order/feed/archive/41").as_deref(),
            Some("http://h.test/order/feed/archive/42")
        );
        assert_eq!(
            next("http://h.test/feeds/orders?page=9").as_deref(),
            Some("http://h.test/feeds/orders?page=10")
        );
        assert_eq!(
            next("http://h.test:8080/v2/archive/7/").as_deref(),
            Some("http://h.test:8080/v2/archive/8/")
        );
        assert_eq!(next("http://h.test/feed/archive").as_deref(), None);
        assert_eq!(next("http://h.test:8080/feed/archive").as_deref(), None);
    }

    #[test]
    fn pages_are_counted_between_urls_numbered_alike() {
        let between =
            |a: &str, b: &str| pages_between(&Url::parse(a).unwrap(), &Url::parse(b).unwrap());
        assert_eq!(
            between("http://h.test/f/archive/3", "http://h.test/f/archive/4999"),
            Some(4996)
        );
        assert_eq!(
            between("http://h.test/f?page=7", "http://h.test/f?page=7"),
            Some(0)
        );
        assert_eq!(
            between("http://h.test/f/archive/9", "http://h.test/f/archive/2"),
            None
        );
        assert_eq!(
            between("http://h.test/a/archive/1", "http://h.test/b/archive/9"),
            None
        );
    }
}
