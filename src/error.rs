//! Every error a request can end in, and the one place that turns each into
//! an HTTP answer: a status and a JSON body `{"error": "..."}`.
//!
//! Messages are written for the caller and never carry a secret. A backend
//! failure answers only what the caller can act on: the failing operation
//! and a kind from the closed set [`FailureKind`], in a fixed sentence plus
//! `kind` and `operation` fields. What the backend itself said (AWS's code
//! and message, which name the role ARN and the account) goes to the log,
//! in the request's span and so with its request id: turning an error into
//! a response has no side effect; `log_failure`, a layer of the router,
//! logs it from the response.

use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::credentials::{CredentialError, FailureKind};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller did not prove who it is. `challenge` says which
    /// credentials to present (`WWW-Authenticate`); a signed webhook has
    /// none to offer.
    #[error("{message}")]
    Unauthorized {
        message: &'static str,
        challenge: Option<Challenge>,
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
    /// A backend's refusal at a limit is [`ApiError::LimitReached`] (see
    /// the `From` below).
    #[error(transparent)]
    Credential(CredentialError),
    /// The provisioning budget refused a new credential: 503, naming the
    /// limit.
    #[error(transparent)]
    LimitReached(#[from] crate::budget::Refusal),
    /// A health probe found the backend unusable: answered as
    /// `{"status":"unready","reason":<kind>}`.
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
                CredentialError::NotFound(_) | CredentialError::UnknownId(_) => {
                    StatusCode::NOT_FOUND
                }
                CredentialError::Invalid(_) => StatusCode::CONFLICT,
                CredentialError::Failed { kind, .. } => failure_status(*kind),
                CredentialError::Backend { .. } => StatusCode::BAD_GATEWAY,
                CredentialError::LimitReached(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Unhealthy(_) | ApiError::LimitReached(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<CredentialError> for ApiError {
    fn from(err: CredentialError) -> Self {
        match err {
            CredentialError::LimitReached(refusal) => ApiError::LimitReached(refusal),
            err => ApiError::Credential(err),
        }
    }
}

/// What a 401 asks the caller to present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// The Sensedia routes: a user and password.
    Basic,
    /// The admin listener: a bearer token.
    Bearer,
}

impl Challenge {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Challenge::Basic => "Basic realm=\"keyhook\", charset=\"UTF-8\"",
            Challenge::Bearer => "Bearer realm=\"keyhook-admin\"",
        })
    }
}

/// `503` for what is worth trying later, `502` for a refusal or an answer
/// that cannot be used (README, "AWS backend" → "Failures").
fn failure_status(kind: FailureKind) -> StatusCode {
    match kind {
        FailureKind::Starting
        | FailureKind::IndexStale
        | FailureKind::AwsUnavailable
        | FailureKind::AwsThrottled
        | FailureKind::AwsTimeout => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::AwsAccessDenied
        | FailureKind::AwsNotFound
        | FailureKind::AwsRefused
        | FailureKind::BackendFailed
        | FailureKind::StorageFailed => StatusCode::BAD_GATEWAY,
    }
}

impl ApiError {
    /// The JSON body: built from the operation and kind alone for a backend
    /// failure, never from the backend's own words.
    fn body(&self) -> serde_json::Value {
        match self {
            ApiError::Unhealthy(err) => {
                let reason = err.failure().map_or(FailureKind::BackendFailed, |(_, k)| k);
                json!({ "status": "unready", "reason": reason.as_str() })
            }
            ApiError::Credential(err) => match err.failure() {
                Some((operation, kind)) => json!({
                    "error": format!("{operation} failed: {}", kind.sentence()),
                    "kind": kind.as_str(),
                    "operation": operation,
                }),
                None => json!({ "error": self.to_string() }),
            },
            ApiError::LimitReached(refusal) => json!({
                "error": self.to_string(),
                "reason": refusal.reason(),
                "limit": refusal.limit(),
            }),
            _ => json!({ "error": self.to_string() }),
        }
    }
}

/// The whole message of the error a response was made from, the backend's
/// own words included, riding in the response's extensions to
/// [`log_failure`].
#[derive(Debug, Clone)]
pub(crate) struct Failure(String);

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let status = self.status();
        let message = self.to_string();
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::Unauthorized {
            challenge: Some(challenge),
            ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge.header());
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

    const DENIED: &str = "AccessDeniedException (HTTP 403): User: \
        arn:aws:sts::123456789012:assumed-role/keyhook/x is not authorized";

    async fn body_of(response: axum::response::Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn every_failure_kind_maps_to_the_documented_status() {
        for kind in FailureKind::ALL {
            let err = ApiError::from(CredentialError::Failed {
                operation: "GetApiKeys",
                kind,
                detail: "d".into(),
            });
            let want = match kind.as_str() {
                "starting" | "index_stale" | "aws_unavailable" | "aws_throttled"
                | "aws_timeout" => 503,
                _ => 502,
            };
            assert_eq!(err.status().as_u16(), want, "{kind}");
        }
        let backend = ApiError::from(CredentialError::Backend {
            operation: "CreateApiKey",
            detail: "the answer carried no key id".into(),
        });
        assert_eq!(backend.status(), StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn a_backend_failure_answers_operation_and_kind_and_logs_the_rest() {
        let err = CredentialError::Failed {
            operation: "CreateApiKey",
            kind: FailureKind::AwsAccessDenied,
            detail: DENIED.into(),
        };
        let response = ApiError::from(err.clone()).into_response();
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let logged = response.extensions().get::<Failure>().unwrap().0.clone();
        assert!(logged.contains(DENIED), "{logged}");
        assert_eq!(
            body_of(response).await,
            json!({
                "error": "CreateApiKey failed: AWS denied access",
                "kind": "aws_access_denied",
                "operation": "CreateApiKey",
            })
        );
        let unready = ApiError::Unhealthy(err).into_response();
        assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(unready
            .extensions()
            .get::<Failure>()
            .unwrap()
            .0
            .contains(DENIED));
        assert_eq!(
            body_of(unready).await,
            json!({"status": "unready", "reason": "aws_access_denied"})
        );
    }

    #[test]
    fn unauthorized_asks_for_the_credentials_it_is_told_to() {
        let basic = ApiError::Unauthorized {
            message: "authentication required",
            challenge: Some(Challenge::Basic),
        }
        .into_response();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
        assert!(basic.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic "));
        let bearer = ApiError::Unauthorized {
            message: "a bearer token is required",
            challenge: Some(Challenge::Bearer),
        }
        .into_response();
        assert!(bearer.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer "));
        let signed = ApiError::Unauthorized {
            message: "Missing Signature",
            challenge: None,
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
