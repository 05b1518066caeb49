//! Decision-time micro-benchmark (ignored by default). Run:
//! `cargo test --release -p coffer-policy --test bench -- --ignored --nocapture`
//! A typical decision: three identity-based policies of a few statements with conditions, and
//! a resource-based policy; target well under 5 µs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use coffer_policy::{Decision, EvaluationInput, Policy, PolicyKind, RequestContext, evaluate};

const IDENTITY: &[&str] = &[
    r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"ReadOwn","Effect":"Allow","Action":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],
         "Resource":"arn:aws:secretsmanager:*:111122223333:secret:${aws:username}/*"},
        {"Sid":"ReadTeam","Effect":"Allow","Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:*:111122223333:secret:team/*",
         "Condition":{"StringEquals":{"aws:PrincipalTag/team":"payments"}}},
        {"Sid":"List","Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"}]}"#,
    r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Network","Effect":"Deny","Action":"secretsmanager:*","Resource":"*",
         "Condition":{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]},"Bool":{"aws:ViaAWSService":"false"}}},
        {"Sid":"Mfa","Effect":"Deny","Action":"secretsmanager:DeleteSecret","Resource":"*",
         "Condition":{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}}]}"#,
    r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Prod","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/*",
         "Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}},
        {"Sid":"NoAdmin","Effect":"Deny","NotAction":["secretsmanager:Get*","secretsmanager:Describe*","secretsmanager:List*"],"Resource":"*"}]}"#,
];

const RESOURCE: &str = r#"{"Version":"2012-10-17","Statement":[
    {"Sid":"Team","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:role/payments","111122223333"]},"Action":"secretsmanager:GetSecretValue","Resource":"*"},
    {"Sid":"NoOutside","Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*",
     "Condition":{"StringNotEquals":{"aws:PrincipalAccount":"111122223333"}}}]}"#;

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn decision_time() {
    let identity: Vec<Arc<Policy>> = IDENTITY
        .iter()
        .map(|t| Arc::new(Policy::parse(t, PolicyKind::Identity).unwrap()))
        .collect();
    let resource = Policy::parse(RESOURCE, PolicyKind::Resource).unwrap();
    let request = RequestContext::new(
        "arn:aws:iam::111122223333:user/alice",
        "111122223333",
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf",
        "111122223333",
    )
    .with_key("aws:username", ["alice"])
    .with_key("aws:PrincipalTag/team", ["payments"])
    .with_key("aws:PrincipalAccount", ["111122223333"])
    .with_key("aws:SourceIp", ["10.1.2.3"])
    .with_key("aws:ViaAWSService", ["false"])
    .with_key("aws:MultiFactorAuthPresent", ["true"])
    .with_key("aws:CurrentTime", ["2026-06-01T12:00:00Z"])
    .with_key("aws:TagKeys", ["env"]);
    let input = EvaluationInput {
        request: &request,
        identity_policies: &identity,
        resource_policy: Some(&resource),
        session_policies: None,
    };
    assert_eq!(evaluate(&input).decision, Decision::Allow);

    let iterations = 1_000_000u32;
    for _ in 0..10_000 {
        black_box(evaluate(black_box(&input)));
    }
    let start = Instant::now();
    for _ in 0..iterations {
        black_box(evaluate(black_box(&input)));
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
    println!("coffer-policy: {ns:.0} ns/decision ({iterations} decisions)");
    assert!(ns < 5_000.0, "{ns} ns per decision");
}
