//! The AWS wire protocols of coffer. Only this crate knows AWS wire formats: it reads a
//! request (JSON 1.1, told apart by `X-Amz-Target`), authenticates it with SigV4, runs the
//! operation in `coffer-core`, and writes the response or the AWS error shape.
//!
//! It must never decide domain rules (those are the core's) nor know the HTTP server (the
//! server hands it a fully read request and sends back what it returns).

mod auth;
pub mod error;
mod iam;
mod kms;
pub mod query;
mod secretsmanager;
mod sts;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use coffer_core::Coffer;

use crate::auth::Authenticator;
pub use crate::error::{ApiError, error_response};

/// Whether the request arrived over TLS, set by the server as a request extension; policies
/// read it as `aws:SecureTransport`. Absent means not secure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecureTransport(pub bool);

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request must carry a valid SigV4 signature by a known access key.
    SigV4,
    /// `--dev --accept-any-credentials`: any access key is taken as the dev account's root
    /// user and signatures are not checked (for suites written for LocalStack or moto).
    AcceptAnyCredentials,
}

/// The AWS API endpoint (`POST /` for every service).
pub struct Endpoint {
    coffer: Arc<Coffer>,
    auth: Authenticator,
}

/// A service reachable through the endpoint, and the SigV4 signing name it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    SecretsManager,
    Kms,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Kms => "kms",
        }
    }
}

/// The query protocols' names for authentication failures, which the JSON protocols call
/// `UnrecognizedClientException` and so on (IAM and STS answer `InvalidClientTokenId`,
/// `SignatureDoesNotMatch`, `ExpiredToken`, HTTP 403).
fn query_auth_error(e: ApiError) -> ApiError {
    let (code, status) = match e.code {
        "UnrecognizedClientException" => ("InvalidClientTokenId", 403),
        "InvalidSignatureException" => ("SignatureDoesNotMatch", 403),
        "ExpiredTokenException" => ("ExpiredToken", 403),
        "IncompleteSignatureException" => ("IncompleteSignature", 400),
        "MissingAuthenticationTokenException" => ("MissingAuthenticationToken", 403),
        _ => return e,
    };
    ApiError { code, status, ..e }
}

/// A query-protocol request: a form body and no JSON target.
fn is_query_protocol(parts: &http::request::Parts) -> bool {
    !parts.headers.contains_key("x-amz-target")
        && parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn request_id() -> String {
    coffer_core::ids::uuid_v4()
        .unwrap_or_else(|_| "00000000-0000-4000-8000-000000000000".to_string())
}

impl Endpoint {
    #[must_use]
    pub fn new(coffer: Arc<Coffer>, auth: AuthMode) -> Self {
        Self {
            coffer,
            auth: Authenticator::new(auth),
        }
    }

    /// Handles one AWS API request whose body has been read in full (the server enforces the
    /// body size limit before calling this).
    pub async fn handle(
        &self,
        request: http::Request<Bytes>,
        source_ip: IpAddr,
    ) -> http::Response<Bytes> {
        let request_id = request_id();
        let (parts, body) = request.into_parts();
        if is_query_protocol(&parts) {
            return self
                .handle_query(&parts, &body, source_ip, &request_id)
                .await;
        }
        let result = self.run(&parts, &body, source_ip).await;
        match result {
            Ok(body) => {
                let mut resp = http::Response::new(Bytes::from(body));
                let headers = resp.headers_mut();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-amz-json-1.1"),
                );
                if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                    headers.insert("x-amzn-requestid", v);
                }
                resp
            }
            Err(e) => error_response(&e, &request_id),
        }
    }

    /// The query protocol: IAM (`Version=2010-05-08`) and STS (`Version=2011-06-15`).
    async fn handle_query(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        source_ip: IpAddr,
        request_id: &str,
    ) -> http::Response<Bytes> {
        let form = query::Form::parse(body);
        let namespace = match form.as_ref().ok().and_then(|f| f.get("Version")) {
            Some(sts::VERSION) => sts::NAMESPACE,
            _ => iam::NAMESPACE,
        };
        let outcome = async {
            let form = form?;
            let action = form
                .get("Action")
                .ok_or_else(|| ApiError::new("MissingAction", "Missing Action"))?;
            let (signing_name, version) = match form.get("Version") {
                Some(v @ iam::VERSION) => (Some("iam"), v),
                Some(v @ sts::VERSION) => (Some("sts"), v),
                other => (None, other.unwrap_or("(none)")),
            };
            let caller = self
                .auth
                .authenticate(&self.coffer, parts, body, signing_name, source_ip)
                .await
                .map_err(query_auth_error)?;
            let result = match version {
                iam::VERSION => {
                    // Credentials from GetSessionToken "cannot call any IAM API operations unless
                    // MFA authentication information is included" (STS API reference).
                    if caller
                        .session
                        .as_ref()
                        .is_some_and(|s| s.role.is_none() && s.mfa_authenticated_ms.is_none())
                    {
                        return Err(query_auth_error(auth::unrecognized()));
                    }
                    iam::dispatch(&self.coffer, &caller, action, &form).await
                }
                sts::VERSION => sts::dispatch(&self.coffer, &caller, action, &form).await,
                other => Err(ApiError::new(
                    "InvalidAction",
                    format!("Could not find operation {action} for version {other}"),
                )),
            };
            result.map(|r| (action.to_string(), r))
        }
        .await;
        match outcome {
            Ok((action, result)) => query::success(&action, namespace, result, request_id),
            Err(e) => query::failure(&e, namespace, request_id),
        }
    }

    async fn run(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        source_ip: IpAddr,
    ) -> Result<Vec<u8>, ApiError> {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let (service, operation) = match target.and_then(|t| t.split_once('.')) {
            Some(("secretsmanager", op)) => (Service::SecretsManager, op),
            Some(("TrentService", op)) => (Service::Kms, op),
            Some((prefix, _)) => {
                // Authenticate first so an unauthenticated probe learns nothing.
                self.auth
                    .authenticate(&self.coffer, parts, body, None, source_ip)
                    .await?;
                return Err(ApiError::new(
                    "UnknownOperationException",
                    format!(
                        "coffer does not serve the {prefix} API; supported: secretsmanager, kms (TrentService)"
                    ),
                ));
            }
            None => {
                self.auth
                    .authenticate(&self.coffer, parts, body, None, source_ip)
                    .await?;
                return Err(ApiError::new(
                    "UnknownOperationException",
                    "The request has no valid X-Amz-Target header.",
                ));
            }
        };
        let caller = self
            .auth
            .authenticate(
                &self.coffer,
                parts,
                body,
                Some(service.signing_name()),
                source_ip,
            )
            .await?;
        match service {
            Service::SecretsManager => {
                secretsmanager::dispatch(&self.coffer, &caller, operation, body).await
            }
            Service::Kms => kms::dispatch(&self.coffer, &caller, operation, body).await,
        }
    }
}
