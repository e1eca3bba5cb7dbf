//! "Who reads this feed" and, on an order's page, whether each reader has that order yet:
//! computed from the positions readers report, with no call to any of them.

use common::feed::{Position, ReaderReport};
use common::ui;
use maud::{html, Markup};

pub const READERS: &str = "/order/ui/readers";

/// Where one reader stands with one order.
pub enum Standing {
    /// Its checkpoint is at or after the order's newest entry.
    HasIt,
    /// Entries between its checkpoint and the order's newest entry.
    ToGo(i64),
    /// Its checkpoint is not (yet) a known entry of this feed.
    Unknown,
}

/// `newest`: the order's newest entry after the lowest reader position (`None`: none after
/// it, so every reader with a position has it).
pub fn standing(reader: &ReaderReport, newest: Option<Position>) -> Standing {
    match (reader.position, newest) {
        (None, _) => Standing::Unknown,
        (Some(_), None) => Standing::HasIt,
        (Some(p), Some(n)) if p >= n => Standing::HasIt,
        (Some(p), Some(n)) => Standing::ToGo(n - p),
    }
}

fn seen(r: &ReaderReport) -> Markup {
    html! {
        (ui::time(&r.last_seen))
        @if r.silent { " " strong.error { "silent for " (r.seconds_since_seen) " s" } }
    }
}

/// The page: each reader, its checkpoint, lag, last request and lag chart.
pub fn page(readers: &[ReaderReport], head: Position) -> Markup {
    html! {
        h1 { "Who reads this feed" }
        p.hint {
            "Readers that name themselves in their requests (" code { "Feed-Reader" } ", "
            code { "Feed-Reader-Checkpoint" } "), as of their last request to this service; "
            "positions are refreshed every 5 s. Readers answered by a cache in front are not seen. "
            "The feed's head is at position " strong { (head) } "."
        }
        div.actions {
            a href="/order/feed/readers" { "JSON" }
            a href=(super::pages::LIST) { "All orders" }
        }
        @if readers.is_empty() {
            p.notice { "No reader has named itself yet." }
        } @else {
            @for r in readers {
                section.reader aria-labelledby={ "reader-" (r.name) } {
                    h2 id={ "reader-" (r.name) } { (r.name) }
                    dl {
                        dt { "Checkpoint" }
                        dd {
                            @match (&r.checkpoint, r.position) {
                                (Some(id), Some(p)) => { "position " (p) " " code { (id) } }
                                (Some(id), None) if r.resolving => { code { (id) } " (position being looked up)" }
                                (Some(id), None) => { code { (id) } " (not an entry of this feed)" }
                                (None, _) => { "nothing handled yet" }
                            }
                        }
                        dt { "Behind the head" }
                        dd { @match r.behind { Some(b) => { strong { (b) } " entries" } None => { "unknown" } } }
                        dt { "Last request" }
                        dd { (seen(r)) " from " code { (r.from) } }
                        dt { "Lag" }
                        dd { (ui::chart::lag_chart(&r.lag, "entries behind")) }
                    }
                }
            }
        }
    }
}

/// The section of an order's page: whether each reader has reached its newest entry.
pub fn on_order_page(readers: &[ReaderReport], newest: Option<Position>) -> Markup {
    html! {
        section aria-labelledby="readers-title" {
            h2 id="readers-title" { "Readers" }
            @if readers.is_empty() {
                p.hint { "No reader of the feed has named itself yet." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th { "Reader" } th { "This order's newest entry" } th { "Last request" } } }
                        tbody {
                            @for r in readers {
                                tr {
                                    td { (r.name) }
                                    td {
                                        @match standing(r, newest) {
                                            Standing::HasIt => { strong { "has it" } }
                                            Standing::ToGo(1) => { "1 entry to go" }
                                            Standing::ToGo(n) => { (n) " entries to go" }
                                            Standing::Unknown => { "unknown" }
                                        }
                                    }
                                    td { (seen(r)) }
                                }
                            }
                        }
                    }
                }
                p.hint { "From the positions readers report; see " a href=(READERS) { "who reads this feed" } "." }
            }
        }
    }
}
