//! Identifiers made by the service: account ids, access key ids, secret access keys, ARN
//! suffixes and version ids. All randomness comes from the CSPRNG of `coffer-crypto`.

use coffer_crypto::{SecretBytes, random_below};

use crate::CoreError;

fn random_string(alphabet: &[u8], len: usize) -> Result<String, CoreError> {
    let bound = u32::try_from(alphabet.len())
        .map_err(|_| CoreError::Internal("alphabet too large".into()))?;
    let mut s = String::with_capacity(len);
    for _ in 0..len {
        let i = random_below(bound)? as usize;
        s.push(char::from(alphabet[i]));
    }
    Ok(s)
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random 12-digit account id that does not start with 0.
pub fn account_id() -> Result<String, CoreError> {
    let first = random_string(b"123456789", 1)?;
    Ok(first + &random_string(b"0123456789", 11)?)
}

/// A long-term access key id: `AKIA` and 16 characters of AWS's base32 alphabet.
pub fn access_key_id() -> Result<String, CoreError> {
    Ok(format!(
        "AKIA{}",
        random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)?
    ))
}

/// A temporary access key id (STS): `ASIA` and 16 characters of AWS's base32 alphabet.
pub fn temporary_access_key_id() -> Result<String, CoreError> {
    Ok(format!(
        "ASIA{}",
        random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)?
    ))
}

/// A unique IAM id: a four-letter prefix (`AIDA` user, `AGPA` group, `AROA` role, `ANPA`
/// policy) and 17 characters of AWS's base32 alphabet.
pub fn prefixed_id(prefix: &str) -> Result<String, CoreError> {
    Ok(format!(
        "{prefix}{}",
        random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17)?
    ))
}

/// A 40-character secret access key.
pub fn secret_access_key() -> Result<SecretBytes, CoreError> {
    Ok(SecretBytes::from(random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        40,
    )?))
}

/// The six random characters AWS appends to a secret's name in its ARN, so that a secret
/// re-created under the same name gets a new ARN and old grants do not carry over.
pub fn arn_suffix() -> Result<String, CoreError> {
    random_string(ALNUM, 6)
}

/// A unique id in UUID form for request and event ids, made without the CSPRNG: a 128-bit
/// key drawn once per process from it, and a counter, mixed by SplitMix64 (a bijection, so
/// two counter values never give the same id). Unique, but not unpredictable: SplitMix64
/// can be inverted, so whoever sees ids can work out later ones. Only for ids that name
/// things; never for a secret, a token or anything a guess must not reach (use [`uuid_v4`]). The CSPRNG call
/// it saves was about 2% of a GetSecretValue's CPU, twice per request.
#[must_use]
pub fn unique_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k1, k2) = *KEY.get_or_init(|| {
        let mut b = [0u8; 16];
        // Without the CSPRNG (it never fails in practice) ids stay unique in this process.
        let _ = coffer_crypto::fill_random(&mut b);
        let (a, c) = b.split_at(8);
        (
            u64::from_le_bytes(a.try_into().unwrap_or_default()),
            u64::from_le_bytes(c.try_into().unwrap_or_default()),
        )
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix64(n ^ k1);
    let lo = splitmix64(n.wrapping_add(k2) ^ hi);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    uuid_form(b)
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 16 bytes as a version 4 UUID string (written directly: this runs twice per request).
fn uuid_form(mut b: [u8; 16]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(DIGITS[usize::from(byte >> 4)]));
        s.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    s
}

/// A random UUID (version 4), the form AWS SDKs use for `ClientRequestToken`.
pub fn uuid_v4() -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    coffer_crypto::fill_random(&mut b)?;
    Ok(uuid_form(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let a = account_id().unwrap();
        assert_eq!(a.len(), 12);
        assert!(a.bytes().all(|c| c.is_ascii_digit()) && !a.starts_with('0'));
        let k = access_key_id().unwrap();
        assert!(k.starts_with("AKIA") && k.len() == 20);
        assert_eq!(secret_access_key().unwrap().len(), 40);
        let s = arn_suffix().unwrap();
        assert!(s.len() == 6 && s.bytes().all(|c| c.is_ascii_alphanumeric()));
        let u = uuid_v4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid_v4().unwrap(), u);
    }

    #[test]
    fn unique_ids_are_uuid_shaped_and_never_repeat() {
        let ids: std::collections::HashSet<String> = (0..100_000).map(|_| unique_id()).collect();
        assert_eq!(ids.len(), 100_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 36);
            assert_eq!(&id[14..15], "4");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        }
    }
}
