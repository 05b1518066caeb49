//! Authentication of API requests: SigV4 verification against the caller's access key,
//! producing the [`Caller`] that every operation receives.
//!
//! Signing keys are derived once per access key, day, region and service and then served
//! from memory; entries are re-checked against the store after [`CACHE_TTL`] so that a
//! deactivated or deleted key stops working without a restart.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coffer_core::{Caller, Coffer, PrincipalType, Session, TokenRejection};
use coffer_sigv4::{SignatureClaim, SigningKey};

use crate::AuthMode;
use crate::error::ApiError;

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

type ScopeKey = (String, String, String, String);

struct Entry {
    key: SigningKey,
    /// The service's credentials epoch when the key was looked up; a change means some key
    /// was deactivated or deleted, so the entry is looked up again.
    epoch: u64,
    /// When this key's use was last recorded (at most hourly, for GetAccessKeyLastUsed).
    recorded_use: std::sync::Mutex<Option<Instant>>,
    account_id: String,
    principal_arn: String,
    principal_type: PrincipalType,
    fetched: Instant,
    /// Temporary credentials: the token the entry was made for, and what it carries.
    token: Option<Box<str>>,
    session: Option<Arc<Session>>,
}

pub(crate) struct Authenticator {
    mode: AuthMode,
    cache: RwLock<HashMap<ScopeKey, Arc<Entry>>>,
    /// The account that `--accept-any-credentials` maps every key to.
    dev_account: RwLock<Option<String>>,
}

/// The cache key of a signing key: access key id, day, region and service.
fn scope_of(claim: &SignatureClaim) -> ScopeKey {
    (
        claim.access_key_id.clone(),
        claim.date.clone(),
        claim.region.clone(),
        claim.service.clone(),
    )
}

pub(crate) fn unrecognized() -> ApiError {
    ApiError::new(
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    )
}

fn expired() -> ApiError {
    ApiError::new(
        "ExpiredTokenException",
        "The security token included in the request is expired",
    )
}

fn secure(parts: &http::request::Parts) -> bool {
    parts
        .extensions
        .get::<crate::SecureTransport>()
        .is_some_and(|s| s.0)
}

fn now_unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Authenticator {
    pub fn new(mode: AuthMode) -> Self {
        Self {
            mode,
            cache: RwLock::new(HashMap::new()),
            dev_account: RwLock::new(None),
        }
    }

    /// Authenticates a request for `service` (its SigV4 signing name; `None` when the target
    /// names no service coffer serves, so any scope is accepted before the request is refused).
    pub async fn authenticate(
        &self,
        coffer: &Coffer,
        parts: &http::request::Parts,
        body: &[u8],
        service: Option<&str>,
        source_ip: IpAddr,
    ) -> Result<Caller, ApiError> {
        if self.mode == AuthMode::AcceptAnyCredentials {
            return self.accept_any(coffer, parts, source_ip).await;
        }
        let claim = coffer_sigv4::parse_claim(parts)?;
        let entry = match claim.security_token.as_deref() {
            Some(token) => self.session_entry(coffer, &claim, token).await?,
            None => self.signing_entry(coffer, &claim).await?,
        };
        coffer_sigv4::verify(parts, body, &claim, &entry.key, now_unix_secs(), service)?;
        if entry.token.is_none() {
            self.note_use(coffer, &entry, &claim).await;
        }
        Ok(Caller {
            account_id: entry.account_id.clone(),
            principal_arn: entry.principal_arn.clone(),
            principal_type: entry.principal_type,
            access_key_id: claim.access_key_id,
            region: claim.region,
            source_ip,
            secure_transport: secure(parts),
            session: entry.session.clone(),
        })
    }

    /// The entry of temporary credentials: the token must be one this service issued for
    /// this access key id and not expired by the service's clock, checked on every request
    /// (a cached entry only spares opening the token again).
    async fn session_entry(
        &self,
        coffer: &Coffer,
        claim: &SignatureClaim,
        token: &str,
    ) -> Result<Arc<Entry>, ApiError> {
        let scope = scope_of(claim);
        let now_ms = coffer.now_millis();
        if let Ok(cache) = self.cache.read()
            && let Some(e) = cache.get(&scope)
            && let (Some(t), Some(s)) = (&e.token, &e.session)
            && coffer_crypto::constant_time_eq(t.as_bytes(), token.as_bytes())
        {
            if now_ms >= s.expires_ms {
                return Err(expired());
            }
            return Ok(Arc::clone(e));
        }
        let creds = coffer
            .session_credentials(&claim.access_key_id, token)
            .await
            .map_err(|r| match r {
                TokenRejection::Invalid => unrecognized(),
                TokenRejection::Expired => expired(),
                TokenRejection::Failed(e) => ApiError::from(e),
            })?;
        let entry = Arc::new(Entry {
            key: coffer_sigv4::derive_signing_key(
                creds.secret_access_key.expose(),
                &claim.date,
                &claim.region,
                &claim.service,
            ),
            account_id: creds.account_id,
            principal_arn: creds.principal_arn,
            principal_type: creds.principal_type,
            fetched: Instant::now(),
            epoch: coffer.credentials_epoch(),
            recorded_use: std::sync::Mutex::new(None),
            token: Some(token.into()),
            session: Some(creds.session),
        });
        self.remember(scope, &entry);
        Ok(entry)
    }

    fn remember(&self, scope: ScopeKey, entry: &Arc<Entry>) {
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(scope, Arc::clone(entry));
        }
    }

    async fn signing_entry(
        &self,
        coffer: &Coffer,
        claim: &SignatureClaim,
    ) -> Result<Arc<Entry>, ApiError> {
        let scope = scope_of(claim);
        if let Ok(cache) = self.cache.read()
            && let Some(e) = cache.get(&scope)
            && e.token.is_none()
            && e.fetched.elapsed() < CACHE_TTL
            && e.epoch == coffer.credentials_epoch()
        {
            return Ok(Arc::clone(e));
        }
        let epoch = coffer.credentials_epoch();
        let identity = coffer
            .access_key(&claim.access_key_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(unrecognized)?;
        if !identity.active {
            return Err(unrecognized());
        }
        let entry = Arc::new(Entry {
            key: coffer_sigv4::derive_signing_key(
                identity.secret_access_key.expose(),
                &claim.date,
                &claim.region,
                &claim.service,
            ),
            account_id: identity.account_id,
            principal_arn: identity.principal_arn,
            principal_type: identity.principal_type,
            fetched: Instant::now(),
            epoch,
            recorded_use: std::sync::Mutex::new(None),
            token: None,
            session: None,
        });
        self.remember(scope, &entry);
        Ok(entry)
    }

    /// Records the key's use for `GetAccessKeyLastUsed`, at most once an hour per key so that
    /// reads do not turn into writes.
    async fn note_use(&self, coffer: &Coffer, entry: &Entry, claim: &SignatureClaim) {
        const EVERY: Duration = Duration::from_secs(3600);
        let due = match entry.recorded_use.lock() {
            Ok(mut last) if last.is_none_or(|t| t.elapsed() >= EVERY) => {
                *last = Some(Instant::now());
                true
            }
            _ => false,
        };
        if due
            && let Err(e) = coffer
                .record_access_key_use(&claim.access_key_id, &claim.service, &claim.region)
                .await
        {
            tracing::warn!(error = %e, "could not record an access key's use");
        }
    }

    /// `--dev --accept-any-credentials`: whatever the key, the caller is the dev account's
    /// root; the region still comes from the credential scope when there is one.
    async fn accept_any(
        &self,
        coffer: &Coffer,
        parts: &http::request::Parts,
        source_ip: IpAddr,
    ) -> Result<Caller, ApiError> {
        let account_id = match self.dev_account.read().ok().and_then(|a| a.clone()) {
            Some(a) => a,
            None => {
                let first = coffer
                    .account_ids()
                    .await
                    .map_err(ApiError::from)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        ApiError::from(coffer_core::CoreError::Internal("no account exists".into()))
                    })?;
                if let Ok(mut slot) = self.dev_account.write() {
                    *slot = Some(first.clone());
                }
                first
            }
        };
        let (access_key_id, region) = match coffer_sigv4::parse_claim(parts) {
            Ok(c) => (c.access_key_id, c.region),
            Err(_) => ("anonymous".to_string(), "us-east-1".to_string()),
        };
        Ok(Caller {
            principal_arn: format!("arn:aws:iam::{account_id}:root"),
            account_id,
            principal_type: PrincipalType::Root,
            access_key_id,
            region,
            source_ip,
            secure_transport: secure(parts),
            session: None,
        })
    }
}
