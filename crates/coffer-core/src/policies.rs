//! Policy documents as the service accepts them: parsed and validated by `coffer-policy`,
//! with its errors turned into the service's (`MalformedPolicyDocument`, `LimitExceeded`).

pub(crate) use coffer_policy::PolicyKind as Kind;
use coffer_policy::{ErrorCode, Policy, PolicyError};

use crate::CoreError;

pub(crate) fn to_core(e: &PolicyError) -> CoreError {
    match e.kind() {
        ErrorCode::MalformedPolicyDocument => CoreError::MalformedPolicy(e.message().to_string()),
        ErrorCode::LimitExceeded => CoreError::LimitExceeded(e.message().to_string()),
    }
}

/// Parses a policy document for its use (`Principal` required in trust and resource
/// policies, prohibited in identity policies).
pub(crate) fn parse(document: &str, kind: Kind) -> Result<Policy, CoreError> {
    Policy::parse(document, kind).map_err(|e| to_core(&e))
}

/// Checks a policy document for its use.
pub(crate) fn validate(document: &str, kind: Kind) -> Result<(), CoreError> {
    parse(document, kind).map(|_| ())
}

/// Condition keys that restrict a `*` principal to known callers, so that a statement using
/// them does not grant broad access (Secrets Manager user guide, "Block public access").
const RESTRICTING_KEYS: &[&str] = &[
    "aws:principalaccount",
    "aws:sourceaccount",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalarn",
    "aws:sourcearn",
    "aws:sourceowner",
    "aws:userid",
    "aws:sourcevpc",
    "aws:sourcevpce",
];

/// Statements of a resource policy that would allow principals outside `account_id`: a `*`
/// principal without a restricting condition, or another account's principal. One message
/// per such statement; empty when the policy keeps access within the account.
pub(crate) fn broad_access(document: &str, account_id: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(document) else {
        return Vec::new();
    };
    let statements: Vec<&serde_json::Value> = match value.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let mut findings = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        if st.get("Effect").and_then(|e| e.as_str()) != Some("Allow") {
            continue;
        }
        let label = st.get("Sid").and_then(|s| s.as_str()).map_or_else(
            || format!("statement {}", i + 1),
            |s| format!("statement {s}"),
        );
        let principals: Vec<String> = match st.get("Principal") {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Object(map)) => map
                .get("AWS")
                .map(|v| match v {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let restricted = st
            .get("Condition")
            .and_then(|c| c.as_object())
            .is_some_and(|ops| {
                ops.values().filter_map(|v| v.as_object()).any(|keys| {
                    keys.keys()
                        .any(|k| RESTRICTING_KEYS.contains(&k.to_ascii_lowercase().as_str()))
                })
            });
        if st.get("NotPrincipal").is_some() {
            findings.push(format!(
                "{label} uses NotPrincipal with Allow, which grants access to everyone not listed."
            ));
            continue;
        }
        for p in principals {
            if p == "*" {
                if !restricted {
                    findings.push(format!("{label} allows any principal (*) without a condition that limits it to known accounts."));
                }
                continue;
            }
            let account = if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
                Some(p.as_str())
            } else {
                p.split(':').nth(4)
            };
            if let Some(a) = account
                && a != account_id
            {
                findings.push(format!(
                    "{label} allows principals of another account ({a})."
                ));
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broad_access_table() {
        let doc = |principal: &str, condition: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"{condition}}}]}}"#
            )
        };
        let cases = [
            (doc(r#""*""#, ""), 1),
            (doc(r#"{"AWS":"*"}"#, ""), 1),
            (
                doc(
                    r#"{"AWS":"*"}"#,
                    r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#,
                ),
                0,
            ),
            (doc(r#"{"AWS":"arn:aws:iam::111122223333:root"}"#, ""), 0),
            (doc(r#"{"AWS":"111122223333"}"#, ""), 0),
            (
                doc(
                    r#"{"AWS":["arn:aws:iam::444455556666:user/x","111122223333"]}"#,
                    "",
                ),
                1,
            ),
            (
                doc(
                    r#"{"AWS":"*"}"#,
                    r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
                ),
                1,
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(
                broad_access(&policy, "111122223333").len(),
                want,
                "{policy}"
            );
        }
        let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#;
        assert!(broad_access(deny, "111122223333").is_empty());
    }
}
