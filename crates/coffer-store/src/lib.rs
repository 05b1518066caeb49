//! Persistence for coffer: the [`Store`] trait and its embedded SQLite implementation.
//!
//! The store owns the schema, migrations and the storage encoding of records. It sees only
//! ciphertext: secret values arrive already sealed and wrapped by `coffer-core`, and no
//! plaintext, key material in the clear or password ever passes through this crate.
//! It holds no domain rules: which version carries which stage, what may be deleted and when
//! is decided by the core, which hands the store whole records to write. Concurrent writers
//! are serialised by an optimistic `revision` on each secret: a write whose expected
//! revision no longer matches fails with [`StoreError::Conflict`] and the core retries.

mod identity;
mod kms;
mod mfa;
mod records;
mod rotation;
mod sqlite;

use std::future::Future;

pub use identity::{
    AccessKeyUse, IdentityStore, ManagedPolicyRecord, PolicyVersionRecord, PrincipalKind,
    PrincipalRecord,
};
pub use kms::{AliasRecord, KeyManager, KeyMaterialRecord, KeyState, KeyStore, KmsKeyRecord};
pub use mfa::{MfaDeviceRecord, MfaStore};
pub use records::{
    AccessKeyRecord, AccountRecord, SealedValue, SecretRecord, ValueKind, VersionRecord,
};
pub use rotation::{
    RotationEventRecord, RotationFunctionKind, RotationFunctionRecord, RotationRecord, RotationRun,
    RotationStore, StepRecord,
};
pub use sqlite::{DB_FILE, SqliteStore};

/// Errors from the store. Messages never contain record contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record changed since it was read (optimistic concurrency); re-read and retry.
    #[error("the record was changed concurrently")]
    Conflict,
    /// A unique key (secret name in its account and region, ARN, account id, access key id) exists.
    #[error("a record with this key already exists")]
    AlreadyExists,
    /// The underlying database failed.
    #[error("database error: {0}")]
    Database(String),
    /// A stored record could not be decoded (corruption or a newer format).
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::AlreadyExists
            }
            other => StoreError::Database(other.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a secret write changes besides the record itself.
#[derive(Debug, Default)]
pub struct SecretWrite {
    /// Sealed values of versions created by this write.
    pub new_values: Vec<(String, SealedValue)>,
    /// Version ids whose values are removed (pruned deprecated versions).
    pub removed_versions: Vec<String>,
    /// Existing versions whose values are re-sealed (a secret moved to another KMS key).
    pub replaced_values: Vec<(String, SealedValue)>,
}

/// What a blob sealed under the root key protects; its associated data is built from this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSealedKind {
    /// An account's key (`accounts.wrapped_account_key`), by account id.
    AccountKey,
    /// An access key's secret (`access_keys.sealed_secret`), by access key id.
    AccessKeySecret,
    /// A KMS key's material version, by key id and material id.
    KeyMaterial,
    /// A key of the service itself (`service_keys.sealed`), by name.
    ServiceKey,
}

/// A blob sealed under the root key and where it lives (for root key rotation).
#[derive(Clone)]
pub struct RootSealed {
    pub kind: RootSealedKind,
    /// Account id, access key id, or KMS key id.
    pub id: String,
    /// KMS key material only: the material id and the key's ARN.
    pub material_id: Option<String>,
    pub key_arn: Option<String>,
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for RootSealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSealed")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("material_id", &self.material_id)
            .finish_non_exhaustive()
    }
}

/// Persistence operations. Implementations must make every write atomic and durable before
/// the returned future resolves (an acknowledged write survives `kill -9`).
pub trait Store:
    IdentityStore + KeyStore + MfaStore + RotationStore + Send + Sync + 'static
{
    /// Creates an account and its root access key in one transaction.
    fn insert_account(
        &self,
        account: AccountRecord,
        root_key: AccessKeyRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn get_account(
        &self,
        account_id: &str,
    ) -> impl Future<Output = StoreResult<Option<AccountRecord>>> + Send;

    fn list_accounts(&self) -> impl Future<Output = StoreResult<Vec<AccountRecord>>> + Send;

    fn get_access_key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = StoreResult<Option<AccessKeyRecord>>> + Send;

    fn get_secret_by_arn(
        &self,
        arn: &str,
    ) -> impl Future<Output = StoreResult<Option<SecretRecord>>> + Send;

    fn get_secret_by_name(
        &self,
        account_id: &str,
        region: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<SecretRecord>>> + Send;

    /// Every secret of an account in a region, deleted ones included; filtering is the core's.
    fn list_secrets(
        &self,
        account_id: &str,
        region: &str,
    ) -> impl Future<Output = StoreResult<Vec<SecretRecord>>> + Send;

    fn get_sealed_value(
        &self,
        arn: &str,
        version_id: &str,
    ) -> impl Future<Output = StoreResult<Option<SealedValue>>> + Send;

    /// Inserts a new secret (its `revision` is stored as given). Fails with `AlreadyExists`
    /// when the name is taken in the account and region.
    fn create_secret(
        &self,
        record: SecretRecord,
        write: SecretWrite,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Replaces a secret's record if its stored revision is still `expected_revision`; the
    /// stored revision becomes `record.revision`.
    fn update_secret(
        &self,
        expected_revision: i64,
        record: SecretRecord,
        write: SecretWrite,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Records that a version was read at `day_ms` (midnight UTC). Does not change the revision.
    fn touch_access(
        &self,
        arn: &str,
        version_id: &str,
        day_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes a secret with all its versions and values.
    fn purge_secret(&self, arn: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Every blob sealed under the root key.
    fn root_sealed(&self) -> impl Future<Output = StoreResult<Vec<RootSealed>>> + Send;

    /// Replaces a root-sealed blob if it is still `item.blob`; false if it changed or is gone.
    fn replace_root_sealed(
        &self,
        item: RootSealed,
        blob: Vec<u8>,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// A key of the service itself (such as the audit log's signing key), sealed under the
    /// root key.
    fn service_key(&self, name: &str) -> impl Future<Output = StoreResult<Option<Vec<u8>>>> + Send;

    /// Stores a service key unless one of that name exists; returns the stored one (so two
    /// processes racing to create it agree).
    fn insert_service_key(
        &self,
        name: &str,
        sealed: Vec<u8>,
        created_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<u8>>> + Send;

    /// ARNs of secrets whose deletion is due at or before `now_ms`.
    fn secrets_due_for_purge(
        &self,
        now_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
}
