//! Secret rotation: `RotateSecret` and `CancelRotateSecret`, the registry of rotation
//! functions (coffer's stand-in for Lambda), and the engine that runs AWS's four steps
//! createSecret → setSecret → testSecret → finishSecret with AWSPENDING semantics.
//!
//! A run is durable: its token, attempts and each step's outcome live in the secret's own
//! record (changed with compare-and-swap, like every other change of the secret), and the
//! secret's `rotation_due_ms` tells the scheduler when to look at it next. So a restarted
//! server continues a run from its first unfinished step, and a run is never duplicated: the
//! scheduler holds a store lease (one node of several), and within a process a secret is
//! rotated by one task at a time.
//!
//! This module owns the rotation rules. It must never store a secret value outside a version
//! (pending values are versions labelled AWSPENDING), never move AWSCURRENT before testSecret
//! succeeded, and never hand a rotation function credentials for more than the secret it
//! rotates.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use coffer_rotation::{db, invoke};
use coffer_schedule::Schedule;
use coffer_store::{
    RotationEventRecord, RotationFunctionKind, RotationFunctionRecord, RotationRecord, RotationRun,
    SecretRecord, StepRecord, Store,
};

use crate::stages::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::{
    Caller, Coffer, CoreError, GetSecretValueInput, PrincipalType, SecretBytes, SecretValue,
    Session, ids,
};

/// Failed attempts before a run gives up and waits for its next window or a manual retry.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: i64 = 30_000;
const MAX_BACKOFF_MS: i64 = 30 * 60_000;
/// How long a webhook or executable step may take by default.
pub const DEFAULT_FUNCTION_TIMEOUT_SECS: u64 = 30;
/// Rotation tasks run at once by one node.
const CONCURRENT_RUNS: usize = 16;

/// How long the scheduler's lease lasts without renewal.
const SCHEDULER_LEASE_MS: i64 = 30_000;

/// The four steps, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// `RotateSecret`'s request.
#[derive(Debug, Default, Clone)]
pub struct RotateSecretInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<coffer_schedule::RotationRules>,
    /// Defaults to true.
    pub rotate_immediately: Option<bool>,
}

/// `RotateSecret`'s and `CancelRotateSecret`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationOutcome {
    pub arn: String,
    pub name: String,
    pub version_id: Option<String>,
}

/// What `coffer rotation function register` asks for.
#[derive(Debug, Clone)]
pub enum FunctionSpec {
    Builtin {
        engine: db::Engine,
        strategy: db::Strategy,
    },
    Webhook {
        url: String,
        signing_secret: Option<SecretBytes>,
        timeout_secs: u64,
    },
    Executable {
        program: String,
        args: Vec<String>,
        timeout_secs: u64,
    },
}

/// A secret's rotation as `coffer rotation status` shows it.
#[derive(Debug, Clone)]
pub struct RotationStatus {
    pub arn: String,
    pub name: String,
    pub rotation: RotationRecord,
    pub events: Vec<RotationEventRecord>,
}

/// The engine's state in one process.
pub(crate) struct RotationRuntime {
    /// Secrets being rotated by this process now.
    running: Mutex<HashSet<String>>,
    /// Wakes the scheduler when a rotation was asked for.
    pub(crate) wake: tokio::sync::Notify,
    /// Where rotation functions call back (`AWS_ENDPOINT_URL`), set by the server.
    endpoint: Mutex<Option<String>>,
    /// Runs of this process at once, across passes.
    slots: Arc<tokio::sync::Semaphore>,
    /// Set when the scheduler's lease was lost: runs stop before their next step.
    lease_lost: std::sync::atomic::AtomicBool,
}

impl Default for RotationRuntime {
    fn default() -> Self {
        RotationRuntime {
            running: Mutex::default(),
            wake: tokio::sync::Notify::default(),
            endpoint: Mutex::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RUNS)),
            lease_lost: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// Removes the secret from the running set when its task ends, however it ends — also when
/// the task is dropped before it ever ran.
struct RunningGuard<S: Store> {
    coffer: Arc<Coffer<S>>,
    arn: String,
}

impl<S: Store> Drop for RunningGuard<S> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.coffer.rotation.running.lock() {
            set.remove(&self.arn);
        }
    }
}

fn lambda_arn_ok(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", "aws", "lambda", region, account, "function", name]
            if !region.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    )
}

fn schedule_error(e: &coffer_schedule::ScheduleError) -> CoreError {
    match e.code() {
        coffer_schedule::ErrorCode::Validation => CoreError::Validation(e.message().to_string()),
        coffer_schedule::ErrorCode::InvalidParameter => {
            CoreError::InvalidParameter(e.message().to_string())
        }
    }
}

fn stored_rules(r: &RotationRecord) -> Option<coffer_schedule::RotationRules> {
    (r.automatically_after_days.is_some() || r.schedule_expression.is_some()).then(|| {
        coffer_schedule::RotationRules {
            automatically_after_days: r.automatically_after_days,
            schedule_expression: r.schedule_expression.clone(),
            duration: r.duration.clone(),
        }
    })
}

/// A seed that spreads secrets over their windows, stable for one secret.
fn spread_seed(arn: &str) -> u64 {
    let digest = coffer_crypto::sha256(arn.as_bytes());
    u64::from_le_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ])
}

/// The next scheduled rotation of `r` after `now`: (window start, fire time).
fn next_scheduled(arn: &str, r: &RotationRecord, now: i64) -> Option<(i64, i64)> {
    let rules = stored_rules(r)?;
    let schedule = Schedule::parse(&rules).ok()?;
    let window = schedule.next_window(r.last_rotated_ms, now);
    let fire = schedule.fire_at(&window, spread_seed(arn));
    Some((window.start_ms, fire.max(now)))
}

fn backoff(attempts: u32) -> i64 {
    let shift = attempts.saturating_sub(1).min(16);
    FIRST_BACKOFF_MS
        .saturating_mul(1i64 << shift)
        .min(MAX_BACKOFF_MS)
}

/// A version's id holding `stage`.
fn holder(rec: &SecretRecord, stage: &str) -> Option<String> {
    crate::stages::holder(&rec.versions, stage).map(|v| v.version_id.clone())
}

/// Whether a rotation is unfinished: some version is AWSPENDING without being AWSCURRENT.
fn pending_unfinished(rec: &SecretRecord) -> Option<String> {
    rec.versions
        .iter()
        .find(|v| {
            v.stages.iter().any(|s| s == AWSPENDING) && !v.stages.iter().any(|s| s == AWSCURRENT)
        })
        .map(|v| v.version_id.clone())
}

/// Starts a run in `next`: the run record and, as AWS does before it calls createSecret, a
/// version `token` labelled AWSPENDING with no value yet (unless that version exists).
fn begin_run(
    next: &mut SecretRecord,
    rotation: &mut RotationRecord,
    token: &str,
    now: i64,
) -> Result<(), CoreError> {
    rotation.run = Some(RotationRun {
        token: token.to_string(),
        started_ms: now,
        ..RotationRun::default()
    });
    if !next.versions.iter().any(|v| v.version_id == token) {
        let placeholder = coffer_store::VersionRecord {
            version_id: token.to_string(),
            stages: vec![],
            created_ms: now,
            last_accessed_ms: None,
            kind: coffer_store::ValueKind::String,
            empty: true,
        };
        crate::stages::add_version(&mut next.versions, placeholder, &[AWSPENDING.to_string()])?;
    }
    Ok(())
}

fn value_bytes(v: SecretValue) -> SecretBytes {
    match v {
        SecretValue::String(b) | SecretValue::Binary(b) => b,
    }
}

impl<S: Store> Coffer<S> {
    /// Where rotation functions call back into this server.
    pub fn set_rotation_endpoint(&self, url: &str) {
        if let Ok(mut slot) = self.rotation.endpoint.lock() {
            *slot = Some(url.to_string());
        }
    }

    /// Takes or renews the scheduler's lease for `holder` (a node id): true while this node is
    /// the one that runs rotations. Several nodes sharing one store elect one this way; the
    /// lease lapses 30 seconds after its holder stops renewing it.
    pub async fn hold_scheduler_lease(&self, holder: &str) -> Result<bool, CoreError> {
        let held = self
            .store
            .try_lease(
                "rotation-scheduler",
                holder,
                self.clock.now_millis(),
                SCHEDULER_LEASE_MS,
            )
            .await?;
        self.rotation
            .lease_lost
            .store(!held, std::sync::atomic::Ordering::Release);
        Ok(held)
    }

    /// Resolves when a rotation was asked for (the scheduler's wake-up).
    pub async fn rotation_requested(&self) {
        self.rotation.wake.notified().await;
    }

    // ---------- rotation functions ----------

    /// Registers (or replaces) the rotation function `arn` of `account_id`.
    pub async fn register_rotation_function(
        &self,
        account_id: &str,
        arn: &str,
        spec: FunctionSpec,
    ) -> Result<RotationFunctionRecord, CoreError> {
        if !lambda_arn_ok(arn) {
            return Err(CoreError::InvalidParameter(format!(
                "{arn} is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME)"
            )));
        }
        if arn.split(':').nth(4) != Some(account_id) {
            return Err(CoreError::InvalidParameter(format!(
                "{arn} names another account than {account_id}"
            )));
        }
        if self.store.get_account(account_id).await?.is_none() {
            return Err(CoreError::NotFound(format!(
                "account {account_id} does not exist"
            )));
        }
        let (kind, sealed_secret) = match spec {
            FunctionSpec::Builtin { engine, strategy } => (
                RotationFunctionKind::Builtin {
                    engine: engine_name(engine).to_string(),
                    strategy: strategy_name(strategy).to_string(),
                },
                None,
            ),
            FunctionSpec::Webhook {
                url,
                signing_secret,
                timeout_secs,
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(CoreError::InvalidParameter(format!(
                        "the webhook URL {url:?} must start with http:// or https://"
                    )));
                }
                let sealed = match signing_secret {
                    Some(s) => Some(self.seal_function_secret(account_id, arn, &s).await?),
                    None => None,
                };
                (RotationFunctionKind::Webhook { url, timeout_secs }, sealed)
            }
            FunctionSpec::Executable {
                program,
                args,
                timeout_secs,
            } => {
                if !std::path::Path::new(&program).is_absolute() {
                    return Err(CoreError::InvalidParameter(format!(
                        "the executable {program:?} must be an absolute path"
                    )));
                }
                (
                    RotationFunctionKind::Executable {
                        program,
                        args,
                        timeout_secs,
                    },
                    None,
                )
            }
        };
        let record = RotationFunctionRecord {
            arn: arn.to_string(),
            account_id: account_id.to_string(),
            kind,
            sealed_secret,
            created_ms: self.clock.now_millis(),
        };
        self.store.put_rotation_function(record.clone()).await?;
        Ok(record)
    }

    pub async fn rotation_functions(
        &self,
        account_id: &str,
    ) -> Result<Vec<RotationFunctionRecord>, CoreError> {
        Ok(self.store.list_rotation_functions(account_id).await?)
    }

    pub async fn remove_rotation_function(&self, arn: &str) -> Result<bool, CoreError> {
        Ok(self.store.delete_rotation_function(arn).await?)
    }

    fn function_secret_aad(account_id: &str, arn: &str) -> Vec<u8> {
        [
            b"coffer/rotation-function-secret/v1".as_slice(),
            account_id.as_bytes(),
            arn.as_bytes(),
        ]
        .join(&0u8)
    }

    async fn seal_function_secret(
        &self,
        account_id: &str,
        arn: &str,
        secret: &SecretBytes,
    ) -> Result<Vec<u8>, CoreError> {
        let key = self.account_key(account_id).await?;
        Ok(key.seal(
            "rotation-function",
            secret.expose(),
            &Self::function_secret_aad(account_id, arn),
        )?)
    }

    async fn open_function_secret(
        &self,
        f: &RotationFunctionRecord,
    ) -> Result<Option<SecretBytes>, CoreError> {
        let Some(sealed) = &f.sealed_secret else {
            return Ok(None);
        };
        let key = self.account_key(&f.account_id).await?;
        Ok(Some(key.open(
            sealed,
            &Self::function_secret_aad(&f.account_id, &f.arn),
        )?))
    }

    // ---------- the API ----------

    /// `RotateSecret`: configures rotation and, unless `RotateImmediately` is false, starts a
    /// rotation now (the scheduler runs it; the answer carries the new version's id).
    pub async fn rotate_secret(
        &self,
        caller: &Caller,
        input: RotateSecretInput,
    ) -> Result<RotationOutcome, CoreError> {
        let token = crate::secrets::validate_rotation_token(input.client_request_token.as_deref())?;
        if let Some(arn) = &input.rotation_lambda_arn
            && arn.chars().count() > 2048
        {
            return Err(CoreError::Validation(
                "1 validation error detected: Value at 'rotationLambdaARN' failed to satisfy constraint: Member must have length less than or equal to 2048".into(),
            ));
        }
        let schedule = match &input.rotation_rules {
            Some(rules) => Some(Schedule::parse(rules).map_err(|e| schedule_error(&e))?),
            None => None,
        };
        let immediately = input.rotate_immediately.unwrap_or(true);
        for _ in 0..crate::secrets::WRITE_ATTEMPTS {
            let rec = self
                .require_live_rotatable(caller, &input.secret_id, "secretsmanager:RotateSecret")
                .await?;
            let mut rotation = rec.rotation.clone().unwrap_or_default();
            let lambda = input
                .rotation_lambda_arn
                .clone()
                .or_else(|| rotation.lambda_arn.clone())
                .ok_or_else(|| {
                    CoreError::InvalidRequest(
                        "No Lambda rotation function ARN is associated with this secret.".into(),
                    )
                })?;
            // A rotation function acts with the secret's account's power over the secret, so it
            // must be that account's, in the secret's region, and the caller must be allowed to
            // invoke it ("you also need lambda:InvokeFunction permission on the rotation
            // function", RotateSecret API reference).
            let mut function_parts = lambda.split(':');
            let function_region = function_parts.nth(3);
            let function_account = function_parts.next();
            if function_account != Some(rec.account_id.as_str())
                || function_region != Some(rec.region.as_str())
            {
                return Err(CoreError::InvalidRequest(format!(
                    "The rotation function {lambda} must be in the secret's account {} and region {}.",
                    rec.account_id, rec.region
                )));
            }
            self.authorize(caller, "lambda:InvokeFunction", &lambda)
                .await?;
            let function = self.store.get_rotation_function(&lambda).await?;
            if function.is_none() {
                // AWS's words when it cannot invoke the function; coffer's registry is its
                // Lambda.
                return Err(CoreError::AccessDenied(format!(
                    "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com. (No rotation function is registered under {lambda}; register one with `coffer rotation function register`.)"
                )));
            }
            if let Some(RotationFunctionKind::Builtin { engine, strategy }) =
                function.as_ref().map(|f| &f.kind)
            {
                let (endpoint, master) = self.pins(caller, &rec, engine, strategy).await?;
                rotation.pinned_endpoint = Some(endpoint);
                rotation.pinned_master_arn = master;
            }
            let now = self.clock.now_millis();
            rotation.enabled = true;
            rotation.lambda_arn = Some(lambda);
            if let Some(s) = &schedule {
                // What was given, so it parses again; DescribeSecret shows `rules()`.
                let rules = s.given_rules().clone();
                rotation.automatically_after_days = rules.automatically_after_days;
                rotation.schedule_expression = rules.schedule_expression;
                rotation.duration = rules.duration;
            }
            let unfinished = rotation.run.is_some() || pending_unfinished(&rec).is_some();
            let mut started = None;
            if unfinished {
                // Continue what is there rather than start a second rotation.
                if let Some(run) = &mut rotation.run {
                    run.gave_up = false;
                    run.attempts = 0;
                } else if let Some(pending) = pending_unfinished(&rec) {
                    rotation.run = Some(RotationRun {
                        token: pending,
                        started_ms: now,
                        ..RotationRun::default()
                    });
                }
                rotation.due_ms = Some(now);
            } else if immediately {
                if let Some(t) = &token
                    && rec.versions.iter().any(|v| &v.version_id == t)
                {
                    return Err(CoreError::InvalidRequest(format!(
                        "ClientRequestToken {t} names an existing version of this secret; a rotation makes a new version, so give a new token."
                    )));
                }
                let token = match &token {
                    Some(t) => t.clone(),
                    None => ids::uuid_v4()?,
                };
                rotation.due_ms = Some(now);
                started = Some(token);
            } else {
                rotation.due_ms = next_scheduled(&rec.arn, &rotation, now).map(|(_, fire)| fire);
            }
            rotation.next_rotation_ms =
                next_scheduled(&rec.arn, &rotation, now).map(|(start, _)| start);
            let mut next = rec.clone();
            if let Some(token) = &started {
                begin_run(&mut next, &mut rotation, token, now)?;
            }
            next.rotation = Some(rotation.clone());
            if !self.commit_rotation(&rec, next).await? {
                continue;
            }
            self.rotation.wake.notify_one();
            if unfinished {
                return Err(CoreError::InvalidRequest(
                    "A previous rotation isn't complete. That rotation will be continued.".into(),
                ));
            }
            if let Some(token) = &started {
                self.rotation_event(&rec, "RotationStarted", Some(token), None, None)
                    .await;
            }
            return Ok(RotationOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: started,
            });
        }
        Err(CoreError::Internal(
            "the secret is being changed by many requests at once; retry".into(),
        ))
    }

    /// `CancelRotateSecret`: turns automatic rotation off and abandons a run in progress (its
    /// AWSPENDING version stays, as in AWS: "If you cancel a rotation in progress, it can leave
    /// the VersionStage labels in an unexpected state").
    pub async fn cancel_rotate_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<RotationOutcome, CoreError> {
        for _ in 0..crate::secrets::WRITE_ATTEMPTS {
            let rec = self
                .require_live_rotatable(caller, secret_id, "secretsmanager:CancelRotateSecret")
                .await?;
            let mut rotation = rec.rotation.clone().unwrap_or_default();
            let abandoned = rotation.run.take();
            rotation.enabled = false;
            rotation.due_ms = None;
            rotation.next_rotation_ms = None;
            let mut next = rec.clone();
            next.rotation = Some(rotation);
            if !self.commit_rotation(&rec, next).await? {
                continue;
            }
            if let Some(run) = &abandoned {
                self.rotation_event(
                    &rec,
                    "RotationAbandoned",
                    Some(&run.token),
                    None,
                    Some("cancelled by CancelRotateSecret"),
                )
                .await;
            }
            return Ok(RotationOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: abandoned.map(|r| r.token),
            });
        }
        Err(CoreError::Internal(
            "the secret is being changed by many requests at once; retry".into(),
        ))
    }

    async fn require_live_rotatable(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
    ) -> Result<SecretRecord, CoreError> {
        crate::secrets::validate_secret_id(secret_id)?;
        self.require_live_secret(caller, secret_id, action, Vec::new())
            .await
    }

    /// Writes a secret whose only change is its rotation record (or, at the end of a run,
    /// its rotation record and AWSPENDING label).
    async fn commit_rotation(
        &self,
        current: &SecretRecord,
        next: SecretRecord,
    ) -> Result<bool, CoreError> {
        self.commit(current, next, coffer_store::SecretWrite::default())
            .await
    }

    async fn rotation_event(
        &self,
        rec: &SecretRecord,
        event: &str,
        token: Option<&str>,
        step: Option<&str>,
        detail: Option<&str>,
    ) {
        let record = RotationEventRecord {
            seq: 0,
            arn: rec.arn.clone(),
            account_id: rec.account_id.clone(),
            at_ms: self.clock.now_millis(),
            event: event.to_string(),
            token: token.map(str::to_string),
            step: step.map(str::to_string),
            detail: detail.map(str::to_string),
        };
        if let Err(e) = self.store.append_rotation_event(record).await {
            tracing::warn!(secret = %rec.arn, event, error = %e, "could not record a rotation event");
        }
        // The four events Secrets Manager itself writes to CloudTrail. The step's error text
        // stays in the rotation history (`coffer rotation status`): a function's output could
        // quote the credentials it was making.
        if matches!(
            event,
            "RotationStarted" | "RotationSucceeded" | "RotationFailed" | "RotationAbandoned"
        ) {
            let mut details = serde_json::Map::new();
            details.insert("secretId".into(), rec.arn.clone().into());
            if let Some(token) = token {
                details.insert("versionId".into(), token.into());
            }
            if let Some(step) = step {
                details.insert("step".into(), step.into());
            }
            self.record_service_event(crate::audit::ServiceEvent {
                source: crate::audit::EventSource::SecretsManager,
                event_name: event,
                account_id: &rec.account_id,
                region: &rec.region,
                resource: crate::audit::Resource::secret(rec.arn.clone()),
                details: details.into(),
            })
            .await;
        }
    }

    // ---------- operator views ----------

    /// The rotation state and recent history of a secret (by full ARN) for operators.
    pub async fn rotation_status(&self, arn: &str) -> Result<Option<RotationStatus>, CoreError> {
        let Some(rec) = self.store.get_secret_by_arn(arn).await? else {
            return Ok(None);
        };
        let events = self.store.rotation_events(&rec.arn, 50).await?;
        Ok(Some(RotationStatus {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            rotation: rec.rotation.clone().unwrap_or_default(),
            events,
        }))
    }

    /// Every secret of every account with rotation configured or a run unfinished.
    pub async fn rotation_statuses(&self) -> Result<Vec<RotationStatus>, CoreError> {
        let mut out = Vec::new();
        for arn in self.store.rotating_secrets().await? {
            if let Some(rec) = self.store.get_secret_by_arn(&arn).await?
                && let Some(rotation) = &rec.rotation
            {
                out.push(RotationStatus {
                    arn: rec.arn.clone(),
                    name: rec.name.clone(),
                    rotation: rotation.clone(),
                    events: Vec::new(),
                });
            }
        }
        Ok(out)
    }

    /// `coffer rotation cancel`: as `CancelRotateSecret` by the secret's account.
    pub async fn cancel_rotation(&self, arn: &str) -> Result<RotationOutcome, CoreError> {
        let rec = self
            .store
            .get_secret_by_arn(arn)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("no secret {arn}")))?;
        self.cancel_rotate_secret(&Self::service_caller(&rec), arn)
            .await
    }

    /// Makes a failed or waiting run of `arn` due now (`coffer rotation retry`); starts a new
    /// run when none is unfinished.
    pub async fn retry_rotation(&self, arn: &str) -> Result<String, CoreError> {
        for _ in 0..crate::secrets::WRITE_ATTEMPTS {
            let rec = self
                .store
                .get_secret_by_arn(arn)
                .await?
                .ok_or_else(|| CoreError::NotFound(format!("no secret {arn}")))?;
            let mut rotation = rec.rotation.clone().ok_or_else(|| {
                CoreError::InvalidRequest(format!(
                    "{arn} has no rotation configured; call RotateSecret first"
                ))
            })?;
            if rotation.lambda_arn.is_none() {
                return Err(CoreError::InvalidRequest(
                    "No Lambda rotation function ARN is associated with this secret.".into(),
                ));
            }
            let now = self.clock.now_millis();
            let token = match &mut rotation.run {
                Some(run) => {
                    run.gave_up = false;
                    run.attempts = 0;
                    run.token.clone()
                }
                None => pending_unfinished(&rec).map_or_else(ids::uuid_v4, Ok)?,
            };
            rotation.due_ms = Some(now);
            let mut next = rec.clone();
            if rotation.run.is_none() {
                begin_run(&mut next, &mut rotation, &token, now)?;
            }
            next.rotation = Some(rotation);
            if self.commit_rotation(&rec, next).await? {
                self.rotation_event(&rec, "RotationRetried", Some(&token), None, None)
                    .await;
                self.rotation.wake.notify_one();
                return Ok(token);
            }
        }
        Err(CoreError::Internal("too much contention; retry".into()))
    }

    // ---------- the engine ----------

    /// Starts every rotation that is due by the service's clock and not already running here
    /// (at most a few run at once) and waits for the ones it started; returns how many it
    /// started. The scheduler calls this while it holds the lease.
    pub async fn run_due_rotations(self: &Arc<Self>) -> Result<usize, CoreError> {
        self.run_due(false).await
    }

    /// As [`Coffer::run_due_rotations`], and also waits (up to ten minutes) for due runs that
    /// another pass had started, so the caller sees every due rotation settled. For the
    /// dev-mode `/_coffer/tasks/run` route and tests.
    pub async fn settle_due_rotations(self: &Arc<Self>) -> Result<usize, CoreError> {
        self.run_due(true).await
    }

    async fn run_due(self: &Arc<Self>, settle: bool) -> Result<usize, CoreError> {
        let due = self
            .store
            .secrets_due_for_rotation(self.clock.now_millis())
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        let mut others = Vec::new();
        for arn in due {
            let claimed = self
                .rotation
                .running
                .lock()
                .is_ok_and(|mut set| set.insert(arn.clone()));
            if !claimed {
                others.push(arn);
                continue;
            }
            // Made before the task, so that dropping a task that never ran still releases it.
            let guard = RunningGuard {
                coffer: Arc::clone(self),
                arn,
            };
            let slots = Arc::clone(&self.rotation.slots);
            tasks.spawn(async move {
                let _permit = slots.acquire_owned().await;
                if let Err(e) = guard.coffer.rotate_one(&guard.arn).await {
                    tracing::warn!(secret = %guard.arn, error = %e, "rotation could not proceed");
                }
                drop(guard);
            });
        }
        let started = tasks.len();
        while tasks.join_next().await.is_some() {}
        if settle {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
            while std::time::Instant::now() < deadline {
                let busy = self
                    .rotation
                    .running
                    .lock()
                    .is_ok_and(|set| others.iter().any(|a| set.contains(a)));
                if !busy {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
        Ok(started)
    }

    /// One pass over one due secret: starts a scheduled run if none is unfinished, then runs
    /// its steps from the first unfinished one.
    async fn rotate_one(&self, arn: &str) -> Result<(), CoreError> {
        let Some(rec) = self.store.get_secret_by_arn(arn).await? else {
            return Ok(());
        };
        let Some(mut rotation) = rec.rotation.clone() else {
            return Ok(());
        };
        let now = self.clock.now_millis();
        if rotation.due_ms.is_none_or(|d| d > now) || rec.deleted_ms.is_some() {
            return Ok(());
        }
        if rotation.run.is_none() {
            if !rotation.enabled {
                rotation.due_ms = None;
                let mut next = rec.clone();
                next.rotation = Some(rotation);
                self.commit_rotation(&rec, next).await?;
                return Ok(());
            }
            let token = pending_unfinished(&rec).map_or_else(ids::uuid_v4, Ok)?;
            let mut next = rec.clone();
            begin_run(&mut next, &mut rotation, &token, now)?;
            next.rotation = Some(rotation);
            if !self.commit_rotation(&rec, next).await? {
                return Ok(());
            }
            self.rotation_event(
                &rec,
                "RotationStarted",
                Some(&token),
                None,
                Some("scheduled"),
            )
            .await;
        } else if let Some(run) = rotation.run.as_mut().filter(|r| r.gave_up) {
            // A run that gave up is tried again in its next window, with fresh attempts.
            run.gave_up = false;
            run.attempts = 0;
            let token = run.token.clone();
            let mut next = rec.clone();
            next.rotation = Some(rotation);
            if !self.commit_rotation(&rec, next).await? {
                return Ok(());
            }
            self.rotation_event(
                &rec,
                "RotationRetried",
                Some(&token),
                None,
                Some("next window"),
            )
            .await;
        }
        self.run_steps(arn).await
    }

    async fn run_steps(&self, arn: &str) -> Result<(), CoreError> {
        loop {
            // Another node took over the scheduler: it continues this run.
            if self
                .rotation
                .lease_lost
                .load(std::sync::atomic::Ordering::Acquire)
            {
                return Ok(());
            }
            let Some(rec) = self.store.get_secret_by_arn(arn).await? else {
                return Ok(());
            };
            let Some(run) = rec.rotation.as_ref().and_then(|r| r.run.clone()) else {
                return Ok(());
            };
            let Some(step) = STEPS
                .iter()
                .find(|s| !run.steps.iter().any(|r| r.step == **s && r.ok))
            else {
                return self.finish_run(arn).await;
            };
            let outcome = self.perform_step(&rec, &run.token, step).await;
            let done = self.record_step(arn, &run.token, step, outcome).await?;
            if !done {
                return Ok(());
            }
        }
    }

    /// Records a step's outcome in the run; true when the run may go on to the next step.
    async fn record_step(
        &self,
        arn: &str,
        token: &str,
        step: &str,
        outcome: Result<(), String>,
    ) -> Result<bool, CoreError> {
        for _ in 0..crate::secrets::WRITE_ATTEMPTS {
            let Some(rec) = self.store.get_secret_by_arn(arn).await? else {
                return Ok(false);
            };
            let Some(mut rotation) = rec.rotation.clone() else {
                return Ok(false);
            };
            let Some(run) = rotation.run.as_mut().filter(|r| r.token == token) else {
                // Cancelled meanwhile.
                return Ok(false);
            };
            let now = self.clock.now_millis();
            run.steps.retain(|s| s.step != step);
            run.steps.push(StepRecord {
                step: step.to_string(),
                ok: outcome.is_ok(),
                at_ms: now,
                error: outcome.as_ref().err().cloned(),
            });
            run.steps
                .sort_by_key(|s| STEPS.iter().position(|x| *x == s.step));
            let mut gave_up = false;
            if let Err(e) = &outcome {
                run.attempts += 1;
                run.last_error = Some(format!("{step} failed: {e}"));
                if run.attempts >= MAX_ATTEMPTS {
                    run.gave_up = true;
                    gave_up = true;
                }
                let attempts = run.attempts;
                rotation.due_ms = if gave_up {
                    next_scheduled(&rec.arn, &rotation, now).map(|(_, fire)| fire)
                } else {
                    Some(now + backoff(attempts))
                };
            }
            let mut next = rec.clone();
            next.rotation = Some(rotation);
            if !self.commit_rotation(&rec, next).await? {
                continue;
            }
            match &outcome {
                Ok(()) => {
                    self.rotation_event(&rec, "StepSucceeded", Some(token), Some(step), None)
                        .await;
                }
                Err(e) => {
                    let event = if gave_up {
                        "RotationFailed"
                    } else {
                        "StepFailed"
                    };
                    self.rotation_event(&rec, event, Some(token), Some(step), Some(e))
                        .await;
                }
            }
            return Ok(outcome.is_ok());
        }
        Err(CoreError::Internal("too much contention; retry".into()))
    }

    /// After finishSecret: AWSCURRENT must be on the run's version. Clears AWSPENDING from
    /// it, records the rotation and schedules the next one.
    async fn finish_run(&self, arn: &str) -> Result<(), CoreError> {
        for _ in 0..crate::secrets::WRITE_ATTEMPTS {
            let Some(rec) = self.store.get_secret_by_arn(arn).await? else {
                return Ok(());
            };
            let Some(mut rotation) = rec.rotation.clone() else {
                return Ok(());
            };
            let Some(run) = rotation.run.take() else {
                return Ok(());
            };
            let made_version = rec
                .versions
                .iter()
                .any(|v| v.version_id == run.token && !v.empty);
            let current_is_empty =
                crate::stages::holder(&rec.versions, AWSCURRENT).is_none_or(|v| v.empty);
            if current_is_empty {
                return self
                    .record_step(
                        arn,
                        &run.token,
                        "finishSecret",
                        Err("AWSCURRENT is not on a version with a value".into()),
                    )
                    .await
                    .map(|_| ());
            }
            // A function that made a version must leave AWSCURRENT on it; one that made none
            // (a function that rotates something outside the secret's value) has nothing to
            // promote, and its run is over.
            if made_version && holder(&rec, AWSCURRENT).as_deref() != Some(run.token.as_str()) {
                // The function reported success without moving AWSCURRENT: finishSecret is
                // not done, and is retried.
                let message = format!(
                    "the rotation function reported success but AWSCURRENT is not on version {}",
                    run.token
                );
                return self
                    .record_step(arn, &run.token, "finishSecret", Err(message))
                    .await
                    .map(|_| ());
            }
            let now = self.clock.now_millis();
            let mut next = rec.clone();
            for v in &mut next.versions {
                if v.version_id == run.token {
                    v.stages.retain(|s| s != AWSPENDING);
                }
            }
            // The placeholder of a function that stored no value goes, if nothing else uses it.
            next.versions
                .retain(|v| !(v.version_id == run.token && v.empty && v.stages.is_empty()));
            rotation.last_rotated_ms = Some(now);
            match next_scheduled(&rec.arn, &rotation, now) {
                Some((start, fire)) if rotation.enabled => {
                    rotation.next_rotation_ms = Some(start);
                    rotation.due_ms = Some(fire);
                }
                _ => {
                    rotation.next_rotation_ms = None;
                    rotation.due_ms = None;
                }
            }
            next.rotation = Some(rotation);
            next.last_changed_ms = now;
            if self.commit_rotation(&rec, next).await? {
                self.rotation_event(&rec, "RotationSucceeded", Some(&run.token), None, None)
                    .await;
                return Ok(());
            }
        }
        Err(CoreError::Internal("too much contention; retry".into()))
    }

    /// Runs one step; the error is in plain words for `coffer rotation status`.
    async fn perform_step(
        &self,
        rec: &SecretRecord,
        token: &str,
        step: &str,
    ) -> Result<(), String> {
        let lambda = rec
            .rotation
            .as_ref()
            .and_then(|r| r.lambda_arn.clone())
            .ok_or("no rotation function is configured")?;
        let function = self
            .store
            .get_rotation_function(&lambda)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the rotation function {lambda} is not registered"))?;
        match &function.kind {
            RotationFunctionKind::Builtin { engine, strategy } => {
                let strategy = parse_strategy(strategy)
                    .ok_or_else(|| format!("unknown strategy {strategy:?} of {lambda}"))?;
                let engine = parse_engine(engine)
                    .ok_or_else(|| format!("unknown engine {engine:?} of {lambda}"))?;
                self.builtin_step(rec, token, step, engine, strategy)
                    .await
                    .map_err(|e| e.to_string())
            }
            RotationFunctionKind::Webhook { url, timeout_secs } => {
                let creds = self
                    .callback_credentials(rec)
                    .await
                    .map_err(|e| e.to_string())?;
                let hook = invoke::Webhook {
                    url: url.clone(),
                    signing_secret: self
                        .open_function_secret(&function)
                        .await
                        .map_err(|e| e.to_string())?,
                    timeout: std::time::Duration::from_secs(*timeout_secs),
                    ca_bundle: None,
                };
                invoke::invoke_webhook(&hook, &self.rotation_event_for(rec, token, step)?, &creds)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            RotationFunctionKind::Executable {
                program,
                args,
                timeout_secs,
            } => {
                let creds = self
                    .callback_credentials(rec)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut env = Vec::new();
                // boto3 in the function must trust coffer's own certificate.
                if creds.endpoint_url.starts_with("https://")
                    && let Some(cert) = self.tls_certificate_path()
                {
                    env.push(("AWS_CA_BUNDLE".to_string(), cert));
                }
                let exe = invoke::Executable {
                    program: program.into(),
                    args: args.clone(),
                    timeout: std::time::Duration::from_secs(*timeout_secs),
                    working_dir: None,
                    env,
                };
                invoke::invoke_executable(&exe, &self.rotation_event_for(rec, token, step)?, &creds)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn rotation_event_for(
        &self,
        rec: &SecretRecord,
        token: &str,
        step: &str,
    ) -> Result<invoke::RotationEvent, String> {
        Ok(invoke::RotationEvent {
            step: step.parse().map_err(|_| format!("unknown step {step}"))?,
            secret_id: rec.arn.clone(),
            client_request_token: token.to_string(),
            // AWS's RotationToken identifies the invocation (for PutSecretValue from another
            // account's role); coffer does not need it back, so each invocation gets a fresh one.
            rotation_token: ids::uuid_v4().map_err(|e| e.to_string())?,
        })
    }

    /// Temporary credentials for a rotation function: a session of the secret's account,
    /// narrowed by a session policy to this one secret (and the password generator), valid
    /// for fifteen minutes.
    async fn callback_credentials(
        &self,
        rec: &SecretRecord,
    ) -> Result<invoke::CallbackCredentials, CoreError> {
        let endpoint = self
            .rotation
            .endpoint
            .lock()
            .ok()
            .and_then(|e| e.clone())
            .ok_or_else(|| CoreError::Internal("the server's endpoint is not known yet".into()))?;
        let now = self.clock.now_millis();
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": [
                    "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
                    "secretsmanager:ListSecretVersionIds"], "Resource": rec.arn},
                {"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"},
                {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                 "Condition": {"StringEquals": {
                     "kms:ViaService": format!("secretsmanager.{}.amazonaws.com", rec.region)}}}
            ]
        });
        let session = Session {
            principal_id: rec.account_id.clone(),
            issued_ms: now,
            expires_ms: now + 15 * 60_000,
            mfa_authenticated_ms: None,
            role: None,
            policy: Some(policy.to_string()),
            policy_arns: Vec::new(),
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: Some("coffer-rotation".into()),
        };
        let creds = self
            .issue(
                &rec.account_id,
                &format!("arn:aws:iam::{}:root", rec.account_id),
                PrincipalType::Root,
                &session,
            )
            .await?;
        Ok(invoke::CallbackCredentials {
            endpoint_url: endpoint,
            region: rec.region.clone(),
            access_key_id: creds.access_key_id,
            secret_access_key: creds.secret_access_key,
            session_token: creds.session_token,
        })
    }

    /// The certificate `coffer init` made for the server, if this store has one.
    fn tls_certificate_path(&self) -> Option<String> {
        let path = self.data_dir.as_ref()?.join("tls").join("cert.pem");
        path.exists().then(|| path.display().to_string())
    }

    /// The secret's account's root user, which the built-in rotators act as.
    fn service_caller(rec: &SecretRecord) -> Caller {
        Caller {
            account_id: rec.account_id.clone(),
            principal_arn: format!("arn:aws:iam::{}:root", rec.account_id),
            principal_type: PrincipalType::Root,
            access_key_id: "coffer-rotation".into(),
            region: rec.region.clone(),
            source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            secure_transport: true,
            session: None,
        }
    }

    async fn value_at(
        &self,
        caller: &Caller,
        secret_id: &str,
        stage: Option<&str>,
        version: Option<&str>,
    ) -> Result<SecretBytes, CoreError> {
        let out = self
            .get_secret_value(
                caller,
                GetSecretValueInput {
                    secret_id: secret_id.to_string(),
                    version_id: version.map(str::to_string),
                    version_stage: stage.map(str::to_string),
                },
            )
            .await?;
        Ok(value_bytes(out.value))
    }

    /// What the caller of RotateSecret vouches for when it puts a secret under a built-in
    /// database rotator, which acts with the account's power: the database the secret names
    /// now, and (alternating users) the master secret, which the caller must be allowed to
    /// read. A later value naming another database or master is refused at setSecret, so
    /// whoever may only write the secret cannot aim the rotator (and the master's credentials)
    /// elsewhere.
    async fn pins(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        engine: &str,
        strategy: &str,
    ) -> Result<(String, Option<String>), CoreError> {
        let unusable = |e: &dyn std::fmt::Display| {
            CoreError::InvalidRequest(format!(
                "The secret's value is not a database secret the built-in rotator can use: {e}"
            ))
        };
        let current = self
            .value_at(caller, &rec.arn, Some(AWSCURRENT), None)
            .await?;
        let parsed = db::parse_secret(current.expose()).map_err(|e| unusable(&e))?;
        if parse_engine(engine) != Some(parsed.engine()) {
            return Err(unusable(&format_args!(
                "it names a {} database, and the rotation function rotates {engine}; register a function for its engine",
                parsed.engine().display_name()
            )));
        }
        let endpoint = format!("{}:{}", parsed.host(), parsed.port());
        let master = match (parse_strategy(strategy), parsed.master_arn()) {
            (Some(db::Strategy::AlternatingUsers), Some(master)) => {
                self.require_secret(caller, master, "secretsmanager:GetSecretValue", Vec::new())
                    .await?;
                Some(master.to_string())
            }
            (Some(db::Strategy::AlternatingUsers), None) => {
                return Err(unusable(
                    &"alternating users need the superuser secret's ARN in its masterarn key",
                ));
            }
            _ => None,
        };
        Ok((endpoint, master))
    }

    /// A built-in database rotator's step.
    async fn builtin_step(
        &self,
        rec: &SecretRecord,
        token: &str,
        step: &str,
        engine: db::Engine,
        strategy: db::Strategy,
    ) -> Result<(), String> {
        let caller = Self::service_caller(rec);
        let arn = rec.arn.as_str();
        let err = |e: CoreError| e.to_string();
        match step {
            "createSecret" => {
                if rec
                    .versions
                    .iter()
                    .any(|v| v.version_id == token && !v.empty)
                {
                    return Ok(());
                }
                let current = self
                    .value_at(&caller, arn, Some(AWSCURRENT), None)
                    .await
                    .map_err(err)?;
                // The characters AWS's database templates exclude, which break connection
                // strings and shells.
                let spec = crate::password::PasswordSpec {
                    exclude_characters: Some("/@\"'\\".into()),
                    ..Default::default()
                };
                let password = crate::password::generate(&spec).map_err(err)?;
                let pending = db::pending_value(current.expose(), strategy, &password)
                    .map_err(|e| e.to_string())?;
                self.put_secret_value(
                    &caller,
                    crate::PutSecretValueInput {
                        secret_id: arn.to_string(),
                        client_request_token: Some(token.to_string()),
                        value: Some(SecretValue::String(pending)),
                        version_stages: Some(vec![AWSPENDING.to_string()]),
                    },
                )
                .await
                .map(|_| ())
                .map_err(err)
            }
            "setSecret" | "testSecret" => {
                let pending_raw = self
                    .value_at(&caller, arn, None, Some(token))
                    .await
                    .map_err(err)?;
                let pending = db::parse_secret(pending_raw.expose()).map_err(|e| e.to_string())?;
                if step == "testSecret" {
                    return db::test_secret(&pending).await.map_err(|e| e.to_string());
                }
                let current_raw = self
                    .value_at(&caller, arn, Some(AWSCURRENT), None)
                    .await
                    .map_err(err)?;
                let current = db::parse_secret(current_raw.expose()).map_err(|e| e.to_string())?;
                if current.engine() != engine {
                    return Err(format!(
                        "the secret names a {} database but its rotation function rotates {}; register a function for {} and call RotateSecret with it",
                        current.engine().display_name(),
                        engine.display_name(),
                        current.engine().display_name()
                    ));
                }
                let rotation = rec.rotation.clone().unwrap_or_default();
                let endpoint = format!("{}:{}", current.host(), current.port());
                if rotation.pinned_endpoint.as_deref() != Some(endpoint.as_str()) {
                    return Err(format!(
                        "the secret now names the database {endpoint}, not {} that RotateSecret was called for; call RotateSecret again to rotate against it",
                        rotation.pinned_endpoint.as_deref().unwrap_or("(none)")
                    ));
                }
                if current.master_arn().is_some()
                    && current.master_arn() != rotation.pinned_master_arn.as_deref()
                {
                    return Err(format!(
                        "the secret now names the master secret {}, not {} that RotateSecret was called for; call RotateSecret again",
                        current.master_arn().unwrap_or_default(),
                        rotation.pinned_master_arn.as_deref().unwrap_or("(none)")
                    ));
                }
                let previous = match holder(rec, AWSPREVIOUS) {
                    Some(_) => self
                        .value_at(&caller, arn, Some(AWSPREVIOUS), None)
                        .await
                        .ok()
                        .and_then(|raw| db::parse_secret(raw.expose()).ok()),
                    None => None,
                };
                let master = match current.master_arn() {
                    Some(master_arn) => {
                        let raw = self
                            .value_at(&caller, master_arn, Some(AWSCURRENT), None)
                            .await
                            .map_err(|e| format!("reading the master secret {master_arn}: {e}"))?;
                        Some(
                            db::parse_master_secret(raw.expose(), &current)
                                .map_err(|e| e.to_string())?,
                        )
                    }
                    None => None,
                };
                db::set_secret(
                    strategy,
                    &current,
                    &pending,
                    previous.as_ref(),
                    master.as_ref(),
                )
                .await
                .map_err(|e| e.to_string())
            }
            "finishSecret" => {
                let current = holder(rec, AWSCURRENT);
                if current.as_deref() == Some(token) {
                    return Ok(());
                }
                self.update_secret_version_stage(
                    &caller,
                    crate::UpdateSecretVersionStageInput {
                        secret_id: arn.to_string(),
                        version_stage: AWSCURRENT.to_string(),
                        remove_from_version_id: current,
                        move_to_version_id: Some(token.to_string()),
                    },
                )
                .await
                .map(|_| ())
                .map_err(err)
            }
            other => Err(format!("unknown step {other}")),
        }
    }
}

/// `single-user` and `alternating-users`, as the registry stores them and the CLI takes them.
#[must_use]
pub fn strategy_name(s: db::Strategy) -> &'static str {
    match s {
        db::Strategy::SingleUser => "single-user",
        db::Strategy::AlternatingUsers => "alternating-users",
    }
}

/// The strategy named `name` (see [`strategy_name`]).
#[must_use]
pub fn parse_strategy(name: &str) -> Option<db::Strategy> {
    match name {
        "single-user" => Some(db::Strategy::SingleUser),
        "alternating-users" => Some(db::Strategy::AlternatingUsers),
        _ => None,
    }
}

/// `postgres` and `mysql`, as the registry stores them and the CLI takes them.
#[must_use]
pub fn engine_name(e: db::Engine) -> &'static str {
    match e {
        db::Engine::Postgres => "postgres",
        db::Engine::MySql => "mysql",
    }
}

/// The engine named `name` (`postgres`, `mysql`, or a secret's engine value such as `mariadb`).
#[must_use]
pub fn parse_engine(name: &str) -> Option<db::Engine> {
    db::Engine::from_name(name)
}
