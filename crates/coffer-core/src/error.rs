//! The semantic errors of the service. `coffer-protocol` maps each variant to an AWS error
//! code in one place; the messages here are AWS's own texts, because clients show them.
//! No message ever contains a secret value, key or password.

/// A failed operation, by what went wrong rather than by wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// The named resource does not exist (AWS `ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// A parameter has a value the operation cannot accept (AWS `InvalidParameterException`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request is not valid for the resource's current state (AWS `InvalidRequestException`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The resource exists already (AWS `ResourceExistsException`).
    #[error("{0}")]
    ResourceExists(String),
    /// A quota would be exceeded (AWS `LimitExceededException`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A member violates a constraint of the service model (AWS `ValidationException`).
    #[error("{0}")]
    Validation(String),
    /// A pagination token is not one this service issued (AWS `InvalidNextTokenException`).
    #[error("{0}")]
    InvalidNextToken(String),
    /// Stored ciphertext could not be opened (AWS `DecryptionFailure`).
    #[error("{0}")]
    DecryptionFailure(String),
    /// A value could not be sealed (AWS `EncryptionFailure`).
    #[error("{0}")]
    EncryptionFailure(String),
    /// The caller may not do this (AWS `AccessDeniedException`).
    #[error("{0}")]
    AccessDenied(String),
    /// An MFA device's one-time codes were not accepted (IAM `InvalidAuthenticationCode`).
    #[error("{0}")]
    InvalidAuthenticationCode(String),
    /// The entity still has dependents that must be removed first (IAM `DeleteConflict`).
    #[error("{0}")]
    DeleteConflict(String),
    /// A policy document is not valid (IAM `MalformedPolicyDocument`).
    #[error("{0}")]
    MalformedPolicy(String),
    /// A resource policy would grant broad access while `BlockPublicPolicy` is set (Secrets
    /// Manager `PublicPolicyException`).
    #[error("{0}")]
    PublicPolicy(String),
    /// A KMS error, with KMS's own exception name (the KMS model has codes of its own).
    #[error("{message}")]
    Kms { code: KmsCode, message: String },
    /// A CloudTrail error, with CloudTrail's own exception name (`LookupEvents`' validation:
    /// `InvalidLookupAttributesException`, `InvalidTimeRangeException`, …), HTTP 400.
    #[error("{message}")]
    CloudTrail { code: &'static str, message: String },
    /// Something failed inside coffer; the message is for the operator's log, the client sees
    /// AWS's generic `InternalServiceError`.
    #[error("internal error: {0}")]
    Internal(String),
}

/// KMS's exception names (`kms/2014-11-01/service-2.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsCode {
    NotFound,
    Disabled,
    InvalidState,
    InvalidCiphertext,
    IncorrectKey,
    AlreadyExists,
    InvalidAliasName,
    NotAuthorized,
    Unsupported,
    InvalidMarker,
    Tag,
    InvalidKeyUsage,
    Conflict,
    DryRun,
    CustomKeyStoreNotFound,
    InvalidArn,
}

impl KmsCode {
    /// The exception name on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "NotFoundException",
            Self::Disabled => "DisabledException",
            Self::InvalidState => "KMSInvalidStateException",
            Self::InvalidCiphertext => "InvalidCiphertextException",
            Self::IncorrectKey => "IncorrectKeyException",
            Self::AlreadyExists => "AlreadyExistsException",
            Self::InvalidAliasName => "InvalidAliasNameException",
            Self::NotAuthorized => "NotAuthorizedException",
            Self::Unsupported => "UnsupportedOperationException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::Tag => "TagException",
            Self::InvalidKeyUsage => "InvalidKeyUsageException",
            Self::Conflict => "ConflictException",
            Self::DryRun => "DryRunOperationException",
            Self::CustomKeyStoreNotFound => "CustomKeyStoreNotFoundException",
            Self::InvalidArn => "InvalidArnException",
        }
    }
}

impl CoreError {
    pub(crate) fn kms(code: KmsCode, message: impl Into<String>) -> Self {
        CoreError::Kms {
            code,
            message: message.into(),
        }
    }

    /// AWS's message for a secret that cannot be found by id.
    pub(crate) fn secret_not_found() -> Self {
        CoreError::NotFound("Secrets Manager can't find the specified secret.".into())
    }

    /// AWS's message for any read or change of a secret scheduled for deletion.
    pub(crate) fn marked_for_deletion() -> Self {
        CoreError::InvalidRequest(
            "You can't perform this operation on the secret because it was marked for deletion."
                .into(),
        )
    }
}

impl From<coffer_store::StoreError> for CoreError {
    fn from(e: coffer_store::StoreError) -> Self {
        CoreError::Internal(e.to_string())
    }
}

impl From<coffer_crypto::CryptoError> for CoreError {
    fn from(e: coffer_crypto::CryptoError) -> Self {
        CoreError::Internal(e.to_string())
    }
}
