//! Load and shutdown. 10,000 mixed requests (logins, creates, revokes,
//! health) against one server on the embedded store, 32 at a time, with
//! zero errors. Then SIGTERM to the real binary in the middle of a burst:
//! every request the server had accepted is answered, nothing is cut off
//! mid-answer, new connections are refused, and the process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::Process;
use crate::harness::{base_config, ApiClient, TestApp, README_SECRET};
use reqwest::StatusCode;
use serde_json::{json, Value};

const REQUESTS: usize = 10_000;
const CONCURRENCY: usize = 32;
const READERS: usize = 50;

fn reader(i: usize) -> String {
    format!("reader{}@load.io", i % READERS)
}

/// Request `i` of the mix: 70% logins, 10% creates, 5% revokes, 15% health.
async fn one(server: &ApiClient, i: usize, seeded: &[String]) -> Result<(), String> {
    let r = i % 20;
    let (what, status, body) = match r {
        0..=13 => {
            let response = server.login(&reader(i)).await;
            ("login", response.status(), response.text().await)
        }
        14 | 15 => {
            let body = json!({"appName": format!("Load {i}"), "appSlug": format!("load-{i}"), "developer": reader(i)});
            let response = server.sensedia("createCredentials", &body).await;
            ("create", response.status(), response.text().await)
        }
        16 => {
            let body = json!({"appSlug": format!("load-{}", i - 2), "credentialType": "API_KEY"});
            let response = server.sensedia("revokeCredentials", &body).await;
            ("revoke", response.status(), response.text().await)
        }
        17 | 18 => {
            let response = server.get_as_portal("/healthz").await;
            ("healthz", response.status(), response.text().await)
        }
        _ => {
            let response = server.get_as_portal("/v1/health").await;
            ("v1/health", response.status(), response.text().await)
        }
    };
    let body = body.map_err(|e| format!("#{i} {what}: body: {e}"))?;
    let expected = match what {
        "login" | "create" | "healthz" => StatusCode::OK,
        _ => StatusCode::NO_CONTENT,
    };
    if status != expected {
        return Err(format!("#{i} {what}: {status} {body:.200}"));
    }
    let value: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).map_err(|e| format!("#{i} {what}: {e}: {body:.200}"))?
    };
    let right = match what {
        "login" => value["keys"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k["apiKey"] == seeded[i % READERS])),
        "create" => value["apiKey"].as_str().is_some_and(|k| k.len() >= 30),
        "healthz" => value["status"] == "ok",
        _ => body.is_empty(),
    };
    if right {
        Ok(())
    } else {
        Err(format!("#{i} {what}: unexpected answer {body:.200}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_requests_with_zero_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config.data_dir = dir.path().to_path_buf();
    let server = TestApp::spawn(&config, None).await;
    let mut seeded = Vec::new();
    for i in 0..READERS {
        let body =
            json!({"appName": "Seed", "appSlug": format!("seed-{i}"), "developer": reader(i)});
        let created: Value = server
            .sensedia("createCredentials", &body)
            .await
            .json()
            .await
            .unwrap();
        seeded.push(created["apiKey"].as_str().unwrap().to_string());
    }
    let seeded = Arc::new(seeded);
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = server.api.clone();
            let (next, errors, seeded) = (next.clone(), errors.clone(), seeded.clone());
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        return done;
                    }
                    if let Err(e) = one(&client, i, &seeded).await {
                        errors.lock().unwrap().push(e);
                    }
                    done += 1;
                }
            })
        })
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let errors = errors.lock().unwrap().clone();
    assert_eq!(done, REQUESTS);
    assert!(
        errors.is_empty(),
        "{} errors in {REQUESTS} requests ({elapsed:?}); first ones:\n{}",
        errors.len(),
        errors
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("{REQUESTS} requests, {CONCURRENCY} at a time, in {elapsed:?}");
    // The revoked apps are gone, the seeded ones are not.
    let keys = server.login_keys(&reader(0)).await.unwrap();
    assert!(keys.iter().any(|k| k["apiKey"] == seeded[0]));
    server.stop().await;
}

/// How one request of the burst ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A whole HTTP answer with this status.
    Answered(u16),
    /// The connection was refused: the server no longer listens.
    Refused,
    /// Connected, but closed without a byte of answer.
    Closed { connected_before_signal: bool },
    /// Part of an answer, then the connection ended.
    CutOff(String),
}

/// Reads one HTTP/1.1 answer to the end (the server closes after it).
fn read_answer(stream: &mut TcpStream) -> Result<(u16, String), String> {
    let mut raw = Vec::new();
    let result = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    if raw.is_empty() {
        return Err(String::new());
    }
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{result:?}: {text}"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| text.clone())?;
    let length: Option<usize> = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())
            .flatten()
    });
    if length.is_some_and(|n| n != body.len()) {
        return Err(format!("{result:?}: {text}"));
    }
    Ok((status, body.to_string()))
}

fn signed_login(email: &str) -> (String, String) {
    let body = json!({ "email": email }).to_string();
    let sig =
        keyhook::readme::signature::sign(README_SECRET, keyhook::clock::now_ms(), body.as_bytes());
    let head = format!(
        "POST /readme/webhook HTTP/1.1\r\nHost: keyhook\r\nConnection: close\r\n\
         Content-Type: application/json\r\nReadMe-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    (head, body)
}

/// One request of the burst over a fresh connection.
fn burst_request(port: u16, n: usize, signalled: &AtomicBool) -> Outcome {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(_) => return Outcome::Refused,
    };
    let connected_before_signal = !signalled.load(Ordering::SeqCst);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = if n % 2 == 0 {
        "GET /healthz HTTP/1.1\r\nHost: keyhook\r\nConnection: close\r\n\r\n".to_string()
    } else {
        let (head, body) = signed_login("burst@load.io");
        format!("{head}{body}")
    };
    if stream.write_all(request.as_bytes()).is_err() {
        return Outcome::Closed {
            connected_before_signal,
        };
    }
    match read_answer(&mut stream) {
        Ok((status, _)) => Outcome::Answered(status),
        Err(e) if e.is_empty() => Outcome::Closed {
            connected_before_signal,
        },
        Err(e) => Outcome::CutOff(e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_answers_every_accepted_request_and_exits_0() {
    let mut child = Process::spawn(&[
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        ("KEYHOOK_README_PROVISION", "true".into()),
        ("RUST_LOG", "warn".into()),
    ]);
    child.wait_for("/healthz").await;
    let port = child.addr.port();
    // The burst's reader exists, so its logins are plain reads.
    let setup = child.api.clone();
    assert_eq!(setup.login_keys("burst@load.io").await.unwrap().len(), 1);

    // Requests surely in flight at the signal: headers sent and accepted,
    // the body only half sent, so keyhook is inside the request.
    let mut slow = Vec::new();
    for i in 0..8 {
        let (head, body) = signed_login(&format!("slow{i}@load.io"));
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let half = body.len() / 2;
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body.as_bytes()[..half]).unwrap();
        slow.push((stream, body[half..].to_string()));
    }

    let signalled = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (signalled, outcomes) = (signalled.clone(), outcomes.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                for n in 0.. {
                    let outcome = burst_request(port, t + n, &signalled);
                    let refused = outcome == Outcome::Refused;
                    outcomes.lock().unwrap().push(outcome);
                    if (refused && signalled.load(Ordering::SeqCst)) || Instant::now() > deadline {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = outcomes.lock().unwrap().len();
    signalled.store(true, Ordering::SeqCst);
    child.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The slow requests finish after the signal and are answered in full.
    let slow_answers: Vec<_> = tokio::task::spawn_blocking(move || {
        slow.into_iter()
            .map(|(mut stream, rest)| {
                stream.write_all(rest.as_bytes()).unwrap();
                read_answer(&mut stream)
            })
            .collect()
    })
    .await
    .unwrap();
    for threads in threads {
        threads.join().unwrap();
    }
    let status = child.wait_exit(Duration::from_secs(15));
    let outcomes = outcomes.lock().unwrap().clone();

    for (i, answer) in slow_answers.iter().enumerate() {
        let (status, body) = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("in-flight request {i} not answered: {e:?}"));
        assert_eq!(*status, 200, "{body}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["email"], format!("slow{i}@load.io"));
        assert_eq!(body["keys"].as_array().map(Vec::len), Some(1));
    }
    let answered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Answered(_)))
        .count();
    let refused = outcomes.iter().filter(|o| **o == Outcome::Refused).count();
    let closed_early: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Closed {
                    connected_before_signal: true
                }
            )
        })
        .collect();
    let closed_late = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Closed {
                    connected_before_signal: false
                }
            )
        })
        .count();
    let cut_off: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::CutOff(_)))
        .collect();
    let bad_status: Vec<_> = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Answered(s) if *s != 200))
        .collect();
    println!(
        "burst: {} requests ({before} before the signal): {answered} answered, {refused} refused, \
         {} closed unanswered though connected before the signal, {closed_late} closed after \
         connecting once the signal was sent, {} cut off",
        outcomes.len(),
        closed_early.len(),
        cut_off.len()
    );
    assert!(before > 50, "the burst was running: {before}");
    assert!(refused > 0, "keyhook stopped accepting");
    assert!(cut_off.is_empty(), "answers cut off: {cut_off:?}");
    assert!(bad_status.is_empty(), "{bad_status:?}");
    // Connections the kernel completed just before the signal but keyhook
    // had not yet read a request from (the listen backlog, or a connection
    // accepted a moment before) are closed unanswered by the graceful
    // shutdown; they are counted above, not held against the server: the
    // requests keyhook was inside of are the slow ones, all answered.
    assert!(status.success(), "exit status {status}");
}
