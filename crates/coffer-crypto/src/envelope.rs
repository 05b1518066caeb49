//! The versioned envelope: AES-256-GCM with a random 96-bit nonce, a header naming the key
//! that sealed it, and caller-supplied associated data that binds the ciphertext to its place.
//!
//! Layout (version 1):
//! ```text
//! 0x01 | key_id_len (u8) | key_id (UTF-8) | nonce (12) | ciphertext | tag (16)
//! ```
//! The header (version, length and key id) is authenticated together with the caller's AAD,
//! so neither the key id nor the binding can be changed without `open` failing.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::{CryptoError, SecretBytes, fill_random};

/// The current envelope format version (first byte of every ciphertext).
pub const ENVELOPE_VERSION: u8 = 1;
const TAG_LEN: usize = 16;

/// A 256-bit AES key (root key, account key or data key). Zeroized on drop; `Debug` is redacted.
pub struct SymmetricKey(Zeroizing<[u8; 32]>);

impl SymmetricKey {
    /// A fresh random key from the CSPRNG.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut())?;
        Ok(Self(k))
    }

    /// A key from exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// The raw key bytes; for writing the root key file and for wrapping only.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn aead(&self) -> Result<LessSafeKey, CryptoError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, self.0.as_ref()).map_err(|_| CryptoError::KeyLength)?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plaintext` under this key. `key_id` names this key in the header (at most 255
    /// bytes); `aad` binds the ciphertext to its context and must be given again to open it.
    pub fn seal(&self, key_id: &str, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = key_id.as_bytes();
        let id_len = u8::try_from(id.len()).map_err(|_| CryptoError::Seal)?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;

        let header_len = 2 + id.len();
        let mut out = Vec::with_capacity(header_len + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(ENVELOPE_VERSION);
        out.push(id_len);
        out.extend_from_slice(id);
        let full_aad = joined_aad(&out, aad);
        out.extend_from_slice(&nonce);
        let body_start = out.len();
        out.extend_from_slice(plaintext);

        let mut body = out.split_off(body_start);
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&full_aad),
                &mut body,
            )
            .map_err(|_| CryptoError::Seal)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens an envelope made by [`SymmetricKey::seal`] with the same `aad`.
    pub fn open(&self, envelope: &[u8], aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        let parts = Parts::parse(envelope)?;
        let full_aad = joined_aad(parts.header, aad);
        let mut body = Zeroizing::new(parts.body.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(parts.nonce).map_err(|_| CryptoError::Open)?;
        let plain_len = self
            .aead()?
            .open_in_place(nonce, Aad::from(&full_aad), body.as_mut_slice())
            .map_err(|_| CryptoError::Open)?
            .len();
        body.truncate(plain_len);
        Ok(SecretBytes::new(std::mem::take(&mut *body)))
    }

    /// Seals another key under this one (key wrapping with the same envelope).
    pub fn wrap(
        &self,
        key_id: &str,
        key: &SymmetricKey,
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        self.seal(key_id, key.expose(), aad)
    }

    /// Opens a key wrapped by [`SymmetricKey::wrap`].
    pub fn unwrap_key(&self, envelope: &[u8], aad: &[u8]) -> Result<SymmetricKey, CryptoError> {
        let bytes = self.open(envelope, aad)?;
        SymmetricKey::from_bytes(bytes.expose()).map_err(|_| CryptoError::Open)
    }
}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

/// The key id named in an envelope's header, without opening it.
pub fn envelope_key_id(envelope: &[u8]) -> Result<&str, CryptoError> {
    let parts = Parts::parse(envelope)?;
    std::str::from_utf8(&parts.header[2..]).map_err(|_| CryptoError::Open)
}

struct Parts<'a> {
    header: &'a [u8],
    nonce: &'a [u8],
    body: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(envelope: &'a [u8]) -> Result<Self, CryptoError> {
        let (&version, rest) = envelope.split_first().ok_or(CryptoError::Open)?;
        if version != ENVELOPE_VERSION {
            return Err(CryptoError::Open);
        }
        let (&id_len, _) = rest.split_first().ok_or(CryptoError::Open)?;
        let header_len = 2 + usize::from(id_len);
        if envelope.len() < header_len + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Open);
        }
        let (header, rest) = envelope.split_at(header_len);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        Ok(Self {
            header,
            nonce,
            body,
        })
    }
}

fn joined_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    // Length-prefix the caller's AAD so that (header, aad) pairs cannot collide.
    let mut v = Vec::with_capacity(header.len() + 8 + aad.len());
    v.extend_from_slice(header);
    v.extend_from_slice(&(aad.len() as u64).to_be_bytes());
    v.extend_from_slice(aad);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips() {
        let k = SymmetricKey::generate().unwrap();
        let ct = k.seal("acct-key/1", b"hello secret", b"arn:x|v1").unwrap();
        assert_eq!(ct[0], ENVELOPE_VERSION);
        assert_eq!(envelope_key_id(&ct).unwrap(), "acct-key/1");
        assert_eq!(k.open(&ct, b"arn:x|v1").unwrap().expose(), b"hello secret");
    }

    #[test]
    fn ciphertext_does_not_contain_plaintext_and_differs_each_time() {
        let k = SymmetricKey::generate().unwrap();
        let a = k.seal("k", b"canary-canary-canary", b"").unwrap();
        let b = k.seal("k", b"canary-canary-canary", b"").unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(6).any(|w| w == b"canary"));
    }

    #[test]
    fn open_fails_on_wrong_aad_key_or_tampering() {
        let k = SymmetricKey::generate().unwrap();
        let other = SymmetricKey::generate().unwrap();
        let ct = k.seal("k", b"value", b"row-1").unwrap();
        assert_eq!(k.open(&ct, b"row-2").unwrap_err(), CryptoError::Open);
        assert_eq!(other.open(&ct, b"row-1").unwrap_err(), CryptoError::Open);
        for i in 0..ct.len() {
            let mut t = ct.clone();
            t[i] ^= 0x01;
            assert!(
                k.open(&t, b"row-1").is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert!(k.open(&ct[..ct.len() - 1], b"row-1").is_err());
        assert!(k.open(&[], b"").is_err());
        assert!(k.open(&[1, 200], b"").is_err());
    }

    #[test]
    fn wrapped_keys_unwrap_to_the_same_key() {
        let kek = SymmetricKey::generate().unwrap();
        let dek = SymmetricKey::generate().unwrap();
        let w = kek.wrap("kek", &dek, b"ctx").unwrap();
        let back = kek.unwrap_key(&w, b"ctx").unwrap();
        assert_eq!(back.expose(), dek.expose());
        assert!(kek.unwrap_key(&w, b"other").is_err());
    }

    #[test]
    fn key_id_longer_than_255_bytes_is_refused() {
        let k = SymmetricKey::generate().unwrap();
        assert_eq!(
            k.seal(&"x".repeat(256), b"v", b"").unwrap_err(),
            CryptoError::Seal
        );
    }

    #[test]
    fn debug_is_redacted() {
        let k = SymmetricKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "SymmetricKey(<redacted>)");
        assert!(SymmetricKey::from_bytes(&[1u8; 31]).is_err());
    }
}
