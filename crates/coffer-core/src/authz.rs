//! Authorization of every operation: the caller, the action (`service:Operation`), the
//! resource ARN and the request's condition keys, decided by the policy engine
//! (`coffer-policy`) before an operation reads or changes data.
//!
//! The account's root user is allowed everything in its own account, as in AWS. An IAM user
//! is allowed what its identity-based policies allow: its inline policies, the managed
//! policies attached to it, and the inline and attached policies of its groups. Those are
//! parsed once and cached until the credentials epoch changes (any IAM write that could
//! change a decision bumps it). Denials carry AWS's message shape (IAM user guide,
//! "Troubleshoot access denied error messages").

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use coffer_policy::{
    DecidedBy, Decision, Effect, EvaluationInput, Policy, PolicySource, RequestContext, evaluate,
};
use coffer_store::{PrincipalKind, PrincipalRecord, Store};

use crate::clock::iso8601;
use crate::policies::{self, Kind};
use crate::{Caller, Coffer, CoreError, PrincipalType, aws_managed_document};

/// Condition keys of one request beyond the global ones: `(key, values)`.
pub type RequestKeys = Vec<(String, Vec<String>)>;

impl Caller {
    /// The IAM user name of an IAM user caller (the last segment of its ARN).
    #[must_use]
    pub fn user_name(&self) -> Option<&str> {
        match self.principal_type {
            PrincipalType::IamUser => self.principal_arn.rsplit('/').next(),
            PrincipalType::Root | PrincipalType::AssumedRole => None,
        }
    }
}

/// A user's identity-based policies, parsed, as of one credentials epoch.
pub(crate) struct UserPolicies {
    epoch: u64,
    user: Option<PrincipalRecord>,
    policies: Vec<Arc<Policy>>,
}

/// Parsed policies by user, so that a decision costs an evaluation, not a database read.
#[derive(Default)]
pub(crate) struct PolicyCache {
    users: RwLock<HashMap<String, Arc<UserPolicies>>>,
    /// What the root user may do in its own account (everything), as a policy, so that a
    /// resource policy's explicit deny can be weighed against it.
    root: OnceLock<Option<Arc<Policy>>>,
    /// `aws:CurrentTime` and `aws:EpochTime` of the current second, formatted once a second.
    current_time: std::sync::Mutex<(i64, Arc<str>, Arc<str>)>,
}

impl PolicyCache {
    /// `(aws:CurrentTime, aws:EpochTime)` for `now_ms`.
    fn current_time(&self, now_ms: i64) -> (Arc<str>, Arc<str>) {
        let secs = now_ms.div_euclid(1000);
        let fresh = || (Arc::from(iso8601(now_ms)), Arc::from(secs.to_string()));
        match self.current_time.lock() {
            Ok(mut slot) => {
                if slot.0 != secs || slot.1.is_empty() {
                    let (iso, epoch) = fresh();
                    *slot = (secs, iso, epoch);
                }
                (Arc::clone(&slot.1), Arc::clone(&slot.2))
            }
            Err(_) => fresh(),
        }
    }
}

fn denied(caller: &Caller, action: &str, resource: &str, why: &str) -> CoreError {
    CoreError::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} {why}",
        caller.principal_arn
    ))
}

/// The account that owns `resource` (the fifth field of an ARN), or the caller's for `*`,
/// for ARNs without one, and for AWS-owned resources such as `arn:aws:iam::aws:policy/…`,
/// which every account may read.
fn resource_account<'a>(resource: &'a str, caller: &'a Caller) -> &'a str {
    resource
        .split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(&caller.account_id)
}

impl<S: Store> Coffer<S> {
    /// Allows or denies `action` on `resource` for `caller`.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Result<(), CoreError> {
        self.authorize_with(caller, action, resource, Vec::new())
            .await
    }

    /// As [`Coffer::authorize`], with the operation's own condition keys.
    pub async fn authorize_with(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        keys: RequestKeys,
    ) -> Result<(), CoreError> {
        self.decide(caller, action, resource, keys, None).await
    }

    /// The decision, weighing the caller's identity-based policies and the resource's policy
    /// (AWS "Policy evaluation logic": explicit deny wins; within an account an allow on
    /// either side suffices; across accounts both must allow).
    pub(crate) async fn decide(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        keys: RequestKeys,
        resource_policy: Option<&Policy>,
    ) -> Result<(), CoreError> {
        self.decide_gated(caller, action, resource, keys, resource_policy, false)
            .await
    }

    /// The decision for a KMS key: its key policy is the resource policy, and it gates the
    /// identity side. "Unless the key policy explicitly allows it, you cannot use IAM
    /// policies to allow access to a KMS key" (KMS developer guide, "Key policies"): an
    /// identity-based allow counts only when some key policy statement allows the request
    /// for the account (delegation) or for the principal itself.
    pub(crate) async fn decide_key(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        keys: RequestKeys,
        key_policy: &Policy,
    ) -> Result<(), CoreError> {
        self.decide_gated(caller, action, resource, keys, Some(key_policy), true)
            .await
    }

    async fn decide_gated(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        keys: RequestKeys,
        resource_policy: Option<&Policy>,
        gated: bool,
    ) -> Result<(), CoreError> {
        let same_account = resource_account(resource, caller) == caller.account_id;
        // Borrowed from the caches, not cloned: this runs on every request of an IAM user.
        let root_identity: Vec<Arc<Policy>>;
        let user_entry: Arc<UserPolicies>;
        let (identity, user): (&[Arc<Policy>], Option<&PrincipalRecord>) = match caller
            .principal_type
        {
            PrincipalType::Root => {
                if resource_policy.is_none() {
                    return if same_account {
                        Ok(())
                    } else {
                        Err(denied(
                            caller,
                            action,
                            resource,
                            &format!("because no resource-based policy allows the {action} action"),
                        ))
                    };
                }
                let root = self.policy_cache.root.get_or_init(|| {
                    aws_managed_document("arn:aws:iam::aws:policy/AdministratorAccess")
                        .and_then(|doc| policies::parse(doc, Kind::Identity).ok())
                        .map(Arc::new)
                });
                root_identity = root.iter().cloned().collect();
                (&root_identity, None)
            }
            PrincipalType::AssumedRole => (&[], None),
            PrincipalType::IamUser => {
                let name = caller.user_name().unwrap_or_default();
                user_entry = self.user_policies(caller, name).await?;
                (&user_entry.policies, user_entry.user.as_ref())
            }
        };
        let mut ctx = RequestContext::new(
            caller.principal_arn.as_str(),
            caller.account_id.as_str(),
            action,
            resource,
            resource_account(resource, caller),
        );
        self.global_keys(&mut ctx, caller, user);
        for (k, v) in keys {
            ctx.set_key(&k, v);
        }
        let input = EvaluationInput {
            request: &ctx,
            identity_policies: identity,
            resource_policy,
            session_policies: None,
        };
        let evaluation = evaluate(&input);
        let resource_allows = || {
            evaluation
                .matched
                .iter()
                .any(|m| m.source == PolicySource::Resource && m.effect == Effect::Allow)
        };
        match (evaluation.decision, evaluation.decided_by) {
            (Decision::Allow, _) if gated && !resource_allows() => Err(denied(
                caller,
                action,
                resource,
                &format!("because no resource-based policy allows the {action} action"),
            )),
            (Decision::Allow, _) => Ok(()),
            (Decision::ExplicitDeny, DecidedBy::Resource) => Err(denied(
                caller,
                action,
                resource,
                "with an explicit deny in a resource-based policy",
            )),
            (Decision::ExplicitDeny, _) => Err(denied(
                caller,
                action,
                resource,
                "with an explicit deny in an identity-based policy",
            )),
            (Decision::ImplicitDeny, _)
                if !same_account && caller.principal_type == PrincipalType::Root =>
            {
                Err(denied(
                    caller,
                    action,
                    resource,
                    &format!("because no resource-based policy allows the {action} action"),
                ))
            }
            (Decision::ImplicitDeny, _) => Err(denied(
                caller,
                action,
                resource,
                &format!("because no identity-based policy allows the {action} action"),
            )),
        }
    }

    /// The global `aws:` keys every request carries (IAM user guide, "AWS global condition
    /// context keys").
    fn global_keys(
        &self,
        ctx: &mut RequestContext,
        caller: &Caller,
        user: Option<&PrincipalRecord>,
    ) {
        let now = self.clock.now_millis();
        ctx.set_key("aws:PrincipalArn", [caller.principal_arn.as_str()]);
        ctx.set_key("aws:PrincipalAccount", [caller.account_id.as_str()]);
        ctx.set_key("aws:PrincipalType", ["User"]);
        ctx.set_key("aws:SourceIp", [caller.source_ip.to_string()]);
        let (iso, epoch) = self.policy_cache.current_time(now);
        ctx.set_key("aws:CurrentTime", [&*iso]);
        ctx.set_key("aws:EpochTime", [&*epoch]);
        ctx.set_key("aws:SecureTransport", [caller.secure_transport.to_string()]);
        ctx.set_key("aws:RequestedRegion", [caller.region.as_str()]);
        if let Some(u) = user {
            ctx.set_key("aws:username", [u.name.as_str()]);
            ctx.set_key("aws:userid", [u.principal_id.as_str()]);
            for (k, v) in &u.tags {
                ctx.set_key(&format!("aws:PrincipalTag/{k}"), [v.as_str()]);
            }
        }
    }

    /// The calling user's identity-based policies, parsed; cached per credentials epoch and
    /// keyed by the caller's ARN, so a hit costs no allocation.
    async fn user_policies(
        &self,
        caller: &Caller,
        user_name: &str,
    ) -> Result<Arc<UserPolicies>, CoreError> {
        let account_id = caller.account_id.as_str();
        let epoch = self.credentials_epoch();
        if let Ok(cache) = self.policy_cache.users.read()
            && let Some(hit) = cache.get(caller.principal_arn.as_str())
            && hit.epoch == epoch
        {
            return Ok(Arc::clone(hit));
        }
        let user = self
            .store
            .get_principal(account_id, PrincipalKind::User, user_name)
            .await?;
        let documents: Vec<String> = match &user {
            Some(u) => self
                .identity_documents(account_id, PrincipalKind::User, &u.name)
                .await?
                .into_iter()
                .map(|(_, d)| d)
                .collect(),
            None => Vec::new(),
        };
        let mut parsed = Vec::with_capacity(documents.len());
        for doc in &documents {
            // Documents are validated when written, so a failure here means a document
            // written by an older coffer that this one reads more strictly: it grants nothing.
            match policies::parse(doc, Kind::Identity) {
                Ok(p) => parsed.push(Arc::new(p)),
                Err(e) => {
                    tracing::warn!(user = user_name, error = %e, "ignoring a stored policy that no longer parses")
                }
            }
        }
        let entry = Arc::new(UserPolicies {
            epoch,
            user,
            policies: parsed,
        });
        if let Ok(mut cache) = self.policy_cache.users.write() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(caller.principal_arn.clone(), Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// The identity-based policies of a user (with its groups'), group or role, as
    /// `(source id, document)`: an inline policy's name, or a managed policy's ARN.
    pub(crate) async fn identity_documents(
        &self,
        account_id: &str,
        kind: PrincipalKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, CoreError> {
        let mut holders = vec![(kind, name.to_string())];
        if kind == PrincipalKind::User {
            holders.extend(
                self.store
                    .groups_of_user(account_id, name)
                    .await?
                    .into_iter()
                    .map(|g| (PrincipalKind::Group, g.name)),
            );
        }
        let mut documents = Vec::new();
        for (kind, name) in holders {
            documents.extend(self.store.inline_policies(account_id, kind, &name).await?);
            for arn in self
                .store
                .attached_policies(account_id, kind, &name)
                .await?
            {
                if let Some(doc) = self.managed_document(account_id, &arn).await? {
                    documents.push((arn, doc));
                }
            }
        }
        Ok(documents)
    }

    /// The default version's document of a managed policy (AWS managed or this account's).
    async fn managed_document(
        &self,
        account_id: &str,
        arn: &str,
    ) -> Result<Option<String>, CoreError> {
        if let Some(doc) = aws_managed_document(arn) {
            return Ok(Some(doc.to_string()));
        }
        let Some(name) = arn.rsplit('/').next() else {
            return Ok(None);
        };
        let Some(policy) = self.store.get_managed_policy(account_id, name).await? else {
            return Ok(None);
        };
        if policy.arn() != arn {
            return Ok(None);
        }
        Ok(self
            .store
            .policy_versions(account_id, &policy.name)
            .await?
            .into_iter()
            .find(|v| v.version == policy.default_version)
            .map(|v| v.document))
    }
}
