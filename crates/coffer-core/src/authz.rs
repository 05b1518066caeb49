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
    /// The account's root user with nothing narrowing it: allowed everything in its own
    /// account without evaluation (a root session with session policies is evaluated).
    #[must_use]
    pub fn is_unrestricted_root(&self) -> bool {
        self.principal_type == PrincipalType::Root
            && self
                .session
                .as_deref()
                .is_none_or(|s| s.policy.is_none() && s.policy_arns.is_empty())
    }

    /// The IAM user name of an IAM user caller (the last segment of its ARN).
    #[must_use]
    pub fn user_name(&self) -> Option<&str> {
        match self.principal_type {
            PrincipalType::IamUser => self.principal_arn.rsplit('/').next(),
            PrincipalType::Root | PrincipalType::AssumedRole => None,
        }
    }
}

/// A user's or role's identity-based policies, parsed, as of one credentials epoch.
pub(crate) struct PrincipalPolicies {
    epoch: u64,
    /// The user or role; `None` when it no longer exists (or, for a role session, when the
    /// role was deleted and created again: a new role grants the old sessions nothing).
    principal: Option<PrincipalRecord>,
    policies: Vec<Arc<Policy>>,
}

/// A session's policies (`Policy` and `PolicyArns` of `AssumeRole`), parsed.
pub(crate) struct SessionPolicies {
    epoch: u64,
    policies: Vec<Arc<Policy>>,
}

/// Parsed policies by principal, so that a decision costs an evaluation, not a database read.
#[derive(Default)]
pub(crate) struct PolicyCache {
    /// Keyed by the user's or the role's ARN.
    principals: RwLock<HashMap<String, Arc<PrincipalPolicies>>>,
    /// Keyed by the session's access key id.
    sessions: RwLock<HashMap<String, Arc<SessionPolicies>>>,
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

    /// The decision on assuming a role: its trust policy is the resource policy, and it gates
    /// the identity side as a key policy does. "A role trust policy is a required
    /// resource-based policy": an identity-based allow alone never lets anyone assume a role,
    /// and a trust policy that names only the account delegates to identity policies (IAM user
    /// guide, "Roles terms and concepts" and "Granting a user permissions to switch roles").
    pub(crate) async fn decide_trust(
        &self,
        caller: &Caller,
        action: &str,
        role_arn: &str,
        keys: RequestKeys,
        trust_policy: &Policy,
    ) -> Result<(), CoreError> {
        self.decide_gated(caller, action, role_arn, keys, Some(trust_policy), true)
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
        let session_entry: Arc<SessionPolicies>;
        let session_policies = match caller.session.as_deref() {
            Some(s) if s.policy.is_some() || !s.policy_arns.is_empty() => {
                session_entry = self.session_policies(caller, s).await?;
                Some(session_entry.policies.as_slice())
            }
            _ => None,
        };
        let root_identity: Vec<Arc<Policy>>;
        let principal_entry: Arc<PrincipalPolicies>;
        let (identity, principal): (&[Arc<Policy>], Option<&PrincipalRecord>) = match caller
            .principal_type
        {
            PrincipalType::Root => {
                // A root session narrowed by session policies (the credentials a rotation
                // function gets) is evaluated; plain root needs no evaluation without a
                // resource policy.
                if resource_policy.is_none() && session_policies.is_none() {
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
            PrincipalType::IamUser => {
                let name = caller.user_name().unwrap_or_default();
                // A GetSessionToken session belongs to the user it was issued to (its unique
                // id): a user deleted and created again under the same name is another user.
                let user_id = caller.session.as_deref().map(|s| s.principal_id.as_str());
                principal_entry = self
                    .principal_policies(
                        caller,
                        PrincipalKind::User,
                        &caller.principal_arn,
                        name,
                        user_id,
                    )
                    .await?;
                (
                    &principal_entry.policies,
                    principal_entry.principal.as_ref(),
                )
            }
            PrincipalType::AssumedRole => {
                match caller.session.as_ref().and_then(|s| s.role.as_ref()) {
                    Some(role) => {
                        let name = role.role_arn.rsplit('/').next().unwrap_or_default();
                        principal_entry = self
                            .principal_policies(
                                caller,
                                PrincipalKind::Role,
                                &role.role_arn,
                                name,
                                Some(&role.role_id),
                            )
                            .await?;
                        (
                            &principal_entry.policies,
                            principal_entry.principal.as_ref(),
                        )
                    }
                    None => (&[], None),
                }
            }
        };
        let mut ctx = RequestContext::new(
            caller.principal_arn.as_str(),
            caller.account_id.as_str(),
            action,
            resource,
            resource_account(resource, caller),
        );
        self.global_keys(&mut ctx, caller, principal);
        for (k, v) in keys {
            ctx.set_key(&k, v);
        }
        let input = EvaluationInput {
            request: &ctx,
            identity_policies: identity,
            resource_policy,
            session_policies,
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
            (Decision::ExplicitDeny, DecidedBy::Session) => Err(denied(
                caller,
                action,
                resource,
                "with an explicit deny in a session policy",
            )),
            // Across accounts: the caller's side allows, the resource's policy does not.
            (Decision::ImplicitDeny, DecidedBy::Resource) => Err(denied(
                caller,
                action,
                resource,
                &format!("because no resource-based policy allows the {action} action"),
            )),
            (Decision::ImplicitDeny, DecidedBy::Session) => Err(denied(
                caller,
                action,
                resource,
                &format!("because no session policy allows the {action} action"),
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
    /// context keys"). `principal` is the calling user, or the role of a role session.
    fn global_keys(
        &self,
        ctx: &mut RequestContext,
        caller: &Caller,
        principal: Option<&PrincipalRecord>,
    ) {
        let now = self.clock.now_millis();
        let session = caller.session.as_deref();
        // For a role session aws:PrincipalArn is the role's ARN, not the session's.
        let principal_arn = session
            .and_then(|s| s.role.as_ref())
            .map_or(caller.principal_arn.as_str(), |r| r.role_arn.as_str());
        ctx.set_key("aws:PrincipalArn", [principal_arn]);
        ctx.set_key("aws:PrincipalAccount", [caller.account_id.as_str()]);
        ctx.set_key(
            "aws:PrincipalType",
            [match caller.principal_type {
                PrincipalType::Root => "Account",
                PrincipalType::IamUser => "User",
                PrincipalType::AssumedRole => "AssumedRole",
            }],
        );
        ctx.set_key("aws:SourceIp", [caller.source_ip.to_string()]);
        let (iso, epoch) = self.policy_cache.current_time(now);
        ctx.set_key("aws:CurrentTime", [&*iso]);
        ctx.set_key("aws:EpochTime", [&*epoch]);
        ctx.set_key("aws:SecureTransport", [caller.secure_transport.to_string()]);
        ctx.set_key("aws:RequestedRegion", [caller.region.as_str()]);
        match (session, caller.principal_type, principal) {
            (Some(s), _, _) => ctx.set_key("aws:userid", [s.principal_id.as_str()]),
            (None, PrincipalType::Root, _) => {
                ctx.set_key("aws:userid", [caller.account_id.as_str()])
            }
            (None, _, Some(p)) => ctx.set_key("aws:userid", [p.principal_id.as_str()]),
            (None, _, None) => {}
        }
        if let Some(p) = principal {
            if caller.principal_type == PrincipalType::IamUser {
                ctx.set_key("aws:username", [p.name.as_str()]);
            }
            for (k, v) in &p.tags {
                ctx.set_key(&format!("aws:PrincipalTag/{k}"), [v.as_str()]);
            }
        }
        // Temporary credentials: "aws:MultiFactorAuthPresent … is not present when an IAM user
        // uses access keys" (long-term credentials), true or false for a session; the age only
        // when MFA was used.
        if let Some(s) = session {
            for (k, v) in &s.tags {
                ctx.set_key(&format!("aws:PrincipalTag/{k}"), [v.as_str()]);
            }
            ctx.set_key(
                "aws:MultiFactorAuthPresent",
                [if s.mfa_authenticated_ms.is_some() {
                    "true"
                } else {
                    "false"
                }],
            );
            if let Some(at) = s.mfa_authenticated_ms {
                ctx.set_key(
                    "aws:MultiFactorAuthAge",
                    [((now - at).max(0) / 1000).to_string()],
                );
            }
            ctx.set_key("aws:TokenIssueTime", [iso8601(s.issued_ms)]);
            if let Some(si) = &s.source_identity {
                ctx.set_key("aws:SourceIdentity", [si.as_str()]);
            }
        }
    }

    /// The unique id (`AIDA…`) of an IAM user calling with a long-term key, from the cached
    /// policies (for the audit trail's `principalId`).
    pub(crate) async fn user_principal_id(&self, caller: &Caller) -> Option<String> {
        let name = caller.user_name()?;
        let entry = self
            .principal_policies(
                caller,
                PrincipalKind::User,
                &caller.principal_arn,
                name,
                None,
            )
            .await
            .ok()?;
        entry.principal.as_ref().map(|p| p.principal_id.clone())
    }

    /// The identity-based policies of the calling user, or of the role of a role session,
    /// parsed; cached per credentials epoch and keyed by the user's or role's ARN, so a hit
    /// costs no allocation. `unique_id` is the id (`AIDA…`, `AROA…`) a session was issued
    /// for; a principal of the same name with another id grants that session nothing.
    async fn principal_policies(
        &self,
        caller: &Caller,
        kind: PrincipalKind,
        arn: &str,
        name: &str,
        unique_id: Option<&str>,
    ) -> Result<Arc<PrincipalPolicies>, CoreError> {
        let account_id = caller.account_id.as_str();
        let epoch = self.credentials_epoch();
        let current = |hit: &PrincipalPolicies| {
            hit.epoch == epoch
                && unique_id
                    .is_none_or(|id| hit.principal.as_ref().is_some_and(|p| p.principal_id == id))
        };
        if let Ok(cache) = self.policy_cache.principals.read()
            && let Some(hit) = cache.get(arn)
            && current(hit)
        {
            return Ok(Arc::clone(hit));
        }
        let principal = self
            .store
            .get_principal(account_id, kind, name)
            .await?
            .filter(|p| p.arn() == arn && unique_id.is_none_or(|id| p.principal_id == id));
        let documents: Vec<String> = match &principal {
            Some(p) => self
                .identity_documents(account_id, kind, &p.name)
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
                    tracing::warn!(principal = arn, error = %e, "ignoring a stored policy that no longer parses")
                }
            }
        }
        let entry = Arc::new(PrincipalPolicies {
            epoch,
            principal,
            policies: parsed,
        });
        // A session of a former principal of this name gets an empty answer that must not
        // stand in for the current principal's.
        let stale_session = unique_id.is_some() && entry.principal.is_none();
        if !stale_session && let Ok(mut cache) = self.policy_cache.principals.write() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(arn.to_string(), Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// A session's policies: the inline one it was issued with and the managed ones it names,
    /// in their current default version (as AWS resolves `PolicyArns`); a managed policy
    /// deleted since grants nothing. Cached per credentials epoch by access key id.
    async fn session_policies(
        &self,
        caller: &Caller,
        session: &crate::Session,
    ) -> Result<Arc<SessionPolicies>, CoreError> {
        let epoch = self.credentials_epoch();
        if let Ok(cache) = self.policy_cache.sessions.read()
            && let Some(hit) = cache.get(caller.access_key_id.as_str())
            && hit.epoch == epoch
        {
            return Ok(Arc::clone(hit));
        }
        let mut documents: Vec<String> = session.policy.iter().cloned().collect();
        for arn in &session.policy_arns {
            match self.managed_document(&caller.account_id, arn).await? {
                Some(doc) => documents.push(doc),
                // Nothing to intersect with still means the session is limited: an empty
                // policy allows nothing.
                None => documents.push(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
            }
        }
        let policies = documents
            .iter()
            .filter_map(|doc| policies::parse(doc, Kind::Identity).ok().map(Arc::new))
            .collect();
        let entry = Arc::new(SessionPolicies { epoch, policies });
        if let Ok(mut cache) = self.policy_cache.sessions.write() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(caller.access_key_id.clone(), Arc::clone(&entry));
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
    pub(crate) async fn managed_document(
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
