//! An honest local store (issue #10, item 5), on the real binary: a store
//! that cannot commit answers unready (`/readyz`, `/v1/health`) and
//! recovers without losing or inventing a credential once it can again; a
//! damaged store file stops `serve` and `check` with an error naming it,
//! never a panic.
//!
//! The tests run as root, which ignores file modes, so a write is made to
//! fail for real with the immutable attribute (`chattr +i`): the kernel
//! then refuses writes through the descriptor keyhook already holds. The
//! files live under cargo's target directory (`/tmp` may be a tmpfs,
//! where the attribute does not stop such writes); where it does not stop
//! them there either, the test says so (SKIPPED) and stops.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Process, README_SECRET, SENSEDIA_PASSWORD, SENSEDIA_USER};

/// Generous: a probe commit vouches for 5 s, a failed one for 1 s.
const HEALTH_CHANGES_WITHIN: Duration = Duration::from_secs(30);

fn env() -> Vec<(&'static str, String)> {
    vec![
        ("KEYHOOK_README_SECRET", README_SECRET.to_string()),
        (
            "KEYHOOK_SENSEDIA_USERS",
            format!("{SENSEDIA_USER}:{SENSEDIA_PASSWORD}"),
        ),
    ]
}

/// A directory on the target directory's file system (see the module).
fn workdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// [`workdir`], when `chattr +i` there stops writes through a descriptor
/// opened before (ext4 does; tmpfs takes the attribute but lets such
/// writes through); `None`, with the reason printed, where it does not.
fn freezable_workdir() -> Option<tempfile::TempDir> {
    use std::os::unix::fs::FileExt;
    let dir = workdir();
    let probe = dir.path().join("probe");
    let open = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&probe)
        .unwrap();
    let stops_writes = Frozen::new(&probe).is_some_and(|_frozen| open.write_at(b"x", 0).is_err());
    if !stops_writes {
        eprintln!(
            "SKIPPED: `chattr +i` does not stop writes on {}'s file system",
            dir.path().display()
        );
        return None;
    }
    Some(dir)
}

/// A file made immutable until dropped (so a failing test leaves nothing
/// a cleanup cannot remove).
struct Frozen(PathBuf);

impl Frozen {
    /// `None`, with the reason printed, where `chattr +i` is refused.
    fn new(path: &Path) -> Option<Frozen> {
        let out = Command::new("chattr").arg("+i").arg(path).output();
        match out {
            Ok(out) if out.status.success() => Some(Frozen(path.to_path_buf())),
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr);
                eprintln!("`chattr +i` is refused on {} ({why})", path.display());
                None
            }
            Err(e) => {
                eprintln!("no `chattr` here ({e})");
                None
            }
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let status = Command::new("chattr").arg("-i").arg(&self.0).status();
        assert!(status.is_ok_and(|s| s.success()), "chattr -i failed");
    }
}

/// Polls `path` until it answers `status`; its body then.
async fn until_answers(server: &Process, path: &str, status: StatusCode) -> Value {
    let deadline = Instant::now() + HEALTH_CHANGES_WITHIN;
    loop {
        let response = server.get_as_portal(path).await;
        if response.status() == status {
            return response.json().await.unwrap_or(Value::Null);
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not answer {status} within {HEALTH_CHANGES_WITHIN:?}: {}",
            server.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn app(slug: &str) -> Value {
    json!({
        "appName": format!("App {slug}"),
        "appSlug": slug,
        "developer": format!("{slug}@corp.com"),
    })
}

/// The API keys a login shows `slug`'s developer.
async fn keys_of(server: &Process, slug: &str) -> Vec<String> {
    let keys = server.visible_keys(&format!("{slug}@corp.com")).await;
    keys.iter()
        .map(|k| k["apiKey"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_commit_is_unready_and_recovers_without_loss() {
    let Some(dir) = freezable_workdir() else {
        return;
    };
    let mut server = Process::spawn_in(dir.path(), &env());
    server.wait_for("/readyz").await;
    let kept = server.create(&app("kept")).await;
    let file = dir.path().join("data").join("keyhook.redb");
    let unready = json!({"status": "unready", "reason": "storage_failed"});
    let mut acknowledged = vec![("kept".to_string(), kept["apiKey"].clone())];
    // Several rounds: the store must come back every time, not once.
    for round in 0..3 {
        let frozen = Frozen::new(&file).expect("chattr +i worked on this directory");
        // No write is needed to notice: the probe itself commits.
        let body = until_answers(&server, "/readyz", StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(body, unready, "round {round}");
        let health = server.sensedia_health().await;
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(health.json::<Value>().await.unwrap(), unready);
        let lost = format!("lost{round}");
        let refused = server.sensedia("createCredentials", &app(&lost)).await;
        assert_eq!(refused.status(), StatusCode::BAD_GATEWAY, "round {round}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["kind"], "storage_failed", "{body}");
        // Still unready right after the failed write.
        let probe = server.get("/readyz").await;
        assert_eq!(probe.status(), StatusCode::SERVICE_UNAVAILABLE);

        drop(frozen);
        until_answers(&server, "/readyz", StatusCode::OK).await;
        let health = server.sensedia_health().await;
        assert_eq!(health.status(), StatusCode::NO_CONTENT, "round {round}");
        let after = format!("after{round}");
        let made = server.create(&app(&after)).await;
        acknowledged.push((after, made["apiKey"].clone()));
        // The app whose create failed was not made; a retry makes it now.
        assert!(keys_of(&server, &lost).await.is_empty(), "round {round}");
    }
    let lost = ["lost0", "lost1", "lost2"];
    // What was acknowledged is there, in this process and after a restart;
    // what was refused is not.
    for restarted in [false, true] {
        if restarted {
            server.terminate();
            assert!(server.wait_exit(Duration::from_secs(60)).success());
            server = Process::spawn_in(dir.path(), &env());
            server.wait_for("/readyz").await;
        }
        for (slug, key) in &acknowledged {
            let keys = keys_of(&server, slug).await;
            assert_eq!(
                keys,
                [key.as_str().unwrap()],
                "{slug}, restarted: {restarted}"
            );
        }
        for slug in lost {
            assert!(keys_of(&server, slug).await.is_empty(), "{slug}");
        }
    }
    let logs = server.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

/// Starts `keyhook <args>` on `dir`'s data directory, stderr piped.
fn keyhook(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keyhook"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env())
        .env("KEYHOOK_LISTEN", "127.0.0.1:0")
        .env("KEYHOOK_DATA_DIR", dir.join("data"))
        .env("KEYHOOK_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("keyhook runs")
}

const GARBAGE: &[u8] = b"GARBAGE-GARBAGE!";

/// A copy of `clean` with `GARBAGE` written at `offset`, at `file`.
fn damage(clean: &[u8], offset: usize, file: &Path) {
    let mut bytes = clean.to_vec();
    bytes[offset..offset + GARBAGE.len()].copy_from_slice(GARBAGE);
    std::fs::write(file, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_naming_the_file_never_with_a_panic() {
    let dir = workdir();
    let mut server = Process::spawn_in(dir.path(), &env());
    server.wait_for("/readyz").await;
    for i in 0..30 {
        server.create(&app(&format!("app{i}"))).await;
    }
    server.terminate();
    assert!(server.wait_exit(Duration::from_secs(60)).success());
    let file = dir.path().join("data").join("keyhook.redb");
    let clean = std::fs::read(&file).unwrap();
    let row = clean
        .windows(b"app7@corp.com".len())
        .position(|w| w == b"app7@corp.com")
        .expect("a row in the file");
    // Offsets where redb 2.6 panicked, or failed, reading a store like
    // this one (the header, the region allocator, a B-tree page), and a
    // row's own bytes.
    let page = |offset: usize| offset / 4096 * 4096;
    let offsets = [0, 16, 64, 4096, 4200, row, page(row), page(row) + 4096];
    // And the start of every third page in use (every page would take
    // over a minute on a loaded machine), read by `check`, so more of what
    // redb does with a damaged page is covered.
    let used: Vec<usize> = (0..clean.len() - GARBAGE.len())
        .step_by(4096)
        .filter(|&p| {
            clean[p..p + 4096.min(clean.len() - p)]
                .iter()
                .any(|&b| b != 0)
        })
        .step_by(3)
        .collect();
    for offset in offsets {
        damage(&clean, offset, &file);
        let checked = refused_or_accepted(dir.path(), &["check"], &file, offset);
        let served = refused_or_accepted(dir.path(), &["serve"], &file, offset);
        // `check` finds what `serve` would find, before a rollout.
        assert_eq!(
            checked, served,
            "garbage at {offset}: check and serve disagree"
        );
        if offset < 4096 {
            assert!(!served, "garbage in the header at {offset} went unnoticed");
        }
    }
    let pages = used.len();
    let mut refused = 0;
    for offset in used {
        damage(&clean, offset, &file);
        refused += usize::from(!refused_or_accepted(dir.path(), &["check"], &file, offset));
    }
    eprintln!("garbage at the start of {pages} pages in use: {refused} refused, the rest harmless");
}

/// Runs `keyhook <args>` on a damaged store: either the damage was
/// harmless (the bytes were not in use: `check` exits 0, `serve` starts
/// listening, and is stopped) and this answers true, or the store is
/// refused with exit code 1 (a panic's is 101) and an error naming the
/// file, and this answers false. Never a panic.
fn refused_or_accepted(dir: &Path, args: &[&str], file: &Path, offset: usize) -> bool {
    let mut child = keyhook(dir, args);
    let stderr = child.stderr.take().unwrap();
    let mut text = String::new();
    let mut listening = false;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.contains("keyhook listening") {
            listening = true;
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(!text.contains("panicked"), "{args:?} at {offset}: {text}");
    if listening || status.success() {
        return true;
    }
    assert_eq!(
        status.code(),
        Some(1),
        "{args:?}, garbage at {offset}: {text}"
    );
    assert!(
        text.contains(&file.display().to_string()),
        "{args:?} at {offset}: the error does not name the file: {text}"
    );
    false
}
