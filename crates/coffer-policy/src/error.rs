//! The one error type of this crate: a policy document IAM would refuse, with IAM's error code
//! and, where it could be found, IAM's own message.
//!
//! This module owns the texts of those messages and where each came from. It must never hold a
//! message that names a value from a request context (policy documents are not secret, request
//! contexts may be).

use std::fmt;

/// Why IAM refuses a policy document. The code names the AWS error shape; callers in
/// `coffer-protocol` map it onto the wire (IAM: `MalformedPolicyDocument` / `LimitExceeded`;
/// Secrets Manager: `MalformedPolicyDocumentException` / `LimitExceededException`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The document is not JSON, has the wrong shape, or breaks a rule of the policy grammar.
    MalformedPolicyDocument,
    /// The document is longer than the quota for where it is attached.
    LimitExceeded,
}

impl ErrorCode {
    /// The AWS error code, as IAM spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedPolicyDocument => "MalformedPolicyDocument",
            ErrorCode::LimitExceeded => "LimitExceeded",
        }
    }
}

/// A policy document that IAM would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct PolicyError {
    code: ErrorCode,
    message: String,
}

impl PolicyError {
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        PolicyError {
            code: ErrorCode::MalformedPolicyDocument,
            message: message.into(),
        }
    }

    pub(crate) fn limit_exceeded(message: impl Into<String>) -> Self {
        PolicyError {
            code: ErrorCode::LimitExceeded,
            message: message.into(),
        }
    }

    /// `"MalformedPolicyDocument"` or `"LimitExceeded"`.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The kind of error, for matching.
    pub fn kind(&self) -> ErrorCode {
        self.code
    }

    /// The message for the AWS error body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// IAM's messages. Each names where it was observed; "unverified" means no AWS response with
/// this text was found and the wording is ours.
pub(crate) mod msg {
    /// Not JSON, wrong JSON types, unknown elements, bad `Version`/`Effect`. Observed from
    /// `CreatePolicy`/`PutRolePolicy` for trailing commas and wrong shapes (boto/boto3#180,
    /// aws-cloudformation/cfn-lint#2021, 99designs/iamy#74).
    pub const SYNTAX: &str = "Syntax errors in policy.";
    /// `Principal`/`NotPrincipal` in an identity-based policy, as answered by `PutRolePolicy`
    /// and `PutGroupPolicy` (hashicorp/terraform#13449, hashicorp/terraform-provider-aws#10419).
    /// The console words the same refusal "Has prohibited field Principal"
    /// (https://repost.aws/knowledge-center/iam-principal-policy).
    pub const PROHIBITED_PRINCIPAL: &str = "Policy document should not specify a principal.";
    /// A resource-based policy statement without `Principal`: S3's wording
    /// (jschneier/django-storages#876, aws-amplify/docs#2586).
    pub const MISSING_PRINCIPAL: &str = "Missing required field Principal";
    /// A role trust policy statement without `Principal`, as `CreateRole` answers it
    /// (terraform-aws-modules/terraform-aws-iam#47).
    pub const TRUST_MISSING_PRINCIPAL: &str = "Invalid principal in policy: com.amazon.balsa.error.InvalidPolicyException: The passed in policy has a statement with no principals!";
    /// aws/aws-cdk#7615 (`Policy statement must contain actions.`).
    pub const MISSING_ACTIONS: &str = "Policy statement must contain actions.";
    /// trussworks/terraform-aws-s3-anti-virus#28, aws-samples/aws-health-aware#1.
    pub const MISSING_RESOURCES: &str = "Policy statement must contain resources.";
    /// garnaat/kappa#111.
    pub const ONE_COLON: &str = "Actions/Condition can contain only one colon.";
    /// Unverified wording (no AWS response found in the corpus searched).
    pub const VENDOR_PREFIX: &str =
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";
    /// boogy/iam-policy-validator#172 (quoted from an AWS response, without a final period).
    pub const VENDOR_WILDCARD: &str =
        "Action vendors (e.g., aws, ec2, etc.) must not contain wildcards";
    /// kubernetes/kops#4951, aws-cloudformation/cfn-lint#3973.
    pub const DUPLICATE_SID: &str = "Statement IDs (SID) in a single policy must be unique.";
    /// Wolox/carthage_cache#22 (IAM refuses Sids outside `[0-9A-Za-z]*`).
    pub const SID_ALPHANUMERIC: &str = "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*";

    /// `Invalid principal in policy: "AWS":"arn:aws:iam::123456789012:role/Missing"`, the shape
    /// `CreateRole`/`UpdateAssumeRolePolicy` answers (databrickslabs/ucx#2269, opstrace#88).
    pub fn invalid_principal(kind: &str, value: &str) -> String {
        format!("Invalid principal in policy: \"{kind}\":\"{value}\"")
    }

    /// RenovoSolutions/cdk-library-certbot#906: `Resource <value> must be in ARN format or "*".`
    pub fn resource_not_arn(value: &str) -> String {
        format!("Resource {value} must be in ARN format or \"*\".")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
