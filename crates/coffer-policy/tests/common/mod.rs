//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use coffer_policy::{
    DecidedBy, Decision, EvaluationInput, Policy, PolicyKind, RequestContext, evaluate,
};

pub const ACCOUNT: &str = "111122223333";
pub const OTHER_ACCOUNT: &str = "444455556666";
pub const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
pub const BOB: &str = "arn:aws:iam::111122223333:user/bob";
pub const CAROL_OTHER: &str = "arn:aws:iam::444455556666:user/carol";
pub const ADMIN_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/Admin/alice";
pub const SECRET: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-AbCdEf";
pub const DEV_SECRET: &str = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:dev/db-AbCdEf";

/// One evaluation case.
pub struct Case {
    pub name: &'static str,
    pub identity: &'static [&'static str],
    pub resource: Option<&'static str>,
    pub session: Option<&'static [&'static str]>,
    pub principal: &'static str,
    pub principal_account: &'static str,
    pub action: &'static str,
    pub target: &'static str,
    pub keys: &'static [(&'static str, &'static [&'static str])],
    pub expect: (Decision, DecidedBy),
}

/// Defaults for a case: alice, same account, GetSecretValue on the prod secret.
pub const BASE: Case = Case {
    name: "",
    identity: &[],
    resource: None,
    session: None,
    principal: ALICE,
    principal_account: ACCOUNT,
    action: "secretsmanager:GetSecretValue",
    target: SECRET,
    keys: &[],
    expect: (Decision::ImplicitDeny, DecidedBy::Identity),
};

pub fn parse(text: &str, kind: PolicyKind) -> Arc<Policy> {
    match Policy::parse(text, kind) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("policy does not parse: {e}\n{text}"),
    }
}

pub fn run(case: &Case) -> (Decision, DecidedBy) {
    let identity: Vec<Arc<Policy>> = case
        .identity
        .iter()
        .map(|t| parse(t, PolicyKind::Identity))
        .collect();
    let session: Option<Vec<Arc<Policy>>> = case
        .session
        .map(|s| s.iter().map(|t| parse(t, PolicyKind::Identity)).collect());
    let resource = case.resource.map(|t| parse(t, PolicyKind::Resource));
    let mut request = RequestContext::new(
        case.principal,
        case.principal_account,
        case.action,
        case.target,
        ACCOUNT,
    );
    for (key, values) in case.keys {
        request.set_key(key, values.iter().copied());
    }
    let outcome = evaluate(&EvaluationInput {
        request: &request,
        identity_policies: &identity,
        resource_policy: resource.as_deref(),
        session_policies: session.as_deref(),
    });
    (outcome.decision, outcome.decided_by)
}

/// A tiny deterministic PRNG (SplitMix64) for generated tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
