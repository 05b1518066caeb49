//! STUB: replaced by the real service logic. Public API that the server builds against.
use std::path::Path;
use std::sync::Arc;

pub mod clock;
pub use coffer_crypto::SecretBytes;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Internal(String),
}

/// Options for `Coffer::init`.
#[derive(Debug, Default, Clone)]
pub struct InitOptions {
    /// 12-digit account id of the first account; random when `None`.
    pub account_id: Option<String>,
}

/// What `init` made: the first account's root credentials, shown once.
#[derive(Debug)]
pub struct InitOutcome {
    pub account_id: String,
    pub access_key_id: String,
    pub secret_access_key: SecretBytes,
}

/// The service: all secrets, accounts and credentials of one data directory.
pub struct Coffer {
    _clock: Arc<dyn clock::Clock>,
}

impl Coffer {
    /// Creates a data directory (root key file, store, first account and its root access key).
    pub fn init(_data_dir: &Path, _options: &InitOptions) -> Result<InitOutcome, CoreError> {
        Err(CoreError::Internal("not yet".into()))
    }
    /// Opens an initialised data directory.
    pub fn open(_data_dir: &Path, clock: Arc<dyn clock::Clock>) -> Result<Coffer, CoreError> {
        Ok(Coffer { _clock: clock })
    }
    /// Purges secrets whose recovery window has ended. Returns how many were purged.
    pub async fn purge_due(&self) -> Result<usize, CoreError> {
        Ok(0)
    }
}
