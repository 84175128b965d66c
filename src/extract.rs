//! Extractors shared by both front doors, whose rejection is [`ApiError`]:
//! the raw body under the configured limit, and JSON with errors sorted into
//! 400/413/415/422.

use std::pin::Pin;

use axum::body::{Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{header, HeaderMap};
use axum::{Extension, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;

/// The configured limit on request bodies. It travels in the request's
/// extensions so the 413 can name it.
#[derive(Debug, Clone, Copy)]
struct BodyLimit(usize);

/// The limit where none is configured: axum's default for its extractors.
const UNCONFIGURED_LIMIT: usize = 2 * 1024 * 1024;

/// Refuses, on every route of `router`, a body larger than `limit` bytes:
/// [`headers_and_body`] reads the limit from the extensions, and axum's own
/// extractors, should a route use one, from `DefaultBodyLimit`.
pub(crate) fn limit_bodies(router: Router, limit: usize) -> Router {
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
}

/// Takes the request's headers and reads its whole body, refusing one over
/// the configured limit (413, before reading when its length says so);
/// anything else that stops the read is a broken request. A body that
/// arrives in one piece, as a login's does, is kept without a copy.
pub(crate) async fn headers_and_body(mut request: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let headers = std::mem::take(request.headers_mut());
    // Outside a router built with `limit_bodies` (a bench calling an
    // extractor directly), axum's own default holds, as it does for axum's
    // extractors.
    let BodyLimit(limit) = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit(UNCONFIGURED_LIMIT));
    let mut body = request.into_body();
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut whole = Bytes::new();
    let mut joined: Option<Vec<u8>> = None;
    // A body that says it is at its end (its length read) is not polled for
    // the end: over HTTP/1 hyper answers that poll through its body
    // channel's lock, twice, and every login would pay it. (Over HTTP/2 the
    // check itself takes h2's lock: about even.)
    while !body.is_end_stream() {
        let poll = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let Some(frame) = poll.await else {
            break;
        };
        let frame =
            frame.map_err(|_| ApiError::BadRequest("request body could not be read".into()))?;
        // Trailers carry nothing we read; an empty frame adds nothing (and
        // must not cost a one-piece body its copy-free path).
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let read = joined.as_ref().map_or(whole.len(), Vec::len);
        if read.saturating_add(data.len()) > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        match &mut joined {
            Some(joined) => joined.extend_from_slice(&data),
            None if whole.is_empty() => whole = data,
            None => joined = Some([&whole[..], &data[..]].concat()),
        }
    }
    Ok((headers, joined.map_or(whole, Bytes::from)))
}

/// A JSON request body: `application/json` (or `+json`), at most the
/// configured size, decoded into `T`. Checked in that order: size (413),
/// content type (415), syntax (400), shape (422).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let (headers, body) = headers_and_body(request).await?;
        require_json(&headers)?;
        json(&body).map(JsonBody)
    }
}

/// `application/json`, with or without parameters, or any `+json` type.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .ok_or(ApiError::UnsupportedMediaType)?;
    // What ReadMe and Sensedia send, taken without parsing.
    if value.as_bytes() == b"application/json" {
        return Ok(());
    }
    let value = value.to_str().map_err(|_| ApiError::UnsupportedMediaType)?;
    let essence = value.split(';').next().unwrap_or("").trim();
    // Compared in place, any case (every login comes through here).
    let Some((top, subtype)) = essence.split_once('/') else {
        return Err(ApiError::UnsupportedMediaType);
    };
    let suffix = subtype
        .len()
        .checked_sub("+json".len())
        .and_then(|at| subtype.get(at..));
    if top.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || suffix.is_some_and(|s| s.eq_ignore_ascii_case("+json")))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Decodes a JSON body: syntax errors (including invalid UTF-8 and nesting
/// deeper than serde_json's limit) are 400, well-formed JSON of the wrong
/// shape is 422.
pub(crate) fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let value = serde_json::from_slice(bytes).map_err(|err| {
        use serde_json::error::Category;
        match err.classify() {
            Category::Data => ApiError::Unprocessable(format!("invalid request: {err}")),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::BadRequest(format!("malformed JSON: {err}"))
            }
        }
    })?;
    // Every request body is an object. Derived `Deserialize` also accepts a
    // struct written as an array of its fields (`["a@b.c"]` for
    // `{"email":"a@b.c"}`), which no portal sends.
    if bytes.trim_ascii_start().first() == Some(&b'[') {
        return Err(ApiError::Unprocessable(
            "invalid request: the body must be a JSON object".into(),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
    }

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        assert!(require_json(&headers).is_err());
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/vnd.api+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
            ("application/jsonx", false),
            ("Application/Problem+JSON", true),
            ("text/plain+json", false),
            ("application/json/extra", false),
            ("json", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(require_json(&headers).is_ok(), ok, "{value}");
        }
    }

    #[test]
    fn json_errors_are_sorted() {
        assert!(matches!(json::<Body>(b"{"), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            json::<Body>(b"\xff\xfe"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            json::<Body>(b"{}"),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            json::<Body>(b"{\"email\":5}"),
            Err(ApiError::Unprocessable(_))
        ));
        // Deep nesting where a value is kept hits serde_json's recursion
        // limit instead of the stack; in a skipped field it is just skipped.
        let nested = |field: &str| {
            format!(
                "{{\"{field}\":{}{},\"email\":\"a@b\"}}",
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
        };
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Kept {
            kept: serde_json::Value,
        }
        assert!(matches!(
            json::<Kept>(nested("kept").as_bytes()),
            Err(ApiError::BadRequest(_))
        ));
        assert!(json::<Body>(nested("skipped").as_bytes()).is_ok());
        assert_eq!(
            json::<Body>(b"{\"email\":\"a@b\",\"x\":1}").unwrap().email,
            "a@b"
        );
        // A struct is not accepted in serde's array form.
        assert!(matches!(
            json::<Body>(b" [\"a@b\"]"),
            Err(ApiError::Unprocessable(_))
        ));
    }

    /// What a route taking `JsonBody` answers, limited to 16 bytes.
    async fn answer(content_type: &str, body: &'static [u8]) -> (StatusCode, String) {
        use axum::routing::post;
        use tower::ServiceExt;

        let route = Router::new().route(
            "/",
            post(|JsonBody(body): JsonBody<Body>| async move { body.email }),
        );
        let request = axum::http::Request::post("/")
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .unwrap();
        let response = limit_bodies(route, 16).oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn json_body_checks_size_then_type_then_syntax_then_shape() {
        let (status, body) = answer("text/plain", b"{\"email\":\"a@b.c\"} ").await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body, r#"{"error":"request body is larger than 16 bytes"}"#);
        let (status, _) = answer("text/plain", b"{").await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (status, _) = answer("application/json", b"{").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = answer("application/json", b"{}").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, body) = answer("application/json", b"{\"email\":\"a@b\"}").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a@b"));
    }

    /// A body in `frames`, each a poll of its own, claiming `length`.
    struct Frames {
        frames: std::collections::VecDeque<&'static [u8]>,
        length: Option<u64>,
        /// Whether the next poll has a frame (every other one is pending).
        ready: bool,
    }

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            // Every other poll is pending, as a body arriving in pieces is.
            self.ready = !self.ready;
            if !self.ready {
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            let frame = self
                .frames
                .pop_front()
                .map(|data| Ok(hyper::body::Frame::data(Bytes::from_static(data))));
            std::task::Poll::Ready(frame)
        }

        fn size_hint(&self) -> hyper::body::SizeHint {
            match self.length {
                Some(length) => hyper::body::SizeHint::with_exact(length),
                None => hyper::body::SizeHint::default(),
            }
        }
    }

    /// A body of one piece that says when it is at its end, as hyper's does
    /// for a request with a length, and fails a poll past it.
    struct Ending(Option<Bytes>);

    impl HttpBody for Ending {
        type Data = Bytes;
        type Error = &'static str;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Ready(Some(
                self.0
                    .take()
                    .map(hyper::body::Frame::data)
                    .ok_or("polled past its end"),
            ))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_none()
        }
    }

    #[tokio::test]
    async fn a_body_at_its_end_is_not_polled_for_it() {
        let read_ending = |piece: Option<&'static [u8]>| async move {
            let body = axum::body::Body::new(Ending(piece.map(Bytes::from_static)));
            let request = axum::http::Request::post("/").body(body).unwrap();
            headers_and_body(request).await.map(|(_, body)| body)
        };
        assert_eq!(&read_ending(Some(b"{}")).await.unwrap()[..], b"{}");
        // An empty body (no length, or a length of 0) is not polled at all.
        assert!(read_ending(None).await.unwrap().is_empty());
    }

    /// What `headers_and_body` makes of `frames` under a limit of 16 bytes.
    async fn read(frames: &[&'static [u8]], length: Option<u64>) -> Result<Bytes, ApiError> {
        let body = Frames {
            frames: frames.iter().copied().collect(),
            length,
            ready: false,
        };
        let mut request = axum::http::Request::post("/")
            .body(axum::body::Body::new(body))
            .unwrap();
        request.extensions_mut().insert(BodyLimit(16));
        headers_and_body(request).await.map(|(_, body)| body)
    }

    #[tokio::test]
    async fn a_body_in_pieces_is_joined_and_held_to_the_limit() {
        assert_eq!(
            &read(&[b"0123456789abcdef"], Some(16)).await.unwrap()[..],
            b"0123456789abcdef"
        );
        assert_eq!(
            &read(&[b"", b"01234", b"", b"56789", b"abcdef"], None)
                .await
                .unwrap()[..],
            b"0123456789abcdef"
        );
        assert!(read(&[], None).await.unwrap().is_empty());
        // One piece among empty frames is handed on as it came, not copied.
        const PIECE: &[u8] = b"{\"email\":\"a@b\"}";
        let body = read(&[b"", PIECE, b""], None).await.unwrap();
        assert_eq!(body.as_ptr(), PIECE.as_ptr());
        // Over the limit in pieces, none of them over it alone.
        assert!(matches!(
            read(&[b"01234567", b"89abcdef", b"!"], None).await,
            Err(ApiError::PayloadTooLarge(16))
        ));
        // Refused on its declared length, before any of it is read.
        assert!(matches!(
            read(&[b"short"], Some(17)).await,
            Err(ApiError::PayloadTooLarge(16))
        ));
        // Without `limit_bodies`, axum's default limit holds.
        let request = |size: usize| {
            axum::http::Request::post("/")
                .body(axum::body::Body::from(vec![b'x'; size]))
                .unwrap()
        };
        let (_, body) = headers_and_body(request(UNCONFIGURED_LIMIT)).await.unwrap();
        assert_eq!(body.len(), UNCONFIGURED_LIMIT);
        assert!(matches!(
            headers_and_body(request(UNCONFIGURED_LIMIT + 1)).await,
            Err(ApiError::PayloadTooLarge(UNCONFIGURED_LIMIT))
        ));
    }
}
