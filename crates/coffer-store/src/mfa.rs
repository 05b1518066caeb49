//! Virtual MFA devices as stored: the device (path and name, unique per account regardless of
//! case), its TOTP seed sealed by the core under the account key (the store never sees the
//! seed), the user it is enabled for, and the state of its one-time codes: the counter of the
//! last accepted code and the clock drift measured by a resync.
//!
//! The store keeps no MFA rules: which codes are valid and when a device may be enabled or
//! deleted are the core's. Every change is a compare-and-swap on the device's `revision`, so
//! two requests presenting the same code cannot both consume it.

use std::future::Future;

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::{SqliteStore, StoreError, StoreResult};

/// A virtual MFA device.
#[derive(Clone, PartialEq, Eq)]
pub struct MfaDeviceRecord {
    pub account_id: String,
    /// `/` or `/a/b/`.
    pub path: String,
    pub name: String,
    /// The TOTP seed, sealed by the core; never the seed itself.
    pub sealed_seed: Vec<u8>,
    /// The user the device is enabled for, while it is.
    pub user_name: Option<String>,
    pub enabled_ms: Option<i64>,
    /// The TOTP counter (time step) of the last accepted code: only a later one is accepted.
    pub last_counter: i64,
    /// How many time steps the device's clock runs ahead of ours (negative: behind), as the
    /// last resync measured it.
    pub drift_steps: i64,
    /// Tags, in the order they were added.
    pub tags: Vec<(String, String)>,
    pub created_ms: i64,
    /// Optimistic-concurrency counter, bumped by every write.
    pub revision: i64,
}

impl MfaDeviceRecord {
    /// The serial number, which for a virtual device is its ARN:
    /// `arn:aws:iam::ACCOUNT:mfa{PATH}{NAME}`.
    #[must_use]
    pub fn serial_number(&self) -> String {
        format!(
            "arn:aws:iam::{}:mfa{}{}",
            self.account_id, self.path, self.name
        )
    }
}

impl std::fmt::Debug for MfaDeviceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaDeviceRecord")
            .field("serial_number", &self.serial_number())
            .field("user_name", &self.user_name)
            .field("enabled_ms", &self.enabled_ms)
            .field("last_counter", &self.last_counter)
            .field("drift_steps", &self.drift_steps)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

/// Persistence of virtual MFA devices; every write is atomic and durable when it resolves.
pub trait MfaStore {
    /// Inserts a new device (its `revision` as given). `AlreadyExists` when a device with the
    /// same path and name, in any case, exists in the account.
    fn insert_mfa_device(
        &self,
        device: MfaDeviceRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// The device whose path and name are `path_and_name` (`/PATH/NAME`, any case).
    fn get_mfa_device(
        &self,
        account_id: &str,
        path_and_name: &str,
    ) -> impl Future<Output = StoreResult<Option<MfaDeviceRecord>>> + Send;

    /// Every device of an account, ordered by path and name.
    fn list_mfa_devices(
        &self,
        account_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<MfaDeviceRecord>>> + Send;

    /// The devices enabled for a user (any case), in the order they were enabled.
    fn user_mfa_devices(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> impl Future<Output = StoreResult<Vec<MfaDeviceRecord>>> + Send;

    /// Replaces a device's user, enable date, code state and tags if its stored revision is
    /// still `expected_revision` and, when `device.user_name` is set, that user still exists;
    /// `Conflict` otherwise. The stored revision becomes `device.revision`.
    fn update_mfa_device(
        &self,
        expected_revision: i64,
        device: MfaDeviceRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes a device if its stored revision is still `expected_revision`; `Conflict` if it
    /// changed or is gone.
    fn delete_mfa_device(
        &self,
        account_id: &str,
        path_and_name: &str,
        expected_revision: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}

pub(crate) const MFA_MIGRATION: &str = "CREATE TABLE iam_mfa_devices (
        account_id TEXT NOT NULL REFERENCES accounts(account_id),
        serial_key TEXT NOT NULL,
        path TEXT NOT NULL,
        name TEXT NOT NULL,
        sealed_seed BLOB NOT NULL,
        user_key TEXT,
        user_name TEXT,
        enabled_ms INTEGER,
        last_counter INTEGER NOT NULL DEFAULT 0,
        drift_steps INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        revision INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (account_id, serial_key)
     );
     CREATE INDEX iam_mfa_devices_by_user ON iam_mfa_devices(account_id, user_key) WHERE user_key IS NOT NULL;";

/// Keys compare without regard to case, as IAM names do (the same folding as principals).
pub(crate) fn name_key(name: &str) -> String {
    name.to_lowercase()
}

// ---- storage encoding of a device's metadata (versioned) ----

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    v: u32,
    #[serde(default)]
    tags: Vec<(String, String)>,
}

fn encode_device(d: &MfaDeviceRecord) -> StoreResult<String> {
    serde_json::to_string(&StoredDevice {
        v: 1,
        tags: d.tags.clone(),
    })
    .map_err(|e| StoreError::Corrupt(e.to_string()))
}

const DEVICE_COLUMNS: &str = "account_id, path, name, sealed_seed, user_name, enabled_ms, last_counter, drift_steps, created_ms, revision, record";

fn decode_device(r: &rusqlite::Row<'_>) -> StoreResult<MfaDeviceRecord> {
    let record: String = r.get(10)?;
    let stored: StoredDevice = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupt(format!("mfa device record: {e}")))?;
    if stored.v != 1 {
        return Err(StoreError::Corrupt(format!(
            "unknown mfa device record version {}",
            stored.v
        )));
    }
    Ok(MfaDeviceRecord {
        account_id: r.get(0)?,
        path: r.get(1)?,
        name: r.get(2)?,
        sealed_seed: r.get(3)?,
        user_name: r.get(4)?,
        enabled_ms: r.get(5)?,
        last_counter: r.get(6)?,
        drift_steps: r.get(7)?,
        created_ms: r.get(8)?,
        revision: r.get(9)?,
        tags: stored.tags,
    })
}

fn query_devices(
    conn: &rusqlite::Connection,
    sql_where: &str,
    args: &[&dyn rusqlite::ToSql],
) -> StoreResult<Vec<MfaDeviceRecord>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM iam_mfa_devices WHERE {sql_where}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(decode_device(row)?);
    }
    Ok(out)
}

impl MfaStore for SqliteStore {
    async fn insert_mfa_device(&self, d: MfaDeviceRecord) -> StoreResult<()> {
        let record = encode_device(&d)?;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO iam_mfa_devices (account_id, serial_key, path, name, sealed_seed, user_key, user_name, enabled_ms, last_counter, drift_steps, created_ms, revision, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    d.account_id,
                    name_key(&format!("{}{}", d.path, d.name)),
                    d.path,
                    d.name,
                    d.sealed_seed,
                    d.user_name.as_deref().map(name_key),
                    d.user_name,
                    d.enabled_ms,
                    d.last_counter,
                    d.drift_steps,
                    d.created_ms,
                    d.revision,
                    record
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_mfa_device(
        &self,
        account_id: &str,
        path_and_name: &str,
    ) -> StoreResult<Option<MfaDeviceRecord>> {
        let key = name_key(path_and_name);
        self.read(|conn| {
            Ok(query_devices(
                conn,
                "account_id = ?1 AND serial_key = ?2",
                &[&account_id, &key],
            )?
            .pop())
        })
    }

    async fn list_mfa_devices(&self, account_id: &str) -> StoreResult<Vec<MfaDeviceRecord>> {
        self.read(|conn| query_devices(conn, "account_id = ?1 ORDER BY serial_key", &[&account_id]))
    }

    async fn user_mfa_devices(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> StoreResult<Vec<MfaDeviceRecord>> {
        let key = name_key(user_name);
        self.read(|conn| {
            query_devices(
                conn,
                "account_id = ?1 AND user_key = ?2 ORDER BY enabled_ms, serial_key",
                &[&account_id, &key],
            )
        })
    }

    async fn update_mfa_device(
        &self,
        expected_revision: i64,
        d: MfaDeviceRecord,
    ) -> StoreResult<()> {
        let record = encode_device(&d)?;
        self.write(move |conn| {
            let user_key = d.user_name.as_deref().map(name_key);
            let changed = conn.execute(
                "UPDATE iam_mfa_devices
                    SET user_key = ?1, user_name = ?2, enabled_ms = ?3, last_counter = ?4, drift_steps = ?5, revision = ?6, record = ?7
                  WHERE account_id = ?8 AND serial_key = ?9 AND revision = ?10
                    AND (?1 IS NULL OR EXISTS (SELECT 1 FROM iam_principals p
                          WHERE p.account_id = ?8 AND p.kind = 'user' AND p.name_key = ?1))",
                params![
                    user_key,
                    d.user_name,
                    d.enabled_ms,
                    d.last_counter,
                    d.drift_steps,
                    d.revision,
                    record,
                    d.account_id,
                    name_key(&format!("{}{}", d.path, d.name)),
                    expected_revision
                ],
            )?;
            if changed == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }

    async fn delete_mfa_device(
        &self,
        account_id: &str,
        path_and_name: &str,
        expected_revision: i64,
    ) -> StoreResult<()> {
        let (a, k) = (account_id.to_owned(), name_key(path_and_name));
        self.write(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM iam_mfa_devices WHERE account_id = ?1 AND serial_key = ?2 AND revision = ?3",
                params![a, k, expected_revision],
            )?;
            if deleted == 1 {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            }
        })
        .await
    }
}

/// Keeps devices with their user when the user is renamed (inside `rename_principal`'s
/// transaction).
pub(crate) fn rename_user(
    tx: &rusqlite::Transaction<'_>,
    account_id: &str,
    old_key: &str,
    new_name: &str,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE iam_mfa_devices SET user_key = ?1, user_name = ?2, revision = revision + 1
          WHERE account_id = ?3 AND user_key = ?4",
        params![name_key(new_name), new_name, account_id, old_key],
    )?;
    Ok(())
}

/// Leaves no device enabled for a user that is deleted (inside `delete_principal`'s
/// transaction). The core refuses to delete a user with an enabled device; this only settles
/// a device enabled concurrently with the deletion.
pub(crate) fn release_user(
    tx: &rusqlite::Transaction<'_>,
    account_id: &str,
    user_key: &str,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE iam_mfa_devices SET user_key = NULL, user_name = NULL, enabled_ms = NULL, revision = revision + 1
          WHERE account_id = ?1 AND user_key = ?2",
        params![account_id, user_key],
    )?;
    Ok(())
}
