//! The log a real process writes to standard output when that is a pipe or a file, as under
//! systemd, Docker or a log shipper.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::fresh_db;
use crate::process::free_port;

/// A burst of requests, then SIGTERM: the log is plain text (no terminal colour codes), has one
/// line per request with its request id, and every line reached the pipe by the time the
/// process exited (lines are written by a thread of their own, in batches).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_logging_to_a_pipe_writes_plain_lines_for_every_request_before_it_exits() {
    // Arrange
    let db = fresh_db("order").await;
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_feedline"))
        .arg("order")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "info,sqlx=warn")
        .env_remove("LOG_FORMAT")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start feedline");
    let mut stdout = child.stdout.take().expect("piped stdout");
    // Read the pipe as it fills, so the service never blocks on it.
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        stdout.read_to_string(&mut log).expect("read the log");
        log
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..1500 {
        if let Ok(r) = client.get(format!("{base}/order/ready")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "the order service did not become ready");

    // Act: more requests than one batch of lines, each with an id of its own.
    let requests = 2000;
    for i in 0..requests {
        let r = client
            .get(format!("{base}/order/feed"))
            .header("x-request-id", format!("logs-test-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait for the service");
    let log = reader.join().expect("the reader thread");

    // Assert
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        !log.contains('\u{1b}'),
        "terminal escape codes in a log written to a pipe: {:?}",
        log.lines().next()
    );
    for i in 0..requests {
        let id = format!("request_id=logs-test-{i}}}");
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
        assert_eq!(lines.len(), 1, "log lines of request {i}: {lines:?}");
        assert!(
            lines[0].contains("finished processing request") && lines[0].contains("status=200"),
            "{}",
            lines[0]
        );
    }
    assert!(log.contains("order service listening"), "{log}");
}
