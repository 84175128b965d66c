//! Every error a request can end in, and the one place that turns each into
//! an HTTP answer: a status and a JSON body `{"error": "..."}`.
//!
//! Messages are written for the caller and never carry a secret: provider
//! errors name the failing operation, not the values involved. Turning an
//! error into a response has no side effect; `log_failure`, a layer of the
//! router, logs it from the response.

use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::credentials::CredentialError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller did not prove who it is. `basic_challenge` asks for Basic
    /// credentials (`WWW-Authenticate`); a signed webhook has none to offer.
    #[error("{message}")]
    Unauthorized {
        message: &'static str,
        basic_challenge: bool,
    },
    #[error("{0}")]
    NotConfigured(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A health probe found the backend unusable.
    #[error("backend unavailable: {0}")]
    Unhealthy(CredentialError),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Credential(err) => match err {
                CredentialError::NotFound(_) => StatusCode::NOT_FOUND,
                CredentialError::Invalid(_) => StatusCode::CONFLICT,
                CredentialError::Backend { .. } => StatusCode::BAD_GATEWAY,
                CredentialError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Unhealthy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The message of the error a response was made from, riding in the
/// response's extensions to [`log_failure`].
#[derive(Debug, Clone)]
pub(crate) struct Failure(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = self.status();
        let message = self.to_string();
        let mut response = (status, Json(json!({ "error": message }))).into_response();
        if matches!(
            self,
            ApiError::Unauthorized {
                basic_challenge: true,
                ..
            }
        ) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"keyhook\", charset=\"UTF-8\""),
            );
        }
        response.extensions_mut().insert(Failure(message));
        response
    }
}

/// Logs the error a response was made from: a server fault at error, a
/// refused request at debug (callers get those wrong all day).
pub(crate) fn log_failure<B>(response: Response<B>) -> Response<B> {
    if let Some(Failure(message)) = response.extensions().get::<Failure>() {
        let status = response.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %message, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), error = %message, "request rejected");
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_errors_map_to_gateway_statuses() {
        let backend = ApiError::from(CredentialError::Backend {
            operation: "CreateApiKey",
            detail: "boom".into(),
        });
        assert_eq!(backend.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(backend.to_string(), "CreateApiKey failed: boom");
        let unavailable = ApiError::from(CredentialError::Unavailable {
            operation: "GetApiKeys",
            detail: "throttled".into(),
        });
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn unauthorized_asks_for_basic_auth_only_when_told() {
        let basic = ApiError::Unauthorized {
            message: "authentication required",
            basic_challenge: true,
        }
        .into_response();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert!(basic.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let signed = ApiError::Unauthorized {
            message: "Missing Signature",
            basic_challenge: false,
        }
        .into_response();
        assert_eq!(signed.status(), StatusCode::UNAUTHORIZED);
        assert!(signed.headers().get(header::WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn the_response_carries_the_message_for_the_log() {
        let response = ApiError::NotFound("no such route".into()).into_response();
        let failure = response.extensions().get::<Failure>().unwrap();
        assert_eq!(failure.0, "no such route");
    }

    #[test]
    fn failures_are_logged_from_the_response_by_status() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        let responses = tracing::subscriber::with_default(subscriber, || {
            let internal = ApiError::Internal.into_response();
            assert!(lines.0.lock().unwrap().is_empty(), "into_response logged");
            [
                log_failure(internal),
                log_failure(ApiError::NotFound("no such route".into()).into_response()),
                log_failure(StatusCode::NO_CONTENT.into_response()),
            ]
        });
        assert_eq!(responses.map(|r| r.status().as_u16()), [500, 404, 204]);
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let logged: Vec<&str> = logged.lines().collect();
        assert_eq!(logged.len(), 2, "{logged:?}");
        assert!(logged[0].contains("ERROR") && logged[0].contains("request failed"));
        assert!(logged[0].contains("internal error"));
        assert!(logged[1].contains("DEBUG") && logged[1].contains("request rejected"));
        assert!(logged[1].contains("no such route"));
    }
}
