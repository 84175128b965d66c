//! How the AWS backend talks to AWS: SDK clients with keyhook's timeouts and
//! retries, and one metered wrapper every call goes through (the token
//! bucket, the sorting of errors, the per-operation counters).

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_apigateway::config::http::HttpResponse;
use aws_sdk_apigateway::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigateway::operation::RequestId;

use super::limiter::TokenBucket;
use super::settings::AwsSettings;
use crate::credentials::{CredentialError, FailureKind};

/// The standard AWS configuration chain: environment, profile, ECS task
/// role, IRSA web identity; `AWS_ENDPOINT_URL` for emulators.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The SDK clients the backend uses.
pub(super) struct SdkClients {
    pub apigateway: aws_sdk_apigateway::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

/// The API Gateway, Cognito and DynamoDB clients, with `settings`' overall
/// timeout spread over its attempts (SDK standard retry with backoff).
pub(super) fn sdk_clients(settings: &AwsSettings, sdk: &SdkConfig) -> SdkClients {
    let timeout = Duration::from_secs(settings.timeout_secs);
    let retry = RetryConfig::standard()
        .with_max_attempts(settings.max_attempts)
        .with_initial_backoff(Duration::from_millis(100));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .operation_attempt_timeout(timeout / settings.max_attempts.max(1))
        .operation_timeout(timeout)
        .build();
    let apigateway = aws_sdk_apigateway::config::Builder::from(sdk)
        .retry_config(retry.clone())
        .timeout_config(timeouts.clone())
        .build();
    let cognito = aws_sdk_cognitoidentityprovider::config::Builder::from(sdk)
        .retry_config(retry.clone())
        .timeout_config(timeouts.clone())
        .build();
    let dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(retry)
        .timeout_config(timeouts)
        .build();
    SdkClients {
        apigateway: aws_sdk_apigateway::Client::from_conf(apigateway),
        cognito: aws_sdk_cognitoidentityprovider::Client::from_conf(cognito),
        dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
    }
}

/// An AWS timestamp in Unix milliseconds (0 when absent).
pub(super) fn epoch_ms(date: Option<&aws_sdk_apigateway::primitives::DateTime>) -> u64 {
    date.and_then(|d| d.to_millis().ok())
        .and_then(|ms| u64::try_from(ms).ok())
        .unwrap_or_default()
}

/// What went wrong with one AWS call, sorted for the caller.
#[derive(Debug)]
pub(crate) struct AwsError {
    operation: &'static str,
    kind: AwsErrorKind,
    /// AWS's own account: code, status, request id, message. For the log.
    detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AwsErrorKind {
    /// Acted on by the caller (`call_opt`), or surfaced as `aws_not_found`.
    NotFound,
    /// Acted on by the caller (`is_conflict`), or surfaced as `aws_refused`.
    Conflict,
    /// One of the [`FailureKind`]s an answer shows.
    Failed(FailureKind),
}

impl AwsErrorKind {
    /// The `outcome` label of `keyhook_aws_calls_total`.
    fn outcome(self) -> &'static str {
        match self {
            AwsErrorKind::NotFound => "not_found",
            AwsErrorKind::Conflict => "conflict",
            AwsErrorKind::Failed(
                FailureKind::AwsThrottled | FailureKind::AwsTimeout | FailureKind::AwsUnavailable,
            ) => "unavailable",
            AwsErrorKind::Failed(_) => "error",
        }
    }

    /// Sorts a service error by its code, else by its HTTP status.
    fn of_service_error(code: &str, status: u16) -> Self {
        let failed = AwsErrorKind::Failed;
        match code {
            "NotFoundException" | "ResourceNotFoundException" => AwsErrorKind::NotFound,
            // A DynamoDB condition that did not hold is a conflict too: the
            // claim table's "someone else holds it".
            // A transaction cancelled by a condition or by a concurrent
            // one (the caller reads the reasons, `ceiling.rs`), or a write
            // that met a transaction under way on its item.
            "ConflictException"
            | "ConditionalCheckFailedException"
            | "TransactionCanceledException"
            | "TransactionConflictException" => AwsErrorKind::Conflict,
            "TooManyRequestsException"
            | "ThrottlingException"
            | "Throttling"
            | "LimitExceededException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded" => failed(FailureKind::AwsThrottled),
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationTokenException" => failed(FailureKind::AwsAccessDenied),
            _ if status == 429 => failed(FailureKind::AwsThrottled),
            _ if status >= 500 => failed(FailureKind::AwsUnavailable),
            _ if status == 403 => failed(FailureKind::AwsAccessDenied),
            _ => failed(FailureKind::AwsRefused),
        }
    }

    /// What an answer shows of it.
    fn failure(self) -> FailureKind {
        match self {
            AwsErrorKind::NotFound => FailureKind::AwsNotFound,
            AwsErrorKind::Conflict => FailureKind::AwsRefused,
            AwsErrorKind::Failed(kind) => kind,
        }
    }
}

impl AwsError {
    pub(super) fn is_conflict(&self) -> bool {
        self.kind == AwsErrorKind::Conflict
    }

    fn classify<E: OperationError>(
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self {
        let failed = AwsErrorKind::Failed;
        let (kind, detail) = match &err {
            SdkError::TimeoutError(_) => (failed(FailureKind::AwsTimeout), "timed out".to_string()),
            SdkError::DispatchFailure(_) => (
                failed(FailureKind::AwsUnavailable),
                "could not reach AWS".to_string(),
            ),
            SdkError::ResponseError(_) => (
                failed(FailureKind::AwsUnavailable),
                "AWS sent an unreadable answer".to_string(),
            ),
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = err.code().unwrap_or("UnknownError");
                let request_id = err.request_id().unwrap_or("none");
                // For the log only: AWS messages name the role ARN, the
                // account and resources, never key values or secrets
                // (keyhook never sends those); capped anyway.
                let message: String = err.message().unwrap_or("").chars().take(500).collect();
                let kind = AwsErrorKind::of_service_error(code, status);
                let detail =
                    format!("{code} (HTTP {status}, AWS request id {request_id}): {message}");
                (kind, detail)
            }
            _ => (
                failed(FailureKind::BackendFailed),
                "request could not be built".to_string(),
            ),
        };
        AwsError {
            operation,
            kind,
            detail,
        }
    }
}

impl From<AwsError> for CredentialError {
    fn from(err: AwsError) -> Self {
        CredentialError::Failed {
            operation: err.operation,
            kind: err.kind.failure(),
            detail: err.detail,
        }
    }
}

/// What every SDK call returns.
type SdkResult<T, E> = std::result::Result<T, SdkError<E, HttpResponse>>;

/// The error of any SDK operation: what [`AwsError::classify`] reads.
pub(crate) trait OperationError: ProvideErrorMetadata + std::error::Error + 'static {}
impl<E: ProvideErrorMetadata + std::error::Error + 'static> OperationError for E {}

/// Every AWS call goes through here: the token bucket, the error sorting,
/// and the per-operation counters behind `/metrics`.
pub(crate) struct Aws {
    /// Also taken directly by a login that must not wait long for a call.
    pub(super) limiter: TokenBucket,
}

impl Aws {
    /// `rate_limit` calls per second, bursts of twice that.
    pub(super) fn new(rate_limit: f64) -> Self {
        Aws {
            limiter: TokenBucket::new(rate_limit, (rate_limit * 2.0).max(1.0)),
        }
    }

    fn record(operation: &'static str, outcome: &'static str) {
        metrics::counter!("keyhook_aws_calls_total", "operation" => operation, "outcome" => outcome)
            .increment(1);
    }

    /// Calls without taking a token: for a caller that already took one.
    pub(super) async fn run<T, E: OperationError>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<T, AwsError> {
        match call.await {
            Ok(out) => {
                Self::record(operation, "ok");
                Ok(out)
            }
            Err(err) => {
                let err = AwsError::classify(operation, err);
                Self::record(operation, err.kind.outcome());
                if err.kind == AwsErrorKind::Failed(FailureKind::AwsThrottled) {
                    crate::metrics::aws_throttled(operation);
                }
                tracing::debug!(operation, detail = %err.detail, "AWS call failed");
                Err(err)
            }
        }
    }

    /// Waits for the bucket, then calls.
    pub(super) async fn call<T, E: OperationError>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<T, AwsError> {
        self.limiter.acquire().await;
        self.run(operation, call).await
    }

    /// As `call`, with "not found" as `None`.
    pub(super) async fn call_opt<T, E: OperationError>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<Option<T>, AwsError> {
        self.limiter.acquire().await;
        self.run_opt(operation, call).await
    }

    /// As `run`, with "not found" as `None`.
    pub(super) async fn run_opt<T, E: OperationError>(
        &self,
        operation: &'static str,
        call: impl Future<Output = SdkResult<T, E>>,
    ) -> std::result::Result<Option<T>, AwsError> {
        match self.run(operation, call).await {
            Ok(out) => Ok(Some(out)),
            Err(err) if err.kind == AwsErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_are_sorted_by_code_then_status() {
        use FailureKind as K;
        let f = AwsErrorKind::Failed;
        for (code, status, kind) in [
            ("NotFoundException", 404, AwsErrorKind::NotFound),
            ("ResourceNotFoundException", 400, AwsErrorKind::NotFound),
            ("ConflictException", 409, AwsErrorKind::Conflict),
            (
                "ConditionalCheckFailedException",
                400,
                AwsErrorKind::Conflict,
            ),
            ("TransactionCanceledException", 400, AwsErrorKind::Conflict),
            ("TransactionConflictException", 400, AwsErrorKind::Conflict),
            (
                "ProvisionedThroughputExceededException",
                400,
                f(K::AwsThrottled),
            ),
            ("TooManyRequestsException", 429, f(K::AwsThrottled)),
            ("ThrottlingException", 400, f(K::AwsThrottled)),
            ("LimitExceededException", 400, f(K::AwsThrottled)),
            ("Whatever", 429, f(K::AwsThrottled)),
            ("InternalFailure", 500, f(K::AwsUnavailable)),
            ("ServiceUnavailableException", 503, f(K::AwsUnavailable)),
            ("AccessDeniedException", 403, f(K::AwsAccessDenied)),
            ("UnrecognizedClientException", 403, f(K::AwsAccessDenied)),
            ("ExpiredTokenException", 400, f(K::AwsAccessDenied)),
            ("ForbiddenException", 403, f(K::AwsAccessDenied)),
            ("BadRequestException", 400, f(K::AwsRefused)),
        ] {
            assert_eq!(AwsErrorKind::of_service_error(code, status), kind, "{code}");
        }
    }

    #[test]
    fn errors_surface_as_their_kind_with_aws_words_kept_for_the_log() {
        let err = |kind| AwsError {
            operation: "GetApiKeys",
            kind,
            detail: "AccessDeniedException: User: arn:aws:sts::123456789012:x".into(),
        };
        for (kind, failure, outcome) in [
            (
                AwsErrorKind::NotFound,
                FailureKind::AwsNotFound,
                "not_found",
            ),
            (AwsErrorKind::Conflict, FailureKind::AwsRefused, "conflict"),
            (
                AwsErrorKind::Failed(FailureKind::AwsTimeout),
                FailureKind::AwsTimeout,
                "unavailable",
            ),
            (
                AwsErrorKind::Failed(FailureKind::AwsAccessDenied),
                FailureKind::AwsAccessDenied,
                "error",
            ),
        ] {
            assert_eq!(kind.outcome(), outcome);
            let surfaced = CredentialError::from(err(kind));
            assert_eq!(surfaced.failure(), Some(("GetApiKeys", failure)));
            assert!(surfaced.to_string().contains("arn:aws:sts"), "{surfaced}");
        }
    }
}
