//! Request decoding shared by both front doors: the raw body under the
//! configured limit, and JSON with errors sorted into 400/415/422.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Turns the body extractor's rejection into our error. Axum reports an
/// over-limit body as 413; anything else is a broken request.
pub fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit)
        } else {
            ApiError::BadRequest("request body could not be read".into())
        }
    })
}

/// `application/json`, with or without parameters, or any `+json` type.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Decodes a JSON body: syntax errors (including invalid UTF-8 and nesting
/// deeper than serde_json's limit) are 400, well-formed JSON of the wrong
/// shape is 422.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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
    use axum::http::HeaderValue;

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
}
