//! The `Principal` and `NotPrincipal` elements of resource-based and trust policies: parsing,
//! validation and matching a request's principal.
//!
//! This module owns who a principal entry names (reference_policies_elements_principal.html).
//! It must never decide a request (`evaluate.rs` combines the strength of a match with the
//! other policies).

use serde_json::Value;

use crate::error::{PolicyError, msg};

/// How a request's principal was matched by a `Principal` element, weakest first. The
/// evaluator needs the difference: within one account an allow that names the account only
/// delegates to the account's identity-based policies, and a session policy does not limit an
/// allow that names the session itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum PrincipalMatch {
    /// The statement does not apply to this principal.
    #[default]
    None,
    /// `"AWS": "123456789012"` or `"AWS": "arn:aws:iam::123456789012:root"`: "you delegate
    /// authority to the account … All identities inside the account can access the resource if
    /// they have the appropriate IAM permissions attached to explicitly allow access"
    /// (reference_policies_elements_principal.html, "AWS account principals").
    Account,
    /// `"*"`, the user's or role's own ARN, or (for a role session) the role's ARN.
    Principal,
    /// The assumed-role session ARN itself.
    Session,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AwsEntry {
    Everyone,
    Account(Box<str>),
    Arn(Box<str>),
}

/// A parsed `Principal` (or `NotPrincipal`) element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PrincipalSet {
    everyone: bool,
    aws: Vec<AwsEntry>,
    /// `Service`, `Federated` and `CanonicalUser` names, compared with the request principal
    /// as given (a service principal such as `secretsmanager.amazonaws.com` is its own name).
    others: Vec<(PrincipalType, Box<str>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalType {
    Service,
    Federated,
    CanonicalUser,
}

/// The request's principal as the matcher needs it.
pub(crate) struct RequestPrincipal<'a> {
    pub arn: &'a str,
    pub account: &'a str,
}

impl PrincipalSet {
    pub(crate) fn parse(value: &Value) -> Result<PrincipalSet, PolicyError> {
        let mut set = PrincipalSet::default();
        match value {
            // "Principal": "*" is the same as {"AWS": "*"}
            // (reference_policies_elements_principal.html, "All principals").
            Value::String(s) if s == "*" => set.everyone = true,
            Value::String(s) => return Err(PolicyError::malformed(msg::invalid_principal("", s))),
            Value::Object(map) if !map.is_empty() => {
                for (kind, ids) in map {
                    let ids = strings(ids, kind)?;
                    match kind.as_str() {
                        "AWS" => {
                            for id in ids {
                                let entry = parse_aws(id).ok_or_else(|| {
                                    PolicyError::malformed(msg::invalid_principal(kind, id))
                                })?;
                                if entry == AwsEntry::Everyone {
                                    set.everyone = true;
                                }
                                set.aws.push(entry);
                            }
                        }
                        "Service" | "Federated" | "CanonicalUser" => {
                            let ty = match kind.as_str() {
                                "Service" => PrincipalType::Service,
                                "Federated" => PrincipalType::Federated,
                                _ => PrincipalType::CanonicalUser,
                            };
                            for id in ids {
                                if id.is_empty() {
                                    return Err(PolicyError::malformed(msg::invalid_principal(
                                        kind, id,
                                    )));
                                }
                                if id == "*" && ty == PrincipalType::Service {
                                    set.everyone = true;
                                }
                                set.others.push((ty, id.as_str().into()));
                            }
                        }
                        _ => {
                            return Err(PolicyError::malformed(msg::invalid_principal(
                                kind,
                                ids.first().map(|s| s.as_str()).unwrap_or(""),
                            )));
                        }
                    }
                }
            }
            _ => return Err(PolicyError::malformed(msg::SYNTAX)),
        }
        Ok(set)
    }

    /// The strongest way one entry names the request's principal.
    pub(crate) fn matches(&self, who: &RequestPrincipal<'_>) -> PrincipalMatch {
        if self.everyone {
            return PrincipalMatch::Principal;
        }
        let mut best = PrincipalMatch::None;
        let session = SessionArn::parse(who.arn);
        for entry in &self.aws {
            let m = match entry {
                AwsEntry::Everyone => PrincipalMatch::Principal,
                AwsEntry::Account(account) => {
                    if **account == *who.account {
                        PrincipalMatch::Account
                    } else {
                        PrincipalMatch::None
                    }
                }
                AwsEntry::Arn(arn) => {
                    if **arn == *who.arn {
                        if session.is_some() {
                            PrincipalMatch::Session
                        } else {
                            PrincipalMatch::Principal
                        }
                    } else if session.as_ref().is_some_and(|s| s.is_session_of(arn)) {
                        // A role ARN as principal grants the role's sessions: "the role session
                        // … AWS evaluates the role ARN" (reference_policies_elements_principal.html,
                        // "IAM role principals" and "Role session principals").
                        PrincipalMatch::Principal
                    } else {
                        PrincipalMatch::None
                    }
                }
            };
            best = best.max(m);
        }
        if best == PrincipalMatch::None
            && self
                .others
                .iter()
                .any(|(_, name)| name.eq_ignore_ascii_case(who.arn))
        {
            best = PrincipalMatch::Principal;
        }
        best
    }

    /// Whether a `NotPrincipal` element exempts the request's principal. AWS checks the
    /// account, then the user or role, then the session, and each must be exempted, so
    /// "you must also include the account ARN of the principal … Otherwise, the policy might
    /// deny access to the entire account" (reference_policies_elements_notprincipal.html,
    /// "Key points"). A role session is exempted by the role's ARN or by the session's ARN.
    pub(crate) fn exempts(&self, who: &RequestPrincipal<'_>) -> bool {
        if self.everyone {
            return true;
        }
        let account_listed = self
            .aws
            .iter()
            .any(|e| matches!(e, AwsEntry::Account(a) if **a == *who.account));
        let root = is_root_arn(who.arn);
        let session = SessionArn::parse(who.arn);
        let identity_listed = root
            || self.aws.iter().any(|e| match e {
                AwsEntry::Arn(arn) => {
                    **arn == *who.arn || session.as_ref().is_some_and(|s| s.is_session_of(arn))
                }
                _ => false,
            });
        let other_listed = self
            .others
            .iter()
            .any(|(_, name)| name.eq_ignore_ascii_case(who.arn));
        (account_listed && identity_listed) || other_listed
    }
}

fn strings<'a>(value: &'a Value, kind: &str) -> Result<Vec<&'a String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(PolicyError::malformed(msg::invalid_principal(
                    kind,
                    &other.to_string(),
                ))),
            })
            .collect(),
        _ => Err(PolicyError::malformed(msg::SYNTAX)),
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_root_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, "iam", "", account, "root"] if is_account_id(account))
}

/// One `AWS` principal value. "You cannot use a wildcard to match part of a principal name or
/// ARN" (reference_policies_elements_principal.html), so only `*` alone is a wildcard.
fn parse_aws(id: &str) -> Option<AwsEntry> {
    if id == "*" {
        return Some(AwsEntry::Everyone);
    }
    if id.contains('*') || id.contains('?') {
        return None;
    }
    // "When you use an AWS account identifier … you can specify the account ARN
    // (arn:aws:iam::account-ID:root), or a shortened form that consists of the account ID"
    // (reference_policies_elements_principal.html, "AWS account principals").
    if is_account_id(id) {
        return Some(AwsEntry::Account(id.into()));
    }
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    let ["arn", partition, service, "", account, resource] = parts.as_slice() else {
        // Unique ids (AIDA…, AROA…) are what IAM stores after resolving an ARN; accept them as
        // exact names.
        let unique = id.len() >= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        return unique.then(|| AwsEntry::Arn(id.into()));
    };
    if partition.is_empty() || !is_account_id(account) || resource.is_empty() {
        return None;
    }
    match *service {
        "iam" if *resource == "root" => Some(AwsEntry::Account((*account).into())),
        "iam"
            if resource.starts_with("user/")
                || resource.starts_with("role/")
                || resource.starts_with("federated-user/") =>
        {
            Some(AwsEntry::Arn(id.into()))
        }
        "sts"
            if resource.starts_with("assumed-role/") || resource.starts_with("federated-user/") =>
        {
            Some(AwsEntry::Arn(id.into()))
        }
        _ => None,
    }
}

/// `arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
struct SessionArn<'a> {
    partition: &'a str,
    account: &'a str,
    role: &'a str,
}

impl<'a> SessionArn<'a> {
    fn parse(arn: &'a str) -> Option<SessionArn<'a>> {
        let rest = arn.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        let rest = rest.strip_prefix("sts::")?;
        let (account, resource) = rest.split_once(':')?;
        let role_session = resource.strip_prefix("assumed-role/")?;
        let (role, session) = role_session.split_once('/')?;
        (!role.is_empty() && !session.is_empty()).then_some(SessionArn {
            partition,
            account,
            role,
        })
    }

    /// Whether `role_arn` (`arn:PARTITION:iam::ACCOUNT:role/PATH/ROLE`) is this session's role;
    /// the session ARN carries the role's name without its path.
    fn is_session_of(&self, role_arn: &str) -> bool {
        let Some(rest) = role_arn.strip_prefix("arn:") else {
            return false;
        };
        let Some((partition, rest)) = rest.split_once(':') else {
            return false;
        };
        let Some(rest) = rest.strip_prefix("iam::") else {
            return false;
        };
        let Some((account, resource)) = rest.split_once(':') else {
            return false;
        };
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return false;
        };
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        partition == self.partition && account == self.account && name == self.role
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: &str = "arn:aws:iam::111122223333:user/alice";
    const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/Admin/bob";

    fn who(arn: &str) -> RequestPrincipal<'_> {
        RequestPrincipal {
            arn,
            account: "111122223333",
        }
    }

    #[test]
    fn match_table() {
        let cases: &[(Value, &str, PrincipalMatch)] = &[
            (json!("*"), USER, PrincipalMatch::Principal),
            (json!({"AWS": "*"}), USER, PrincipalMatch::Principal),
            (
                json!({"AWS": "111122223333"}),
                USER,
                PrincipalMatch::Account,
            ),
            (
                json!({"AWS": "arn:aws:iam::111122223333:root"}),
                USER,
                PrincipalMatch::Account,
            ),
            (
                json!({"AWS": "arn:aws:iam::444455556666:root"}),
                USER,
                PrincipalMatch::None,
            ),
            (json!({"AWS": USER}), USER, PrincipalMatch::Principal),
            (
                json!({"AWS": "arn:aws:iam::111122223333:user/bob"}),
                USER,
                PrincipalMatch::None,
            ),
            (
                json!({"AWS": "arn:aws:iam::111122223333:role/Admin"}),
                SESSION,
                PrincipalMatch::Principal,
            ),
            (
                json!({"AWS": "arn:aws:iam::111122223333:role/ops/Admin"}),
                SESSION,
                PrincipalMatch::Principal,
            ),
            (
                json!({"AWS": "arn:aws:iam::111122223333:role/Other"}),
                SESSION,
                PrincipalMatch::None,
            ),
            (json!({"AWS": SESSION}), SESSION, PrincipalMatch::Session),
            (
                json!({"AWS": ["111122223333", SESSION]}),
                SESSION,
                PrincipalMatch::Session,
            ),
            (
                json!({"Service": "lambda.amazonaws.com"}),
                "lambda.amazonaws.com",
                PrincipalMatch::Principal,
            ),
            (
                json!({"Service": "lambda.amazonaws.com"}),
                USER,
                PrincipalMatch::None,
            ),
        ];
        for (value, arn, expected) in cases {
            let set = PrincipalSet::parse(value);
            assert!(set.is_ok(), "{value}");
            let got = set
                .map(|s| s.matches(&who(arn)))
                .unwrap_or(PrincipalMatch::None);
            assert_eq!(got, *expected, "{value} vs {arn}");
        }
    }

    #[test]
    fn invalid_principals() {
        for value in [
            json!({"AWS": "arn:aws:iam::111122223333:user/*"}),
            json!({"AWS": "alice"}),
            json!({"AWS": "arn:aws:s3:::bucket"}),
            json!({"AWS": []}),
            json!({"Galaxy": "x"}),
            json!("arn:aws:iam::111122223333:root"),
            json!({}),
        ] {
            assert!(PrincipalSet::parse(&value).is_err(), "{value}");
        }
    }
}
