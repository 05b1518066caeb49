//! `coffer server`: flags to a [`ServerConfig`], the dev `export` lines, signals to a graceful
//! shutdown, and server errors to a line that says what to do next.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use coffer_server::{
    DevOptions, Mode, RotationFunctionConfig, Server, ServerConfig, ServerError, Transport,
};

use crate::{Failure, parse_account_id, usage};

const EXAMPLES: &str = "\
Examples:
  A throw-away server for development and tests (HTTP on 127.0.0.1:4566, prints `export AWS_...`):
    coffer server --dev
    coffer server --dev > coffer-dev.env &  sleep 1; eval \"$(grep '^export' coffer-dev.env)\"

  The same for suites written for LocalStack or moto, with any credentials and a clock you move:
    coffer server --dev --accept-any-credentials --manual-clock
    curl -X POST localhost:4566/_coffer/clock/advance -d '{\"seconds\": 604800}'
    curl -X POST localhost:4566/_coffer/tasks/run

  A real server over a data directory made by `coffer init` (HTTPS on 127.0.0.1:8443):
    coffer server --data-dir /var/lib/coffer
    coffer server --data-dir /var/lib/coffer --listen 0.0.0.0:8443

  Register rotation functions at every start, from a file holding a JSON list like this one
  (a webhook's signing secret is named by environment variable, never written in the file):
    [{\"arn\": \"arn:aws:lambda:us-east-1:111111111111:function:pg\", \"kind\": \"builtin\",
      \"engine\": \"postgres\", \"strategy\": \"single-user\"},
     {\"arn\": \"arn:aws:lambda:us-east-1:111111111111:function:hook\", \"kind\": \"webhook\",
      \"url\": \"https://rotator.internal/rotate\", \"signing_secret_env\": \"HOOK_SECRET\",
      \"timeout_secs\": 60},
     {\"arn\": \"arn:aws:lambda:us-east-1:111111111111:function:script\", \"kind\": \"executable\",
      \"program\": \"/usr/local/bin/rotate\", \"args\": [\"--verbose\"]}]
    HOOK_SECRET=... coffer server --data-dir /var/lib/coffer \\
        --rotation-functions /etc/coffer/rotation-functions.json

Stop it with Ctrl-C or SIGTERM: it stops accepting, finishes in-flight requests, exits 0.";

/// Serve the AWS APIs at POST / (HTTPS by default), with health at GET /health.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct ServerArgs {
    /// The data directory made by `coffer init`.
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// The address to listen on [default: 127.0.0.1:8443, or 127.0.0.1:4566 with --dev].
    #[arg(long, env = "COFFER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Serve plain HTTP instead of HTTPS. Only on a loopback address, unless
    /// --allow-insecure-non-loopback.
    #[arg(long)]
    insecure_http: bool,

    /// Allow --insecure-http on an address other hosts can reach (credentials and secret
    /// values then cross the network in clear text).
    #[arg(long)]
    allow_insecure_non_loopback: bool,

    /// Zero set-up: a throw-away data directory (removed at exit), plain HTTP on loopback, and
    /// `export AWS_...` lines with the dev account's root credentials on standard output.
    #[arg(long)]
    dev: bool,

    /// With --dev: the dev account's 12-digit id.
    #[arg(long, value_name = "ID", value_parser = parse_account_id)]
    account_id: Option<String>,

    /// With --dev: take any access key as the dev account's root user, without checking
    /// signatures (for suites written for LocalStack or moto).
    #[arg(long)]
    accept_any_credentials: bool,

    /// With --dev: time stands still except through POST /_coffer/clock/advance
    /// {"seconds": N}; POST /_coffer/tasks/run runs the background tasks now.
    #[arg(long)]
    manual_clock: bool,

    /// How often to purge secrets whose recovery window has ended, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    purge_interval: u64,

    /// A JSON file listing rotation functions to register (or replace) at start, each as
    /// `coffer rotation function register` would: {"arn", "kind": "builtin", "engine",
    /// "strategy"}, {"arn", "kind": "webhook", "url", "signing_secret_env": "VAR",
    /// "timeout_secs"} or {"arn", "kind": "executable", "program", "args", "timeout_secs"}.
    /// A wrong entry stops the start.
    #[arg(long, env = "COFFER_ROTATION_FUNCTIONS", value_name = "FILE")]
    rotation_functions: Option<PathBuf>,

    /// Audit sinks and alert rules, as JSON: {"retention_days": N, "sinks": [{"name",
    /// "type": "file", "path"} | {"name", "type": "stdout"} | {"name", "type": "webhook",
    /// "url", ...}], "alerts": [{"name", "pattern": {EventBridge-style pattern}, "webhook":
    /// {"url", ...}}]}. Sinks and alerts are fed from the durable log and catch up after an
    /// outage; they never slow requests.
    #[arg(long, env = "COFFER_AUDIT_CONFIG", value_name = "FILE")]
    audit_config: Option<PathBuf>,

    /// Prune audit events older than this many days (whole sealed segments; what remains
    /// still verifies). Overrides `retention_days` of --audit-config. Default: keep all.
    #[arg(long, env = "COFFER_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    audit_retention_days: Option<u32>,

    /// Record nothing in the audit trail. Only for measuring what auditing costs; a server
    /// without its trail cannot tell anyone who read which secret.
    #[arg(long)]
    no_audit: bool,

    #[command(flatten)]
    root_key: crate::root_key::RootKeyFlags,
}

/// Which flags were given on the command line rather than through the environment: a
/// `COFFER_DATA_DIR` exported in the shell must not make `--dev` fail.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ExplicitFlags {
    data_dir: bool,
}

impl ExplicitFlags {
    pub(crate) fn of(matches: &ArgMatches) -> Self {
        Self {
            data_dir: matches.value_source("data_dir") == Some(ValueSource::CommandLine),
        }
    }
}

pub(crate) fn run(args: ServerArgs, explicit: ExplicitFlags) -> Result<(), Failure> {
    let config = config_from(args, explicit)?;
    crate::init_tracing("info");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

fn config_from(args: ServerArgs, explicit: ExplicitFlags) -> Result<ServerConfig, Failure> {
    let requires_dev = [
        (
            args.accept_any_credentials,
            "--accept-any-credentials only works with --dev: a data directory's server always checks signatures",
        ),
        (
            args.manual_clock,
            "--manual-clock only works with --dev: a data directory's server keeps real time",
        ),
        (
            args.account_id.is_some(),
            "--account-id only works with --dev; a data directory's account is chosen by `coffer init --account-id`",
        ),
    ];
    if !args.dev
        && let Some((_, message)) = requires_dev.iter().find(|(given, _)| *given)
    {
        return Err(usage("server", *message));
    }
    if args.allow_insecure_non_loopback && !args.insecure_http && !args.dev {
        return Err(usage(
            "server",
            "--allow-insecure-non-loopback only makes sense with --insecure-http",
        ));
    }

    let mut config = if args.dev {
        if explicit.data_dir {
            return Err(usage(
                "server",
                "--dev makes a throw-away data directory, so it cannot be combined with --data-dir; drop one of them",
            ));
        }
        ServerConfig::dev(DevOptions {
            account_id: args
                .account_id
                .unwrap_or_else(|| coffer_server::DEFAULT_DEV_ACCOUNT_ID.to_owned()),
            accept_any_credentials: args.accept_any_credentials,
            manual_clock: args.manual_clock,
        })
    } else {
        let Some(data_dir) = args.data_dir else {
            return Err(usage(
                "server",
                "coffer server needs --data-dir DIR (made by `coffer init --data-dir DIR`), or --dev for a throw-away server",
            ));
        };
        let mut config = ServerConfig::data_dir(data_dir.clone());
        config.unlock = std::sync::Arc::new(args.root_key.unlock(&data_dir, false)?);
        if args.insecure_http {
            config.mode = Mode::DataDir {
                path: data_dir,
                transport: Transport::InsecureHttp {
                    allow_non_loopback: args.allow_insecure_non_loopback,
                },
            };
        }
        config
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.purge_interval = Duration::from_secs(args.purge_interval);
    if let Some(file) = &args.rotation_functions {
        config.rotation_functions = RotationFunctionConfig::load_file(file).map_err(|e| {
            anyhow!(
                "{e}; fix the file given with --rotation-functions (see `coffer server --help`)"
            )
        })?;
    }
    config.audit.enabled = !args.no_audit;
    if let Some(file) = &args.audit_config {
        config.audit.settings = coffer_server::AuditSettings::from_file(file).map_err(|e| {
            anyhow!("{e}; fix the file given with --audit-config (see `coffer server --help`)")
        })?;
        config.audit.retention = config.audit.settings.retention;
    }
    if let Some(days) = args.audit_retention_days {
        if days == 0 {
            return Err(usage(
                "server",
                "--audit-retention-days must be at least 1 (leave it out to keep every event)",
            ));
        }
        config.audit.retention = Some(Duration::from_secs(u64::from(days) * 86_400));
    }
    Ok(config)
}

async fn serve(config: ServerConfig) -> Result<(), Failure> {
    if config.validate().is_ok() && config.serves_plain_http_publicly() {
        eprintln!(
            "\n\
             ************************************************************************\n\
             WARNING: serving PLAIN HTTP on {}, which other hosts can reach.\n\
             Access keys, session tokens and secret values cross the network in\n\
             clear text. Use HTTPS (drop --insecure-http) unless a TLS proxy in\n\
             front of coffer is the only thing that can reach this address.\n\
             ************************************************************************\n",
            config.listen
        );
    }
    let server = Server::bind(config.clone())
        .await
        .map_err(|e| explain(e, &config))?;
    if let Some(credentials) = server.dev_credentials() {
        print_dev_exports(&server, credentials)
            .context("cannot write the dev credentials to standard output")?;
    }
    server
        .run(shutdown_signal())
        .await
        .map_err(|e| explain(e, &config))
}

/// The lines test harnesses parse: do not change their shape.
fn print_dev_exports(
    server: &Server,
    credentials: &coffer_server::DevCredentials,
) -> anyhow::Result<()> {
    let url = format!("{}://{}", server.scheme(), server.local_addr());
    let secret = credentials
        .secret_access_key
        .as_str()
        .ok_or_else(|| anyhow!("the dev secret access key is not text; this is a bug in coffer"))?;
    let region = credentials.region;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "coffer dev server listening on {url} (account {}, region {region})",
        credentials.account_id
    )?;
    writeln!(out, "export AWS_ENDPOINT_URL={url}")?;
    writeln!(
        out,
        "export AWS_ACCESS_KEY_ID={}",
        credentials.access_key_id
    )?;
    writeln!(out, "export AWS_SECRET_ACCESS_KEY={secret}")?;
    writeln!(out, "export AWS_REGION={region}")?;
    writeln!(out, "export AWS_DEFAULT_REGION={region}")?;
    // Last, so the lines above keep their places: where `coffer account create` (and the
    // other commands that take --data-dir or COFFER_DATA_DIR) reach this server.
    writeln!(
        out,
        "export COFFER_DATA_DIR={}",
        shell_word(&server.data_dir().display().to_string())
    )?;
    out.flush()?;
    Ok(())
}

/// `word` as one word of a POSIX shell: as is when that is safe, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// Ctrl-C or SIGTERM. If a handler cannot be installed, that signal is simply not awaited
/// (the process still dies by it, just without the graceful part).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

/// The server's error plus what to do about it, in this binary's flags.
fn explain(error: ServerError, config: &ServerConfig) -> Failure {
    let data_dir = match &config.mode {
        Mode::DataDir { path, .. } => path.display().to_string(),
        Mode::Dev(_) => String::new(),
    };
    match error {
        ServerError::NotInitialised { .. } => Failure::Failed(anyhow!(
            "{error}; run `coffer init --data-dir {data_dir}` first"
        )),
        ServerError::DataDirUnreadable { .. } => Failure::Failed(anyhow!(
            "{error}; check its permissions, and run the server as the user that ran `coffer init`"
        )),
        ServerError::AddrInUse { .. } => {
            Failure::Failed(anyhow!("{error}; choose another with --listen"))
        }
        ServerError::InsecureNonLoopback { .. } => usage(
            "server",
            format!(
                "{error}. Drop --insecure-http to serve HTTPS, listen on 127.0.0.1, or add --allow-insecure-non-loopback if a TLS proxy is the only client"
            ),
        ),
        ServerError::DevNonLoopback { .. } => usage(
            "server",
            format!(
                "{error}; use --listen 127.0.0.1:PORT, or a data directory (`coffer init`) to serve other hosts"
            ),
        ),
        ServerError::TlsFiles { .. } => Failure::Failed(anyhow!(
            "{error}; `coffer init` writes it to {data_dir}/tls/ (cert.pem, key.pem); to serve plain HTTP on loopback instead, add --insecure-http"
        )),
        ServerError::RotationFunction { .. } => Failure::Failed(anyhow!(
            "{error}; fix its entry in the --rotation-functions file (an account is created with `coffer account create`)"
        )),
        other => Failure::Failed(anyhow::Error::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str]) -> Result<ServerConfig, String> {
        let cli = crate::Cli::try_parse_from(["coffer", "server"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        let crate::Command::Server(server_args) = cli.command else {
            unreachable!()
        };
        let explicit = ExplicitFlags {
            data_dir: args.contains(&"--data-dir"),
        };
        config_from(server_args, explicit).map_err(|e| match e {
            Failure::Usage { message, .. } => format!("usage: {message}"),
            Failure::Failed(e) => format!("failed: {e}"),
        })
    }

    #[test]
    fn flag_combinations() {
        let cases: &[(&[&str], Result<&str, &str>)] = &[
            (&["--dev"], Ok("127.0.0.1:4566")),
            (&["--dev", "--listen", "127.0.0.1:0"], Ok("127.0.0.1:0")),
            (
                &[
                    "--dev",
                    "--accept-any-credentials",
                    "--manual-clock",
                    "--account-id",
                    "111122223333",
                ],
                Ok("127.0.0.1:4566"),
            ),
            (&["--data-dir", "/d"], Ok("127.0.0.1:8443")),
            (
                &[
                    "--data-dir",
                    "/d",
                    "--insecure-http",
                    "--listen",
                    "[::1]:80",
                ],
                Ok("[::1]:80"),
            ),
            (
                &["--accept-any-credentials", "--data-dir", "/d"],
                Err("usage: --accept-any-credentials only works with --dev"),
            ),
            (
                &["--manual-clock", "--data-dir", "/d"],
                Err("usage: --manual-clock only works with --dev"),
            ),
            (
                &["--account-id", "111122223333", "--data-dir", "/d"],
                Err("usage: --account-id only works with --dev"),
            ),
            (
                &["--dev", "--data-dir", "/d"],
                Err("usage: --dev makes a throw-away data directory"),
            ),
            (
                &["--data-dir", "/d", "--allow-insecure-non-loopback"],
                Err("usage: --allow-insecure-non-loopback only makes sense"),
            ),
            (&[], Err("usage: coffer server needs --data-dir")),
            (&["--dev", "--account-id", "42"], Err("12 digits")),
            (&["--dev", "--purge-interval", "0"], Err("purge-interval")),
        ];
        for (args, expected) in cases {
            let got = config(args);
            match (expected, &got) {
                (Ok(listen), Ok(config)) => {
                    assert_eq!(config.listen.to_string(), *listen, "{args:?}")
                }
                (Err(fragment), Err(message)) => {
                    assert!(message.contains(fragment), "{args:?}: {message}")
                }
                _ => panic!("{args:?}: expected {expected:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            shell_word("/tmp/coffer-dev-AbC123"),
            "/tmp/coffer-dev-AbC123"
        );
        assert_eq!(shell_word("/tmp/with space"), "'/tmp/with space'");
        assert_eq!(shell_word("/tmp/it's"), "'/tmp/it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn dev_flags_reach_the_config() {
        let config = config(&[
            "--dev",
            "--accept-any-credentials",
            "--manual-clock",
            "--account-id",
            "111122223333",
        ])
        .unwrap();
        let Mode::Dev(options) = config.mode else {
            panic!("not dev")
        };
        assert_eq!(
            options,
            DevOptions {
                account_id: "111122223333".into(),
                accept_any_credentials: true,
                manual_clock: true
            }
        );
    }
}
