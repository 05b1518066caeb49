//! Authorization of every operation: the caller, the action (`service:Operation`) and the
//! resource ARN, decided before an operation reads or changes data.
//!
//! The account's root user is allowed everything in its own account, as in AWS. IAM users
//! are allowed only what their policies allow; until the policy engine is wired in, no policy
//! can allow anything, so an IAM user is denied every action (deny by default, never the
//! other way round). Denials carry AWS's message shape.

use coffer_store::Store;

use crate::{Caller, Coffer, CoreError, PrincipalType};

impl Caller {
    /// The IAM user name of an IAM user caller (the last segment of its ARN).
    #[must_use]
    pub fn user_name(&self) -> Option<&str> {
        match self.principal_type {
            PrincipalType::IamUser => self.principal_arn.rsplit('/').next(),
            PrincipalType::Root => None,
        }
    }
}

/// AWS's denial message when no identity-based policy allows the action (IAM user guide,
/// "Troubleshoot access denied error messages").
pub(crate) fn no_identity_policy_allows(
    caller: &Caller,
    action: &str,
    resource: &str,
) -> CoreError {
    CoreError::AccessDenied(format!(
        "User: {} is not authorized to perform: {action} on resource: {resource} because no identity-based policy allows the {action} action",
        caller.principal_arn
    ))
}

impl<S: Store> Coffer<S> {
    /// Allows or denies `action` on `resource` for `caller`.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Result<(), CoreError> {
        match caller.principal_type {
            PrincipalType::Root => Ok(()),
            PrincipalType::IamUser => Err(no_identity_policy_allows(caller, action, resource)),
        }
    }
}
