//! Who is calling: accounts, their root credentials, and the [`Caller`] every operation gets.

use std::net::IpAddr;

use coffer_store::{AccessKeyRecord, AccountRecord, Store};

use crate::{Coffer, CoreError, InitOutcome, SecretBytes, ids};

/// The kind of principal behind a request (`userIdentity.type` in CloudTrail terms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    Root,
    IamUser,
    /// A session of an IAM role, from `AssumeRole`.
    AssumedRole,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: String,
    pub principal_arn: String,
    pub principal_type: PrincipalType,
    pub access_key_id: String,
    /// The region of the request, from the SigV4 credential scope.
    pub region: String,
    pub source_ip: IpAddr,
    /// Whether the request arrived over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// What temporary credentials carry; `None` for long-term access keys.
    pub session: Option<std::sync::Arc<Session>>,
}

/// The facts sealed into a session token (from `AssumeRole` or `GetSessionToken`) that
/// authorization, `GetCallerIdentity` and the audit trail read. Never holds the session's
/// secret access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `aws:userid`: the account id (root), `AIDA…` (user) or `AROA…:SESSION` (role).
    pub principal_id: String,
    pub issued_ms: i64,
    pub expires_ms: i64,
    /// When the second factor was proven, for sessions obtained with an MFA code.
    pub mfa_authenticated_ms: Option<i64>,
    /// The role and session name of an assumed-role session.
    pub role: Option<RoleSession>,
    /// The inline session policy passed to `AssumeRole`.
    pub policy: Option<String>,
    /// The managed session policies passed to `AssumeRole` (`PolicyArns`), resolved when a
    /// decision is made, as AWS does.
    pub policy_arns: Vec<String>,
    /// Session tags (`aws:PrincipalTag/…`), overriding the role's tags of the same key.
    pub tags: Vec<(String, String)>,
    /// Tag keys that pass on to sessions this session assumes (role chaining).
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
}

/// Which role a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSession {
    pub role_arn: String,
    /// The role's unique id (`AROA…`) when the session began: a role deleted and created
    /// again under the same name is another role, and grants the old sessions nothing.
    pub role_id: String,
    pub session_name: String,
    /// Whether the session was assumed by another role session (role chaining).
    pub chained: bool,
}

/// An access key as the authenticator needs it: the secret for SigV4, and who it belongs to.
#[derive(Debug)]
pub struct AccessKeyIdentity {
    pub access_key_id: String,
    pub account_id: String,
    pub principal_arn: String,
    pub principal_type: PrincipalType,
    pub active: bool,
    pub secret_access_key: SecretBytes,
}

impl<S: Store> Coffer<S> {
    /// Creates an account with a fresh account key and a root access key.
    pub async fn create_account(&self, account_id: Option<&str>) -> Result<InitOutcome, CoreError> {
        let account_id = match account_id {
            Some(id) if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => id.to_string(),
            Some(id) => {
                return Err(CoreError::InvalidParameter(format!(
                    "account id {id:?} is not 12 digits"
                )));
            }
            None => ids::account_id()?,
        };
        let now = self.clock.now_millis();
        let account = AccountRecord {
            account_id: account_id.clone(),
            created_ms: now,
            wrapped_account_key: self.keyring.new_account_key(&account_id)?,
        };
        let access_key_id = ids::access_key_id()?;
        let secret = ids::secret_access_key()?;
        let key = AccessKeyRecord {
            access_key_id: access_key_id.clone(),
            account_id: account_id.clone(),
            principal_arn: format!("arn:aws:iam::{account_id}:root"),
            user_name: None,
            sealed_secret: self.keyring.seal_access_secret(&access_key_id, &secret)?,
            active: true,
            created_ms: now,
        };
        self.store
            .insert_account(account, key)
            .await
            .map_err(|e| match e {
                coffer_store::StoreError::AlreadyExists => {
                    CoreError::ResourceExists(format!("account {account_id} already exists"))
                }
                other => other.into(),
            })?;
        Ok(InitOutcome {
            account_id,
            access_key_id,
            secret_access_key: secret,
        })
    }

    /// Looks up an access key for SigV4 verification; `None` when unknown.
    pub async fn access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyIdentity>, CoreError> {
        let Some(rec) = self.store.get_access_key(access_key_id).await? else {
            return Ok(None);
        };
        let secret_access_key = self
            .keyring
            .open_access_secret(&rec.access_key_id, &rec.sealed_secret)?;
        Ok(Some(AccessKeyIdentity {
            principal_type: if rec.user_name.is_some() {
                PrincipalType::IamUser
            } else {
                PrincipalType::Root
            },
            access_key_id: rec.access_key_id,
            account_id: rec.account_id,
            principal_arn: rec.principal_arn,
            active: rec.active,
            secret_access_key,
        }))
    }

    /// Every account id, for `--accept-any-credentials` (which maps any key to the first).
    pub async fn account_ids(&self) -> Result<Vec<String>, CoreError> {
        Ok(self
            .store
            .list_accounts()
            .await?
            .into_iter()
            .map(|a| a.account_id)
            .collect())
    }

    /// The account's key, unwrapped once and then served from memory.
    pub(crate) async fn account_key(
        &self,
        account_id: &str,
    ) -> Result<std::sync::Arc<coffer_crypto::SymmetricKey>, CoreError> {
        if let Some(k) = self.keyring.cached_account_key(account_id) {
            return Ok(k);
        }
        let account =
            self.store.get_account(account_id).await?.ok_or_else(|| {
                CoreError::Internal(format!("account {account_id} does not exist"))
            })?;
        self.keyring.account_key(&account)
    }
}
