//! RFC 5005 archives: the walk from the head through `prev-archive`, and what the archive
//! pages promise (marked, consistent, cacheable, never changing).

use std::collections::HashSet;

use common::consumer::FeedPage;
use url::Url;

use super::report::Check;
use super::{cache_control, has, max_age, sample, Finding, Page, Probe};
use crate::error::Error;

pub const CHAIN: Check = Check {
    id: "archive-chain",
    title: "Archive chain",
    spec: "RFC 5005 §4",
};
pub const MARKED: Check = Check {
    id: "archive-marked",
    title: "Archives carry fh:archive",
    spec: "RFC 5005 §4",
};
pub const STABLE: Check = Check {
    id: "archive-stable",
    title: "Archives never change",
    spec: "RFC 5005 §4.1",
};
pub const CACHING: Check = Check {
    id: "archive-caching",
    title: "Archives cacheable",
    spec: "RFC 9111 §5.2.2, RFC 8246",
};
pub const HISTORY: Check = Check {
    id: "history",
    title: "History in archives",
    spec: "RFC 5005 §2, §4",
};

/// The pages reached from the head, head first, and what went wrong on the way.
#[derive(Debug)]
pub struct Chain {
    pub pages: Vec<Page>,
    /// Broken promises of the chain itself (loops, links that disagree, unreadable pages).
    pub problems: Vec<String>,
    /// Stopped at `--max-pages` with older pages left.
    pub truncated: bool,
}

impl Chain {
    pub fn head(&self) -> &Page {
        &self.pages[0]
    }
    pub fn archives(&self) -> &[Page] {
        &self.pages[1..]
    }
}

/// Follows `prev-archive` from `head` until there is none, a page repeats, a page cannot be
/// read, or `max_pages` archives were read.
pub async fn walk(probe: &Probe, head: Page, max_pages: usize) -> Chain {
    let head_url = head.url().clone();
    let head_id = head.parsed.as_ref().ok().map(|p| p.feed_id.clone());
    let mut chain = Chain {
        pages: vec![head],
        problems: Vec::new(),
        truncated: false,
    };
    let mut visited = HashSet::from([head_url.clone()]);
    while let Some((newer_url, prev)) = older(&chain.pages) {
        if !visited.insert(prev.clone()) {
            chain.problems.push(format!(
                "{newer_url} leads back to {prev}, already visited: a loop"
            ));
            break;
        }
        if chain.pages.len() > max_pages {
            chain.truncated = true;
            break;
        }
        let page = match probe.get(&prev, &[]).await {
            Ok(answer) => Page::read(answer),
            Err(e) => Err(e.to_string()),
        };
        let page = match page {
            Ok(page) => page,
            Err(reason) => {
                chain
                    .problems
                    .push(format!("{prev} (prev-archive of {newer_url}): {reason}"));
                break;
            }
        };
        if let Ok(parsed) = &page.parsed {
            consistency(&mut chain.problems, parsed, &newer_url, &head_url);
            if newer_url == head_url {
                newest_archive_next(probe, &mut chain.problems, parsed, &head_url).await;
            }
            if let Some(id) = &head_id {
                if &parsed.feed_id != id {
                    chain.problems.push(format!(
                        "{prev} belongs to feed {} while the head is {id}",
                        parsed.feed_id
                    ));
                }
            }
        }
        chain.pages.push(page);
    }
    if !chain.truncated {
        first_is_oldest(&mut chain);
    }
    chain
}

/// RFC 5005 §3 `first` on the head names where reading forward starts: the oldest archive
/// (the last page the walk reached), or the head itself as paged feeds do. A reader with
/// nothing yet that trusted another page would start in the middle.
fn first_is_oldest(chain: &mut Chain) {
    let Some(head) = chain.head().parsed.as_ref().ok() else {
        return;
    };
    let (Some(first), Some(oldest)) = (&head.first, chain.pages.last()) else {
        return;
    };
    if first != oldest.url() && first != chain.head().url() {
        chain.problems.push(format!(
            "the head's first link {first} is not its oldest archive {}",
            oldest.url()
        ));
    }
}

/// RFC 5005 §4: `next-archive` names the archive after this one (the page we came from, or
/// nothing/the head for the newest archive); `current` names the subscription document.
fn consistency(problems: &mut Vec<String>, page: &FeedPage, newer: &Url, head: &Url) {
    match &page.next_archive {
        Some(next) if next == newer => {}
        // The newest archive: checked by `newest_archive_next`.
        Some(_) | None if newer == head => {}
        Some(next) => problems.push(format!(
            "{} says next-archive {next}, but was reached from {newer}",
            page.url
        )),
        None => problems.push(format!(
            "{} has no next-archive, but {newer} links to it",
            page.url
        )),
    }
    if let Some(current) = &page.current {
        if current != head {
            problems.push(format!(
                "{} says current {current}, not the head {head}",
                page.url
            ));
        }
    }
}

/// The URL of the last page reached and its `prev-archive`, if it has one and was readable:
/// only what the walk needs, not a copy of the page.
fn older(pages: &[Page]) -> Option<(Url, Url)> {
    let last = pages.last()?;
    let prev = last.parsed.as_ref().ok()?.prev_archive.clone()?;
    Some((last.url().clone(), prev))
}

/// The newest archive's `next-archive` names the head, nothing, or the URL the head's entries
/// will have once archived (an immutable page cannot change that link later), which must
/// lead to the head for now.
async fn newest_archive_next(
    probe: &Probe,
    problems: &mut Vec<String>,
    page: &FeedPage,
    head: &Url,
) {
    let Some(next) = &page.next_archive else {
        return;
    };
    if next == head {
        return;
    }
    match probe.get(next, &[]).await {
        Ok(a) if a.url == *head => {}
        // Entries arrived since the head was read and filled that page: it now follows
        // this one, as promised.
        Ok(a) if a.status == 200 && follows(&a, &page.url) => {}
        Ok(a) if a.status == 200 => problems.push(format!(
            "{} is the newest archive, but its next-archive {next} is a page of its own ({}), not the head",
            page.url, a.url
        )),
        Ok(a) => problems.push(format!(
            "{} is the newest archive; its next-archive {next} answers HTTP {}",
            page.url, a.status
        )),
        Err(e) => problems.push(e.to_string()),
    }
}

/// Whether `answer` is a feed page whose `prev-archive` is `url`.
fn follows(answer: &super::Answer, url: &Url) -> bool {
    common::consumer::page::parse(&answer.url, &answer.body)
        .is_ok_and(|p| p.prev_archive.as_ref() == Some(url))
}

/// The archive checks over a walked chain; refetches every archive once.
pub async fn check(probe: &Probe, chain: &Chain) -> Result<Vec<Finding>, Error> {
    let archives = chain.archives();
    let mut findings = vec![chain_finding(chain)];
    if archives.is_empty() {
        let skip = "no archive pages";
        findings.extend([MARKED.skip(skip), STABLE.skip(skip), CACHING.skip(skip)]);
    } else {
        findings.push(marked(chain));
        findings.push(stable(probe, archives).await?);
        findings.push(caching(archives));
    }
    findings.push(history(chain));
    Ok(findings)
}

fn chain_finding(chain: &Chain) -> Finding {
    let archives = chain.archives();
    if !chain.problems.is_empty() {
        return CHAIN.fail(sample(&chain.problems, 3));
    }
    if archives.is_empty() {
        return CHAIN.skip("no prev-archive on the head");
    }
    let missing_current = archives
        .iter()
        .filter(|p| p.parsed.as_ref().is_ok_and(|p| p.current.is_none()))
        .count();
    let walked = format!(
        "{} archive pages, each reached once, next-archive and current consistent",
        archives.len()
    );
    if chain.truncated {
        CHAIN.warn(format!(
            "{walked}; stopped at --max-pages with older pages left"
        ))
    } else if missing_current > 0 {
        CHAIN.warn(format!(
            "{walked}; {missing_current} without a current link (RFC 5005 §4: SHOULD)"
        ))
    } else {
        CHAIN.pass(walked)
    }
}

fn marked(chain: &Chain) -> Finding {
    if chain.head().parsed.as_ref().is_ok_and(|p| p.archive) {
        return MARKED.fail(
            "the head carries fh:archive: caches and readers may keep it as if it never changed",
        );
    }
    let unmarked: Vec<String> = chain
        .archives()
        .iter()
        .filter(|p| p.parsed.as_ref().is_ok_and(|p| !p.archive))
        .map(|p| p.url().to_string())
        .collect();
    if unmarked.is_empty() {
        MARKED.pass(format!(
            "all {} archive pages, and not the head",
            chain.archives().len()
        ))
    } else {
        MARKED.warn(format!("without fh:archive: {}", sample(&unmarked, 3)))
    }
}

/// Each archive fetched again must be the same bytes.
async fn stable(probe: &Probe, archives: &[Page]) -> Result<Finding, Error> {
    let mut changed = Vec::new();
    for page in archives {
        let again = probe.get(page.url(), &[]).await?;
        if again.status != 200 {
            changed.push(format!(
                "{}: HTTP {} on a refetch",
                page.url(),
                again.status
            ));
        } else if again.body != page.answer.body {
            changed.push(format!("{} (different bytes on a refetch)", page.url()));
        }
    }
    Ok(if changed.is_empty() {
        STABLE.pass(format!(
            "{} archive pages fetched twice: byte-identical",
            archives.len()
        ))
    } else {
        STABLE.fail(format!(
            "consumers that cached a page miss what changed: {}",
            sample(&changed, 3)
        ))
    })
}

/// Archives should be kept by caches for long, and be revalidatable.
fn caching(archives: &[Page]) -> Finding {
    let mut short = Vec::new();
    let mut values = Vec::new();
    for page in archives {
        let cc = cache_control(&page.answer);
        let value = page
            .answer
            .header("cache-control")
            .unwrap_or("(none)")
            .to_owned();
        if !values.contains(&value) {
            values.push(value.clone());
        }
        let long = has(&cc, "immutable") || max_age(&cc).is_some_and(|s| s >= 86_400);
        let refused = has(&cc, "no-store") || has(&cc, "no-cache") || has(&cc, "private");
        if !long || refused {
            short.push(format!("{} ({value})", page.url()));
        }
    }
    if short.is_empty() {
        CACHING.pass(format!("Cache-Control: {}", values.join(" | ")))
    } else {
        CACHING.warn(format!(
            "not cacheable for a day or more, so every walk back fetches them again: {}",
            sample(&short, 2)
        ))
    }
}

fn history(chain: &Chain) -> Finding {
    let head = chain.head();
    if !chain.archives().is_empty() || !chain.problems.is_empty() {
        return HISTORY.pass(format!(
            "older entries in archive pages; the head holds {}",
            head.outline.entries.len()
        ));
    }
    let cost = format!(
        "{} entries, {} bytes",
        head.outline.entries.len(),
        head.answer.body.len()
    );
    if head.outline.complete {
        HISTORY.warn(format!(
            "fh:complete without archives: every changed poll downloads the whole feed ({cost}), and more as it grows"
        ))
    } else {
        HISTORY.warn(format!(
            "no archives: every changed poll downloads the whole history ({cost}), or entries drop off the head and a reader behind by more loses them"
        ))
    }
}
