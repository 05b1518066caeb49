//! coffer's service logic, independent of transport and storage engine: accounts and their
//! credentials, secrets with versions and staging labels, envelope encryption of every value,
//! deletion with a recovery window, and the purge that ends it.
//!
//! This crate owns the rules of the Secrets Manager model (what AWS does, and with which
//! error). It must never know HTTP or SQL: requests arrive as typed inputs from
//! `coffer-protocol`, and persistence goes through the `coffer_store::Store` trait, which
//! only ever receives ciphertext. Time comes from an injected [`clock::Clock`].

pub mod audit;
mod authz;
pub mod clock;
mod error;
mod iam;
mod identity;
pub mod ids;
mod keyring;
pub mod kms;
pub mod listing;
mod mfa;
pub mod password;
mod policies;
mod qr;
mod root_rotation;
pub mod rotation;
mod secrets;
mod simulate;
pub mod stages;
mod sts;

use std::path::Path;
use std::sync::Arc;

pub use authz::RequestKeys;
pub use coffer_crypto::SecretBytes;
pub use coffer_rootkey::{
    Pkcs11Config, ProviderKind, RootKeys, Unlock, provider_of as root_key_provider,
};
pub use coffer_store::{
    AccessKeyRecord, AccessKeyUse, AliasRecord, KeyManager, KeyState, KmsKeyRecord,
    PolicyVersionRecord, PrincipalKind, PrincipalRecord, SecretRecord, SqliteStore, Store,
    ValueKind, VersionRecord,
};
pub use error::{CoreError, KmsCode};
pub use iam::{
    AWS_MANAGED_POLICIES, AuthorizationDetails, ManagedPolicy, NewAccessKey, PrincipalDetail,
    RoleInput, aws_managed_document,
};
pub use identity::{AccessKeyIdentity, Caller, PrincipalType, RoleSession, Session};
pub use mfa::{
    AssignmentStatus, MFA_INVALID_CODE, MFA_UNVALIDATED, MfaDevice, NewVirtualMfaDevice,
    VirtualMfaDevice,
};
pub use root_rotation::RootRotation;
pub use secrets::*;
pub use simulate::{Simulation, SimulationResult, SimulationSource};
pub use sts::{
    AssumeRoleInput, AssumedRole, CallerIdentity, SessionCredentials, TemporaryCredentials,
    TokenRejection,
};

use clock::Clock;
use keyring::Keyring;

/// Options for [`Coffer::init`].
#[derive(Debug, Default, Clone)]
pub struct InitOptions {
    /// 12-digit account id of the first account; random when `None`.
    pub account_id: Option<String>,
}

/// What [`Coffer::init`] made: the first account's root credentials, shown once.
#[derive(Debug)]
pub struct InitOutcome {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: SecretBytes,
}

/// The service over one store: every operation of every account in it.
pub struct Coffer<S: Store = SqliteStore> {
    store: S,
    keyring: Keyring,
    clock: Arc<dyn Clock>,
    credentials_epoch: std::sync::atomic::AtomicU64,
    policy_cache: authz::PolicyCache,
    kms_cache: kms::KmsCache,
    sts_keys: sts::StsKeyCache,
    rotation: rotation::RotationRuntime,
    /// The data directory, where the root key's descriptor lives (`None` for a bare store).
    data_dir: Option<std::path::PathBuf>,
    /// One root key rotation at a time.
    root_rotation: tokio::sync::Mutex<()>,
    /// The audit trail, once the server opened it (`None` for a bare store and offline tools).
    audit: std::sync::OnceLock<Arc<audit::AuditTrail>>,
}

impl Coffer<SqliteStore> {
    /// Creates a data directory's contents with a root key file: see [`Coffer::init_with`].
    pub fn init(data_dir: &Path, options: &InitOptions) -> Result<InitOutcome, CoreError> {
        Self::init_with(data_dir, options, &Unlock::File)
    }

    /// Creates a data directory's contents: the root key (file 0600, passphrase-protected or
    /// in a PKCS#11 token, as `unlock` says), the SQLite store, and the first account with its
    /// root access key. Fails if the directory is initialised.
    pub fn init_with(
        data_dir: &Path,
        options: &InitOptions,
        unlock: &Unlock,
    ) -> Result<InitOutcome, CoreError> {
        let db_path = data_dir.join(coffer_store::DB_FILE);
        let initialised = db_path.exists()
            || coffer_rootkey::provider_of(data_dir)
                .map_err(|e| CoreError::InvalidRequest(e.to_string()))?
                .is_some();
        if initialised {
            return Err(CoreError::InvalidRequest(format!(
                "{} is already initialised; start it with `coffer server --data-dir {}`",
                data_dir.display(),
                data_dir.display()
            )));
        }
        let root = coffer_rootkey::create(data_dir, unlock)
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let store = SqliteStore::open(&db_path)?;
        let mut coffer = Coffer::with_store(store, root, Arc::new(clock::SystemClock));
        coffer.data_dir = Some(data_dir.to_path_buf());
        let account_id = options.account_id.clone();
        // `init` is synchronous so that it can run before any runtime exists and inside one
        // (dev mode); a short-lived thread with its own runtime serves both.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    CoreError::Internal(format!("cannot start a runtime for init: {e}"))
                })?;
            runtime.block_on(async {
                let outcome = coffer.create_account(account_id.as_deref()).await?;
                // The audit log's signing key is made with the data directory, so its public
                // half can be exported before the server first starts.
                coffer.audit_signing_key().await?;
                Ok(outcome)
            })
        })
        .join()
        .map_err(|_| CoreError::Internal("init thread panicked".into()))?
    }

    /// Opens an initialised data directory whose root key is a file.
    pub fn open(data_dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, CoreError> {
        Self::open_with(data_dir, clock, &Unlock::File)
    }

    /// Opens an initialised data directory, unlocking its root key with `unlock`.
    pub fn open_with(
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        unlock: &Unlock,
    ) -> Result<Self, CoreError> {
        let db_path = data_dir.join(coffer_store::DB_FILE);
        let provider = coffer_rootkey::provider_of(data_dir)
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        if provider.is_none() || !db_path.exists() {
            return Err(CoreError::InvalidRequest(format!(
                "{} is not an initialised coffer data directory; run `coffer init --data-dir {}` first",
                data_dir.display(),
                data_dir.display()
            )));
        }
        let root = coffer_rootkey::open(data_dir, unlock)
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let store = SqliteStore::open(&db_path)?;
        let mut coffer = Coffer::with_store(store, root, clock);
        coffer.data_dir = Some(data_dir.to_path_buf());
        Ok(coffer)
    }
}

impl<S: Store> Coffer<S> {
    /// A service over any store (tests, other backends).
    pub fn with_store(store: S, root: RootKeys, clock: Arc<dyn Clock>) -> Self {
        Coffer {
            store,
            keyring: Keyring::new(root),
            clock,
            credentials_epoch: std::sync::atomic::AtomicU64::new(0),
            policy_cache: authz::PolicyCache::default(),
            kms_cache: kms::KmsCache::default(),
            sts_keys: sts::StsKeyCache::default(),
            rotation: rotation::RotationRuntime::default(),
            data_dir: None,
            root_rotation: tokio::sync::Mutex::new(()),
            audit: std::sync::OnceLock::new(),
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The audit trail, when one is open.
    pub fn audit(&self) -> Option<&Arc<audit::AuditTrail>> {
        self.audit.get()
    }
}
