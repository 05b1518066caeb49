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
