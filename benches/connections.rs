//! Connections and long polls at scale, against a running order service (`bench/connections`
//! starts one): the resident memory each idle keep-alive connection and each waiting long poll
//! adds, whether it is given back once they end, and how long `N` long polls take to be woken
//! by one commit.
//!
//! The client is raw HTTP/1.1 on tokio, one small task and one 8 KB read buffer per connection, so
//! it is not the bottleneck; connections come from several loopback source addresses so that
//! 20 000 of them fit in the ephemeral port range.
//!
//! The wake-up is measured twice. First as the client reads each response, which on a machine
//! whose cores the client shares with the server includes the client's own wait for a core.
//! Then with the client silent during the wake: it reads nothing until the server is done, and
//! takes each response's arrival from the kernel's receive timestamp (`SO_TIMESTAMPNS`), set
//! when the bytes reached its socket (on loopback, inside the server's `write`). That is the
//! server's own latency, with both cores left to it: a load client that is not the bottleneck.
//!
//! Last, the floor: the same wake-up from a bare server that only writes a ready response,
//! measured both ways.
//!
//! Environment: `BENCH_ENCODING` (an `Accept-Encoding` for every request), `BENCH_URL` (the head, e.g. `http://127.0.0.1:8080/order/feed`), `BENCH_PID`
//! (the server's pid, for its memory), `BENCH_CONNECTIONS` (default 10 000).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

/// Source addresses 127.0.0.2..=127.0.0.(1 + SOURCES).
const SOURCES: u8 = 8;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set (see bench/connections)"))
}

/// How many descriptors `pid` has open (its connections among them).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// CPU time `pid` has used so far, user and system (from `/proc/<pid>/stat`).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server stat");
    // Fields after the command name (which may hold spaces), from field 3: utime is 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// Resident memory of `pid` in KB (VmRSS).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn connect(server: SocketAddr, i: usize) -> TcpStream {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8);
    for attempt in 0..50 {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(IpAddr::V4(source), 0))
            .expect("bind a source address");
        match socket.connect(server).await {
            Ok(s) => return s,
            Err(e) if attempt < 49 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("connect {server}: {e}"),
        }
    }
    unreachable!()
}

/// The status, the length of the head (its blank line included) and the `Content-Length` of a
/// response whose head is complete at the start of `buf`.
fn response_head(buf: &[u8]) -> Option<(u16, usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).expect("head");
    let status: u16 = head[9..12].parse().expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    Some((status, end + 4, length))
}

/// One response read from `stream`: its status and the instant its head arrived.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Instant) {
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some((status, end, length)) = response_head(buf) {
            let at = Instant::now();
            let mut have = buf.len() - end;
            while have < length {
                let n = stream.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "closed mid-body");
                have += n;
            }
            return (status, at);
        }
    }
}

/// Kernel receive timestamps: when bytes reached a socket, whatever its reader was doing then.
mod arrival {
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tokio::io::Interest;
    use tokio::net::TcpStream;

    /// Asks the kernel to stamp what `stream` receives from now on.
    pub fn enable(stream: &TcpStream) {
        let on: libc::c_int = 1;
        // SAFETY: a valid descriptor, and a c_int option value of the size given.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", io::Error::last_os_error());
    }

    /// One non-blocking `recvmsg`: the bytes read and the kernel's stamp of them.
    fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; zeroed is its empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: msg points at the buffers above, which outlive the call.
        let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stamp = None;
        // SAFETY: the control messages the kernel wrote into `control`, walked with its macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    stamp = Some(UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok((n as usize, stamp))
    }

    /// One whole response from `stream` (stamped with [`enable`] before it arrived): its status
    /// and when its head reached the socket.
    pub async fn read_response(stream: &TcpStream) -> (u16, SystemTime) {
        let fd = stream.as_raw_fd();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let mut head: Option<(u16, SystemTime, usize)> = None;
        loop {
            stream.readable().await.expect("readable");
            let (n, stamp) = match stream.try_io(Interest::READABLE, || recv(fd, &mut chunk)) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("recvmsg: {e}"),
            };
            assert!(n > 0, "the server closed the connection");
            buf.extend_from_slice(&chunk[..n]);
            if head.is_none() {
                if let Some((status, end, length)) = super::response_head(&buf) {
                    let at = stamp.expect("a receive timestamp (SO_TIMESTAMPNS)");
                    head = Some((status, at, end + length));
                }
            }
            if let Some((status, at, total)) = head {
                if buf.len() >= total {
                    return (status, at);
                }
            }
        }
    }
}

/// Durations of `stamps` after `from`, sorted.
fn since(from: SystemTime, stamps: &[SystemTime]) -> Vec<Duration> {
    let mut d: Vec<Duration> = stamps
        .iter()
        .map(|t| t.duration_since(from).unwrap_or_default())
        .collect();
    d.sort();
    d
}

/// How long a silent client waits before it reads anything: far longer than a wake-up takes
/// here (responses that arrive later are still read, and stamped, when they come).
const SILENT: Duration = Duration::from_secs(3);

fn request(host: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
}

async fn etag(server: SocketAddr, host: &str, path: &str, extra: &str) -> String {
    let all = whole_response(server, host, path, extra).await;
    let text = String::from_utf8_lossy(&all);
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .expect("the head has an ETag")
}

/// Opens `n` connections and sends `req` on each; with `wait_reply`, reads the reply too.
async fn open(server: SocketAddr, n: usize, req: Arc<Vec<u8>>, wait_reply: bool) -> Vec<TcpStream> {
    let gate = Arc::new(Semaphore::new(256));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let gate = gate.clone();
            let req = req.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("gate");
                let mut s = connect(server, i).await;
                s.write_all(&req).await.expect("write");
                if wait_reply {
                    let mut buf = Vec::with_capacity(1024);
                    let (status, _) = read_response(&mut s, &mut buf).await;
                    assert_eq!(status, 200);
                }
                s
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(n);
    for t in tasks {
        streams.push(t.await.expect("connection task"));
    }
    streams
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn settle(pid: u32) -> u64 {
    // Memory is read once the server has had time to finish with what it was sent, to park
    // its idle connections (1 to 2 s after their last request) and for jemalloc to give freed
    // pages back (1 s).
    tokio::time::sleep(Duration::from_secs(4)).await;
    rss_kb(pid)
}

fn order_request(host: &str) -> String {
    let body = r#"{"customerId": 1, "lines": [{"itemId": 2, "count": 3}]}"#;
    format!(
        "POST /order/orders HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn place_order(server: SocketAddr, host: &str) -> Instant {
    let mut s = connect(server, 0).await;
    s.write_all(order_request(host).as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let (status, at) = read_response(&mut s, &mut buf).await;
    assert_eq!(status, 201, "placing the order");
    at
}

/// Places an order: when the POST was sent, and when its `201` reached the client's socket.
async fn place_order_stamped(server: SocketAddr, host: &str) -> (SystemTime, SystemTime) {
    let mut s = connect(server, 0).await;
    arrival::enable(&s);
    let sent = SystemTime::now();
    s.write_all(order_request(host).as_bytes())
        .await
        .expect("write");
    let (status, at) = arrival::read_response(&s).await;
    assert_eq!(status, 201, "placing the order");
    (sent, at)
}

/// Waits until the server holds `n` long polls (its `http_requests_held` gauge), up to 60 s.
async fn until_held(server: SocketAddr, host: &str, metrics: &str, n: usize) {
    let started = Instant::now();
    loop {
        let all = whole_response(server, host, metrics, "").await;
        let held = String::from_utf8_lossy(&all)
            .lines()
            .find_map(|l| l.strip_prefix("http_requests_held "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if held as usize >= n {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {held} of {n} long polls held"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The floor on this machine: a server that does nothing but write one ready response to each
/// of `n` waiting connections when told, read by this same client in the same way. The server
/// is this program again in a process of its own ([`serve_floor`]). Returns the wake-ups from
/// the moment it is told, sorted. What the order service's wake-up takes above this is its own.
async fn floor(n: usize, response: &[u8], silent: bool) -> Vec<Duration> {
    use std::io::{BufRead, Write};
    let file = std::env::temp_dir().join(format!("feedline-floor-{}", std::process::id()));
    std::fs::write(&file, response).expect("write the response");
    let mut child = std::process::Command::new(std::env::current_exe().expect("this program"))
        .env("BENCH_FLOOR_SERVE", &file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the floor server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the floor server's address");
    let server: SocketAddr = line.trim().parse().expect("an address");
    let streams = open(server, n, Arc::new(Vec::new()), false).await;
    // Every connection accepted and waiting before the word is given.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut word = child.stdin.take().expect("stdin");
    let woken = if silent {
        for s in &streams {
            arrival::enable(s);
        }
        let told_at = SystemTime::now();
        word.write_all(b"go\n").expect("tell the floor server");
        tokio::time::sleep(SILENT).await;
        let mut stamps = Vec::with_capacity(n);
        for s in &streams {
            let (status, at) = arrival::read_response(s).await;
            assert_eq!(status, 200);
            stamps.push(at);
        }
        since(told_at, &stamps)
    } else {
        let readers: Vec<_> = streams
            .into_iter()
            .map(|mut s| {
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    read_response(&mut s, &mut buf).await
                })
            })
            .collect();
        let told_at = Instant::now();
        word.write_all(b"go\n").expect("tell the floor server");
        let mut woken = Vec::with_capacity(n);
        for r in readers {
            let (status, at) = r.await.expect("reader");
            assert_eq!(status, 200);
            woken.push(at.saturating_duration_since(told_at));
        }
        woken.sort();
        woken
    };
    drop(word);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&file);
    woken
}

/// The floor server (`BENCH_FLOOR_SERVE=<file of the response>`): prints its address, takes
/// connections, and when a line arrives on stdin writes the response to each; on two threads,
/// as many as the order service's workers.
fn serve_floor(file: &str) {
    let response = Arc::new(std::fs::read(file).expect("the response"));
    let (go, told) = tokio::sync::watch::channel(false);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = go.send(true);
        // Until the parent closes stdin.
        let _ = std::io::stdin().read_line(&mut line);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind");
        // A deep queue: 10 000 connections arrive at once.
        let listener = socket.listen(4096).expect("listen");
        println!("{}", listener.local_addr().expect("address"));
        loop {
            // A connection its client gave up on before it was accepted fails alone.
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let (mut told, response) = (told.clone(), response.clone());
            tokio::spawn(async move {
                if told.wait_for(|go| *go).await.is_ok() {
                    let _ = s.write_all(&response).await;
                }
                // Held open until the client closes it.
                let mut rest = [0u8; 64];
                while matches!(s.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
}

/// A whole response to a GET of `path`, as the server sent it.
async fn whole_response(server: SocketAddr, host: &str, path: &str, extra: &str) -> Vec<u8> {
    let mut s = connect(server, 0).await;
    s.write_all(&request(
        host,
        path,
        &format!("{extra}Connection: close\r\n"),
    ))
    .await
    .expect("write");
    let mut all = Vec::new();
    s.read_to_end(&mut all).await.expect("read");
    all
}

fn main() {
    if let Ok(file) = std::env::var("BENCH_FLOOR_SERVE") {
        return serve_floor(&file);
    }
    let url = url::Url::parse(&env("BENCH_URL")).expect("BENCH_URL");
    let pid: u32 = env("BENCH_PID").parse().expect("BENCH_PID");
    let n: usize = std::env::var("BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let server = url.socket_addrs(|| None).expect("address")[0];
    let host = format!("{}:{}", server.ip(), server.port());
    let path = url.path().to_owned();
    // BENCH_ENCODING (e.g. gzip): the Accept-Encoding every request sends, as consumers do.
    let coding = std::env::var("BENCH_ENCODING")
        .map(|e| format!("Accept-Encoding: {e}\r\n"))
        .unwrap_or_default();
    // One thread: the server gets the other core, and one thread reading 10 000 replies is
    // far faster than the server writing them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let base = settle(pid).await;
        println!("server RSS at start: {:.1} MB", base as f64 / 1024.0);

        let idle = open(server, n, Arc::new(request(&host, &path, &coding)), true).await;
        let with_idle = settle(pid).await;
        println!(
            "{n} idle keep-alive connections, each after one 200: +{:.1} MB, {:.1} KB each",
            (with_idle as f64 - base as f64) / 1024.0,
            (with_idle as f64 - base as f64) / n as f64
        );
        drop(idle);
        let after_idle = settle(pid).await;
        println!(
            "after they close: {:.1} MB ({:+.1} MB over the start), {} descriptors open",
            after_idle as f64 / 1024.0,
            (after_idle as f64 - base as f64) / 1024.0,
            open_fds(pid)
        );

        let tag = etag(server, &host, &path, &coding).await;
        let poll = request(
            &host,
            &path,
            &format!("{coding}If-None-Match: {tag}\r\nPrefer: wait=30\r\n"),
        );
        let before_polls = rss_kb(pid);
        let mut polls = open(server, n, Arc::new(poll), false).await;
        let with_polls = settle(pid).await;
        println!(
            "{n} waiting long polls: +{:.1} MB, {:.1} KB each",
            (with_polls as f64 - before_polls as f64) / 1024.0,
            (with_polls as f64 - before_polls as f64) / n as f64
        );

        let readers: Vec<_> = polls
            .drain(..)
            .map(|mut s| {
                tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    let (status, at) = read_response(&mut s, &mut buf).await;
                    (status, at, s)
                })
            })
            .collect();
        // BENCH_WAKE_DELAY_MS: a pause before the commit, to attach a profiler to the wake alone.
        if let Some(ms) = std::env::var("BENCH_WAKE_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let started = Instant::now();
        let committed = place_order(server, &host).await;
        let mut woken = Vec::with_capacity(n);
        let mut early = 0;
        let mut streams = Vec::with_capacity(n);
        for r in readers {
            let (status, at, s) = r.await.expect("reader");
            assert_eq!(status, 200, "a long poll ended without the new entry");
            if at < started {
                early += 1;
            }
            woken.push(at.saturating_duration_since(committed));
            streams.push(s);
        }
        assert_eq!(early, 0, "long polls answered before the commit were not waiting");
        woken.sort();
        println!(
            "{n} long polls woken by one commit, from its 201: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (the POST took {:.1} ms)",
            percentile(&woken, 0.50).as_secs_f64() * 1e3,
            percentile(&woken, 0.99).as_secs_f64() * 1e3,
            percentile(&woken, 1.0).as_secs_f64() * 1e3,
            (committed - started).as_secs_f64() * 1e3,
        );
        drop(streams);
        let after = settle(pid).await;
        println!(
            "after all end: {:.1} MB ({:+.1} MB over the start), {} descriptors open",
            after as f64 / 1024.0,
            (after as f64 - base as f64) / 1024.0,
            open_fds(pid)
        );

        // The same wake-up with the client silent until the server is done (the module's doc).
        let tag = etag(server, &host, &path, &coding).await;
        let poll = request(
            &host,
            &path,
            &format!("{coding}If-None-Match: {tag}\r\nPrefer: wait=30\r\n"),
        );
        let polls = open(server, n, Arc::new(poll), false).await;
        for s in &polls {
            arrival::enable(s);
        }
        let service = path.split('/').nth(1).unwrap_or("order");
        until_held(server, &host, &format!("/{service}/metrics"), n).await;
        let cpu_before = cpu_time(pid);
        let (sent, committed) = place_order_stamped(server, &host).await;
        tokio::time::sleep(SILENT).await;
        // Idle since well before the end of SILENT: what the commit and the wake cost it.
        let cpu = cpu_time(pid).saturating_sub(cpu_before);
        let mut stamps = Vec::with_capacity(n);
        for s in &polls {
            let (status, at) = arrival::read_response(s).await;
            assert_eq!(status, 200, "a long poll ended without the new entry");
            assert!(at >= sent, "a long poll answered before the commit was not waiting");
            stamps.push(at);
        }
        let woken = since(committed, &stamps);
        let from_post = since(sent, &stamps);
        println!(
            "{n} long polls woken by one commit, client silent, kernel receive stamps: from its 201 \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; from the POST sent p50 {:.1} ms, p99 {:.1} ms \
             (the 201 arrived {:.1} ms after the POST was sent); the server's CPU for the \
             commit and the wake: {:.0} ms, {:.1} µs per poll",
            percentile(&woken, 0.50).as_secs_f64() * 1e3,
            percentile(&woken, 0.99).as_secs_f64() * 1e3,
            percentile(&woken, 1.0).as_secs_f64() * 1e3,
            percentile(&from_post, 0.50).as_secs_f64() * 1e3,
            percentile(&from_post, 0.99).as_secs_f64() * 1e3,
            committed.duration_since(sent).unwrap_or_default().as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e6 / n as f64,
        );
        drop(polls);

        let response = whole_response(server, &host, &path, &coding).await;
        for silent in [false, true] {
            let floor = floor(n, &response, silent).await;
            println!(
                "floor: {n} ready responses of {} bytes written at one word by a bare tokio server, \
                 {}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                response.len(),
                if silent {
                    "client silent, kernel receive stamps"
                } else {
                    "read by this client"
                },
                percentile(&floor, 0.50).as_secs_f64() * 1e3,
                percentile(&floor, 0.99).as_secs_f64() * 1e3,
                percentile(&floor, 1.0).as_secs_f64() * 1e3,
            );
        }
    });
}
