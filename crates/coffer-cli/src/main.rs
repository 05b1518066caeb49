//! The `coffer` binary. It parses flags, turns them into library calls and turns library
//! errors into one line that says what to do next. Exit codes: 0 success, 1 failure, 2 usage
//! (bad or conflicting flags, as clap does). Standard output carries only what a user or a
//! script reads (credentials, the dev `export` lines); logs go to standard error.

mod account;
mod admin;
mod audit;
mod init;
mod policy;
mod root_key;
mod rotation;
mod server;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

const ABOUT: &str = "A self-hosted secrets manager that speaks the AWS Secrets Manager API.";

const LONG_ABOUT: &str = "\
A self-hosted secrets manager that speaks the AWS Secrets Manager API for real: unmodified AWS
SDKs and the AWS CLI work against it with an endpoint URL. Requests are SigV4-authenticated and
every value is envelope-encrypted.";

const EXAMPLES: &str = "\
Examples:
  Try it with nothing set up (throw-away store, prints `export AWS_...` lines):
    coffer server --dev

  Run it for real:
    coffer init --data-dir /var/lib/coffer
    coffer server --data-dir /var/lib/coffer --listen 0.0.0.0:8443

  Then point any AWS client at it:
    aws --endpoint-url https://127.0.0.1:8443 --ca-bundle /var/lib/coffer/tls/cert.pem \\
        secretsmanager create-secret --name db/password --secret-string hunter2";

#[derive(Debug, Parser)]
#[command(name = "coffer", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Server(server::ServerArgs),
    Policy(policy::PolicyArgs),
    RootKey(root_key::RootKeyArgs),
    Account(account::AccountArgs),
    Rotation(rotation::RotationArgs),
    Audit(audit::AuditArgs),
}

/// Why the command failed, which decides the exit code.
#[derive(Debug)]
enum Failure {
    /// Flags that do not go together: exit 2, like clap's own usage errors.
    Usage {
        message: String,
        subcommand: &'static str,
    },
    /// Anything else: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::Failed(error)
    }
}

fn usage(subcommand: &'static str, message: impl Into<String>) -> Failure {
    Failure::Usage {
        message: message.into(),
        subcommand,
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Init(args) => init::run(args),
        Command::Policy(args) => policy::run(args),
        Command::RootKey(args) => root_key::run(args),
        Command::Account(args) => account::run(args),
        Command::Rotation(args) => rotation::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Server(args) => {
            let explicit = matches
                .subcommand_matches("server")
                .map(server::ExplicitFlags::of)
                .unwrap_or_default();
            server::run(args, explicit)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage {
            message,
            subcommand,
        }) => {
            eprintln!(
                "error: {message}\n\nFor more information, try 'coffer {subcommand} --help'."
            );
            ExitCode::from(2)
        }
        Err(Failure::Failed(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error, filtered by `RUST_LOG` (default: `default_level`).
fn init_tracing(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// A 12-digit AWS account id, checked at the flag so the error names the flag.
fn parse_account_id(value: &str) -> Result<String, String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err("an account id is exactly 12 digits, like 000000000000".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn account_ids() {
        for (value, ok) in [
            ("000000000000", true),
            ("123456789012", true),
            ("12345678901", false),
            ("1234567890123", false),
            ("12345678901a", false),
            ("", false),
        ] {
            assert_eq!(parse_account_id(value).is_ok(), ok, "{value}");
        }
    }
}
