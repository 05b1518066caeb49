//! IAM identities as stored: principals (users, groups, roles) with their inline policies,
//! group membership, customer managed policies with their versions, attachments of managed
//! policies, and access keys with their last use. Policy documents are stored as the text
//! the client sent; their meaning is `coffer-policy`'s business.
//!
//! IAM names are unique within an account regardless of case (IAM user guide, "IAM
//! identifiers"), so rows are keyed by the lower-cased name and keep the name as given.

use std::future::Future;

use rusqlite::{OptionalExtension, params};

use crate::{AccessKeyRecord, SqliteStore, StoreResult};

/// The kinds of IAM principal that carry policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    User,
    Group,
    Role,
}

impl PrincipalKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Role => "role",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "group" => Some(Self::Group),
            "role" => Some(Self::Role),
            _ => None,
        }
    }
}

/// A user, group or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    pub account_id: String,
    pub kind: PrincipalKind,
    pub name: String,
    /// `AIDA…` (user), `AGPA…` (group), `AROA…` (role); stable for the principal's lifetime.
    pub principal_id: String,
    pub path: String,
    pub created_ms: i64,
    /// Roles only: the trust policy (who may assume the role).
    pub trust_policy: Option<String>,
    pub description: Option<String>,
    /// Roles only: the longest session, in seconds.
    pub max_session_secs: Option<i64>,
    /// Tags, in the order they were added.
    pub tags: Vec<(String, String)>,
}

impl PrincipalRecord {
    /// `arn:aws:iam::ACCOUNT:{user|group|role}{PATH}{NAME}`.
    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:{}{}{}",
            self.account_id,
            self.kind.as_str(),
            self.path,
            self.name
        )
    }
}

/// A customer managed policy; its documents are its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicyRecord {
    pub account_id: String,
    pub name: String,
    /// `ANPA…`.
    pub policy_id: String,
    pub path: String,
    pub description: Option<String>,
    pub default_version: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl ManagedPolicyRecord {
    /// `arn:aws:iam::ACCOUNT:policy{PATH}{NAME}`.
    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:policy{}{}",
            self.account_id, self.path, self.name
        )
    }
}

/// One version (`v1`, `v2`, …) of a managed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    pub version: i64,
    pub document: String,
    pub created_ms: i64,
}

/// When and where an access key was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyUse {
    pub at_ms: i64,
    pub service: String,
    pub region: String,
}

fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Persistence of IAM identities; every write is atomic and durable when it resolves.
pub trait IdentityStore {
    /// Fails with `AlreadyExists` when a principal of that kind and name (in any case) exists.
    fn insert_principal(&self, p: PrincipalRecord) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<PrincipalRecord>>> + Send;
    fn list_principals(
        &self,
        account_id: &str,
        kind: PrincipalKind,
    ) -> impl Future<Output = StoreResult<Vec<PrincipalRecord>>> + Send;
    /// Replaces a principal's mutable fields (path, trust policy, description, session length, tags).
    fn update_principal(
        &self,
        p: PrincipalRecord,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Renames and/or moves a user or group, carrying its policies, attachments, memberships
    /// and (for a user) access keys along. `AlreadyExists` when the new name is taken.
    fn rename_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        new_name: &str,
        new_path: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes the principal with its inline policies, attachments and memberships.
    /// `Ok(false)` when there was no such principal.
    fn delete_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Creates or replaces an inline policy.
    fn put_inline_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Inline policies as `(name, document)`, ordered by name.
    fn inline_policies(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;
    /// `Ok(false)` when there is no such policy.
    fn delete_inline_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    fn add_group_member(
        &self,
        account_id: &str,
        group: &str,
        user: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// `Ok(false)` when the user was not a member.
    fn remove_group_member(
        &self,
        account_id: &str,
        group: &str,
        user: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    fn groups_of_user(
        &self,
        account_id: &str,
        user: &str,
    ) -> impl Future<Output = StoreResult<Vec<PrincipalRecord>>> + Send;
    fn group_members(
        &self,
        account_id: &str,
        group: &str,
    ) -> impl Future<Output = StoreResult<Vec<PrincipalRecord>>> + Send;

    /// Creates a managed policy with its first version (the default). `AlreadyExists` on a name clash.
    fn insert_managed_policy(
        &self,
        policy: ManagedPolicyRecord,
        first: PolicyVersionRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_managed_policy(
        &self,
        account_id: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Option<ManagedPolicyRecord>>> + Send;
    fn list_managed_policies(
        &self,
        account_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<ManagedPolicyRecord>>> + Send;
    /// Removes the policy, its versions and its attachments. `Ok(false)` when absent.
    fn delete_managed_policy(
        &self,
        account_id: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Adds a version; with `set_default` it becomes the default.
    fn add_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: PolicyVersionRecord,
        set_default: bool,
        updated_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn policy_versions(
        &self,
        account_id: &str,
        name: &str,
    ) -> impl Future<Output = StoreResult<Vec<PolicyVersionRecord>>> + Send;
    /// `Ok(false)` when there is no such version.
    fn delete_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: i64,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    fn set_default_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: i64,
        updated_ms: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn attach_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// `Ok(false)` when the policy was not attached.
    fn detach_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// ARNs of the managed policies attached to a principal, ordered.
    fn attached_policies(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// How many principals a managed policy is attached to.
    fn attachment_count(
        &self,
        account_id: &str,
        policy_arn: &str,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    fn insert_access_key(
        &self,
        key: AccessKeyRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn list_access_keys(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> impl Future<Output = StoreResult<Vec<AccessKeyRecord>>> + Send;
    /// `Ok(false)` when there is no such key.
    fn set_access_key_active(
        &self,
        access_key_id: &str,
        active: bool,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// `Ok(false)` when there is no such key.
    fn delete_access_key(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    fn record_access_key_use(
        &self,
        access_key_id: &str,
        used: AccessKeyUse,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn access_key_last_used(
        &self,
        access_key_id: &str,
    ) -> impl Future<Output = StoreResult<Option<AccessKeyUse>>> + Send;
}

const PRINCIPAL_COLUMNS: &str = "p.account_id, p.kind, p.name, p.principal_id, p.path, p.created_ms, p.trust_policy, p.description, p.max_session_secs, p.tags";

fn encode_tags(tags: &[(String, String)]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".to_string())
}

fn principal_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PrincipalRecord> {
    let kind: String = r.get(1)?;
    Ok(PrincipalRecord {
        account_id: r.get(0)?,
        kind: PrincipalKind::parse(&kind).unwrap_or(PrincipalKind::User),
        name: r.get(2)?,
        principal_id: r.get(3)?,
        path: r.get(4)?,
        created_ms: r.get(5)?,
        trust_policy: r.get(6)?,
        description: r.get(7)?,
        max_session_secs: r.get(8)?,
        tags: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
    })
}

const POLICY_COLUMNS: &str =
    "account_id, name, policy_id, path, description, default_version, created_ms, updated_ms";

fn policy_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedPolicyRecord> {
    Ok(ManagedPolicyRecord {
        account_id: r.get(0)?,
        name: r.get(1)?,
        policy_id: r.get(2)?,
        path: r.get(3)?,
        description: r.get(4)?,
        default_version: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
    })
}

fn key_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccessKeyRecord> {
    Ok(AccessKeyRecord {
        access_key_id: r.get(0)?,
        account_id: r.get(1)?,
        principal_arn: r.get(2)?,
        user_name: r.get(3)?,
        sealed_secret: r.get(4)?,
        active: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

impl IdentityStore for SqliteStore {
    async fn insert_principal(&self, p: PrincipalRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO iam_principals (account_id, kind, name_key, name, principal_id, path, created_ms, trust_policy, description, max_session_secs, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    p.account_id,
                    p.kind.as_str(),
                    name_key(&p.name),
                    p.name,
                    p.principal_id,
                    p.path,
                    p.created_ms,
                    p.trust_policy,
                    p.description,
                    p.max_session_secs,
                    encode_tags(&p.tags)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> StoreResult<Option<PrincipalRecord>> {
        self.read(|conn| {
            let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM iam_principals p WHERE p.account_id = ?1 AND p.kind = ?2 AND p.name_key = ?3");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_row(params![account_id, kind.as_str(), name_key(name)], principal_from_row).optional()?)
        })
    }

    async fn list_principals(
        &self,
        account_id: &str,
        kind: PrincipalKind,
    ) -> StoreResult<Vec<PrincipalRecord>> {
        self.read(|conn| {
            let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM iam_principals p WHERE p.account_id = ?1 AND p.kind = ?2 ORDER BY p.name_key");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_map(params![account_id, kind.as_str()], principal_from_row)?.collect::<Result<_, _>>()?)
        })
    }

    async fn update_principal(&self, p: PrincipalRecord) -> StoreResult<bool> {
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE iam_principals SET path = ?1, trust_policy = ?2, description = ?3, max_session_secs = ?4, tags = ?5
                 WHERE account_id = ?6 AND kind = ?7 AND name_key = ?8",
                params![
                    p.path,
                    p.trust_policy,
                    p.description,
                    p.max_session_secs,
                    encode_tags(&p.tags),
                    p.account_id,
                    p.kind.as_str(),
                    name_key(&p.name)
                ],
            )? == 1)
        })
        .await
    }

    async fn rename_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        new_name: &str,
        new_path: &str,
    ) -> StoreResult<()> {
        let (a, old_key, new_key, new_name, new_path) = (
            account_id.to_owned(),
            name_key(name),
            name_key(new_name),
            new_name.to_owned(),
            new_path.to_owned(),
        );
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let k = kind.as_str();
            let n = tx.execute(
                "UPDATE iam_principals SET name_key = ?1, name = ?2, path = ?3 WHERE account_id = ?4 AND kind = ?5 AND name_key = ?6",
                params![new_key, new_name, new_path, a, k, old_key],
            )?;
            if n != 1 {
                return Ok(());
            }
            tx.execute("UPDATE iam_inline_policies SET name_key = ?1 WHERE account_id = ?2 AND kind = ?3 AND name_key = ?4", params![new_key, a, k, old_key])?;
            tx.execute("UPDATE iam_attachments SET name_key = ?1 WHERE account_id = ?2 AND kind = ?3 AND name_key = ?4", params![new_key, a, k, old_key])?;
            match kind {
                PrincipalKind::User => {
                    tx.execute("UPDATE iam_group_members SET user_key = ?1 WHERE account_id = ?2 AND user_key = ?3", params![new_key, a, old_key])?;
                    let arn = format!("arn:aws:iam::{a}:user{new_path}{new_name}");
                    tx.execute(
                        "UPDATE access_keys SET user_name = ?1, principal_arn = ?2 WHERE account_id = ?3 AND lower(user_name) = ?4",
                        params![new_name, arn, a, old_key],
                    )?;
                    crate::mfa::rename_user(&tx, &a, &old_key, &new_name)?;
                }
                PrincipalKind::Group => {
                    tx.execute("UPDATE iam_group_members SET group_key = ?1 WHERE account_id = ?2 AND group_key = ?3", params![new_key, a, old_key])?;
                }
                PrincipalKind::Role => {}
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn delete_principal(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> StoreResult<bool> {
        let (a, k) = (account_id.to_owned(), name_key(name));
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM iam_inline_policies WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3", params![a, kind.as_str(), k])?;
            tx.execute("DELETE FROM iam_attachments WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3", params![a, kind.as_str(), k])?;
            match kind {
                PrincipalKind::User => {
                    crate::mfa::release_user(&tx, &a, &k)?;
                    tx.execute("DELETE FROM iam_group_members WHERE account_id = ?1 AND user_key = ?2", params![a, k])?
                }
                PrincipalKind::Group => tx.execute("DELETE FROM iam_group_members WHERE account_id = ?1 AND group_key = ?2", params![a, k])?,
                PrincipalKind::Role => 0,
            };
            let n = tx.execute("DELETE FROM iam_principals WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3", params![a, kind.as_str(), k])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn put_inline_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
        document: &str,
    ) -> StoreResult<()> {
        let (a, k, p, d) = (
            account_id.to_owned(),
            name_key(name),
            policy_name.to_owned(),
            document.to_owned(),
        );
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO iam_inline_policies (account_id, kind, name_key, policy_name, document) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (account_id, kind, name_key, policy_name) DO UPDATE SET document = excluded.document",
                params![a, kind.as_str(), k, p, d],
            )?;
            Ok(())
        })
        .await
    }

    async fn inline_policies(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT policy_name, document FROM iam_inline_policies WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3 ORDER BY policy_name",
            )?;
            Ok(stmt.query_map(params![account_id, kind.as_str(), name_key(name)], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?)
        })
    }

    async fn delete_inline_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_name: &str,
    ) -> StoreResult<bool> {
        let (a, k, p) = (
            account_id.to_owned(),
            name_key(name),
            policy_name.to_owned(),
        );
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM iam_inline_policies WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3 AND policy_name = ?4",
                params![a, kind.as_str(), k, p],
            )? == 1)
        })
        .await
    }

    async fn add_group_member(&self, account_id: &str, group: &str, user: &str) -> StoreResult<()> {
        let (a, g, u) = (account_id.to_owned(), name_key(group), name_key(user));
        self.write(move |conn| {
            conn.execute("INSERT OR IGNORE INTO iam_group_members (account_id, group_key, user_key) VALUES (?1, ?2, ?3)", params![a, g, u])?;
            Ok(())
        })
        .await
    }

    async fn remove_group_member(
        &self,
        account_id: &str,
        group: &str,
        user: &str,
    ) -> StoreResult<bool> {
        let (a, g, u) = (account_id.to_owned(), name_key(group), name_key(user));
        self.write(move |conn| {
            Ok(conn.execute("DELETE FROM iam_group_members WHERE account_id = ?1 AND group_key = ?2 AND user_key = ?3", params![a, g, u])? == 1)
        })
        .await
    }

    async fn groups_of_user(
        &self,
        account_id: &str,
        user: &str,
    ) -> StoreResult<Vec<PrincipalRecord>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM iam_principals p JOIN iam_group_members m
                   ON m.account_id = p.account_id AND m.group_key = p.name_key AND p.kind = 'group'
                 WHERE m.account_id = ?1 AND m.user_key = ?2 ORDER BY p.name_key"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_map(params![account_id, name_key(user)], principal_from_row)?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn group_members(
        &self,
        account_id: &str,
        group: &str,
    ) -> StoreResult<Vec<PrincipalRecord>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {PRINCIPAL_COLUMNS} FROM iam_principals p JOIN iam_group_members m
                   ON m.account_id = p.account_id AND m.user_key = p.name_key AND p.kind = 'user'
                 WHERE m.account_id = ?1 AND m.group_key = ?2 ORDER BY p.name_key"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_map(params![account_id, name_key(group)], principal_from_row)?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn insert_managed_policy(
        &self,
        policy: ManagedPolicyRecord,
        first: PolicyVersionRecord,
    ) -> StoreResult<()> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            let key = name_key(&policy.name);
            tx.execute(
                "INSERT INTO iam_managed_policies (account_id, name_key, name, policy_id, path, description, default_version, created_ms, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    policy.account_id,
                    key,
                    policy.name,
                    policy.policy_id,
                    policy.path,
                    policy.description,
                    policy.default_version,
                    policy.created_ms,
                    policy.updated_ms
                ],
            )?;
            tx.execute(
                "INSERT INTO iam_policy_versions (account_id, policy_key, version, document, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![policy.account_id, key, first.version, first.document, first.created_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_managed_policy(
        &self,
        account_id: &str,
        name: &str,
    ) -> StoreResult<Option<ManagedPolicyRecord>> {
        self.read(|conn| {
            let sql = format!("SELECT {POLICY_COLUMNS} FROM iam_managed_policies WHERE account_id = ?1 AND name_key = ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_row(params![account_id, name_key(name)], policy_from_row).optional()?)
        })
    }

    async fn list_managed_policies(
        &self,
        account_id: &str,
    ) -> StoreResult<Vec<ManagedPolicyRecord>> {
        self.read(|conn| {
            let sql = format!("SELECT {POLICY_COLUMNS} FROM iam_managed_policies WHERE account_id = ?1 ORDER BY name_key");
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt.query_map([account_id], policy_from_row)?.collect::<Result<_, _>>()?)
        })
    }

    async fn delete_managed_policy(&self, account_id: &str, name: &str) -> StoreResult<bool> {
        let (a, k) = (account_id.to_owned(), name_key(name));
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM iam_policy_versions WHERE account_id = ?1 AND policy_key = ?2",
                params![a, k],
            )?;
            let n = tx.execute(
                "DELETE FROM iam_managed_policies WHERE account_id = ?1 AND name_key = ?2",
                params![a, k],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn add_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: PolicyVersionRecord,
        set_default: bool,
        updated_ms: i64,
    ) -> StoreResult<()> {
        let (a, k) = (account_id.to_owned(), name_key(name));
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO iam_policy_versions (account_id, policy_key, version, document, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a, k, version.version, version.document, version.created_ms],
            )?;
            if set_default {
                tx.execute(
                    "UPDATE iam_managed_policies SET default_version = ?1, updated_ms = ?2 WHERE account_id = ?3 AND name_key = ?4",
                    params![version.version, updated_ms, a, k],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn policy_versions(
        &self,
        account_id: &str,
        name: &str,
    ) -> StoreResult<Vec<PolicyVersionRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, document, created_ms FROM iam_policy_versions WHERE account_id = ?1 AND policy_key = ?2 ORDER BY version",
            )?;
            Ok(stmt
                .query_map(params![account_id, name_key(name)], |r| Ok(PolicyVersionRecord { version: r.get(0)?, document: r.get(1)?, created_ms: r.get(2)? }))?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn delete_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: i64,
    ) -> StoreResult<bool> {
        let (a, k) = (account_id.to_owned(), name_key(name));
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM iam_policy_versions WHERE account_id = ?1 AND policy_key = ?2 AND version = ?3",
                params![a, k, version],
            )? == 1)
        })
        .await
    }

    async fn set_default_policy_version(
        &self,
        account_id: &str,
        name: &str,
        version: i64,
        updated_ms: i64,
    ) -> StoreResult<()> {
        let (a, k) = (account_id.to_owned(), name_key(name));
        self.write(move |conn| {
            conn.execute(
                "UPDATE iam_managed_policies SET default_version = ?1, updated_ms = ?2 WHERE account_id = ?3 AND name_key = ?4",
                params![version, updated_ms, a, k],
            )?;
            Ok(())
        })
        .await
    }

    async fn attach_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> StoreResult<()> {
        let (a, k, arn) = (account_id.to_owned(), name_key(name), policy_arn.to_owned());
        self.write(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO iam_attachments (account_id, kind, name_key, policy_arn) VALUES (?1, ?2, ?3, ?4)",
                params![a, kind.as_str(), k, arn],
            )?;
            Ok(())
        })
        .await
    }

    async fn detach_policy(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
        policy_arn: &str,
    ) -> StoreResult<bool> {
        let (a, k, arn) = (account_id.to_owned(), name_key(name), policy_arn.to_owned());
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM iam_attachments WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3 AND policy_arn = ?4",
                params![a, kind.as_str(), k, arn],
            )? == 1)
        })
        .await
    }

    async fn attached_policies(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> StoreResult<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT policy_arn FROM iam_attachments WHERE account_id = ?1 AND kind = ?2 AND name_key = ?3 ORDER BY policy_arn",
            )?;
            Ok(stmt.query_map(params![account_id, kind.as_str(), name_key(name)], |r| r.get(0))?.collect::<Result<_, _>>()?)
        })
    }

    async fn attachment_count(&self, account_id: &str, policy_arn: &str) -> StoreResult<i64> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT COUNT(*) FROM iam_attachments WHERE account_id = ?1 AND policy_arn = ?2",
            )?;
            Ok(stmt.query_row(params![account_id, policy_arn], |r| r.get(0))?)
        })
    }

    async fn insert_access_key(&self, key: AccessKeyRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO access_keys (access_key_id, account_id, principal_arn, user_name, sealed_secret, active, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key.access_key_id, key.account_id, key.principal_arn, key.user_name, key.sealed_secret, key.active, key.created_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_access_keys(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> StoreResult<Vec<AccessKeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT access_key_id, account_id, principal_arn, user_name, sealed_secret, active, created_ms
                 FROM access_keys WHERE account_id = ?1 AND lower(user_name) = ?2 ORDER BY created_ms, access_key_id",
            )?;
            Ok(stmt.query_map(params![account_id, name_key(user_name)], key_from_row)?.collect::<Result<_, _>>()?)
        })
    }

    async fn set_access_key_active(&self, access_key_id: &str, active: bool) -> StoreResult<bool> {
        let id = access_key_id.to_owned();
        self.write(move |conn| {
            Ok(conn.execute(
                "UPDATE access_keys SET active = ?1 WHERE access_key_id = ?2",
                params![active, id],
            )? == 1)
        })
        .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool> {
        let id = access_key_id.to_owned();
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM access_keys WHERE access_key_id = ?1",
                params![id],
            )? == 1)
        })
        .await
    }

    async fn record_access_key_use(
        &self,
        access_key_id: &str,
        used: AccessKeyUse,
    ) -> StoreResult<()> {
        let id = access_key_id.to_owned();
        self.write(move |conn| {
            conn.execute(
                "UPDATE access_keys SET last_used_ms = ?1, last_used_service = ?2, last_used_region = ?3 WHERE access_key_id = ?4",
                params![used.at_ms, used.service, used.region, id],
            )?;
            Ok(())
        })
        .await
    }

    async fn access_key_last_used(&self, access_key_id: &str) -> StoreResult<Option<AccessKeyUse>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT last_used_ms, last_used_service, last_used_region FROM access_keys WHERE access_key_id = ?1 AND last_used_ms IS NOT NULL",
            )?;
            Ok(stmt
                .query_row([access_key_id], |r| Ok(AccessKeyUse { at_ms: r.get(0)?, service: r.get(1)?, region: r.get(2)? }))
                .optional()?)
        })
    }
}
