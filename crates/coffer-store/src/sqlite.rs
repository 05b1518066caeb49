//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a write is on
//! disk before it is acknowledged. One writer connection serialises writes; a small pool of
//! reader connections serves reads concurrently (WAL readers never block the writer).
//! Deleted rows are overwritten (`secure_delete`), so purged ciphertext does not linger.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{
    AccessKeyRecord, AccountRecord, SealedValue, SecretRecord, SecretWrite, Store, StoreError,
    StoreResult, ValueKind, VersionRecord,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "coffer.db";
const READERS: usize = 4;

/// Schema migrations, applied in order inside one transaction each. Never edit a shipped one;
/// add the next.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
    "CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY,
        created_ms INTEGER NOT NULL,
        wrapped_account_key BLOB NOT NULL
     );
     CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        principal_arn TEXT NOT NULL,
        user_name TEXT,
        sealed_secret BLOB NOT NULL,
        active INTEGER NOT NULL,
        created_ms INTEGER NOT NULL
     );
     CREATE TABLE secrets (
        arn TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        deletion_due_ms INTEGER,
        last_accessed_ms INTEGER,
        record TEXT NOT NULL,
        UNIQUE (account_id, region, name)
     );
     CREATE INDEX secrets_deletion_due ON secrets(deletion_due_ms) WHERE deletion_due_ms IS NOT NULL;
     CREATE TABLE secret_versions (
        arn TEXT NOT NULL REFERENCES secrets(arn) ON DELETE CASCADE,
        version_id TEXT NOT NULL,
        last_accessed_ms INTEGER,
        wrapped_key BLOB NOT NULL,
        sealed_value BLOB NOT NULL,
        PRIMARY KEY (arn, version_id)
     );",
    ),
    (
        2,
        "CREATE TABLE iam_principals (
            account_id TEXT NOT NULL REFERENCES accounts(account_id),
            kind TEXT NOT NULL CHECK (kind IN ('user', 'group', 'role')),
            name_key TEXT NOT NULL,
            name TEXT NOT NULL,
            principal_id TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            trust_policy TEXT,
            description TEXT,
            max_session_secs INTEGER,
            tags TEXT NOT NULL DEFAULT '[]',
            PRIMARY KEY (account_id, kind, name_key)
         );
         CREATE TABLE iam_inline_policies (
            account_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            name_key TEXT NOT NULL,
            policy_name TEXT NOT NULL,
            document TEXT NOT NULL,
            PRIMARY KEY (account_id, kind, name_key, policy_name),
            FOREIGN KEY (account_id, kind, name_key) REFERENCES iam_principals(account_id, kind, name_key) ON DELETE CASCADE ON UPDATE CASCADE
         );
         CREATE TABLE iam_group_members (
            account_id TEXT NOT NULL,
            group_key TEXT NOT NULL,
            user_key TEXT NOT NULL,
            PRIMARY KEY (account_id, group_key, user_key)
         );
         CREATE TABLE iam_managed_policies (
            account_id TEXT NOT NULL REFERENCES accounts(account_id),
            name_key TEXT NOT NULL,
            name TEXT NOT NULL,
            policy_id TEXT NOT NULL UNIQUE,
            path TEXT NOT NULL,
            description TEXT,
            default_version INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (account_id, name_key)
         );
         CREATE TABLE iam_policy_versions (
            account_id TEXT NOT NULL,
            policy_key TEXT NOT NULL,
            version INTEGER NOT NULL,
            document TEXT NOT NULL,
            created_ms INTEGER NOT NULL,
            PRIMARY KEY (account_id, policy_key, version),
            FOREIGN KEY (account_id, policy_key) REFERENCES iam_managed_policies(account_id, name_key) ON DELETE CASCADE
         );
         CREATE TABLE iam_attachments (
            account_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            name_key TEXT NOT NULL,
            policy_arn TEXT NOT NULL,
            PRIMARY KEY (account_id, kind, name_key, policy_arn)
         );
         CREATE INDEX iam_attachments_by_policy ON iam_attachments(account_id, policy_arn);
         ALTER TABLE access_keys ADD COLUMN last_used_ms INTEGER;
         ALTER TABLE access_keys ADD COLUMN last_used_service TEXT;
         ALTER TABLE access_keys ADD COLUMN last_used_region TEXT;
         CREATE INDEX access_keys_by_user ON access_keys(account_id, user_name);",
    ),
    (3, crate::kms::KMS_MIGRATION),
    (4, crate::mfa::MFA_MIGRATION),
    (5, crate::rotation::ROTATION_MIGRATION),
    (
        6,
        // Keys of the service itself, sealed under the root key: the audit log's signing key.
        "CREATE TABLE service_keys (
            name TEXT PRIMARY KEY,
            sealed BLOB NOT NULL,
            created_ms INTEGER NOT NULL
         );",
    ),
];

/// The SQLite implementation of [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    cache: RecordCache,
    /// Held for the store's lifetime: one process owns the database, so the cache cannot go
    /// stale behind another writer's back.
    _lock: File,
}

/// Recently read records and sealed values (ciphertext only), so that the hot path of
/// `GetSecretValue` does not touch SQLite. Every write clears it; a read fills it only if no
/// write completed while it was reading (the generation check and the insert happen under
/// the same lock that a write takes to clear).
#[derive(Default)]
struct RecordCache {
    maps: RwLock<CacheMaps>,
}

#[derive(Default)]
struct CacheMaps {
    generation: u64,
    by_name: HashMap<String, SecretRecord>,
    by_arn: HashMap<String, SecretRecord>,
    values: HashMap<String, SealedValue>,
    kms_keys: HashMap<String, crate::KmsKeyRecord>,
}

const CACHE_MAX_ENTRIES: usize = 50_000;

impl RecordCache {
    fn generation(&self) -> u64 {
        self.maps.read().map_or(0, |m| m.generation)
    }

    fn get<T: Clone>(&self, pick: impl FnOnce(&CacheMaps) -> Option<&T>) -> Option<T> {
        self.maps.read().ok().and_then(|m| pick(&m).cloned())
    }

    /// Stores a value read at `generation`, unless a write has happened since.
    fn fill(&self, generation: u64, put: impl FnOnce(&mut CacheMaps)) {
        if let Ok(mut m) = self.maps.write()
            && m.generation == generation
        {
            if m.by_name.len() + m.values.len() > CACHE_MAX_ENTRIES {
                m.by_name.clear();
                m.by_arn.clear();
                m.values.clear();
                m.kms_keys.clear();
            }
            put(&mut m);
        }
    }

    fn invalidate(&self) {
        if let Ok(mut m) = self.maps.write() {
            m.generation = m.generation.wrapping_add(1);
            m.by_name.clear();
            m.by_arn.clear();
            m.values.clear();
            m.kms_keys.clear();
        }
    }
}

fn name_key(account_id: &str, region: &str, name: &str) -> String {
    [account_id, region, name].join("\u{0}")
}

fn value_key(arn: &str, version_id: &str) -> String {
    [arn, version_id].join("\u{0}")
}

fn configure(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA busy_timeout = 10000;",
    )?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let lock_path = path.with_extension("db.lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Database(format!("cannot open {}: {e}", lock_path.display()))
            })?;
        if lock_file.try_lock().is_err() {
            return Err(StoreError::Database(format!(
                "{} is in use by another coffer process; stop it first",
                path.display()
            )));
        }
        // Created owner-only before SQLite opens it; the WAL and shared-memory files take the
        // database file's permissions.
        if !path.exists() {
            OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    StoreError::Database(format!("cannot create {}: {e}", path.display()))
                })?;
        }
        let writer = Connection::open(path)?;
        configure(&writer)?;
        migrate(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.execute_batch("PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;")?;
            readers.push(Mutex::new(r));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                cache: RecordCache::default(),
                _lock: lock_file,
            }),
        })
    }

    pub(crate) fn cache_generation(&self) -> u64 {
        self.inner.cache.generation()
    }

    pub(crate) fn cached_kms_key(&self, key_id: &str) -> Option<crate::KmsKeyRecord> {
        self.inner.cache.get(|m| m.kms_keys.get(key_id))
    }

    pub(crate) fn cache_kms_key(&self, generation: u64, key: &crate::KmsKeyRecord) {
        self.inner.cache.fill(generation, |m| {
            m.kms_keys.insert(key.key_id.clone(), key.clone());
        });
    }

    /// `PRAGMA integrity_check` on the writer connection: `Ok(())` when it says "ok".
    pub fn integrity_check(&self) -> StoreResult<()> {
        let conn = lock(&self.inner.writer)?;
        let result: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(result))
        }
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let n = self.inner.readers.len();
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        // Prefer an idle reader; fall back to waiting on the one our turn points at.
        for i in 0..n {
            if let Ok(conn) = self.inner.readers[(start + i) % n].try_lock() {
                return f(&conn);
            }
        }
        let conn = lock(&self.inner.readers[start % n])?;
        f(&conn)
    }

    pub(crate) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        // fsync blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut conn = lock(&inner.writer)?;
            let result = f(&mut conn);
            // After the commit (or the failed attempt), so that no read started before it
            // can leave an old record behind.
            inner.cache.invalidate();
            result
        })
        .await
        .map_err(|e| StoreError::Database(format!("writer task failed: {e}")))?
    }
}

fn lock(m: &Mutex<Connection>) -> StoreResult<MutexGuard<'_, Connection>> {
    m.lock()
        .map_err(|_| StoreError::Database("connection lock poisoned".into()))
}

fn migrate(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    if let Some(&(latest, _)) = MIGRATIONS.last()
        && current > latest
    {
        return Err(StoreError::Corrupt(format!(
            "database schema version {current} is newer than this coffer understands ({latest}); upgrade coffer"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = conn.execute_batch(sql).and_then(|()| {
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, CAST(strftime('%s','now') AS INTEGER) * 1000)",
                params![version],
            )
        });
        match applied {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
    }
    Ok(())
}

// ---- storage encoding of a secret's metadata (versioned) ----

#[derive(Serialize, Deserialize)]
struct StoredSecret {
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kms_key_id: Option<String>,
    #[serde(default)]
    tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owning_service: Option<String>,
    created_ms: i64,
    last_changed_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deleted_ms: Option<i64>,
    versions: Vec<StoredVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation: Option<crate::rotation::StoredRotation>,
}

#[derive(Serialize, Deserialize)]
struct StoredVersion {
    id: String,
    stages: Vec<String>,
    created_ms: i64,
    binary: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    empty: bool,
}

fn encode_record(r: &SecretRecord) -> StoreResult<String> {
    let stored = StoredSecret {
        v: 1,
        description: r.description.clone(),
        kms_key_id: r.kms_key_id.clone(),
        tags: r.tags.clone(),
        owning_service: r.owning_service.clone(),
        created_ms: r.created_ms,
        last_changed_ms: r.last_changed_ms,
        deleted_ms: r.deleted_ms,
        resource_policy: r.resource_policy.clone(),
        rotation: r
            .rotation
            .as_ref()
            .map(crate::rotation::StoredRotation::from_record),
        versions: r
            .versions
            .iter()
            .map(|v| StoredVersion {
                id: v.version_id.clone(),
                stages: v.stages.clone(),
                created_ms: v.created_ms,
                binary: v.kind == ValueKind::Binary,
                empty: v.empty,
            })
            .collect(),
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// When the scheduler should look at a secret: its rotation's due time while rotation is on
/// or a run is unfinished, and never for a secret scheduled for deletion.
fn rotation_due(r: &SecretRecord) -> Option<i64> {
    if r.deleted_ms.is_some() {
        return None;
    }
    r.rotation.as_ref().and_then(|rot| rot.due_ms)
}

const SECRET_COLUMNS: &str =
    "arn, account_id, region, name, revision, deletion_due_ms, last_accessed_ms, record";

fn decode_secret(conn: &Connection, row: &rusqlite::Row<'_>) -> StoreResult<SecretRecord> {
    let arn: String = row.get(0)?;
    let record: String = row.get(7)?;
    let stored: StoredSecret = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("secret record: {e}")))?;
    if stored.v != 1 {
        return Err(StoreError::Corrupt(format!(
            "unknown secret record version {}",
            stored.v
        )));
    }
    let mut accessed = conn.prepare_cached(
        "SELECT version_id, last_accessed_ms FROM secret_versions WHERE arn = ?1 AND last_accessed_ms IS NOT NULL",
    )?;
    let touched: Vec<(String, i64)> = accessed
        .query_map([&arn], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(SecretRecord {
        account_id: row.get(1)?,
        region: row.get(2)?,
        name: row.get(3)?,
        revision: row.get(4)?,
        deletion_due_ms: row.get(5)?,
        last_accessed_ms: row.get(6)?,
        description: stored.description,
        kms_key_id: stored.kms_key_id,
        tags: stored.tags,
        owning_service: stored.owning_service,
        created_ms: stored.created_ms,
        last_changed_ms: stored.last_changed_ms,
        deleted_ms: stored.deleted_ms,
        resource_policy: stored.resource_policy,
        rotation: stored
            .rotation
            .map(crate::rotation::StoredRotation::into_record),
        versions: stored
            .versions
            .into_iter()
            .map(|v| VersionRecord {
                last_accessed_ms: touched.iter().find(|(id, _)| *id == v.id).map(|(_, t)| *t),
                version_id: v.id,
                stages: v.stages,
                created_ms: v.created_ms,
                kind: if v.binary {
                    ValueKind::Binary
                } else {
                    ValueKind::String
                },
                empty: v.empty,
            })
            .collect(),
        arn,
    })
}

fn query_secret(
    conn: &Connection,
    sql_where: &str,
    args: &[&dyn rusqlite::ToSql],
) -> StoreResult<Option<SecretRecord>> {
    let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE {sql_where}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(args)?;
    match rows.next()? {
        Some(row) => Ok(Some(decode_secret(conn, row)?)),
        None => Ok(None),
    }
}

fn insert_values(
    tx: &rusqlite::Transaction<'_>,
    arn: &str,
    write: &SecretWrite,
) -> StoreResult<()> {
    let mut ins = tx.prepare_cached(
        "INSERT INTO secret_versions (arn, version_id, wrapped_key, sealed_value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (version_id, value) in &write.new_values {
        ins.execute(params![arn, version_id, value.wrapped_key, value.sealed])?;
    }
    let mut del =
        tx.prepare_cached("DELETE FROM secret_versions WHERE arn = ?1 AND version_id = ?2")?;
    for version_id in &write.removed_versions {
        del.execute(params![arn, version_id])?;
    }
    let mut replace = tx.prepare_cached(
        "UPDATE secret_versions SET wrapped_key = ?3, sealed_value = ?4 WHERE arn = ?1 AND version_id = ?2",
    )?;
    for (version_id, value) in &write.replaced_values {
        replace.execute(params![arn, version_id, value.wrapped_key, value.sealed])?;
    }
    Ok(())
}

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        account_id: r.get(0)?,
        created_ms: r.get(1)?,
        wrapped_account_key: r.get(2)?,
    })
}

impl Store for SqliteStore {
    async fn insert_account(
        &self,
        account: AccountRecord,
        root_key: AccessKeyRecord,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO accounts (account_id, created_ms, wrapped_account_key) VALUES (?1, ?2, ?3)",
                params![account.account_id, account.created_ms, account.wrapped_account_key],
            )?;
            tx.execute(
                "INSERT INTO access_keys (access_key_id, account_id, principal_arn, user_name, sealed_secret, active, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    root_key.access_key_id,
                    root_key.account_id,
                    root_key.principal_arn,
                    root_key.user_name,
                    root_key.sealed_secret,
                    root_key.active,
                    root_key.created_ms
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_account(&self, account_id: &str) -> StoreResult<Option<AccountRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT account_id, created_ms, wrapped_account_key FROM accounts WHERE account_id = ?1",
            )?;
            Ok(stmt.query_row([account_id], account_from_row).optional()?)
        })
    }

    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT account_id, created_ms, wrapped_account_key FROM accounts ORDER BY account_id")?;
            Ok(stmt.query_map([], account_from_row)?.collect::<Result<_, _>>()?)
        })
    }

    async fn get_access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT access_key_id, account_id, principal_arn, user_name, sealed_secret, active, created_ms
                 FROM access_keys WHERE access_key_id = ?1",
            )?;
            Ok(stmt
                .query_row([access_key_id], |r| {
                    Ok(AccessKeyRecord {
                        access_key_id: r.get(0)?,
                        account_id: r.get(1)?,
                        principal_arn: r.get(2)?,
                        user_name: r.get(3)?,
                        sealed_secret: r.get(4)?,
                        active: r.get(5)?,
                        created_ms: r.get(6)?,
                    })
                })
                .optional()?)
        })
    }

    async fn get_secret_by_arn(&self, arn: &str) -> StoreResult<Option<SecretRecord>> {
        let cache = &self.inner.cache;
        if let Some(hit) = cache.get(|m| m.by_arn.get(arn)) {
            return Ok(Some(hit));
        }
        let generation = cache.generation();
        let found = self.read(|conn| query_secret(conn, "arn = ?1", &[&arn]))?;
        if let Some(rec) = &found {
            cache.fill(generation, |m| {
                m.by_arn.insert(arn.to_owned(), rec.clone());
            });
        }
        Ok(found)
    }

    async fn get_secret_by_name(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> StoreResult<Option<SecretRecord>> {
        let cache = &self.inner.cache;
        let key = name_key(account_id, region, name);
        if let Some(hit) = cache.get(|m| m.by_name.get(&key)) {
            return Ok(Some(hit));
        }
        let generation = cache.generation();
        let found = self.read(|conn| {
            query_secret(
                conn,
                "account_id = ?1 AND region = ?2 AND name = ?3",
                &[&account_id, &region, &name],
            )
        })?;
        if let Some(rec) = &found {
            cache.fill(generation, |m| {
                m.by_name.insert(key, rec.clone());
            });
        }
        Ok(found)
    }

    async fn list_secrets(&self, account_id: &str, region: &str) -> StoreResult<Vec<SecretRecord>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {SECRET_COLUMNS} FROM secrets WHERE account_id = ?1 AND region = ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query([account_id, region])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode_secret(conn, row)?);
            }
            Ok(out)
        })
    }

    async fn get_sealed_value(
        &self,
        arn: &str,
        version_id: &str,
    ) -> StoreResult<Option<SealedValue>> {
        let cache = &self.inner.cache;
        let key = value_key(arn, version_id);
        if let Some(hit) = cache.get(|m| m.values.get(&key)) {
            return Ok(Some(hit));
        }
        let generation = cache.generation();
        let found = self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT wrapped_key, sealed_value FROM secret_versions WHERE arn = ?1 AND version_id = ?2")?;
            Ok(stmt
                .query_row([arn, version_id], |r| Ok(SealedValue { wrapped_key: r.get(0)?, sealed: r.get(1)? }))
                .optional()?)
        })?;
        if let Some(v) = &found {
            cache.fill(generation, |m| {
                m.values.insert(key, v.clone());
            });
        }
        Ok(found)
    }

    async fn create_secret(&self, record: SecretRecord, write: SecretWrite) -> StoreResult<()> {
        self.write(move |conn| {
            let encoded = encode_record(&record)?;
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO secrets (arn, account_id, region, name, revision, deletion_due_ms, last_accessed_ms, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    record.arn,
                    record.account_id,
                    record.region,
                    record.name,
                    record.revision,
                    record.deletion_due_ms,
                    record.last_accessed_ms,
                    encoded
                ],
            )?;
            insert_values(&tx, &record.arn, &write)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_secret(
        &self,
        expected_revision: i64,
        record: SecretRecord,
        write: SecretWrite,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let encoded = encode_record(&record)?;
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE secrets SET revision = ?1, deletion_due_ms = ?2, record = ?3, rotation_due_ms = ?4 WHERE arn = ?5 AND revision = ?6",
                params![record.revision, record.deletion_due_ms, encoded, rotation_due(&record), record.arn, expected_revision],
            )?;
            if changed != 1 {
                return Err(StoreError::Conflict);
            }
            insert_values(&tx, &record.arn, &write)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn touch_access(&self, arn: &str, version_id: &str, day_ms: i64) -> StoreResult<()> {
        let (arn, version_id) = (arn.to_owned(), version_id.to_owned());
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("UPDATE secrets SET last_accessed_ms = ?1 WHERE arn = ?2", params![day_ms, arn])?;
            tx.execute(
                "UPDATE secret_versions SET last_accessed_ms = ?1 WHERE arn = ?2 AND version_id = ?3",
                params![day_ms, arn, version_id],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn purge_secret(&self, arn: &str) -> StoreResult<()> {
        let arn = arn.to_owned();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM secret_versions WHERE arn = ?1", [&arn])?;
            tx.execute("DELETE FROM secrets WHERE arn = ?1", [&arn])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn root_sealed(&self) -> StoreResult<Vec<crate::RootSealed>> {
        use crate::{RootSealed, RootSealedKind};
        self.read(|conn| {
            let mut out = Vec::new();
            let mut stmt =
                conn.prepare_cached("SELECT account_id, wrapped_account_key FROM accounts")?;
            for row in stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })? {
                let (id, blob) = row?;
                out.push(RootSealed {
                    kind: RootSealedKind::AccountKey,
                    id,
                    material_id: None,
                    key_arn: None,
                    blob,
                });
            }
            let mut stmt =
                conn.prepare_cached("SELECT access_key_id, sealed_secret FROM access_keys")?;
            for row in stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })? {
                let (id, blob) = row?;
                out.push(RootSealed {
                    kind: RootSealedKind::AccessKeySecret,
                    id,
                    material_id: None,
                    key_arn: None,
                    blob,
                });
            }
            let mut stmt = conn.prepare_cached(
                "SELECT m.key_id, m.material_id, k.region, k.account_id, m.sealed
                 FROM kms_key_materials m JOIN kms_keys k ON k.key_id = m.key_id",
            )?;
            for row in stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                ))
            })? {
                let (key_id, material_id, region, account_id, blob) = row?;
                out.push(RootSealed {
                    kind: RootSealedKind::KeyMaterial,
                    key_arn: Some(format!("arn:aws:kms:{region}:{account_id}:key/{key_id}")),
                    id: key_id,
                    material_id: Some(material_id),
                    blob,
                });
            }
            let mut stmt = conn.prepare_cached("SELECT name, sealed FROM service_keys")?;
            for row in stmt.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })? {
                let (id, blob) = row?;
                out.push(RootSealed {
                    kind: RootSealedKind::ServiceKey,
                    id,
                    material_id: None,
                    key_arn: None,
                    blob,
                });
            }
            Ok(out)
        })
    }

    async fn replace_root_sealed(
        &self,
        item: crate::RootSealed,
        blob: Vec<u8>,
    ) -> StoreResult<bool> {
        use crate::RootSealedKind;
        self.write(move |conn| {
            let changed = match item.kind {
                RootSealedKind::AccountKey => conn.execute(
                    "UPDATE accounts SET wrapped_account_key = ?1 WHERE account_id = ?2 AND wrapped_account_key = ?3",
                    params![blob, item.id, item.blob],
                )?,
                RootSealedKind::AccessKeySecret => conn.execute(
                    "UPDATE access_keys SET sealed_secret = ?1 WHERE access_key_id = ?2 AND sealed_secret = ?3",
                    params![blob, item.id, item.blob],
                )?,
                RootSealedKind::KeyMaterial => conn.execute(
                    "UPDATE kms_key_materials SET sealed = ?1 WHERE key_id = ?2 AND material_id = ?3 AND sealed = ?4",
                    params![blob, item.id, item.material_id, item.blob],
                )?,
                RootSealedKind::ServiceKey => conn.execute(
                    "UPDATE service_keys SET sealed = ?1 WHERE name = ?2 AND sealed = ?3",
                    params![blob, item.id, item.blob],
                )?,
            };
            Ok(changed > 0)
        })
        .await
    }

    async fn service_key(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let name = name.to_string();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT sealed FROM service_keys WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()?)
        })
    }

    async fn insert_service_key(
        &self,
        name: &str,
        sealed: Vec<u8>,
        created_ms: i64,
    ) -> StoreResult<Vec<u8>> {
        let name = name.to_string();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO service_keys (name, sealed, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT(name) DO NOTHING",
                params![name, sealed, created_ms],
            )?;
            Ok(conn.query_row(
                "SELECT sealed FROM service_keys WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn secrets_due_for_purge(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT arn FROM secrets WHERE deletion_due_ms IS NOT NULL AND deletion_due_ms <= ?1 ORDER BY deletion_due_ms",
            )?;
            Ok(stmt.query_map([now_ms], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }
}
