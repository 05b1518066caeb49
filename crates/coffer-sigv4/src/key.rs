//! The derived signing key (`kSigning`) and a bounded cache of them.
//!
//! A signing key is as good as the secret access key for one day, one region and one service, so
//! it is zeroized on drop and never printed. The cache holds no secret access keys, only derived
//! keys, and is the crate's only state (a `Mutex` inside a value the caller owns; no globals).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

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

/// Entries kept before the cache is emptied: a day's keys for many thousands of access keys,
/// region and service combinations, and at most ~1 MB.
pub const DEFAULT_CACHE_LIMIT: usize = 10_000;

type CacheKey = (String, String, String, String);

/// Derived signing keys by `(access key id, date, region, service)`, so a busy client costs one
/// derivation a day instead of four HMACs per request.
///
/// Bounded: when full, it is emptied rather than tracking recency (the next requests re-derive,
/// which is cheap). Call [`SigningKeyCache::invalidate`] when an access key is deleted,
/// deactivated or its secret replaced, so no key derived from the old secret is served.
#[derive(Debug)]
pub struct SigningKeyCache {
    entries: Mutex<HashMap<CacheKey, Arc<SigningKey>>>,
    limit: usize,
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SigningKeyCache {
    /// An empty cache holding up to [`DEFAULT_CACHE_LIMIT`] keys.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_CACHE_LIMIT)
    }

    /// An empty cache holding up to `limit` keys (at least one).
    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Arc<SigningKey>>> {
        // A panic while holding the lock cannot leave the map inconsistent (every operation is
        // a single insert, remove or clear), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached key for this scope, deriving and caching it from `secret_access_key` on a miss.
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret_access_key: &[u8],
        date: &str,
        region: &str,
        service: &str,
    ) -> Arc<SigningKey> {
        let cache_key = (
            access_key_id.to_owned(),
            date.to_owned(),
            region.to_owned(),
            service.to_owned(),
        );
        if let Some(found) = self.entries().get(&cache_key) {
            return Arc::clone(found);
        }
        // Derived outside the lock; two racing misses both derive the same key, which is harmless.
        let key = Arc::new(derive_signing_key(secret_access_key, date, region, service));
        let mut entries = self.entries();
        if entries.len() >= self.limit {
            entries.clear();
        }
        Arc::clone(entries.entry(cache_key).or_insert(key))
    }

    /// Forgets every key derived for `access_key_id`.
    pub fn invalidate(&self, access_key_id: &str) {
        self.entries().retain(|(id, ..), _| id != access_key_id);
    }

    /// Number of cached keys.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether the cache holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn derives_once_then_hits() {
        let cache = SigningKeyCache::new();
        let first = cache.get_or_derive("AKID", SECRET, "20150830", "us-east-1", "iam");
        let again = cache.get_or_derive("AKID", SECRET, "20150830", "us-east-1", "iam");
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(cache.len(), 1);
        assert_eq!(
            first.expose(),
            derive_signing_key(SECRET, "20150830", "us-east-1", "iam").expose()
        );
        // A hit does not even look at the secret: the cache is keyed by scope, not by secret.
        let hit = cache.get_or_derive("AKID", b"ignored on a hit", "20150830", "us-east-1", "iam");
        assert!(Arc::ptr_eq(&first, &hit));
    }

    #[test]
    fn each_scope_element_is_part_of_the_key() {
        let cache = SigningKeyCache::new();
        let base = cache.get_or_derive("AKID", SECRET, "20150830", "us-east-1", "iam");
        for (id, date, region, service) in [
            ("AKID2", "20150830", "us-east-1", "iam"),
            ("AKID", "20150831", "us-east-1", "iam"),
            ("AKID", "20150830", "eu-west-1", "iam"),
            ("AKID", "20150830", "us-east-1", "sts"),
        ] {
            let other = cache.get_or_derive(id, SECRET, date, region, service);
            assert!(!Arc::ptr_eq(&base, &other));
            assert_eq!(
                other.expose(),
                derive_signing_key(SECRET, date, region, service).expose()
            );
        }
        assert_eq!(cache.len(), 5);
    }

    #[test]
    fn invalidate_forgets_every_scope_of_one_access_key() {
        let cache = SigningKeyCache::new();
        let old = cache.get_or_derive("AKID", SECRET, "20150830", "us-east-1", "iam");
        cache.get_or_derive("AKID", SECRET, "20150831", "us-east-1", "iam");
        let kept = cache.get_or_derive("OTHER", SECRET, "20150830", "us-east-1", "iam");
        cache.invalidate("AKID");
        assert_eq!(cache.len(), 1);
        let new = cache.get_or_derive("AKID", b"rotated secret", "20150830", "us-east-1", "iam");
        assert!(!Arc::ptr_eq(&old, &new));
        assert_eq!(
            new.expose(),
            derive_signing_key(b"rotated secret", "20150830", "us-east-1", "iam").expose()
        );
        assert!(Arc::ptr_eq(
            &kept,
            &cache.get_or_derive("OTHER", SECRET, "20150830", "us-east-1", "iam")
        ));
    }

    #[test]
    fn a_full_cache_is_emptied_before_it_grows() {
        let cache = SigningKeyCache::with_limit(2);
        cache.get_or_derive("A", SECRET, "20150830", "us-east-1", "iam");
        cache.get_or_derive("B", SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(cache.len(), 2);
        cache.get_or_derive("C", SECRET, "20150830", "us-east-1", "iam");
        assert_eq!(cache.len(), 1);
        assert!(
            SigningKeyCache::with_limit(0)
                .get_or_derive("A", SECRET, "d", "r", "s")
                .expose()
                .len()
                == 32
        );
        assert_eq!(DEFAULT_CACHE_LIMIT, 10_000);
        assert!(SigningKeyCache::default().is_empty());
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = derive_signing_key(SECRET, "20120215", "us-east-1", "iam");
        let shown = format!("{key:?}");
        assert_eq!(shown, "SigningKey(<redacted>)");
        assert!(!shown.contains("f478"));
        let cache = SigningKeyCache::new();
        cache.get_or_derive("AKID", SECRET, "20120215", "us-east-1", "iam");
        assert!(!format!("{cache:?}").contains("f478"));
    }
}
