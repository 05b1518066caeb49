//! Rotation as stored: a secret's rotation settings and its run in progress travel in the
//! secret's own record (so they change with the secret's revision, atomically with its
//! staging labels); this module adds what lives beside secrets — the registered rotation
//! functions, the history of rotation events, and the lease that lets one node of several
//! run the scheduler.
//!
//! The store keeps no rotation rules: schedules, steps, retries and what a function may do
//! are the core's. A function's secret settings (a webhook's signing secret) arrive sealed.

use std::future::Future;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{SqliteStore, StoreError, StoreResult};

pub(crate) const ROTATION_MIGRATION: &str = "
    ALTER TABLE secrets ADD COLUMN rotation_due_ms INTEGER;
    CREATE INDEX secrets_rotation_due ON secrets(rotation_due_ms) WHERE rotation_due_ms IS NOT NULL;
    CREATE TABLE rotation_functions (
        arn TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        created_ms INTEGER NOT NULL,
        record TEXT NOT NULL,
        sealed_secret BLOB
    );
    CREATE TABLE rotation_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        arn TEXT NOT NULL,
        account_id TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX rotation_events_by_secret ON rotation_events(arn, seq);
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ms INTEGER NOT NULL
    );";

/// A secret's rotation settings, its schedule's state and its run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationRecord {
    /// `RotationEnabled`: automatic rotation is on.
    pub enabled: bool,
    /// The rotation function (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
    pub lambda_arn: Option<String>,
    pub automatically_after_days: Option<i64>,
    pub schedule_expression: Option<String>,
    pub duration: Option<String>,
    pub last_rotated_ms: Option<i64>,
    /// The start of the next scheduled window (`NextRotationDate`).
    pub next_rotation_ms: Option<i64>,
    /// When the scheduler acts next on this secret: the scheduled fire time, a retry, or now.
    pub due_ms: Option<i64>,
    pub run: Option<RotationRun>,
    /// For a built-in database rotator: the database (`host:port`) and the master secret the
    /// principal that called RotateSecret vouched for; a value naming others is not rotated.
    pub pinned_endpoint: Option<String>,
    pub pinned_master_arn: Option<String>,
}

/// One rotation, from `createSecret` to `finishSecret`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RotationRun {
    /// The `ClientRequestToken`: the id of the version being made.
    pub token: String,
    pub started_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Each step's last outcome, in step order.
    pub steps: Vec<StepRecord>,
    pub last_error: Option<String>,
    /// Retries are exhausted: the run waits for `coffer rotation retry` or its next window.
    pub gave_up: bool,
}

/// The last outcome of one step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    pub step: String,
    pub ok: bool,
    pub at_ms: i64,
    pub error: Option<String>,
}

/// What a registered rotation function is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationFunctionKind {
    /// A built-in database rotator: `engine` is `postgres` or `mysql`, `strategy` is
    /// `single-user` or `alternating-users`.
    Builtin {
        engine: String,
        strategy: String,
    },
    Webhook {
        url: String,
        timeout_secs: u64,
    },
    Executable {
        program: String,
        args: Vec<String>,
        timeout_secs: u64,
    },
}

/// A rotation function registered with coffer under a Lambda ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationFunctionRecord {
    pub arn: String,
    pub account_id: String,
    pub kind: RotationFunctionKind,
    /// A webhook's signing secret, sealed by the core.
    pub sealed_secret: Option<Vec<u8>>,
    pub created_ms: i64,
}

/// One entry of a secret's rotation history (`RotationStarted`, `RotationSucceeded`,
/// `RotationFailed`, `RotationAbandoned`, and step outcomes), for `coffer rotation status`
/// and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEventRecord {
    /// Assigned by the store; 0 when appending.
    pub seq: i64,
    pub arn: String,
    pub account_id: String,
    pub at_ms: i64,
    pub event: String,
    pub token: Option<String>,
    pub step: Option<String>,
    pub detail: Option<String>,
}

/// Rotation functions, rotation history, due secrets and the scheduler lease.
pub trait RotationStore {
    /// Registers (or replaces) a rotation function.
    fn put_rotation_function(
        &self,
        f: RotationFunctionRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_rotation_function(
        &self,
        arn: &str,
    ) -> impl Future<Output = StoreResult<Option<RotationFunctionRecord>>> + Send;

    /// Every function of an account, by ARN.
    fn list_rotation_functions(
        &self,
        account_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<RotationFunctionRecord>>> + Send;

    /// Removes a function; false if there was none.
    fn delete_rotation_function(&self, arn: &str)
    -> impl Future<Output = StoreResult<bool>> + Send;

    /// ARNs of secrets whose rotation is due at or before `now_ms`, soonest first.
    fn secrets_due_for_rotation(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// ARNs of every secret that has rotation settings, by ARN.
    fn rotating_secrets(&self) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Appends to a secret's rotation history.
    fn append_rotation_event(
        &self,
        e: RotationEventRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The last `limit` events of a secret, oldest first.
    fn rotation_events(
        &self,
        arn: &str,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<RotationEventRecord>>> + Send;

    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`; true when
    /// `holder` holds it afterwards (it was free, expired, or already `holder`'s).
    fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

// ---- storage encoding (versioned) ----

#[derive(Serialize, Deserialize, Default)]
pub(crate) struct StoredRotation {
    #[serde(default)]
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lambda: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    due_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run: Option<StoredRun>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredRun {
    token: String,
    started_ms: i64,
    #[serde(default)]
    attempts: u32,
    #[serde(default)]
    steps: Vec<StoredStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default)]
    gave_up: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredStep {
    step: String,
    ok: bool,
    at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl StoredRotation {
    pub(crate) fn from_record(r: &RotationRecord) -> Self {
        StoredRotation {
            enabled: r.enabled,
            lambda: r.lambda_arn.clone(),
            days: r.automatically_after_days,
            expr: r.schedule_expression.clone(),
            duration: r.duration.clone(),
            last_ms: r.last_rotated_ms,
            next_ms: r.next_rotation_ms,
            due_ms: r.due_ms,
            endpoint: r.pinned_endpoint.clone(),
            master: r.pinned_master_arn.clone(),
            run: r.run.as_ref().map(|run| StoredRun {
                token: run.token.clone(),
                started_ms: run.started_ms,
                attempts: run.attempts,
                steps: run
                    .steps
                    .iter()
                    .map(|s| StoredStep {
                        step: s.step.clone(),
                        ok: s.ok,
                        at_ms: s.at_ms,
                        error: s.error.clone(),
                    })
                    .collect(),
                error: run.last_error.clone(),
                gave_up: run.gave_up,
            }),
        }
    }

    pub(crate) fn into_record(self) -> RotationRecord {
        RotationRecord {
            enabled: self.enabled,
            lambda_arn: self.lambda,
            automatically_after_days: self.days,
            schedule_expression: self.expr,
            duration: self.duration,
            last_rotated_ms: self.last_ms,
            next_rotation_ms: self.next_ms,
            due_ms: self.due_ms,
            pinned_endpoint: self.endpoint,
            pinned_master_arn: self.master,
            run: self.run.map(|run| RotationRun {
                token: run.token,
                started_ms: run.started_ms,
                attempts: run.attempts,
                steps: run
                    .steps
                    .into_iter()
                    .map(|s| StepRecord {
                        step: s.step,
                        ok: s.ok,
                        at_ms: s.at_ms,
                        error: s.error,
                    })
                    .collect(),
                last_error: run.error,
                gave_up: run.gave_up,
            }),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredFunction {
    v: u32,
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    program: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    timeout_secs: u64,
}

fn encode_function(f: &RotationFunctionRecord) -> StoreResult<String> {
    let mut s = StoredFunction {
        v: 1,
        kind: String::new(),
        engine: None,
        strategy: None,
        url: None,
        program: None,
        args: Vec::new(),
        timeout_secs: 0,
    };
    match &f.kind {
        RotationFunctionKind::Builtin { engine, strategy } => {
            s.kind = "builtin".into();
            s.engine = Some(engine.clone());
            s.strategy = Some(strategy.clone());
        }
        RotationFunctionKind::Webhook { url, timeout_secs } => {
            s.kind = "webhook".into();
            s.url = Some(url.clone());
            s.timeout_secs = *timeout_secs;
        }
        RotationFunctionKind::Executable {
            program,
            args,
            timeout_secs,
        } => {
            s.kind = "executable".into();
            s.program = Some(program.clone());
            s.args = args.clone();
            s.timeout_secs = *timeout_secs;
        }
    }
    serde_json::to_string(&s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode_function(row: &rusqlite::Row<'_>) -> StoreResult<RotationFunctionRecord> {
    let record: String = row.get(3)?;
    let s: StoredFunction = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("rotation function: {e}")))?;
    let corrupt = || StoreError::Corrupt(format!("rotation function of kind {:?}", s.kind));
    let kind = match s.kind.as_str() {
        "builtin" => RotationFunctionKind::Builtin {
            engine: s.engine.clone().ok_or_else(corrupt)?,
            strategy: s.strategy.clone().ok_or_else(corrupt)?,
        },
        "webhook" => RotationFunctionKind::Webhook {
            url: s.url.clone().ok_or_else(corrupt)?,
            timeout_secs: s.timeout_secs,
        },
        "executable" => RotationFunctionKind::Executable {
            program: s.program.clone().ok_or_else(corrupt)?,
            args: s.args.clone(),
            timeout_secs: s.timeout_secs,
        },
        _ => return Err(corrupt()),
    };
    Ok(RotationFunctionRecord {
        arn: row.get(0)?,
        account_id: row.get(1)?,
        created_ms: row.get(2)?,
        sealed_secret: row.get(4)?,
        kind,
    })
}

#[derive(Serialize, Deserialize)]
struct StoredEvent {
    event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

const FUNCTION_COLUMNS: &str = "arn, account_id, created_ms, record, sealed_secret";

impl RotationStore for SqliteStore {
    async fn put_rotation_function(&self, f: RotationFunctionRecord) -> StoreResult<()> {
        let record = encode_function(&f)?;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO rotation_functions (arn, account_id, created_ms, record, sealed_secret)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (arn) DO UPDATE SET record = excluded.record, sealed_secret = excluded.sealed_secret",
                params![f.arn, f.account_id, f.created_ms, record, f.sealed_secret],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_rotation_function(
        &self,
        arn: &str,
    ) -> StoreResult<Option<RotationFunctionRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FUNCTION_COLUMNS} FROM rotation_functions WHERE arn = ?1"
            ))?;
            let row = stmt
                .query_row([arn], |r| Ok(decode_function(r)))
                .optional()?;
            row.transpose()
        })
    }

    async fn list_rotation_functions(
        &self,
        account_id: &str,
    ) -> StoreResult<Vec<RotationFunctionRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {FUNCTION_COLUMNS} FROM rotation_functions WHERE account_id = ?1 ORDER BY arn"
            ))?;
            let rows: Vec<StoreResult<RotationFunctionRecord>> = stmt
                .query_map([account_id], |r| Ok(decode_function(r)))?
                .collect::<Result<_, _>>()?;
            rows.into_iter().collect()
        })
    }

    async fn delete_rotation_function(&self, arn: &str) -> StoreResult<bool> {
        let arn = arn.to_owned();
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM rotation_functions WHERE arn = ?1", [&arn])? == 1)
        })
        .await
    }

    async fn secrets_due_for_rotation(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT arn FROM secrets WHERE rotation_due_ms IS NOT NULL AND rotation_due_ms <= ?1 ORDER BY rotation_due_ms",
            )?;
            Ok(stmt.query_map([now_ms], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    async fn rotating_secrets(&self) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT arn FROM secrets WHERE json_extract(record, '$.rotation') IS NOT NULL ORDER BY arn",
            )?;
            Ok(stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    async fn append_rotation_event(&self, e: RotationEventRecord) -> StoreResult<()> {
        let record = serde_json::to_string(&StoredEvent {
            event: e.event,
            token: e.token,
            step: e.step,
            detail: e.detail,
        })
        .map_err(|err| StoreError::Corrupt(err.to_string()))?;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO rotation_events (arn, account_id, at_ms, record) VALUES (?1, ?2, ?3, ?4)",
                params![e.arn, e.account_id, e.at_ms, record],
            )?;
            Ok(())
        })
        .await
    }

    async fn rotation_events(
        &self,
        arn: &str,
        limit: usize,
    ) -> StoreResult<Vec<RotationEventRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, arn, account_id, at_ms, record FROM rotation_events WHERE arn = ?1 ORDER BY seq DESC LIMIT ?2",
            )?;
            let rows: Vec<(i64, String, String, i64, String)> = stmt
                .query_map(params![arn, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (seq, arn, account_id, at_ms, record) in rows.into_iter().rev() {
                let s: StoredEvent = serde_json::from_str(&record)
                    .map_err(|e| StoreError::Corrupt(format!("rotation event: {e}")))?;
                out.push(RotationEventRecord {
                    seq,
                    arn,
                    account_id,
                    at_ms,
                    event: s.event,
                    token: s.token,
                    step: s.step,
                    detail: s.detail,
                });
            }
            Ok(out)
        })
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> StoreResult<bool> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |conn| {
            // One statement: take a free or expired lease, or renew our own.
            let changed = conn.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
                 WHERE leases.holder = excluded.holder OR leases.expires_ms <= ?4",
                params![name, holder, now_ms.saturating_add(ttl_ms), now_ms],
            )?;
            Ok(changed == 1)
        })
        .await
    }
}
