//! Reading a feed forward from its oldest archive, for a reader that has handled nothing yet.
//!
//! Walking back from the head to the oldest archive before handling anything means holding
//! every page or fetching most of them twice. A head that names its oldest archive (`first`,
//! RFC 5005 §3) lets a new reader start there and follow `next-archive` instead: each page
//! fetched once, handled as it arrives. Nothing about the feed is taken on trust: the first
//! page must be an archive of the same feed with no older page, and each next page must be an
//! archive of the same feed whose `prev-archive` is the page before, up to the head's own
//! `prev-archive`. So the pages handled are exactly those a walk back would have found.

use std::collections::HashSet;

use futures::stream::{self, StreamExt};
use tokio::sync::mpsc;

use super::pipeline::{AbortOnDrop, Pages};
use super::{lock, Consumer, FeedPage, FetchError, PollError, Projection};

/// Pages read ahead of the ones being handled.
const PAGES_AHEAD: usize = 8;

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
        let mut page = first;
        loop {
            let reached = followed == last || page.url == last;
            let next = page.next_archive.clone();
            let (link, url) = (followed.clone(), page.url.clone());
            self.add_pending(page.entries.len());
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
                return Err(PollError::ArchiveLoop(next));
            }
            let fetched = self.fetch_page(&next).await?;
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
        self.add_pending(head.entries.len());
        let _ = pages.send(Ok(head)).await;
        Ok(())
    }

    fn add_pending(&self, n: usize) {
        let mut status = lock(&self.inner.status);
        status.pending += n as u64;
        status.sample_lag();
    }
}
