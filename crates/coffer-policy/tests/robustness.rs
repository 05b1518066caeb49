//! Random and mangled input never panics: garbage JSON, valid JSON of the wrong shape, and
//! valid policies mutated byte by byte, parsed as every kind and (when they parse) evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use coffer_policy::{EvaluationInput, Policy, PolicyKind, RequestContext, evaluate};
use common::Rng;

const SEEDS: &[&str] = &[
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Action":["secretsmanager:Get*","s3:*"],"Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":["a*","${aws:PrincipalTag/x, 'y'}"]},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"DateLessThan":{"aws:CurrentTime":"2030-01-01"}}}]}"#,
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/R"]},"NotAction":"secretsmanager:Describe*","NotResource":"*","Condition":{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/${aws:username}"},"Null":{"x:y":true}}}}"#,
    r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*"}}"#,
];

const ALPHABET: &[u8] = b"{}[]\":,*?${}' \\aAzZ09-/.:truefalsnul\x00\xff";

fn request() -> RequestContext {
    RequestContext::new(
        "arn:aws:sts::111122223333:assumed-role/R/s",
        "111122223333",
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/x",
        "111122223333",
    )
    .with_key("aws:username", ["alice"])
    .with_key("aws:TagKeys", ["a", "b"])
    .with_key("aws:SourceIp", ["10.1.2.3"])
    .with_key("aws:CurrentTime", ["2026-01-01T00:00:00Z"])
    .with_key("aws:PrincipalArn", ["not an arn"])
}

fn try_everything(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for kind in [
        PolicyKind::Identity,
        PolicyKind::Resource,
        PolicyKind::Trust,
    ] {
        if let Ok(policy) = Policy::parse(&text, kind) {
            let policy = Arc::new(policy);
            let req = request();
            let identity = [policy.clone()];
            let _ = evaluate(&EvaluationInput {
                request: &req,
                identity_policies: &identity,
                resource_policy: Some(&policy),
                session_policies: Some(&identity),
            });
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| *rng.pick(ALPHABET)).collect();
        try_everything(&bytes);
    }
}

#[test]
fn mutated_policies_never_panic() {
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        let mut bytes = rng.pick(SEEDS).as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = *rng.pick(ALPHABET),
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, *rng.pick(ALPHABET)),
            }
        }
        try_everything(&bytes);
    }
}

#[test]
fn deep_and_odd_json_never_panics() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    try_everything(deep.as_bytes());
    for odd in [
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLike":{"a:b":"${"}}}}"#,
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:a:b:c:d:${}${,}${ , ''}${a, '}"}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateEquals":{"a:b":"99999999999999999999"}}}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericEquals":{"a:b":1e400}}}}"#,
        r#"{"Statement":{"Effect":"Allow","Action":"\u0000:é","Resource":"arn:é:é:é:é:é"}}"#,
    ] {
        try_everything(odd.as_bytes());
    }
}
