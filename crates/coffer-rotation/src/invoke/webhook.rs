//! The webhook client: one HTTP/1.1 POST per step, over TCP or rustls (aws-lc-rs), on a
//! fresh connection, never following redirects. [`post`] is the same client without the
//! rotation event and credentials, for audit sinks and alerts.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coffer_crypto::SecretBytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;

use super::error::{InvokeError, InvokeErrorKind, Target, chain};
use super::redact::Redactor;
use super::{
    AbortOnDrop, CallbackCredentials, DEFAULT_TIMEOUT, InvokeOutcome, OutcomeDetail, RotationEvent,
    deadline,
};

/// The headers coffer adds to a webhook call (lower case, as `http` spells them; they go on
/// the wire title-cased, `X-Coffer-Endpoint`, and HTTP header names are case-insensitive).
pub mod headers {
    /// coffer's Secrets Manager endpoint URL.
    pub const ENDPOINT: &str = "x-coffer-endpoint";
    /// The region to sign requests for.
    pub const REGION: &str = "x-coffer-region";
    /// The temporary access key id.
    pub const ACCESS_KEY_ID: &str = "x-coffer-access-key-id";
    /// Its secret access key.
    pub const SECRET_ACCESS_KEY: &str = "x-coffer-secret-access-key";
    /// Its session token.
    pub const SESSION_TOKEN: &str = "x-coffer-session-token";
    /// Unix time in seconds when the request was signed (only with a signing secret).
    pub const TIMESTAMP: &str = "x-coffer-timestamp";
    /// `sha256=<hex HMAC-SHA256(signing secret, timestamp + "." + body)>` (only with a
    /// signing secret).
    pub const SIGNATURE: &str = "x-coffer-signature";
}

/// How much of a response body an outcome or an error quotes.
const BODY_QUOTE_LIMIT: usize = 2048;
/// How much of a redirect's `Location` an error quotes.
const LOCATION_QUOTE_LIMIT: usize = 512;

/// A rotation function reached over HTTP(S).
#[derive(Clone)]
pub struct Webhook {
    /// `http://…` or `https://…`; no user info (authenticate with `signing_secret`).
    pub url: String,
    /// When set, every call carries `X-Coffer-Timestamp` and `X-Coffer-Signature`.
    pub signing_secret: Option<SecretBytes>,
    /// The whole call (connect, TLS, request, answer) must finish within this.
    pub timeout: Duration,
    /// PEM file of the CA certificates that may issue the webhook's certificate; without
    /// it, the public web PKI (Mozilla's roots).
    pub ca_bundle: Option<PathBuf>,
}

impl Webhook {
    /// A webhook at `url`, unsigned, with [`DEFAULT_TIMEOUT`] and the public web PKI.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            signing_secret: None,
            timeout: DEFAULT_TIMEOUT,
            ca_bundle: None,
        }
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &shown_url(&self.url))
            .field("signing_secret", &self.signing_secret)
            .field("timeout", &self.timeout)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// `sha256=` + hex HMAC-SHA256 under `secret` of `timestamp`, `.`, `body`: the value of
/// `X-Coffer-Signature`.
#[must_use]
pub fn webhook_signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(timestamp.len() + 1 + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!(
        "sha256={}",
        coffer_crypto::hex(&coffer_crypto::hmac_sha256(secret, &message))
    )
}

/// The receiver's check: `signature` (the `X-Coffer-Signature` value) is the signature of
/// `timestamp` (the `X-Coffer-Timestamp` value) and the raw `body` under `secret`, compared
/// in constant time, and `timestamp` is within `tolerance` of `now`.
#[must_use]
pub fn verify_webhook_signature(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    signature: &str,
    now: SystemTime,
    tolerance: Duration,
) -> bool {
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(sent) = timestamp.parse::<u64>() else {
        return false;
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    if now.abs_diff(sent) > tolerance.as_secs() {
        return false;
    }
    let expected = webhook_signature(secret, timestamp, body);
    coffer_crypto::constant_time_eq(expected.as_bytes(), signature.as_bytes())
}

/// POSTs `event` to the webhook with the callback credentials in headers (see the module
/// documentation). A 2xx answer within `hook.timeout` is success.
pub async fn invoke_webhook(
    hook: &Webhook,
    event: &RotationEvent,
    creds: &CallbackCredentials,
) -> Result<InvokeOutcome, InvokeError> {
    let target = Target::Webhook {
        url: shown_url(&hook.url),
    };
    let fail = |kind| InvokeError::new(target.clone(), event.step, kind);
    let config = |reason: String| fail(InvokeErrorKind::Config { reason });

    let endpoint = Endpoint::parse(&hook.url).map_err(config)?;
    let tls = match endpoint.https {
        true => Some(
            tls_client(&endpoint, hook.ca_bundle.as_deref())
                .await
                .map_err(config)?,
        ),
        false => None,
    };
    if !endpoint.https && !endpoint.is_loopback() {
        tracing::warn!(
            webhook = %target,
            "sending temporary credentials to a rotation webhook over plain http://; use https://"
        );
    }
    let body = Bytes::from(event.to_json());
    let outgoing = Outgoing {
        content_type: HeaderValue::from_static("application/json"),
        user_agent: HeaderValue::from_static(concat!(
            "coffer-rotation/",
            env!("CARGO_PKG_VERSION")
        )),
        extra: callback_headers(creds).map_err(config)?,
        signing_secret: hook.signing_secret.as_ref(),
    };
    let request = build_request(&endpoint, body, outgoing).map_err(config)?;

    let mut secrets: Vec<&[u8]> = vec![
        creds.secret_access_key.expose(),
        creds.session_token.as_bytes(),
        event.rotation_token.as_bytes(),
    ];
    if let Some(secret) = &hook.signing_secret {
        secrets.push(secret.expose());
    }
    let redactor = Redactor::new(secrets);

    tracing::debug!(webhook = %target, step = %event.step, "invoking rotation webhook");
    let answer = round_trip(&endpoint, tls, request, hook.timeout)
        .await
        .map_err(|e| fail(e.into_invoke_kind()))?;

    let status = answer.status.as_u16();
    let elapsed = answer.elapsed;
    let body = redactor.quote(&answer.body, false, answer.body_cut);
    if answer.status.is_success() {
        tracing::debug!(webhook = %target, step = %event.step, status, ?elapsed, "rotation webhook succeeded");
        Ok(InvokeOutcome {
            elapsed,
            detail: OutcomeDetail::Http { status, body },
        })
    } else {
        let location = answer.location.map(|l| quote_location(&redactor, &l));
        Err(fail(InvokeErrorKind::Status {
            status,
            location,
            body,
        }))
    }
}

/// What a [`post`] got back: any status, 2xx or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostResponse {
    /// The HTTP status.
    pub status: u16,
    /// The start of the response body: cut to a few KB, stripped of control characters,
    /// the signing secret redacted.
    pub body: String,
    /// Where a redirect pointed (never followed), cut and cleaned likewise.
    pub location: Option<String>,
    /// From the start of the call to the answer.
    pub elapsed: Duration,
}

impl PostResponse {
    /// A 2xx status.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why a [`post`] got no answer. Messages name the URL's host and port, never the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The URL, the CA bundle or the content type cannot be used.
    #[error("the request cannot be made: {reason}")]
    Config { reason: String },
    /// No connection (refused, unreachable, name not found).
    #[error("could not connect: {reason}")]
    Connect { reason: String },
    /// The TLS handshake failed (certificate not trusted, wrong name, protocol).
    #[error("the TLS handshake failed: {reason}")]
    Tls { reason: String },
    /// The HTTP exchange broke off (connection closed, malformed answer).
    #[error("the HTTP exchange failed: {reason}")]
    Http { reason: String },
    /// No complete answer within the timeout.
    #[error("no answer within the timeout of {} s", after.as_secs_f64())]
    Timeout { after: Duration },
}

impl PostError {
    fn into_invoke_kind(self) -> InvokeErrorKind {
        match self {
            PostError::Config { reason } => InvokeErrorKind::Config { reason },
            PostError::Connect { reason } => InvokeErrorKind::Connect { reason },
            PostError::Tls { reason } => InvokeErrorKind::Tls { reason },
            PostError::Http { reason } => InvokeErrorKind::Http { reason },
            PostError::Timeout { after } => InvokeErrorKind::Timeout {
                after,
                output: String::new(),
            },
        }
    }
}

/// One HTTP/1.1 POST of `body` to `url` (`http://` or `https://`, no user info), with the
/// same client as rotation webhooks: a fresh connection, rustls with the roots of
/// `ca_bundle` (PEM) or else the public web PKI, redirects never followed, the whole call
/// (connect, TLS, request, answer) bounded by `timeout`. With a `signing_secret` the request
/// carries `X-Coffer-Timestamp` and `X-Coffer-Signature` exactly as a rotation webhook's
/// (see [`webhook_signature`] and [`verify_webhook_signature`]).
///
/// Any status is `Ok`; [`PostResponse::is_success`] says whether it was 2xx. For audit sinks
/// and alerts, which deliver events (not credentials) and decide themselves what to retry.
pub async fn post(
    url: &str,
    body: Bytes,
    content_type: &str,
    signing_secret: Option<&SecretBytes>,
    ca_bundle: Option<&Path>,
    timeout: Duration,
) -> Result<PostResponse, PostError> {
    let config = |reason: String| PostError::Config { reason };
    let endpoint = Endpoint::parse(url).map_err(config)?;
    let tls = match endpoint.https {
        true => Some(tls_client(&endpoint, ca_bundle).await.map_err(config)?),
        false => None,
    };
    let content_type = HeaderValue::from_str(content_type).map_err(|_| {
        config(format!(
            "the content type {content_type:?} is not a header value"
        ))
    })?;
    let outgoing = Outgoing {
        content_type,
        user_agent: HeaderValue::from_static(concat!("coffer/", env!("CARGO_PKG_VERSION"))),
        extra: Vec::new(),
        signing_secret,
    };
    let request = build_request(&endpoint, body, outgoing).map_err(config)?;
    let answer = round_trip(&endpoint, tls, request, timeout).await?;
    let redactor = Redactor::new(signing_secret.map(SecretBytes::expose));
    Ok(PostResponse {
        status: answer.status.as_u16(),
        body: redactor.quote(&answer.body, false, answer.body_cut),
        location: answer.location.map(|l| quote_location(&redactor, &l)),
        elapsed: answer.elapsed,
    })
}

fn quote_location(redactor: &Redactor<'_>, location: &[u8]) -> String {
    let cut = location.len() > LOCATION_QUOTE_LIMIT;
    redactor.quote(
        &location[..location.len().min(LOCATION_QUOTE_LIMIT)],
        false,
        cut,
    )
}

/// A whole answer: status, redirect target and the start of the body.
struct RoundTrip {
    status: StatusCode,
    location: Option<Vec<u8>>,
    body: Vec<u8>,
    body_cut: bool,
    elapsed: Duration,
}

/// Connects, sends `request` and reads the answer (the body up to [`BODY_QUOTE_LIMIT`]),
/// all within `timeout`.
async fn round_trip(
    endpoint: &Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<RoundTrip, PostError> {
    let started = Instant::now();
    let deadline = deadline(started, timeout);
    let answer = match timeout_at(deadline, exchange(endpoint, tls, request)).await {
        Err(_elapsed) => return Err(PostError::Timeout { after: timeout }),
        Ok(result) => result?,
    };
    let (body, body_cut) = read_body(answer.response.into_body(), deadline).await;
    drop(answer.connection);
    Ok(RoundTrip {
        status: answer.status,
        location: answer.location,
        body,
        body_cut,
        elapsed: started.elapsed(),
    })
}

/// Where to connect, from the webhook's URL.
#[derive(Debug)]
struct Endpoint {
    https: bool,
    /// Without the brackets of an IPv6 literal.
    host: String,
    port: u16,
    /// `host[:port]` as written, for the `Host` header.
    authority: String,
    path_and_query: String,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Self, String> {
        let shown = shown_url(url);
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("the URL {shown:?} cannot be parsed: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "the URL {shown:?} must start with http:// or https://"
                ));
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("the URL {shown:?} names no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "the URL {shown:?} carries user info (user:password@), which coffer does not \
                 send; authenticate calls with a signing secret instead"
            ));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(format!("the URL {shown:?} names no host"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
            Some(p) if p.starts_with('/') => p.to_owned(),
            Some(p) if !p.is_empty() => format!("/{p}"),
            _ => "/".to_owned(),
        };
        Ok(Self {
            https,
            host,
            port,
            authority: authority.as_str().to_owned(),
            path_and_query,
        })
    }

    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// The URL without user info, query or fragment, which may carry tokens: what errors, logs
/// and `Debug` show.
fn shown_url(url: &str) -> String {
    let base = url.find(['?', '#']).map_or(url, |end| &url[..end]);
    if let Some(scheme_end) = base.find("://") {
        let rest = &base[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{}{}", &base[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    base.to_owned()
}

/// The rustls client for `endpoint`: roots from `ca_bundle` or the web PKI, and the name
/// to verify.
async fn tls_client(
    endpoint: &Endpoint,
    ca_bundle: Option<&Path>,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_bundle {
        Some(path) => {
            let shown = path.display();
            let pem = tokio::fs::read(path)
                .await
                .map_err(|e| format!("the CA bundle {shown} cannot be read: {e}"))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the CA bundle {shown} is not PEM: {e}"))?;
            if certs.is_empty() {
                return Err(format!("the CA bundle {shown} holds no certificate"));
            }
            for (i, cert) in certs.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    format!(
                        "certificate {} in the CA bundle {shown} is unusable: {e}",
                        i + 1
                    )
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| format!("{:?} is not a host name TLS can verify: {e}", endpoint.host))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// What goes on a request besides the body.
struct Outgoing<'a> {
    content_type: HeaderValue,
    user_agent: HeaderValue,
    extra: Vec<(&'static str, HeaderValue)>,
    signing_secret: Option<&'a SecretBytes>,
}

/// The callback credentials as headers (the secret ones marked sensitive).
fn callback_headers(
    creds: &CallbackCredentials,
) -> Result<Vec<(&'static str, HeaderValue)>, String> {
    let secret = |what: &str, bytes: &[u8]| {
        header_value(what, bytes).map(|mut v| {
            v.set_sensitive(true);
            v
        })
    };
    Ok(vec![
        (
            headers::ENDPOINT,
            header_value("endpoint URL", creds.endpoint_url.as_bytes())?,
        ),
        (
            headers::REGION,
            header_value("region", creds.region.as_bytes())?,
        ),
        (
            headers::ACCESS_KEY_ID,
            header_value("access key id", creds.access_key_id.as_bytes())?,
        ),
        (
            headers::SECRET_ACCESS_KEY,
            secret("secret access key", creds.secret_access_key.expose())?,
        ),
        (
            headers::SESSION_TOKEN,
            secret("session token", creds.session_token.as_bytes())?,
        ),
    ])
}

fn header_value(what: &str, bytes: &[u8]) -> Result<HeaderValue, String> {
    HeaderValue::from_bytes(bytes)
        .map_err(|_| format!("the callback {what} holds characters an HTTP header cannot carry"))
}

fn build_request(
    endpoint: &Endpoint,
    body: Bytes,
    outgoing: Outgoing<'_>,
) -> Result<Request<Full<Bytes>>, String> {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(endpoint.path_and_query.as_str())
        .header(HOST, header_value("host", endpoint.authority.as_bytes())?)
        .header(CONTENT_TYPE, outgoing.content_type)
        .header(USER_AGENT, outgoing.user_agent)
        .header(CONNECTION, HeaderValue::from_static("close"));
    for (name, value) in outgoing.extra {
        builder = builder.header(name, value);
    }
    if let Some(signing_secret) = outgoing.signing_secret {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
            .to_string();
        let signature = webhook_signature(signing_secret.expose(), &timestamp, &body);
        builder = builder
            .header(
                headers::TIMESTAMP,
                header_value("timestamp", timestamp.as_bytes())?,
            )
            .header(
                headers::SIGNATURE,
                header_value("signature", signature.as_bytes())?,
            );
    }
    builder
        .body(Full::new(body))
        .map_err(|e| format!("the request cannot be built: {e}"))
}

/// The response head, and the task driving the connection (its body needs it).
struct Answer {
    status: StatusCode,
    location: Option<Vec<u8>>,
    response: Response<Incoming>,
    connection: AbortOnDrop,
}

async fn exchange(
    endpoint: &Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, PostError> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| PostError::Connect {
            reason: format!("{} ({}:{})", chain(&e), endpoint.host, endpoint.port),
        })?;
    // Only latency is at stake.
    let _ = tcp.set_nodelay(true);
    match tls {
        None => send(tcp, request).await,
        Some((connector, name)) => {
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| PostError::Tls { reason: chain(&e) })?;
            send(stream, request).await
        }
    }
}

async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, PostError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broken = |e: hyper::Error| PostError::Http { reason: chain(&e) };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    let connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %chain(&e), "webhook connection ended");
        }
    }));
    let response = sender.send_request(request).await.map_err(broken)?;
    Ok(Answer {
        status: response.status(),
        location: response
            .headers()
            .get(LOCATION)
            .map(|l| l.as_bytes().to_vec()),
        response,
        connection,
    })
}

/// The first [`BODY_QUOTE_LIMIT`] bytes of the body, and whether it went on (or broke off,
/// or was still coming at the deadline). The status line has decided the step already.
async fn read_body(mut body: Incoming, deadline: Instant) -> (Vec<u8>, bool) {
    let mut captured = Vec::new();
    let mut cut = false;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                cut = true;
                break;
            };
            if let Ok(data) = frame.into_data() {
                let room = BODY_QUOTE_LIMIT - captured.len();
                let take = data.len().min(room);
                captured.extend_from_slice(&data[..take]);
                if take < data.len() {
                    cut = true;
                    break;
                }
            }
        }
    };
    if timeout_at(deadline, read).await.is_err() {
        cut = true;
    }
    (captured, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_url_drops_user_info_query_and_fragment() {
        assert_eq!(
            shown_url("https://user:pw@hooks.example.com:8443/rotate?token=abc#x"),
            "https://hooks.example.com:8443/rotate"
        );
        assert_eq!(shown_url("http://h/p"), "http://h/p");
        assert_eq!(shown_url("not a url?secret"), "not a url");
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("https://hooks.example.com/rotate?x=1").unwrap();
        assert!(e.https);
        assert_eq!(
            (e.host.as_str(), e.port, e.path_and_query.as_str()),
            ("hooks.example.com", 443, "/rotate?x=1")
        );
        let e = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.path_and_query, "/");
        assert_eq!(e.authority, "[::1]:9000");
        assert!(e.is_loopback());
        assert!(Endpoint::parse("ftp://h/").is_err());
        assert!(Endpoint::parse("/relative").is_err());
        let err = Endpoint::parse("https://u:hunter22@h/").unwrap_err();
        assert!(!err.contains("hunter22"), "{err}");
    }

    #[test]
    fn signatures_verify_within_the_tolerance_only() {
        let now = SystemTime::now();
        let ts = now
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let sig = webhook_signature(b"shared", &ts, b"{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
        let tolerance = Duration::from_secs(300);
        assert!(verify_webhook_signature(
            b"shared", &ts, b"{}", &sig, now, tolerance
        ));
        assert!(!verify_webhook_signature(
            b"other", &ts, b"{}", &sig, now, tolerance
        ));
        assert!(!verify_webhook_signature(
            b"shared", &ts, b"{ }", &sig, now, tolerance
        ));
        let later = now + Duration::from_secs(301);
        assert!(!verify_webhook_signature(
            b"shared", &ts, b"{}", &sig, later, tolerance
        ));
        assert!(!verify_webhook_signature(
            b"shared", "+1", b"{}", &sig, now, tolerance
        ));
    }
}
