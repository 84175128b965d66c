//! In-process TLS: with KEYHOOK_TLS_CERT/KEY keyhook speaks HTTPS itself.

use std::sync::Arc;

use keyhook::app::{Application, Dependencies, StartupError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pem {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

fn self_signed() -> Pem {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    Pem {
        der: certified.cert.der().clone(),
        _dir: dir,
        cert,
        key,
    }
}

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

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pem.der.clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
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
