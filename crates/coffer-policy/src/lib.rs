//! The AWS IAM policy language, as pure functions: parse and validate a policy document the way
//! IAM does (with IAM's error codes and messages), and decide a request against identity-based,
//! resource-based and session policies the way AWS's "Policy evaluation logic" describes.
//!
//! This crate owns the policy grammar, the condition operators and the evaluation rules. It must
//! never do IO, read a clock (the request context carries `aws:CurrentTime` if a policy needs
//! it), hold global state, or know where policies are stored; `coffer-core` gathers the
//! policies that apply to a request and maps [`PolicyError`] and [`Evaluation`] onto AWS's wire
//! errors.
//!
//! ```
//! use std::sync::Arc;
//! use coffer_policy::{evaluate, Decision, EvaluationInput, Policy, PolicyKind, RequestContext};
//!
//! let policy = Policy::parse(
//!     r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
//!         "Action":"secretsmanager:GetSecretValue",
//!         "Resource":"arn:aws:secretsmanager:*:111122223333:secret:${aws:username}/*"}}"#,
//!     PolicyKind::Identity,
//! )?;
//! let request = RequestContext::new(
//!     "arn:aws:iam::111122223333:user/alice",
//!     "111122223333",
//!     "secretsmanager:GetSecretValue",
//!     "arn:aws:secretsmanager:eu-west-1:111122223333:secret:alice/db-AbCdEf",
//!     "111122223333",
//! )
//! .with_key("aws:username", ["alice"]);
//! let identity = [Arc::new(policy)];
//! let outcome = evaluate(&EvaluationInput {
//!     request: &request,
//!     identity_policies: &identity,
//!     resource_policy: None,
//!     session_policies: None,
//! });
//! assert_eq!(outcome.decision, Decision::Allow);
//! # Ok::<(), coffer_policy::PolicyError>(())
//! ```
//!
//! Every function returns an error for bad input; none panics.

#![forbid(unsafe_code)]

mod condition;
mod error;
mod evaluate;
mod pattern;
mod policy;
mod principal;
mod values;

pub use error::{ErrorCode, PolicyError};
pub use evaluate::{
    DecidedBy, Decision, Evaluation, EvaluationInput, MatchedStatement, PolicySource,
    RequestContext, evaluate,
};
pub use policy::{
    Effect, GROUP_INLINE_POLICY_MAX, MANAGED_POLICY_MAX, Policy, PolicyKind, PolicyVersion,
    ROLE_INLINE_POLICY_MAX, SECRET_RESOURCE_POLICY_MAX, SizeQuota, USER_INLINE_POLICY_MAX,
    check_size,
};
pub use values::parse_iso8601;
