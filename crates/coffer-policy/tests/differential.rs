//! Differential test against `iam-rs` 0.8.0 (an independent IAM evaluator, dev-dependency only).
//!
//! Policies and requests are generated from a small deterministic PRNG over the subset both
//! engines model the same way: one identity-based policy (no principals), actions and resources
//! with wildcards and their `Not` forms, and condition operators of every family with
//! `IfExists` and the set qualifiers. Each generated pair is decided by both; every
//! disagreement must fall into a class listed in `classify`, where the AWS rule that decides
//! which engine is right is written down. An unclassified disagreement fails the test.
//!
//! iam-rs refuses about a fifth of the generated cases (it does not parse a set qualifier
//! combined with `IfExists`, e.g. `ForAllValues:StringNotEqualsIfExists`, and some evaluations
//! return errors); those are skipped. The number it refuses varies by a few between runs (its
//! maps are hash-ordered); the decisions compared do not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use coffer_policy::{Decision, EvaluationInput, Policy, PolicyKind, RequestContext, evaluate};
use common::Rng;
use iam_rs::{Arn, Context, ContextValue, IAMPolicy, IAMRequest, Principal, PrincipalId};

const ACCOUNT: &str = "111122223333";

const ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:Get*",
    "secretsmanager:*",
    "*",
    "s3:GetObject",
    "SecretsManager:getsecretvalue",
    "secretsmanager:?etSecretValue",
    "secretsmanager:Describe*",
];
const REQUEST_ACTIONS: &[&str] = &[
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "s3:GetObject",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:*:111122223333:secret:prod/*",
    "arn:aws:secretsmanager:*:*:secret:dev/*",
    "arn:aws:secretsmanager:*:*:secret:PROD/*",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:${aws:username}/*",
    "arn:aws:secretsmanager:eu-west-?:111122223333:secret:*",
];
const REQUEST_RESOURCES: &[&str] = &[
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:dev/db-AbCdEf",
    "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/db-AbCdEf",
];

/// (operator, key, candidate policy values as JSON)
const CONDITIONS: &[(&str, &str, &[&str])] = &[
    (
        "StringEquals",
        "aws:PrincipalTag/team",
        &[r#""red""#, r#"["red","blue"]"#, r#""Red""#],
    ),
    (
        "StringNotEquals",
        "aws:PrincipalTag/team",
        &[r#""red""#, r#"["red","blue"]"#],
    ),
    (
        "StringEqualsIgnoreCase",
        "aws:PrincipalTag/team",
        &[r#""RED""#],
    ),
    (
        "StringNotEqualsIgnoreCase",
        "aws:PrincipalTag/team",
        &[r#""RED""#],
    ),
    (
        "StringLike",
        "aws:PrincipalTag/team",
        &[r#""r*""#, r#""?lue""#],
    ),
    ("StringNotLike", "aws:PrincipalTag/team", &[r#""r*""#]),
    (
        "StringEquals",
        "aws:username",
        &[r#""alice""#, r#""${aws:PrincipalTag/team}""#],
    ),
    ("NumericLessThan", "s3:max-keys", &[r#""10""#, "10"]),
    ("NumericGreaterThanEquals", "s3:max-keys", &[r#""10""#]),
    ("NumericEquals", "s3:max-keys", &[r#"["5","7"]"#]),
    ("NumericNotEquals", "s3:max-keys", &[r#""5""#]),
    ("Bool", "aws:SecureTransport", &[r#""true""#, "false"]),
    (
        "IpAddress",
        "aws:SourceIp",
        &[r#""10.0.0.0/8""#, r#"["192.168.0.0/16","2001:db8::/32"]"#],
    ),
    ("NotIpAddress", "aws:SourceIp", &[r#""10.0.0.0/8""#]),
    (
        "DateLessThan",
        "aws:CurrentTime",
        &[r#""2030-01-01T00:00:00Z""#],
    ),
    (
        "DateGreaterThan",
        "aws:CurrentTime",
        &[r#""2021-06-01T00:00:00Z""#],
    ),
    (
        "Null",
        "aws:PrincipalTag/team",
        &[r#""true""#, r#""false""#],
    ),
    (
        "ForAllValues:StringEquals",
        "aws:TagKeys",
        &[r#"["env","team"]"#],
    ),
    (
        "ForAnyValue:StringEquals",
        "aws:TagKeys",
        &[r#"["env","team"]"#],
    ),
    (
        "ForAllValues:StringNotEquals",
        "aws:TagKeys",
        &[r#""owner""#],
    ),
    ("ForAnyValue:StringLike", "aws:TagKeys", &[r#""o*""#]),
    ("StringNotEquals", "aws:TagKeys", &[r#"["env","owner"]"#]),
    ("StringEquals", "aws:TagKeys", &[r#""env""#]),
    (
        "ArnLike",
        "aws:SourceArn",
        &[
            r#""arn:aws:s*:*:*:x""#,
            r#""arn:aws:sns:*:111122223333:*""#,
            r#""*""#,
        ],
    ),
    (
        "ArnNotEquals",
        "aws:SourceArn",
        &[r#""arn:aws:sns:eu-west-1:111122223333:topic""#],
    ),
    (
        "StringEquals",
        "aws:username",
        &[r#""${aws:PrincipalTag/team, 'alice'}""#],
    ),
    (
        "DateEquals",
        "aws:CurrentTime",
        &[r#""1767225600""#, r#""2026-01-01""#],
    ),
    ("BinaryEquals", "aws:SecureTransport", &[r#""dHJ1ZQ==""#]),
];

fn generate_policy(rng: &mut Rng) -> String {
    let mut statements = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let effect = if rng.chance(70) { "Allow" } else { "Deny" };
        let action_key = if rng.chance(80) {
            "Action"
        } else {
            "NotAction"
        };
        let actions: Vec<String> = (0..1 + rng.below(2))
            .map(|_| format!("{:?}", rng.pick(ACTIONS)))
            .collect();
        let resource_key = if rng.chance(80) {
            "Resource"
        } else {
            "NotResource"
        };
        let resources: Vec<String> = (0..1 + rng.below(2))
            .map(|_| format!("{:?}", rng.pick(RESOURCES)))
            .collect();
        let mut conditions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for _ in 0..rng.below(3) {
            let (op, key, values) = rng.pick(CONDITIONS);
            let op = if !op.starts_with("Null") && rng.chance(20) {
                format!("{op}IfExists")
            } else {
                (*op).to_string()
            };
            conditions
                .entry(op)
                .or_default()
                .push(format!("{key:?}:{}", rng.pick(values)));
        }
        let mut s = format!(
            r#"{{"Effect":"{effect}","{action_key}":[{}],"{resource_key}":[{}]"#,
            actions.join(","),
            resources.join(",")
        );
        if !conditions.is_empty() {
            let ops: Vec<String> = conditions
                .iter()
                .map(|(op, kv)| {
                    // One key per operator (a repeated key would be a duplicate JSON key).
                    let mut seen = std::collections::BTreeSet::new();
                    let kv: Vec<&String> = kv
                        .iter()
                        .filter(|k| seen.insert(k.split(':').take(2).collect::<Vec<_>>().join(":")))
                        .collect();
                    format!(
                        "{op:?}:{{{}}}",
                        kv.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                    )
                })
                .collect();
            s.push_str(&format!(r#","Condition":{{{}}}"#, ops.join(",")));
        }
        s.push('}');
        statements.push(s);
    }
    // Without a Version, `${…}` is literal text (reference_policies_elements_version.html).
    let version = if rng.chance(85) {
        r#""Version":"2012-10-17","#
    } else {
        ""
    };
    format!(r#"{{{version}"Statement":[{}]}}"#, statements.join(","))
}

/// One request context key: (key, values, iam-rs typed value).
struct Key {
    name: &'static str,
    values: Vec<&'static str>,
    typed: ContextValue,
}

fn generate_keys(rng: &mut Rng) -> Vec<Key> {
    let mut keys = Vec::new();
    let s = |v: &'static str| ContextValue::String(v.to_string());
    if rng.chance(70) {
        let v = *rng.pick(&["alice", "bob"]);
        keys.push(Key {
            name: "aws:username",
            values: vec![v],
            typed: s(v),
        });
    }
    if rng.chance(60) {
        let v = *rng.pick(&["red", "blue", "Red"]);
        keys.push(Key {
            name: "aws:PrincipalTag/team",
            values: vec![v],
            typed: s(v),
        });
    }
    if rng.chance(60) {
        let v = *rng.pick(&["5", "10", "50"]);
        keys.push(Key {
            name: "s3:max-keys",
            values: vec![v],
            typed: ContextValue::Number(v.parse().unwrap()),
        });
    }
    if rng.chance(60) {
        let v = *rng.pick(&["true", "false"]);
        keys.push(Key {
            name: "aws:SecureTransport",
            values: vec![v],
            typed: ContextValue::Boolean(v == "true"),
        });
    }
    if rng.chance(60) {
        let v = *rng.pick(&["10.1.2.3", "192.168.0.1", "2001:db8::1", "172.16.0.1"]);
        keys.push(Key {
            name: "aws:SourceIp",
            values: vec![v],
            typed: s(v),
        });
    }
    if rng.chance(60) {
        let v = *rng.pick(&[
            "2020-01-01T00:00:00Z",
            "2026-01-01T00:00:00Z",
            "2035-01-01T00:00:00Z",
            "1767225600",
        ]);
        keys.push(Key {
            name: "aws:CurrentTime",
            values: vec![v],
            typed: s(v),
        });
    }
    if rng.chance(50) {
        let v = *rng.pick(&[
            "arn:aws:s3:::b:x",
            "arn:aws:sns:eu-west-1:111122223333:topic",
            "arn:aws:sqs:eu-west-1:111122223333:q",
        ]);
        keys.push(Key {
            name: "aws:SourceArn",
            values: vec![v],
            typed: s(v),
        });
    }
    if rng.chance(60) {
        let v: Vec<&'static str> = rng
            .pick(&[
                &["env"][..],
                &["env", "owner"],
                &["team", "env"],
                &["owner"],
            ])
            .to_vec();
        let typed = ContextValue::StringList(v.iter().map(|x| x.to_string()).collect());
        keys.push(Key {
            name: "aws:TagKeys",
            values: v,
            typed,
        });
    }
    keys
}

fn ours(policy: &str, action: &str, resource: &str, keys: &[Key]) -> Decision {
    let policy = Arc::new(Policy::parse(policy, PolicyKind::Identity).unwrap());
    let mut request = RequestContext::new(
        "arn:aws:iam::111122223333:user/alice",
        ACCOUNT,
        action,
        resource,
        ACCOUNT,
    );
    for k in keys {
        request.set_key(k.name, k.values.iter().copied());
    }
    let identity = [policy];
    evaluate(&EvaluationInput {
        request: &request,
        identity_policies: &identity,
        resource_policy: None,
        session_policies: None,
    })
    .decision
}

fn theirs(policy: &str, action: &str, resource: &str, keys: &[Key]) -> Option<Decision> {
    let policy = IAMPolicy::from_json(policy).ok()?;
    let mut context = Context::new();
    for k in keys {
        context.insert(k.name.to_string(), k.typed.clone());
    }
    let request = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(
            "arn:aws:iam::111122223333:user/alice".into(),
        )),
        action,
        Arn::parse(resource).ok()?,
        context,
    );
    Some(match iam_rs::evaluate_policy(&policy, &request).ok()? {
        iam_rs::Decision::Allow => Decision::Allow,
        iam_rs::Decision::Deny => Decision::ExplicitDeny,
        iam_rs::Decision::NotApplicable => Decision::ImplicitDeny,
    })
}

/// Which known classes explain a disagreement, or `None`. Each class's trigger is removed
/// from the case in turn (rewriting it to what iam-rs's reading would need); a class is only
/// claimed when, with the triggers removed so far, the two engines come to agree.
fn classify(policy: &str, action: &str, resource: &str, keys: &[Key]) -> Option<String> {
    let agree = |p: &str, ks: &[Key]| {
        theirs(p, action, resource, ks) == Some(ours(p, action, resource, ks))
    };
    let mut policy = policy.to_string();
    let mut keys: Vec<Key> = keys
        .iter()
        .map(|k| Key {
            name: k.name,
            values: k.values.clone(),
            typed: k.typed.clone(),
        })
        .collect();
    let mut classes = Vec::new();

    // Class 1: a negated operator without a set qualifier on a multivalued key.
    // coffer: the negated operator is the negation of its positive form, so
    // `StringNotEquals` holds only when *no* request value equals a policy value (and a missing
    // key gives true, as documented: reference_policies_elements_condition_operators.html,
    // "If the policy condition requires that the key is not matched … and the right key is not
    // present, the condition is true", which is what negating the positive result gives).
    // iam-rs holds the condition as soon as one request value differs. AWS says not to use
    // operators without a set qualifier on multivalued keys at all
    // (reference_policies_condition-single-vs-multi-valued-context-keys.html); coffer's reading
    // is the one consistent with the documented missing-key rule. Verdict: coffer.
    let negated_plain_on_tagkeys =
        ["StringNotEquals", "StringNotEqualsIfExists"]
            .iter()
            .any(|op| {
                policy
                    .match_indices(&format!("\"{op}\":{{"))
                    .any(|(at, m)| {
                        let body = &policy[at + m.len()..];
                        body[..body.find('}').unwrap_or(body.len())].contains("\"aws:TagKeys\"")
                    })
            });
    if negated_plain_on_tagkeys {
        for k in keys.iter_mut() {
            if k.name == "aws:TagKeys" && k.values.len() > 1 {
                k.values.truncate(1);
                k.typed = ContextValue::StringList(vec![k.values[0].to_string()]);
                classes.push("negated operator without set qualifier on a multivalued key");
            }
        }
    }

    // Class 2: a policy variable with a default value in a condition value.
    // reference_policies_variables.html ("Specifying default values"): `${key, 'default'}` takes
    // the default when the key has no value. coffer resolves it; iam-rs 0.8.0 does not apply
    // the default inside condition values. Verdict: coffer.
    if policy.contains(", 'alice'}") && !keys.iter().any(|k| k.name == "aws:PrincipalTag/team") {
        policy = policy.replace("${aws:PrincipalTag/team, 'alice'}", "alice");
        classes.push("variable default value in a condition");
    }

    // Class 3: ARN operators across a colon. reference_policies_elements_condition_operators.html
    // ("ARN condition operators"): "Each of the six colon-delimited components of the ARN is
    // checked separately", so `arn:aws:s*:*:*:x` cannot match `arn:aws:s3:::b:x` (its sixth
    // component is `b:x`). iam-rs matches the whole string with one glob. Verdict: coffer.
    if policy.contains("arn:aws:s*:*:*:x") && keys.iter().any(|k| k.values == ["arn:aws:s3:::b:x"])
    {
        policy = policy.replace("arn:aws:s*:*:*:x", "arn:aws:s3:*:*:b:x");
        classes.push("ARN operator wildcard across a colon");
    }

    // Class 4: a date-only ISO 8601 policy value (`2026-01-01`). The Date operators take "one of
    // the W3C implementations of the ISO 8601 date formats" (…condition_operators.html, "Date
    // condition operators"); the W3C profile includes `YYYY-MM-DD`, which coffer reads as
    // midnight UTC. iam-rs does not equate it with `2026-01-01T00:00:00Z`. Verdict: coffer.
    if policy.contains("\"2026-01-01\"") {
        policy = policy.replace("\"2026-01-01\"", "\"2026-01-01T00:00:00Z\"");
        classes.push("date-only ISO 8601 value");
    }

    (!classes.is_empty() && agree(&policy, &keys)).then(|| {
        classes.dedup();
        classes.join(" + ")
    })
}

#[test]
fn agrees_with_iam_rs_on_generated_policies() {
    let mut rng = Rng::new(0xC0FFEE);
    let mut compared = 0;
    let mut skipped = 0;
    let mut by_class: BTreeMap<String, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for _ in 0..4_000 {
        let policy = generate_policy(&mut rng);
        for _ in 0..4 {
            let action = *rng.pick(REQUEST_ACTIONS);
            let resource = *rng.pick(REQUEST_RESOURCES);
            let keys = generate_keys(&mut rng);
            let Some(theirs) = theirs(&policy, action, resource, &keys) else {
                skipped += 1;
                continue;
            };
            compared += 1;
            let ours = ours(&policy, action, resource, &keys);
            if ours != theirs {
                match classify(&policy, action, resource, &keys) {
                    Some(class) => *by_class.entry(class).or_default() += 1,
                    None => {
                        if unexplained.len() < 8 {
                            let ks: Vec<String> = keys
                                .iter()
                                .map(|k| format!("{}={:?}", k.name, k.values))
                                .collect();
                            unexplained.push(format!(
                                "ours {ours:?} iam-rs {theirs:?}\n  {action} on {resource}\n  keys {}\n  {policy}",
                                ks.join(" ")
                            ));
                        }
                        *by_class.entry("unexplained".to_string()).or_default() += 1;
                    }
                }
            }
        }
    }
    println!("compared {compared}, iam-rs refused {skipped}, disagreements {by_class:?}");
    assert!(compared > 10_000, "too few comparisons: {compared}");
    assert!(
        unexplained.is_empty(),
        "unexplained disagreements:\n{}",
        unexplained.join("\n\n")
    );
}
