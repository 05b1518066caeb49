//! The passphrase provider: Argon2id(passphrase, random 16-byte salt) derives a KEK; each
//! generation's root key is 32 random bytes stored in the descriptor sealed under that KEK.
//!
//! Sealing random keys, rather than using the derived key as the root key, means a rotation
//! needs no new passphrase and a passphrase change only re-seals these small blobs. Owns the
//! KEK while a store is open (zeroized on drop) and the KDF parameters. Must never store or
//! print the passphrase or the KEK, and never weaken the parameters unless explicitly asked.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use coffer_crypto::{SymmetricKey, fill_random, hex};
use zeroize::Zeroizing;

use crate::descriptor::{self, KdfRecord, KeyRef};
use crate::software::SoftwareKey;
use crate::{ProviderKind, RootKeyError};

const ALGORITHM: &str = "argon2id";
/// Key id in the header of a sealed generation key; never appears in data sealed by a root key.
const KEK_LABEL: &str = "coffer-rootkey/kek";
const SALT_LEN: usize = 16;

/// Argon2id cost: memory in KiB, passes, lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KdfParams {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option).
    pub(crate) const PRODUCTION: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// For tests only: fast, and worthless against guessing.
    pub(crate) const CHEAP: Self = Self {
        m_kib: 64,
        t: 1,
        p: 1,
    };
    // Upper bounds for parameters read back from a descriptor, so a tampered file cannot make
    // startup allocate without limit or spin forever.
    const MAX_M_KIB: u32 = 4 * 1024 * 1024;
    const MAX_T: u32 = 64;
    const MAX_P: u32 = 64;

    /// What `create` uses: production unless `COFFER_ARGON2_TEST_PARAMS=1` (a hidden switch
    /// for test suites that start the coffer binary; the descriptor records what was used).
    pub(crate) fn for_new_store() -> Self {
        if std::env::var_os("COFFER_ARGON2_TEST_PARAMS").is_some_and(|v| v == "1") {
            Self::CHEAP
        } else {
            Self::PRODUCTION
        }
    }
}

/// The passphrase-derived key-encryption key and the salt and parameters it came from.
pub(crate) struct Kek {
    key: SymmetricKey,
    record: KdfRecord,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

fn sealed_key_aad(label: &str) -> Vec<u8> {
    format!("coffer-rootkey/passphrase|{label}").into_bytes()
}

impl Kek {
    /// A KEK with a fresh salt, for a new store.
    pub(crate) fn create(passphrase: &str, params: KdfParams) -> Result<Self, RootKeyError> {
        if passphrase.is_empty() {
            return Err(RootKeyError::EmptyPassphrase);
        }
        let mut salt = [0u8; SALT_LEN];
        fill_random(&mut salt)?;
        let record = KdfRecord {
            algorithm: ALGORITHM.to_string(),
            salt: hex(&salt),
            m_kib: params.m_kib,
            t: params.t,
            p: params.p,
        };
        Self::derive(passphrase, &record)
    }

    /// The KEK a descriptor's record describes.
    pub(crate) fn derive(passphrase: &str, record: &KdfRecord) -> Result<Self, RootKeyError> {
        let kdf_err = |detail: String| RootKeyError::Kdf { detail };
        if record.algorithm != ALGORITHM {
            return Err(kdf_err(format!(
                "unsupported algorithm {:?}",
                record.algorithm
            )));
        }
        if record.m_kib > KdfParams::MAX_M_KIB
            || record.t > KdfParams::MAX_T
            || record.p > KdfParams::MAX_P
        {
            return Err(kdf_err("parameters out of range".to_string()));
        }
        let salt =
            descriptor::unhex(&record.salt).ok_or_else(|| kdf_err("malformed salt".to_string()))?;
        let params = Params::new(record.m_kib, record.t, record.p, Some(32))
            .map_err(|e| kdf_err(e.to_string()))?;
        let mut out = Zeroizing::new([0u8; 32]);
        // Our own working memory, zeroized afterwards: argon2 frees its own without wiping,
        // and the final blocks are as good as the KEK.
        let mut memory = Zeroizing::new(vec![Block::default(); params.block_count()]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(
                passphrase.as_bytes(),
                &salt,
                out.as_mut(),
                memory.as_mut_slice(),
            )
            .map_err(|e| kdf_err(e.to_string()))?;
        Ok(Self {
            key: SymmetricKey::from_bytes(out.as_ref())?,
            record: record.clone(),
        })
    }

    pub(crate) fn record(&self) -> &KdfRecord {
        &self.record
    }

    /// A fresh random generation key, and its reference (sealed under this KEK).
    pub(crate) fn new_generation(
        &self,
        generation: u32,
    ) -> Result<(SoftwareKey, KeyRef), RootKeyError> {
        let label = descriptor::expected_label(ProviderKind::Passphrase, generation);
        let key = SymmetricKey::generate()?;
        let sealed = self
            .key
            .wrap(KEK_LABEL, &key, &sealed_key_aad(&label))
            .map_err(|_| RootKeyError::Seal)?;
        Ok((
            SoftwareKey::new(label, generation, key),
            KeyRef::Passphrase {
                kdf: self.record.clone(),
                sealed_key: hex(&sealed),
            },
        ))
    }

    /// Unseals a generation key; `None` when this KEK does not open it (wrong passphrase, or
    /// a damaged blob: the caller tells them apart across generations).
    pub(crate) fn open_generation(
        &self,
        generation: u32,
        sealed_key_hex: &str,
    ) -> Option<SoftwareKey> {
        let label = descriptor::expected_label(ProviderKind::Passphrase, generation);
        let sealed = descriptor::unhex(sealed_key_hex)?;
        let key = self.key.unwrap_key(&sealed, &sealed_key_aad(&label)).ok()?;
        Some(SoftwareKey::new(label, generation, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_parameters_are_the_documented_ones() {
        assert_eq!(
            KdfParams::PRODUCTION,
            KdfParams {
                m_kib: 65536,
                t: 3,
                p: 1
            }
        );
    }

    #[test]
    fn same_passphrase_and_salt_give_the_same_kek() {
        let a = Kek::create("correct horse", KdfParams::CHEAP).unwrap();
        let (key, KeyRef::Passphrase { sealed_key, .. }) = a.new_generation(1).unwrap() else {
            panic!("not a passphrase key ref")
        };
        let b = Kek::derive("correct horse", a.record()).unwrap();
        let again = b.open_generation(1, &sealed_key).unwrap();
        let blob = crate::RootKey::seal(&key, b"x", b"").unwrap();
        assert_eq!(
            crate::RootKey::open(&again, &blob, b"").unwrap().expose(),
            b"x"
        );

        let wrong = Kek::derive("correct horsf", a.record()).unwrap();
        assert!(wrong.open_generation(1, &sealed_key).is_none());
        // Bound to its generation: the blob of generation 1 is not generation 2's key.
        assert!(b.open_generation(2, &sealed_key).is_none());
    }

    #[test]
    fn hostile_records_are_refused_before_any_work() {
        let k = Kek::create("pw", KdfParams::CHEAP).unwrap();
        let mut r = k.record().clone();
        r.m_kib = u32::MAX;
        assert!(matches!(
            Kek::derive("pw", &r),
            Err(RootKeyError::Kdf { .. })
        ));
        let mut r = k.record().clone();
        r.algorithm = "scrypt".into();
        assert!(matches!(
            Kek::derive("pw", &r),
            Err(RootKeyError::Kdf { .. })
        ));
        assert!(matches!(
            Kek::create("", KdfParams::CHEAP),
            Err(RootKeyError::EmptyPassphrase)
        ));
    }
}
