//! Malformed documents → IAM's error code and message, one table. Where each message was seen
//! is recorded in `src/error.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use PolicyKind::{Identity, Resource, Trust};
use coffer_policy::{
    ErrorCode, MANAGED_POLICY_MAX, Policy, PolicyKind, SizeQuota, USER_INLINE_POLICY_MAX,
    check_size,
};

const SYNTAX: &str = "Syntax errors in policy.";

static MALFORMED: &[(&str, PolicyKind, &str, &str)] = &[
    ("not json", Identity, "{", SYNTAX),
    (
        "trailing comma",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},]}"#,
        SYNTAX,
    ),
    ("top level array", Identity, r#"[]"#, SYNTAX),
    ("null document", Identity, "null", SYNTAX),
    (
        "unknown top-level field",
        Identity,
        r#"{"Version":"2012-10-17","Statment":[],"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "unknown Version",
        Identity,
        r#"{"Version":"2019-10-19","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "Version not a string",
        Identity,
        r#"{"Version":2012,"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "no Statement",
        Identity,
        r#"{"Version":"2012-10-17"}"#,
        SYNTAX,
    ),
    (
        "empty Statement",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[]}"#,
        SYNTAX,
    ),
    (
        "Statement a string",
        Identity,
        r#"{"Version":"2012-10-17","Statement":"x"}"#,
        SYNTAX,
    ),
    (
        "unknown statement field",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Reason":"x"}}"#,
        SYNTAX,
    ),
    (
        "missing Effect",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Action":"s3:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "lower-case effect",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"allow","Action":"s3:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "Action and NotAction",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","NotAction":"iam:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "Action an object",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":{"Ref":"x"},"Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "missing Action",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Resource":"*"}}"#,
        "Policy statement must contain actions.",
    ),
    (
        "empty Action",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#,
        "Policy statement must contain actions.",
    ),
    (
        "missing Resource",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*"}}"#,
        "Policy statement must contain resources.",
    ),
    (
        "empty Resource",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":[]}}"#,
        "Policy statement must contain resources.",
    ),
    (
        "action without vendor",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"GetObject","Resource":"*"}}"#,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    ),
    (
        "action with two colons",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:Get:Object","Resource":"*"}}"#,
        "Actions/Condition can contain only one colon.",
    ),
    (
        "wildcard vendor",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*:Untag*","Resource":"*"}}"#,
        "Action vendors (e.g., aws, ec2, etc.) must not contain wildcards",
    ),
    (
        "condition key without vendor",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"username":"a"}}}}"#,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    ),
    (
        "resource not an ARN",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"my-bucket/*"}}"#,
        "Resource my-bucket/* must be in ARN format or \"*\".",
    ),
    (
        "unknown condition operator",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringSimilar":{"aws:username":"a"}}}}"#,
        SYNTAX,
    ),
    (
        "NullIfExists is not an operator",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NullIfExists":{"aws:username":"true"}}}}"#,
        SYNTAX,
    ),
    (
        "numeric condition with text",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}}"#,
        SYNTAX,
    ),
    (
        "date condition with text",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}}"#,
        SYNTAX,
    ),
    (
        "bad CIDR",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/33"}}}}"#,
        SYNTAX,
    ),
    (
        "condition value an object",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"aws:username":{"a":1}}}}}"#,
        SYNTAX,
    ),
    (
        "duplicate Sid",
        Identity,
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
        "Statement IDs (SID) in a single policy must be unique.",
    ),
    (
        "Sid with a dash in IAM",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Sid":"auto-id","Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
    ),
    (
        "Principal in an identity policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}}"#,
        "Policy document should not specify a principal.",
    ),
    (
        "NotPrincipal in an identity policy",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:*","Resource":"*"}}"#,
        "Policy document should not specify a principal.",
    ),
    (
        "no Principal in a resource policy",
        Resource,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}"#,
        "Missing required field Principal",
    ),
    (
        "no Principal in a trust policy",
        Trust,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#,
        "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: The passed in policy has a statement with no principals!",
    ),
    (
        "partial wildcard principal",
        Resource,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"secretsmanager:*","Resource":"*"}}"#,
        "Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:user/*\"",
    ),
    (
        "principal name not an ARN",
        Trust,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"sts:AssumeRole"}}"#,
        "Invalid principal in policy: \"AWS\":\"alice\"",
    ),
    (
        "Principal and NotPrincipal",
        Resource,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":"*","NotPrincipal":{"AWS":"111122223333"},"Action":"secretsmanager:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "NotPrincipal with Allow",
        Resource,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"secretsmanager:*","Resource":"*"}}"#,
        SYNTAX,
    ),
    (
        "NotPrincipal in a trust policy",
        Trust,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}"#,
        SYNTAX,
    ),
];

#[test]
fn malformed_documents() {
    let mut failures = Vec::new();
    for (name, kind, text, message) in MALFORMED {
        match Policy::parse(text, *kind) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                if e.code() != "MalformedPolicyDocument"
                    || e.kind() != ErrorCode::MalformedPolicyDocument
                {
                    failures.push(format!("{name}: code {}", e.code()));
                }
                if e.message() != *message {
                    failures.push(format!("{name}: message {:?}", e.message()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

static VALID: &[(&str, PolicyKind, &str)] = &[
    (
        "statement as an object, no Version",
        Identity,
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#,
    ),
    (
        "2008 version",
        Identity,
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    ),
    (
        "Id and Sids",
        Identity,
        r#"{"Version":"2012-10-17","Id":"p1","Statement":[{"Sid":"A1","Effect":"Allow","Action":["s3:Get*","s3:List*"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]},{"Sid":"","Effect":"Deny","NotAction":"s3:*","NotResource":"*"},{"Sid":"","Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#,
    ),
    (
        "every operator family",
        Identity,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{
        "StringEquals":{"aws:username":"a"},"StringNotEqualsIfExists":{"aws:PrincipalTag/x":["a","b"]},
        "StringEqualsIgnoreCase":{"a:b":"x"},"StringNotEqualsIgnoreCase":{"a:c":"x"},"StringLike":{"a:d":"x*"},"StringNotLike":{"a:e":"?"},
        "NumericEquals":{"n:a":1},"NumericNotEquals":{"n:b":"2"},"NumericLessThan":{"n:c":3.5},"NumericLessThanEquals":{"n:d":4},"NumericGreaterThan":{"n:e":5},"NumericGreaterThanEquals":{"n:f":6},
        "DateEquals":{"d:a":"2020-01-01"},"DateNotEquals":{"d:b":"1700000000"},"DateLessThan":{"d:c":"2020-01-01T00:00:00Z"},"DateLessThanEquals":{"d:d":"2020-01-01T00:00:00+02:00"},"DateGreaterThan":{"d:e":"2020-01-01T00:00:00.5Z"},"DateGreaterThanEquals":{"d:f":0},
        "Bool":{"aws:SecureTransport":true},"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"},"BinaryEquals":{"b:a":"QmluYXJ5VmFsdWVJbkJhc2U2NA=="},
        "IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"NotIpAddress":{"aws:VpcSourceIp":"192.0.2.1"},
        "ArnEquals":{"aws:SourceArn":"arn:aws:sns:*:111122223333:t"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"},"ArnNotEquals":{"x:a":"arn:aws:s3:::b"},"ArnNotLike":{"x:b":"arn:aws:s3:::b*"},
        "Null":{"aws:TokenIssueTime":"true"},"ForAllValues:StringLike":{"aws:TagKeys":"a*"},"ForAnyValue:StringEquals":{"aws:TagKeys":["a","b"]}}}}"#,
    ),
    (
        "resource policy principals",
        Resource,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"},{"Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:root","arn:aws:iam::111122223333:role/path/R","arn:aws:sts::111122223333:assumed-role/R/s"],"Service":"lambda.amazonaws.com"},"Action":"secretsmanager:*","Resource":"*"},{"Sid":"Deny others","Effect":"Deny","NotPrincipal":{"AWS":"111122223333"},"Action":"*","Resource":"*"}]}"#,
    ),
    (
        "trust policy without Resource",
        Trust,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com","Federated":"arn:aws:iam::111122223333:oidc-provider/example.com"},"Action":["sts:AssumeRole","sts:TagSession"]}}"#,
    ),
];

#[test]
fn valid_documents() {
    for (name, kind, text) in VALID {
        if let Err(e) = Policy::parse(text, *kind) {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn size_quotas() {
    let padding = |n: usize| {
        // A valid document of exactly n non-whitespace characters, padded with white space
        // that must not count.
        let base = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::"#;
        let tail = r#""}}"#;
        let fill = n - base.len() - tail.len();
        format!("{base}{}{tail}\n    \n", "a".repeat(fill))
    };
    let at_limit = padding(USER_INLINE_POLICY_MAX);
    assert!(Policy::parse(&at_limit, Identity).is_ok());
    assert_eq!(
        check_size(&at_limit, SizeQuota::UserInline("alice")),
        Ok(())
    );
    let over = padding(USER_INLINE_POLICY_MAX + 1);
    let err = check_size(&over, SizeQuota::UserInline("alice")).unwrap_err();
    assert_eq!(err.code(), "LimitExceeded");
    assert_eq!(
        err.message(),
        "Maximum policy size of 2048 bytes exceeded for user alice"
    );
    let err = check_size(&padding(10_241), SizeQuota::RoleInline("r")).unwrap_err();
    assert_eq!(
        err.message(),
        "Maximum policy size of 10240 bytes exceeded for role r"
    );
    let err = check_size(&padding(5_121), SizeQuota::GroupInline("g")).unwrap_err();
    assert_eq!(
        err.message(),
        "Maximum policy size of 5120 bytes exceeded for group g"
    );
    assert!(check_size(&padding(MANAGED_POLICY_MAX), SizeQuota::Managed).is_ok());
    let err = check_size(&padding(MANAGED_POLICY_MAX + 1), SizeQuota::Managed).unwrap_err();
    assert_eq!(err.message(), "Cannot exceed quota for PolicySize: 6144");
    assert!(check_size(&padding(20_480), SizeQuota::SecretResourcePolicy).is_ok());
    let err = check_size(&padding(20_481), SizeQuota::SecretResourcePolicy).unwrap_err();
    assert_eq!(err.message(), "Cannot exceed quota for PolicySize: 20480");
}
