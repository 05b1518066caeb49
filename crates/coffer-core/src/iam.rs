//! IAM identities of an account, with IAM's rules and messages: users, groups and roles;
//! access keys (at most two per user); inline policies on users, groups and roles; customer
//! managed policies with versions (at most five, one default) and their attachments; and a
//! few AWS managed policies. Every operation is itself authorized (`iam:*` actions on the
//! ARN of what it touches).

use std::sync::atomic::Ordering;

// IAM's policy size quotas are the policy language's figures.
use coffer_policy::{
    GROUP_INLINE_POLICY_MAX, ROLE_INLINE_POLICY_MAX, SizeQuota, USER_INLINE_POLICY_MAX,
};

use coffer_store::{
    AccessKeyRecord, AccessKeyUse, ManagedPolicyRecord, PolicyVersionRecord, PrincipalKind,
    PrincipalRecord, Store, StoreError,
};

use crate::{Caller, Coffer, CoreError, SecretBytes, ids};

/// At most two access keys per user (IAM quotas).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;
/// At most five versions of a managed policy (IAM quotas).
pub const MAX_POLICY_VERSIONS: usize = 5;

/// A new access key with its secret, returned once.
#[derive(Debug)]
pub struct NewAccessKey {
    pub record: AccessKeyRecord,
    pub secret_access_key: SecretBytes,
}

/// A managed policy as IAM shows it: customer managed (stored) or AWS managed (built in).
#[derive(Debug, Clone)]
pub struct ManagedPolicy {
    pub arn: String,
    pub name: String,
    pub policy_id: String,
    pub path: String,
    pub description: Option<String>,
    pub default_version: i64,
    pub attachment_count: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What may be created for a role.
#[derive(Debug, Default)]
pub struct RoleInput {
    pub name: String,
    pub path: Option<String>,
    pub trust_policy: String,
    pub description: Option<String>,
    pub max_session_secs: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// At most 50 tags on a user or role (IAM quotas).
pub const MAX_PRINCIPAL_TAGS: usize = 50;

/// Adds or overwrites tags (keys compare without regard to case, as IAM does).
pub(crate) fn merge_principal_tags(
    existing: &mut Vec<(String, String)>,
    new: Vec<(String, String)>,
) -> Result<(), CoreError> {
    for (k, v) in new {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(validation(
                "tags.member.key",
                &k,
                "Member must have length between 1 and 128",
            ));
        }
        if v.chars().count() > 256 {
            return Err(validation(
                "tags.member.value",
                &v,
                "Member must have length less than or equal to 256",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(CoreError::InvalidParameter(format!(
                "Tag keys beginning with 'aws:' are reserved: {k}"
            )));
        }
        match existing
            .iter_mut()
            .find(|(ek, _)| ek.eq_ignore_ascii_case(&k))
        {
            Some(slot) => *slot = (k, v),
            None => existing.push((k, v)),
        }
    }
    if existing.len() > MAX_PRINCIPAL_TAGS {
        return Err(CoreError::LimitExceeded(format!(
            "The number of tags has reached the maximum limit of {MAX_PRINCIPAL_TAGS}."
        )));
    }
    Ok(())
}

/// A principal with what gives it permissions, for `GetAccountAuthorizationDetails`.
#[derive(Debug)]
pub struct PrincipalDetail {
    pub principal: PrincipalRecord,
    /// Inline policies as `(name, document)`.
    pub inline: Vec<(String, String)>,
    /// Users only: the names of the user's groups.
    pub groups: Vec<String>,
    /// ARNs of the attached managed policies.
    pub attached: Vec<String>,
}

/// Everything IAM holds about an account, for `GetAccountAuthorizationDetails`.
#[derive(Debug, Default)]
pub struct AuthorizationDetails {
    pub users: Vec<PrincipalDetail>,
    pub groups: Vec<PrincipalDetail>,
    pub roles: Vec<PrincipalDetail>,
    /// Each customer managed policy with its versions.
    pub policies: Vec<(ManagedPolicy, Vec<PolicyVersionRecord>)>,
}

pub(crate) fn validation(member: &str, value: &str, constraint: &str) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// A string member with a length range and a character set, refused with the model's wording
/// (length first, then the pattern, as AWS's validation reports them).
pub(crate) fn check_chars(
    member: &str,
    value: &str,
    (min, max): (usize, usize),
    allowed: impl Fn(char) -> bool,
    pattern: &str,
) -> Result<(), CoreError> {
    let len = value.chars().count();
    if len < min {
        return Err(validation(
            member,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if len > max {
        return Err(validation(
            member,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    if !value.chars().all(allowed) {
        return Err(validation(
            member,
            value,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ));
    }
    Ok(())
}

/// `\w` and `+=,.@-`: the characters of IAM names and STS session names.
pub(crate) fn name_char(c: char) -> bool {
    c.is_alphanumeric() || "_+=,.@-".contains(c)
}

/// `[\w+=,.@-]+` with a length range, as the IAM model defines names.
pub(crate) fn validate_iam_name(member: &str, value: &str, max: usize) -> Result<(), CoreError> {
    check_chars(member, value, (1, max), name_char, "[\\w+=,.@-]+")
}

pub(crate) fn validate_path(path: &str) -> Result<(), CoreError> {
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

fn kind_word(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "user",
        PrincipalKind::Group => "group",
        PrincipalKind::Role => "role",
    }
}

fn kind_title(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Group => "Group",
        PrincipalKind::Role => "Role",
    }
}

pub(crate) fn no_such(kind: PrincipalKind, name: &str) -> CoreError {
    CoreError::NotFound(format!(
        "The {} with name {name} cannot be found.",
        kind_word(kind)
    ))
}

fn no_such_key(id: &str) -> CoreError {
    CoreError::NotFound(format!("The Access Key with id {id} cannot be found."))
}

fn no_such_policy(arn: &str) -> CoreError {
    CoreError::NotFound(format!("Policy {arn} does not exist or is not attachable."))
}

/// Non-whitespace characters, the measure of IAM's policy size quotas.
fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

fn inline_quota(kind: PrincipalKind) -> usize {
    match kind {
        PrincipalKind::User => USER_INLINE_POLICY_MAX,
        PrincipalKind::Group => GROUP_INLINE_POLICY_MAX,
        PrincipalKind::Role => ROLE_INLINE_POLICY_MAX,
    }
}

fn version_id(v: i64) -> String {
    format!("v{v}")
}

fn parse_version_id(v: &str) -> Result<i64, CoreError> {
    v.strip_prefix('v')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            validation(
                "versionId",
                v,
                "Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?",
            )
        })
}

/// AWS managed policies that coffer ships (`arn:aws:iam::aws:policy/NAME`). Their documents
/// are coffer's own statements of the same intent, limited to the services coffer serves.
pub const AWS_MANAGED_POLICIES: &[(&str, &str, &str)] = &[
    (
        "AdministratorAccess",
        "Provides full access to every service and resource.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "SecretsManagerReadWrite",
        "Provides read and write access to Secrets Manager.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#,
    ),
    (
        "ReadOnlyAccess",
        "Provides read-only access: describe, get and list.",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["secretsmanager:Describe*","secretsmanager:Get*","secretsmanager:List*","secretsmanager:BatchGet*","iam:Get*","iam:List*"],"Resource":"*"}]}"#,
    ),
];

fn aws_managed(arn: &str) -> Option<ManagedPolicy> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    AWS_MANAGED_POLICIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(n, d, _)| ManagedPolicy {
            arn: arn.to_string(),
            name: (*n).to_string(),
            policy_id: format!(
                "ANPAAWS{}",
                n.to_uppercase()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(14)
                    .collect::<String>()
            ),
            path: "/".into(),
            description: Some((*d).to_string()),
            default_version: 1,
            attachment_count: 0,
            created_ms: 0,
            updated_ms: 0,
        })
}

/// The document of an AWS managed policy, by ARN.
#[must_use]
pub fn aws_managed_document(arn: &str) -> Option<&'static str> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    AWS_MANAGED_POLICIES
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, doc)| *doc)
}

fn principal_arn(account_id: &str, kind: PrincipalKind, name: &str) -> String {
    format!("arn:aws:iam::{account_id}:{}/{name}", kind_word(kind))
}

/// The name of a customer managed policy of `account_id` from its ARN.
fn local_policy_name<'a>(account_id: &str, arn: &'a str) -> Option<&'a str> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (acct, rest) = rest.split_once(':')?;
    if acct != account_id {
        return None;
    }
    rest.strip_prefix("policy/")?.rsplit('/').next()
}

impl<S: Store> Coffer<S> {
    /// The user an IAM call is about: the named one, or the calling user when unnamed.
    pub(crate) fn subject_user<'a>(
        &self,
        caller: &'a Caller,
        user_name: Option<&'a str>,
    ) -> Result<&'a str, CoreError> {
        user_name.or_else(|| caller.user_name()).ok_or_else(|| {
            CoreError::Validation(
                "Must specify userName when calling with non-User credentials".into(),
            )
        })
    }

    /// Authorizes `action` on a principal's ARN (whether or not it exists yet) and returns it.
    async fn authorized_principal(
        &self,
        caller: &Caller,
        action: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Option<PrincipalRecord>, CoreError> {
        let existing = self
            .store
            .get_principal(&caller.account_id, kind, name)
            .await?;
        let arn = existing.as_ref().map_or_else(
            || principal_arn(&caller.account_id, kind, name),
            PrincipalRecord::arn,
        );
        self.authorize(caller, action, &arn).await?;
        Ok(existing)
    }

    pub(crate) async fn existing_principal(
        &self,
        caller: &Caller,
        action: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<PrincipalRecord, CoreError> {
        self.authorized_principal(caller, action, kind, name)
            .await?
            .ok_or_else(|| no_such(kind, name))
    }

    /// Bumped whenever credentials or policies change, so cached authentication and
    /// authorization state is rebuilt on the next request.
    #[must_use]
    pub fn credentials_epoch(&self) -> u64 {
        self.credentials_epoch.load(Ordering::Acquire)
    }

    fn credentials_changed(&self) {
        self.credentials_epoch.fetch_add(1, Ordering::AcqRel);
    }

    // ---------- users, groups, roles ----------

    async fn create_principal(
        &self,
        caller: &Caller,
        mut p: PrincipalRecord,
    ) -> Result<PrincipalRecord, CoreError> {
        let max = if p.kind == PrincipalKind::User {
            64
        } else {
            128
        };
        let member = match p.kind {
            PrincipalKind::User => "userName",
            PrincipalKind::Group => "groupName",
            PrincipalKind::Role => "roleName",
        };
        validate_iam_name(member, &p.name, max)?;
        validate_path(&p.path)?;
        let action = format!("iam:Create{}", kind_title(p.kind));
        if self
            .authorized_principal(caller, &action, p.kind, &p.name)
            .await?
            .is_some()
        {
            return Err(CoreError::ResourceExists(format!(
                "{} with name {} already exists.",
                kind_title(p.kind),
                p.name
            )));
        }
        p.principal_id = match p.kind {
            PrincipalKind::User => ids::prefixed_id("AIDA")?,
            PrincipalKind::Group => ids::prefixed_id("AGPA")?,
            PrincipalKind::Role => ids::prefixed_id("AROA")?,
        };
        p.account_id = caller.account_id.clone();
        p.created_ms = self.clock.now_millis();
        self.store
            .insert_principal(p.clone())
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => CoreError::ResourceExists(format!(
                    "{} with name {} already exists.",
                    kind_title(p.kind),
                    p.name
                )),
                other => other.into(),
            })?;
        Ok(p)
    }

    fn blank(kind: PrincipalKind, name: &str, path: Option<&str>) -> PrincipalRecord {
        PrincipalRecord {
            account_id: String::new(),
            kind,
            name: name.to_string(),
            principal_id: String::new(),
            path: path.unwrap_or("/").to_string(),
            created_ms: 0,
            trust_policy: None,
            description: None,
            max_session_secs: None,
            tags: Vec::new(),
        }
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        user_name: &str,
        path: Option<&str>,
        tags: Vec<(String, String)>,
    ) -> Result<PrincipalRecord, CoreError> {
        let mut p = Self::blank(PrincipalKind::User, user_name, path);
        merge_principal_tags(&mut p.tags, tags)?;
        self.create_principal(caller, p).await
    }

    pub async fn create_group(
        &self,
        caller: &Caller,
        group_name: &str,
        path: Option<&str>,
    ) -> Result<PrincipalRecord, CoreError> {
        self.create_principal(caller, Self::blank(PrincipalKind::Group, group_name, path))
            .await
    }

    pub async fn create_role(
        &self,
        caller: &Caller,
        input: RoleInput,
    ) -> Result<PrincipalRecord, CoreError> {
        crate::policies::validate(&input.trust_policy, crate::policies::Kind::Trust)?;
        let max_session = input.max_session_secs.unwrap_or(3600);
        if !(3600..=43_200).contains(&max_session) {
            return Err(validation(
                "maxSessionDuration",
                &max_session.to_string(),
                "Member must have value between 3600 and 43200",
            ));
        }
        if let Some(d) = &input.description
            && d.chars().count() > 1000
        {
            return Err(validation(
                "description",
                d,
                "Member must have length less than or equal to 1000",
            ));
        }
        let mut p = Self::blank(PrincipalKind::Role, &input.name, input.path.as_deref());
        merge_principal_tags(&mut p.tags, input.tags)?;
        p.trust_policy = Some(input.trust_policy);
        p.description = input.description;
        p.max_session_secs = Some(max_session);
        self.create_principal(caller, p).await
    }

    pub async fn get_principal(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<PrincipalRecord, CoreError> {
        self.existing_principal(caller, &format!("iam:Get{}", kind_title(kind)), kind, name)
            .await
    }

    pub async fn get_user(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<PrincipalRecord, CoreError> {
        let name = self.subject_user(caller, user_name)?;
        self.get_principal(caller, PrincipalKind::User, name).await
    }

    pub async fn list_principals(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        path_prefix: Option<&str>,
    ) -> Result<Vec<PrincipalRecord>, CoreError> {
        let action = format!("iam:List{}s", kind_title(kind));
        self.authorize(
            caller,
            &action,
            &format!("arn:aws:iam::{}:{}/", caller.account_id, kind_word(kind)),
        )
        .await?;
        let prefix = path_prefix.unwrap_or("/");
        Ok(self
            .store
            .list_principals(&caller.account_id, kind)
            .await?
            .into_iter()
            .filter(|p| p.path.starts_with(prefix))
            .collect())
    }

    /// Deletes a user, group or role, refusing while it still has what IAM makes you remove
    /// first (DeleteUser / DeleteGroup / DeleteRole API references).
    pub async fn delete_principal(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<(), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Delete{}", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        let a = &caller.account_id;
        if kind == PrincipalKind::User && !self.store.list_access_keys(a, &p.name).await?.is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must delete access keys first.".into(),
            ));
        }
        // AWS's words when a user still has an MFA device (aws-cdk#16511, ansible#27247).
        if kind == PrincipalKind::User && !self.store.user_mfa_devices(a, &p.name).await?.is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must delete MFA device first.".into(),
            ));
        }
        if !self
            .store
            .inline_policies(a, kind, &p.name)
            .await?
            .is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must delete policies first.".into(),
            ));
        }
        if !self
            .store
            .attached_policies(a, kind, &p.name)
            .await?
            .is_empty()
        {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must detach all policies first.".into(),
            ));
        }
        let members = match kind {
            PrincipalKind::User => self.store.groups_of_user(a, &p.name).await?.len(),
            PrincipalKind::Group => self.store.group_members(a, &p.name).await?.len(),
            PrincipalKind::Role => 0,
        };
        if members > 0 {
            return Err(CoreError::DeleteConflict(
                "Cannot delete entity, must remove users from group first.".into(),
            ));
        }
        if !self.store.delete_principal(a, kind, &p.name).await? {
            return Err(no_such(kind, name));
        }
        self.credentials_changed();
        Ok(())
    }

    /// `UpdateUser` / `UpdateGroup`: a new name and/or path. The principal's id stays, so
    /// its policies, attachments, memberships and access keys follow it.
    pub async fn update_principal(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Update{}", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        let target = new_name.unwrap_or(&p.name);
        let path = new_path.unwrap_or(&p.path);
        let member = if kind == PrincipalKind::User {
            "newUserName"
        } else {
            "newGroupName"
        };
        validate_iam_name(
            member,
            target,
            if kind == PrincipalKind::User { 64 } else { 128 },
        )?;
        validate_path(path)?;
        if !target.eq_ignore_ascii_case(&p.name)
            && self
                .store
                .get_principal(&caller.account_id, kind, target)
                .await?
                .is_some()
        {
            return Err(CoreError::ResourceExists(format!(
                "{} with name {target} already exists.",
                kind_title(kind)
            )));
        }
        // The renamed principal must also be allowed under its new name (IAM checks both).
        self.authorize(
            caller,
            &format!("iam:Update{}", kind_title(kind)),
            &format!(
                "arn:aws:iam::{}:{}{path}{target}",
                caller.account_id,
                kind_word(kind)
            ),
        )
        .await?;
        self.store
            .rename_principal(&caller.account_id, kind, &p.name, target, path)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => CoreError::ResourceExists(format!(
                    "{} with name {target} already exists.",
                    kind_title(kind)
                )),
                other => other.into(),
            })?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn update_role(
        &self,
        caller: &Caller,
        name: &str,
        description: Option<String>,
        max_session_secs: Option<i64>,
    ) -> Result<(), CoreError> {
        let mut p = self
            .existing_principal(caller, "iam:UpdateRole", PrincipalKind::Role, name)
            .await?;
        if let Some(m) = max_session_secs {
            if !(3600..=43_200).contains(&m) {
                return Err(validation(
                    "maxSessionDuration",
                    &m.to_string(),
                    "Member must have value between 3600 and 43200",
                ));
            }
            p.max_session_secs = Some(m);
        }
        if description.is_some() {
            p.description = description;
        }
        self.store.update_principal(p).await?;
        Ok(())
    }

    pub async fn update_assume_role_policy(
        &self,
        caller: &Caller,
        name: &str,
        document: &str,
    ) -> Result<(), CoreError> {
        let mut p = self
            .existing_principal(
                caller,
                "iam:UpdateAssumeRolePolicy",
                PrincipalKind::Role,
                name,
            )
            .await?;
        crate::policies::validate(document, crate::policies::Kind::Trust)?;
        p.trust_policy = Some(document.to_string());
        self.store.update_principal(p).await?;
        Ok(())
    }

    // ---------- tags ----------

    pub async fn tag_principal(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), CoreError> {
        let mut p = self
            .existing_principal(caller, &format!("iam:Tag{}", kind_title(kind)), kind, name)
            .await?;
        merge_principal_tags(&mut p.tags, tags)?;
        self.store.update_principal(p).await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn untag_principal(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        keys: &[String],
    ) -> Result<(), CoreError> {
        let mut p = self
            .existing_principal(
                caller,
                &format!("iam:Untag{}", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        p.tags
            .retain(|(k, _)| !keys.iter().any(|r| r.eq_ignore_ascii_case(k)));
        self.store.update_principal(p).await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn principal_tags(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, CoreError> {
        Ok(self
            .existing_principal(
                caller,
                &format!("iam:List{}Tags", kind_title(kind)),
                kind,
                name,
            )
            .await?
            .tags)
    }

    /// `GetAccountAuthorizationDetails`: users, groups, roles and customer managed policies.
    pub async fn authorization_details(
        &self,
        caller: &Caller,
    ) -> Result<AuthorizationDetails, CoreError> {
        self.authorize(caller, "iam:GetAccountAuthorizationDetails", "*")
            .await?;
        let a = &caller.account_id;
        let mut out = AuthorizationDetails::default();
        for principal in self.store.list_principals(a, PrincipalKind::User).await? {
            let inline = self
                .store
                .inline_policies(a, PrincipalKind::User, &principal.name)
                .await?;
            let groups = self
                .store
                .groups_of_user(a, &principal.name)
                .await?
                .into_iter()
                .map(|g| g.name)
                .collect();
            let attached = self
                .store
                .attached_policies(a, PrincipalKind::User, &principal.name)
                .await?;
            out.users.push(PrincipalDetail {
                principal,
                inline,
                groups,
                attached,
            });
        }
        for kind in [PrincipalKind::Group, PrincipalKind::Role] {
            for principal in self.store.list_principals(a, kind).await? {
                let inline = self.store.inline_policies(a, kind, &principal.name).await?;
                let attached = self
                    .store
                    .attached_policies(a, kind, &principal.name)
                    .await?;
                let detail = PrincipalDetail {
                    principal,
                    inline,
                    groups: Vec::new(),
                    attached,
                };
                if kind == PrincipalKind::Group {
                    out.groups.push(detail);
                } else {
                    out.roles.push(detail);
                }
            }
        }
        for rec in self.store.list_managed_policies(a).await? {
            let versions = self.store.policy_versions(a, &rec.name).await?;
            out.policies.push((self.view(&rec).await?, versions));
        }
        Ok(out)
    }

    // ---------- group membership ----------

    pub async fn add_user_to_group(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
    ) -> Result<(), CoreError> {
        let g = self
            .existing_principal(caller, "iam:AddUserToGroup", PrincipalKind::Group, group)
            .await?;
        let u = self
            .store
            .get_principal(&caller.account_id, PrincipalKind::User, user)
            .await?
            .ok_or_else(|| no_such(PrincipalKind::User, user))?;
        self.store
            .add_group_member(&caller.account_id, &g.name, &u.name)
            .await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn remove_user_from_group(
        &self,
        caller: &Caller,
        group: &str,
        user: &str,
    ) -> Result<(), CoreError> {
        let g = self
            .existing_principal(
                caller,
                "iam:RemoveUserFromGroup",
                PrincipalKind::Group,
                group,
            )
            .await?;
        if !self
            .store
            .remove_group_member(&caller.account_id, &g.name, user)
            .await?
        {
            return Err(no_such(PrincipalKind::User, user));
        }
        self.credentials_changed();
        Ok(())
    }

    pub async fn group_members(
        &self,
        caller: &Caller,
        group: &str,
    ) -> Result<(PrincipalRecord, Vec<PrincipalRecord>), CoreError> {
        let g = self
            .existing_principal(caller, "iam:GetGroup", PrincipalKind::Group, group)
            .await?;
        let members = self
            .store
            .group_members(&caller.account_id, &g.name)
            .await?;
        Ok((g, members))
    }

    pub async fn groups_for_user(
        &self,
        caller: &Caller,
        user: &str,
    ) -> Result<Vec<PrincipalRecord>, CoreError> {
        let u = self
            .existing_principal(caller, "iam:ListGroupsForUser", PrincipalKind::User, user)
            .await?;
        Ok(self
            .store
            .groups_of_user(&caller.account_id, &u.name)
            .await?)
    }

    // ---------- access keys ----------

    pub async fn create_access_key(
        &self,
        caller: &Caller,
        user_name: Option<&str>,
    ) -> Result<NewAccessKey, CoreError> {
        let name = self.subject_user(caller, user_name)?;
        let user = self
            .existing_principal(caller, "iam:CreateAccessKey", PrincipalKind::User, name)
            .await?;
        if self
            .store
            .list_access_keys(&caller.account_id, &user.name)
            .await?
            .len()
            >= MAX_ACCESS_KEYS_PER_USER
        {
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
            user_name: Some(user.name.clone()),
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
            .existing_principal(caller, "iam:ListAccessKeys", PrincipalKind::User, name)
            .await?;
        let keys = self
            .store
            .list_access_keys(&caller.account_id, &user.name)
            .await?;
        Ok((user.name, keys))
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
            .existing_principal(caller, action, PrincipalKind::User, name)
            .await?;
        self.store
            .list_access_keys(&caller.account_id, &user.name)
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
        self.authorize(caller, "iam:GetAccessKeyLastUsed", &key.principal_arn)
            .await?;
        let user_name = key.user_name.clone().unwrap_or_else(|| "root".to_string());
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

    // ---------- inline policies ----------

    pub async fn put_inline_policy(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), CoreError> {
        validate_iam_name("policyName", policy_name, 128)?;
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Put{}Policy", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        crate::policies::validate(document, crate::policies::Kind::Identity)?;
        let others: usize = self
            .store
            .inline_policies(&caller.account_id, kind, &p.name)
            .await?
            .iter()
            .filter(|(n, _)| n != policy_name)
            .map(|(_, d)| policy_size(d))
            .sum();
        let quota = inline_quota(kind);
        if others + policy_size(document) > quota {
            return Err(CoreError::LimitExceeded(format!(
                "Maximum policy size of {quota} bytes exceeded for {} {}",
                kind_word(kind),
                p.name
            )));
        }
        self.store
            .put_inline_policy(&caller.account_id, kind, &p.name, policy_name, document)
            .await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn get_inline_policy(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(String, String), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Get{}Policy", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        self.store
            .inline_policies(&caller.account_id, kind, &p.name)
            .await?
            .into_iter()
            .find(|(n, _)| n == policy_name)
            .map(|(_, d)| (p.name.clone(), d))
            .ok_or_else(|| {
                CoreError::NotFound(format!(
                    "The {} policy with name {policy_name} cannot be found.",
                    kind_word(kind)
                ))
            })
    }

    pub async fn list_inline_policies(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<String>, CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:List{}Policies", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        Ok(self
            .store
            .inline_policies(&caller.account_id, kind, &p.name)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    pub async fn delete_inline_policy(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Delete{}Policy", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        if !self
            .store
            .delete_inline_policy(&caller.account_id, kind, &p.name, policy_name)
            .await?
        {
            return Err(CoreError::NotFound(format!(
                "The {} policy with name {policy_name} cannot be found.",
                kind_word(kind)
            )));
        }
        self.credentials_changed();
        Ok(())
    }

    // ---------- managed policies ----------

    async fn view(&self, rec: &ManagedPolicyRecord) -> Result<ManagedPolicy, CoreError> {
        let arn = rec.arn();
        Ok(ManagedPolicy {
            attachment_count: self.store.attachment_count(&rec.account_id, &arn).await?,
            arn,
            name: rec.name.clone(),
            policy_id: rec.policy_id.clone(),
            path: rec.path.clone(),
            description: rec.description.clone(),
            default_version: rec.default_version,
            created_ms: rec.created_ms,
            updated_ms: rec.updated_ms,
        })
    }

    async fn local_policy(
        &self,
        caller: &Caller,
        action: &str,
        arn: &str,
    ) -> Result<ManagedPolicyRecord, CoreError> {
        self.authorize(caller, action, arn).await?;
        let name = local_policy_name(&caller.account_id, arn).ok_or_else(|| no_such_policy(arn))?;
        self.store
            .get_managed_policy(&caller.account_id, name)
            .await?
            .filter(|p| p.arn() == arn)
            .ok_or_else(|| CoreError::NotFound(format!("Policy {arn} was not found.")))
    }

    pub async fn create_policy(
        &self,
        caller: &Caller,
        name: &str,
        path: Option<&str>,
        document: &str,
        description: Option<String>,
    ) -> Result<ManagedPolicy, CoreError> {
        validate_iam_name("policyName", name, 128)?;
        let path = path.unwrap_or("/");
        validate_path(path)?;
        let arn = format!("arn:aws:iam::{}:policy{path}{name}", caller.account_id);
        self.authorize(caller, "iam:CreatePolicy", &arn).await?;
        crate::policies::validate(document, crate::policies::Kind::Identity)?;
        coffer_policy::check_size(document, SizeQuota::Managed)
            .map_err(|e| crate::policies::to_core(&e))?;
        let now = self.clock.now_millis();
        let rec = ManagedPolicyRecord {
            account_id: caller.account_id.clone(),
            name: name.to_string(),
            policy_id: ids::prefixed_id("ANPA")?,
            path: path.to_string(),
            description,
            default_version: 1,
            created_ms: now,
            updated_ms: now,
        };
        let first = PolicyVersionRecord {
            version: 1,
            document: document.to_string(),
            created_ms: now,
        };
        self.store
            .insert_managed_policy(rec.clone(), first)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => CoreError::ResourceExists(format!(
                    "A policy called {name} already exists. Duplicate names are not allowed."
                )),
                other => other.into(),
            })?;
        self.view(&rec).await
    }

    pub async fn get_policy(&self, caller: &Caller, arn: &str) -> Result<ManagedPolicy, CoreError> {
        if let Some(p) = aws_managed(arn) {
            self.authorize(caller, "iam:GetPolicy", arn).await?;
            return Ok(p);
        }
        let rec = self.local_policy(caller, "iam:GetPolicy", arn).await?;
        self.view(&rec).await
    }

    /// `ListPolicies`: scope `All`, `AWS` or `Local`; optionally only attached ones.
    pub async fn list_policies(
        &self,
        caller: &Caller,
        scope: &str,
        only_attached: bool,
    ) -> Result<Vec<ManagedPolicy>, CoreError> {
        self.authorize(
            caller,
            "iam:ListPolicies",
            &format!("arn:aws:iam::{}:policy/", caller.account_id),
        )
        .await?;
        let mut out = Vec::new();
        if scope == "All" || scope == "AWS" {
            for (name, _, _) in AWS_MANAGED_POLICIES {
                let arn = format!("arn:aws:iam::aws:policy/{name}");
                if let Some(mut p) = aws_managed(&arn) {
                    p.attachment_count = self
                        .store
                        .attachment_count(&caller.account_id, &arn)
                        .await?;
                    out.push(p);
                }
            }
        }
        if scope == "All" || scope == "Local" {
            for rec in self.store.list_managed_policies(&caller.account_id).await? {
                out.push(self.view(&rec).await?);
            }
        }
        if only_attached {
            out.retain(|p| p.attachment_count > 0);
        }
        Ok(out)
    }

    pub async fn delete_policy(&self, caller: &Caller, arn: &str) -> Result<(), CoreError> {
        let rec = self.local_policy(caller, "iam:DeletePolicy", arn).await?;
        if self.store.attachment_count(&caller.account_id, arn).await? > 0 {
            return Err(CoreError::DeleteConflict(
                "Cannot delete a policy attached to entities.".into(),
            ));
        }
        if self
            .store
            .policy_versions(&caller.account_id, &rec.name)
            .await?
            .len()
            > 1
        {
            return Err(CoreError::DeleteConflict(
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.".into(),
            ));
        }
        self.store
            .delete_managed_policy(&caller.account_id, &rec.name)
            .await?;
        Ok(())
    }

    pub async fn create_policy_version(
        &self,
        caller: &Caller,
        arn: &str,
        document: &str,
        set_as_default: bool,
    ) -> Result<(String, bool, i64), CoreError> {
        let rec = self
            .local_policy(caller, "iam:CreatePolicyVersion", arn)
            .await?;
        crate::policies::validate(document, crate::policies::Kind::Identity)?;
        coffer_policy::check_size(document, SizeQuota::Managed)
            .map_err(|e| crate::policies::to_core(&e))?;
        let versions = self
            .store
            .policy_versions(&caller.account_id, &rec.name)
            .await?;
        if versions.len() >= MAX_POLICY_VERSIONS {
            return Err(CoreError::LimitExceeded(format!(
                "A managed policy can have up to {MAX_POLICY_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let next = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let now = self.clock.now_millis();
        self.store
            .add_policy_version(
                &caller.account_id,
                &rec.name,
                PolicyVersionRecord {
                    version: next,
                    document: document.to_string(),
                    created_ms: now,
                },
                set_as_default,
                now,
            )
            .await?;
        if set_as_default {
            self.credentials_changed();
        }
        Ok((version_id(next), set_as_default, now))
    }

    /// A version's document, whether it is the default, and when it was made.
    pub async fn get_policy_version(
        &self,
        caller: &Caller,
        arn: &str,
        version: &str,
    ) -> Result<(String, bool, i64), CoreError> {
        let v = parse_version_id(version)?;
        if let Some(doc) = aws_managed_document(arn) {
            self.authorize(caller, "iam:GetPolicyVersion", arn).await?;
            return if v == 1 {
                Ok((doc.to_string(), true, 0))
            } else {
                Err(CoreError::NotFound(format!(
                    "Policy {arn} version {version} does not exist."
                )))
            };
        }
        let rec = self
            .local_policy(caller, "iam:GetPolicyVersion", arn)
            .await?;
        self.store
            .policy_versions(&caller.account_id, &rec.name)
            .await?
            .into_iter()
            .find(|pv| pv.version == v)
            .map(|pv| {
                (
                    pv.document,
                    pv.version == rec.default_version,
                    pv.created_ms,
                )
            })
            .ok_or_else(|| {
                CoreError::NotFound(format!("Policy {arn} version {version} does not exist."))
            })
    }

    pub async fn list_policy_versions(
        &self,
        caller: &Caller,
        arn: &str,
    ) -> Result<Vec<(String, bool, i64)>, CoreError> {
        let rec = self
            .local_policy(caller, "iam:ListPolicyVersions", arn)
            .await?;
        let mut versions: Vec<(String, bool, i64)> = self
            .store
            .policy_versions(&caller.account_id, &rec.name)
            .await?
            .into_iter()
            .map(|pv| {
                (
                    version_id(pv.version),
                    pv.version == rec.default_version,
                    pv.created_ms,
                )
            })
            .collect();
        versions.reverse();
        Ok(versions)
    }

    pub async fn delete_policy_version(
        &self,
        caller: &Caller,
        arn: &str,
        version: &str,
    ) -> Result<(), CoreError> {
        let v = parse_version_id(version)?;
        let rec = self
            .local_policy(caller, "iam:DeletePolicyVersion", arn)
            .await?;
        if v == rec.default_version {
            return Err(CoreError::DeleteConflict(
                "Cannot delete the default version of a policy.".into(),
            ));
        }
        if !self
            .store
            .delete_policy_version(&caller.account_id, &rec.name, v)
            .await?
        {
            return Err(CoreError::NotFound(format!(
                "Policy {arn} version {version} does not exist."
            )));
        }
        Ok(())
    }

    pub async fn set_default_policy_version(
        &self,
        caller: &Caller,
        arn: &str,
        version: &str,
    ) -> Result<(), CoreError> {
        let v = parse_version_id(version)?;
        let rec = self
            .local_policy(caller, "iam:SetDefaultPolicyVersion", arn)
            .await?;
        if !self
            .store
            .policy_versions(&caller.account_id, &rec.name)
            .await?
            .iter()
            .any(|pv| pv.version == v)
        {
            return Err(CoreError::NotFound(format!(
                "Policy {arn} version {version} does not exist."
            )));
        }
        self.store
            .set_default_policy_version(&caller.account_id, &rec.name, v, self.clock.now_millis())
            .await?;
        self.credentials_changed();
        Ok(())
    }

    // ---------- attachments ----------

    async fn attachable(&self, caller: &Caller, arn: &str) -> Result<(), CoreError> {
        if aws_managed(arn).is_some() {
            return Ok(());
        }
        let name = local_policy_name(&caller.account_id, arn).ok_or_else(|| no_such_policy(arn))?;
        match self
            .store
            .get_managed_policy(&caller.account_id, name)
            .await?
        {
            Some(p) if p.arn() == arn => Ok(()),
            _ => Err(no_such_policy(arn)),
        }
    }

    pub async fn attach_policy(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<(), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Attach{}Policy", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        self.attachable(caller, policy_arn).await?;
        self.store
            .attach_policy(&caller.account_id, kind, &p.name, policy_arn)
            .await?;
        self.credentials_changed();
        Ok(())
    }

    pub async fn detach_policy(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> Result<(), CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:Detach{}Policy", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        if !self
            .store
            .detach_policy(&caller.account_id, kind, &p.name, policy_arn)
            .await?
        {
            return Err(CoreError::NotFound(format!(
                "Policy {policy_arn} was not found."
            )));
        }
        self.credentials_changed();
        Ok(())
    }

    pub async fn attached_policies(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<String>, CoreError> {
        let p = self
            .existing_principal(
                caller,
                &format!("iam:ListAttached{}Policies", kind_title(kind)),
                kind,
                name,
            )
            .await?;
        Ok(self
            .store
            .attached_policies(&caller.account_id, kind, &p.name)
            .await?)
    }
}
