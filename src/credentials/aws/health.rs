//! Whether the AWS backend can serve: the readiness answer probes get
//! (cached, so probes never hammer AWS), and the fuller report of
//! `keyhook check`.

use std::time::Duration;

use tokio::time::Instant;

use super::{AwsProvider, Inner};
use crate::credentials::{CredentialError, FailureKind, Result};

/// How long a health answer is reused.
const HEALTH_TTL: Duration = Duration::from_secs(5);

/// The last health answer, and when it was made.
pub(super) type HealthCache = Option<(Instant, Result<()>)>;

impl Inner {
    /// Unready until the first load of the owner index (the reason: how the
    /// last attempt failed, else `starting`); `index_stale` past the index's
    /// staleness limit (`freshness.rs`); then whether API Gateway
    /// answers and the user pool (if any) exists. The error keeps AWS's own
    /// words for the log; the probe's answer shows only its kind.
    pub(super) async fn health(&self) -> Result<()> {
        if !self.owners.is_loaded() {
            return Err(self
                .owners
                .load_failure()
                .unwrap_or(CredentialError::Failed {
                    operation: "load owner index",
                    kind: FailureKind::Starting,
                    detail: "the first load from AWS has not finished".into(),
                }));
        }
        if let Some(why) = self.staleness() {
            return Err(why);
        }
        let cached = self
            .health
            .lock()
            .expect("health lock")
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HEALTH_TTL)
            .map(|(_, result)| result.clone());
        if let Some(result) = cached {
            return result;
        }
        let result = async {
            self.keys.ping(&self.aws).await?;
            if let Some(clients) = &self.clients {
                if !clients.pool_exists(&self.aws).await? {
                    return Err(CredentialError::Failed {
                        operation: "DescribeUserPool",
                        kind: FailureKind::AwsNotFound,
                        detail: "the user pool does not exist".into(),
                    });
                }
            }
            Ok(())
        }
        .await;
        *self.health.lock().expect("health lock") = Some((Instant::now(), result.clone()));
        result
    }
}

impl AwsProvider {
    /// What `keyhook check` reports: every configured AWS resource exists
    /// and can be read with these credentials.
    pub async fn verify(&self) -> std::result::Result<Vec<String>, String> {
        let inner = &self.inner;
        let mut report = Vec::new();
        inner.keys.ping(&inner.aws).await.map_err(|e| {
            format!("cannot list API Gateway API keys (apigateway:GET on /apikeys): {e}")
        })?;
        report.push("API Gateway answers and API keys can be listed".to_string());
        if let Some(plan) = &inner.usage_plan_id {
            match inner.keys.usage_plan_exists(&inner.aws, plan).await {
                Ok(true) => report.push(format!("usage plan {plan} exists")),
                Ok(false) => return Err(format!("usage plan {plan} (KEYHOOK_USAGE_PLAN_ID) does not exist in this account and region")),
                Err(e) => return Err(format!("cannot read usage plan {plan} (apigateway:GET on /usageplans/{plan}): {e}")),
            }
        }
        if let Some(clients) = &inner.clients {
            let pool = clients.pool();
            match clients.pool_exists(&inner.aws).await {
                Ok(true) => report.push(format!("user pool {pool} exists")),
                Ok(false) => return Err(format!("user pool {pool} (KEYHOOK_COGNITO_USER_POOL_ID) does not exist in this account and region")),
                Err(e) => return Err(format!("cannot read user pool {pool} (cognito-idp:DescribeUserPool): {e}")),
            }
        }
        match &inner.claims {
            Some(table) => {
                let name = table.table();
                table.verify(&inner.aws).await.map_err(|e| format!("cannot read and write claims in DynamoDB table {name} (KEYHOOK_CLAIM_TABLE; dynamodb:GetItem, PutItem, DeleteItem, Scan): {e}"))?;
                report.push(format!("claim table {name} can be read and written"));
            }
            None => report.push(
                "no claim table (KEYHOOK_CLAIM_TABLE): exact with one replica only".to_string(),
            ),
        }
        Ok(report)
    }
}
