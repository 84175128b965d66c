use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use keyhook::app::{self, Application, Dependencies};
use keyhook::config::{Config, ConfigSource};
use keyhook::readme::signature;

/// Credential webhook server for ReadMe Personalized Docs and the Sensedia
/// Developer Portal.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file [default: config/keyhook.toml, when present]
    #[arg(long, global = true, env = "KEYHOOK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Print a ReadMe-Signature header for a login, then the body it signs.
    Sign {
        /// The ReadMe webhook secret.
        #[arg(long)]
        secret: String,
        /// The reader's email.
        #[arg(long)]
        email: String,
        /// Unix time in milliseconds [default: now]
        #[arg(long)]
        timestamp: Option<i64>,
    },
    /// Validate the configuration and report what would be served.
    Check,
    /// List what is wrong in the configured backend (unmanaged, duplicate,
    /// planless, orphan, expired and unnamed credentials), one finding per
    /// line. Exit status: 0 no findings, 1 findings, 2 the audit could not
    /// run. On the local store held by a running keyhook, audits through
    /// its admin listener (KEYHOOK_ADMIN_LISTEN, plain HTTP).
    Audit {
        /// Print JSON: an array of findings (with `--fix --yes`, an object
        /// of `findings` and `repairs`).
        #[arg(long)]
        json: bool,
        /// Print the repairs that are safe (unmanaged and unnamed keys are
        /// left to a person); make them only with `--yes`.
        #[arg(long)]
        fix: bool,
        /// With `--fix`: make the repairs.
        #[arg(long, requires = "fix")]
        yes: bool,
    },
}

fn load(source: &ConfigSource) -> Result<Config, ExitCode> {
    Config::load(source).map_err(|err| {
        eprintln!("keyhook: configuration error: {err}");
        ExitCode::from(2)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = match cli.config {
        Some(path) => ConfigSource::Explicit(path),
        None => ConfigSource::Default,
    };
    match cli.command {
        Command::Sign {
            secret,
            email,
            timestamp,
        } => {
            // Compact JSON, as ReadMe sends it.
            let body = serde_json::json!({ "email": email }).to_string();
            let t = timestamp.unwrap_or_else(keyhook::clock::now_ms);
            println!("{}", signature::sign(&secret, t, body.as_bytes()));
            println!("{body}");
            ExitCode::SUCCESS
        }
        Command::Check => {
            let config = match load(&source) {
                Ok(config) => config,
                Err(code) => return code,
            };
            for (key, value) in config.summary() {
                println!("{key:>10}: {value}");
            }
            match app::check_backend(&config).await {
                Ok(report) => {
                    println!("{:>10}: {report}", "status");
                    println!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("keyhook: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit { json, fix, yes } => {
            let config = match load(&source) {
                Ok(config) => config,
                Err(code) => return code,
            };
            // On stderr: the audit events of repairs made from here.
            let _log = keyhook::telemetry::init(config.log_format);
            let options = keyhook::admin::cli::Options { json, fix, yes };
            keyhook::admin::cli::run(&config, options).await
        }
        Command::Serve => {
            let config = match load(&source) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let _log = keyhook::telemetry::init(config.log_format);
            let application = match Application::build(&config, Dependencies::default()).await {
                Ok(application) => application,
                Err(err) => {
                    tracing::error!(error = %err, "keyhook cannot start");
                    return ExitCode::FAILURE;
                }
            };
            match application.run_until(app::shutdown_signal()).await {
                Ok(()) => {
                    tracing::info!("keyhook stopped");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    tracing::error!(error = %err, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
