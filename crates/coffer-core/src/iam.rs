//! IAM identities of an account: users, their access keys (at most two each) and their inline
//! policies, with IAM's rules and messages. Every operation is itself authorized (`iam:*`
//! actions on the user's ARN).

use std::sync::atomic::Ordering;

use coffer_store::{AccessKeyRecord, AccessKeyUse, Store, StoreError, UserRecord};

use crate::{Caller, Coffer, CoreError, SecretBytes, ids};

/// At most two access keys per user (IAM quotas).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
/// Inline policies of a user, together, at most this many non-whitespace characters.
pub const USER_POLICY_SIZE_LIMIT: usize = 2_048;

/// A new access key with its secret, returned once.
#[derive(Debug)]
pub struct NewAccessKey {
    pub record: AccessKeyRecord,
    pub secret_access_key: SecretBytes,
}

fn validation(member: &str, value: &str, constraint: &str) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// `[\w+=,.@-]+` with a length range, as the IAM model defines names.
fn validate_iam_name(member: &str, value: &str, max: usize) -> Result<(), CoreError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(validation(
            member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(validation(
            member,
            value,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), CoreError> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(validation(
            "path",
            path,
            "Member must satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
        ))
    }
}

fn user_arn(account_id: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:user{path}{name}")
}

fn no_such_user(name: &str) -> CoreError {
    CoreError::NotFound(format!("The user with name {name} cannot be found."))
}

fn no_such_key(id: &str) -> CoreError {
    CoreError::NotFound(format!("The Access Key with id {id} cannot be found."))
}

/// Non-whitespace characters, the measure of IAM's policy size quotas.
fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

impl<S: Store> Coffer<S> {
    /// The user an IAM call is about: the named one, or the caller itself when unnamed.
    fn subject_user<'a>(
        &self,
        caller: &'a Caller,
        user_name: Option<&'a str>,
    ) -> Result<&'a str, CoreError> {
        match user_name.or_else(|| caller.user_name()) {
            Some(n) => Ok(n),
            None => Err(CoreError::Validation(
                "Must specify userName when calling with non-User credentials".into(),
            )),
        }
    }

    /// A user's ARN for authorization, whether or not the user exists yet.
    async fn authorize_user_action(
        &self,
        caller: &Caller,
        action: &str,
        name: &str,
    ) -> Result<Option<UserRecord>, CoreError> {
        let existing = self.store.get_user(&caller.account_id, name).await?;
        let arn = existing
            .as_ref()
            .map_or_else(|| user_arn(&caller.account_id, "/", name), UserRecord::arn);
        self.authorize(caller, action, &arn).await?;
        Ok(existing)
    }

    /// Bumped whenever an access key stops being valid, so authenticators drop cached keys.
    #[must_use]
    pub fn credentials_epoch(&self) -> u64 {
        self.credentials_epoch.load(Ordering::Acquire)
    }

    fn credentials_changed(&self) {
        self.credentials_epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        user_name: &str,
        path: Option<&str>,
    ) -> Result<UserRecord, CoreError> {
        validate_iam_name("userName", user_name, 64)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        if self
            .authorize_user_action(caller, "iam:CreateUser", user_name)
            .await?
            .is_some()
        {
            return Err(CoreError::ResourceExists(format!(
                "User with name {user_name} already exists."
            )));
        }
        let user = UserRecord {
            account_id: caller.account_id.clone(),
            user_name: user_name.to_string(),
            user_id: ids::user_id()?,
            path: path.to_string(),
            created_ms: self.clock.now_millis(),
        };
        self.store
            .insert_user(user.clone())
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => {
                    CoreError::ResourceExists(format!("User with name {user_name} already exists."))
                }
                other => other.into(),
            })?;
        Ok(user)
    }

    pub async fn get_user(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<UserRecord, CoreError> {
        let name = self.subject_user(caller, user_name)?;
        self.authorize_user_action(caller, "iam:GetUser", name)
            .await?
            .ok_or_else(|| no_such_user(name))
    }

    pub async fn list_users(
        &self,
        caller: &Caller,
        path_prefix: Option<&str>,
    ) -> Result<Vec<UserRecord>, CoreError> {
        self.authorize(
            caller,
            "iam:ListUsers",
            &format!("arn:aws:iam::{}:user/", caller.account_id),
        )
        .await?;
        let prefix = path_prefix.unwrap_or("/");
        Ok(self
            .store
            .list_users(&caller.account_id)
            .await?
            .into_iter()
            .filter(|u| u.path.starts_with(prefix))
            .collect())
    }

    pub async fn delete_user(&self, caller: &Caller, user_name: &str) -> Result<(), CoreError> {
        let user = self
            .authorize_user_action(caller, "iam:DeleteUser", user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))?;
        // IAM refuses to delete a user that still has access keys or policies (DeleteUser API reference).
        if !self
            .store
            .list_access_keys(&caller.account_id, &user.user_name)
            .await?
            .is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must delete access keys first.".into(),
            ));
        }
        if !self
            .store
            .user_policies(&caller.account_id, &user.user_name)
            .await?
            .is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must delete policies first.".into(),
            ));
        }
        if !self
            .store
            .delete_user(&caller.account_id, &user.user_name)
            .await?
        {
            return Err(no_such_user(user_name));
        }
        self.credentials_changed();
        Ok(())
    }

    pub async fn create_access_key(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<NewAccessKey, CoreError> {
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .authorize_user_action(caller, "iam:CreateAccessKey", name)
            .await?
            .ok_or_else(|| no_such_user(name))?;
        let existing = self
            .store
            .list_access_keys(&caller.account_id, &user.user_name)
            .await?;
        if existing.len() >= MAX_ACCESS_KEYS_PER_USER {
            return Err(CoreError::LimitExceeded(format!(
                "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}"
            )));
        }
        let access_key_id = ids::access_key_id()?;
        let secret = ids::secret_access_key()?;
        let record = AccessKeyRecord {
            access_key_id: access_key_id.clone(),
            account_id: caller.account_id.clone(),
            principal_arn: user.arn(),
            user_name: Some(user.user_name.clone()),
            sealed_secret: self.keyring.seal_access_secret(&access_key_id, &secret)?,
            active: true,
            created_ms: self.clock.now_millis(),
        };
        self.store.insert_access_key(record.clone()).await?;
        Ok(NewAccessKey {
            record,
            secret_access_key: secret,
        })
    }

    pub async fn list_access_keys(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<(String, Vec<AccessKeyRecord>), CoreError> {
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .authorize_user_action(caller, "iam:ListAccessKeys", name)
            .await?
            .ok_or_else(|| no_such_user(name))?;
        let keys = self
            .store
            .list_access_keys(&caller.account_id, &user.user_name)
            .await?;
        Ok((user.user_name, keys))
    }

    async fn user_key(
        &self,
        caller: &Caller,
        action: &str,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> Result<AccessKeyRecord, CoreError> {
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .authorize_user_action(caller, action, name)
            .await?
            .ok_or_else(|| no_such_user(name))?;
        self.store
            .list_access_keys(&caller.account_id, &user.user_name)
            .await?
            .into_iter()
            .find(|k| k.access_key_id == access_key_id)
            .ok_or_else(|| no_such_key(access_key_id))
    }

    pub async fn update_access_key(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
        access_key_id: &str,
        status: &str,
    ) -> Result<(), CoreError> {
        let active = match status {
            "Active" => true,
            "Inactive" => false,
            other => {
                return Err(validation(
                    "status",
                    other,
                    "Member must satisfy enum value set: [Active, Inactive]",
                ));
            }
        };
        let key = self
            .user_key(caller, "iam:UpdateAccessKey", user_name, access_key_id)
            .await?;
        self.store
            .set_access_key_active(&key.access_key_id, active)
            .await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn delete_access_key(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
        access_key_id: &str,
    ) -> Result<(), CoreError> {
        let key = self
            .user_key(caller, "iam:DeleteAccessKey", user_name, access_key_id)
            .await?;
        self.store.delete_access_key(&key.access_key_id).await?;
        self.credentials_changed();
        Ok(())
    }

    /// The key's user and its last use (`None` when never used).
    pub async fn access_key_last_used(
        &self,
        caller: &Caller,
        access_key_id: &str,
    ) -> Result<(String, Option<AccessKeyUse>), CoreError> {
        let key = self
            .store
            .get_access_key(access_key_id)
            .await?
            .filter(|k| k.account_id == caller.account_id)
            .ok_or_else(|| no_such_key(access_key_id))?;
        let user_name = key.user_name.clone().unwrap_or_else(|| "root".to_string());
        self.authorize(caller, "iam:GetAccessKeyLastUsed", &key.principal_arn)
            .await?;
        Ok((
            user_name,
            self.store.access_key_last_used(access_key_id).await?,
        ))
    }

    /// Records a key's use (the authenticator calls this at most hourly per key).
    pub async fn record_access_key_use(
        &self,
        access_key_id: &str,
        service: &str,
        region: &str,
    ) -> Result<(), CoreError> {
        let used = AccessKeyUse {
            at_ms: self.clock.now_millis(),
            service: service.to_string(),
            region: region.to_string(),
        };
        Ok(self
            .store
            .record_access_key_use(access_key_id, used)
            .await?)
    }

    pub async fn put_user_policy(
        &self,
        caller: &Caller,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), CoreError> {
        validate_iam_name("policyName", policy_name, 128)?;
        let user = self
            .authorize_user_action(caller, "iam:PutUserPolicy", user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))?;
        crate::policies::validate_identity_policy(document)?;
        let others: usize = self
            .store
            .user_policies(&caller.account_id, &user.user_name)
            .await?
            .iter()
            .filter(|(n, _)| n != policy_name)
            .map(|(_, d)| policy_size(d))
            .sum();
        if others + policy_size(document) > USER_POLICY_SIZE_LIMIT {
            return Err(CoreError::LimitExceeded(format!(
                "Maximum policy size of {USER_POLICY_SIZE_LIMIT} bytes exceeded for user {}",
                user.user_name
            )));
        }
        self.store
            .put_user_policy(&caller.account_id, &user.user_name, policy_name, document)
            .await?;
        Ok(())
    }

    pub async fn get_user_policy(
        &self,
        caller: &Caller,
        user_name: &str,
        policy_name: &str,
    ) -> Result<(String, String), CoreError> {
        let user = self
            .authorize_user_action(caller, "iam:GetUserPolicy", user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))?;
        self.store
            .user_policies(&caller.account_id, &user.user_name)
            .await?
            .into_iter()
            .find(|(n, _)| n == policy_name)
            .map(|(_, d)| (user.user_name.clone(), d))
            .ok_or_else(|| {
                CoreError::NotFound(format!(
                    "The user policy with name {policy_name} cannot be found."
                ))
            })
    }

    pub async fn list_user_policies(
        &self,
        caller: &Caller,
        user_name: &str,
    ) -> Result<Vec<String>, CoreError> {
        let user = self
            .authorize_user_action(caller, "iam:ListUserPolicies", user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))?;
        Ok(self
            .store
            .user_policies(&caller.account_id, &user.user_name)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    pub async fn delete_user_policy(
        &self,
        caller: &Caller,
        user_name: &str,
        policy_name: &str,
    ) -> Result<(), CoreError> {
        let user = self
            .authorize_user_action(caller, "iam:DeleteUserPolicy", user_name)
            .await?
            .ok_or_else(|| no_such_user(user_name))?;
        if !self
            .store
            .delete_user_policy(&caller.account_id, &user.user_name, policy_name)
            .await?
        {
            return Err(CoreError::NotFound(format!(
                "The user policy with name {policy_name} cannot be found."
            )));
        }
        Ok(())
    }
}
