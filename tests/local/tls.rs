//! In-process TLS: with KEYHOOK_TLS_CERT/KEY keyhook speaks HTTPS itself.

use keyhook::app::{Application, Dependencies, StartupError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::tls::{connect, self_signed};

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let pem = self_signed();
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::harness::base_config();
    config.data_dir = data.path().to_path_buf();
    config.tls_cert = Some(pem.cert.clone());
    config.tls_key = Some(pem.key.clone());
    let app = Application::build(&config, Dependencies::default())
        .await
        .unwrap();
    let addr = app.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));

    let mut tls = connect(addr, &pem).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer}");

    // Plain HTTP on the TLS port gets no HTTP answer: rustls cannot read
    // "GET ..." as a TLS record, answers with one fatal `decode_error` alert
    // record (type 21, TLS 1.2 record version, length 2, level 2, code 50)
    // and closes the connection.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut back = Vec::new();
    let mut chunk = [0u8; 256];
    let ending = loop {
        match tcp.read(&mut chunk).await {
            Ok(0) => break Ok(()),
            Ok(n) => back.extend_from_slice(&chunk[..n]),
            Err(e) => break Err(e.kind()),
        }
    };
    const DECODE_ERROR_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 2, 50];
    assert_eq!(
        back,
        DECODE_ERROR_ALERT,
        "{:?}",
        String::from_utf8_lossy(&back)
    );
    // Closed, with a FIN or, if our unread bytes were still queued, a reset.
    assert!(
        matches!(ending, Ok(()) | Err(std::io::ErrorKind::ConnectionReset)),
        "{ending:?}"
    );
    // And an HTTP client sees no response at all.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "an HTTP answer: {plain:?}");

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreadable_certificate_stops_startup_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let mut config = crate::harness::base_config();
    config.data_dir = data.path().to_path_buf();
    config.tls_cert = Some(data.path().join("missing.pem"));
    config.tls_key = Some(data.path().join("missing-key.pem"));
    let err = Application::build(&config, Dependencies::default())
        .await
        .err()
        .expect("startup fails");
    assert!(matches!(err, StartupError::Tls(_)), "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
