//! Slow and silent clients against the real binary, on real sockets:
//! partial headers and a body that never finishes are cut within their
//! timeouts, on the main, TLS and metrics listeners; SIGTERM with such a
//! client connected still ends the process within the shutdown timeout,
//! and a write under way at the deadline is still finished and answered.
//!
//! Timeouts are set to 1-2 s; each bound is asserted with a generous upper
//! limit (a loaded machine is slow, never early).

use std::io::{Read, Write};

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::emulator::{app, Emulator};
use crate::harness::process::aws_env;
use crate::harness::proxy::{Fault, Proxy};
use crate::harness::tls::{connect, self_signed};
use crate::harness::{basic, Process, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};

/// Far above every timeout set here, far below "never".
const LIMIT: Duration = Duration::from_secs(10);

fn env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
        ("RUST_LOG", "info".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// Opens a connection to `addr` and sends `bytes`, then nothing more.
fn stall(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads until the server closes `stream`; what it sent, and how long the
/// server took to close (from `since`). Panics after a minute.
fn until_closed(mut stream: TcpStream, since: Instant) -> (String, Duration) {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection stayed open: {e}"),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), since.elapsed())
}

/// Headers cut short after the protocol is known, and after 2 bytes (before
/// hyper knows it is HTTP/1).
const PARTIAL_HEADERS: [&[u8]; 2] = [b"GET /healthz HTTP/1.1\r\nHost: keyhook\r\n", b"GE"];

#[test]
fn partial_headers_are_cut_within_the_header_timeout_on_every_listener() {
    let server = Process::spawn(&env(&[
        ("KEYHOOK_HEADER_TIMEOUT_SECS", "1"),
        ("KEYHOOK_METRICS_LISTEN", "127.0.0.1:0"),
    ]));
    let metrics: SocketAddr = server.metrics_url()["http://".len()..].parse().unwrap();
    for addr in [server.addr, metrics] {
        for partial in PARTIAL_HEADERS {
            let started = Instant::now();
            let stream = stall(addr, partial);
            let (answer, took) = until_closed(stream, started);
            assert!(took < LIMIT, "{addr} {partial:?}: closed after {took:?}");
            assert!(!answer.contains(" 200 "), "{answer}");
        }
    }
    // An idle keep-alive connection is closed too, after its answer.
    let started = Instant::now();
    let stream = stall(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: keyhook\r\n\r\n",
    );
    let (answer, took) = until_closed(stream, started);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < LIMIT, "idle connection closed after {took:?}");
}

#[tokio::test]
async fn the_tls_listener_cuts_a_stalled_handshake_and_partial_headers() {
    let pem = self_signed();
    let (cert, key) = (
        pem.cert.display().to_string(),
        pem.key.display().to_string(),
    );
    let server = Process::spawn(&env(&[
        ("KEYHOOK_HEADER_TIMEOUT_SECS", "1"),
        ("KEYHOOK_TLS_CERT", cert.as_str()),
        ("KEYHOOK_TLS_KEY", key.as_str()),
    ]));

    // No handshake at all.
    let started = Instant::now();
    let (_, took) = until_closed(stall(server.addr, b""), started);
    assert!(took < LIMIT, "stalled handshake closed after {took:?}");

    // A handshake, then half a request.
    let mut tls = connect(server.addr, &pem).await;
    let started = Instant::now();
    tls.write_all(PARTIAL_HEADERS[0]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tls.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the TLS connection stayed open");
    let took = started.elapsed();
    assert!(
        took < LIMIT,
        "partial headers over TLS closed after {took:?}"
    );
    assert!(!String::from_utf8_lossy(&answer).contains(" 200 "));
}

#[test]
fn a_body_that_never_finishes_is_cut_within_the_request_timeout() {
    let server = Process::spawn(&env(&[("KEYHOOK_REQUEST_TIMEOUT_SECS", "2")]));
    // Both doors read the body before answering (the signature covers it;
    // Basic auth passes first).
    let requests = [
        "POST /readme/webhook HTTP/1.1\r\nHost: keyhook\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"email\":"
            .to_string(),
        format!(
            "POST /v1/createCredentials HTTP/1.1\r\nHost: keyhook\r\nAuthorization: {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"appName\":",
            basic(&format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"))
        ),
    ];
    for request in requests {
        let started = Instant::now();
        let stream = stall(server.addr, request.as_bytes());
        let (answer, took) = until_closed(stream, started);
        assert!(took < LIMIT, "closed after {took:?}");
        assert!(took >= Duration::from_secs(1), "cut before its timeout");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    server.wait_for_log(
        "request body not received in time (KEYHOOK_REQUEST_TIMEOUT_SECS or shutdown); connection closed",
    );
}

#[test]
fn sigterm_with_slow_clients_connected_exits_0_within_the_shutdown_timeout() {
    // Client timeouts far beyond the test: only shutdown may end them.
    let mut server = Process::spawn(&env(&[
        ("KEYHOOK_HEADER_TIMEOUT_SECS", "600"),
        ("KEYHOOK_REQUEST_TIMEOUT_SECS", "600"),
        ("KEYHOOK_SHUTDOWN_TIMEOUT_SECS", "2"),
        ("KEYHOOK_AWS_TIMEOUT_SECS", "60"),
    ]));
    let body = stall(
        server.addr,
        b"POST /readme/webhook HTTP/1.1\r\nHost: keyhook\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    );
    let headers = stall(server.addr, PARTIAL_HEADERS[0]);
    // Both are being served before the signal.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.terminate();
    let exit = server.wait_exit(Duration::from_secs(60));
    let took = started.elapsed();
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    assert!(took < LIMIT, "exited {took:?} after SIGTERM");
    for stream in [body, headers] {
        let (answer, _) = until_closed(stream, started);
        assert!(!answer.contains(" 200 "), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_under_way_at_the_shutdown_deadline_finishes_and_is_answered() {
    let emu = Emulator::new(1).await;
    let proxy = Proxy::start(&emu.endpoint).await;
    let mut env = env(&[
        ("KEYHOOK_SHUTDOWN_TIMEOUT_SECS", "1"),
        ("KEYHOOK_AWS_TIMEOUT_SECS", "30"),
        ("KEYHOOK_AWS_MAX_ATTEMPTS", "1"),
    ]);
    env.extend(aws_env(&proxy.endpoint));
    let mut server = Process::spawn(&env);
    server.wait_for("/readyz").await;
    // The key's creation takes 4 s: past the shutdown deadline.
    proxy.fail("CreateApiKey", Fault::Delay(Duration::from_secs(4)), 1);
    let plan = &emu.seed.plans[0];
    let body = app("late@corp.com", "late-write", &emu.seed.api_id, &[plan]);
    let server = Arc::new(server);
    let create = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.sensedia("createCredentials", &body).await })
    };
    let started = Instant::now();
    while proxy.faulted("CreateApiKey") == 0 {
        assert!(started.elapsed() < LIMIT, "the create never reached AWS");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.terminate();
    let answer = create.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "answered only after the deadline"
    );
    let mut server = Arc::into_inner(server).unwrap();
    let exit = server.wait_exit(Duration::from_secs(60));
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}
