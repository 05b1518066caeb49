//! The key hierarchy in memory: the root key, and account keys unwrapped on first use.
//!
//! root key (never in the store) → KMS key material (stored sealed by the root key) → data
//! key per secret version (stored as a KMS ciphertext) → the value. Values written before
//! the key service existed have their data key wrapped by the account key (stored wrapped by
//! the root key); they still open.
//! Virtual MFA device seeds are sealed by the account key.
//! Every wrap and seal carries associated data naming the row it belongs to, so ciphertext
//! copied to another row, account or version fails to open.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use coffer_crypto::{SecretBytes, SymmetricKey};
use coffer_rootkey::RootKeys;
use coffer_store::{AccountRecord, SealedValue, ValueKind};

use crate::CoreError;

pub(crate) struct Keyring {
    /// The root key generations; replaced while a root key rotation runs.
    root: RwLock<RootKeys>,
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

pub(crate) fn account_key_aad(account_id: &str) -> Vec<u8> {
    [b"coffer/account-key/v1".as_slice(), account_id.as_bytes()].join(&0u8)
}

pub(crate) fn key_material_aad(key_arn: &str, material_id: &str) -> Vec<u8> {
    [
        b"coffer/kms-key-material/v1".as_slice(),
        key_arn.as_bytes(),
        material_id.as_bytes(),
    ]
    .join(&0u8)
}

/// A virtual MFA device's seed is bound to its account and serial number (the device's ARN).
pub(crate) fn mfa_seed_aad(account_id: &str, serial_number: &str) -> Vec<u8> {
    [
        b"coffer/mfa-seed/v1".as_slice(),
        account_id.as_bytes(),
        serial_number.as_bytes(),
    ]
    .join(&0u8)
}

/// A key of the service itself (the audit signing key) is bound to its name.
pub(crate) fn service_key_aad(name: &str) -> Vec<u8> {
    [b"coffer/service-key/v1".as_slice(), name.as_bytes()].join(&0u8)
}

pub(crate) fn access_key_aad(access_key_id: &str) -> Vec<u8> {
    [b"coffer/access-key/v1".as_slice(), access_key_id.as_bytes()].join(&0u8)
}

fn root_failure(what: &str) -> impl FnOnce(coffer_rootkey::RootKeyError) -> CoreError + '_ {
    move |e| CoreError::Internal(format!("{what}: {e}"))
}

impl Keyring {
    pub fn new(root: RootKeys) -> Self {
        Self {
            root: RwLock::new(root),
            accounts: RwLock::new(HashMap::new()),
        }
    }

    /// The root key generations in use now.
    pub fn root(&self) -> Result<RootKeys, CoreError> {
        self.root
            .read()
            .map(|r| r.clone())
            .map_err(|_| CoreError::Internal("root key lock poisoned".into()))
    }

    /// Replaces the root key generations (a rotation began or ended).
    pub fn set_root(&self, root: RootKeys) -> Result<(), CoreError> {
        let mut slot = self
            .root
            .write()
            .map_err(|_| CoreError::Internal("root key lock poisoned".into()))?;
        *slot = root;
        Ok(())
    }

    fn root_seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.root()?
            .seal(plaintext, aad)
            .map_err(root_failure("sealing under the root key"))
    }

    fn root_open_key(
        &self,
        blob: &[u8],
        aad: &[u8],
        what: &str,
    ) -> Result<SymmetricKey, CoreError> {
        let plain = self.root()?.open(blob, aad).map_err(root_failure(what))?;
        SymmetricKey::from_bytes(plain.expose()).map_err(|_| CoreError::Internal(what.to_string()))
    }

    /// A new account key, wrapped by the root key.
    pub fn new_account_key(&self, account_id: &str) -> Result<Vec<u8>, CoreError> {
        let key = SymmetricKey::generate()?;
        self.root_seal(key.expose(), &account_key_aad(account_id))
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
        let key = Arc::new(self.root_open_key(
            &account.wrapped_account_key,
            &account_key_aad(&account.account_id),
            &format!(
                "the key of account {} cannot be unwrapped with this root key",
                account.account_id
            ),
        )?);
        if let Ok(mut cache) = self.accounts.write() {
            cache.insert(account.account_id.clone(), Arc::clone(&key));
        }
        Ok(key)
    }

    /// Seals a value under a data key whose wrapping is the key service's business.
    pub fn seal_with_data_key(
        &self,
        data_key: &SymmetricKey,
        binding: &ValueBinding<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CoreError> {
        data_key
            .seal("data-key", plaintext, &binding.aad())
            .map_err(|_| CoreError::EncryptionFailure("Secrets Manager can't encrypt the protected secret text using the provided KMS key.".into()))
    }

    /// Opens a value sealed by [`Keyring::seal_with_data_key`] with the same binding.
    pub fn open_with_data_key(
        &self,
        data_key: &SymmetricKey,
        binding: &ValueBinding<'_>,
        sealed: &[u8],
    ) -> Result<SecretBytes, CoreError> {
        data_key.open(sealed, &binding.aad()).map_err(|_| {
            CoreError::DecryptionFailure("Secrets Manager can't decrypt the protected secret text using the provided KMS key.".into())
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

    /// Seals a KMS key's material under the root key, bound to the key and material ids.
    pub fn seal_key_material(
        &self,
        key_arn: &str,
        material_id: &str,
        material: &SymmetricKey,
    ) -> Result<Vec<u8>, CoreError> {
        self.root_seal(material.expose(), &key_material_aad(key_arn, material_id))
    }

    /// Opens material sealed by [`Keyring::seal_key_material`].
    pub fn open_key_material(
        &self,
        key_arn: &str,
        material_id: &str,
        sealed: &[u8],
    ) -> Result<SymmetricKey, CoreError> {
        self.root_open_key(
            sealed,
            &key_material_aad(key_arn, material_id),
            &format!("material {material_id} of {key_arn} cannot be opened with this root key"),
        )
    }

    /// Seals a virtual MFA device's TOTP seed under its account's key (itself sealed by the
    /// root key, so a root key rotation covers it), bound to the device.
    pub fn seal_mfa_seed(
        &self,
        account_key: &SymmetricKey,
        account_id: &str,
        serial_number: &str,
        seed: &SecretBytes,
    ) -> Result<Vec<u8>, CoreError> {
        account_key
            .seal(
                "account-key",
                seed.expose(),
                &mfa_seed_aad(account_id, serial_number),
            )
            .map_err(|_| CoreError::Internal("an MFA device's seed could not be sealed".into()))
    }

    /// Opens a seed sealed by [`Keyring::seal_mfa_seed`] for the same device.
    pub fn open_mfa_seed(
        &self,
        account_key: &SymmetricKey,
        account_id: &str,
        serial_number: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, CoreError> {
        account_key
            .open(sealed, &mfa_seed_aad(account_id, serial_number))
            .map_err(|_| {
                CoreError::Internal(format!(
                    "the seed of MFA device {serial_number} cannot be opened with its account key"
                ))
            })
    }

    /// Seals a key of the service itself (the audit signing key's PKCS#8) under the root key.
    pub fn seal_service_key(&self, name: &str, key: &[u8]) -> Result<Vec<u8>, CoreError> {
        self.root_seal(key, &service_key_aad(name))
    }

    /// Opens a key sealed by [`Keyring::seal_service_key`].
    pub fn open_service_key(&self, name: &str, sealed: &[u8]) -> Result<SecretBytes, CoreError> {
        self.root()?
            .open(sealed, &service_key_aad(name))
            .map_err(root_failure("opening a service key"))
    }

    pub fn seal_access_secret(
        &self,
        access_key_id: &str,
        secret: &SecretBytes,
    ) -> Result<Vec<u8>, CoreError> {
        self.root_seal(secret.expose(), &access_key_aad(access_key_id))
    }

    pub fn open_access_secret(
        &self,
        access_key_id: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, CoreError> {
        self.root()?
            .open(sealed, &access_key_aad(access_key_id))
            .map_err(|e| {
                CoreError::Internal(format!(
                    "access key {access_key_id} cannot be opened with this root key: {e}"
                ))
            })
    }
}
