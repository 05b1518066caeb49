//! A policy document: parsing JSON into a compiled [`Policy`], the grammar's validation rules
//! with IAM's messages, and the size quotas.
//!
//! This module owns the document shape (reference_policies_grammar.html,
//! reference_policies_elements.html) and statement matching. It must never combine policies
//! into a decision; `evaluate.rs` does.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::condition::{self, Condition, ContextValues};
use crate::error::{PolicyError, msg};
use crate::pattern::{NoVariables, Pattern, Syntax, Variables};
use crate::principal::{PrincipalMatch, PrincipalSet, RequestPrincipal};

/// Where a policy is attached, which decides the `Principal` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user, group or role (inline or managed), or passed as a session policy:
    /// `Principal` and `NotPrincipal` are prohibited.
    Identity,
    /// Attached to a resource (a secret's resource policy): `Principal` or `NotPrincipal` is
    /// required in every statement.
    Resource,
    /// A role's trust policy: `Principal` is required, `NotPrincipal` is not supported and
    /// `Resource` may be omitted (the role is the resource).
    Trust,
}

/// The policy language version (reference_policies_elements_version.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyVersion {
    /// `"2012-10-17"`: policy variables are recognised.
    V2012_10_17,
    /// `"2008-10-17"`, or no `Version` element: "If you do not include a Version element, the
    /// value defaults to 2008-10-17 … policy variables such as ${aws:username} aren't
    /// recognized as variables and are instead treated as literal strings in the policy."
    V2008_10_17,
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// The statement grants.
    Allow,
    /// The statement denies; an explicit deny overrides every allow.
    Deny,
}

/// A parsed, validated and compiled policy document. Immutable, `Send + Sync`; share it as
/// `Arc<Policy>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    kind: PolicyKind,
    version: PolicyVersion,
    id: Option<String>,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    principal: Option<(bool, PrincipalSet)>,
    actions: (bool, Vec<Pattern>),
    resources: Option<(bool, Vec<Pattern>)>,
    conditions: Vec<Condition>,
}

impl Policy {
    /// Parses and validates a policy document the way IAM does on `PutUserPolicy`,
    /// `CreatePolicy`, `CreateRole` or Secrets Manager's `PutResourcePolicy`. Size quotas are
    /// separate: see [`check_size`].
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let document: Value =
            serde_json::from_str(text).map_err(|_| PolicyError::malformed(msg::SYNTAX))?;
        let Value::Object(top) = document else {
            return Err(PolicyError::malformed(msg::SYNTAX));
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::malformed(msg::SYNTAX));
            }
        }
        let version = match top.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Value::String(v)) if v == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Value::String(v)) if v == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(_) => return Err(PolicyError::malformed(msg::SYNTAX)),
        };
        let id = match top.get("Id") {
            None => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => return Err(PolicyError::malformed(msg::SYNTAX)),
        };
        // "Statement": one object or an array of them (reference_policies_elements_statement.html).
        let raw: Vec<&Map<String, Value>> = match top.get("Statement") {
            Some(Value::Object(one)) => vec![one],
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(PolicyError::malformed(msg::SYNTAX)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(PolicyError::malformed(msg::SYNTAX)),
        };
        let variables = version == PolicyVersion::V2012_10_17;
        let mut statements = Vec::with_capacity(raw.len());
        let mut sids = HashSet::new();
        for object in raw {
            let statement = Statement::parse(object, kind, variables)?;
            if let Some(sid) = &statement.sid {
                // Duplicate Sids are refused even though the Sid is optional
                // (kubernetes/kops#4951). Empty Sids count as absent.
                if !sid.is_empty() && !sids.insert(sid.clone()) {
                    return Err(PolicyError::malformed(msg::DUPLICATE_SID));
                }
            }
            statements.push(statement);
        }
        Ok(Policy {
            kind,
            version,
            id,
            statements,
        })
    }

    /// Where the policy may be attached, as given to [`Policy::parse`].
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The document's `Version`.
    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// The document's `Id`, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// How many statements the document has.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    pub(crate) fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

/// Reads a string-or-array-of-strings element. `None` when absent.
fn string_list<'a>(
    object: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<Vec<&'a str>>, PolicyError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.as_str()),
                _ => Err(PolicyError::malformed(msg::SYNTAX)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(PolicyError::malformed(msg::SYNTAX)),
    }
}

/// Exactly one of `name` / `Not{name}`, as (negated, values).
fn one_of<'a>(
    object: &'a Map<String, Value>,
    positive: &str,
    negative: &str,
) -> Result<Option<(bool, Vec<&'a str>)>, PolicyError> {
    match (
        string_list(object, positive)?,
        string_list(object, negative)?,
    ) {
        (Some(_), Some(_)) => Err(PolicyError::malformed(msg::SYNTAX)),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

impl Statement {
    fn parse(
        object: &Map<String, Value>,
        kind: PolicyKind,
        variables: bool,
    ) -> Result<Statement, PolicyError> {
        for key in object.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(PolicyError::malformed(msg::SYNTAX));
            }
        }
        let sid = match object.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError::malformed(msg::SYNTAX)),
        };
        // IAM's own policies take alphanumeric Sids only (reference_policies_elements_sid.html:
        // "The Sid element supports ASCII uppercase letters (A-Z), lowercase letters (a-z), and
        // numbers (0-9)"); resource policies of other services allow more, and Secrets Manager
        // documents no restriction, so the rule is applied to IAM's kinds only.
        if kind != PolicyKind::Resource
            && sid
                .as_deref()
                .is_some_and(|s| !s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(PolicyError::malformed(msg::SID_ALPHANUMERIC));
        }
        let effect = match object.get("Effect") {
            Some(Value::String(e)) if e == "Allow" => Effect::Allow,
            Some(Value::String(e)) if e == "Deny" => Effect::Deny,
            _ => return Err(PolicyError::malformed(msg::SYNTAX)),
        };

        let principal = match (object.get("Principal"), object.get("NotPrincipal")) {
            (Some(_), Some(_)) => return Err(PolicyError::malformed(msg::SYNTAX)),
            (Some(p), None) => Some((false, p)),
            (None, Some(p)) => Some((true, p)),
            (None, None) => None,
        };
        let principal = match (kind, principal) {
            (PolicyKind::Identity, Some(_)) => {
                return Err(PolicyError::malformed(msg::PROHIBITED_PRINCIPAL));
            }
            (PolicyKind::Identity, None) => None,
            (PolicyKind::Resource, None) => {
                return Err(PolicyError::malformed(msg::MISSING_PRINCIPAL));
            }
            (PolicyKind::Trust, None) => {
                return Err(PolicyError::malformed(msg::TRUST_MISSING_PRINCIPAL));
            }
            // "You cannot use the NotPrincipal element in an IAM identity-based policy nor in an
            // IAM role trust policy" (reference_policies_elements_notprincipal.html).
            (PolicyKind::Trust, Some((true, _))) => {
                return Err(PolicyError::malformed(msg::SYNTAX));
            }
            // "NotPrincipal must be used with "Effect":"Deny". Using it with "Effect":"Allow" is
            // not supported." (same page)
            (_, Some((true, _))) if effect == Effect::Allow => {
                return Err(PolicyError::malformed(msg::SYNTAX));
            }
            (_, Some((negated, value))) => Some((negated, PrincipalSet::parse(value)?)),
        };

        let Some((not_action, action_texts)) = one_of(object, "Action", "NotAction")? else {
            return Err(PolicyError::malformed(msg::MISSING_ACTIONS));
        };
        if action_texts.is_empty() {
            return Err(PolicyError::malformed(msg::MISSING_ACTIONS));
        }
        let mut actions = Vec::with_capacity(action_texts.len());
        for text in action_texts {
            actions.push(compile_action(text)?);
        }

        let resources = match one_of(object, "Resource", "NotResource")? {
            None if kind == PolicyKind::Trust => None,
            None => return Err(PolicyError::malformed(msg::MISSING_RESOURCES)),
            Some((_, texts)) if texts.is_empty() => {
                return Err(PolicyError::malformed(msg::MISSING_RESOURCES));
            }
            Some((negated, texts)) => {
                let mut patterns = Vec::with_capacity(texts.len());
                for text in texts {
                    patterns.push(compile_resource(text, variables)?);
                }
                Some((negated, patterns))
            }
        };

        let conditions = match object.get("Condition") {
            None => Vec::new(),
            Some(block) => condition::parse_block(block, variables)?,
        };

        Ok(Statement {
            sid,
            effect,
            principal,
            actions: (not_action, actions),
            resources,
            conditions,
        })
    }

    /// Whether the statement's action element covers the request's action.
    /// `NotAction` "matches everything except the specified list of actions"
    /// (reference_policies_elements_notaction.html).
    pub(crate) fn covers_action(&self, action: &str) -> bool {
        let (negated, patterns) = &self.actions;
        // Action names are case-insensitive (reference_policies_elements_action.html: "The
        // prefix and the action name are case insensitive").
        let any = patterns
            .iter()
            .any(|p| p.matches(action, true, &NoVariables));
        any != *negated
    }

    /// Whether the statement's resource element covers the request's resource.
    pub(crate) fn covers_resource(&self, resource: &str, vars: &dyn Variables) -> bool {
        match &self.resources {
            None => true,
            Some((negated, patterns)) => {
                let any = patterns.iter().any(|p| p.matches(resource, false, vars));
                any != *negated
            }
        }
    }

    /// How the statement's principal element names the request's principal. Identity-based
    /// statements have none: they apply to whoever they are attached to.
    pub(crate) fn principal_match(&self, who: &RequestPrincipal<'_>) -> PrincipalMatch {
        match &self.principal {
            None => PrincipalMatch::Principal,
            Some((false, set)) => set.matches(who),
            Some((true, set)) => {
                if set.exempts(who) {
                    PrincipalMatch::None
                } else {
                    PrincipalMatch::Principal
                }
            }
        }
    }

    pub(crate) fn conditions_hold(&self, ctx: &dyn ContextValues) -> bool {
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// `*` or `service:pattern`, where the service prefix has no wildcard and there is one colon
/// (reference_policies_elements_action.html).
fn compile_action(text: &str) -> Result<Pattern, PolicyError> {
    let syntax = Syntax {
        wildcards: true,
        variables: false,
    };
    if text == "*" {
        return Ok(Pattern::compile(text, syntax));
    }
    let Some((vendor, name)) = text.split_once(':') else {
        return Err(PolicyError::malformed(msg::VENDOR_PREFIX));
    };
    if name.contains(':') {
        return Err(PolicyError::malformed(msg::ONE_COLON));
    }
    if vendor.contains('*') || vendor.contains('?') {
        return Err(PolicyError::malformed(msg::VENDOR_WILDCARD));
    }
    if vendor.is_empty() || name.is_empty() {
        return Err(PolicyError::malformed(msg::VENDOR_PREFIX));
    }
    Ok(Pattern::compile(text, syntax))
}

/// `*` or an ARN with its six components; matched case-sensitively as a whole, wildcards
/// crossing colons: "If the * wildcard is the last character of a resource ARN segment, it can
/// expand to match beyond the colon boundaries" (reference_policies_elements_resource.html).
fn compile_resource(text: &str, variables: bool) -> Result<Pattern, PolicyError> {
    let syntax = Syntax {
        wildcards: true,
        variables,
    };
    if text == "*" || (text.starts_with("arn:") && text.matches(':').count() >= 5) {
        Ok(Pattern::compile(text, syntax))
    } else {
        Err(PolicyError::malformed(msg::resource_not_arn(text)))
    }
}

/// The size quota a document is held to, by where it is attached. IAM counts characters
/// without white space ("IAM doesn't count white space when calculating the size of a policy",
/// reference_iam-quotas.html).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeQuota<'a> {
    /// An inline policy of the named user.
    UserInline(&'a str),
    /// An inline policy of the named group.
    GroupInline(&'a str),
    /// An inline policy of the named role.
    RoleInline(&'a str),
    /// A customer managed policy (one version).
    Managed,
    /// A secret's resource policy.
    SecretResourcePolicy,
}

/// Aggregate inline policy size of a user (reference_iam-quotas.html).
pub const USER_INLINE_POLICY_MAX: usize = 2_048;
/// Aggregate inline policy size of a group.
pub const GROUP_INLINE_POLICY_MAX: usize = 5_120;
/// Aggregate inline policy size of a role.
pub const ROLE_INLINE_POLICY_MAX: usize = 10_240;
/// Managed policy size.
pub const MANAGED_POLICY_MAX: usize = 6_144;
/// Secrets Manager resource-based policy size ("Maximum length of a resource-based
/// permissions policy: 20,480 characters", Secrets Manager quotas page).
pub const SECRET_RESOURCE_POLICY_MAX: usize = 20_480;

impl SizeQuota<'_> {
    /// The quota in characters, white space not counted.
    pub fn max(&self) -> usize {
        match self {
            SizeQuota::UserInline(_) => USER_INLINE_POLICY_MAX,
            SizeQuota::GroupInline(_) => GROUP_INLINE_POLICY_MAX,
            SizeQuota::RoleInline(_) => ROLE_INLINE_POLICY_MAX,
            SizeQuota::Managed => MANAGED_POLICY_MAX,
            SizeQuota::SecretResourcePolicy => SECRET_RESOURCE_POLICY_MAX,
        }
    }
}

/// Refuses a document longer than its quota with `LimitExceeded`. The messages are IAM's:
/// inline policies "Maximum policy size of 10240 bytes exceeded for role NAME"
/// (serverless/serverless#7643, HumanCellAtlas/data-store#1963 for groups,
/// ministryofjustice/cloud-platform-environments#5301 for users); managed policies "Cannot
/// exceed quota for PolicySize: 6144" (ministryofjustice/cloud-platform-environments#14473).
/// No AWS response was found for a secret's resource policy; the managed-policy wording is used.
/// The size is only that of the inline policy given; summing a user's other inline policies is
/// the caller's.
pub fn check_size(text: &str, quota: SizeQuota<'_>) -> Result<(), PolicyError> {
    let size = text.chars().filter(|c| !c.is_whitespace()).count();
    let max = quota.max();
    if size <= max {
        return Ok(());
    }
    Err(PolicyError::limit_exceeded(match quota {
        SizeQuota::UserInline(name) => {
            format!("Maximum policy size of {max} bytes exceeded for user {name}")
        }
        SizeQuota::GroupInline(name) => {
            format!("Maximum policy size of {max} bytes exceeded for group {name}")
        }
        SizeQuota::RoleInline(name) => {
            format!("Maximum policy size of {max} bytes exceeded for role {name}")
        }
        SizeQuota::Managed | SizeQuota::SecretResourcePolicy => {
            format!("Cannot exceed quota for PolicySize: {max}")
        }
    }))
}
