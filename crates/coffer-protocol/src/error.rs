//! The one place where domain and authentication errors become AWS error responses
//! (JSON 1.1: HTTP status, `x-amzn-ErrorType`, and a body `{"__type": CODE, "Message": …}`).

use bytes::Bytes;
use coffer_core::CoreError;

/// An error as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl ApiError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status: 400,
        }
    }

    /// A body that could not be read as the operation's input.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// AWS's wording for a required member that is absent.
    pub fn missing(member: &str) -> Self {
        Self::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ),
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let (code, status) = match &e {
            CoreError::NotFound(_) => ("ResourceNotFoundException", 400),
            CoreError::InvalidParameter(_) => ("InvalidParameterException", 400),
            CoreError::InvalidRequest(_) => ("InvalidRequestException", 400),
            CoreError::ResourceExists(_) => ("ResourceExistsException", 400),
            CoreError::LimitExceeded(_) => ("LimitExceededException", 400),
            CoreError::Validation(_) => ("ValidationException", 400),
            CoreError::InvalidNextToken(_) => ("InvalidNextTokenException", 400),
            CoreError::DecryptionFailure(_) => ("DecryptionFailure", 400),
            CoreError::EncryptionFailure(_) => ("EncryptionFailure", 400),
            CoreError::AccessDenied(_) => ("AccessDeniedException", 400),
            CoreError::DeleteConflict(_) | CoreError::InvalidAuthenticationCode(_) => {
                ("InvalidRequestException", 400)
            }
            CoreError::MalformedPolicy(_) => ("MalformedPolicyDocumentException", 400),
            CoreError::PublicPolicy(_) => ("PublicPolicyException", 400),
            CoreError::Kms { code, .. } => (code.as_str(), 400),
            CoreError::CloudTrail { code, .. } => (*code, 400),
            CoreError::Internal(_) => ("InternalServiceError", 500),
        };
        let message = match e {
            CoreError::Internal(detail) => {
                // The detail is for the operator, not the client.
                tracing::error!(%detail, "internal error");
                "An error occurred on the server side.".to_string()
            }
            other => other.to_string(),
        };
        Self {
            code,
            message,
            status,
        }
    }
}

impl ApiError {
    /// The IAM (query protocol) form of a domain error: IAM's own codes and HTTP statuses from
    /// the service model (`iam/2010-05-08`), e.g. `NoSuchEntity` 404, `EntityAlreadyExists` 409.
    pub fn iam(e: CoreError) -> Self {
        let (code, status) = match &e {
            CoreError::NotFound(_) => ("NoSuchEntity", 404),
            CoreError::ResourceExists(_) => ("EntityAlreadyExists", 409),
            CoreError::LimitExceeded(_) => ("LimitExceeded", 409),
            CoreError::DeleteConflict(_) => ("DeleteConflict", 409),
            CoreError::MalformedPolicy(_) => ("MalformedPolicyDocument", 400),
            CoreError::Validation(_) => ("ValidationError", 400),
            CoreError::AccessDenied(_) => ("AccessDenied", 403),
            CoreError::InvalidAuthenticationCode(_) => ("InvalidAuthenticationCode", 403),
            CoreError::InvalidParameter(_)
            | CoreError::PublicPolicy(_)
            | CoreError::InvalidRequest(_)
            | CoreError::InvalidNextToken(_)
            | CoreError::DecryptionFailure(_)
            | CoreError::EncryptionFailure(_)
            | CoreError::Kms { .. }
            | CoreError::CloudTrail { .. } => ("InvalidInput", 400),
            CoreError::Internal(_) => ("ServiceFailure", 500),
        };
        let api = ApiError::from(e);
        Self {
            code,
            message: api.message,
            status,
        }
    }
}

impl From<coffer_sigv4::SigV4Error> for ApiError {
    fn from(e: coffer_sigv4::SigV4Error) -> Self {
        Self::new(e.aws_code(), e.message())
    }
}

/// Renders an error as a JSON 1.1 response.
pub fn error_response(err: &ApiError, request_id: &str) -> http::Response<Bytes> {
    let body = serde_json::json!({ "__type": err.code, "Message": err.message });
    let mut resp = http::Response::new(Bytes::from(body.to_string()));
    *resp.status_mut() =
        http::StatusCode::from_u16(err.status).unwrap_or(http::StatusCode::BAD_REQUEST);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert("x-amzn-errortype", http::HeaderValue::from_static(err.code));
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    resp
}
