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

/// A random UUID (version 4), the form AWS SDKs use for `ClientRequestToken`.
pub fn uuid_v4() -> Result<String, CoreError> {
    let mut b = [0u8; 16];
    coffer_crypto::fill_random(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = coffer_crypto::hex(&b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
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
}
