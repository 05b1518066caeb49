//! A root key generation whose 32 bytes are in this process's memory (file and passphrase
//! providers), sealing with coffer-crypto's envelope.
//!
//! Owns those bytes for the generation's lifetime (zeroized on drop by `SymmetricKey`). Must
//! never hand them out: no accessor, redacted `Debug`.

use coffer_crypto::{SecretBytes, SymmetricKey, envelope_key_id};

use crate::{RootKey, RootKeyError};

pub(crate) struct SoftwareKey {
    label: String,
    generation: u32,
    key: SymmetricKey,
}

impl SoftwareKey {
    pub(crate) fn new(label: String, generation: u32, key: SymmetricKey) -> Self {
        Self {
            label,
            generation,
            key,
        }
    }
}

impl RootKey for SoftwareKey {
    fn label(&self) -> &str {
        &self.label
    }

    fn generation(&self) -> u32 {
        self.generation
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, RootKeyError> {
        self.key
            .seal(&self.label, plaintext, aad)
            .map_err(|_| RootKeyError::Seal)
    }

    fn open(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, RootKeyError> {
        // The header is authenticated anyway; checking it first gives the clearer error.
        if envelope_key_id(blob).map_err(|_| RootKeyError::Open)? != self.label {
            return Err(RootKeyError::Open);
        }
        self.key.open(blob, aad).map_err(|_| RootKeyError::Open)
    }
}

impl std::fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKey")
            .field("label", &self.label)
            .field("generation", &self.generation)
            .field("key", &"<redacted>")
            .finish()
    }
}
