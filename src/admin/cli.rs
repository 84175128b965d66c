//! `keyhook audit [--json] [--fix [--yes]]`: what is wrong in what the
//! configured backend holds, for people (one finding per line) or scripts
//! (`--json`), and the repairs that are safe, only with `--yes`.
//!
//! Where the audit runs: on the aws backend, from here with the backend's
//! own calls (read-only permissions are enough without `--fix`); on the
//! local store, from the store file, unless a running keyhook holds it:
//! then through that server's admin listener (`KEYHOOK_ADMIN_LISTEN`, the
//! first of `KEYHOOK_ADMIN_TOKENS`), in plain HTTP (the CLI does not speak
//! TLS, so not to a listener that serves HTTPS).
//!
//! Exit status: 0 no findings (after `--fix --yes`: none left), 1 findings
//! (left), 2 the audit could not run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::clock;
use crate::config::{BackendKind, Config};
use crate::credentials::aws::{load_sdk_config, AwsProvider};
use crate::credentials::local::{LocalStore, FILE_NAME};
use crate::credentials::{CredentialProvider, FindingKind};

/// What `keyhook audit` was asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub json: bool,
    pub fix: bool,
    pub yes: bool,
}

/// How long the admin listener may take to answer: an audit of a large
/// account takes seconds, never this.
const SERVER_PATIENCE: Duration = Duration::from_secs(300);

/// A finding as printed: what `Finding` serialises to.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    kind: String,
    credential_id: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    detail: String,
    /// A repair's: what was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
}

impl Row {
    /// Whether `--fix` may repair it (unmanaged and unnamed keys are left
    /// to a person).
    fn repairable(&self) -> bool {
        const KINDS: [FindingKind; 6] = [
            FindingKind::Unmanaged,
            FindingKind::Duplicate,
            FindingKind::Planless,
            FindingKind::Orphan,
            FindingKind::Expired,
            FindingKind::Unnamed,
        ];
        KINDS
            .into_iter()
            .find(|k| k.as_str() == self.kind)
            .is_some_and(FindingKind::repairable)
    }

    fn line(&self) -> String {
        format!(
            "{:<9} {} {} {}",
            self.kind,
            self.credential_id,
            self.owner.as_deref().unwrap_or("-"),
            self.detail
        )
    }
}

/// Why the audit could not run (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct CannotRun(String);

/// Where the audit runs.
enum Source {
    /// The backend, opened here.
    Direct(Arc<dyn CredentialProvider>),
    /// The admin listener of the keyhook holding the local store.
    Server(Server),
    /// No local store yet: nothing to audit.
    Nothing,
}

/// Runs `keyhook audit` on `config`'s backend; prints, and answers the
/// exit status.
pub async fn run(config: &Config, options: Options) -> ExitCode {
    match audit(config, options).await {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(CannotRun(why)) => {
            eprintln!("keyhook audit: {why}");
            ExitCode::from(2)
        }
    }
}

/// The number of findings left.
async fn audit(config: &Config, options: Options) -> Result<usize, CannotRun> {
    let source = open(config).await?;
    if !(options.fix && options.yes) {
        let findings = match &source {
            Source::Direct(provider) => rows(
                &provider
                    .audit(now_ms())
                    .await
                    .map_err(|e| CannotRun(format!("the audit failed: {e}")))?,
            )?,
            Source::Server(server) => server.findings().await?,
            Source::Nothing => Vec::new(),
        };
        print_findings(&findings, options);
        return Ok(findings.len());
    }
    let (findings, repairs) = match &source {
        Source::Direct(provider) => {
            let typed = provider
                .audit(now_ms())
                .await
                .map_err(|e| CannotRun(format!("the audit failed: {e}")))?;
            let repairs = provider
                .repair(&typed)
                .await
                .map_err(|e| CannotRun(format!("the repairs failed: {e}")))?;
            (rows(&typed)?, rows(&repairs)?)
        }
        Source::Server(server) => server.fix().await?,
        Source::Nothing => (Vec::new(), Vec::new()),
    };
    let left: Vec<&Row> = findings
        .iter()
        .filter(|f| {
            !repairs
                .iter()
                .any(|r| r.kind == f.kind && r.credential_id == f.credential_id)
        })
        .collect();
    if options.json {
        let answer = serde_json::json!({ "findings": findings, "repairs": repairs });
        println!("{answer}");
    } else {
        for repair in &repairs {
            println!(
                "{:<9} {} {}: {}",
                repair.action.as_deref().unwrap_or("repaired"),
                repair.kind,
                repair.credential_id,
                repair.detail
            );
        }
        for finding in &left {
            println!("{:<9} {}", "left", finding.line());
        }
        eprintln!(
            "{} finding(s), {} repaired, {} left",
            findings.len(),
            repairs.len(),
            left.len()
        );
    }
    Ok(left.len())
}

fn print_findings(findings: &[Row], options: Options) {
    if options.json {
        println!(
            "{}",
            serde_json::to_string(findings).expect("findings serialise")
        );
    } else if options.fix {
        for finding in findings {
            let what = if finding.repairable() {
                "repair"
            } else {
                "leave"
            };
            println!("{what:<9} {}", finding.line());
        }
    } else {
        for finding in findings {
            println!("{}", finding.line());
        }
    }
    if findings.is_empty() {
        eprintln!("no findings");
    } else if options.fix {
        let repairable = findings.iter().filter(|f| f.repairable()).count();
        eprintln!(
            "{} finding(s): {repairable} would be repaired, {} left to a person; \
             nothing was changed: run again with --yes to repair",
            findings.len(),
            findings.len() - repairable
        );
    } else {
        eprintln!("{} finding(s)", findings.len());
    }
}

fn now_ms() -> u64 {
    u64::try_from(clock::now_ms()).unwrap_or_default()
}

/// Findings or repairs as printed.
fn rows<T: serde::Serialize>(items: &[T]) -> Result<Vec<Row>, CannotRun> {
    serde_json::to_value(items)
        .and_then(serde_json::from_value)
        .map_err(|e| CannotRun(format!("unreadable findings: {e}")))
}

/// The backend, or the server that holds it.
async fn open(config: &Config) -> Result<Source, CannotRun> {
    match config.backend {
        BackendKind::Aws => {
            // Clients only: no index load, no background work; the audit
            // lists what it needs itself.
            let sdk = load_sdk_config().await;
            let provider = AwsProvider::new(
                &config.aws,
                config.readme.usage_plan_id.clone(),
                &sdk,
                clock::system(),
            );
            Ok(Source::Direct(Arc::new(provider)))
        }
        BackendKind::Local => {
            let path = config.data_dir.join(FILE_NAME);
            if !path.exists() {
                eprintln!("no local store at {}: nothing to audit", path.display());
                return Ok(Source::Nothing);
            }
            match LocalStore::open(&config.data_dir, clock::system()) {
                Ok(store) => Ok(Source::Direct(Arc::new(store))),
                // Held by a running keyhook (or unreadable): ask the server.
                Err(err) => match Server::configured(config) {
                    Some(server) => server
                        .map(Source::Server)
                        .map_err(|why| CannotRun(format!("cannot open the local store ({err}), and {why}"))),
                    None => Err(CannotRun(format!(
                        "cannot open the local store ({err}). If a running keyhook holds it, \
                         give this command the server's KEYHOOK_ADMIN_LISTEN and KEYHOOK_ADMIN_TOKENS \
                         and it audits through the server's admin listener"
                    ))),
                },
            }
        }
    }
}

/// A running keyhook's admin listener.
struct Server {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Server {
    /// The admin listener `config` describes, if it has one.
    fn configured(config: &Config) -> Option<Result<Server, String>> {
        let listen = config.admin.listen?;
        if config.tls_cert.is_some() {
            return Some(Err(format!(
                "the admin listener {listen} serves HTTPS (KEYHOOK_TLS_CERT), which keyhook audit \
                 does not speak: stop the server to audit the store file, or use GET /admin/v1/audit"
            )));
        }
        let token = config.admin.tokens.first()?.expose().clone();
        let http = reqwest::Client::builder()
            .timeout(SERVER_PATIENCE)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"));
        Some(http.map(|http| Server {
            base: format!("http://{}/admin/v1", reachable(listen)),
            token,
            http,
        }))
    }

    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, CannotRun> {
        let fail =
            |why: String| CannotRun(format!("the admin listener {}: {what}: {why}", self.base));
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|e| fail(format!("{status}, unreadable answer: {e}")))?;
        if !status.is_success() {
            let error = body["error"].as_str().unwrap_or("no error message");
            return Err(fail(format!("{status}: {error}")));
        }
        Ok(body)
    }

    async fn findings(&self) -> Result<Vec<Row>, CannotRun> {
        let body = self
            .call(self.http.get(format!("{}/audit", self.base)), "GET /audit")
            .await?;
        field(&body, "findings")
    }

    async fn fix(&self) -> Result<(Vec<Row>, Vec<Row>), CannotRun> {
        let body = self
            .call(
                self.http.post(format!("{}/audit/fix", self.base)),
                "POST /audit/fix",
            )
            .await?;
        Ok((field(&body, "findings")?, field(&body, "repairs")?))
    }
}

fn field(body: &Value, name: &str) -> Result<Vec<Row>, CannotRun> {
    serde_json::from_value(body[name].clone())
        .map_err(|e| CannotRun(format!("the admin listener's `{name}` is unreadable: {e}")))
}

/// Where to reach a listener bound to `addr`: its loopback twin when it is
/// bound to every address.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_address_is_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9091".parse().unwrap()),
            "127.0.0.1:9091".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:9091".parse().unwrap()),
            "[::1]:9091".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.7:9091".parse().unwrap()),
            "10.0.0.7:9091".parse().unwrap()
        );
    }

    #[test]
    fn unmanaged_and_unnamed_are_left_to_a_person() {
        let row = |kind: &str| Row {
            kind: kind.into(),
            credential_id: "k1".into(),
            owner: None,
            app: None,
            detail: String::new(),
            action: None,
        };
        for kind in ["duplicate", "planless", "orphan", "expired"] {
            assert!(row(kind).repairable(), "{kind}");
        }
        for kind in ["unmanaged", "unnamed", "unknown"] {
            assert!(!row(kind).repairable(), "{kind}");
        }
    }
}
