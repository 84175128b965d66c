//! Micro-benchmarks of both front doors through the code that serves them,
//! without the network: the real router (every layer, the extractors, the
//! handlers) on a local store in a temporary directory, driven in-process.
//! - ReadMe: a signed login (signature check, decode, lookup, answer,
//!   encode) for a reader with one and with three credentials; and the
//!   `SignedLogin` extractor alone (signature check and decode);
//! - Sensedia: a `createCredentials` request decoded by the door's extractor
//!   into a credential spec; its response encoded as the handler does; and
//!   a whole retried `createCredentials` (Basic auth, decode, lookup, encode).
//!
//! No tracing subscriber is installed, so the per-request log lines cost
//! nothing here; the metrics recorder is, as in the server.

use std::hint::black_box;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::{Json, Router};
use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use keyhook::config::Config;
use keyhook::credentials::local::LocalStore;
use keyhook::credentials::{
    AppId, CredentialKind, CredentialProvider, CredentialSpec, Email, Origin,
};
use keyhook::extract::JsonBody;
use keyhook::readme::{ReadmeDoor, SignedLogin};
use keyhook::sensedia::model::{App, CreateCredentialsRequest, CreateCredentialsResponse};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The instant the bench's clock is stopped at; signatures are made at it.
const T: i64 = 1_700_000_000_000;
const SECRET: &str = "bench-readme-secret";
const PORTAL: &str = "portal:portal-pw";

/// Login bodies as ReadMe sends them (compact JSON).
const LOGIN_1: &[u8] = br#"{"email":"one@corp.com"}"#;
const LOGIN_3: &[u8] = br#"{"email":"three@corp.com"}"#;

/// The portal's documented example request.
const CREATE: &[u8] = br#"{"appName":"my new aws app","appSlug":"590d83b5c05f","developer":"Email@MyCompany.com","apis":[{"id":"5aba4csvd4","usagePlans":[{"id":"1el57v"}]},{"id":"6bcb5dtwe5","usagePlans":[{"id":"1el57v"},{"id":"2fm68w"}]}]}"#;

fn config(dir: &tempfile::TempDir) -> Config {
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    config.readme.secret = vec![SECRET.to_string().into()];
    // Fields a deployment adds to every answer.
    config.readme.response = json!({"isReadOnly": true, "parameters": {"region": "eu-west-1"}})
        .as_object()
        .cloned()
        .unwrap();
    config.sensedia.users = vec![PORTAL.parse().unwrap()];
    config
}

fn spec(owner: &str, slug: &str, label: &str, kind: CredentialKind) -> CredentialSpec {
    CredentialSpec {
        kind,
        owner: Email::parse(owner).unwrap(),
        app: AppId::sensedia_slug(slug),
        label: label.into(),
        origin: Origin::Sensedia,
        api_ids: vec!["5aba4csvd4".into()],
        usage_plans: vec!["1el57v".into()],
        expires_at_ms: None,
    }
}

/// A store where one@ has one API key and three@ has two API keys of the
/// same app name (so labels are disambiguated) and a client.
async fn seeded_store(dir: &tempfile::TempDir) -> Arc<dyn CredentialProvider> {
    let store = LocalStore::open(dir.path(), keyhook::clock::fixed(T)).unwrap();
    for spec in [
        spec(
            "one@corp.com",
            "one1",
            "Billing app",
            CredentialKind::ApiKey,
        ),
        spec(
            "three@corp.com",
            "three1",
            "Billing app",
            CredentialKind::ApiKey,
        ),
        spec(
            "three@corp.com",
            "three2",
            "Billing app",
            CredentialKind::ApiKey,
        ),
        spec(
            "three@corp.com",
            "three3",
            "Reports",
            CredentialKind::ClientCredentials,
        ),
    ] {
        store.create(&spec).await.unwrap();
    }
    Arc::new(store)
}

fn login(body: &'static [u8]) -> Request<Body> {
    Request::post("/readme/webhook")
        .header(
            "readme-signature",
            keyhook::readme::signature::sign(SECRET, T, body),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn create() -> Request<Body> {
    let basic = base64::engine::general_purpose::STANDARD.encode(PORTAL);
    Request::post("/v1/createCredentials")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(CREATE))
        .unwrap()
}

/// Serves one request and reads the whole answer.
async fn serve(router: &Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, body)
}

/// Fails the bench rather than time an error answer.
fn keys_in(rt: &Runtime, router: &Router, request: Request<Body>) -> usize {
    let (status, body) = rt.block_on(serve(router, request));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    answer["keys"].as_array().unwrap().len()
}

fn codec(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir);
    let provider = rt.block_on(seeded_store(&dir));
    keyhook::metrics::handle();
    let clock = keyhook::clock::fixed(T);
    let writes = keyhook::writes::Writes::default();
    let router = keyhook::app::router(
        &config,
        Arc::clone(&provider),
        Arc::clone(&clock),
        writes.clone(),
    );
    let budget = Arc::new(keyhook::budget::Budget::new(
        config.max_keys,
        None,
        Arc::clone(&clock),
    ));
    let door = Arc::new(ReadmeDoor::new(
        &config.readme,
        Arc::clone(&provider),
        clock,
        writes,
        budget,
    ));

    assert_eq!(keys_in(&rt, &router, login(LOGIN_1)), 1);
    assert_eq!(keys_in(&rt, &router, login(LOGIN_3)), 3);
    c.bench_function("readme/login_1_key", |b| {
        b.iter_batched(
            || login(LOGIN_1),
            |request| rt.block_on(serve(&router, request)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("readme/login_3_keys", |b| {
        b.iter_batched(
            || login(LOGIN_3),
            |request| rt.block_on(serve(&router, request)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("readme/signed_login_extract", |b| {
        b.iter_batched(
            || login(LOGIN_1),
            |request| {
                rt.block_on(SignedLogin::from_request(request, &door))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });

    c.bench_function("sensedia/create_decode_to_spec", |b| {
        b.iter_batched(
            create,
            |request| {
                let JsonBody(request) = rt
                    .block_on(JsonBody::<CreateCredentialsRequest>::from_request(
                        request,
                        &(),
                    ))
                    .unwrap();
                App::try_from(&request.app)
                    .unwrap()
                    .spec(CredentialKind::ApiKey)
            },
            BatchSize::SmallInput,
        )
    });

    // The first create issues the key; the ones timed find it (a retry).
    let (status, body) = rt.block_on(serve(&router, create()));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let developer = Email::parse("email@mycompany.com").unwrap();
    let credential = rt.block_on(provider.find_by_owner(&developer)).unwrap()[0].clone();
    c.bench_function("sensedia/create_response_encode", |b| {
        b.iter(|| {
            let response = Json(CreateCredentialsResponse::from(black_box(&*credential)));
            rt.block_on(axum::body::to_bytes(
                response.into_response().into_body(),
                usize::MAX,
            ))
            .unwrap()
        })
    });
    c.bench_function("sensedia/create_retried", |b| {
        b.iter_batched(
            create,
            |request| rt.block_on(serve(&router, request)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
