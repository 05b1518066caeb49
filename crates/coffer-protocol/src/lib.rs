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

    /// The query protocol: IAM (`Version=2010-05-08`); STS arrives with its own version.
    async fn handle_query(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        source_ip: IpAddr,
        request_id: &str,
    ) -> http::Response<Bytes> {
        let outcome = async {
            let form = query::Form::parse(body)?;
            let action = form
                .get("Action")
                .ok_or_else(|| ApiError::new("MissingAction", "Missing Action"))?;
            match form.get("Version") {
                Some(iam::VERSION) => {
                    let caller = self
                        .auth
                        .authenticate(&self.coffer, parts, body, Some("iam"), source_ip)
                        .await?;
                    iam::dispatch(&self.coffer, &caller, action, &form)
                        .await
                        .map(|r| (action.to_string(), r))
                }
                other => {
                    self.auth
                        .authenticate(&self.coffer, parts, body, None, source_ip)
                        .await?;
                    Err(ApiError::new(
                        "InvalidAction",
                        format!(
                            "Could not find operation {action} for version {}",
                            other.unwrap_or("(none)")
                        ),
                    ))
                }
            }
        }
        .await;
        match outcome {
            Ok((action, result)) => query::success(&action, iam::NAMESPACE, result, request_id),
            Err(e) => query::failure(&e, iam::NAMESPACE, request_id),
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
