//! `coffer rotation status|retry|cancel` and `coffer rotation function register|list|remove`:
//! the operator's side of secret rotation. Clients turn rotation on with `RotateSecret`; these
//! commands show how rotations are going, push a failed one again or stop it, and manage the
//! rotation functions (coffer's stand-in for Lambda) that `RotateSecret` names by ARN.
//!
//! As `coffer account` does, each command goes through the server running on the data
//! directory (its admin socket) or, when none runs, opens the store itself; both paths give
//! the same answer (`coffer_server::rotation_*`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::admin::{self, Owner};
use crate::root_key::RootKeyFlags;
use crate::{Failure, parse_account_id};

const EXAMPLES: &str = "\
Examples:
  How are the rotations going? (every secret with rotation settings, and its state)
    coffer rotation status --data-dir /var/lib/coffer

  One secret: each step of its current or last run, the last error, the recent events:
    coffer rotation status arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-AbCdEf

  A run gave up after its retries (fix the cause first, e.g. the database's password):
    coffer rotation retry arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-AbCdEf

  Stop rotating a secret (a run in progress is abandoned):
    coffer rotation cancel arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-AbCdEf

  Register the function RotateSecret names (see `coffer rotation function --help`):
    coffer rotation function register --arn arn:aws:lambda:us-east-1:111111111111:function:pg \\
        --builtin postgres --strategy alternating-users

  A dev server prints `export COFFER_DATA_DIR=...`; with that exported, --data-dir can go.";

const FUNCTION_EXAMPLES: &str = "\
Examples:
  A built-in database rotator (the secret is AWS's JSON: engine, host, port, username,
  password, dbname; alternating-users also masterarn, the secret of a user allowed to
  change passwords):
    coffer rotation function register --arn arn:aws:lambda:us-east-1:111111111111:function:pg \\
        --builtin postgres --strategy single-user

  A webhook, called once per step with AWS's rotation event; requests are signed with the
  secret in the named environment variable (never a flag value, which `ps` shows):
    export ROTATOR_SECRET=...
    coffer rotation function register --arn arn:aws:lambda:us-east-1:111111111111:function:hook \\
        --webhook https://rotator.internal/rotate --signing-secret-env ROTATOR_SECRET --timeout 60

  A local program, given the event on standard input and callback credentials in AWS_*:
    coffer rotation function register --arn arn:aws:lambda:us-east-1:111111111111:function:script \\
        --executable /usr/local/bin/rotate-api-key --arg --verbose

  Then use it:
    aws secretsmanager rotate-secret --secret-id prod/db \\
        --rotation-lambda-arn arn:aws:lambda:us-east-1:111111111111:function:pg \\
        --rotation-rules AutomaticallyAfterDays=30

    coffer rotation function list --account 111111111111
    coffer rotation function remove --arn arn:aws:lambda:us-east-1:111111111111:function:hook

  To register functions every time the server starts, see `coffer server --rotation-functions`.";

/// Watch, retry and cancel secret rotations; manage rotation functions.
///
/// A client turns rotation on with the Secrets Manager API (`aws secretsmanager
/// rotate-secret`), naming a rotation function by Lambda ARN. coffer's server runs the
/// rotation's four steps (createSecret, setSecret, testSecret, finishSecret) with that
/// function, retries a failed step with growing pauses and gives up after a few attempts.
/// These commands show where each rotation stands and let an operator retry or stop it.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct RotationArgs {
    #[command(subcommand)]
    command: RotationCommand,
}

#[derive(Debug, Subcommand)]
enum RotationCommand {
    /// Show every rotating secret's state, or one secret's steps, last error and events.
    ///
    /// Without an ARN: a table of every secret with rotation settings (name, enabled,
    /// schedule, last and next rotation, state). With a secret's full ARN: the outcome of each
    /// step of its current (or last) run, the last error and the recent events.
    #[command(after_help = EXAMPLES)]
    Status(StatusArgs),
    /// Run a failed or waiting rotation again now (or start one when none is unfinished).
    ///
    /// The run continues from its first unfinished step with a fresh set of attempts.
    /// Fix what made it fail first: `coffer rotation status ARN` shows the error.
    #[command(after_help = EXAMPLES)]
    Retry(SecretArgs),
    /// Turn a secret's automatic rotation off and abandon a run in progress.
    ///
    /// As AWS's CancelRotateSecret: a version the abandoned run made keeps its AWSPENDING
    /// label; AWSCURRENT is unchanged.
    #[command(after_help = EXAMPLES)]
    Cancel(SecretArgs),
    /// Register, list and remove rotation functions (coffer's stand-in for Lambda).
    #[command(after_help = FUNCTION_EXAMPLES)]
    Function(FunctionArgs),
}

#[derive(Debug, Args)]
struct FunctionArgs {
    #[command(subcommand)]
    command: FunctionCommand,
}

#[derive(Debug, Subcommand)]
enum FunctionCommand {
    /// Register (or replace) the rotation function under a Lambda ARN.
    ///
    /// RotateSecret's RotationLambdaARN names it. It is one of: a built-in database rotator
    /// (--builtin with --strategy), an HTTP webhook (--webhook) or a local executable
    /// (--executable). The account is the ARN's.
    #[command(after_help = FUNCTION_EXAMPLES)]
    Register(RegisterArgs),
    /// List an account's rotation functions (signing secrets are never shown).
    #[command(after_help = FUNCTION_EXAMPLES)]
    List(FunctionListArgs),
    /// Remove a rotation function; secrets that name it fail to rotate until one is
    /// registered under the ARN again.
    #[command(after_help = FUNCTION_EXAMPLES)]
    Remove(FunctionRemoveArgs),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned text and sentences for people.
    Table,
    /// The admin socket's JSON answer, one document (times in ISO 8601 UTC).
    Json,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// A secret's full ARN (`coffer rotation status` without it lists them).
    #[arg(value_name = "SECRET_ARN", value_parser = parse_secret_arn)]
    secret_arn: Option<String>,

    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct SecretArgs {
    /// The secret's full ARN, as `coffer rotation status` lists it.
    #[arg(value_name = "SECRET_ARN", value_parser = parse_secret_arn)]
    secret_arn: String,

    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Strategy {
    /// The secret's user changes its own password.
    SingleUser,
    /// Two users take turns (USER and USER_clone), so one always works; the user of the
    /// master secret (`masterarn` in the secret) changes their passwords.
    AlternatingUsers,
}

/// Exactly one kind of function.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Kind {
    /// A built-in database rotator for this engine; needs --strategy.
    #[arg(long, value_enum, value_name = "ENGINE", requires = "strategy")]
    builtin: Option<Engine>,

    /// An HTTP webhook: coffer POSTs AWS's rotation event to this http:// or https:// URL.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,

    /// A local program, run once per step (absolute path; no shell, no PATH lookup).
    #[arg(long, value_name = "PATH", value_parser = parse_program)]
    executable: Option<String>,
}

#[derive(Debug, Args)]
struct RegisterArgs {
    /// The Lambda ARN to register it under: arn:aws:lambda:REGION:ACCOUNT:function:NAME.
    /// The account must exist; the function belongs to it.
    #[arg(long, value_name = "ARN", value_parser = parse_function_arn)]
    arn: String,

    #[command(flatten)]
    kind: Kind,

    /// With --builtin: how the password changes.
    #[arg(
        long,
        value_enum,
        value_name = "STRATEGY",
        conflicts_with_all = ["webhook", "executable"]
    )]
    strategy: Option<Strategy>,

    /// With --webhook: the environment variable holding the secret that signs each request
    /// (never given as a flag value, which other users can read in the process list).
    #[arg(long, value_name = "VAR", conflicts_with_all = ["builtin", "executable"])]
    signing_secret_env: Option<String>,

    /// With --executable: an argument for the program (repeat for more).
    #[arg(
        long = "arg",
        value_name = "ARG",
        conflicts_with_all = ["builtin", "webhook"],
        allow_hyphen_values = true
    )]
    args: Vec<String>,

    /// With --webhook or --executable: how long one step may take, in seconds [default: 30].
    #[arg(
        long,
        value_name = "SECS",
        conflicts_with = "builtin",
        // coffer_server::MAX_FUNCTION_TIMEOUT_SECS (a test checks they agree)
        value_parser = clap::value_parser!(u64).range(1..=900)
    )]
    timeout: Option<u64>,

    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct FunctionListArgs {
    /// The account whose functions to list (12 digits).
    #[arg(long, value_name = "ID", value_parser = parse_account_id)]
    account: String,

    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
struct FunctionRemoveArgs {
    /// The function's Lambda ARN.
    #[arg(long, value_name = "ARN", value_parser = parse_function_arn)]
    arn: String,

    #[command(flatten)]
    target: Target,
}

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, checked at the flag so the error names it.
fn parse_function_arn(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.splitn(7, ':').collect();
    let ok = matches!(
        parts.as_slice(),
        ["arn", "aws", "lambda", region, account, "function", name]
            if !region.is_empty()
                && parse_account_id(account).is_ok()
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    if ok {
        Ok(value.to_owned())
    } else {
        Err("a rotation function ARN looks like arn:aws:lambda:us-east-1:111111111111:function:NAME (12-digit account; the name in letters, digits, - and _)".to_owned())
    }
}

fn function_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

/// A secret's full ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`).
fn parse_secret_arn(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.splitn(7, ':').collect();
    match parts.as_slice() {
        ["arn", _, "secretsmanager", _, _, "secret", name] if !name.is_empty() => {
            Ok(value.to_owned())
        }
        _ => Err(
            "give the secret's full ARN, like arn:aws:secretsmanager:us-east-1:111111111111:secret:prod/db-AbCdEf (`coffer rotation status` lists them; `aws secretsmanager describe-secret --secret-id NAME` shows one)"
                .to_owned(),
        ),
    }
}

fn parse_program(value: &str) -> Result<String, String> {
    if Path::new(value).is_absolute() {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "the executable must be an absolute path, like /usr/local/bin/{}: coffer runs it without a shell or PATH lookup",
            Path::new(value)
                .file_name()
                .map_or_else(|| "rotate".into(), |n| n.to_string_lossy())
        ))
    }
}

pub(crate) fn run(args: RotationArgs) -> Result<(), Failure> {
    crate::init_tracing("warn");
    let result = match args.command {
        RotationCommand::Status(status) => run_status(&status),
        RotationCommand::Retry(retry) => run_retry(&retry),
        RotationCommand::Cancel(cancel) => run_cancel(&cancel),
        RotationCommand::Function(function) => match function.command {
            FunctionCommand::Register(register) => run_register(&register),
            FunctionCommand::List(list) => run_list(&list),
            FunctionCommand::Remove(remove) => run_remove(&remove),
        },
    };
    result.map_err(Failure::from)
}

/// Who answered: the running server, or this process on the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    Server,
    Offline,
}

/// The answer to `request` (an admin socket request line), from whoever owns the store.
fn answer(
    target: &Target,
    request: &str,
    offline: impl AsyncFnOnce(&coffer_core::Coffer) -> Value,
) -> anyhow::Result<(Value, Answered)> {
    let (answer, by) = match admin::reach(&target.data_dir, &target.unlock)? {
        Owner::Server(stream) => (admin::ask(stream, request)?, Answered::Server),
        Owner::Offline(store) => (store.block_on(offline(&store.coffer)), Answered::Offline),
    };
    Ok((admin::result(answer)?, by))
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn str_of<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A field that may be null, for tables: `-` when absent.
fn or_dash(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_owned(),
    }
}

/// Rows as columns two spaces apart, the last one unpadded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count() + 2;
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// "every 30 days", "cron(0 4 ? * SUN *)", with its window; `-` when rotation is manual.
fn schedule(secret: &Value) -> String {
    let base = match (
        secret.get("schedule_expression").and_then(Value::as_str),
        secret
            .get("automatically_after_days")
            .and_then(Value::as_i64),
    ) {
        (Some(expression), _) => expression.to_owned(),
        (None, Some(1)) => "every day".to_owned(),
        (None, Some(days)) => format!("every {days} days"),
        (None, None) => return "-".to_owned(),
    };
    match secret.get("duration").and_then(Value::as_str) {
        Some(window) => format!("{base} (window {window})"),
        None => base,
    }
}

fn state_summary(secret: &Value) -> String {
    secret
        .get("state")
        .map(|s| str_of(s, "summary").to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

fn run_status(args: &StatusArgs) -> anyhow::Result<()> {
    let arn = args.secret_arn.as_deref();
    let request = match arn {
        Some(arn) => format!("rotation-status {arn}"),
        None => "rotation-status".to_owned(),
    };
    let (status, _) = answer(&args.target, &request, async |coffer| {
        coffer_server::rotation_status(coffer, arn).await
    })
    .context("cannot show the rotation status")?;
    if args.target.output == Output::Json {
        return print_json(&status);
    }
    match status.get("secret") {
        Some(secret) => print_text(&secret_text(secret)),
        None => {
            let secrets = status
                .get("secrets")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("the answer has no secrets: {status}"))?;
            print_text(&secrets_table(secrets))
        }
    }
}

fn secrets_table(secrets: &[Value]) -> String {
    if secrets.is_empty() {
        return "No secret has rotation settings. A client turns rotation on with\n\
                `aws secretsmanager rotate-secret --secret-id NAME --rotation-lambda-arn ARN`,\n\
                naming a function registered with `coffer rotation function register`.\n"
            .to_owned();
    }
    let rows: Vec<Vec<String>> = secrets
        .iter()
        .map(|s| {
            vec![
                str_of(s, "name").to_owned(),
                if s.get("enabled").and_then(Value::as_bool) == Some(true) {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                schedule(s),
                or_dash(s, "last_rotated"),
                or_dash(s, "next_rotation"),
                state_summary(s),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "NAME",
            "ENABLED",
            "SCHEDULE",
            "LAST ROTATED",
            "NEXT ROTATION",
            "STATE",
        ],
        &rows,
    );
    out.push_str("\nOne secret's steps and events: coffer rotation status SECRET_ARN (ARNs: --output json)\n");
    out
}

/// One step's line: ✓ or ✗, the step, when, and the error.
fn step_line(step: &str, outcome: Option<&Value>, pending: &str) -> String {
    match outcome {
        Some(s) if s.get("ok").and_then(Value::as_bool) == Some(true) => {
            format!("  ✓ {step:<13} {}\n", str_of(s, "at"))
        }
        Some(s) => {
            let error = s
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("failed (no detail)");
            format!("  ✗ {step:<13} {}  {error}\n", str_of(s, "at"))
        }
        None => format!("  · {step:<13} {pending}\n"),
    }
}

fn steps_text(run: &Value, pending: &str) -> String {
    let steps = run.get("steps").and_then(Value::as_array);
    let mut out = String::new();
    for step in coffer_core::rotation::STEPS {
        let outcome = steps.and_then(|all| all.iter().find(|s| str_of(s, "step") == step));
        out.push_str(&step_line(step, outcome, pending));
    }
    out
}

fn secret_text(secret: &Value) -> String {
    let arn = str_of(secret, "arn");
    let enabled = secret.get("enabled").and_then(Value::as_bool) == Some(true);
    let function = secret
        .get("lambda_arn")
        .and_then(Value::as_str)
        .unwrap_or("no rotation function");
    let state = secret.get("state").cloned().unwrap_or(Value::Null);
    let kind = str_of(&state, "state");
    let mut out = format!(
        "Secret:         {name}\n\
         ARN:            {arn}\n\
         Rotation:       {on} ({function})\n\
         Schedule:       {schedule}\n\
         Last rotated:   {last}\n\
         Next rotation:  {next}\n\
         State:          {summary}\n",
        name = str_of(secret, "name"),
        on = if enabled { "enabled" } else { "disabled" },
        schedule = schedule(secret),
        last = or_dash(secret, "last_rotated"),
        next = or_dash(secret, "next_rotation"),
        summary = state_summary(secret),
    );
    match (secret.get("run"), secret.get("last_run")) {
        (Some(run @ Value::Object(_)), _) => {
            out.push_str(&format!(
                "\nCurrent run, version {} (started {}, {} failed attempt{}):\n",
                str_of(run, "token"),
                str_of(run, "started"),
                run.get("attempts").and_then(Value::as_u64).unwrap_or(0),
                if run.get("attempts").and_then(Value::as_u64) == Some(1) {
                    ""
                } else {
                    "s"
                },
            ));
            out.push_str(&steps_text(run, "not done yet"));
            if let Some(error) = run.get("last_error").and_then(Value::as_str) {
                out.push_str(&format!("\nLast error: {error}\n"));
            }
        }
        (_, Some(last @ Value::Object(_))) => {
            let outcome = match last.get("outcome").and_then(Value::as_str) {
                Some("succeeded") => format!("succeeded at {}", str_of(last, "ended")),
                Some("abandoned") => format!("abandoned at {}", str_of(last, "ended")),
                _ => "outcome not in the recent events".to_owned(),
            };
            out.push_str(&format!(
                "\nLast run, version {} ({outcome}):\n",
                str_of(last, "token")
            ));
            out.push_str(&steps_text(last, "not run"));
        }
        _ => out.push_str("\nNo rotation has run yet.\n"),
    }
    if let Some(events) = secret.get("events").and_then(Value::as_array)
        && !events.is_empty()
    {
        out.push_str("\nRecent events (oldest first):\n");
        for event in events.iter().rev().take(20).rev() {
            let mut what = String::new();
            if let Some(step) = event.get("step").and_then(Value::as_str) {
                what.push_str(step);
            }
            if let Some(detail) = event.get("detail").and_then(Value::as_str) {
                if !what.is_empty() {
                    what.push_str(": ");
                }
                what.push_str(detail);
            }
            if what.is_empty()
                && let Some(token) = event.get("token").and_then(Value::as_str)
            {
                what = format!("version {token}");
            }
            out.push_str(&format!(
                "  {}  {:<18} {what}\n",
                str_of(event, "at"),
                str_of(event, "event")
            ));
        }
    }
    let next = match kind {
        "retrying" => format!(
            "It is retried automatically at {}. After fixing the cause, `coffer rotation retry {arn}` retries now; `coffer rotation cancel {arn}` stops it.",
            or_dash(&state, "next_attempt")
        ),
        "failed" => format!(
            "Fix the cause above (the rotation function, or the database or service it changes), then run `coffer rotation retry {arn}`; or `coffer rotation cancel {arn}` to stop rotating."
        ),
        "running" => format!(
            "The server's scheduler is on it; run this again to follow it, or `coffer rotation cancel {arn}` to stop it."
        ),
        "abandoned" => format!(
            "A version may still carry AWSPENDING; `aws secretsmanager rotate-secret --secret-id {arn}` turns rotation on again and continues it."
        ),
        _ if !enabled => format!(
            "Turn rotation on with `aws secretsmanager rotate-secret --secret-id {arn} --rotation-lambda-arn ARN`."
        ),
        _ => String::new(),
    };
    if !next.is_empty() {
        out.push_str(&format!("\nNext: {next}\n"));
    }
    out
}

fn run_retry(args: &SecretArgs) -> anyhow::Result<()> {
    let arn = args.secret_arn.as_str();
    let (retried, by) = answer(
        &args.target,
        &format!("rotation-retry {arn}"),
        async |coffer| coffer_server::rotation_retry(coffer, arn).await,
    )
    .with_context(|| format!("cannot retry the rotation of {arn}"))?;
    if args.target.output == Output::Json {
        return print_json(&retried);
    }
    let when = match by {
        Answered::Server => "The running server starts it within seconds.".to_owned(),
        Answered::Offline => format!(
            "No server runs on {}: it starts when `coffer server --data-dir {}` does.",
            args.target.data_dir.display(),
            args.target.data_dir.display()
        ),
    };
    print_text(&format!(
        "The rotation of {arn} (version {}) is due now, with a fresh set of attempts.\n{when}\nFollow it with `coffer rotation status {arn}`.\n",
        str_of(&retried, "token")
    ))
}

fn run_cancel(args: &SecretArgs) -> anyhow::Result<()> {
    let arn = args.secret_arn.as_str();
    let (cancelled, _) = answer(
        &args.target,
        &format!("rotation-cancel {arn}"),
        async |coffer| coffer_server::rotation_cancel(coffer, arn).await,
    )
    .with_context(|| format!("cannot cancel the rotation of {arn}"))?;
    if args.target.output == Output::Json {
        return print_json(&cancelled);
    }
    let name = str_of(&cancelled, "name");
    let mut text = format!("Automatic rotation of {name} is off.\n");
    match cancelled.get("abandoned_version").and_then(Value::as_str) {
        Some(version) => text.push_str(&format!(
            "The run in progress was abandoned. Its version {version} may still carry AWSPENDING\n\
             (AWSCURRENT is unchanged). To drop that label:\n  \
             aws secretsmanager update-secret-version-stage --secret-id {arn} --version-stage AWSPENDING --remove-from-version-id {version}\n\
             To rotate again later: aws secretsmanager rotate-secret --secret-id {arn}\n"
        )),
        None => text.push_str(&format!(
            "No run was in progress. To rotate again later: aws secretsmanager rotate-secret --secret-id {arn}\n"
        )),
    }
    print_text(&text)
}

/// The signing secret from the environment variable `name`.
fn signing_secret(name: &str) -> anyhow::Result<Zeroizing<String>> {
    let value = std::env::var(name).map(Zeroizing::new).map_err(|_| {
        anyhow!(
            "the environment variable {name} (--signing-secret-env) is not set; export the webhook's signing secret in it (it is never taken from a flag)"
        )
    })?;
    if value.is_empty() {
        bail!(
            "the environment variable {name} (--signing-secret-env) is empty; put the webhook's signing secret in it"
        );
    }
    Ok(value)
}

fn run_register(args: &RegisterArgs) -> anyhow::Result<()> {
    let arn = args.arn.as_str();
    let mut request = json!({
        "account": function_account(arn),
        "arn": arn,
    });
    let fields = match (
        &args.kind.builtin,
        &args.kind.webhook,
        &args.kind.executable,
    ) {
        (Some(engine), _, _) => {
            let strategy = args.strategy.ok_or_else(|| {
                anyhow!("--builtin needs --strategy single-user or --strategy alternating-users")
            })?;
            json!({
                "kind": "builtin",
                "engine": engine_name(*engine),
                "strategy": strategy_name(strategy),
            })
        }
        (None, Some(url), _) => {
            let mut fields = json!({"kind": "webhook", "url": url, "timeout_secs": args.timeout});
            if let Some(name) = &args.signing_secret_env {
                let secret = signing_secret(name)?;
                fields["signing_secret"] = Value::String(secret.as_str().to_owned());
            }
            fields
        }
        (None, None, Some(program)) => json!({
            "kind": "executable",
            "program": program,
            "args": args.args,
            "timeout_secs": args.timeout,
        }),
        (None, None, None) => bail!("give --builtin, --webhook or --executable"),
    };
    if let (Value::Object(request), Value::Object(fields)) = (&mut request, fields) {
        request.extend(fields);
    }
    // The line may carry the signing secret: zeroized when dropped, and so is the JSON.
    let line = Zeroizing::new(format!("rotation-function-register {request}"));
    let body = Zeroizing::new(request.to_string());
    if let Some(Value::String(secret)) = request.get_mut("signing_secret") {
        zeroize::Zeroize::zeroize(secret);
    }
    let (registered, _) = answer(&args.target, &line, async |coffer| {
        coffer_server::rotation_function_register(coffer, &body).await
    })
    .with_context(|| format!("cannot register the rotation function {arn}"))?;
    if args.target.output == Output::Json {
        return print_json(&registered);
    }
    let function = registered.get("function").cloned().unwrap_or(Value::Null);
    let verb = if registered.get("replaced").and_then(Value::as_bool) == Some(true) {
        "Replaced"
    } else {
        "Registered"
    };
    print_text(&format!(
        "{verb} the rotation function {arn}: {}.\n\
         Use it: aws secretsmanager rotate-secret --secret-id SECRET --rotation-lambda-arn {arn} \\\n    \
         --rotation-rules AutomaticallyAfterDays=30\n",
        describe_function(&function)
    ))
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "postgres",
        Engine::Mysql => "mysql",
    }
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::SingleUser => "single-user",
        Strategy::AlternatingUsers => "alternating-users",
    }
}

/// One line about a function: what it runs and how.
fn describe_function(f: &Value) -> String {
    let timeout = f
        .get("timeout_secs")
        .and_then(Value::as_u64)
        .map(|t| format!(", timeout {t}s"))
        .unwrap_or_default();
    match str_of(f, "kind") {
        "builtin" => format!(
            "built-in {} rotator, {}",
            str_of(f, "engine"),
            str_of(f, "strategy")
        ),
        "webhook" => format!(
            "webhook {}{}{timeout}",
            str_of(f, "url"),
            if f.get("signing_secret_set").and_then(Value::as_bool) == Some(true) {
                ", signed"
            } else {
                ", unsigned"
            }
        ),
        "executable" => {
            let mut program = str_of(f, "program").to_owned();
            for arg in f
                .get("args")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                program.push(' ');
                program.push_str(arg);
            }
            format!("executable {program}{timeout}")
        }
        other => format!("{other} function"),
    }
}

fn run_list(args: &FunctionListArgs) -> anyhow::Result<()> {
    let account = args.account.as_str();
    let (listed, _) = answer(
        &args.target,
        &format!("rotation-function-list {account}"),
        async |coffer| coffer_server::rotation_function_list(coffer, account).await,
    )
    .with_context(|| format!("cannot list the rotation functions of account {account}"))?;
    if args.target.output == Output::Json {
        return print_json(&listed);
    }
    let functions = listed
        .get("functions")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("the answer has no functions: {listed}"))?;
    if functions.is_empty() {
        return print_text(&format!(
            "Account {account} has no rotation functions. Register one with\n`coffer rotation function register --arn arn:aws:lambda:REGION:{account}:function:NAME ...`\n(see `coffer rotation function register --help`).\n"
        ));
    }
    let rows: Vec<Vec<String>> = functions
        .iter()
        .map(|f| {
            vec![
                str_of(f, "arn").to_owned(),
                str_of(f, "kind").to_owned(),
                or_dash(f, "created"),
                describe_function(f),
            ]
        })
        .collect();
    print_text(&table(&["ARN", "KIND", "CREATED", "DETAILS"], &rows))
}

fn run_remove(args: &FunctionRemoveArgs) -> anyhow::Result<()> {
    let arn = args.arn.as_str();
    let (removed, _) = answer(
        &args.target,
        &format!("rotation-function-remove {arn}"),
        async |coffer| coffer_server::rotation_function_remove(coffer, arn).await,
    )
    .with_context(|| format!("cannot remove the rotation function {arn}"))?;
    if args.target.output == Output::Json {
        return print_json(&removed);
    }
    let mut text = format!("Removed the rotation function {arn}.\n");
    let used_by: Vec<&str> = removed
        .get("used_by")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !used_by.is_empty() {
        text.push_str(
            "These secrets still name it, and their rotations fail until a function is registered\n\
             under that ARN again (or they are pointed at another with `aws secretsmanager rotate-secret`):\n",
        );
        for secret in used_by {
            text.push_str(&format!("  {secret}\n"));
        }
    }
    print_text(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_arns() {
        for (value, ok) in [
            ("arn:aws:lambda:us-east-1:111111111111:function:pg", true),
            (
                "arn:aws:lambda:eu-west-1:000000000000:function:my_fn-2",
                true,
            ),
            ("arn:aws:lambda:us-east-1:1111:function:pg", false),
            ("arn:aws:lambda:us-east-1:111111111111:function:", false),
            ("arn:aws:lambda::111111111111:function:pg", false),
            ("arn:aws:lambda:us-east-1:111111111111:layer:pg", false),
            ("arn:aws:lambda:us-east-1:111111111111:function:a:b", false),
            ("pg", false),
        ] {
            assert_eq!(parse_function_arn(value).is_ok(), ok, "{value}");
        }
        assert_eq!(
            function_account("arn:aws:lambda:us-east-1:111111111111:function:pg"),
            "111111111111"
        );
    }

    #[test]
    fn secret_arns_and_programs() {
        assert!(
            parse_secret_arn("arn:aws:secretsmanager:us-east-1:111111111111:secret:a/b-AbCdEf")
                .is_ok()
        );
        assert!(parse_secret_arn("prod/db").is_err());
        assert!(parse_program("/usr/bin/rotate").is_ok());
        let err = parse_program("bin/rotate").unwrap_err();
        assert!(err.contains("/usr/local/bin/rotate"), "{err}");
    }

    #[test]
    fn the_timeout_flag_has_the_server_s_limit() {
        assert_eq!(coffer_server::MAX_FUNCTION_TIMEOUT_SECS, 900);
    }

    #[test]
    fn tables_align() {
        let out = table(
            &["A", "BB"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "2".into()]],
        );
        assert_eq!(out, "A    BB\nxyz  1\nq    2\n");
    }

    #[test]
    fn schedules_read_like_sentences() {
        assert_eq!(
            schedule(&json!({"automatically_after_days": 30})),
            "every 30 days"
        );
        assert_eq!(
            schedule(&json!({"schedule_expression": "rate(4 hours)", "duration": "2h"})),
            "rate(4 hours) (window 2h)"
        );
        assert_eq!(schedule(&json!({})), "-");
    }

    #[test]
    fn a_secret_that_retries_shows_its_steps_and_what_to_do() {
        let secret = json!({
            "arn": "arn:aws:secretsmanager:us-east-1:111111111111:secret:db-AbCdEf",
            "name": "db",
            "enabled": true,
            "lambda_arn": "arn:aws:lambda:us-east-1:111111111111:function:pg",
            "automatically_after_days": 30,
            "last_rotated": null,
            "next_rotation": "2026-12-01T00:00:00Z",
            "state": {"state": "retrying", "step": "setSecret", "failures": 2,
                      "next_attempt": "2026-11-23T20:51:00Z",
                      "summary": "retrying setSecret after 2 failures (next attempt at 2026-11-23T20:51:00Z)"},
            "run": {"token": "v1", "started": "2026-11-23T20:50:00Z", "attempts": 2,
                    "gave_up": false, "last_error": "setSecret failed: connection refused",
                    "steps": [
                        {"step": "createSecret", "ok": true, "at": "2026-11-23T20:50:00Z", "error": null},
                        {"step": "setSecret", "ok": false, "at": "2026-11-23T20:50:30Z", "error": "connection refused"}
                    ]},
            "last_run": null,
            "events": [{"seq": 1, "at": "2026-11-23T20:50:00Z", "event": "RotationStarted", "token": "v1", "step": null, "detail": null}],
        });
        let text = secret_text(&secret);
        for expected in [
            "✓ createSecret",
            "✗ setSecret",
            "connection refused",
            "· testSecret",
            "Last error: setSecret failed",
            "RotationStarted",
            "version v1",
            "coffer rotation retry arn:aws:secretsmanager",
            "every 30 days",
        ] {
            assert!(text.contains(expected), "lacks {expected:?}:\n{text}");
        }
    }
}
