//! The audit signing key: an Ed25519 key pair generated at init, kept by the caller as PKCS#8
//! bytes (sealed under the root key, never stored by this crate), and its exportable public
//! half, with which anyone can check the log's digests offline.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_crypto::SecretBytes;

use crate::AuditError;

/// Length of an Ed25519 signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410 §4): the 32 raw key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const PEM_BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
const PEM_END: &str = "-----END PUBLIC KEY-----";

/// The private key that signs digests, heads and anchors. `Debug` shows only the key id.
pub struct AuditKey {
    pair: Ed25519KeyPair,
    pkcs8: SecretBytes,
}

impl AuditKey {
    /// Generates a new key pair (at `coffer init`).
    pub fn generate() -> Result<Self, AuditError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| AuditError::Key("Ed25519 key generation failed"))?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Loads a key from its PKCS#8 (v1 or v2) encoding, as returned by [`AuditKey::pkcs8`].
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, AuditError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|_| AuditError::Key("not an Ed25519 PKCS#8 private key"))?;
        Ok(Self {
            pair,
            pkcs8: SecretBytes::new(pkcs8.to_vec()),
        })
    }

    /// The PKCS#8 encoding of the private key, for the caller to seal under the root key.
    /// Never write these bytes anywhere in the clear.
    #[must_use]
    pub fn pkcs8(&self) -> &[u8] {
        self.pkcs8.expose()
    }

    /// The public half, to export for verifiers.
    #[must_use]
    pub fn public_key(&self) -> AuditPublicKey {
        let mut raw = [0u8; 32];
        let bytes = self.pair.public_key().as_ref();
        if bytes.len() == raw.len() {
            raw.copy_from_slice(bytes);
        }
        AuditPublicKey(raw)
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Result<[u8; SIGNATURE_LEN], AuditError> {
        let sig = self
            .pair
            .try_sign(message)
            .map_err(|_| AuditError::Key("Ed25519 signing failed"))?;
        let mut out = [0u8; SIGNATURE_LEN];
        if sig.as_ref().len() != SIGNATURE_LEN {
            return Err(AuditError::Key("Ed25519 signing failed"));
        }
        out.copy_from_slice(sig.as_ref());
        Ok(out)
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

/// The public key that verifies the log: 32 raw Ed25519 bytes, exportable raw, as Base64 or
/// as a PEM `SubjectPublicKeyInfo` (which `openssl pkey -pubin` reads).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuditPublicKey([u8; 32]);

impl AuditPublicKey {
    /// From the 32 raw key bytes.
    pub fn from_raw(raw: &[u8]) -> Result<Self, AuditError> {
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| AuditError::Key("an Ed25519 public key is 32 bytes"))?;
        Ok(Self(raw))
    }

    /// The 32 raw key bytes.
    #[must_use]
    pub fn raw(&self) -> [u8; 32] {
        self.0
    }

    /// A short fingerprint written into every digest: hex of the first 8 bytes of
    /// SHA-256(raw key). It names the key; it proves nothing (the signature does).
    #[must_use]
    pub fn key_id(&self) -> String {
        let h = coffer_crypto::sha256(&self.0);
        coffer_crypto::hex(h.get(..8).unwrap_or(&h))
    }

    /// The raw key in standard Base64.
    #[must_use]
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// From [`AuditPublicKey::to_base64`]'s output.
    pub fn from_base64(text: &str) -> Result<Self, AuditError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| AuditError::Key("the public key is not valid Base64"))?;
        Self::from_raw(&bytes)
    }

    /// PEM `PUBLIC KEY` (RFC 8410 `SubjectPublicKeyInfo`).
    #[must_use]
    pub fn to_pem(&self) -> String {
        let mut der = Vec::with_capacity(SPKI_PREFIX.len() + 32);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(&self.0);
        format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(der))
    }

    /// From a PEM `PUBLIC KEY` holding an Ed25519 key.
    pub fn from_pem(pem: &str) -> Result<Self, AuditError> {
        let body = pem
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|rest| rest.strip_suffix(PEM_END))
            .ok_or(AuditError::Key("not a PEM PUBLIC KEY"))?;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| AuditError::Key("the PEM body is not valid Base64"))?;
        let raw = der
            .strip_prefix(&SPKI_PREFIX[..])
            .ok_or(AuditError::Key("the PEM key is not an Ed25519 public key"))?;
        Self::from_raw(raw)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    #[must_use]
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for AuditPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuditPublicKey({})", self.key_id())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn pkcs8_round_trip_keeps_the_public_key() {
        let key = AuditKey::generate().unwrap();
        let again = AuditKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.public_key(), again.public_key());
        assert!(AuditKey::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn public_key_exports_round_trip() {
        let public = AuditKey::generate().unwrap().public_key();
        assert_eq!(AuditPublicKey::from_pem(&public.to_pem()).unwrap(), public);
        assert_eq!(
            AuditPublicKey::from_base64(&public.to_base64()).unwrap(),
            public
        );
        assert_eq!(AuditPublicKey::from_raw(&public.raw()).unwrap(), public);
        assert!(AuditPublicKey::from_raw(&[0u8; 31]).is_err());
        assert!(
            AuditPublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----")
                .is_err()
        );
        assert_eq!(public.key_id().len(), 16);
    }

    #[test]
    fn signatures_verify_only_with_the_right_key_and_message() {
        let key = AuditKey::generate().unwrap();
        let other = AuditKey::generate().unwrap();
        let sig = key.sign(b"message").unwrap();
        assert!(key.public_key().verify(b"message", &sig));
        assert!(!key.public_key().verify(b"messagf", &sig));
        assert!(!other.public_key().verify(b"message", &sig));
        assert!(!format!("{key:?}").contains(&coffer_crypto::hex(key.pkcs8())));
    }
}
