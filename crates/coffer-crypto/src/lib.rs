//! Cryptographic primitives for coffer: the envelope format, key wrapping, hashing, MACs,
//! constant-time comparison, randomness and one-time passwords (`otp`: HOTP/TOTP, Base32),
//! all over aws-lc-rs (the one crypto stack of the project, shared with rustls).
//!
//! This crate owns every byte of key material while it is in memory: keys live in
//! [`SymmetricKey`] and plaintexts in [`SecretBytes`], both zeroized on drop and redacted in
//! `Debug`. It must never log, never persist anything but the root key file, and never return
//! key bytes inside an error.

mod envelope;
pub mod otp;
mod root_key;
mod secret;

pub use envelope::{ENVELOPE_VERSION, SymmetricKey, envelope_key_id};
pub use root_key::{ROOT_KEY_FILE, RootKeyError};
pub use secret::SecretBytes;

use aws_lc_rs::{digest, hmac, rand as lc_rand};

/// Errors from cryptographic operations. None of them carries key or plaintext bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The system random generator failed; nothing can be generated safely.
    #[error("the system random number generator failed")]
    Random,
    /// A key was not 32 bytes long.
    #[error("a key must be 32 bytes")]
    KeyLength,
    /// The ciphertext was truncated, of an unknown format version, or failed authentication
    /// (wrong key, wrong associated data, or tampered bytes).
    #[error("the ciphertext could not be decrypted")]
    Open,
    /// Sealing failed (only possible for absurd input sizes).
    #[error("the plaintext could not be encrypted")]
    Seal,
}

/// Fills `out` with bytes from the system CSPRNG.
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    lc_rand::fill(out).map_err(|_| CryptoError::Random)
}

/// A uniformly distributed integer in `0..bound` from the CSPRNG, without modulo bias.
/// `bound` must be non-zero.
pub fn random_below(bound: u32) -> Result<u32, CryptoError> {
    if bound == 0 {
        return Err(CryptoError::Random);
    }
    // Rejection sampling: discard the top partial range so every residue is equally likely.
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let mut b = [0u8; 4];
        fill_random(&mut b)?;
        let v = u32::from_le_bytes(b);
        if v < zone {
            return Ok(v % bound);
        }
    }
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// HMAC-SHA256 of `data` under `key`.
#[must_use]
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&k, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Compares two byte strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Lower-case hexadecimal encoding.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_vector() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn random_below_stays_in_range_and_covers_it() {
        let mut seen = [false; 7];
        for _ in 0..500 {
            let v = random_below(7).unwrap();
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert!(random_below(0).is_err());
    }
}
