//! The AWS wire protocols of coffer. Only this crate knows AWS wire formats: it reads a
//! request (JSON 1.1, told apart by `X-Amz-Target`), authenticates it with SigV4, runs the
//! operation in `coffer-core`, and writes the response or the AWS error shape.
//!
//! It must never decide domain rules (those are the core's) nor know the HTTP server (the
//! server hands it a fully read request and sends back what it returns).

mod audit;
mod auth;
mod cloudtrail;
pub mod error;
mod iam;
mod kms;
pub mod query;
mod secretsmanager;
mod sts;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use coffer_core::audit::{ApiCall, EventSource};
use coffer_core::{Caller, Coffer};
use serde_json::Value;

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
    CloudTrail,
}

impl Service {
    fn signing_name(self) -> &'static str {
        match self {
            Service::SecretsManager => "secretsmanager",
            Service::Kms => "kms",
            Service::CloudTrail => "cloudtrail",
        }
    }

    fn event_source(self) -> EventSource {
        match self {
            Service::SecretsManager => EventSource::SecretsManager,
            Service::Kms => EventSource::Kms,
            Service::CloudTrail => EventSource::CloudTrail,
        }
    }
}

/// What the endpoint learned of a call while serving it, for the call's audit event.
struct CallFacts {
    source: EventSource,
    event_name: String,
    caller: Option<Caller>,
}

impl Default for CallFacts {
    fn default() -> Self {
        Self {
            source: EventSource::Unknown,
            event_name: String::new(),
            caller: None,
        }
    }
}

/// An operation name as a client sent it, fit for an event: printable ASCII, at most 128
/// characters (an unknown target is recorded too, and must not bloat or break the log).
fn event_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect()
}

/// The `errorMessage` recorded for an authentication error that quoted the client's
/// credentials (the client got the full message).
const UNAUTHENTICATED_MESSAGE: &str =
    "The request was refused before its caller was authenticated; the client was told why.";

/// Whether an authentication error quotes what the client sent to authenticate: a piece of
/// its `Authorization` header (which may be `Bearer <token>` or `Basic <password>`), its
/// session token, or its query string (presigned requests). Such messages are for the client;
/// the trail records [`UNAUTHENTICATED_MESSAGE`] instead.
fn echoes_credentials(message: &str, parts: &http::request::Parts) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let sent = [
        header("authorization"),
        header("x-amz-security-token"),
        parts.uri.query().map(str::to_string),
    ];
    sent.iter().flatten().any(|text| {
        text.split([' ', ',', '&'])
            .filter(|piece| piece.len() >= 8)
            .any(|piece| message.contains(piece))
    })
}

/// Why a call was not answered: its event could not be recorded.
fn audit_unavailable() -> ApiError {
    ApiError {
        code: "InternalFailure",
        message: "The request could not be recorded in the audit trail, so it was not answered. Try again; if it persists, the operator should look at the server's log.".into(),
        status: 500,
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
    coffer_core::ids::unique_id()
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
    /// body size limit before calling this). Every call, answered or refused, is recorded in
    /// the audit trail before its response leaves.
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
        let mut facts = CallFacts::default();
        let mut result = self.run(&parts, &body, source_ip, &mut facts).await;
        if self.coffer.audit().is_some() {
            let request = audit::json_parameters(&body);
            let answer = result.as_ref().ok().map(Vec::as_slice);
            let resources = audit::json_resources(facts.source, request.as_ref(), answer);
            let response = match &result {
                Ok(answer)
                    if !coffer_core::audit::is_read_only(facts.source, &facts.event_name) =>
                {
                    audit::json_parameters(answer)
                }
                _ => None,
            };
            let recorded = self
                .record(
                    &parts,
                    source_ip,
                    &request_id,
                    &facts,
                    request,
                    response,
                    result.as_ref().err(),
                    resources,
                )
                .await;
            if let Err(e) = recorded {
                result = Err(e);
            }
        }
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

    /// Records a request the server refused without reading its body (HTTP `status`: too
    /// large, unreadable), under what its headers say. Returns the request id to answer
    /// with, or the response to send instead when the event could not be recorded.
    pub async fn record_refused(
        &self,
        parts: &http::request::Parts,
        source_ip: IpAddr,
        status: u16,
    ) -> Result<String, http::Response<Bytes>> {
        let request_id = request_id();
        if self.coffer.audit().is_none() {
            return Ok(request_id);
        }
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let split = target.and_then(|t| t.rsplit_once('.'));
        let facts = CallFacts {
            source: split.map_or(EventSource::Unknown, |(prefix, _)| {
                audit::target_source(prefix)
            }),
            event_name: event_name(split.map_or("", |(_, op)| op)),
            caller: None,
        };
        let error = ApiError {
            code: "SerializationException",
            message: format!("The request body was refused unread (HTTP {status})."),
            status,
        };
        match self
            .record(
                parts,
                source_ip,
                &request_id,
                &facts,
                None,
                None,
                Some(&error),
                Vec::new(),
            )
            .await
        {
            Ok(()) => Ok(request_id),
            Err(e) => Err(error_response(&e, &request_id)),
        }
    }

    /// Appends a call's event; an error means the call must not be answered with its result.
    /// `request` and `response` are in the event's form already (redacted, renamed).
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        parts: &http::request::Parts,
        source_ip: IpAddr,
        request_id: &str,
        facts: &CallFacts,
        request: Option<Value>,
        response: Option<Value>,
        error: Option<&ApiError>,
        resources: Vec<coffer_core::audit::Resource>,
    ) -> Result<(), ApiError> {
        // An unauthenticated call is recorded under the key id and region it claimed.
        let claim = match &facts.caller {
            Some(_) => None,
            None => coffer_sigv4::parse_claim(parts).ok(),
        };
        let region = facts
            .caller
            .as_ref()
            .map(|c| c.region.as_str())
            .or(claim.as_ref().map(|c| c.region.as_str()))
            .unwrap_or("us-east-1");
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let call = ApiCall {
            source: facts.source,
            event_name: &facts.event_name,
            caller: facts.caller.as_ref(),
            claimed_access_key_id: claim.as_ref().map(|c| c.access_key_id.as_str()),
            region,
            source_ip,
            user_agent,
            request_id,
            request_parameters: request,
            response_elements: response,
            error: error.map(|e| {
                if facts.caller.is_none() && echoes_credentials(&e.message, parts) {
                    (e.code, UNAUTHENTICATED_MESSAGE)
                } else {
                    (e.code, e.message.as_str())
                }
            }),
            resources,
        };
        self.coffer
            .record_api_call(call)
            .await
            .map_err(|_| audit_unavailable())
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
        let mut facts = CallFacts::default();
        if let Ok(f) = &form {
            facts.source = match f.get("Version") {
                Some(sts::VERSION) => EventSource::Sts,
                Some(iam::VERSION) => EventSource::Iam,
                _ => EventSource::Unknown,
            };
            facts.event_name = event_name(f.get("Action").unwrap_or_default());
        }
        let outcome = async {
            let form = form.as_ref().map_err(Clone::clone)?;
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
            let caller = &*facts.caller.insert(caller);
            if !self.coffer.audit_accepting() {
                return Err(audit_unavailable());
            }
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
                    iam::dispatch(&self.coffer, caller, action, form).await
                }
                sts::VERSION => sts::dispatch(&self.coffer, caller, action, form).await,
                other => Err(ApiError::new(
                    "InvalidAction",
                    format!("Could not find operation {action} for version {other}"),
                )),
            };
            result.map(|r| (action.to_string(), r))
        }
        .await;
        let mut outcome = outcome;
        if self.coffer.audit().is_some() {
            let form = form.as_ref().ok();
            let request = form
                .and_then(audit::form_parameters)
                .map(coffer_core::audit::redact);
            let resources = form
                .map(|f| audit::form_resources(&facts.event_name, f))
                .unwrap_or_default();
            // CloudTrail keeps the answer of calls that change something, and of the STS
            // calls that issue credentials (their key id ties later calls to this one).
            let keeps_answer = !coffer_core::audit::is_read_only(facts.source, &facts.event_name)
                || matches!(facts.event_name.as_str(), "AssumeRole" | "GetSessionToken");
            let response = match &outcome {
                Ok((_, Some(xml))) if keeps_answer => {
                    audit::xml_elements(xml).map(coffer_core::audit::redact)
                }
                _ => None,
            };
            let error = outcome.as_ref().err();
            let recorded = self
                .record(
                    parts, source_ip, request_id, &facts, request, response, error, resources,
                )
                .await;
            if let Err(e) = recorded {
                outcome = Err(e);
            }
        }
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
        facts: &mut CallFacts,
    ) -> Result<Vec<u8>, ApiError> {
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        // botocore's CloudTrail target is `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.Op`:
        // the operation is after the last dot.
        let split = target.and_then(|t| t.rsplit_once('.'));
        facts.event_name = event_name(split.map_or(target.unwrap_or_default(), |(_, op)| op));
        let source = split.map_or(EventSource::Unknown, |(prefix, _)| {
            audit::target_source(prefix)
        });
        let (service, operation) = match (source, split) {
            (EventSource::SecretsManager, Some((_, op))) => (Service::SecretsManager, op),
            (EventSource::Kms, Some((_, op))) => (Service::Kms, op),
            (EventSource::CloudTrail, Some((_, op))) => (Service::CloudTrail, op),
            (_, Some((prefix, _))) => {
                // Authenticate first so an unauthenticated probe learns nothing.
                let caller = self
                    .auth
                    .authenticate(&self.coffer, parts, body, None, source_ip)
                    .await?;
                facts.caller = Some(caller);
                return Err(ApiError::new(
                    "UnknownOperationException",
                    format!(
                        "coffer does not serve the {prefix} API; supported: secretsmanager, kms (TrentService), cloudtrail (LookupEvents)"
                    ),
                ));
            }
            (_, None) => {
                let caller = self
                    .auth
                    .authenticate(&self.coffer, parts, body, None, source_ip)
                    .await?;
                facts.caller = Some(caller);
                return Err(ApiError::new(
                    "UnknownOperationException",
                    "The request has no valid X-Amz-Target header.",
                ));
            }
        };
        facts.source = service.event_source();
        if !self.coffer.audit_accepting() {
            return Err(audit_unavailable());
        }
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
        let caller = &*facts.caller.insert(caller);
        match service {
            Service::SecretsManager => {
                secretsmanager::dispatch(&self.coffer, caller, operation, body).await
            }
            Service::Kms => kms::dispatch(&self.coffer, caller, operation, body).await,
            Service::CloudTrail => {
                cloudtrail::dispatch(&self.coffer, caller, operation, body).await
            }
        }
    }
}
