//! `coffer account create|list`: the accounts of one deployment. Each account has its own root
//! user and credentials, IAM users, KMS keys and secrets; one account reaches another's
//! secrets only through resource policies (and key policies), as in AWS.
//!
//! The store belongs to one process: with a server running on the data directory the
//! command goes through its admin socket, otherwise it opens the store itself. Both paths
//! produce the same answer (`coffer_server::create_account` / `list_accounts`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};

use crate::admin::{self, Owner};
use crate::init::RootCredentialsJson;
use crate::root_key::RootKeyFlags;
use crate::{Failure, parse_account_id};

const EXAMPLES: &str = "\
Examples:
  Add an account to a deployment (through the running server, or the store if none runs):
    coffer account create --data-dir /var/lib/coffer
    coffer account create --data-dir /var/lib/coffer --account-id 222222222222 --output json

  Use the new account's root credentials right away (the secret is shown only once):
    eval \"$(coffer account create --data-dir /var/lib/coffer | grep '^export')\"

  A dev server prints `export COFFER_DATA_DIR=...`; with that exported:
    coffer account create
    coffer account list --output json";

/// Create and list the accounts of a deployment.
///
/// Every account has its own root user with its own access key, and its own IAM users, KMS
/// keys and secrets. Another account's secret is reached by its full ARN, and only when the
/// secret's resource policy, the caller's identity policy and the KMS key policy all allow
/// it (AWS's cross-account rules).
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct AccountArgs {
    #[command(subcommand)]
    command: AccountCommand,
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account with its own root access key, and print the key.
    ///
    /// The secret access key is printed only this once: store it. Goes through the server
    /// running on the data directory (DATA_DIR/admin.sock), or opens the store when none runs.
    #[command(after_help = EXAMPLES)]
    Create(CreateArgs),
    /// List the accounts of the data directory, with when each was created.
    #[command(after_help = EXAMPLES)]
    List(ListArgs),
}

#[derive(Debug, Args)]
struct Target {
    /// The data directory made by `coffer init` (a dev server prints its own as
    /// `export COFFER_DATA_DIR=...`).
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,

    /// How to print the result: `table` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,

    #[command(flatten)]
    unlock: RootKeyFlags,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The new account's 12-digit id (random if not given).
    #[arg(long, value_name = "ID", value_parser = parse_account_id)]
    account_id: Option<String>,

    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned text for people; `create` prints `export AWS_...=` lines.
    Table,
    /// One JSON document: `create` gives {"account_id","access_key_id","secret_access_key"},
    /// `list` gives {"accounts":[{"account_id","created"}]}.
    Json,
}

pub(crate) fn run(args: AccountArgs) -> Result<(), Failure> {
    crate::init_tracing("warn");
    match args.command {
        AccountCommand::Create(create) => run_create(&create).map_err(Failure::from),
        AccountCommand::List(list) => run_list(&list).map_err(Failure::from),
    }
}

/// The answer to `request` (an admin socket request line), from whoever owns the store.
fn answer(
    target: &Target,
    request: &str,
    offline: impl AsyncFnOnce(&coffer_core::Coffer) -> serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let answer = match admin::reach(&target.data_dir, &target.unlock)? {
        Owner::Server(stream) => admin::ask(stream, request)?,
        Owner::Offline(store) => store.block_on(offline(&store.coffer)),
    };
    admin::result(answer)
}

fn text<'a>(answer: &'a serde_json::Value, field: &str) -> anyhow::Result<&'a str> {
    answer
        .get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| anyhow!("the answer has no {field}: {answer}"))
}

fn run_create(args: &CreateArgs) -> anyhow::Result<()> {
    let id = args.account_id.as_deref();
    let request = match id {
        Some(id) => format!("create-account {id}"),
        None => "create-account".to_owned(),
    };
    let created = answer(&args.target, &request, async |coffer| {
        coffer_server::create_account(coffer, id).await
    })
    .context("cannot create the account")?;
    let credentials = RootCredentialsJson {
        account_id: text(&created, "account_id")?,
        access_key_id: text(&created, "access_key_id")?,
        secret_access_key: text(&created, "secret_access_key")?,
    };
    let mut out = std::io::stdout().lock();
    match args.target.output {
        Output::Json => {
            serde_json::to_writer(&mut out, &credentials)
                .context("cannot write the credentials")?;
            writeln!(out).context("cannot write the credentials")?;
        }
        Output::Table => {
            writeln!(
                out,
                "Created account {account}.\n\
                 \n\
                 Root credentials of account {account}. Store them now: the secret access key is\n\
                 shown only this once.\n\
                 \n\
                 export AWS_ACCESS_KEY_ID={key_id}\n\
                 export AWS_SECRET_ACCESS_KEY={secret}",
                account = credentials.account_id,
                key_id = credentials.access_key_id,
                secret = credentials.secret_access_key,
            )
            .context("cannot write the credentials")?;
        }
    }
    out.flush().context("cannot write the credentials")?;
    Ok(())
}

fn run_list(args: &ListArgs) -> anyhow::Result<()> {
    let listed = answer(&args.target, "list-accounts", async |coffer| {
        coffer_server::list_accounts(coffer).await
    })
    .context("cannot list the accounts")?;
    let accounts = listed
        .get("accounts")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| anyhow!("the answer has no accounts: {listed}"))?;
    let mut out = std::io::stdout().lock();
    match args.target.output {
        Output::Json => {
            serde_json::to_writer(&mut out, &serde_json::json!({ "accounts": accounts }))?;
            writeln!(out)?;
        }
        Output::Table => {
            writeln!(out, "{:<14}CREATED", "ACCOUNT ID")?;
            for account in accounts {
                writeln!(
                    out,
                    "{:<14}{}",
                    text(account, "account_id")?,
                    text(account, "created")?
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
