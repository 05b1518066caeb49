//! The key hierarchy in memory: the root key, and account keys unwrapped on first use.
//!
//! root key (file, never in the store) → account key (stored wrapped by the root key) →
//! data key per secret version (stored wrapped by the account key) → the value.
//! Every wrap and seal carries associated data naming the row it belongs to, so ciphertext
//! copied to another row, account or version fails to open.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use coffer_crypto::{SecretBytes, SymmetricKey};
use coffer_store::{AccountRecord, SealedValue, ValueKind};

use crate::CoreError;

pub(crate) struct Keyring {
    root: SymmetricKey,
    accounts: RwLock<HashMap<String, Arc<SymmetricKey>>>,
}

/// Where a secret value belongs; bound into its encryption as associated data.
pub(crate) struct ValueBinding<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    pub arn: &'a str,
    pub version_id: &'a str,
    pub kind: ValueKind,
}

impl ValueBinding<'_> {
    fn aad(&self) -> Vec<u8> {
        let kind = match self.kind {
            ValueKind::String => "string",
            ValueKind::Binary => "binary",
        };
        [
            b"coffer/secret-value/v1",
            self.account_id.as_bytes(),
            self.region.as_bytes(),
            self.arn.as_bytes(),
            self.version_id.as_bytes(),
            kind.as_bytes(),
        ]
        .join(&0u8)
    }
}

fn account_key_aad(account_id: &str) -> Vec<u8> {
    [b"coffer/account-key/v1".as_slice(), account_id.as_bytes()].join(&0u8)
}

pub(crate) fn access_key_aad(access_key_id: &str) -> Vec<u8> {
    [b"coffer/access-key/v1".as_slice(), access_key_id.as_bytes()].join(&0u8)
}

impl Keyring {
    pub fn new(root: SymmetricKey) -> Self {
        Self {
            root,
            accounts: RwLock::new(HashMap::new()),
        }
    }

    /// A new account key, wrapped by the root key.
    pub fn new_account_key(&self, account_id: &str) -> Result<Vec<u8>, CoreError> {
        let key = SymmetricKey::generate()?;
        Ok(self.root.wrap("root", &key, &account_key_aad(account_id))?)
    }

    /// The account key if it was unwrapped before.
    pub fn cached_account_key(&self, account_id: &str) -> Option<Arc<SymmetricKey>> {
        self.accounts
            .read()
            .ok()
            .and_then(|cache| cache.get(account_id).cloned())
    }

    /// Unwraps (and caches) an account's key.
    pub fn account_key(&self, account: &AccountRecord) -> Result<Arc<SymmetricKey>, CoreError> {
        if let Some(k) = self.cached_account_key(&account.account_id) {
            return Ok(k);
        }
        let key = Arc::new(
            self.root
                .unwrap_key(
                    &account.wrapped_account_key,
                    &account_key_aad(&account.account_id),
                )
                .map_err(|_| {
                    CoreError::Internal(format!(
                        "the key of account {} cannot be unwrapped with this root key",
                        account.account_id
                    ))
                })?,
        );
        if let Ok(mut cache) = self.accounts.write() {
            cache.insert(account.account_id.clone(), Arc::clone(&key));
        }
        Ok(key)
    }

    /// Seals a value under a fresh data key, wrapped by the account key.
    pub fn seal_value(
        &self,
        account_key: &SymmetricKey,
        binding: &ValueBinding<'_>,
        plaintext: &[u8],
    ) -> Result<SealedValue, CoreError> {
        let aad = binding.aad();
        let data_key = SymmetricKey::generate()?;
        let sealed = data_key
            .seal("data-key", plaintext, &aad)
            .map_err(|_| CoreError::EncryptionFailure("Secrets Manager can't encrypt the protected secret text using the provided KMS key.".into()))?;
        let wrapped_key =
            account_key.wrap(&format!("account/{}", binding.account_id), &data_key, &aad)?;
        Ok(SealedValue {
            wrapped_key,
            sealed,
        })
    }

    /// Opens a value sealed by [`Keyring::seal_value`] with the same binding.
    pub fn open_value(
        &self,
        account_key: &SymmetricKey,
        binding: &ValueBinding<'_>,
        value: &SealedValue,
    ) -> Result<SecretBytes, CoreError> {
        let aad = binding.aad();
        let failure = || {
            CoreError::DecryptionFailure("Secrets Manager can't decrypt the protected secret text using the provided KMS key.".into())
        };
        let data_key = account_key
            .unwrap_key(&value.wrapped_key, &aad)
            .map_err(|_| failure())?;
        data_key.open(&value.sealed, &aad).map_err(|_| failure())
    }

    pub fn seal_access_secret(
        &self,
        access_key_id: &str,
        secret: &SecretBytes,
    ) -> Result<Vec<u8>, CoreError> {
        Ok(self
            .root
            .seal("root", secret.expose(), &access_key_aad(access_key_id))?)
    }

    pub fn open_access_secret(
        &self,
        access_key_id: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, CoreError> {
        self.root
            .open(sealed, &access_key_aad(access_key_id))
            .map_err(|_| {
                CoreError::Internal(format!(
                    "access key {access_key_id} cannot be opened with this root key"
                ))
            })
    }
}
