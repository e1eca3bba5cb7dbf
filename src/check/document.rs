//! RFC 4287 on every page reached: required elements, entry identity, details links.

use std::collections::HashMap;

use url::Url;

use super::chain::Chain;
use super::report::Check;
use super::{sample, Finding, Probe};

pub const DOCUMENT: Check = Check {
    id: "document",
    title: "Well-formed Atom with the required elements",
    spec: "RFC 4287 §4.1.1, §4.1.2",
};
pub const IDS: Check = Check {
    id: "entry-ids",
    title: "Unique entry ids",
    spec: "RFC 4287 §4.1.1, §4.2.6",
};
pub const LINKS: Check = Check {
    id: "links",
    title: "Details links resolve",
    spec: "RFC 4287 §4.2.7, XML Base",
};

/// Details links fetched to see that they answer.
const LINKS_FETCHED: usize = 5;

pub async fn check(probe: &Probe, chain: &Chain) -> Vec<Finding> {
    vec![document(chain), ids(chain), links(probe, chain).await]
}

fn document(chain: &Chain) -> Finding {
    let mut problems = Vec::new();
    let mut entries = 0;
    for page in &chain.pages {
        entries += page.outline.entries.len();
        for missing in page.outline.missing() {
            problems.push(format!("{}: {missing}", page.url()));
        }
        if let Err(refused) = &page.parsed {
            problems.push(format!("a consumer refuses {refused}"));
        }
    }
    let counted = format!("{} pages, {entries} entries", chain.pages.len());
    if !problems.is_empty() {
        DOCUMENT.fail(format!("{counted}: {}", sample(&problems, 3)))
    } else if !chain.head().outline.feed.self_link {
        DOCUMENT.warn(format!(
            "{counted}, all required elements; the head has no rel=\"self\" link (§4.1.1: SHOULD)"
        ))
    } else {
        DOCUMENT.pass(format!("{counted}, all required elements present"))
    }
}

/// §4.1.1: entries with the same id are the same entry, and revisions SHOULD differ in
/// `updated`; the same id at the same `updated` twice is ambiguous to every consumer.
fn ids(chain: &Chain) -> Finding {
    let mut seen: HashMap<(&str, i64), usize> = HashMap::new();
    let mut revised: HashMap<&str, usize> = HashMap::new();
    for page in &chain.pages {
        let Ok(parsed) = &page.parsed else { continue };
        for e in &parsed.entries {
            *seen.entry((e.id.as_str(), e.updated_us)).or_default() += 1;
            *revised.entry(e.id.as_str()).or_default() += 1;
        }
    }
    let mut duplicates: Vec<String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((id, _), n)| format!("{id} ×{n}"))
        .collect();
    duplicates.sort();
    let revisions = revised.values().filter(|n| **n > 1).count();
    if !duplicates.is_empty() {
        IDS.fail(format!(
            "same id and same updated more than once: {}",
            sample(&duplicates, 3)
        ))
    } else if revisions > 0 {
        IDS.pass(format!(
            "{} ids, unique per revision; {revisions} revised (same id, later updated)",
            revised.len()
        ))
    } else {
        IDS.pass(format!("{} entries, every id unique", revised.len()))
    }
}

async fn links(probe: &Probe, chain: &Chain) -> Finding {
    let mut bad = Vec::new();
    let mut resolved: Vec<Url> = Vec::new();
    for page in &chain.pages {
        let Ok(parsed) = &page.parsed else { continue };
        for e in &parsed.entries {
            match &e.link {
                Ok(url) if matches!(url.scheme(), "http" | "https") => resolved.push(url.clone()),
                Ok(url) => bad.push(format!("{}: {url} is not http(s)", e.id)),
                Err(reason) => bad.push(format!("{}: {reason}", e.id)),
            }
        }
    }
    if !bad.is_empty() {
        return LINKS.fail(sample(&bad, 3));
    }
    if resolved.is_empty() {
        return LINKS.skip("no entries");
    }
    // A few from the head and one from the oldest page reached: relative links and xml:base
    // go wrong on one page and not another.
    let mut fetch: Vec<&Url> = resolved.iter().take(LINKS_FETCHED - 1).collect();
    fetch.extend(resolved.last());
    fetch.dedup();
    let mut failed = Vec::new();
    for url in &fetch {
        match probe.get_json(url).await {
            Ok(a) if (200..300).contains(&a.status) => {}
            Ok(a) => failed.push(format!("GET {url}: HTTP {}", a.status)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if failed.is_empty() {
        LINKS.pass(format!(
            "{} links resolved (xml:base and relative references applied); {} fetched, all 2xx",
            resolved.len(),
            fetch.len()
        ))
    } else {
        LINKS.fail(format!(
            "{} of {} fetched fail: {}",
            failed.len(),
            fetch.len(),
            sample(&failed, 2)
        ))
    }
}
