//! The admin listener itself, over real sockets: bearer tokens (either of
//! two, nothing without one), its routes absent from the public listener
//! (and the portals' from it), the main listener's header timeout and TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use keyhook::admin::ROUTES;
use reqwest::Method;
use serde_json::json;

use super::admin::{admin, admin_app, call, get, with_admin, NEXT, TOKEN};
use crate::harness::TestApp;

#[tokio::test]
async fn nothing_answers_without_one_of_the_tokens_and_either_token_works() {
    let app = admin_app().await;
    let addr = admin(&app);
    for token in [
        None,
        Some("wrong-admin-token-0123456789"),
        Some(&TOKEN[..TOKEN.len() - 1]),
    ] {
        for path in [
            "/admin/v1/credentials",
            "/admin/v1/audit",
            "/admin/v1/nowhere",
        ] {
            let answer = call(addr, Method::GET, path, token, None).await;
            assert_eq!(answer.status, 401, "{token:?} {path}: {}", answer.text);
            assert!(
                answer
                    .challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Bearer ")),
                "{:?}",
                answer.challenge
            );
            assert!(answer.body["error"].is_string(), "{}", answer.text);
        }
    }
    // The portal's Basic pair is no admin credential.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/admin/v1/credentials"))
        .header("authorization", app.sensedia_auth.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for token in [TOKEN, NEXT] {
        let answer = call(
            addr,
            Method::GET,
            "/admin/v1/credentials",
            Some(token),
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.body, json!({"credentials": []}));
    }
}

#[tokio::test]
async fn admin_routes_never_answer_on_the_public_listener() {
    let app = admin_app().await;
    for (method, path) in ROUTES {
        let path = path.replace("{id}", "k1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = Some(("application/json", b"{}".to_vec()));
        let public = call(app.addr, method.clone(), &path, Some(TOKEN), body.clone()).await;
        assert_eq!(public.status, 404, "{method} {path}: {}", public.text);
        assert!(public.body["error"].is_string());
        // ...while the admin listener has them.
        let served = call(admin(&app), method.clone(), &path, Some(TOKEN), body).await;
        assert_ne!(served.status, 405, "{method} {path}");
        assert!(
            served.status != 404 || served.body["error"] != "no such route",
            "{method} {path}: {}",
            served.text
        );
    }
    // And the portals' routes are not on the admin listener.
    let answer = get(&app, "/v1/health").await;
    assert_eq!(answer.status, 404);
}

/// Far above the 1 s timeout set here, far below "never".
const LIMIT: Duration = Duration::from_secs(20);

/// Sends `partial` headers to `addr`; how long until the server closed
/// the connection (panics past a minute).
fn closed_after(addr: SocketAddr, partial: &[u8]) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(partial).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("the connection stayed open: {e}"),
        }
    }
}

#[tokio::test]
async fn the_admin_listener_cuts_partial_headers_within_the_header_timeout_as_the_public_one_does()
{
    let app = TestApp::local_with(|c| {
        with_admin(c);
        c.header_timeout_secs = 1;
    })
    .await;
    for addr in [app.addr, admin(&app)] {
        for partial in [
            &b"GET /admin/v1/audit HTTP/1.1\r\nHost: keyhook\r\n"[..],
            b"GE",
        ] {
            let took = tokio::task::spawn_blocking(move || closed_after(addr, partial))
                .await
                .unwrap();
            assert!(took < LIMIT, "{addr}: open for {took:?}");
        }
    }
}

#[tokio::test]
async fn the_admin_listener_serves_https_with_the_main_listeners_certificate() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pem = crate::harness::tls::self_signed();
    let app = TestApp::local_with(|c| {
        with_admin(c);
        c.tls_cert = Some(pem.cert.clone());
        c.tls_key = Some(pem.key.clone());
    })
    .await;
    let mut tls = crate::harness::tls::connect(admin(&app), &pem).await;
    let request = format!(
        "GET /admin/v1/credentials HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"credentials":[]}"#), "{answer}");
    // Plain HTTP gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/admin/v1/credentials", admin(&app)))
        .bearer_auth(TOKEN)
        .send()
        .await;
    assert!(plain.is_err(), "an HTTP answer: {plain:?}");
}
