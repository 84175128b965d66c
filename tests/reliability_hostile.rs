//! Hostile input at both front doors, on the embedded store: a table of
//! malformed requests per door, each answered with its documented 4xx (README
//! "Responses") and a JSON `{"error"}` body wherever the server gets to
//! answer, and stored credentials unchanged afterwards. Requests an HTTP
//! client refuses to send (CR/LF in a header value, obs-fold, conflicting
//! Content-Length) go over raw TCP. Then property tests: the signature
//! parser, the verifier and the request decoders never panic, and signing
//! round-trips through verification.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use base64::Engine;
use keyhook::readme::signature::{self, parse_header, Verifier};
use keyhook::secret::Redacted;
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::app::{base_config, Server, PORTAL_PASSWORD, PORTAL_USER, README_SECRET};

const LIMIT: usize = 64 * 1024;

fn basic(pair: &[u8]) -> Vec<u8> {
    let mut value = b"Basic ".to_vec();
    value.extend(
        base64::engine::general_purpose::STANDARD
            .encode(pair)
            .bytes(),
    );
    value
}

fn good_auth() -> Vec<u8> {
    basic(format!("{PORTAL_USER}:{PORTAL_PASSWORD}").as_bytes())
}

fn now() -> i64 {
    keyhook::clock::now_ms()
}

fn sign(body: &[u8]) -> Vec<u8> {
    signature::sign(README_SECRET, now(), body).into_bytes()
}

/// One hostile request made with the HTTP client.
struct Hostile {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    /// Headers, in order (repeats allowed), as raw bytes.
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    status: StatusCode,
    /// The exact `error` message, when the README documents it.
    error: Option<&'static str>,
}

fn json_ct() -> (&'static str, Vec<u8>) {
    ("content-type", b"application/json".to_vec())
}

/// A ReadMe login: `sig` is the `ReadMe-Signature` value (None: absent).
fn login(
    name: &'static str,
    sig: Option<Vec<u8>>,
    body: &[u8],
    status: StatusCode,
    error: Option<&'static str>,
) -> Hostile {
    let mut headers = vec![json_ct()];
    if let Some(sig) = sig {
        headers.push(("readme-signature", sig));
    }
    Hostile {
        name,
        method: "POST",
        path: "/readme/webhook",
        headers,
        body: body.to_vec(),
        status,
        error,
    }
}

/// A correctly signed login with `body`.
fn signed(name: &'static str, body: &[u8], status: StatusCode) -> Hostile {
    login(name, Some(sign(body)), body, status, None)
}

fn nested(depth: usize) -> Vec<u8> {
    format!(
        r#"{{"email":"deep@corp.com","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
    .into_bytes()
}

fn readme_table() -> Vec<Hostile> {
    const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
    let body = br#"{"email":"keep@corp.com"}"#;
    let t = now();
    let v0 = |secret: &str, t: i64, body: &[u8]| {
        signature::sign(secret, t, body)
            .split_once("v0=")
            .unwrap()
            .1
            .to_string()
    };
    let good = v0(README_SECRET, t, body);
    let hdr = |s: String| Some(s.into_bytes());
    let invalid = Some("Invalid Signature");
    let expired = Some("Expired Signature");
    let missing = Some("Missing Signature");
    let mut too_many = format!("t={t}");
    for _ in 0..8 {
        too_many.push_str(&format!(",v0={}", "0".repeat(64)));
    }
    too_many.push_str(&format!(",v0={good}"));
    let huge = format!(
        r#"{{"email":"keep@corp.com","pad":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    let mut twice = login(
        "two signature headers",
        hdr(format!("t={t},v0={good}")),
        body,
        UNAUTHORIZED,
        invalid,
    );
    twice
        .headers
        .push(("readme-signature", format!("t={t},v0={good}").into_bytes()));
    let obs_text = login(
        "non-ASCII bytes in the signature",
        Some([format!("t={t},v0=").as_bytes(), &[0xff; 64]].concat()),
        body,
        UNAUTHORIZED,
        invalid,
    );
    let mut text_plain = signed(
        "signed, text/plain",
        body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    text_plain.headers[0].1 = b"text/plain".to_vec();
    let mut no_type = signed(
        "signed, no content type",
        body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    no_type.headers.remove(0);
    let mut form = signed(
        "signed, form encoded",
        b"email=keep%40corp.com",
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    form.headers[0].1 = b"application/x-www-form-urlencoded".to_vec();
    let mut json_x = signed(
        "signed, application/jsonx",
        body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    );
    json_x.headers[0].1 = b"application/jsonx".to_vec();
    let mut unsigned_plain = login("unsigned, text/plain", None, body, UNAUTHORIZED, missing);
    unsigned_plain.headers[0].1 = b"text/plain".to_vec();
    let method = |name, method| Hostile {
        name,
        method,
        path: "/readme/webhook",
        headers: vec![json_ct(), ("readme-signature", sign(body))],
        body: Vec::new(),
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: None,
    };
    let path = |name, path| Hostile {
        name,
        method: "POST",
        path,
        headers: vec![json_ct(), ("readme-signature", sign(body))],
        body: body.to_vec(),
        status: StatusCode::NOT_FOUND,
        error: None,
    };
    vec![
        login("no signature", None, body, UNAUTHORIZED, missing),
        login(
            "empty signature",
            Some(Vec::new()),
            body,
            UNAUTHORIZED,
            missing,
        ),
        login(
            "blank signature",
            hdr("   ".into()),
            body,
            UNAUTHORIZED,
            missing,
        ),
        login(
            "replayed: 31 minutes old",
            hdr(format!(
                "t={},v0={}",
                t - 31 * 60_000,
                v0(README_SECRET, t - 31 * 60_000, body)
            )),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "replayed: a day old",
            hdr(format!(
                "t={},v0={}",
                t - 86_400_000,
                v0(README_SECRET, t - 86_400_000, body)
            )),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "far future: 31 minutes ahead",
            hdr(format!(
                "t={},v0={}",
                t + 31 * 60_000,
                v0(README_SECRET, t + 31 * 60_000, body)
            )),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "far future: year 2100",
            hdr(format!(
                "t=4102444800000,v0={}",
                v0(README_SECRET, 4_102_444_800_000, body)
            )),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "timestamp in seconds",
            hdr(format!(
                "t={},v0={}",
                t / 1000,
                v0(README_SECRET, t / 1000, body)
            )),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "timestamp zero",
            hdr(format!("t=0,v0={}", v0(README_SECRET, 0, body))),
            body,
            UNAUTHORIZED,
            expired,
        ),
        login(
            "signature for another body",
            hdr(signature::sign(
                README_SECRET,
                t,
                br#"{"email":"other@corp.com"}"#,
            )),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "signature over pretty-printed JSON",
            hdr(signature::sign(
                README_SECRET,
                t,
                b"{ \"email\": \"keep@corp.com\" }",
            )),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "body with a trailing newline",
            hdr(format!("t={t},v0={good}")),
            b"{\"email\":\"keep@corp.com\"}\n",
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "signed with another secret",
            hdr(signature::sign("not-the-secret", t, body)),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "signed with an empty secret",
            hdr(signature::sign("", t, body)),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "timestamp of another signature",
            hdr(format!("t={},v0={good}", t - 1)),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "truncated v0",
            hdr(format!("t={t},v0={}", &good[..63])),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "v0 with one extra digit",
            hdr(format!("t={t},v0={good}0")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "empty v0",
            hdr(format!("t={t},v0=")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "uppercase hex",
            hdr(format!("t={t},v0={}", good.to_uppercase())),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "v0 as base64",
            hdr(format!(
                "t={t},v0={}",
                base64::engine::general_purpose::STANDARD.encode(hex::decode(&good).unwrap())
            )),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login("no v0", hdr(format!("t={t}")), body, UNAUTHORIZED, invalid),
        login(
            "no t",
            hdr(format!("v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "only an unknown scheme",
            hdr(format!("t={t},v1={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "negative t",
            hdr(format!("t=-{t},v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "t overflowing i64",
            hdr(format!("t=99999999999999999999999,v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "t with a fraction",
            hdr(format!("t={t}.5,v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "t twice",
            hdr(format!("t={t},t={t},v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "more than eight v0",
            hdr(too_many),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "semicolons instead of commas",
            hdr(format!("t={t};v0={good}")),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "garbage",
            hdr("garbage".into()),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        login(
            "a very long header",
            hdr(format!("t={t},{}", "v1=x,".repeat(3000))),
            body,
            UNAUTHORIZED,
            invalid,
        ),
        twice,
        obs_text,
        unsigned_plain,
        login(
            "unsigned huge body",
            None,
            huge.as_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        signed(
            "signed huge body",
            huge.as_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        signed(
            "signed, truncated JSON",
            b"{\"email\":\"keep@corp.com\"",
            StatusCode::BAD_REQUEST,
        ),
        signed("signed, empty body", b"", StatusCode::BAD_REQUEST),
        signed(
            "signed, invalid UTF-8",
            b"{\"email\":\"k\xff\xfe@corp.com\"}",
            StatusCode::BAD_REQUEST,
        ),
        signed(
            "signed, raw NUL byte",
            b"{\"email\":\"a\x00b@corp.com\"}",
            StatusCode::BAD_REQUEST,
        ),
        signed(
            "signed, escaped NUL in email",
            br#"{"email":"a\u0000b@corp.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, byte-order mark",
            b"\xef\xbb\xbf{\"email\":\"keep@corp.com\"}",
            StatusCode::BAD_REQUEST,
        ),
        signed(
            "signed, trailing garbage",
            b"{\"email\":\"keep@corp.com\"}x",
            StatusCode::BAD_REQUEST,
        ),
        // Valid JSON: serde skips the unknown field without recursing
        // past its limit, so the login goes on (no credentials: 404).
        signed(
            "signed, deep nesting in an unknown field",
            &nested(30_000),
            StatusCode::NOT_FOUND,
        ),
        signed(
            "signed, deep nesting in the email",
            format!(
                r#"{{"email":{}{}}}"#,
                "[".repeat(30_000),
                "]".repeat(30_000)
            )
            .as_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, deep object nesting in the email",
            format!(
                r#"{{"email":{}1{}}}"#,
                "{\"a\":".repeat(10_000),
                "}".repeat(10_000)
            )
            .as_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, email a number",
            br#"{"email":5}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, email null",
            br#"{"email":null}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, email an array",
            br#"{"email":["keep@corp.com"]}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, email an object",
            br#"{"email":{"$ne":""}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, JSON array",
            br#"[{"email":"keep@corp.com"}]"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, JSON null",
            b"null",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, JSON string",
            br#""keep@corp.com""#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, no email",
            br#"{"mail":"keep@corp.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, empty email",
            br#"{"email":""}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, email without @",
            br#"{"email":"keep.corp.com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, two @",
            br#"{"email":"keep@corp@com"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, CR/LF in email",
            br#"{"email":"keep@corp.com\r\nx-admin: 1"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        signed(
            "signed, 300-byte email",
            format!(r#"{{"email":"{}@corp.com"}}"#, "a".repeat(300)).as_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        text_plain,
        no_type,
        form,
        json_x,
        method("GET", "GET"),
        method("PUT", "PUT"),
        method("DELETE", "DELETE"),
        method("PATCH", "PATCH"),
        path("trailing slash", "/readme/webhook/"),
        path("upper-case path", "/readme/WEBHOOK"),
        path("double slash", "//readme/webhook"),
    ]
}

fn sensedia(
    name: &'static str,
    path: &'static str,
    auth: Option<Vec<u8>>,
    body: &[u8],
    status: StatusCode,
) -> Hostile {
    let mut headers = vec![json_ct()];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    Hostile {
        name,
        method: "POST",
        path,
        headers,
        body: body.to_vec(),
        status,
        error: None,
    }
}

/// An authorised `createCredentials` with `body`.
fn create(name: &'static str, body: &[u8], status: StatusCode) -> Hostile {
    sensedia(
        name,
        "/v1/createCredentials",
        Some(good_auth()),
        body,
        status,
    )
}

fn sensedia_table(key_id: &str) -> Vec<Hostile> {
    const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
    const UNPROCESSABLE: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
    let create_path = "/v1/createCredentials";
    let app = br#"{"appName":"Hostile","appSlug":"hostile","developer":"hostile@corp.com"}"#;
    let unauth = |name, auth: Option<Vec<u8>>| sensedia(name, create_path, auth, app, UNAUTHORIZED);
    let user = PORTAL_USER;
    let pw = PORTAL_PASSWORD;
    let raw = |s: &str| s.as_bytes().to_vec();
    let mut two_auth = unauth("two Authorization headers", Some(good_auth()));
    two_auth.headers.push(("authorization", good_auth()));
    let mut wrong_then_right = unauth(
        "wrong then right Authorization",
        Some(basic(b"portal:wrong")),
    );
    wrong_then_right
        .headers
        .push(("authorization", good_auth()));
    let huge = format!(
        r#"{{"appName":"{}","developer":"hostile@corp.com"}}"#,
        "x".repeat(LIMIT)
    );
    let many_apis = json!({
        "appName": "a", "developer": "hostile@corp.com",
        "apis": (0..101).map(|i| json!({"id": format!("api{i}")})).collect::<Vec<_>>(),
    })
    .to_string();
    let many_plans = json!({
        "appName": "a", "developer": "hostile@corp.com",
        "apis": [{"id": "api", "usagePlans": (0..101).map(|i| json!({"id": format!("p{i}")})).collect::<Vec<_>>()}],
    })
    .to_string();
    let mut text_plain = create("text/plain", app, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    text_plain.headers[0].1 = raw("text/plain");
    let mut no_type = create("no content type", app, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    no_type.headers.remove(0);
    let mut multipart = create("multipart", app, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    multipart.headers[0].1 = raw("multipart/form-data; boundary=x");
    let method = |name, method, path| Hostile {
        name,
        method,
        path,
        headers: vec![json_ct(), ("authorization", good_auth())],
        body: Vec::new(),
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: None,
    };
    let key_id = key_id.to_string();
    let update_other_kind = format!(
        r#"{{"apiKeyId":"{key_id}","clientId":"{key_id}","credentialType":"CLIENT_CREDENTIALS","appName":"Keep","developer":"keep@corp.com"}}"#
    );
    let update_other_kind = sensedia(
        "update naming an API key as a client",
        "/v1/updateCredentials",
        Some(good_auth()),
        update_other_kind.as_bytes(),
        StatusCode::CONFLICT,
    );
    vec![
        unauth("no Authorization", None),
        unauth("empty Authorization", Some(Vec::new())),
        unauth("wrong password", Some(basic(format!("{user}:wrong").as_bytes()))),
        unauth("empty password", Some(basic(format!("{user}:").as_bytes()))),
        unauth("missing colon", Some(basic(user.as_bytes()))),
        unauth("empty user", Some(basic(format!(":{pw}").as_bytes()))),
        unauth("only a colon", Some(basic(b":"))),
        unauth("user in upper case", Some(basic(format!("{}:{pw}", user.to_uppercase()).as_bytes()))),
        unauth("password with a trailing space", Some(basic(format!("{user}:{pw} ").as_bytes()))),
        unauth("password with a NUL", Some(basic(format!("{user}:{pw}\0").as_bytes()))),
        unauth("password prefix", Some(basic(format!("{user}:{}", &pw[..pw.len() - 1]).as_bytes()))),
        unauth("non-Base64", Some(raw("Basic %%%not-base64%%%"))),
        unauth("Base64 without padding", Some(raw(&format!("Basic {}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{user}:{pw}x")))))),
        unauth("URL-safe Base64 alphabet", Some(raw(&format!("Basic {}", base64::engine::general_purpose::URL_SAFE.encode([0xfb, 0xff, 0x3a, 0xfb, 0xff]))))),
        unauth("Base64 of invalid UTF-8", Some(basic(b"\xff\xfe:\xff\xfe"))),
        unauth("scheme only", Some(raw("Basic"))),
        unauth("scheme and a space", Some(raw("Basic "))),
        unauth("Bearer scheme", Some(raw(&format!("Bearer {pw}")))),
        unauth("Digest scheme", Some(raw(r#"Digest username="portal", realm="keyhook""#))),
        unauth("plain credentials, no Base64", Some(raw(&format!("Basic {user}:{pw}")))),
        unauth("very long credentials", Some(basic(format!("{user}:{}", "p".repeat(10_000)).as_bytes()))),
        unauth("very long user", Some(basic(format!("{}:{pw}", "u".repeat(3_000)).as_bytes()))),
        unauth("non-ASCII bytes", Some([b"Basic ".as_slice(), &[0xc3, 0xa9, 0xff]].concat())),
        two_auth,
        wrong_then_right,
        sensedia("unauthenticated huge body", create_path, None, huge.as_bytes(), UNAUTHORIZED),
        Hostile {
            name: "unauthenticated health",
            method: "GET",
            path: "/v1/health",
            headers: Vec::new(),
            body: Vec::new(),
            status: UNAUTHORIZED,
            error: None,
        },
        create("bad JSON", b"{nope", StatusCode::BAD_REQUEST),
        create("truncated JSON", br#"{"appName":"a","developer":"hostile@corp.com""#, StatusCode::BAD_REQUEST),
        create("empty body", b"", StatusCode::BAD_REQUEST),
        create("invalid UTF-8", b"{\"appName\":\"\xff\xfe\",\"developer\":\"hostile@corp.com\"}", StatusCode::BAD_REQUEST),
        create("raw NUL byte", b"{\"appName\":\"a\x00\",\"developer\":\"hostile@corp.com\"}", StatusCode::BAD_REQUEST),
        create("deep nesting", format!(r#"{{"appName":"a","developer":"hostile@corp.com","apis":{}{}}}"#, "[".repeat(30_000), "]".repeat(30_000)).as_bytes(), StatusCode::BAD_REQUEST),
        create("deep nesting in an unknown field", format!(r#"{{"appName":"a","developer":"hostile@corp.com","x":{}{}}}"#, "{\"a\":".repeat(10_000), "}".repeat(10_000)).as_bytes(), StatusCode::BAD_REQUEST),
        create("trailing garbage", br#"{"appName":"a","developer":"hostile@corp.com"}{}"#, StatusCode::BAD_REQUEST),
        create("huge body", huge.as_bytes(), StatusCode::PAYLOAD_TOO_LARGE),
        create("JSON array", br#"[{"appName":"a","developer":"hostile@corp.com"}]"#, UNPROCESSABLE),
        create("JSON null", b"null", UNPROCESSABLE),
        create("JSON number", b"42", UNPROCESSABLE),
        create("appName a number", br#"{"appName":5,"developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("developer an array", br#"{"appName":"a","developer":["hostile@corp.com"]}"#, UNPROCESSABLE),
        create("apis an object", br#"{"appName":"a","developer":"hostile@corp.com","apis":{"id":"x"}}"#, UNPROCESSABLE),
        create("api id a number", br#"{"appName":"a","developer":"hostile@corp.com","apis":[{"id":5}]}"#, UNPROCESSABLE),
        create("usagePlans a string", br#"{"appName":"a","developer":"hostile@corp.com","apis":[{"id":"x","usagePlans":"p"}]}"#, UNPROCESSABLE),
        create("no developer", br#"{"appName":"a"}"#, UNPROCESSABLE),
        create("no appName", br#"{"developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("blank appName", br#"{"appName":"   ","developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("developer not an email", br#"{"appName":"a","developer":"hostile"}"#, UNPROCESSABLE),
        create("developer with CR/LF", br#"{"appName":"a","developer":"hostile@corp.com\r\nBcc: x@y.z"}"#, UNPROCESSABLE),
        create("NUL in appName", br#"{"appName":"a\u0000b","developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("appName over 256 characters", format!(r#"{{"appName":"{}","developer":"hostile@corp.com"}}"#, "n".repeat(257)).as_bytes(), UNPROCESSABLE),
        create("appSlug with a space", br#"{"appName":"a","appSlug":"has space","developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("appSlug path traversal", br#"{"appName":"a","appSlug":"../../etc","developer":"hostile@corp.com"}"#, UNPROCESSABLE),
        create("appSlug over 128 characters", format!(r#"{{"appName":"a","appSlug":"{}","developer":"hostile@corp.com"}}"#, "s".repeat(129)).as_bytes(), UNPROCESSABLE),
        create("api id with a slash", br#"{"appName":"a","developer":"hostile@corp.com","apis":[{"id":"a/b"}]}"#, UNPROCESSABLE),
        create("empty usage plan id", br#"{"appName":"a","developer":"hostile@corp.com","apis":[{"id":"x","usagePlans":[{"id":""}]}]}"#, UNPROCESSABLE),
        create("101 apis", many_apis.as_bytes(), UNPROCESSABLE),
        create("101 usage plans", many_plans.as_bytes(), UNPROCESSABLE),
        text_plain,
        no_type,
        multipart,
        sensedia("update with credentialType JWT", "/v1/updateCredentials", Some(good_auth()), br#"{"credentialType":"JWT","appSlug":"keep","appName":"Keep","developer":"keep@corp.com"}"#, UNPROCESSABLE),
        sensedia("revoke naming nothing", "/v1/revokeCredentials", Some(good_auth()), br#"{"appName":"only a name"}"#, UNPROCESSABLE),
        sensedia("revoke with an apiKeyId with spaces", "/v1/revokeCredentials", Some(good_auth()), br#"{"apiKeyId":"a b c"}"#, UNPROCESSABLE),
        sensedia("revoke with an apiKeyId a number", "/v1/revokeCredentials", Some(good_auth()), br#"{"apiKeyId":12345}"#, UNPROCESSABLE),
        sensedia("update of an unknown key", "/v1/updateCredentials", Some(good_auth()), br#"{"apiKeyId":"doesnotexist","appName":"Keep","developer":"keep@corp.com"}"#, StatusCode::NOT_FOUND),
        update_other_kind,
        method("GET createCredentials", "GET", "/v1/createCredentials"),
        method("PUT revokeCredentials", "PUT", "/v1/revokeCredentials"),
        method("DELETE updateCredentials", "DELETE", "/v1/updateCredentials"),
        method("POST health", "POST", "/v1/health"),
        sensedia("unknown route", "/v1/deleteEverything", Some(good_auth()), app, StatusCode::NOT_FOUND),
        sensedia("route in another case", "/v1/createcredentials", Some(good_auth()), app, StatusCode::NOT_FOUND),
    ]
}

async fn send(server: &Server, case: &Hostile) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = server
        .http
        .request(method, format!("{}{}", server.base, case.path))
        .body(case.body.clone());
    for (name, value) in &case.headers {
        request = request.header(
            *name,
            reqwest::header::HeaderValue::from_bytes(value).expect("a sendable header"),
        );
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

/// What both doors show of the stored credentials: every login and every
/// create replay of the seeded apps, plus the owners hostile bodies name.
async fn snapshot(server: &Server) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for owner in [
        "keep@corp.com",
        "other@corp.com",
        "hostile@corp.com",
        "deep@corp.com",
        "a@corp.com",
        "ab@corp.com",
    ] {
        out.push((
            owner.to_string(),
            format!("{:?}", server.login_keys(owner).await),
        ));
    }
    for (slug, developer) in [("keep", "keep@corp.com"), ("keep2", "other@corp.com")] {
        let response = server
            .sensedia(
                "createCredentials",
                &json!({"appName": "Keep", "appSlug": slug, "developer": developer}),
            )
            .await;
        out.push((slug.to_string(), response.text().await.unwrap()));
    }
    out
}

/// The raw bytes of an HTTP/1.1 exchange over a fresh TCP connection: what
/// the server answered before closing, if anything.
fn raw_exchange(base: &str, request: &[u8]) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> Option<u16> {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok())
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// Requests an HTTP client will not send: (name, raw request, status).
/// hyper refuses most before keyhook sees them, with an empty 400 (no JSON
/// is possible there); those keyhook answers carry a JSON error.
fn raw_table(auth: &str, sig: &str) -> Vec<(&'static str, Vec<u8>, u16)> {
    let body = r#"{"email":"keep@corp.com"}"#;
    let app = r#"{"appName":"Raw","appSlug":"raw","developer":"raw@corp.com"}"#;
    let login_with = |extra: &str, cl: &str, body: &str| {
        format!(
            "POST /readme/webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             ReadMe-Signature: {sig}\r\n{extra}{cl}\r\n{body}"
        )
        .into_bytes()
    };
    let create_with = |extra: &str, cl: &str, body: &str| {
        format!(
            "POST /v1/createCredentials HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             {extra}{cl}\r\n{body}"
        )
        .into_bytes()
    };
    let cl = |body: &str| format!("Content-Length: {}\r\n", body.len());
    let auth_line = format!("Authorization: {auth}\r\n");
    vec![
        (
            "login: CR/LF in a header value (injected header)",
            login_with("X-Test: a\rInjected: 1\r\n", &cl(body), body),
            400,
        ),
        (
            "login: bare LF inside a header value",
            login_with("X-Test: a\nInjected : 1\r\n", &cl(body), body),
            400,
        ),
        (
            "login: obs-fold continuation of the signature",
            login_with(" ,v0=00\r\n", &cl(body), body),
            400,
        ),
        (
            "login: conflicting Content-Length",
            login_with(&cl(body), "Content-Length: 3\r\n", body),
            400,
        ),
        (
            "login: Content-Length and chunked",
            login_with("Transfer-Encoding: chunked\r\n", &cl(body), body),
            400,
        ),
        (
            "login: invalid chunk size",
            login_with("Transfer-Encoding: chunked\r\n", "", "zz\r\nabc\r\n0\r\n\r\n"),
            400,
        ),
        (
            "login: Content-Length not a number",
            login_with("", "Content-Length: abc\r\n", body),
            400,
        ),
        (
            "login: body shorter than Content-Length",
            login_with("", "Content-Length: 100\r\n", body),
            400,
        ),
        (
            "login: space before the colon",
            login_with("X-Test : 1\r\n", &cl(body), body),
            400,
        ),
        (
            "login: NUL in a header value",
            login_with("X-Test: a\0b\r\n", &cl(body), body),
            400,
        ),
        (
            "create: CR/LF in Authorization",
            create_with(&format!("Authorization: {auth}\rX-Admin: 1\r\n"), &cl(app), app),
            400,
        ),
        (
            "create: obs-fold Authorization",
            create_with(&format!("Authorization: Basic\r\n {}\r\n", &auth[6..]), &cl(app), app),
            400,
        ),
        (
            "create: conflicting Content-Length",
            create_with(&auth_line, &format!("{}Content-Length: 2\r\n", cl(app)), app),
            400,
        ),
        (
            "create: Content-Length and chunked",
            create_with(&format!("{auth_line}Transfer-Encoding: chunked\r\n"), &cl(app), app),
            400,
        ),
        (
            "create: body shorter than Content-Length",
            create_with(&auth_line, "Content-Length: 500\r\n", app),
            400,
        ),
        (
            "create: header name with a space",
            create_with(&format!("{auth_line}Bad Header: 1\r\n"), &cl(app), app),
            400,
        ),
        (
            "garbage request line",
            b"HELLO\r\n\r\n".to_vec(),
            400,
        ),
        (
            "path traversal to the portal routes",
            format!("POST /readme/../v1/createCredentials HTTP/1.1\r\nHost: x\r\n{auth_line}Content-Type: application/json\r\n{}\r\n{app}", cl(app)).into_bytes(),
            404,
        ),
    ]
}

#[tokio::test]
async fn hostile_requests_get_their_4xx_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config();
    config.data_dir = dir.path().to_path_buf();
    let server = Server::spawn(&config, None).await;
    let kept = server
        .sensedia(
            "createCredentials",
            &json!({"appName": "Keep", "appSlug": "keep", "developer": "keep@corp.com"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    server
        .sensedia(
            "createCredentials",
            &json!({"appName": "Keep", "appSlug": "keep2", "developer": "other@corp.com"}),
        )
        .await;
    let before = snapshot(&server).await;

    let readme = readme_table();
    let portal = sensedia_table(kept["apiKeyId"].as_str().unwrap());
    assert!(readme.len() >= 40, "{} ReadMe cases", readme.len());
    assert!(portal.len() >= 40, "{} Sensedia cases", portal.len());
    let mut failures = Vec::new();
    for case in readme.iter().chain(&portal) {
        let (status, headers, text) = send(&server, case).await;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        let error = body.as_ref().and_then(|b| b["error"].as_str());
        let only_error = body
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(|o| o.len() == 1);
        let www = headers.contains_key("www-authenticate");
        let ok = status == case.status
            && error.is_some()
            && only_error
            && case.error.is_none_or(|e| error == Some(e))
            && (case.path != "/readme/webhook" || status != StatusCode::UNAUTHORIZED || !www)
            && (!case.path.starts_with("/v1/") || status != StatusCode::UNAUTHORIZED || www);
        if !ok {
            failures.push(format!(
                "{} {}: {:?}: answered {status} {text:.200} (www-authenticate: {www}), expected {} {:?}",
                case.method, case.path, case.name, case.status, case.error
            ));
        }
    }

    let sig = String::from_utf8(sign(br#"{"email":"keep@corp.com"}"#)).unwrap();
    let auth = String::from_utf8(good_auth()).unwrap();
    let raw = raw_table(&auth, &sig);
    for (name, request, expected) in &raw {
        let base = server.base.clone();
        let request = request.clone();
        let answer = tokio::task::spawn_blocking(move || raw_exchange(&base, &request))
            .await
            .unwrap();
        let status = status_of(&answer);
        let body = body_of(&answer);
        // keyhook's own answers are JSON errors; hyper's protocol errors
        // have no body at all.
        let json = serde_json::from_str::<Value>(body)
            .is_ok_and(|b| b["error"].is_string() && b.as_object().is_some_and(|o| o.len() == 1));
        let keyhook_answers = name.contains("body shorter")
            || name.contains("chunk")
            || name.contains("path traversal");
        let right_body = if keyhook_answers {
            json
        } else {
            body.trim().is_empty()
        };
        if status != Some(*expected) || !right_body {
            failures.push(format!("raw {name}: answered {answer:.300}"));
        }
    }

    let after = snapshot(&server).await;
    assert_eq!(before, after, "stored credentials changed");
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests were mishandled:\n{}",
        failures.len(),
        readme.len() + portal.len() + raw.len(),
        failures.join("\n")
    );
    server.stop().await;
}

fn verifier(secrets: &[String], tolerance_secs: u64) -> Verifier {
    Verifier::new(
        secrets.iter().map(|s| Redacted::new(s.clone())).collect(),
        tolerance_secs,
    )
}

/// Strings shaped like signature headers, to reach past the first checks.
fn header_like() -> impl Strategy<Value = String> {
    let entry = prop_oneof![
        "t ?= ?-?[0-9]{0,22}",
        "v0 ?= ?[0-9a-fA-F]{0,66}",
        "v[0-9] ?=[ -~]{0,10}",
        "[ -~]{0,12}",
        "[\\PC]{0,6}",
    ];
    proptest::collection::vec(entry, 0..12).prop_map(|parts| parts.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parse_header_never_panics(header in any::<String>(), shaped in header_like()) {
        let _ = parse_header(&header);
        if let Ok(parsed) = parse_header(&shaped) {
            prop_assert!(!parsed.tags.is_empty() && parsed.tags.len() <= 8);
            prop_assert!(parsed.timestamp_ms >= 0);
        }
    }

    #[test]
    fn verify_never_panics(
        header in prop_oneof![any::<String>(), header_like()],
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
        tolerance in any::<u64>(),
        secrets in proptest::collection::vec(any::<String>(), 0..3),
    ) {
        let v = verifier(&secrets, tolerance);
        let _ = v.verify(Some(&header), &body, now);
        let _ = v.verify(None, &body, now);
    }

    #[test]
    fn sign_then_verify_round_trips(
        secret in ".{1,64}",
        other in ".{1,64}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
        t in 0i64..4_102_444_800_000,
        skew in -1_800_000i64..=1_800_000,
    ) {
        let header = signature::sign(&secret, t, &body);
        let now = t + skew;
        prop_assert_eq!(verifier(std::slice::from_ref(&secret), 1800).verify(Some(&header), &body, now), Ok(()));
        // Rotation: any configured secret verifies.
        prop_assert_eq!(verifier(&[other.clone(), secret.clone()], 1800).verify(Some(&header), &body, now), Ok(()));
        if other != secret {
            prop_assert_eq!(
                verifier(&[other], 1800).verify(Some(&header), &body, now),
                Err(signature::SignatureError::Invalid)
            );
        }
        let mut tampered = body.clone();
        tampered.push(b' ');
        prop_assert_eq!(
            verifier(std::slice::from_ref(&secret), 1800).verify(Some(&header), &tampered, now),
            Err(signature::SignatureError::Invalid)
        );
        prop_assert_eq!(
            verifier(&[secret], 1800).verify(Some(&header), &body, t + 1_800_001),
            Err(signature::SignatureError::Expired)
        );
    }

    #[test]
    fn request_decoders_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        text in any::<String>(),
        value in json_value(),
    ) {
        use keyhook::credentials::CredentialKind;
        use keyhook::sensedia::model::{App, CreateCredentialsRequest, CredentialRequest};
        let json_text = value.to_string();
        for input in [bytes.as_slice(), text.as_bytes(), json_text.as_bytes()] {
            if let Ok(request) = keyhook::extract::json::<CreateCredentialsRequest>(input) {
                for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
                    let _ = App::try_from(&request.app).map(|app| app.spec(kind));
                }
            }
            if let Ok(request) = keyhook::extract::json::<CredentialRequest>(input) {
                for kind in [CredentialKind::ApiKey, CredentialKind::ClientCredentials] {
                    let _ = request.kind(kind);
                    let _ = request.target(kind);
                    let _ = App::try_from(&request.app).map(|app| app.spec(kind));
                }
            }
        }
    }

    #[test]
    fn email_parse_never_panics_and_normalises(raw in any::<String>(), shaped in "[ -~\\PC]{0,20}@[ -~\\PC]{0,20}") {
        use keyhook::credentials::Email;
        for input in [&raw, &shaped] {
            if let Ok(email) = Email::parse(input) {
                let again = Email::parse(email.as_str()).expect("a parsed email parses again");
                prop_assert_eq!(again.as_str(), email.as_str());
                prop_assert!(email.as_str().len() <= 254 * 2);
            }
        }
    }
}

/// JSON values shaped like the portal's requests, with wrong types mixed in.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[ -~\\PC]{0,40}".prop_map(Value::from),
        "[a-z0-9._-]{1,12}@[a-z0-9.-]{1,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let keys = prop_oneof![
            Just("appName".to_string()),
            Just("appSlug".to_string()),
            Just("developer".to_string()),
            Just("apis".to_string()),
            Just("id".to_string()),
            Just("usagePlans".to_string()),
            Just("credentialType".to_string()),
            Just("apiKeyId".to_string()),
            Just("clientId".to_string()),
            Just("customCredentials".to_string()),
            "[a-zA-Z]{1,8}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
