//! `feedline check`: our own publisher passes every check on both backends; each small
//! broken publisher of `check_lab` is caught by the check meant for it and by no other; the
//! command line exits 0, 1 or 2 with one-line errors.

use std::process::Command;
use std::time::Duration;

use feedline::check::{self, CheckArgs, Report, Status};

use crate::check_lab::{self, Flaw};
use crate::helpers::{spawn_order, OrderOptions};

fn args(url: &str, writes: Option<String>, settle_secs: u64) -> CheckArgs {
    CheckArgs {
        url: url.to_owned(),
        json: false,
        writes,
        max_pages: 1000,
        settle: Duration::from_secs(settle_secs),
    }
}

/// A `--writes` command: one POST with curl.
pub fn curl_post(url: &str, json: &str) -> String {
    format!(
        "curl -fsS -o /dev/null -X POST -H 'content-type: application/json' --data '{json}' {url}"
    )
}

pub fn order_writes(base: &str) -> String {
    curl_post(
        &format!("{base}/order/orders"),
        r#"{"customerId": 3, "lines": [{"itemId": 2, "count": 1}]}"#,
    )
}

fn not_passing(report: &Report) -> Vec<(&'static str, Status)> {
    report
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| (c.id, c.status))
        .collect()
}

/// Twelve orders on pages of five (two archives), a head that long-polls, and writes through
/// the order API: every check runs and passes.
#[tokio::test]
async fn our_publisher_passes_every_check_with_writes() {
    let app = spawn_order(OrderOptions::default()).await;
    for n in 0..12 {
        app.place(1 + n % 5).await;
    }
    let base = app.url("");

    let report = check::run(&args(&app.url("/order/feed"), Some(order_writes(&base)), 5))
        .await
        .expect("checked");

    assert_eq!(not_passing(&report), vec![], "{}", report.table());
    assert!(report.ok);
    assert_eq!(report.checks.len(), 16);
    let long_poll = report.get("long-poll").unwrap();
    assert!(long_poll.observed.starts_with("supported"), "{long_poll:?}");
    let same_second = report.get("same-second").unwrap();
    assert!(
        same_second.observed.contains("If-Modified-Since alone"),
        "{same_second:?}"
    );
}

/// The inline-details representation is as conformant as the default one.
#[tokio::test]
async fn our_inline_representation_passes_the_static_checks() {
    let app = spawn_order(OrderOptions::default()).await;
    for n in 0..7 {
        app.place(1 + n % 5).await;
    }

    let report = check::run(&args(&app.url("/order/feed/inline"), None, 5))
        .await
        .expect("checked");

    let skipped = vec![("same-second", Status::Skip), ("new-on-top", Status::Skip)];
    assert_eq!(not_passing(&report), skipped, "{}", report.table());
}

/// Runs the check with writes against a lab publisher with `flaw`.
async fn check_lab(flaw: Flaw) -> Report {
    let base = check_lab::serve(flaw).await;
    let writes = format!("curl -fsS -o /dev/null -X POST {base}/write");
    check::run(&args(&format!("{base}/feed"), Some(writes), 2))
        .await
        .expect("checked")
}

#[tokio::test]
async fn the_lab_publisher_without_flaws_passes_every_check() {
    let report = check_lab(Flaw::None).await;
    assert_eq!(not_passing(&report), vec![], "{}", report.table());
    let long_poll = report.get("long-poll").unwrap();
    assert!(
        long_poll.observed.starts_with("not offered"),
        "{long_poll:?}"
    );
}

#[tokio::test]
async fn a_304_to_a_same_second_if_modified_since_is_caught_by_same_second_only() {
    let report = check_lab(Flaw::ImsOneSecond).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["same-second"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
    let finding = report.get("same-second").unwrap();
    assert!(
        finding.observed.contains("If-Modified-Since alone"),
        "{finding:?}"
    );
    assert!(!report.ok);
}

#[tokio::test]
async fn archives_that_change_are_caught_by_archive_stable_only() {
    let report = check_lab(Flaw::ChangingArchives).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["archive-stable"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
    assert!(report
        .get("archive-stable")
        .unwrap()
        .observed
        .contains("/feed/archive/"));
}

#[tokio::test]
async fn a_head_without_validators_is_caught_by_validators_only() {
    let report = check_lab(Flaw::NoValidators).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["validators"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
    // What needs validators is not run, and says so.
    assert_eq!(
        report.with_status(Status::Skip),
        vec![
            "not-modified",
            "precedence",
            "stale-validators",
            "long-poll"
        ]
    );
}

#[tokio::test]
async fn duplicate_entry_ids_are_caught_by_entry_ids_only() {
    let report = check_lab(Flaw::DuplicateIds).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["entry-ids"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
    assert!(report
        .get("entry-ids")
        .unwrap()
        .observed
        .contains("urn:lab:1 ×2"));
}

#[tokio::test]
async fn entries_appearing_below_seen_ones_are_caught_by_new_on_top_only() {
    let report = check_lab(Flaw::Backdated).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["new-on-top"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
}

#[tokio::test]
async fn an_archive_of_another_feed_is_caught_by_archive_chain_only() {
    let report = check_lab(Flaw::ForeignArchive).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["archive-chain"],
        "{}",
        report.table()
    );
    assert_eq!(report.with_status(Status::Warn), Vec::<&str>::new());
    let finding = report.get("archive-chain").unwrap();
    assert!(
        finding.observed.contains("urn:lab:another-feed"),
        "{finding:?}"
    );
}

/// A head whose `first` names another page than its oldest archive would start a new reader
/// in the middle of the feed.
#[tokio::test]
async fn a_first_link_that_is_not_the_oldest_archive_is_caught_by_archive_chain_only() {
    let report = check_lab(Flaw::FirstNotOldest).await;
    assert_eq!(
        report.with_status(Status::Fail),
        vec!["archive-chain"],
        "{}",
        report.table()
    );
    let finding = report.get("archive-chain").unwrap();
    assert!(
        finding.observed.contains("first link") && finding.observed.contains("/feed/archive/2"),
        "{finding:?}"
    );
}

/// Documents other tools wrote (python-feedgen, ElementTree with an `atom:` prefix and
/// `xml:base`), served as static files: the document checks pass, links resolve; what a bare
/// file server lacks is reported, and nothing else.
#[tokio::test]
async fn feeds_made_by_other_tools_are_checked_like_ours() {
    // ElementTree's document has no rel="self" link, a SHOULD of RFC 4287 §4.1.1.
    for (fixture, without_self) in [
        ("feedgen-links.xml", false),
        ("feedgen-content-src.xml", false),
        ("etree-prefixed.xml", true),
    ] {
        let url = crate::foreign_feed::serve_fixture(fixture).await;

        let report = check::run(&args(&url, None, 2)).await.expect("checked");

        let table = report.table();
        assert_eq!(
            report.with_status(Status::Fail),
            vec!["validators"],
            "{fixture}: {table}"
        );
        let mut warned = vec!["history", "head-caching"];
        if without_self {
            warned.insert(0, "document");
            assert!(report
                .get("document")
                .unwrap()
                .observed
                .contains("rel=\"self\""));
        }
        assert_eq!(
            report.with_status(Status::Warn),
            warned,
            "{fixture}: {table}"
        );
        for id in ["entry-ids", "links"] {
            assert_eq!(
                report.get(id).unwrap().status,
                Status::Pass,
                "{fixture}: {id}"
            );
        }
    }
}

fn feedline(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_feedline"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run feedline")
}

/// The binary: JSON for CI, exit 0 when nothing fails, 1 when something does.
#[tokio::test]
async fn the_command_prints_json_and_exits_by_the_result() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    let url = app.url("/order/feed");
    let broken = check_lab::serve(Flaw::ChangingArchives).await;
    let broken_url = format!("{broken}/feed");

    let (ours, theirs) = tokio::task::spawn_blocking(move || {
        (
            feedline(&["check", "--json", &url]),
            feedline(&["check", &broken_url]),
        )
    })
    .await
    .unwrap();

    assert_eq!(
        ours.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&ours.stdout).expect("JSON report");
    assert_eq!(json["ok"], true);
    assert_eq!(json["summary"]["fail"], 0);
    assert!(json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["spec"].is_string()));
    assert_eq!(theirs.status.code(), Some(1));
    let table = String::from_utf8_lossy(&theirs.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("fail") && l.contains("archive-stable")),
        "{table}"
    );
}

/// Nothing to check: a one-line error on stderr, nothing on stdout, exit 2.
#[tokio::test]
async fn bad_arguments_unreachable_urls_and_non_feeds_end_with_one_line() {
    let app = spawn_order(OrderOptions::default()).await;
    app.place(1).await;
    let json_url = app.url("/order/orders/1");
    let dead = format!("http://127.0.0.1:{}/feed", crate::process::free_port());

    let outputs = tokio::task::spawn_blocking(move || {
        [
            feedline(&["check", "not a url"]),
            feedline(&["check", "ftp://example.com/feed"]),
            feedline(&["check", &dead]),
            feedline(&["check", &json_url]),
            feedline(&["check", "--writes", "exit 3", "--max-pages", "x", &dead]),
        ]
    })
    .await
    .unwrap();

    let expected = [
        "is not a URL",
        "not an http(s) URL",
        "unreachable",
        "not a feed",
        "--max-pages",
    ];
    for (output, needle) in outputs.iter().zip(expected) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(output.stdout.is_empty());
    }
    for output in &outputs[..4] {
        assert_eq!(
            String::from_utf8_lossy(&output.stderr)
                .trim()
                .lines()
                .count(),
            1
        );
    }
}

/// A `--writes` command that fails stops the run with its reason.
#[tokio::test]
async fn a_failing_writes_command_is_an_error_not_a_result() {
    let base = check_lab::serve(Flaw::None).await;
    let error = check::run(&args(
        &format!("{base}/feed"),
        Some("echo nope >&2; exit 3".into()),
        2,
    ))
    .await
    .expect_err("the command fails");
    let message = error.to_string();
    assert!(
        message.contains("exit status: 3") && message.contains("nope"),
        "{message}"
    );
}
