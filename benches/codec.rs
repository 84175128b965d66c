//! Micro-benchmarks of the request decode / response encode path of both
//! front doors, without the network and the backend:
//! - ReadMe: decode the login body, parse the email, build the answer for a
//!   reader with one and with three credentials, encode it;
//! - Sensedia: decode a `createCredentials` request into a credential spec,
//!   encode the `createCredentials` response.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keyhook::credentials::{AppId, Credential, CredentialKind, Email, Origin, Secret};
use keyhook::readme::answer;
use keyhook::secret::Redacted;
use keyhook::sensedia::model::{CreateCredentialsRequest, CreateCredentialsResponse};
use serde_json::{json, Map, Value};

/// The login body as ReadMe sends it (compact JSON).
const LOGIN: &[u8] = br#"{"email":"dev@corp.com"}"#;

/// The portal's documented example request.
const CREATE: &[u8] = br#"{"appName":"my new aws app","appSlug":"590d83b5c05f","developer":"Email@MyCompany.com","apis":[{"id":"5aba4csvd4","usagePlans":[{"id":"1el57v"}]},{"id":"6bcb5dtwe5","usagePlans":[{"id":"1el57v"},{"id":"2fm68w"}]}]}"#;

/// The server's own login request shape (private in `keyhook::readme`).
#[derive(serde::Deserialize)]
struct LoginRequest {
    email: String,
}

fn api_key(id: &str, label: &str) -> Credential {
    Credential {
        id: id.into(),
        owner: Email::parse("dev@corp.com").unwrap(),
        app: AppId::sensedia_slug(id),
        label: label.into(),
        origin: Origin::Sensedia,
        secret: Secret::ApiKey {
            value: Redacted::new("cX6Xbj4CjcYpT1v2dF0mQx8rLz3nKw9aHs5uBe7g".into()),
        },
        usage_plans: vec!["1el57v".into()],
        api_ids: vec!["5aba4csvd4".into()],
        custom: BTreeMap::new(),
        created_at_ms: 1_700_000_000_000,
    }
}

fn client(id: &str, label: &str) -> Credential {
    let mut custom = BTreeMap::new();
    custom.insert(
        "tokenEndpoint".to_string(),
        Redacted::new("https://auth.corp.com/oauth2/token".to_string()),
    );
    custom.insert(
        "scopes".to_string(),
        Redacted::new("https://api.corp.com/read https://api.corp.com/write".to_string()),
    );
    Credential {
        secret: Secret::ClientCredentials {
            client_secret: Redacted::new(
                "1q2w3e4r5t6y7u8i9o0p1q2w3e4r5t6y7u8i9o0p1q2w3e4r5t".into(),
            ),
            scopes: vec![],
        },
        custom,
        ..api_key(id, label)
    }
}

/// Decode, validate, answer, encode: what a login does besides the lookup.
fn login(body: &[u8], credentials: &[Credential], extra: &Map<String, Value>) -> Vec<u8> {
    let request: LoginRequest = keyhook::extract::json(body).unwrap();
    let email = Email::parse(&request.email).unwrap();
    black_box(&email);
    let answer = answer::build(request.email.trim(), credentials, extra);
    serde_json::to_vec(&answer).unwrap()
}

fn codec(c: &mut Criterion) {
    let extra = Map::new();
    let mut configured = Map::new();
    configured.insert("isReadOnly".into(), json!(true));
    configured.insert("parameters".into(), json!({"region": "eu-west-1"}));
    let one = vec![api_key("1p98czde94", "Billing app")];
    let three = vec![
        api_key("1p98czde94", "Billing app"),
        api_key("7g2kq0xv1b", "Billing app"),
        client("4l3e8u6p2v9r1c5t7n0m2k4j6h", "Reports"),
    ];

    c.bench_function("readme/login_decode", |b| {
        b.iter(|| {
            let request: LoginRequest = keyhook::extract::json(black_box(LOGIN)).unwrap();
            Email::parse(&request.email).unwrap()
        })
    });
    c.bench_function("readme/login_decode_answer_encode_1_key", |b| {
        b.iter(|| login(black_box(LOGIN), black_box(&one), &extra))
    });
    c.bench_function(
        "readme/login_decode_answer_encode_3_keys_extra_fields",
        |b| b.iter(|| login(black_box(LOGIN), black_box(&three), &configured)),
    );

    let credential = api_key("1p98czde94", "my new aws app");
    c.bench_function("sensedia/create_decode_to_spec", |b| {
        b.iter(|| {
            let request: CreateCredentialsRequest =
                keyhook::extract::json(black_box(CREATE)).unwrap();
            request.app.spec(CredentialKind::ApiKey).unwrap()
        })
    });
    c.bench_function("sensedia/create_response_encode", |b| {
        b.iter(|| serde_json::to_vec(&CreateCredentialsResponse::from(black_box(&credential))))
    });
    c.bench_function("sensedia/create_decode_and_encode", |b| {
        b.iter(|| {
            let request: CreateCredentialsRequest =
                keyhook::extract::json(black_box(CREATE)).unwrap();
            let spec = request.app.spec(CredentialKind::ApiKey).unwrap();
            black_box(spec);
            serde_json::to_vec(&CreateCredentialsResponse::from(&credential)).unwrap()
        })
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
