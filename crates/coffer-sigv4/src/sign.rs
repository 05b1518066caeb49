//! Client side: signs a request in place with an `Authorization` header, producing what the
//! official SDK signer produces for the same request (the tests compare against `aws-sigv4`).

use std::fmt;

use coffer_crypto::{hex, sha256};
use http::header::{AUTHORIZATION, HOST, HeaderName, HeaderValue};
use http::request::Parts;
use zeroize::Zeroizing;

use crate::canonical::{
    ALGORITHM, CanonicalParts, canonical_request, credential_scope, signature, string_to_sign,
};
use crate::error::SigV4Error;
use crate::key::derive_signing_key;
use crate::time::format_amz_date;

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");
const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Headers never signed because proxies and HTTP stacks rewrite them; the minimum common set of
/// the AWS SDKs, as `aws-sigv4`'s `SigningSettings::default` documents.
const UNSIGNED_HEADERS: [&str; 4] = [
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone)]
pub struct Credentials {
    /// The access key id (`AKIA…`/`ASIA…`).
    pub access_key_id: String,
    /// The secret access key; zeroized on drop.
    pub secret_access_key: Zeroizing<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Credentials from their parts.
    #[must_use]
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Who signs, for which scope, and how.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    /// The signer's credentials.
    pub credentials: &'a Credentials,
    /// The region of the credential scope, e.g. `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service, e.g. `secretsmanager`.
    pub service: &'a str,
    /// Also send (and sign) `x-amz-content-sha256`. S3 requires it; JSON services accept it. The
    /// SDKs leave it out for other services, so the default is off.
    pub content_sha256_header: bool,
}

impl<'a> SigningParams<'a> {
    /// Parameters for `service` in `region`, without `x-amz-content-sha256`.
    #[must_use]
    pub fn new(credentials: &'a Credentials, region: &'a str, service: &'a str) -> Self {
        Self {
            credentials,
            region,
            service,
            content_sha256_header: false,
        }
    }
}

fn header_value(
    value: &str,
    sensitive: bool,
    what: &'static str,
) -> Result<HeaderValue, SigV4Error> {
    let mut value = HeaderValue::from_str(value).map_err(|_| SigV4Error::Unsignable(what))?;
    value.set_sensitive(sensitive);
    Ok(value)
}

/// The `Host` value for a URI: its authority without a port that is the scheme's default, as the
/// SDKs and HTTP clients send it.
fn host_from_uri(uri: &http::Uri) -> Option<String> {
    let authority = uri.authority()?;
    let default_port = matches!(
        (uri.scheme_str(), authority.port_u16()),
        (Some("http"), Some(80)) | (Some("https"), Some(443)) | (_, None)
    );
    Some(if default_port {
        authority.host().to_owned()
    } else {
        authority.as_str().to_owned()
    })
}

/// Signs the request in place: sets `x-amz-date`, `x-amz-security-token` when the credentials have
/// a session token, `x-amz-content-sha256` when asked (an existing one is kept and used as the
/// payload hash, e.g. `UNSIGNED-PAYLOAD`), `host` from the URI when absent, and `authorization`.
/// Every other header present is signed, except those proxies rewrite (`user-agent`, …). A
/// previous signature's headers are replaced.
///
/// # Errors
/// [`SigV4Error::Unsignable`] when the request has no host, `now_unix_secs` is outside the years
/// 0000–9999, or a credential cannot be written into a header.
pub fn sign(
    parts: &mut Parts,
    body: &[u8],
    params: &SigningParams<'_>,
    now_unix_secs: i64,
) -> Result<(), SigV4Error> {
    let amz_date = format_amz_date(now_unix_secs).ok_or(SigV4Error::Unsignable(
        "the time is outside the years 0000-9999",
    ))?;
    let date = amz_date.get(..8).unwrap_or_default();

    let headers = &mut parts.headers;
    headers.remove(AUTHORIZATION);
    headers.remove(X_AMZ_SECURITY_TOKEN);
    headers.insert(X_AMZ_DATE, header_value(&amz_date, false, "the date")?);
    if let Some(token) = &params.credentials.session_token {
        headers.insert(
            X_AMZ_SECURITY_TOKEN,
            header_value(token, true, "the session token is not a valid header value")?,
        );
    }
    let payload_hash = match headers.get(X_AMZ_CONTENT_SHA256) {
        Some(declared) => declared.as_bytes().to_vec(),
        None => {
            let computed = hex(&sha256(body));
            if params.content_sha256_header {
                headers.insert(
                    X_AMZ_CONTENT_SHA256,
                    header_value(&computed, false, "the payload hash")?,
                );
            }
            computed.into_bytes()
        }
    };
    if !headers.contains_key(HOST) {
        let host = host_from_uri(&parts.uri).ok_or(SigV4Error::Unsignable(
            "the request has neither a Host header nor an authority",
        ))?;
        headers.insert(
            HOST,
            header_value(&host, false, "the host is not a valid header value")?,
        );
    }

    let mut signed_headers: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|name| !UNSIGNED_HEADERS.contains(name))
        .map(str::to_owned)
        .collect();
    signed_headers.sort();
    signed_headers.dedup();

    let scope = credential_scope(date, params.region, params.service);
    let canonical = canonical_request(&CanonicalParts {
        method: parts.method.as_str(),
        uri: &parts.uri,
        headers: &parts.headers,
        signed_headers: &signed_headers,
        payload_hash: &payload_hash,
        presigned: false,
    });
    let to_sign = string_to_sign(&amz_date, &scope, &canonical);
    let key = derive_signing_key(
        params.credentials.secret_access_key.as_bytes(),
        date,
        params.region,
        params.service,
    );
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        params.credentials.access_key_id,
        signed_headers.join(";"),
        signature(&key, &to_sign)
    );
    parts.headers.insert(
        AUTHORIZATION,
        header_value(
            &authorization,
            true,
            "the access key id is not a valid header value",
        )?,
    );
    Ok(())
}

/// [`sign`] for a whole `http::Request` with a byte body.
///
/// # Errors
/// As [`sign`].
pub fn sign_request(
    request: &mut http::Request<Vec<u8>>,
    params: &SigningParams<'_>,
    now_unix_secs: i64,
) -> Result<(), SigV4Error> {
    let (mut parts, body) = std::mem::take(request).into_parts();
    let result = sign(&mut parts, &body, params, now_unix_secs);
    *request = http::Request::from_parts(parts, body);
    result
}
