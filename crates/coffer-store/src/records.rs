//! Plain records as the store reads and writes them. They carry no behaviour and are not
//! serialisable: the SQLite encoding lives privately in `sqlite.rs`.

/// An account and its key-encryption key, wrapped by the root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account_id: String,
    pub created_ms: i64,
    /// The account key sealed under the root key (envelope format of `coffer-crypto`).
    pub wrapped_account_key: Vec<u8>,
}

/// A long-term access key. The secret access key is sealed under the root key because SigV4
/// verification needs it back (HMAC), unlike a password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub account_id: String,
    /// `arn:aws:iam::ACCOUNT:root` or `arn:aws:iam::ACCOUNT:user/NAME`.
    pub principal_arn: String,
    pub user_name: Option<String>,
    pub sealed_secret: Vec<u8>,
    pub active: bool,
    pub created_ms: i64,
}

/// How a version's plaintext is to be returned: `SecretString` or `SecretBinary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Binary,
}

/// Metadata of one secret version. Its value is stored apart, as a [`SealedValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub version_id: String,
    pub stages: Vec<String>,
    pub created_ms: i64,
    /// Midnight UTC of the last day this version was read.
    pub last_accessed_ms: Option<i64>,
    pub kind: ValueKind,
    /// A version `RotateSecret` made for a rotation (labelled AWSPENDING) that has no value
    /// until the rotation function's createSecret puts one, as in AWS.
    pub empty: bool,
}

/// A secret's metadata and its versions' metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub arn: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub owning_service: Option<String>,
    pub created_ms: i64,
    pub last_changed_ms: i64,
    /// Midnight UTC of the last day any version was read.
    pub last_accessed_ms: Option<i64>,
    /// When `DeleteSecret` was called, while the secret is scheduled for deletion.
    pub deleted_ms: Option<i64>,
    /// When the purge is due, while the secret is scheduled for deletion.
    pub deletion_due_ms: Option<i64>,
    pub versions: Vec<VersionRecord>,
    /// The resource-based policy attached with `PutResourcePolicy`, as given.
    pub resource_policy: Option<String>,
    /// Rotation settings and the run in progress; `None` for a secret never set up to rotate.
    pub rotation: Option<crate::RotationRecord>,
    /// Optimistic-concurrency counter, bumped by every write.
    pub revision: i64,
}

/// A version's value as stored: the data key wrapped by the account key, and the value sealed
/// under the data key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub wrapped_key: Vec<u8>,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedValue({} + {} bytes)",
            self.wrapped_key.len(),
            self.sealed.len()
        )
    }
}
