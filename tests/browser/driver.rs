//! A headless Chromium driven over WebDriver (ChromeDriver), and the all-in-one server it
//! visits, both private to one test.

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The all-in-one server (`cargo run --release` in miniature) on a port of its own.
pub struct App {
    pub base: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl App {
    pub async fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = feedline::Config {
            bind: listener.local_addr().unwrap(),
            data_dir: dir.path().join("data"),
            feed_page_size: None,
            feed_store_archives: true,
            command: None,
        };
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(feedline::run(listener, config, shutdown.clone()));
        App {
            base,
            shutdown,
            server,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.unwrap().expect("clean exit");
    }
}

/// One browser session. Screenshots go to `target/tmp/browser/<test>/`.
pub struct Browser {
    pub client: Client,
    base: String,
    shots: PathBuf,
    shot_no: u32,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The ChromeDriver process, stopped with the test (Chromium exits with its session).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where ChromeDriver is: `CHROMEDRIVER`, else `chromedriver` on the `PATH`.
fn chromedriver() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMEDRIVER") {
        return path.into();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromedriver"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the browser tests need Chromium and ChromeDriver: \
                 `apt-get install chromium chromium-driver` (scripts/test does it when run as \
                 root), or point CHROMEDRIVER at a chromedriver binary"
            )
        })
}

impl Browser {
    pub async fn start(test: &str, base: &str) -> Browser {
        // ChromeDriver cannot be told to pick its own port; a port just freed by the OS is
        // free for it in practice, and a clash fails loudly below.
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(Driver)
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-quic",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        // Plain HTTP to a local ChromeDriver: no TLS stack needed.
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            base: base.to_owned(),
            shots,
            shot_no: 0,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn open(&mut self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.fragment() {
            Some(f) => format!("{}#{f}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The text a person sees in the element `css` (the first match).
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// The visible text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap());
        }
        out
    }

    /// Follows the link with exactly this text and waits for the next page.
    pub async fn click_link(&self, text: &str) {
        self.navigate_by(Locator::LinkText(text)).await;
    }

    /// Presses the button with exactly this text (a form submit) and waits for the next page.
    pub async fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.navigate_by(Locator::XPath(&xpath)).await;
    }

    /// Clicks `target` and waits until a new document has loaded. A click may return before
    /// the navigation it starts has begun, so the old document is marked and the wait ends only
    /// once a document without the mark is complete (a reload of the same URL included).
    async fn navigate_by(&self, target: Locator<'_>) {
        self.eval("window.__feedlineOld = true; return true").await;
        self.client
            .find(target)
            .await
            .unwrap_or_else(|e| panic!("nothing to click at {target:?}: {e}"))
            .click()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.__feedlineOld === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await;
            // While the old document unloads, scripts may fail: that is "not yet".
            if matches!(loaded, Ok(serde_json::Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no new page after clicking {target:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the content of the input `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    pub async fn value(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Saves a screenshot of the page as `NN-name.png` in the test's folder.
    pub async fn shot(&mut self, name: &str) {
        self.shot_no += 1;
        let png = self.client.screenshot().await.unwrap();
        let path = self.shots.join(format!("{:02}-{name}.png", self.shot_no));
        std::fs::write(&path, png).unwrap();
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}
