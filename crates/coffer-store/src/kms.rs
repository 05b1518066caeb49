//! KMS keys as stored: each key's metadata (state, policy, tags, rotation schedule), its key
//! material versions (each sealed under the root key by the core; the store only ever sees
//! the sealed bytes), and aliases.
//!
//! The store keeps no KMS rules: which state allows what, when material rotates and who may
//! use a key are the core's. It must never hold key material in the clear.

use std::future::Future;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::{SqliteStore, StoreError, StoreResult};

/// Who manages a key: the account (`CUSTOMER`) or a service on its behalf (`AWS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyManager {
    Customer,
    Aws,
}

/// A key's life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

/// One version of a key's material, sealed under the root key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterialRecord {
    /// 64 lower-case hex digits (KMS's `KeyMaterialId`).
    pub material_id: String,
    pub created_ms: i64,
    /// `None` for the material a key was created with; `AUTOMATIC` or `ON_DEMAND` after.
    pub rotation_type: Option<String>,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterialRecord")
            .field("material_id", &self.material_id)
            .field("created_ms", &self.created_ms)
            .field("rotation_type", &self.rotation_type)
            .finish_non_exhaustive()
    }
}

/// A KMS key with its material versions (oldest first; the last is current).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyRecord {
    /// The key id (a UUID).
    pub key_id: String,
    pub account_id: String,
    pub region: String,
    pub created_ms: i64,
    pub description: String,
    pub manager: KeyManager,
    pub state: KeyState,
    /// While pending deletion: when the key is destroyed, and the window asked for.
    pub deletion_due_ms: Option<i64>,
    pub pending_window_days: Option<i64>,
    /// The key policy (named `default`), as given.
    pub policy: String,
    pub tags: Vec<(String, String)>,
    pub rotation_enabled: bool,
    pub rotation_period_days: i64,
    pub next_rotation_ms: Option<i64>,
    /// When an on-demand rotation last started.
    pub on_demand_rotation_ms: Option<i64>,
    pub materials: Vec<KeyMaterialRecord>,
    /// Optimistic-concurrency counter, bumped by every write.
    pub revision: i64,
}

impl KmsKeyRecord {
    /// `arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`.
    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region, self.account_id, self.key_id
        )
    }

    /// The material new ciphertexts are made with.
    #[must_use]
    pub fn current_material(&self) -> Option<&KeyMaterialRecord> {
        self.materials.last()
    }
}

/// An alias (`alias/NAME`) pointing at a key of the same account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub account_id: String,
    pub region: String,
    /// With its `alias/` prefix.
    pub alias_name: String,
    pub target_key_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Persistence of KMS keys and aliases.
pub trait KeyStore {
    /// Inserts a key with its first material; with `alias`, inserts that alias in the same
    /// transaction (`AlreadyExists` if the alias is taken: nothing is written).
    fn insert_kms_key(
        &self,
        key: KmsKeyRecord,
        alias: Option<AliasRecord>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_kms_key(
        &self,
        key_id: &str,
    ) -> impl Future<Output = StoreResult<Option<KmsKeyRecord>>> + Send;

    /// The keys of an account in a region, oldest first.
    fn list_kms_keys(
        &self,
        account_id: &str,
        region: &str,
    ) -> impl Future<Output = StoreResult<Vec<KmsKeyRecord>>> + Send;

    /// Replaces a key's metadata if its stored revision is still `expected_revision`, and
    /// appends the materials of `key.materials` that are not stored yet.
    fn update_kms_key(
        &self,
        expected_revision: i64,
        key: KmsKeyRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Destroys a key: its row, every material version and the aliases pointing at it.
    fn destroy_kms_key(&self, key_id: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Keys whose deletion is due at or before `now_ms`.
    fn kms_keys_due_for_deletion(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// Keys whose automatic rotation is due at or before `now_ms`.
    fn kms_keys_due_for_rotation(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    fn insert_alias(&self, alias: AliasRecord) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> impl Future<Output = StoreResult<Option<AliasRecord>>> + Send;

    /// Aliases of an account in a region, by name.
    fn list_aliases(
        &self,
        account_id: &str,
        region: &str,
    ) -> impl Future<Output = StoreResult<Vec<AliasRecord>>> + Send;

    /// Points an alias at another key; false if the alias does not exist.
    fn retarget_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
        target_key_id: &str,
        updated_ms: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

// ---- storage encoding of a key's metadata (versioned) ----

#[derive(Serialize, Deserialize)]
struct StoredKey {
    v: u32,
    description: String,
    manager: KeyManager,
    state: KeyState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_window_days: Option<i64>,
    policy: String,
    #[serde(default)]
    tags: Vec<(String, String)>,
    rotation_enabled: bool,
    rotation_period_days: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_demand_rotation_ms: Option<i64>,
}

pub(crate) const KMS_MIGRATION: &str = "CREATE TABLE kms_keys (
        key_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        region TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        deletion_due_ms INTEGER,
        next_rotation_ms INTEGER,
        record TEXT NOT NULL
     );
     CREATE INDEX kms_keys_by_account ON kms_keys(account_id, region, created_ms);
     CREATE INDEX kms_keys_deletion_due ON kms_keys(deletion_due_ms) WHERE deletion_due_ms IS NOT NULL;
     CREATE INDEX kms_keys_rotation_due ON kms_keys(next_rotation_ms) WHERE next_rotation_ms IS NOT NULL;
     CREATE TABLE kms_key_materials (
        key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        material_id TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        rotation_type TEXT,
        sealed BLOB NOT NULL,
        PRIMARY KEY (key_id, seq),
        UNIQUE (key_id, material_id)
     );
     CREATE TABLE kms_aliases (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        region TEXT NOT NULL,
        alias_name TEXT NOT NULL,
        target_key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (account_id, region, alias_name)
     );
     CREATE INDEX kms_aliases_by_key ON kms_aliases(target_key_id);";

fn encode_key(k: &KmsKeyRecord) -> StoreResult<String> {
    serde_json::to_string(&StoredKey {
        v: 1,
        description: k.description.clone(),
        manager: k.manager,
        state: k.state,
        pending_window_days: k.pending_window_days,
        policy: k.policy.clone(),
        tags: k.tags.clone(),
        rotation_enabled: k.rotation_enabled,
        rotation_period_days: k.rotation_period_days,
        on_demand_rotation_ms: k.on_demand_rotation_ms,
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

const KEY_COLUMNS: &str =
    "key_id, account_id, region, created_ms, revision, deletion_due_ms, next_rotation_ms, record";

fn decode_key(conn: &rusqlite::Connection, row: &rusqlite::Row<'_>) -> StoreResult<KmsKeyRecord> {
    let key_id: String = row.get(0)?;
    let record: String = row.get(7)?;
    let stored: StoredKey = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("kms key record: {e}")))?;
    if stored.v != 1 {
        return Err(StoreError::Corrupt(format!(
            "unknown kms key record version {}",
            stored.v
        )));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT material_id, created_ms, rotation_type, sealed FROM kms_key_materials WHERE key_id = ?1 ORDER BY seq",
    )?;
    let materials = stmt
        .query_map([&key_id], |r| {
            Ok(KeyMaterialRecord {
                material_id: r.get(0)?,
                created_ms: r.get(1)?,
                rotation_type: r.get(2)?,
                sealed: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(KmsKeyRecord {
        key_id,
        account_id: row.get(1)?,
        region: row.get(2)?,
        created_ms: row.get(3)?,
        revision: row.get(4)?,
        deletion_due_ms: row.get(5)?,
        next_rotation_ms: row.get(6)?,
        description: stored.description,
        manager: stored.manager,
        state: stored.state,
        pending_window_days: stored.pending_window_days,
        policy: stored.policy,
        tags: stored.tags,
        rotation_enabled: stored.rotation_enabled,
        rotation_period_days: stored.rotation_period_days,
        on_demand_rotation_ms: stored.on_demand_rotation_ms,
        materials,
    })
}

fn insert_materials(
    tx: &rusqlite::Transaction<'_>,
    key_id: &str,
    materials: &[KeyMaterialRecord],
) -> StoreResult<()> {
    let stored: i64 = tx.query_row(
        "SELECT COUNT(*) FROM kms_key_materials WHERE key_id = ?1",
        [key_id],
        |r| r.get(0),
    )?;
    let skip = usize::try_from(stored).unwrap_or(usize::MAX);
    let mut ins = tx.prepare_cached(
        "INSERT INTO kms_key_materials (key_id, seq, material_id, created_ms, rotation_type, sealed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, m) in materials.iter().enumerate().skip(skip) {
        let seq =
            i64::try_from(seq).map_err(|_| StoreError::Corrupt("too many materials".into()))?;
        ins.execute(params![
            key_id,
            seq,
            m.material_id,
            m.created_ms,
            m.rotation_type,
            m.sealed
        ])?;
    }
    Ok(())
}

fn alias_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AliasRecord> {
    Ok(AliasRecord {
        account_id: r.get(0)?,
        region: r.get(1)?,
        alias_name: r.get(2)?,
        target_key_id: r.get(3)?,
        created_ms: r.get(4)?,
        updated_ms: r.get(5)?,
    })
}

const ALIAS_COLUMNS: &str = "account_id, region, alias_name, target_key_id, created_ms, updated_ms";

fn insert_alias_row(conn: &rusqlite::Connection, a: &AliasRecord) -> StoreResult<()> {
    conn.execute(
        &format!("INSERT INTO kms_aliases ({ALIAS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
        params![
            a.account_id,
            a.region,
            a.alias_name,
            a.target_key_id,
            a.created_ms,
            a.updated_ms
        ],
    )?;
    Ok(())
}

impl KeyStore for SqliteStore {
    async fn insert_kms_key(
        &self,
        key: KmsKeyRecord,
        alias: Option<AliasRecord>,
    ) -> StoreResult<()> {
        let record = encode_key(&key)?;
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                &format!(
                    "INSERT INTO kms_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    key.key_id,
                    key.account_id,
                    key.region,
                    key.created_ms,
                    key.revision,
                    key.deletion_due_ms,
                    key.next_rotation_ms,
                    record
                ],
            )?;
            insert_materials(&tx, &key.key_id, &key.materials)?;
            if let Some(a) = &alias {
                insert_alias_row(&tx, a)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_kms_key(&self, key_id: &str) -> StoreResult<Option<KmsKeyRecord>> {
        if let Some(hit) = self.cached_kms_key(key_id) {
            return Ok(Some(hit));
        }
        let generation = self.cache_generation();
        let found = self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM kms_keys WHERE key_id = ?1"
            ))?;
            let mut rows = stmt.query([key_id])?;
            match rows.next()? {
                Some(row) => Ok(Some(decode_key(conn, row)?)),
                None => Ok(None),
            }
        })?;
        if let Some(k) = &found {
            self.cache_kms_key(generation, k);
        }
        Ok(found)
    }

    async fn list_kms_keys(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<KmsKeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM kms_keys WHERE account_id = ?1 AND region = ?2 ORDER BY created_ms, key_id"
            ))?;
            let mut rows = stmt.query(params![account_id, region])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode_key(conn, row)?);
            }
            Ok(out)
        })
    }

    async fn update_kms_key(&self, expected_revision: i64, key: KmsKeyRecord) -> StoreResult<()> {
        let record = encode_key(&key)?;
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let changed = tx.execute(
                "UPDATE kms_keys SET revision = ?1, deletion_due_ms = ?2, next_rotation_ms = ?3, record = ?4
                 WHERE key_id = ?5 AND revision = ?6",
                params![
                    key.revision,
                    key.deletion_due_ms,
                    key.next_rotation_ms,
                    record,
                    key.key_id,
                    expected_revision
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            insert_materials(&tx, &key.key_id, &key.materials)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn destroy_kms_key(&self, key_id: &str) -> StoreResult<()> {
        let key_id = key_id.to_string();
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM kms_aliases WHERE target_key_id = ?1",
                [&key_id],
            )?;
            tx.execute("DELETE FROM kms_key_materials WHERE key_id = ?1", [&key_id])?;
            tx.execute("DELETE FROM kms_keys WHERE key_id = ?1", [&key_id])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn kms_keys_due_for_deletion(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key_id FROM kms_keys WHERE deletion_due_ms IS NOT NULL AND deletion_due_ms <= ?1",
            )?;
            Ok(stmt
                .query_map([now_ms], |r| r.get(0))?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn kms_keys_due_for_rotation(&self, now_ms: i64) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT key_id FROM kms_keys WHERE next_rotation_ms IS NOT NULL AND next_rotation_ms <= ?1",
            )?;
            Ok(stmt
                .query_map([now_ms], |r| r.get(0))?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn insert_alias(&self, alias: AliasRecord) -> StoreResult<()> {
        self.write(move |conn| insert_alias_row(conn, &alias)).await
    }

    async fn get_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> StoreResult<Option<AliasRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ALIAS_COLUMNS} FROM kms_aliases WHERE account_id = ?1 AND region = ?2 AND alias_name = ?3"
            ))?;
            Ok(stmt
                .query_row(params![account_id, region, alias_name], alias_from_row)
                .optional()?)
        })
    }

    async fn list_aliases(&self, account_id: &str, region: &str) -> StoreResult<Vec<AliasRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {ALIAS_COLUMNS} FROM kms_aliases WHERE account_id = ?1 AND region = ?2 ORDER BY alias_name"
            ))?;
            Ok(stmt
                .query_map(params![account_id, region], alias_from_row)?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn retarget_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
        target_key_id: &str,
        updated_ms: i64,
    ) -> StoreResult<bool> {
        let args = (
            account_id.to_string(),
            region.to_string(),
            alias_name.to_string(),
            target_key_id.to_string(),
        );
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE kms_aliases SET target_key_id = ?1, updated_ms = ?2 WHERE account_id = ?3 AND region = ?4 AND alias_name = ?5",
                params![args.3, updated_ms, args.0, args.1, args.2],
            )? > 0)
        })
        .await
    }

    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> StoreResult<bool> {
        let args = (
            account_id.to_string(),
            region.to_string(),
            alias_name.to_string(),
        );
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM kms_aliases WHERE account_id = ?1 AND region = ?2 AND alias_name = ?3",
                params![args.0, args.1, args.2],
            )? > 0)
        })
        .await
    }
}
