//! `coffer init`: make a data directory and show its root credentials, once.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use coffer_core::{Coffer, InitOptions};

use crate::{Failure, parse_account_id, usage};

const EXAMPLES: &str = "\
Examples:
  coffer init --data-dir /var/lib/coffer
  COFFER_ROOT_PASSPHRASE=... coffer init --data-dir /var/lib/coffer --root-key passphrase
  COFFER_PKCS11_PIN=... coffer init --data-dir /var/lib/coffer --root-key pkcs11 \\
      --pkcs11-module /usr/lib/softhsm/libsofthsm2.so --pkcs11-token-label coffer
  coffer init --data-dir ./coffer-data --format json > root-credentials.json
  coffer init --data-dir /var/lib/coffer --tls-san coffer.internal --tls-san 10.0.0.7";

/// Create a data directory: root key (0600), store, TLS certificate and the first account.
///
/// Prints the account's root credentials once; store them now, they are not shown again.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct InitArgs {
    /// The directory to create (mode 0700 if it does not exist).
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,

    /// How to print the root credentials.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// The 12-digit id of the first account (random if not given).
    #[arg(long, value_name = "ID", value_parser = parse_account_id)]
    account_id: Option<String>,

    /// Another name or IP address the TLS certificate is valid for, besides localhost,
    /// 127.0.0.1 and ::1. Repeat the flag or separate with commas.
    #[arg(long = "tls-san", value_name = "NAME", value_delimiter = ',')]
    tls_sans: Vec<String>,

    #[command(flatten)]
    root_key: crate::root_key::RootKeyFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// `{"account_id":…,"access_key_id":…,"secret_access_key":…}`, for scripts.
    Json,
}

/// The `--format json` document (also `coffer account create --output json`). Field order is
/// part of the interface.
#[derive(serde::Serialize)]
pub(crate) struct RootCredentialsJson<'a> {
    pub(crate) account_id: &'a str,
    pub(crate) access_key_id: &'a str,
    pub(crate) secret_access_key: &'a str,
}

pub(crate) fn run(args: InitArgs) -> Result<(), Failure> {
    crate::init_tracing("warn");
    if args.tls_sans.iter().any(String::is_empty) {
        return Err(usage("init", "--tls-san needs a DNS name or an IP address"));
    }
    let dir = &args.data_dir;
    if coffer_server::is_initialised(dir).map_err(anyhow::Error::from)? {
        return Err(anyhow!(
            "data directory {} is already initialised; its root credentials were shown when it was made. Start it with `coffer server --data-dir {}`",
            dir.display(),
            dir.display()
        )
        .into());
    }
    create_private_dir(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;

    let unlock = args.root_key.unlock(dir, true)?;
    let outcome = Coffer::init_with(
        dir,
        &InitOptions {
            account_id: args.account_id.clone(),
        },
        &unlock,
    )
    .with_context(|| format!("cannot initialise data directory {}", dir.display()))?;
    let tls = coffer_server::write_tls_certificate(dir, &args.tls_sans)
        .with_context(|| {
            let files = coffer_server::TlsFiles::in_data_dir(dir);
            format!(
                "the data directory was initialised, but its TLS certificate was not written; put a certificate and key at {} and {}, or serve with --insecure-http on loopback",
                files.cert.display(),
                files.key.display()
            )
        })?;
    let secret = outcome
        .secret_access_key
        .as_str()
        .ok_or_else(|| anyhow!("the new secret access key is not text; this is a bug in coffer"))?;

    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let document = RootCredentialsJson {
                account_id: &outcome.account_id,
                access_key_id: &outcome.access_key_id,
                secret_access_key: secret,
            };
            serde_json::to_writer(&mut out, &document).context("cannot write the credentials")?;
            writeln!(out).context("cannot write the credentials")?;
        }
        Format::Text => {
            let dir = dir.display();
            writeln!(
                out,
                "Initialised coffer data directory {dir} (account {account}).\n\
                 \n\
                 Root credentials of account {account}. Store these now; they are not shown again:\n\
                 \n  AWS_ACCESS_KEY_ID={key_id}\n  AWS_SECRET_ACCESS_KEY={secret}\n\
                 \n\
                 TLS certificate for clients to trust: {cert}\n\
                 \n\
                 Next, start the server:\n\
                 \n  coffer server --data-dir {dir}",
                account = outcome.account_id,
                key_id = outcome.access_key_id,
                cert = tls.cert.display(),
            )
            .context("cannot write the credentials")?;
        }
    }
    out.flush().context("cannot write the credentials")?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
