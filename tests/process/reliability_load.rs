//! Load and shutdown. 10,000 mixed requests (logins, creates, revokes,
//! health) against one server on the embedded store, 32 at a time, with
//! zero errors, and afterwards every reader sees exactly its apps that were
//! not revoked. Then SIGTERM to the real binary in the middle of a burst:
//! every request keyhook had started reading is answered, whatever got an
//! answer got all of it, the only requests closed unanswered are the few the
//! README documents, new connections are refused, and the process exits 0.

use std::collections::{BTreeMap, BTreeSet};
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

/// Request `i` is a create of app `load-i` when `i % 20` is 14 or 15; the
/// one of 14 is revoked by request `i + 2`.
fn is_create(i: usize) -> bool {
    matches!(i % 20, 14 | 15)
}

fn is_revoked(i: usize) -> bool {
    i % 20 == 14
}

/// What the workers share.
struct Mix {
    seeded: Vec<String>,
    /// The API key each create was answered with, by request number.
    created: Mutex<BTreeMap<usize, String>>,
    /// Set once request `i` has been answered (or failed), so the revoke of
    /// an app is sent after its create: a revoke overtaking the create would
    /// find nothing, and the app would rightly stay.
    finished: Vec<AtomicBool>,
}

/// Request `i` of the mix: 70% logins, 10% creates, 5% revokes, 15% health.
async fn one(server: &ApiClient, i: usize, mix: &Mix) -> Result<(), String> {
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
            while !mix.finished[i - 2].load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
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
            .is_some_and(|keys| keys.iter().any(|k| k["apiKey"] == mix.seeded[i % READERS])),
        "create" => match value["apiKey"].as_str() {
            Some(key) if key.len() >= 30 => {
                mix.created.lock().unwrap().insert(i, key.to_string());
                true
            }
            _ => false,
        },
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
    let mix = Arc::new(Mix {
        seeded,
        created: Mutex::default(),
        finished: (0..REQUESTS).map(|_| AtomicBool::new(false)).collect(),
    });
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let client = server.api.clone();
            let (next, errors, mix) = (next.clone(), errors.clone(), mix.clone());
            tokio::spawn(async move {
                let mut done = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        return done;
                    }
                    if let Err(e) = one(&client, i, &mix).await {
                        errors.lock().unwrap().push(e);
                    }
                    mix.finished[i].store(true, Ordering::SeqCst);
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
    // Every revoked app is gone and every other app remains: each reader
    // sees exactly its seeded key and the keys of its unrevoked apps.
    let created = mix.created.lock().unwrap().clone();
    assert_eq!(
        created.len(),
        (0..REQUESTS).filter(|i| is_create(*i)).count()
    );
    for r in 0..READERS {
        let mut expected: BTreeSet<String> = (created.iter())
            .filter(|(i, _)| *i % READERS == r && !is_revoked(**i))
            .map(|(_, key)| key.clone())
            .collect();
        expected.insert(mix.seeded[r].clone());
        let seen: BTreeSet<String> = (server.login_keys(&reader(r)).await.unwrap().iter())
            .map(|k| k["apiKey"].as_str().unwrap().to_string())
            .collect();
        let revoked_seen: Vec<&usize> = (created.iter())
            .filter(|(i, key)| is_revoked(**i) && seen.contains(*key))
            .map(|(i, _)| i)
            .collect();
        assert!(
            revoked_seen.is_empty(),
            "{}: revoked apps still shown: load-{revoked_seen:?}",
            reader(r)
        );
        assert_eq!(seen, expected, "{}", reader(r));
    }
    // And the seeded ones are there (as the loop above checked for all).
    let keys = server.login_keys(&reader(0)).await.unwrap();
    assert!(keys.iter().any(|k| k["apiKey"] == mix.seeded[0]));
    server.stop().await;
}

/// Connections the burst keeps going at once, one per thread.
const THREADS: usize = 16;

/// Bounds a broken run; nothing is timed against it.
const PATIENCE: Duration = Duration::from_secs(60);

/// How one request of the burst ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// A whole HTTP answer, 200 with the right body.
    Answered,
    /// A whole HTTP answer, but not the right one.
    Wrong(String),
    /// The connection was refused: the server no longer listens.
    Refused,
    /// Connected, then closed (or reset) without a byte of answer.
    Closed,
    /// Part of an answer, then the connection ended.
    CutOff(String),
}

/// One request of the burst, and where it stood against the signal.
#[derive(Debug, Clone)]
struct Record {
    thread: usize,
    outcome: Outcome,
    /// The connection was up before SIGTERM was sent.
    connected_before_signal: bool,
    /// And it had ended before SIGTERM was sent.
    ended_before_signal: bool,
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
    if length.is_none_or(|n| n != body.len()) {
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

/// Whether `body` is the right answer to request `n` of the burst: health,
/// or the burst reader's login showing `key`.
fn right_answer(n: usize, status: u16, body: &str, key: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return false;
    };
    status == 200
        && if n % 2 == 0 {
            value == json!({"status": "ok"})
        } else {
            value["email"] == "burst@load.io"
                && value["keys"].as_array().map(Vec::len) == Some(1)
                && value["keys"][0]["apiKey"] == key
        }
}

/// One request of the burst over a fresh connection.
fn burst_request(thread: usize, n: usize, port: u16, signalled: &AtomicBool, key: &str) -> Record {
    let record = |outcome, connected_before_signal| Record {
        thread,
        outcome,
        connected_before_signal,
        ended_before_signal: !signalled.load(Ordering::SeqCst),
    };
    let mut stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(_) => return record(Outcome::Refused, false),
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
        return record(Outcome::Closed, connected_before_signal);
    }
    let outcome = match read_answer(&mut stream) {
        Ok((status, body)) if right_answer(n, status, &body, key) => Outcome::Answered,
        Ok((status, body)) => Outcome::Wrong(format!("{status} {body:.200}")),
        Err(e) if e.is_empty() => Outcome::Closed,
        Err(e) => Outcome::CutOff(e),
    };
    record(outcome, connected_before_signal)
}

/// Waits (bounded by [`PATIENCE`]) until `ready` holds of the records.
async fn await_records(
    records: &Mutex<Vec<Record>>,
    what: &str,
    ready: impl Fn(&[Record]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !ready(&records.lock().unwrap()) {
        assert!(Instant::now() < deadline, "the burst never reached: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
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
    let keys = setup.login_keys("burst@load.io").await.unwrap();
    assert_eq!(keys.len(), 1);
    let key: Arc<str> = keys[0]["apiKey"].as_str().unwrap().into();

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

    // Each thread sends one request after the other until, after the
    // signal, its connection is refused.
    let signalled = Arc::new(AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::<Record>::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (signalled, records, key) = (signalled.clone(), records.clone(), key.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + PATIENCE;
                for n in 0.. {
                    let record = burst_request(t, t + n, port, &signalled, &key);
                    let refused = record.outcome == Outcome::Refused;
                    records.lock().unwrap().push(record);
                    if refused && signalled.load(Ordering::SeqCst) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "thread {t} was never refused");
                }
            })
        })
        .collect();
    // Signal once every thread has had answers: the burst is running.
    await_records(&records, "answers on every thread", |r| {
        r.iter().filter(|r| r.outcome == Outcome::Answered).count() >= 4 * THREADS
    })
    .await;
    signalled.store(true, Ordering::SeqCst);
    child.terminate();
    // keyhook has stopped accepting: it is shutting down.
    await_records(&records, "a refused connection", |r| {
        r.iter().any(|r| r.outcome == Outcome::Refused)
    })
    .await;

    // The slow requests finish during the shutdown and are answered in full.
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
    let records = records.lock().unwrap().clone();

    for (i, answer) in slow_answers.iter().enumerate() {
        let (status, body) = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("in-flight request {i} not answered: {e:?}"));
        assert_eq!(*status, 200, "{body}");
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["email"], format!("slow{i}@load.io"));
        assert_eq!(body["keys"].as_array().map(Vec::len), Some(1));
    }

    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
    let answered = count(&|r| r.outcome == Outcome::Answered);
    let refused = count(&|r| r.outcome == Outcome::Refused);
    // In flight when the signal came, and answered anyway.
    let answered_across = count(&|r| {
        r.outcome == Outcome::Answered && r.connected_before_signal && !r.ended_before_signal
    });
    let closed_at_signal = count(&|r| r.outcome == Outcome::Closed && r.connected_before_signal);
    let closed_after_signal =
        count(&|r| r.outcome == Outcome::Closed && !r.connected_before_signal);
    let before = count(&|r| r.ended_before_signal);
    let most_on_a_thread = (0..THREADS)
        .map(|t| count(&|r| r.thread == t && r.outcome == Outcome::Closed))
        .max()
        .unwrap_or_default();
    println!(
        "burst: {} requests ({before} ended before the signal): {answered} answered \
         ({answered_across} of them in flight at the signal), {refused} refused, \
         {closed_at_signal} closed unanswered though connected before the signal, \
         {closed_after_signal} closed unanswered after connecting once it was sent \
         (at most {most_on_a_thread} on one thread)",
        records.len(),
    );

    // Whatever got a byte of answer got a whole, right answer.
    let cut_off: Vec<_> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::CutOff(_) | Outcome::Wrong(_)))
        .collect();
    assert!(cut_off.is_empty(), "answers cut off or wrong: {cut_off:?}");
    // Before the signal, every request was answered: nothing refused,
    // nothing closed unanswered.
    let failed_before: Vec<_> = records
        .iter()
        .filter(|r| r.ended_before_signal && r.outcome != Outcome::Answered)
        .collect();
    assert!(failed_before.is_empty(), "{failed_before:?}");
    // keyhook stopped accepting: every thread ended on a refused
    // connection, its only one.
    assert_eq!(refused, THREADS, "keyhook stopped accepting");
    // Closed unanswered: only connections keyhook had not begun to read
    // when the signal came (README); the slow requests, inside keyhook at
    // the signal, were all answered above. Each thread holds one connection
    // at a time, so that is the one it held at the signal (closed if keyhook
    // had accepted it idle, or still queued in the kernel), and at most one
    // more made in the instant before the listener closed: two per thread.
    assert!(
        closed_at_signal + closed_after_signal <= 2 * THREADS,
        "{closed_at_signal} + {closed_after_signal} closed unanswered, \
         more than two per thread"
    );
    assert!(status.success(), "exit status {status}");
}
