//! The derived signing key (`kSigning`).
//!
//! A signing key is as good as the secret access key for one day, one region and one service, so
//! it is zeroized on drop and never printed. Caching derived keys is the caller's business: the
//! server keeps them together with the identity they authenticate (`coffer-protocol`'s
//! authenticator), so this crate holds no state at all.

use std::fmt;

use coffer_crypto::hmac_sha256;
use zeroize::Zeroizing;

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
/// Zeroized on drop; `Debug` is redacted.
#[derive(Clone)]
pub struct SigningKey(Zeroizing<[u8; 32]>);

impl SigningKey {
    /// The raw key, for the final HMAC over the string to sign.
    #[must_use]
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Derives the signing key from the secret access key and the credential scope
/// (`date` is `YYYYMMDD`), per AWS "Create a signature for an AWS API request", step 4.
#[must_use]
pub fn derive_signing_key(
    secret_access_key: &[u8],
    date: &str,
    region: &str,
    service: &str,
) -> SigningKey {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(secret_access_key.len() + 4));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret_access_key);
    let k_date = Zeroizing::new(hmac_sha256(&k_secret, date.as_bytes()));
    let k_region = Zeroizing::new(hmac_sha256(k_date.as_ref(), region.as_bytes()));
    let k_service = Zeroizing::new(hmac_sha256(k_region.as_ref(), service.as_bytes()));
    SigningKey(Zeroizing::new(hmac_sha256(
        k_service.as_ref(),
        b"aws4_request",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = derive_signing_key(SECRET, "20120215", "us-east-1", "iam");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SigningKey(<redacted>)");
        assert!(!shown.contains("f478"));
    }
}
