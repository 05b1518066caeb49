//! The webhook client: one HTTP/1.1 POST per step, over TCP or rustls (aws-lc-rs), on a
//! fresh connection, never following redirects.

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
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        .to_string();
    let request = build_request(&endpoint, body, hook, creds, &timestamp).map_err(config)?;

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
    let started = Instant::now();
    let deadline = deadline(started, hook.timeout);
    let answer = match timeout_at(deadline, exchange(&endpoint, tls, request)).await {
        Err(_elapsed) => {
            return Err(fail(InvokeErrorKind::Timeout {
                after: hook.timeout,
                output: String::new(),
            }));
        }
        Ok(Err(kind)) => return Err(fail(kind)),
        Ok(Ok(answer)) => answer,
    };
    let (body, body_cut) = read_body(answer.response.into_body(), deadline).await;
    drop(answer.connection);
    let elapsed = started.elapsed();

    let status = answer.status.as_u16();
    let body = redactor.quote(&body, false, body_cut);
    if answer.status.is_success() {
        tracing::debug!(webhook = %target, step = %event.step, status, ?elapsed, "rotation webhook succeeded");
        Ok(InvokeOutcome {
            elapsed,
            detail: OutcomeDetail::Http { status, body },
        })
    } else {
        let location = answer.location.map(|l| {
            let cut = l.len() > LOCATION_QUOTE_LIMIT;
            redactor.quote(&l[..l.len().min(LOCATION_QUOTE_LIMIT)], false, cut)
        });
        Err(fail(InvokeErrorKind::Status {
            status,
            location,
            body,
        }))
    }
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

fn build_request(
    endpoint: &Endpoint,
    body: Bytes,
    hook: &Webhook,
    creds: &CallbackCredentials,
    timestamp: &str,
) -> Result<Request<Full<Bytes>>, String> {
    let value = |what: &str, bytes: &[u8]| {
        HeaderValue::from_bytes(bytes).map_err(|_| {
            format!("the callback {what} holds characters an HTTP header cannot carry")
        })
    };
    let secret = |what: &str, bytes: &[u8]| {
        value(what, bytes).map(|mut v| {
            v.set_sensitive(true);
            v
        })
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(endpoint.path_and_query.as_str())
        .header(HOST, value("host", endpoint.authority.as_bytes())?)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            USER_AGENT,
            HeaderValue::from_static(concat!("coffer-rotation/", env!("CARGO_PKG_VERSION"))),
        )
        .header(CONNECTION, HeaderValue::from_static("close"))
        .header(
            headers::ENDPOINT,
            value("endpoint URL", creds.endpoint_url.as_bytes())?,
        )
        .header(headers::REGION, value("region", creds.region.as_bytes())?)
        .header(
            headers::ACCESS_KEY_ID,
            value("access key id", creds.access_key_id.as_bytes())?,
        )
        .header(
            headers::SECRET_ACCESS_KEY,
            secret("secret access key", creds.secret_access_key.expose())?,
        )
        .header(
            headers::SESSION_TOKEN,
            secret("session token", creds.session_token.as_bytes())?,
        );
    if let Some(signing_secret) = &hook.signing_secret {
        builder = builder
            .header(
                headers::TIMESTAMP,
                value("timestamp", timestamp.as_bytes())?,
            )
            .header(
                headers::SIGNATURE,
                value(
                    "signature",
                    webhook_signature(signing_secret.expose(), timestamp, &body).as_bytes(),
                )?,
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
) -> Result<Answer, InvokeErrorKind> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|e| InvokeErrorKind::Connect {
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
                .map_err(|e| InvokeErrorKind::Tls { reason: chain(&e) })?;
            send(stream, request).await
        }
    }
}

async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Answer, InvokeErrorKind>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let broken = |e: hyper::Error| InvokeErrorKind::Http { reason: chain(&e) };
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(broken)?;
    let connection = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %chain(&e), "rotation webhook connection ended");
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
