//! A fault-injecting HTTP proxy for tests: sits between lifeboat and the S3
//! test server and, on a chosen share of requests, answers 500, 503 or 429
//! itself, resets the connection before the request reaches the server or
//! after it did (the answer lost), cuts the response body short, or stalls
//! before forwarding. Every request goes upstream on a connection of its
//! own, and every answer closes the client's connection.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// Answers 500 InternalError without asking the server.
    Status500,
    /// Answers 503 SlowDown without asking the server.
    Status503,
    /// Answers 429 without asking the server.
    Status429,
    /// Resets the connection; the server never sees the request.
    ResetBeforeForward,
    /// Forwards the request, then resets: the server acted, the answer is lost.
    ResetAfterForward,
    /// Forwards, then sends the head and half the body, and resets.
    CutBody,
    /// Waits a second, then forwards normally.
    Stall,
}

const FAULTS: [Fault; 7] = [
    Fault::Status500,
    Fault::Status503,
    Fault::Status429,
    Fault::ResetBeforeForward,
    Fault::ResetAfterForward,
    Fault::CutBody,
    Fault::Stall,
];

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to use as `AWS_ENDPOINT_URL`.
    pub endpoint: String,
    rate: Arc<AtomicU32>,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

/// Requests seen and faults injected.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests read from clients.
    pub requests: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
}

impl Stats {
    /// Faults injected in all.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://HOST:PORT`) failing `percent`
    /// of requests, with faults drawn from `seed`.
    pub fn start(upstream: &str, percent: u32, seed: u64) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rate = Arc::new(AtomicU32::new(percent));
        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicU64::new(seed.max(1)));
        {
            let (rate, stats, stop) = (rate.clone(), stats.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (rate, stats, upstream) = (rate.clone(), stats.clone(), upstream.clone());
                    let seed = counter
                        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst)
                        .max(1);
                    std::thread::spawn(move || {
                        let _ = serve(conn, &upstream, &rate, &stats, seed);
                    });
                }
            });
        }
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            rate,
            stats,
            stop,
            port,
        }
    }

    /// Changes the share of requests that fail.
    pub fn set_rate(&self, percent: u32) {
        self.rate.store(percent, Ordering::SeqCst);
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One HTTP message: its head lines and raw body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head with `Connection: close`, ready to send.
    fn head_closing(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            if !k.eq_ignore_ascii_case("connection") && !k.eq_ignore_ascii_case("keep-alive") {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// Reads one message; `None` at a clean end of stream. `no_body` for the
/// answer to a HEAD request.
fn read_message(r: &mut impl BufRead, is_request: bool, no_body: bool) -> Option<Message> {
    let mut start = String::new();
    if r.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let start = start.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut m = Message {
        start,
        headers,
        body: Vec::new(),
    };
    let status: u16 = if is_request {
        0
    } else {
        m.start.split(' ').nth(1)?.parse().ok()?
    };
    if no_body || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(m);
    }
    if let Some(len) = m.header("content-length") {
        let len: usize = len.parse().ok()?;
        m.body = vec![0; len];
        r.read_exact(&mut m.body).ok()?;
    } else if m
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line).ok()?;
            m.body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t).ok()?;
                    m.body.extend_from_slice(t.as_bytes());
                    if t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            m.body.extend_from_slice(&chunk);
        }
    } else if !is_request {
        r.read_to_end(&mut m.body).ok()?;
    }
    Some(m)
}

/// Closes with a TCP reset rather than a clean end of stream.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn next_random(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn serve(
    client: TcpStream,
    upstream: &str,
    rate: &AtomicU32,
    stats: &Mutex<Stats>,
    mut seed: u64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let Some(request) = read_message(&mut reader, true, false) else {
        return Ok(());
    };
    let fault = (next_random(&mut seed) % 100 < u64::from(rate.load(Ordering::SeqCst)))
        .then(|| FAULTS[(next_random(&mut seed) % FAULTS.len() as u64) as usize]);
    {
        let mut s = stats.lock().unwrap();
        s.requests += 1;
        if let Some(f) = fault {
            *s.faults.entry(format!("{f:?}")).or_default() += 1;
        }
    }
    let mut client = client;
    let status = match fault {
        Some(Fault::Status500) => Some((500, "Internal Server Error", "InternalError")),
        Some(Fault::Status503) => Some((503, "Service Unavailable", "SlowDown")),
        Some(Fault::Status429) => Some((429, "Too Many Requests", "TooManyRequests")),
        _ => None,
    };
    if let Some((code, reason, s3_code)) = status {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{s3_code}</Code>\
             <Message>injected by the test proxy</Message></Error>"
        );
        let head = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        client.write_all(head.as_bytes())?;
        client.write_all(body.as_bytes())?;
        return Ok(());
    }
    if fault == Some(Fault::ResetBeforeForward) {
        reset(client);
        return Ok(());
    }
    if fault == Some(Fault::Stall) {
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut up = TcpStream::connect(upstream)?;
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    up.write_all(&request.head_closing())?;
    up.write_all(&request.body)?;
    let is_head = request.start.starts_with("HEAD ");
    let Some(answer) = read_message(&mut BufReader::new(up), false, is_head) else {
        reset(client);
        return Ok(());
    };
    match fault {
        Some(Fault::ResetAfterForward) => reset(client),
        Some(Fault::CutBody) => {
            client.write_all(&answer.head_closing())?;
            client.write_all(&answer.body[..answer.body.len() / 2])?;
            client.flush()?;
            reset(client);
        }
        _ => {
            client.write_all(&answer.head_closing())?;
            client.write_all(&answer.body)?;
            client.flush()?;
        }
    }
    Ok(())
}
