//! Temporary credentials (STS): `AssumeRole`, `GetSessionToken`, `GetCallerIdentity`, and the
//! session token that carries everything a session is.
//!
//! A session is not stored anywhere. Its token is the session's facts (principal, role,
//! expiry, MFA time, session policies and tags) sealed with AES-256-GCM under a key derived
//! from the account key. So the server checks a token without a database read, a client can
//! neither forge one nor extend one (the expiry is inside the authenticated plaintext), and
//! any node that can unwrap the account key can check it. The session's secret access key is
//! not in the token either: it is an HMAC of the access key id under a second derived key,
//! recomputed when the token is presented.
//!
//! This module must never log, store or return a token key or a session's secret, and never
//! let a session outgrow what issued it (durations are capped here, not by the client).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use coffer_crypto::{SecretBytes, SymmetricKey};
use coffer_store::{PrincipalKind, Store};
use serde_json::{Value, json};

use crate::iam::{check_chars, name_char, validation};
use crate::policies::{self, Kind};
use crate::{Caller, Coffer, CoreError, PrincipalType, RoleSession, Session, ids};

const TOKEN_VERSION: u8 = 1;
const ACCOUNT_ID_LEN: usize = 12;
const ONE_HOUR: i64 = 3600;
/// `GetSessionToken`'s default, and the most an account's root user gets from it.
const SESSION_TOKEN_DEFAULT: i64 = 12 * ONE_HOUR;
/// The plaintext limit of session policies: "The plaintext that you use for both inline and
/// managed session policies can't exceed 2,048 characters" (STS API reference, AssumeRole).
const SESSION_POLICY_MAX: usize = 2048;
/// What a token may carry of session policies and tags, in characters; the packed policy size
/// that `AssumeRole` reports is the share of it that a session uses.
const PACKED_BUDGET: usize = 4096;
const MAX_POLICY_ARNS: usize = 10;
const MAX_SESSION_TAGS: usize = 50;

/// Keys derived from one account's key for its sessions.
pub(crate) struct StsKeys {
    token: SymmetricKey,
    secrets: SymmetricKey,
}

/// The derived keys by account: a derivation costs two HMACs, but the account key behind it
/// may need a root key (HSM) call to unwrap.
#[derive(Default)]
pub(crate) struct StsKeyCache {
    accounts: RwLock<HashMap<String, Arc<StsKeys>>>,
}

/// Temporary credentials as `AssumeRole` and `GetSessionToken` return them.
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretBytes,
    pub session_token: String,
    pub expiration_ms: i64,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration_ms", &self.expiration_ms)
            .finish_non_exhaustive()
    }
}

/// `AssumeRole`'s request.
#[derive(Debug, Default, Clone)]
pub struct AssumeRoleInput {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<i64>,
    pub external_id: Option<String>,
    pub policy: Option<String>,
    pub policy_arns: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub transitive_tag_keys: Vec<String>,
    pub serial_number: Option<String>,
    pub token_code: Option<String>,
    pub source_identity: Option<String>,
}

/// `AssumeRole`'s answer.
#[derive(Debug)]
pub struct AssumedRole {
    pub credentials: TemporaryCredentials,
    /// `AROA…:SESSION`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// The share (percent) of the allowed size that session policies and tags use; present
    /// when the request passed either.
    pub packed_policy_size: Option<u32>,
    pub source_identity: Option<String>,
}

/// `GetCallerIdentity`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

/// Why a session token was refused.
#[derive(Debug)]
pub enum TokenRejection {
    /// Not a token this service issued, altered, or not for this access key id.
    Invalid,
    /// Issued here, but past its expiry.
    Expired,
    /// The service could not check it (a store failure).
    Failed(CoreError),
}

/// What the authenticator needs of a valid session token.
#[derive(Debug)]
pub struct SessionCredentials {
    pub account_id: String,
    pub principal_arn: String,
    pub principal_type: PrincipalType,
    pub secret_access_key: SecretBytes,
    pub session: Arc<Session>,
}

fn token_aad(account_id: &str) -> Vec<u8> {
    [b"coffer/sts-session/v1".as_slice(), account_id.as_bytes()].join(&0u8)
}

fn type_name(t: PrincipalType) -> &'static str {
    match t {
        PrincipalType::Root => "root",
        PrincipalType::IamUser => "user",
        PrincipalType::AssumedRole => "role",
    }
}

fn parse_type(s: &str) -> Option<PrincipalType> {
    match s {
        "root" => Some(PrincipalType::Root),
        "user" => Some(PrincipalType::IamUser),
        "role" => Some(PrincipalType::AssumedRole),
        _ => None,
    }
}

impl StsKeys {
    fn derive(account_key: &SymmetricKey) -> Result<Self, CoreError> {
        let derive = |label: &[u8]| {
            let mut bytes = coffer_crypto::hmac_sha256(account_key.expose(), label);
            let key = SymmetricKey::from_bytes(&bytes);
            bytes.fill(0);
            key.map_err(|_| CoreError::Internal("cannot derive a session key".into()))
        };
        Ok(StsKeys {
            token: derive(b"coffer/sts/token-key/v1")?,
            secrets: derive(b"coffer/sts/secret-key/v1")?,
        })
    }

    /// The secret access key of a session: 40 characters of AWS's secret key alphabet, from an
    /// HMAC of the access key id.
    fn secret_for(&self, access_key_id: &str) -> SecretBytes {
        let mut mac = coffer_crypto::hmac_sha256(self.secrets.expose(), access_key_id.as_bytes());
        let mut encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(mac);
        mac.fill(0);
        encoded.truncate(40);
        SecretBytes::from(encoded)
    }
}

fn session_json(access_key_id: &str, principal_arn: &str, t: PrincipalType, s: &Session) -> Value {
    json!({
        "k": access_key_id,
        "p": principal_arn,
        "t": type_name(t),
        "i": s.principal_id,
        "iat": s.issued_ms,
        "exp": s.expires_ms,
        "mfa": s.mfa_authenticated_ms,
        "role": s.role.as_ref().map(|r| json!({
            "arn": r.role_arn, "id": r.role_id, "name": r.session_name, "chained": r.chained,
        })),
        "pol": s.policy,
        "pa": s.policy_arns,
        "tags": s.tags.iter().map(|(k, v)| [k, v]).collect::<Vec<_>>(),
        "tt": s.transitive_tag_keys,
        "si": s.source_identity,
    })
}

fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_string)
}

fn optional_string(v: &Value, key: &str) -> Option<Option<String>> {
    match v.get(key)? {
        Value::Null => Some(None),
        Value::String(s) => Some(Some(s.clone())),
        _ => None,
    }
}

fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    v.get(key)?
        .as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

/// The session facts of a token's plaintext; `None` when it is not what [`session_json`] wrote.
fn parse_session(v: &Value) -> Option<(String, String, PrincipalType, Session)> {
    let role = match v.get("role")? {
        Value::Null => None,
        r => Some(RoleSession {
            role_arn: string(r, "arn")?,
            role_id: string(r, "id")?,
            session_name: string(r, "name")?,
            chained: r.get("chained")?.as_bool()?,
        }),
    };
    let tags = v
        .get("tags")?
        .as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [Value::String(k), Value::String(v)] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    let session = Session {
        principal_id: string(v, "i")?,
        issued_ms: v.get("iat")?.as_i64()?,
        expires_ms: v.get("exp")?.as_i64()?,
        mfa_authenticated_ms: match v.get("mfa")? {
            Value::Null => None,
            m => Some(m.as_i64()?),
        },
        role,
        policy: optional_string(v, "pol")?,
        policy_arns: strings(v, "pa")?,
        tags,
        transitive_tag_keys: strings(v, "tt")?,
        source_identity: optional_string(v, "si")?,
    };
    Some((
        string(v, "k")?,
        string(v, "p")?,
        parse_type(v.get("t")?.as_str()?)?,
        session,
    ))
}

/// `[\w+=,.@-]*` with a length range: role session names and source identities.
fn check_name(member: &str, value: &str, min: usize, max: usize) -> Result<(), CoreError> {
    check_chars(member, value, (min, max), name_char, "[\\w+=,.@-]*")
}

fn check_duration(member: &str, value: Option<i64>, max: i64) -> Result<Option<i64>, CoreError> {
    match value {
        Some(v) if v < 900 => Err(validation(
            member,
            &v.to_string(),
            "Member must have value greater than or equal to 900",
        )),
        Some(v) if v > max => Err(validation(
            member,
            &v.to_string(),
            &format!("Member must have value less than or equal to {max}"),
        )),
        other => Ok(other),
    }
}

/// The MFA fields of a request: both or neither, each in AWS's shape.
fn check_mfa<'a>(
    serial: Option<&'a str>,
    code: Option<&'a str>,
) -> Result<Option<(&'a str, &'a str)>, CoreError> {
    if let Some(s) = serial {
        check_chars(
            "serialNumber",
            s,
            (9, 256),
            |c| name_char(c) || "/:".contains(c),
            "[\\w+=/:,.@-]*",
        )?;
    }
    if let Some(c) = code {
        check_chars("tokenCode", c, (6, 6), |c| c.is_ascii_digit(), "[\\d]*")?;
    }
    match (serial, code) {
        (Some(s), Some(c)) => Ok(Some((s, c))),
        (None, None) => Ok(None),
        // STS's own words when one of the pair is missing.
        (Some(_), None) => Err(CoreError::AccessDenied(crate::MFA_UNVALIDATED.into())),
        (None, Some(_)) => Err(CoreError::Validation(
            "SerialNumber must be specified when TokenCode is specified.".into(),
        )),
    }
}

/// `(account, path-and-name)` of `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_name = resource.strip_prefix("role/")?;
    let valid_account =
        account.len() == ACCOUNT_ID_LEN && account.bytes().all(|b| b.is_ascii_digit());
    (valid_account && !path_name.is_empty() && !path_name.ends_with('/'))
        .then_some((account, path_name))
}

fn check_session_tags(tags: &[(String, String)], transitive: &[String]) -> Result<(), CoreError> {
    if tags.len() > MAX_SESSION_TAGS {
        return Err(validation(
            "tags",
            &format!("{} tags", tags.len()),
            "Member must have length less than or equal to 50",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (k, v) in tags {
        let key_ok = (1..=128).contains(&k.chars().count())
            && k.chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c));
        if !key_ok {
            return Err(validation(
                "tags.member.key",
                k,
                "Member must satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+",
            ));
        }
        if v.chars().count() > 256 {
            return Err(validation(
                "tags.member.value",
                v,
                "Member must have length less than or equal to 256",
            ));
        }
        if !seen.insert(k.to_lowercase()) {
            return Err(CoreError::InvalidParameter(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.".into(),
            ));
        }
    }
    for key in transitive {
        if !seen.contains(&key.to_lowercase()) {
            return Err(CoreError::InvalidParameter(format!(
                "The transitive tag key {key} is not among the session tags of this request."
            )));
        }
    }
    Ok(())
}

impl<S: Store> Coffer<S> {
    async fn sts_keys(&self, account_id: &str) -> Result<Option<Arc<StsKeys>>, CoreError> {
        if let Ok(cache) = self.sts_keys.accounts.read()
            && let Some(k) = cache.get(account_id)
        {
            return Ok(Some(Arc::clone(k)));
        }
        let Some(account) = self.store.get_account(account_id).await? else {
            return Ok(None);
        };
        let keys = Arc::new(StsKeys::derive(&*self.keyring.account_key(&account)?)?);
        if let Ok(mut cache) = self.sts_keys.accounts.write() {
            cache.insert(account_id.to_string(), Arc::clone(&keys));
        }
        Ok(Some(keys))
    }

    /// Issues temporary credentials for `session`.
    pub(crate) async fn issue(
        &self,
        account_id: &str,
        principal_arn: &str,
        principal_type: PrincipalType,
        session: &Session,
    ) -> Result<TemporaryCredentials, CoreError> {
        let keys = self
            .sts_keys(account_id)
            .await?
            .ok_or_else(|| CoreError::Internal(format!("account {account_id} does not exist")))?;
        let access_key_id = ids::temporary_access_key_id()?;
        let payload = session_json(&access_key_id, principal_arn, principal_type, session);
        let plaintext = serde_json::to_vec(&payload)
            .map_err(|e| CoreError::Internal(format!("cannot encode a session: {e}")))?;
        let sealed = keys.token.seal("sts", &plaintext, &token_aad(account_id))?;
        let mut token = Vec::with_capacity(1 + ACCOUNT_ID_LEN + sealed.len());
        token.push(TOKEN_VERSION);
        token.extend_from_slice(account_id.as_bytes());
        token.extend_from_slice(&sealed);
        Ok(TemporaryCredentials {
            secret_access_key: keys.secret_for(&access_key_id),
            access_key_id,
            session_token: base64::engine::general_purpose::STANDARD.encode(token),
            expiration_ms: session.expires_ms,
        })
    }

    /// Checks a session token presented with `access_key_id`: issued by this service for this
    /// key, unaltered, and not expired (by the service's clock).
    pub async fn session_credentials(
        &self,
        access_key_id: &str,
        token: &str,
    ) -> Result<SessionCredentials, TokenRejection> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .map_err(|_| TokenRejection::Invalid)?;
        let (&version, rest) = raw.split_first().ok_or(TokenRejection::Invalid)?;
        if version != TOKEN_VERSION || rest.len() <= ACCOUNT_ID_LEN {
            return Err(TokenRejection::Invalid);
        }
        let (account, sealed) = rest.split_at(ACCOUNT_ID_LEN);
        let account_id = std::str::from_utf8(account)
            .ok()
            .filter(|a| a.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(TokenRejection::Invalid)?;
        let keys = self
            .sts_keys(account_id)
            .await
            .map_err(TokenRejection::Failed)?
            .ok_or(TokenRejection::Invalid)?;
        let plaintext = keys
            .token
            .open(sealed, &token_aad(account_id))
            .map_err(|_| TokenRejection::Invalid)?;
        let value: Value =
            serde_json::from_slice(plaintext.expose()).map_err(|_| TokenRejection::Invalid)?;
        let (key_id, principal_arn, principal_type, session) =
            parse_session(&value).ok_or(TokenRejection::Invalid)?;
        if !coffer_crypto::constant_time_eq(key_id.as_bytes(), access_key_id.as_bytes()) {
            return Err(TokenRejection::Invalid);
        }
        if self.clock.now_millis() >= session.expires_ms {
            return Err(TokenRejection::Expired);
        }
        Ok(SessionCredentials {
            account_id: account_id.to_string(),
            principal_arn,
            principal_type,
            secret_access_key: keys.secret_for(&key_id),
            session: Arc::new(session),
        })
    }

    /// `GetCallerIdentity`: who the credentials belong to. No permission is needed ("No
    /// permissions are required to perform this operation", STS API reference), and an
    /// explicit deny cannot stop it.
    pub async fn get_caller_identity(&self, caller: &Caller) -> Result<CallerIdentity, CoreError> {
        let user_id = match (&caller.session, caller.principal_type) {
            (Some(s), _) => s.principal_id.clone(),
            (None, PrincipalType::Root) => caller.account_id.clone(),
            (None, _) => {
                let name = caller.user_name().unwrap_or_default();
                self.store
                    .get_principal(&caller.account_id, PrincipalKind::User, name)
                    .await?
                    .map(|u| u.principal_id)
                    .ok_or_else(|| {
                        CoreError::AccessDenied(
                            "The security token included in the request is invalid.".into(),
                        )
                    })?
            }
        };
        Ok(CallerIdentity {
            user_id,
            account: caller.account_id.clone(),
            arn: caller.principal_arn.clone(),
        })
    }

    /// `GetSessionToken`: temporary credentials of the calling user or root user, optionally
    /// proving a second factor, for 15 minutes to 36 hours (one hour at most for a root user:
    /// "the session for AWS account owners defaults to one hour", STS API reference).
    pub async fn get_session_token(
        &self,
        caller: &Caller,
        duration_seconds: Option<i64>,
        serial_number: Option<&str>,
        token_code: Option<&str>,
    ) -> Result<TemporaryCredentials, CoreError> {
        let duration = check_duration("durationSeconds", duration_seconds, 36 * ONE_HOUR)?;
        let mfa = check_mfa(serial_number, token_code)?;
        if caller.session.is_some() {
            return Err(CoreError::AccessDenied(
                "Cannot call GetSessionToken with session credentials".into(),
            ));
        }
        let now = self.clock.now_millis();
        let mfa_at = match mfa {
            Some((serial, code)) => {
                let user = caller
                    .user_name()
                    .ok_or_else(|| CoreError::AccessDenied(crate::MFA_UNVALIDATED.into()))?;
                self.verify_mfa_code(&caller.account_id, user, serial, code)
                    .await?;
                Some(now)
            }
            None => None,
        };
        let mut seconds = duration.unwrap_or(SESSION_TOKEN_DEFAULT);
        if caller.principal_type == PrincipalType::Root {
            seconds = seconds.min(ONE_HOUR);
        }
        let principal_id = self.get_caller_identity(caller).await?.user_id;
        let session = Session {
            principal_id,
            issued_ms: now,
            expires_ms: now + seconds * 1000,
            mfa_authenticated_ms: mfa_at,
            role: None,
            policy: None,
            policy_arns: Vec::new(),
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: None,
        };
        self.issue(
            &caller.account_id,
            &caller.principal_arn,
            caller.principal_type,
            &session,
        )
        .await
    }

    /// `AssumeRole`: the role's trust policy and the caller's identity policies decide (within
    /// an account either may allow; across accounts both must), with the request's
    /// `sts:ExternalId`, `sts:RoleSessionName`, session tags and MFA as condition keys.
    pub async fn assume_role(
        &self,
        caller: &Caller,
        input: &AssumeRoleInput,
    ) -> Result<AssumedRole, CoreError> {
        self.check_assume_role_input(input)?;
        let mfa = check_mfa(input.serial_number.as_deref(), input.token_code.as_deref())?;
        if caller.principal_type == PrincipalType::Root {
            // STS refuses root credentials outright (AccessDenied, HTTP 403).
            return Err(CoreError::AccessDenied(
                "Roles may not be assumed by root accounts.".into(),
            ));
        }
        let (role_account, path_name) = parse_role_arn(&input.role_arn)
            .ok_or_else(|| CoreError::Validation("Request ARN is invalid".into()))?;
        let role_name = path_name.rsplit('/').next().unwrap_or(path_name);
        let not_authorized = || {
            CoreError::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                caller.principal_arn, input.role_arn
            ))
        };
        // A role that does not exist is refused like one that may not be assumed, so a caller
        // cannot probe for role names.
        let role = self
            .store
            .get_principal(role_account, PrincipalKind::Role, role_name)
            .await?
            .filter(|r| r.arn() == input.role_arn)
            .ok_or_else(not_authorized)?;
        let trust = match &role.trust_policy {
            Some(doc) => policies::parse(doc, Kind::Trust).map_err(|_| not_authorized())?,
            None => return Err(not_authorized()),
        };

        let now = self.clock.now_millis();
        let inherited = caller.session.as_deref();
        let mfa_at = match mfa {
            Some((serial, code)) => {
                let user = caller
                    .user_name()
                    .ok_or_else(|| CoreError::AccessDenied(crate::MFA_UNVALIDATED.into()))?;
                self.verify_mfa_code(&caller.account_id, user, serial, code)
                    .await?;
                Some(now)
            }
            // A session that proved MFA keeps that proof when it assumes a role.
            None => inherited.and_then(|s| s.mfa_authenticated_ms),
        };

        // Transitive tags of the calling session pass on and may not be overridden.
        let mut tags: Vec<(String, String)> = Vec::new();
        let mut transitive: Vec<String> = input.transitive_tag_keys.clone();
        if let Some(s) = inherited {
            for key in &s.transitive_tag_keys {
                if input.tags.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                    return Err(CoreError::InvalidParameter(format!(
                        "One or more of the specified transitive tag keys can't be set because they conflict with a transitive tag key that was inherited from the calling session: {key}."
                    )));
                }
                if let Some(pair) = s.tags.iter().find(|(k, _)| k == key) {
                    tags.push(pair.clone());
                    transitive.push(key.clone());
                }
            }
        }
        tags.extend(input.tags.iter().cloned());

        let mut keys: crate::RequestKeys = vec![(
            "sts:RoleSessionName".into(),
            vec![input.role_session_name.clone()],
        )];
        if let Some(id) = &input.external_id {
            keys.push(("sts:ExternalId".into(), vec![id.clone()]));
        }
        if let Some(si) = &input.source_identity {
            keys.push(("sts:SourceIdentity".into(), vec![si.clone()]));
        }
        if let Some(at) = mfa_at {
            keys.push(("aws:MultiFactorAuthPresent".into(), vec!["true".into()]));
            keys.push((
                "aws:MultiFactorAuthAge".into(),
                vec![((now - at) / 1000).to_string()],
            ));
        }
        if !input.tags.is_empty() {
            for (k, v) in &input.tags {
                keys.push((format!("aws:RequestTag/{k}"), vec![v.clone()]));
            }
            keys.push((
                "aws:TagKeys".into(),
                input.tags.iter().map(|(k, _)| k.clone()).collect(),
            ));
        }
        if !input.transitive_tag_keys.is_empty() {
            keys.push((
                "sts:TransitiveTagKeys".into(),
                input.transitive_tag_keys.clone(),
            ));
        }
        let role_arn = role.arn();
        self.decide_trust(caller, "sts:AssumeRole", &role_arn, keys.clone(), &trust)
            .await
            .map_err(|e| match e {
                CoreError::AccessDenied(_) => not_authorized(),
                other => other,
            })?;
        // Passing tags or a source identity are permissions of their own, in the same policies.
        for (wanted, action) in [
            (!input.tags.is_empty(), "sts:TagSession"),
            (input.source_identity.is_some(), "sts:SetSourceIdentity"),
        ] {
            if wanted {
                self.decide_trust(caller, action, &role_arn, keys.clone(), &trust)
                    .await
                    .map_err(|e| match e {
                        CoreError::AccessDenied(_) => CoreError::AccessDenied(format!(
                            "User: {} is not authorized to perform: {action} on resource: {}",
                            caller.principal_arn, input.role_arn
                        )),
                        other => other,
                    })?;
            }
        }

        // Durations: role chaining is capped at one hour whatever the role allows.
        let chained = caller.principal_type == PrincipalType::AssumedRole;
        let seconds = input.duration_seconds.unwrap_or(ONE_HOUR);
        if chained && seconds > ONE_HOUR {
            return Err(CoreError::Validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".into(),
            ));
        }
        if seconds > role.max_session_secs.unwrap_or(ONE_HOUR) {
            return Err(CoreError::Validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                    .into(),
            ));
        }

        let packed = self
            .packed_session_policy(role_account, input, &tags)
            .await?;
        let session_name = input.role_session_name.clone();
        let assumed_role_id = format!("{}:{session_name}", role.principal_id);
        let arn = format!("arn:aws:sts::{role_account}:assumed-role/{role_name}/{session_name}");
        let session = Session {
            principal_id: assumed_role_id.clone(),
            issued_ms: now,
            expires_ms: now + seconds * 1000,
            mfa_authenticated_ms: mfa_at,
            role: Some(RoleSession {
                role_arn: role_arn.clone(),
                role_id: role.principal_id.clone(),
                session_name,
                chained,
            }),
            policy: input.policy.clone(),
            policy_arns: input.policy_arns.clone(),
            tags,
            transitive_tag_keys: transitive,
            source_identity: input
                .source_identity
                .clone()
                .or_else(|| inherited.and_then(|s| s.source_identity.clone())),
        };
        let credentials = self
            .issue(role_account, &arn, PrincipalType::AssumedRole, &session)
            .await?;
        Ok(AssumedRole {
            credentials,
            assumed_role_id,
            arn,
            packed_policy_size: packed,
            source_identity: session.source_identity,
        })
    }

    fn check_assume_role_input(&self, input: &AssumeRoleInput) -> Result<(), CoreError> {
        // The model's roleArn pattern is any printable text: only its length is checked here,
        // its shape when the role is looked up ("Request ARN is invalid").
        check_chars("roleArn", &input.role_arn, (20, 2048), |_| true, "")?;
        check_name("roleSessionName", &input.role_session_name, 2, 64)?;
        check_duration("durationSeconds", input.duration_seconds, 43200)?;
        if let Some(id) = &input.external_id {
            check_chars(
                "externalId",
                id,
                (2, 1224),
                |c| name_char(c) || ":/".contains(c),
                "[\\w+=,.@:\\/-]*",
            )?;
        }
        if let Some(si) = &input.source_identity {
            check_name("sourceIdentity", si, 2, 64)?;
        }
        check_session_tags(&input.tags, &input.transitive_tag_keys)
    }

    /// Validates the session policies and tags and returns the packed size (percent of the
    /// budget) when any were passed.
    async fn packed_session_policy(
        &self,
        role_account: &str,
        input: &AssumeRoleInput,
        tags: &[(String, String)],
    ) -> Result<Option<u32>, CoreError> {
        let mut used = 0usize;
        if let Some(doc) = &input.policy {
            let len = doc.chars().count();
            if len > SESSION_POLICY_MAX {
                return Err(validation(
                    "policy",
                    doc,
                    "Member must have length less than or equal to 2048",
                ));
            }
            policies::parse(doc, Kind::Identity)?;
            used += doc.chars().filter(|c| !c.is_whitespace()).count();
        }
        if input.policy_arns.len() > MAX_POLICY_ARNS {
            return Err(validation(
                "policyArns",
                &format!("{} policies", input.policy_arns.len()),
                "Member must have length less than or equal to 10",
            ));
        }
        for arn in &input.policy_arns {
            if self.managed_document(role_account, arn).await?.is_none() {
                return Err(CoreError::InvalidParameter(format!(
                    "Policy {arn} does not exist or is not attachable."
                )));
            }
            used += arn.len();
        }
        used += tags.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if input.policy.is_none() && input.policy_arns.is_empty() && input.tags.is_empty() {
            return Ok(None);
        }
        let percent = u32::try_from(used * 100 / PACKED_BUDGET).unwrap_or(u32::MAX);
        if percent > 100 {
            return Err(CoreError::LimitExceeded(format!(
                "Packed policy consumes {percent}% of allotted space, please use smaller policy."
            )));
        }
        Ok(Some(percent))
    }
}
