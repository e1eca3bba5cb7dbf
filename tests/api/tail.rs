//! `feedline tail`: the binary follows a feed live, ours (long polling) or another
//! publisher's (plain polling), and stops at once on Ctrl-C with exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::check_lab::{self, Flaw};
use crate::helpers::{spawn_order, OrderOptions};

/// A running `feedline tail` and the lines it printed so far.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = Command::new(env!("CARGO_BIN_EXE_feedline"))
            .arg("tail")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start feedline tail");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tail { child, lines }
    }

    /// The next `n` lines, within 15 s. Polls without blocking: the publisher runs on this
    /// test's runtime.
    async fn lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} lines: {out:?}",
                out.len()
            );
            match self.lines.try_recv() {
                Ok(line) => out.push(line),
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("tail ended: {e}; got {out:?}"),
            }
        }
        out
    }

    /// The next `n` lines as JSON.
    async fn next(&self, n: usize) -> Vec<Value> {
        let lines = self.lines(n).await;
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("NDJSON"))
            .collect()
    }

    /// Ctrl-C; returns the exit code and how long it took to exit.
    fn interrupt(&mut self) -> (Option<i32>, Duration) {
        let pid = self.child.id().to_string();
        let started = Instant::now();
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "tail ignores Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Tail {
    /// A failed test leaves no tail running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn links(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["link"].as_str().expect("link").to_owned())
        .collect()
}

/// Started on a feed with three orders, `-n 1` prints the newest; each order placed after
/// is printed once, in commit order, while the tail long-polls.
#[tokio::test]
async fn tail_prints_each_new_entry_as_it_commits() {
    let app = spawn_order(OrderOptions::default()).await;
    for customer in 1..=3 {
        app.place(customer).await;
    }
    let mut tail = Tail::start(&["--json", "-n", "1", &app.url("/order/feed")]);
    let first = tail.next(1).await;
    assert_eq!(links(&first), [app.url("/order/orders/3")]);

    let mut placed = Vec::new();
    for customer in 1..=4 {
        placed.push(app.url(&format!("/order/orders/{}", app.place(customer).await)));
    }
    let printed = tail.next(4).await;

    assert_eq!(links(&printed), placed);
    for line in &printed {
        assert_eq!(line["categories"][0], "order-placed");
        assert!(line["id"].as_str().unwrap().starts_with("urn:uuid:"));
        assert!(line["updated"].as_str().unwrap().ends_with('Z'));
    }
    let (code, took) = tail.interrupt();
    assert_eq!(code, Some(0));
    // A long poll was waiting: Ctrl-C does not wait for it.
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(each_once(&printed));
}

/// Each entry printed once: the ids are distinct.
fn each_once(printed: &[Value]) -> bool {
    let mut ids: Vec<&str> = printed.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    ids.len() == printed.len()
}

/// `--from-start` walks back through every archive page and prints the whole feed, oldest
/// first.
#[tokio::test]
async fn tail_from_start_prints_the_whole_feed_in_order() {
    let app = spawn_order(OrderOptions::default()).await;
    let mut placed = Vec::new();
    for n in 0..12 {
        placed.push(app.url(&format!("/order/orders/{}", app.place(1 + n % 5).await)));
    }

    let mut tail = Tail::start(&["--json", "--from-start", &app.url("/order/feed")]);
    let printed = tail.next(12).await;

    assert_eq!(links(&printed), placed);
    assert_eq!(tail.interrupt().0, Some(0));
}

/// Another publisher that does not long-poll: tail polls on its interval and still prints
/// each new entry, text lines by default.
#[tokio::test]
async fn tail_follows_another_publisher_by_plain_polling() {
    let base = check_lab::serve(Flaw::None).await;
    let mut tail = Tail::start(&["-n", "0", "--interval", "100ms", &format!("{base}/feed")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    for _ in 0..2 {
        client.post(format!("{base}/write")).send().await.unwrap();
    }

    let lines = tail.lines(2).await;

    // updated, category, id, link
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split("  ").collect()).collect();
    assert_eq!(fields[0][1], "thing-happened");
    assert_eq!(fields[0][2], "urn:lab:9");
    assert_eq!(fields[1][2], "urn:lab:10");
    assert_eq!(fields[1][3], format!("{base}/details/10"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(tail.lines.try_recv().is_err(), "nothing else");
    assert_eq!(tail.interrupt().0, Some(0));
}

#[tokio::test]
async fn tail_of_nothing_ends_with_one_line() {
    let dead = format!("http://127.0.0.1:{}/feed", crate::process::free_port());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_feedline"))
            .args(["tail", &dead])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("feedline tail: ") && stderr.contains("unreachable"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1);
}
