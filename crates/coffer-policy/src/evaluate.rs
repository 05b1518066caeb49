//! The decision: a request context against identity-based policies, an optional resource-based
//! policy and optional session policies, following "Policy evaluation logic"
//! (reference_policies_evaluation-logic.html) and "Cross-account policy evaluation logic"
//! (reference_policies_evaluation-logic-cross-account.html).
//!
//! This module owns how policies combine. It must never parse documents, allocate per
//! statement, or consult anything but its input: the same input always gives the same answer.

use std::collections::HashMap;
use std::sync::Arc;

use crate::condition::ContextValues;
use crate::pattern::Variables;
use crate::policy::{Effect, Policy};
use crate::principal::{PrincipalMatch, RequestPrincipal};

/// What is being asked: who, which action, on which resource, and the context keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    principal_arn: String,
    principal_account: String,
    action: String,
    resource: String,
    resource_account: String,
    keys: HashMap<String, Vec<String>>,
}

impl RequestContext {
    /// A request by `principal_arn` (an IAM user, role, assumed-role session or account root
    /// ARN; for a service principal its name, e.g. `secretsmanager.amazonaws.com`) of
    /// `principal_account`, for `action` (`service:Action`) on `resource` (an ARN, or `*`)
    /// owned by `resource_account`.
    pub fn new(
        principal_arn: impl Into<String>,
        principal_account: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
        resource_account: impl Into<String>,
    ) -> Self {
        RequestContext {
            principal_arn: principal_arn.into(),
            principal_account: principal_account.into(),
            action: action.into(),
            resource: resource.into(),
            resource_account: resource_account.into(),
            keys: HashMap::new(),
        }
    }

    /// Sets a context key (`aws:username`, `aws:SourceIp`, `aws:PrincipalTag/team`, …).
    /// Key names are case-insensitive, as in AWS; values are kept as given. The global keys
    /// are not derived from the principal: the caller sets every key it wants policies to see.
    pub fn with_key<I, V>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.set_key(key, values);
        self
    }

    /// As [`RequestContext::with_key`], in place.
    pub fn set_key<I, V>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.keys.insert(
            key.to_ascii_lowercase(),
            values.into_iter().map(Into::into).collect(),
        );
    }

    /// A context key's values (case-insensitive lookup).
    pub fn key(&self, key: &str) -> Option<&[String]> {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
        } else {
            self.keys.get(key).map(Vec::as_slice)
        }
    }

    /// The caller's ARN.
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The caller's account.
    pub fn principal_account(&self) -> &str {
        &self.principal_account
    }

    /// The action, `service:Action`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource ARN.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The account that owns the resource.
    pub fn resource_account(&self) -> &str {
        &self.resource_account
    }
}

impl Variables for RequestContext {
    /// A variable resolves to a single-valued key: "You can use any single-valued context key as
    /// a policy variable. You can't use a multivalued context key as a policy variable"
    /// (reference_policies_condition-single-vs-multi-valued-context-keys.html).
    fn variable(&self, key_lower: &str) -> Option<&str> {
        match self.keys.get(key_lower).map(Vec::as_slice) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}

impl ContextValues for RequestContext {
    fn values(&self, key_lower: &str) -> Option<&[String]> {
        self.keys.get(key_lower).map(Vec::as_slice)
    }
}

/// Everything one decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct EvaluationInput<'a> {
    /// The request.
    pub request: &'a RequestContext,
    /// The principal's identity-based policies (inline and managed, of the user, its groups, or
    /// the role).
    pub identity_policies: &'a [Arc<Policy>],
    /// The resource's policy, if it has one.
    pub resource_policy: Option<&'a Policy>,
    /// Session policies passed when the session was created; `None` when there are none.
    pub session_policies: Option<&'a [Arc<Policy>]>,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some policy allows and none denies.
    Allow,
    /// A statement denies.
    ExplicitDeny,
    /// Nothing allows (enough).
    ImplicitDeny,
}

impl Decision {
    /// IAM's name for the decision in simulator results (`EvalDecision`).
    #[must_use]
    pub fn simulator_name(self) -> &'static str {
        match self {
            Decision::Allow => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

/// Which kind of policy decided, for AWS's AccessDenied wording: "with an explicit deny in a
/// resource-based policy", "because no identity-based policy allows the … action", "because no
/// resource-based policy allows the … action", "because no session policy allows the …
/// action".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    /// The identity-based policies.
    Identity,
    /// The resource-based policy.
    Resource,
    /// The session policies.
    Session,
    /// No policy at all was given: an implicit deny with nothing to point at.
    None,
}

/// Where a matched statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicySource {
    /// `identity_policies[n]`.
    Identity(usize),
    /// The resource policy.
    Resource,
    /// `session_policies[n]`.
    Session(usize),
}

/// A statement that applied to the request (for a policy simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchedStatement<'a> {
    /// Which policy.
    pub source: PolicySource,
    /// The policy's `Id`.
    pub policy_id: Option<&'a str>,
    /// The statement's position in the policy, from 0.
    pub index: usize,
    /// The statement's `Sid`.
    pub sid: Option<&'a str>,
    /// The statement's effect.
    pub effect: Effect,
}

/// The decision, who decided it, and every statement that applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation<'a> {
    /// Allow, explicit deny or implicit deny.
    pub decision: Decision,
    /// The kind of policy that decided.
    pub decided_by: DecidedBy,
    /// Statements whose action, resource, principal and conditions all matched.
    pub matched: Vec<MatchedStatement<'a>>,
}

impl Evaluation<'_> {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

#[derive(Default)]
struct Side {
    allow: PrincipalMatch,
    deny: bool,
}

fn scan<'a>(
    policy: &'a Policy,
    source: PolicySource,
    request: &RequestContext,
    who: &RequestPrincipal<'_>,
    matched: &mut Vec<MatchedStatement<'a>>,
) -> Side {
    let mut side = Side::default();
    for (index, statement) in policy.statements().iter().enumerate() {
        if !statement.covers_action(&request.action) {
            continue;
        }
        if !statement.covers_resource(&request.resource, request) {
            continue;
        }
        let principal = statement.principal_match(who);
        if principal == PrincipalMatch::None {
            continue;
        }
        if !statement.conditions_hold(request) {
            continue;
        }
        match statement.effect {
            Effect::Deny => side.deny = true,
            Effect::Allow => side.allow = side.allow.max(principal),
        }
        matched.push(MatchedStatement {
            source,
            policy_id: policy.id(),
            index,
            sid: statement.sid.as_deref(),
            effect: statement.effect,
        });
    }
    side
}

/// Decides a request.
///
/// 1. An explicit deny in any policy wins.
/// 2. Session policies, when present, limit the identity side: an identity allow counts only if
///    a session policy allows too ("The resulting session's permissions are the intersection of
///    the role's identity-based policy and the session policies", access_policies.html#policies_session).
///    A resource-based allow that names the role or user ARN is limited the same way; one that
///    names the session ARN itself is not ("If the resource-based policy specifies the ARN of
///    the session … the permissions from the resource-based policy are not limited by the
///    session policy", same section).
/// 3. Same account: an allow in the identity-based policies or in the resource-based policy is
///    enough. A resource-based allow that names only the account delegates to the account's
///    identity-based policies and is not enough alone (reference_policies_elements_principal.html,
///    "AWS account principals").
/// 4. Different accounts: both the identity-based policies (in the principal's account) and the
///    resource-based policy must allow (reference_policies_evaluation-logic-cross-account.html).
/// 5. Otherwise an implicit deny.
pub fn evaluate<'a>(input: &EvaluationInput<'a>) -> Evaluation<'a> {
    let request = input.request;
    let who = RequestPrincipal {
        arn: &request.principal_arn,
        account: &request.principal_account,
    };
    let mut matched = Vec::new();

    let mut identity = Side::default();
    for (n, policy) in input.identity_policies.iter().enumerate() {
        let side = scan(
            policy,
            PolicySource::Identity(n),
            request,
            &who,
            &mut matched,
        );
        identity.deny |= side.deny;
        identity.allow = identity.allow.max(side.allow);
    }
    let mut session = Side::default();
    if let Some(policies) = input.session_policies {
        for (n, policy) in policies.iter().enumerate() {
            let side = scan(
                policy,
                PolicySource::Session(n),
                request,
                &who,
                &mut matched,
            );
            session.deny |= side.deny;
            session.allow = session.allow.max(side.allow);
        }
    }
    let resource = match input.resource_policy {
        Some(policy) => scan(policy, PolicySource::Resource, request, &who, &mut matched),
        None => Side::default(),
    };

    let explicit_deny = if identity.deny {
        Some(DecidedBy::Identity)
    } else if session.deny {
        Some(DecidedBy::Session)
    } else if resource.deny {
        Some(DecidedBy::Resource)
    } else {
        None
    };
    if let Some(decided_by) = explicit_deny {
        return Evaluation {
            decision: Decision::ExplicitDeny,
            decided_by,
            matched,
        };
    }

    let has_session = input.session_policies.is_some();
    let session_allows = !has_session || session.allow != PrincipalMatch::None;
    let identity_allows = identity.allow != PrincipalMatch::None;
    let identity_ok = identity_allows && session_allows;
    let resource_ok_alone = match resource.allow {
        PrincipalMatch::None | PrincipalMatch::Account => false,
        PrincipalMatch::Principal => session_allows,
        PrincipalMatch::Session => true,
    };
    // Why an identity-side refusal happened: the session policies when they were the part
    // missing, else the identity-based policies.
    let nothing_given = input.identity_policies.is_empty()
        && input.resource_policy.is_none()
        && input.session_policies.is_none_or(<[Arc<Policy>]>::is_empty);
    let identity_reason = if identity_allows && !session_allows {
        DecidedBy::Session
    } else if nothing_given {
        DecidedBy::None
    } else {
        DecidedBy::Identity
    };

    let same_account = request.principal_account == request.resource_account;
    let outcome = if same_account {
        if identity_ok {
            (Decision::Allow, DecidedBy::Identity)
        } else if resource_ok_alone {
            (Decision::Allow, DecidedBy::Resource)
        } else {
            (Decision::ImplicitDeny, identity_reason)
        }
    } else if !identity_ok {
        (Decision::ImplicitDeny, identity_reason)
    } else if resource.allow == PrincipalMatch::None {
        (Decision::ImplicitDeny, DecidedBy::Resource)
    } else {
        (Decision::Allow, DecidedBy::Identity)
    };
    Evaluation {
        decision: outcome.0,
        decided_by: outcome.1,
        matched,
    }
}
