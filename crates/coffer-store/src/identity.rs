//! IAM identities as stored: users, their inline policies, their access keys and when each
//! key was last used. Policy documents are stored as the text the client sent (IAM returns
//! it back URL-encoded, as given); their meaning is `coffer-policy`'s business.
//!
//! IAM names are unique within an account regardless of case (IAM user guide, "IAM
//! identifiers"), so rows are keyed by the lower-cased name and keep the name as given.

use std::future::Future;

use rusqlite::{OptionalExtension, params};

use crate::{AccessKeyRecord, SqliteStore, StoreError, StoreResult};

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub account_id: String,
    pub user_name: String,
    /// `AIDA…`, stable for the user's lifetime.
    pub user_id: String,
    pub path: String,
    pub created_ms: i64,
}

impl UserRecord {
    /// `arn:aws:iam::ACCOUNT:user{PATH}{NAME}`.
    #[must_use]
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:iam::{}:user{}{}",
            self.account_id, self.path, self.user_name
        )
    }
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
    /// Fails with `AlreadyExists` when a user of that name (in any case) exists.
    fn insert_user(&self, user: UserRecord) -> impl Future<Output = StoreResult<()>> + Send;
    fn get_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> impl Future<Output = StoreResult<Option<UserRecord>>> + Send;
    fn list_users(
        &self,
        account_id: &str,
    ) -> impl Future<Output = StoreResult<Vec<UserRecord>>> + Send;
    /// Removes the user and its inline policies. `Ok(false)` when there was no such user.
    fn delete_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

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

    /// Creates or replaces the user's inline policy `policy_name`.
    fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The user's inline policies as `(name, document)`, ordered by name.
    fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> impl Future<Output = StoreResult<Vec<(String, String)>>> + Send;
    /// `Ok(false)` when there is no such policy.
    fn delete_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
}

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        account_id: r.get(0)?,
        user_name: r.get(1)?,
        user_id: r.get(2)?,
        path: r.get(3)?,
        created_ms: r.get(4)?,
    })
}

const USER_COLUMNS: &str = "account_id, user_name, user_id, path, created_ms";

impl IdentityStore for SqliteStore {
    async fn insert_user(&self, user: UserRecord) -> StoreResult<()> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO iam_users (account_id, name_key, user_name, user_id, path, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![user.account_id, name_key(&user.user_name), user.user_name, user.user_id, user.path, user.created_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, account_id: &str, user_name: &str) -> StoreResult<Option<UserRecord>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM iam_users WHERE account_id = ?1 AND name_key = ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_row(params![account_id, name_key(user_name)], user_from_row)
                .optional()?)
        })
    }

    async fn list_users(&self, account_id: &str) -> StoreResult<Vec<UserRecord>> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {USER_COLUMNS} FROM iam_users WHERE account_id = ?1 ORDER BY name_key"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            Ok(stmt
                .query_map([account_id], user_from_row)?
                .collect::<Result<_, _>>()?)
        })
    }

    async fn delete_user(&self, account_id: &str, user_name: &str) -> StoreResult<bool> {
        let (account_id, key) = (account_id.to_owned(), name_key(user_name));
        self.write(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "DELETE FROM iam_user_policies WHERE account_id = ?1 AND name_key = ?2",
                params![account_id, key],
            )?;
            let n = tx.execute(
                "DELETE FROM iam_users WHERE account_id = ?1 AND name_key = ?2",
                params![account_id, key],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
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
            Ok(stmt
                .query_map(params![account_id, name_key(user_name)], |r| {
                    Ok(AccessKeyRecord {
                        access_key_id: r.get(0)?,
                        account_id: r.get(1)?,
                        principal_arn: r.get(2)?,
                        user_name: r.get(3)?,
                        sealed_secret: r.get(4)?,
                        active: r.get(5)?,
                        created_ms: r.get(6)?,
                    })
                })?
                .collect::<Result<_, _>>()?)
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

    async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> StoreResult<()> {
        let (a, k, p, d) = (
            account_id.to_owned(),
            name_key(user_name),
            policy_name.to_owned(),
            document.to_owned(),
        );
        self.write(move |conn| {
            let n = conn.execute(
                "INSERT INTO iam_user_policies (account_id, name_key, policy_name, document) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account_id, name_key, policy_name) DO UPDATE SET document = excluded.document",
                params![a, k, p, d],
            )?;
            if n == 1 { Ok(()) } else { Err(StoreError::Conflict) }
        })
        .await
    }

    async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT policy_name, document FROM iam_user_policies WHERE account_id = ?1 AND name_key = ?2 ORDER BY policy_name",
            )?;
            Ok(stmt.query_map(params![account_id, name_key(user_name)], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?)
        })
    }

    async fn delete_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
    ) -> StoreResult<bool> {
        let (a, k, p) = (
            account_id.to_owned(),
            name_key(user_name),
            policy_name.to_owned(),
        );
        self.write(move |conn| {
            Ok(conn.execute(
                "DELETE FROM iam_user_policies WHERE account_id = ?1 AND name_key = ?2 AND policy_name = ?3",
                params![a, k, p],
            )? == 1)
        })
        .await
    }
}
