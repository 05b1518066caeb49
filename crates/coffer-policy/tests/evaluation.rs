//! Decisions from documented AWS behaviour, one table. Each case names the AWS IAM User Guide
//! page (under https://docs.aws.amazon.com/IAM/latest/UserGuide/) whose rule it checks; the
//! policies are written here for coffer, not copied.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use coffer_policy::{
    DecidedBy, Decision, Effect, EvaluationInput, Policy, PolicyKind, PolicySource, RequestContext,
    evaluate,
};
use common::*;

use Decision::{Allow, ExplicitDeny, ImplicitDeny};

const ALLOW_GET: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#;
const DENY_GET: &str = r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#;

static CASES: &[Case] = &[
    // --- reference_policies_evaluation-logic.html: deny by default, allow, explicit deny wins.
    Case {
        name: "no policy at all is an implicit deny",
        expect: (ImplicitDeny, DecidedBy::None),
        ..BASE
    },
    Case {
        name: "identity allow",
        identity: &[ALLOW_GET],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "other action is implicitly denied",
        identity: &[ALLOW_GET],
        action: "secretsmanager:DeleteSecret",
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "explicit deny overrides allow in another policy",
        identity: &[ALLOW_GET, DENY_GET],
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_action.html: action names are case-insensitive.
    Case {
        name: "action match ignores case",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"SecretsManager:getsecretVALUE","Resource":"*"}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "action wildcard",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "action ? wildcard is one character",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:GetSecretValu?","Resource":"*"}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_resource.html: resource ARNs are case-sensitive.
    Case {
        name: "resource wildcard",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:111122223333:secret:prod/*"}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "resource match is case-sensitive",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:111122223333:secret:PROD/*"}}"#,
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_notaction.html
    Case {
        name: "NotAction with Allow allows everything else",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NotAction with Allow does not allow the listed action",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
        ],
        action: "iam:CreateUser",
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NotAction with Deny denies everything else",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"secretsmanager:Get*","Resource":"*"}]}"#,
        ],
        action: "secretsmanager:DeleteSecret",
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NotAction with Deny leaves the listed action to the allow",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","NotAction":"secretsmanager:Get*","Resource":"*"}]}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_notresource.html
    Case {
        name: "NotResource excludes the listed resource",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}}"#,
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NotResource covers the others",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}}"#,
        ],
        target: DEV_SECRET,
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_condition_operators.html: missing keys.
    Case {
        name: "StringEquals on a missing key is false",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"red"}}}}"#,
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringNotEquals on a missing key is true",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"red"}}}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringNotEquals with several values is a NOR",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":["red","blue"]}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["blue"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringEquals with several values is an OR",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":["red","blue"]}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["blue"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringEquals is case-sensitive in values",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"Red"}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["red"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringEqualsIgnoreCase",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"Red"}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["rED"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "condition key names are case-insensitive",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"AWS:PRINCIPALTAG/TEAM":"red"}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["red"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringLike wildcard",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringLike":{"secretsmanager:SecretId":"prod/*"}}}}"#,
        ],
        keys: &[("secretsmanager:SecretId", &["prod/db"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "StringEquals takes * literally",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"secretsmanager:SecretId":"prod/*"}}}}"#,
        ],
        keys: &[("secretsmanager:SecretId", &["prod/db"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // …IfExists
    Case {
        name: "IfExists on a missing key is true",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"red"}}}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "IfExists on a present key tests it",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"red"}}}}"#,
        ],
        keys: &[("aws:PrincipalTag/team", &["blue"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_condition-single-vs-multi-valued-context-keys.html
    Case {
        name: "ForAllValues: every request value is in the policy set",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        keys: &[("aws:TagKeys", &["env"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAllValues: one value outside the set fails",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        keys: &[("aws:TagKeys", &["env", "owner"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAllValues: a missing key is true",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAllValues: an empty set is true",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        keys: &[("aws:TagKeys", &[])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAnyValue: one value in the set is enough",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        keys: &[("aws:TagKeys", &["owner", "env"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAnyValue: a missing key is false",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ForAnyValue: an empty set is false",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["env","team"]}}}}"#,
        ],
        keys: &[("aws:TagKeys", &[])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // reference_policies_condition_examples-multi-valued-context-keys.html: a Deny with
    // ForAllValues:StringNotLike matches when the key is missing or has a value outside key1*.
    Case {
        name: "Deny ForAllValues:StringNotLike, missing key: denied",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}}"#,
        ],
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny ForAllValues:StringNotLike, key1 values: not denied",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}}"#,
        ],
        keys: &[("aws:TagKeys", &["key1:hr", "key1:personnel"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny ForAllValues:StringNotLike, key2 value: denied",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"ForAllValues:StringNotLike":{"aws:TagKeys":"key1*"}}}}"#,
        ],
        keys: &[("aws:TagKeys", &["key2:audit"])],
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_variables.html
    Case {
        name: "${aws:username} in a resource",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/db-AbCdEf",
        keys: &[("aws:username", &["alice"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "${aws:username} does not reach another user's secret",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:bob/db-AbCdEf",
        keys: &[("aws:username", &["alice"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "a variable with no value matches nothing",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/db-AbCdEf",
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "variable default value",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team, 'shared'}/*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:shared/db-AbCdEf",
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "variable in a condition value",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}}}"#,
        ],
        keys: &[
            ("aws:username", &["alice"]),
            ("aws:ResourceTag/owner", &["alice"]),
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "a multivalued key is not a variable",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/owner":"${aws:TagKeys}"}}}}"#,
        ],
        keys: &[
            ("aws:TagKeys", &["a", "b"]),
            ("aws:ResourceTag/owner", &["a"]),
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // reference_policies_elements_version.html: without 2012-10-17 a variable is literal text.
    Case {
        name: "no Version: ${aws:username} is literal",
        identity: &[
            r#"{"Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/db-AbCdEf",
        keys: &[("aws:username", &["alice"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "no Version: the literal text matches itself",
        identity: &[
            r#"{"Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
        ],
        target: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:${aws:username}/x",
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // Null
    Case {
        name: "Null true: key absent",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"true"}}}}"#,
        ],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Null true: key present",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":"true"}}}}"#,
        ],
        keys: &[("aws:TokenIssueTime", &["2026-01-01T00:00:00Z"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Null false (JSON bool): key present",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Null":{"aws:TokenIssueTime":false}}}}"#,
        ],
        keys: &[("aws:TokenIssueTime", &["2026-01-01T00:00:00Z"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // IpAddress / NotIpAddress
    Case {
        name: "IpAddress v4 inside",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["203.0.113.9"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "IpAddress v4 outside",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["198.51.100.1"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "IpAddress v6 inside",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["2001:db8:1234:5678:abcd::1"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "IpAddress v6 outside",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["2001:db8:1234:5679::1"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny NotIpAddress from outside",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["198.51.100.1"])],
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny NotIpAddress from inside",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}}"#,
        ],
        keys: &[("aws:SourceIp", &["203.0.113.1"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // Date
    Case {
        name: "DateLessThan before",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}}"#,
        ],
        keys: &[("aws:CurrentTime", &["2026-06-01T12:00:00Z"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "DateLessThan after",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}}"#,
        ],
        keys: &[("aws:CurrentTime", &["2030-01-01T00:00:01Z"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "DateGreaterThan with epoch seconds in the policy",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateGreaterThan":{"aws:EpochTime":"1700000000"}}}}"#,
        ],
        keys: &[("aws:EpochTime", &["1700000001"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Date compares ISO and epoch",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"DateEquals":{"aws:CurrentTime":"2023-11-14T22:13:20Z"}}}}"#,
        ],
        keys: &[("aws:CurrentTime", &["1700000000"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // Bool: "true" as a string or JSON bool; reference_policies_condition-keys.html
    // (aws:MultiFactorAuthPresent) shows BoolIfExists false in a Deny.
    Case {
        name: "Bool string true",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}}"#,
        ],
        keys: &[("aws:MultiFactorAuthPresent", &["true"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Bool JSON true vs false",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":true}}}}"#,
        ],
        keys: &[("aws:MultiFactorAuthPresent", &["false"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Bool on a missing key is false",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:MultiFactorAuthPresent":"true"}}}}"#,
        ],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny BoolIfExists false: no MFA key, denied",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}}"#,
        ],
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Deny BoolIfExists false: MFA true, allowed",
        identity: &[
            ALLOW_GET,
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}}"#,
        ],
        keys: &[("aws:MultiFactorAuthPresent", &["true"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // Numeric
    Case {
        name: "NumericLessThan",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":3600}}}}"#,
        ],
        keys: &[("aws:MultiFactorAuthAge", &["120"])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NumericLessThan fails",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}}}"#,
        ],
        keys: &[("aws:MultiFactorAuthAge", &["3600"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // ARN operators: component-wise wildcards, case-sensitive.
    Case {
        name: "ArnLike",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}}}"#,
        ],
        keys: &[("aws:PrincipalArn", &[ALICE])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ArnNotEquals on another user",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/bob"}}}}"#,
        ],
        keys: &[("aws:PrincipalArn", &[ALICE])],
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "ArnLike wildcard stays inside its component",
        identity: &[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s*:*:*:x"}}}}"#,
        ],
        keys: &[("aws:SourceArn", &["arn:aws:s3:::b:x"])],
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- Resource-based policies (reference_policies_evaluation-logic.html, same account).
    Case {
        name: "same account: resource policy naming the user suffices",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        expect: (Allow, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "same account: resource policy naming another user does not",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // reference_policies_elements_principal.html, "AWS account principals": the account
    // delegates; identities still need identity-based permission.
    Case {
        name: "same account: resource policy naming the account delegates",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "same account: account delegation plus identity allow",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "Principal * grants everyone",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        expect: (Allow, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "resource policy deny overrides identity allow",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":"secretsmanager:*","Resource":"*"}}"#,
        ),
        expect: (ExplicitDeny, DecidedBy::Resource),
        ..BASE
    },
    // --- reference_policies_evaluation-logic-cross-account.html: both sides must allow.
    Case {
        name: "cross-account: identity allow alone",
        identity: &[ALLOW_GET],
        principal: CAROL_OTHER,
        principal_account: OTHER_ACCOUNT,
        expect: (ImplicitDeny, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "cross-account: resource allow alone",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:user/carol"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: CAROL_OTHER,
        principal_account: OTHER_ACCOUNT,
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "cross-account: both allow (account principal)",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: CAROL_OTHER,
        principal_account: OTHER_ACCOUNT,
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "cross-account: resource names a different account",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"999988887777"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: CAROL_OTHER,
        principal_account: OTHER_ACCOUNT,
        expect: (ImplicitDeny, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "cross-account: identity deny wins",
        identity: &[ALLOW_GET, DENY_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: CAROL_OTHER,
        principal_account: OTHER_ACCOUNT,
        expect: (ExplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_principal.html, role and role-session principals.
    Case {
        name: "a role ARN principal grants its sessions",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Admin"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: ADMIN_SESSION,
        expect: (Allow, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "another role's ARN does not",
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Reader"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: ADMIN_SESSION,
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    // --- reference_policies_elements_notprincipal.html
    Case {
        name: "NotPrincipal Deny exempts a user listed with its account",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:root"]},"Action":"*","Resource":"*"}}"#,
        ),
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "NotPrincipal Deny denies the others",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::111122223333:root"]},"Action":"*","Resource":"*"}}"#,
        ),
        principal: BOB,
        expect: (ExplicitDeny, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "NotPrincipal without the account denies even the user",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"*","Resource":"*"}}"#,
        ),
        expect: (ExplicitDeny, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "NotPrincipal with role and account exempts the role's session",
        identity: &[ALLOW_GET],
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:role/Admin","111122223333"]},"Action":"*","Resource":"*"}}"#,
        ),
        principal: ADMIN_SESSION,
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    // --- access_policies.html#policies_session: session policies intersect the identity side.
    Case {
        name: "session: identity allow but no session allow",
        identity: &[ALLOW_GET],
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}"#,
        ]),
        principal: ADMIN_SESSION,
        expect: (ImplicitDeny, DecidedBy::Session),
        ..BASE
    },
    Case {
        name: "session: both allow",
        identity: &[ALLOW_GET],
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}"#,
        ]),
        principal: ADMIN_SESSION,
        expect: (Allow, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "session: session allow alone grants nothing",
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}"#,
        ]),
        principal: ADMIN_SESSION,
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
    Case {
        name: "session: deny in a session policy",
        identity: &[ALLOW_GET],
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
        ]),
        principal: ADMIN_SESSION,
        expect: (ExplicitDeny, DecidedBy::Session),
        ..BASE
    },
    Case {
        name: "session: resource policy naming the session ARN is not limited",
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}"#,
        ]),
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/Admin/alice"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: ADMIN_SESSION,
        expect: (Allow, DecidedBy::Resource),
        ..BASE
    },
    Case {
        name: "session: resource policy naming the role ARN is limited",
        session: Some(&[
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}}"#,
        ]),
        resource: Some(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/Admin"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        ),
        principal: ADMIN_SESSION,
        expect: (ImplicitDeny, DecidedBy::Identity),
        ..BASE
    },
];

#[test]
fn documented_decisions() {
    let mut failures = Vec::new();
    for case in CASES {
        let got = run(case);
        if got != case.expect {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn trust_policy_evaluated_as_the_role_resource_policy() {
    // id_roles_terms-and-concepts.html: the trust policy is the role's resource-based policy.
    let trust = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}}"#,
        PolicyKind::Trust,
    );
    let allow_assume = parse(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/*"}}"#,
        PolicyKind::Identity,
    );
    let request = RequestContext::new(
        CAROL_OTHER,
        OTHER_ACCOUNT,
        "sts:AssumeRole",
        "arn:aws:iam::111122223333:role/Deploy",
        ACCOUNT,
    );
    let identity = [allow_assume];
    let outcome = evaluate(&EvaluationInput {
        request: &request,
        identity_policies: &identity,
        resource_policy: Some(&trust),
        session_policies: None,
    });
    assert_eq!(outcome.decision, Allow);
}

#[test]
fn matched_statements_name_policy_and_sid() {
    let identity = [
        parse(
            r#"{"Version":"2012-10-17","Id":"reader","Statement":[{"Sid":"Other","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"Read","Effect":"Allow","Action":"secretsmanager:Get*","Resource":"*"}]}"#,
            PolicyKind::Identity,
        ),
        parse(DENY_GET, PolicyKind::Identity),
    ];
    let request = RequestContext::new(
        ALICE,
        ACCOUNT,
        "secretsmanager:GetSecretValue",
        SECRET,
        ACCOUNT,
    );
    let outcome = evaluate(&EvaluationInput {
        request: &request,
        identity_policies: &identity,
        resource_policy: None,
        session_policies: None,
    });
    assert_eq!(outcome.decision, ExplicitDeny);
    assert_eq!(outcome.matched.len(), 2);
    assert_eq!(outcome.matched[0].source, PolicySource::Identity(0));
    assert_eq!(outcome.matched[0].policy_id, Some("reader"));
    assert_eq!(outcome.matched[0].index, 1);
    assert_eq!(outcome.matched[0].sid, Some("Read"));
    assert_eq!(outcome.matched[0].effect, Effect::Allow);
    assert_eq!(outcome.matched[1].source, PolicySource::Identity(1));
    assert_eq!(outcome.matched[1].effect, Effect::Deny);
}

#[test]
fn policies_are_send_sync_and_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    assert_send_sync::<Arc<Policy>>();
    assert_send_sync::<RequestContext>();
}
