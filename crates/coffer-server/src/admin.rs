//! The operator's channel to a running server: a Unix socket `DATA_DIR/admin.sock`, mode
//! 0600 inside the 0700 data directory, so only whoever may read the data directory may use
//! it (the same people who could stop the server and open the store themselves).
//!
//! One request per connection, one line of text; the answer is JSON lines, the last of which
//! is the result or `{"error":"…"}`:
//!
//! - `rotate-root-key`: the running server rotates its root key while it keeps serving reads,
//!   and streams `{"done":N,"total":M}` progress, then `{"generation":G,"resealed":R,"total":M}`.
//! - `create-account [ID]`: a new account (12-digit `ID`, random if not given) with its own
//!   root access key: `{"account_id":…,"access_key_id":…,"secret_access_key":…}`.
//! - `list-accounts`: `{"accounts":[{"account_id":…,"created":"ISO 8601"},…]}`.
//! - `rotation-status [ARN]`: without an ARN `{"secrets":[…]}`, every secret with rotation
//!   settings and its state; with a secret's full ARN `{"secret":{…}}`, also its run in
//!   progress (`run`), the last finished run rebuilt from the history (`last_run`) and the
//!   recent `events`, oldest first.
//! - `rotation-retry ARN`: the secret's failed or waiting run is due now (a new run if none
//!   is unfinished): `{"arn":…,"token":…}`.
//! - `rotation-cancel ARN`: rotation off, a run in progress abandoned:
//!   `{"arn":…,"name":…,"abandoned_version":…|null}`.
//! - `rotation-function-register JSON`: the rest of the line is one function in the shape of
//!   [`RotationFunctionConfig`] with the signing secret inline (`signing_secret`):
//!   `{"function":{…},"replaced":bool}`.
//! - `rotation-function-list ACCOUNT`: `{"functions":[{…},…]}`.
//! - `rotation-function-remove ARN`: `{"arn":…,"removed":true,"used_by":[secret ARNs]}`.
//!
//! A function is shown as `{"arn","account","kind","created"}` plus `engine`, `strategy`
//! (builtin), `url`, `signing_secret_set`, `timeout_secs` (webhook) or `program`, `args`,
//! `timeout_secs` (executable): a signing secret is never sent back. Times are ISO 8601 UTC.
//!
//! The public functions here make those answers; the CLI calls them itself on a store no
//! server is running on, so both paths answer alike. This module must never accept a
//! request from the network.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_core::clock::iso8601;
use coffer_core::rotation::{RotationStatus, STEPS};
use coffer_core::{Coffer, CoreError, SecretBytes, Store};
use coffer_store::{
    RotationEventRecord, RotationFunctionKind, RotationFunctionRecord, RotationRecord, RotationRun,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::config::RotationFunctionConfig;
use crate::error::ServerError;

/// File name of the admin socket inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";

/// The longest request line: a `rotation-function-register` request carries a function's
/// JSON (a URL, a program's arguments).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

const KNOWN_REQUESTS: &str = "rotate-root-key, create-account [ID], list-accounts, rotation-status [ARN], rotation-retry ARN, rotation-cancel ARN, rotation-function-register JSON, rotation-function-list ACCOUNT, rotation-function-remove ARN, audit-public-key";

/// The admin socket of a running server; removes its file when dropped.
pub(crate) struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `DATA_DIR/admin.sock`, replacing a stale one left by a server that died.
    pub(crate) fn bind(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(ADMIN_SOCKET);
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running coffer", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Self { listener, path })
    }

    /// Serves requests until the task is aborted.
    pub(crate) async fn serve(self, coffer: Arc<Coffer>) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(handle(stream, coffer.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn handle(stream: UnixStream, coffer: Arc<Coffer>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(read).take(limit.saturating_add(1));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let answer = if line.len() > MAX_REQUEST_BYTES {
        json!({"error": format!("the request is longer than {MAX_REQUEST_BYTES} bytes")})
    } else {
        answer(&coffer, &line, &mut write).await
    };
    // The line may carry a webhook's signing secret: zeroized when dropped.
    drop(SecretBytes::from(line));
    let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
}

/// The answer to one request line. Errors name the request, never echo its arguments (a
/// registration carries a signing secret).
async fn answer(
    coffer: &Arc<Coffer>,
    line: &str,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Value {
    let request = line.trim();
    let (command, rest) = request
        .split_once(char::is_whitespace)
        .map_or((request, ""), |(c, rest)| (c, rest.trim()));
    if command == "rotation-function-register" {
        return rotation_function_register(coffer, rest).await;
    }
    let words: Vec<&str> = rest.split_whitespace().collect();
    match (command, words.as_slice()) {
        ("rotate-root-key", []) => rotate_root_key(coffer, write).await,
        ("create-account", []) => create_account(coffer, None).await,
        ("create-account", [id]) => create_account(coffer, Some(id)).await,
        ("list-accounts", []) => list_accounts(coffer).await,
        ("audit-public-key", []) => audit_public_key(coffer).await,
        ("rotation-status", []) => rotation_status(coffer, None).await,
        ("rotation-status", [arn]) => rotation_status(coffer, Some(arn)).await,
        ("rotation-retry", [arn]) => rotation_retry(coffer, arn).await,
        ("rotation-cancel", [arn]) => rotation_cancel(coffer, arn).await,
        ("rotation-function-list", [account]) => rotation_function_list(coffer, account).await,
        ("rotation-function-remove", [arn]) => rotation_function_remove(coffer, arn).await,
        _ => json!({"error": format!(
            "unknown admin request {command:?} with {} argument(s); known: {KNOWN_REQUESTS}",
            words.len()
        )}),
    }
}

/// The answer to `create-account [ID]`: the new account's id and root credentials (the only
/// time the secret access key is shown), or `{"error":"…"}`.
pub async fn create_account(coffer: &Coffer, account_id: Option<&str>) -> serde_json::Value {
    match coffer.create_account(account_id).await {
        Ok(outcome) => match outcome.secret_access_key.as_str() {
            Some(secret) => serde_json::json!({
                "account_id": outcome.account_id,
                "access_key_id": outcome.access_key_id,
                "secret_access_key": secret,
            }),
            None => serde_json::json!({"error": format!(
                "account {} was created, but its secret access key is not text; this is a bug in coffer",
                outcome.account_id
            )}),
        },
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

/// The answer to `audit-public-key`: the audit log's Ed25519 public key as PEM and its id.
pub async fn audit_public_key(coffer: &Coffer) -> serde_json::Value {
    match coffer.audit_public_key().await {
        Ok(key) => serde_json::json!({ "pem": key.to_pem(), "key_id": key.key_id() }),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

/// The answer to `list-accounts`: every account with its creation time, in id order.
pub async fn list_accounts(coffer: &Coffer) -> serde_json::Value {
    match coffer.store().list_accounts().await {
        Ok(mut accounts) => {
            accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
            let accounts: Vec<serde_json::Value> = accounts
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "account_id": a.account_id,
                        "created": coffer_core::clock::iso8601(a.created_ms),
                    })
                })
                .collect();
            serde_json::json!({ "accounts": accounts })
        }
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

fn error(e: impl std::fmt::Display) -> Value {
    json!({"error": e.to_string()})
}

/// `CoreError::NotFound` about a secret ARN, with where to find the right one.
fn secret_error(e: &CoreError, arn: &str) -> Value {
    match e {
        CoreError::NotFound(_) => error(format!(
            "no secret {arn}: give the secret's full ARN (`coffer rotation status` lists the secrets that rotate)"
        )),
        other => error(other),
    }
}

fn time(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |ms| Value::String(iso8601(ms)))
}

/// The first step of a run not yet done.
fn next_step(run: &RotationRun) -> &'static str {
    STEPS
        .iter()
        .find(|s| !run.steps.iter().any(|r| r.step == **s && r.ok))
        .copied()
        .unwrap_or("finishSecret")
}

/// `idle`, `running`, `retrying`, `failed` or `abandoned`, with its details and a sentence.
fn state(rotation: &RotationRecord, last_event: Option<&RotationEventRecord>) -> Value {
    match &rotation.run {
        Some(run) if run.gave_up => {
            let step = next_step(run);
            json!({
                "state": "failed",
                "step": step,
                "failures": run.attempts,
                "next_attempt": time(rotation.due_ms),
                "summary": format!("failed — gave up after {} attempts at {step}", run.attempts),
            })
        }
        Some(run) if run.attempts > 0 => {
            let step = next_step(run);
            let when = rotation
                .due_ms
                .map_or_else(|| "not scheduled".to_owned(), iso8601);
            json!({
                "state": "retrying",
                "step": step,
                "failures": run.attempts,
                "next_attempt": time(rotation.due_ms),
                "summary": format!(
                    "retrying {step} after {} failure{} (next attempt at {when})",
                    run.attempts,
                    if run.attempts == 1 { "" } else { "s" }
                ),
            })
        }
        Some(run) => {
            let step = next_step(run);
            json!({
                "state": "running",
                "step": step,
                "failures": 0,
                "next_attempt": time(rotation.due_ms),
                "summary": format!("running step {step}"),
            })
        }
        None if last_event.is_some_and(|e| e.event == "RotationAbandoned") => json!({
            "state": "abandoned",
            "summary": "abandoned (the last run was cancelled)",
        }),
        None => json!({"state": "idle", "summary": "idle"}),
    }
}

/// One secret's rotation settings and state.
fn secret_summary(
    arn: &str,
    name: &str,
    rotation: &RotationRecord,
    last_event: Option<&RotationEventRecord>,
) -> Value {
    json!({
        "arn": arn,
        "name": name,
        "enabled": rotation.enabled,
        "lambda_arn": rotation.lambda_arn,
        "automatically_after_days": rotation.automatically_after_days,
        "schedule_expression": rotation.schedule_expression,
        "duration": rotation.duration,
        "last_rotated": time(rotation.last_rotated_ms),
        "next_rotation": time(rotation.next_rotation_ms),
        "due": time(rotation.due_ms),
        "state": state(rotation, last_event),
    })
}

fn event_json(e: &RotationEventRecord) -> Value {
    json!({
        "seq": e.seq,
        "at": iso8601(e.at_ms),
        "event": e.event,
        "token": e.token,
        "step": e.step,
        "detail": e.detail,
    })
}

/// The last run that is no longer in the record (finished or abandoned), rebuilt from the
/// history: each step's last outcome.
fn last_run_from_events(events: &[RotationEventRecord]) -> Value {
    let Some(token) = events.iter().rev().find_map(|e| e.token.clone()) else {
        return Value::Null;
    };
    let mine: Vec<&RotationEventRecord> = events
        .iter()
        .filter(|e| e.token.as_deref() == Some(token.as_str()))
        .collect();
    let steps: Vec<Value> = STEPS
        .iter()
        .filter_map(|step| {
            mine.iter()
                .rev()
                .find(|e| {
                    e.step.as_deref() == Some(*step)
                        && matches!(
                            e.event.as_str(),
                            "StepSucceeded" | "StepFailed" | "RotationFailed"
                        )
                })
                .map(|e| {
                    json!({
                        "step": step,
                        "ok": e.event == "StepSucceeded",
                        "at": iso8601(e.at_ms),
                        "error": e.detail,
                    })
                })
        })
        .collect();
    let ended = mine
        .iter()
        .rev()
        .find(|e| matches!(e.event.as_str(), "RotationSucceeded" | "RotationAbandoned"));
    json!({
        "token": token,
        "started": mine.first().map(|e| iso8601(e.at_ms)),
        "outcome": ended.map(|e| if e.event == "RotationSucceeded" { "succeeded" } else { "abandoned" }),
        "ended": ended.map(|e| iso8601(e.at_ms)),
        "steps": steps,
    })
}

fn secret_detail(status: &RotationStatus) -> Value {
    let mut detail = secret_summary(
        &status.arn,
        &status.name,
        &status.rotation,
        status.events.last(),
    );
    let run = status.rotation.run.as_ref().map_or(Value::Null, |run| {
        json!({
            "token": run.token,
            "started": iso8601(run.started_ms),
            "attempts": run.attempts,
            "gave_up": run.gave_up,
            "last_error": run.last_error,
            "steps": run.steps.iter().map(|s| json!({
                "step": s.step,
                "ok": s.ok,
                "at": iso8601(s.at_ms),
                "error": s.error,
            })).collect::<Vec<_>>(),
        })
    });
    let last_run = if status.rotation.run.is_none() {
        last_run_from_events(&status.events)
    } else {
        Value::Null
    };
    if let Value::Object(fields) = &mut detail {
        fields.insert("run".into(), run);
        fields.insert("last_run".into(), last_run);
        fields.insert(
            "events".into(),
            Value::Array(status.events.iter().map(event_json).collect()),
        );
    }
    detail
}

/// The answer to `rotation-status [ARN]`: every secret with rotation settings (by ARN), or
/// one secret's state, runs and recent history.
pub async fn rotation_status(coffer: &Coffer, arn: Option<&str>) -> Value {
    match arn {
        Some(arn) => match coffer.rotation_status(arn).await {
            Ok(Some(status)) => json!({ "secret": secret_detail(&status) }),
            Ok(None) => secret_error(&CoreError::NotFound(String::new()), arn),
            Err(e) => secret_error(&e, arn),
        },
        None => match coffer.rotation_statuses().await {
            Ok(statuses) => {
                let mut secrets = Vec::with_capacity(statuses.len());
                for status in statuses {
                    // Only the history tells an abandoned run from a finished one.
                    let events = if status.rotation.run.is_none() {
                        match coffer.rotation_status(&status.arn).await {
                            Ok(Some(full)) => full.events,
                            Ok(None) => continue,
                            Err(e) => return error(e),
                        }
                    } else {
                        Vec::new()
                    };
                    secrets.push(secret_summary(
                        &status.arn,
                        &status.name,
                        &status.rotation,
                        events.last(),
                    ));
                }
                json!({ "secrets": secrets })
            }
            Err(e) => error(e),
        },
    }
}

/// The answer to `rotation-retry ARN`.
pub async fn rotation_retry(coffer: &Coffer, arn: &str) -> Value {
    match coffer.retry_rotation(arn).await {
        Ok(token) => json!({"arn": arn, "token": token}),
        Err(e) => secret_error(&e, arn),
    }
}

/// The answer to `rotation-cancel ARN`.
pub async fn rotation_cancel(coffer: &Coffer, arn: &str) -> Value {
    match coffer.cancel_rotation(arn).await {
        Ok(outcome) => json!({
            "arn": outcome.arn,
            "name": outcome.name,
            "abandoned_version": outcome.version_id,
        }),
        Err(e) => secret_error(&e, arn),
    }
}

/// A registered function as operators see it: never its signing secret.
fn function_json(f: &RotationFunctionRecord) -> Value {
    let mut out = json!({
        "arn": f.arn,
        "account": f.account_id,
        "created": iso8601(f.created_ms),
    });
    let details = match &f.kind {
        RotationFunctionKind::Builtin { engine, strategy } => json!({
            "kind": "builtin",
            "engine": engine,
            "strategy": strategy,
        }),
        RotationFunctionKind::Webhook { url, timeout_secs } => json!({
            "kind": "webhook",
            "url": url,
            "signing_secret_set": f.sealed_secret.is_some(),
            "timeout_secs": timeout_secs,
        }),
        RotationFunctionKind::Executable {
            program,
            args,
            timeout_secs,
        } => json!({
            "kind": "executable",
            "program": program,
            "args": args,
            "timeout_secs": timeout_secs,
        }),
    };
    if let (Value::Object(out), Value::Object(details)) = (&mut out, details) {
        out.extend(details);
    }
    out
}

/// Registers one function; whether it replaced one under the same ARN.
async fn register(
    coffer: &Coffer,
    function: RotationFunctionConfig,
) -> Result<(RotationFunctionRecord, bool), CoreError> {
    let replaced = coffer
        .rotation_functions(&function.account_id)
        .await
        .map(|existing| existing.iter().any(|f| f.arn == function.arn))
        .unwrap_or(false);
    let record = coffer
        .register_rotation_function(&function.account_id, &function.arn, function.spec)
        .await?;
    Ok((record, replaced))
}

/// The answer to `rotation-function-register JSON` (see [`RotationFunctionConfig`]; the
/// signing secret inline as `signing_secret`).
pub async fn rotation_function_register(coffer: &Coffer, request: &str) -> Value {
    if request.is_empty() {
        return error(
            "rotation-function-register needs the function as JSON on the same line, like {\"arn\":\"arn:aws:lambda:us-east-1:111111111111:function:NAME\",\"kind\":\"webhook\",\"url\":\"https://…\"}",
        );
    }
    let function = match RotationFunctionConfig::from_request(request) {
        Ok(function) => function,
        Err(e) => return error(e),
    };
    match register(coffer, function).await {
        Ok((record, replaced)) => json!({"function": function_json(&record), "replaced": replaced}),
        Err(e) => error(e),
    }
}

/// The answer to `rotation-function-list ACCOUNT`: the account's functions by ARN.
pub async fn rotation_function_list(coffer: &Coffer, account_id: &str) -> Value {
    match coffer.store().get_account(account_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(format!(
                "account {account_id} does not exist (`coffer account list` shows the accounts)"
            ));
        }
        Err(e) => return error(e),
    }
    match coffer.rotation_functions(account_id).await {
        Ok(mut functions) => {
            functions.sort_by(|a, b| a.arn.cmp(&b.arn));
            json!({"functions": functions.iter().map(function_json).collect::<Vec<_>>()})
        }
        Err(e) => error(e),
    }
}

/// The answer to `rotation-function-remove ARN`, with the secrets that still name it (their
/// rotations fail until a function is registered under the ARN again).
pub async fn rotation_function_remove(coffer: &Coffer, arn: &str) -> Value {
    match coffer.remove_rotation_function(arn).await {
        Ok(true) => {
            let used_by: Vec<String> = match coffer.rotation_statuses().await {
                Ok(statuses) => statuses
                    .into_iter()
                    .filter(|s| s.rotation.lambda_arn.as_deref() == Some(arn))
                    .map(|s| s.arn)
                    .collect(),
                Err(e) => return error(e),
            };
            json!({"arn": arn, "removed": true, "used_by": used_by})
        }
        Ok(false) => error(format!(
            "no rotation function is registered under {arn} (`coffer rotation function list --account ID` shows those that are)"
        )),
        Err(e) => error(e),
    }
}

/// Registers the functions of `coffer server --rotation-functions` at start, before the
/// server serves; the first that fails stops the start.
pub(crate) async fn register_rotation_functions(
    coffer: &Coffer,
    functions: &[RotationFunctionConfig],
) -> Result<(), ServerError> {
    for function in functions {
        let arn = function.arn.clone();
        match register(coffer, function.clone()).await {
            Ok((_, replaced)) => {
                tracing::info!(function = %arn, replaced, "rotation function registered");
            }
            Err(e) => {
                return Err(ServerError::RotationFunction {
                    arn,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

async fn rotate_root_key(
    coffer: &Arc<Coffer>,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> serde_json::Value {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, usize)>();
    let worker = {
        let coffer = coffer.clone();
        tokio::spawn(async move {
            coffer
                .rotate_root_key(move |done, total| {
                    let _ = tx.send((done, total));
                })
                .await
        })
    };
    while let Some((done, total)) = rx.recv().await {
        let line = format!("{}\n", serde_json::json!({"done": done, "total": total}));
        // A client that went away does not stop the rotation.
        let _ = write.write_all(line.as_bytes()).await;
    }
    match worker.await {
        Ok(Ok(r)) => {
            serde_json::json!({"generation": r.generation, "resealed": r.resealed, "total": r.total})
        }
        Ok(Err(e)) => serde_json::json!({"error": e.to_string()}),
        Err(e) => serde_json::json!({"error": format!("the rotation task failed: {e}")}),
    }
}

/// Continues a rotation that a previous run of the server did not finish.
pub(crate) async fn resume_rotation(coffer: Arc<Coffer>) {
    if !coffer.root_rotation_in_progress() {
        return;
    }
    tracing::info!("resuming an unfinished root key rotation");
    match coffer.rotate_root_key(|_, _| {}).await {
        Ok(r) => tracing::info!(
            generation = r.generation,
            resealed = r.resealed,
            "root key rotation finished"
        ),
        Err(e) => {
            tracing::error!(error = %e, "root key rotation failed; run `coffer root-key rotate` to retry")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_store::StepRecord;

    fn step(step: &str, ok: bool) -> StepRecord {
        StepRecord {
            step: step.into(),
            ok,
            at_ms: 0,
            error: (!ok).then(|| "connection refused".into()),
        }
    }

    fn event(seq: i64, name: &str, token: &str, step: Option<&str>) -> RotationEventRecord {
        RotationEventRecord {
            seq,
            arn: "arn".into(),
            account_id: "111111111111".into(),
            at_ms: seq * 1000,
            event: name.into(),
            token: Some(token.into()),
            step: step.map(str::to_owned),
            detail: None,
        }
    }

    #[test]
    fn states_read_like_sentences() {
        let mut rotation = RotationRecord {
            enabled: true,
            due_ms: Some(60_000),
            ..RotationRecord::default()
        };
        assert_eq!(state(&rotation, None)["summary"], "idle");
        let abandoned = event(1, "RotationAbandoned", "v1", None);
        assert_eq!(state(&rotation, Some(&abandoned))["state"], "abandoned");

        rotation.run = Some(RotationRun {
            token: "v1".into(),
            steps: vec![step("createSecret", true)],
            ..RotationRun::default()
        });
        assert_eq!(state(&rotation, None)["summary"], "running step setSecret");
        if let Some(run) = &mut rotation.run {
            run.steps.push(step("setSecret", false));
            run.attempts = 2;
        }
        assert_eq!(
            state(&rotation, None)["summary"],
            "retrying setSecret after 2 failures (next attempt at 1970-01-01T00:01:00Z)"
        );
        if let Some(run) = &mut rotation.run {
            run.attempts = coffer_core::rotation::MAX_ATTEMPTS;
            run.gave_up = true;
        }
        let failed = state(&rotation, Some(&abandoned));
        assert_eq!(failed["state"], "failed");
        assert_eq!(
            failed["summary"],
            "failed — gave up after 5 attempts at setSecret"
        );
    }

    #[test]
    fn the_last_run_is_rebuilt_from_the_history() {
        assert_eq!(last_run_from_events(&[]), Value::Null);
        let events = [
            event(1, "RotationStarted", "old", None),
            event(2, "RotationSucceeded", "old", None),
            event(3, "RotationStarted", "v2", None),
            event(4, "StepSucceeded", "v2", Some("createSecret")),
            event(5, "StepFailed", "v2", Some("setSecret")),
            event(6, "StepSucceeded", "v2", Some("setSecret")),
            event(7, "StepSucceeded", "v2", Some("testSecret")),
            event(8, "StepSucceeded", "v2", Some("finishSecret")),
            event(9, "RotationSucceeded", "v2", None),
        ];
        let run = last_run_from_events(&events);
        assert_eq!(run["token"], "v2");
        assert_eq!(run["outcome"], "succeeded");
        assert_eq!(run["started"], "1970-01-01T00:00:03Z");
        assert_eq!(run["ended"], "1970-01-01T00:00:09Z");
        let steps = run["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 4);
        assert!(steps.iter().all(|s| s["ok"] == true), "{run}");
    }

    #[test]
    fn functions_never_show_their_signing_secret() {
        let record = RotationFunctionRecord {
            arn: "arn:aws:lambda:us-east-1:111111111111:function:hook".into(),
            account_id: "111111111111".into(),
            kind: RotationFunctionKind::Webhook {
                url: "https://h/r".into(),
                timeout_secs: 30,
            },
            sealed_secret: Some(b"sealed-bytes".to_vec()),
            created_ms: 0,
        };
        let shown = function_json(&record);
        assert_eq!(shown["signing_secret_set"], true);
        assert_eq!(shown["kind"], "webhook");
        assert!(!shown.to_string().contains("sealed"), "{shown}");
    }
}
