//! Reading what a request claims about its signature, from the `Authorization` header or from a
//! presigned query string. Parsing only: nothing here knows a key or the time.
//!
//! The checks run in the order AWS runs them, as recorded from DynamoDB in dynalite's `index.js`:
//! missing parameters, then the date format, then `host` being signed, then the algorithm, then
//! the credential's shape. Scope, clock skew and the signature itself are [`crate::verify`]'s.

use std::fmt;

use http::header::{AUTHORIZATION, DATE};
use http::request::Parts;

use crate::canonical::{ALGORITHM, X_AMZ_SIGNATURE};
use crate::encoding::parse_query;
use crate::error::{AuthorizationParam, ExpiresProblem, SigV4Error};
use crate::time::{format_amz_date, parse_amz_date, parse_http_date};

/// The longest a presigned request may be valid: seven days, the life of a signing key
/// (AWS "Authenticating Requests: Using Query Parameters").
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// What the `Authorization` header (or presigned query) says: who signed, for which scope, when,
/// over which headers, and the signature to check.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureClaim {
    /// The access key id, the first element of the credential.
    pub access_key_id: String,
    /// The credential scope's date, `YYYYMMDD`.
    pub date: String,
    /// The credential scope's region.
    pub region: String,
    /// The credential scope's service.
    pub service: String,
    /// The credential scope's terminator; valid only when `aws4_request`.
    pub terminator: String,
    /// The signed header names, lower-cased, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// The signature, as sent (64 lower-case hex digits when well formed).
    pub signature: String,
    /// The request timestamp `YYYYMMDDTHHMMSSZ`: `X-Amz-Date`, or the `Date` header converted.
    pub amz_date: String,
    /// `X-Amz-Security-Token` (header or query), for temporary credentials.
    pub security_token: Option<String>,
    /// A presigned request's `X-Amz-Expires`, in seconds.
    pub expires: Option<u64>,
    /// Whether the claim came from the query string (a presigned URL) rather than the header.
    pub presigned: bool,
}

impl fmt::Debug for SignatureClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureClaim")
            .field("access_key_id", &self.access_key_id)
            .field("date", &self.date)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("terminator", &self.terminator)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &self.signature)
            .field("amz_date", &self.amz_date)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires", &self.expires)
            .field("presigned", &self.presigned)
            .finish()
    }
}

/// Reads the signature claim from the request's `Authorization` header or presigned query.
///
/// # Errors
/// `MissingAuthenticationTokenException` when the request carries no authentication,
/// `IncompleteSignatureException` when it is malformed or partial, `InvalidSignatureException`
/// when `host` is not signed or both header and query authentication are present.
pub fn parse_claim(parts: &Parts) -> Result<SignatureClaim, SigV4Error> {
    let query = parse_query(parts.uri.query().unwrap_or_default());
    let query_algorithm = query
        .iter()
        .any(|(key, _)| key.as_slice() == b"X-Amz-Algorithm");
    match (parts.headers.get(AUTHORIZATION), query_algorithm) {
        (Some(_), true) => Err(SigV4Error::AmbiguousAuthentication),
        (None, false) => Err(SigV4Error::MissingAuthenticationToken),
        (Some(authorization), false) => {
            from_header(parts, &String::from_utf8_lossy(authorization.as_bytes()))
        }
        (None, true) => from_query(&query),
    }
}

fn header_text(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

enum RequestDate {
    Amz(String),
    Http(String),
}

fn from_header(parts: &Parts, authorization: &str) -> Result<SignatureClaim, SigV4Error> {
    let trimmed = authorization.trim();
    let (algorithm, rest) = trimmed
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((trimmed, ""));

    // Only a SigV4-shaped header is taken apart. Anything else (SigV2's `AWS AKID:sig`, a bearer
    // token) is answered as if every parameter were missing, as SSM does for SigV2: "Authorization
    // header requires 'Credential' parameter. … Authorization=AWS xxxxx:yyyyyyy" (aws/aws-sdk-js#4285).
    let mut params: Vec<(&str, &str)> = Vec::new();
    if algorithm.starts_with("AWS4-") {
        // Elements are separated by commas and/or spaces; an element without `=` is refused,
        // e.g. "'/20210706/us-east-2/dynamodb/aws4_request' not a valid key=value pair (missing
        // equal-sign)" for `Credential=<cred> /20210706/...` (fhir-works-on-aws-deployment#379).
        for element in rest
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|e| !e.is_empty())
        {
            match element.split_once('=') {
                Some(pair) => params.push(pair),
                None => {
                    return Err(SigV4Error::MalformedAuthorizationPair {
                        pair: element.to_owned(),
                        authorization: authorization.to_owned(),
                    });
                }
            }
        }
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .filter(|v| !v.is_empty())
    };
    let credential = param(AuthorizationParam::Credential.name());
    let signature = param(AuthorizationParam::Signature.name());
    let signed_headers = param(AuthorizationParam::SignedHeaders.name());
    // `X-Amz-Date` wins over `Date` ("If both are present, X-Amz-Date takes precedence", AWS
    // "Elements of an AWS API request signature").
    let date_value = match (
        header_text(parts, X_AMZ_DATE),
        header_text(parts, DATE.as_str()),
    ) {
        (Some(amz), _) => Some(RequestDate::Amz(amz)),
        (None, Some(http)) => Some(RequestDate::Http(http)),
        (None, None) => None,
    };
    let missing_date = date_value.is_none();

    let (Some(credential), Some(signature), Some(signed_headers), Some(date_value)) =
        (credential, signature, signed_headers, date_value)
    else {
        let missing = [
            (AuthorizationParam::Credential, credential),
            (AuthorizationParam::Signature, signature),
            (AuthorizationParam::SignedHeaders, signed_headers),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_none())
        .map(|(param, _)| param)
        .collect();
        return Err(SigV4Error::IncompleteAuthorization {
            missing,
            missing_date,
            authorization: authorization.to_owned(),
        });
    };

    // A `Date` header is converted to the ISO form, which is what the string to sign carries.
    let amz_date = match date_value {
        RequestDate::Amz(value) => match parse_amz_date(&value) {
            Some(_) => value,
            None => return Err(SigV4Error::MalformedDate { value }),
        },
        RequestDate::Http(value) => match parse_http_date(&value).and_then(format_amz_date) {
            Some(iso) => iso,
            None => return Err(SigV4Error::MalformedDate { value }),
        },
    };

    let signed_headers = split_signed_headers(signed_headers)?;
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm {
            algorithm: algorithm.to_owned(),
        });
    }
    let scope = split_credential(credential)?;
    Ok(SignatureClaim {
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        terminator: scope.terminator,
        signed_headers,
        signature: signature.to_owned(),
        amz_date,
        security_token: header_text(parts, X_AMZ_SECURITY_TOKEN),
        expires: None,
        presigned: false,
    })
}

fn from_query(query: &[(Vec<u8>, Vec<u8>)]) -> Result<SignatureClaim, SigV4Error> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key.as_slice() == name.as_bytes())
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    };
    // The order of AWS's message (dynalite `index.js`).
    const REQUIRED: [&str; 5] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        X_AMZ_SIGNATURE,
        "X-Amz-SignedHeaders",
        "X-Amz-Date",
    ];
    let values: [Option<String>; 5] = REQUIRED.map(|name| param(name).filter(|v| !v.is_empty()));
    let [
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(signed_headers),
        Some(amz_date),
    ] = values.clone()
    else {
        let missing = REQUIRED
            .iter()
            .zip(&values)
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| *name)
            .collect();
        return Err(SigV4Error::IncompleteQuery { missing });
    };
    if parse_amz_date(&amz_date).is_none() {
        return Err(SigV4Error::MalformedDate { value: amz_date });
    }
    let signed_headers = split_signed_headers(&signed_headers)?;
    if algorithm != ALGORITHM {
        return Err(SigV4Error::UnsupportedAlgorithm { algorithm });
    }
    let scope = split_credential(&credential)?;
    let expires = param("X-Amz-Expires")
        .map(|value| parse_expires(&value))
        .transpose()?;
    Ok(SignatureClaim {
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        terminator: scope.terminator,
        signed_headers,
        signature,
        amz_date,
        security_token: param("X-Amz-Security-Token"),
        expires,
        presigned: true,
    })
}

fn parse_expires(value: &str) -> Result<u64, SigV4Error> {
    let digits_only = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.strip_prefix('-').is_some_and(digits_only) {
        return Err(SigV4Error::InvalidExpires(ExpiresProblem::Negative));
    }
    if !digits_only(value) {
        return Err(SigV4Error::InvalidExpires(ExpiresProblem::NotANumber));
    }
    match value.parse::<u64>() {
        Ok(secs) if secs <= MAX_PRESIGNED_EXPIRES_SECS => Ok(secs),
        _ => Err(SigV4Error::InvalidExpires(ExpiresProblem::TooLarge)),
    }
}

/// Lower-cases the signed header names and insists that `host` (or HTTP/2's `:authority`) is one
/// of them, so a signature cannot be replayed against another endpoint.
fn split_signed_headers(signed_headers: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> = signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if names
        .iter()
        .any(|name| name == "host" || name == ":authority")
    {
        Ok(names)
    } else {
        Err(SigV4Error::HostNotSigned)
    }
}

struct Scope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    terminator: String,
}

/// Splits `keyid/date/region/service/terminator`. Trailing slashes are ignored, as AWS does
/// (dynalite `index.js`: "check Credential (trailing slashes are ignored)").
fn split_credential(credential: &str) -> Result<Scope, SigV4Error> {
    let elements: Vec<&str> = credential.trim_end_matches('/').split('/').collect();
    match elements.as_slice() {
        [access_key_id, date, region, service, terminator] => Ok(Scope {
            access_key_id: (*access_key_id).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            terminator: (*terminator).to_owned(),
        }),
        _ => Err(SigV4Error::MalformedCredential {
            credential: credential.to_owned(),
        }),
    }
}
