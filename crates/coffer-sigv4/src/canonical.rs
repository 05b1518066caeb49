//! The canonical request and the string to sign, shared by the signer and the verifier so the two
//! cannot drift apart.
//!
//! Follows AWS "Create a canonical request for Signature Version 4" for services other than S3:
//! the path is normalised and every segment encoded a second time, the query is decoded and
//! re-encoded then sorted, header values are trimmed with runs of spaces collapsed. Where the AWS
//! documentation is silent the official Rust signer (`aws-sigv4`) decides, and the tests check
//! against it. The canonical request is built as bytes: a header value that is not UTF-8 is
//! hashed exactly as received rather than rejected.

use coffer_crypto::{hex, hmac_sha256, sha256};
use http::{HeaderMap, Uri};

use crate::encoding::{parse_query, uri_encode, uri_encode_into};
use crate::key::SigningKey;

/// The only algorithm AWS SigV4 (not SigV4a) defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The credential scope terminator.
pub const TERMINATOR: &str = "aws4_request";
/// The payload hash that exempts the body from the signature (presigned requests only).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The query parameter carrying a presigned request's signature; excluded from its canonical query.
pub(crate) const X_AMZ_SIGNATURE: &str = "X-Amz-Signature";

/// Removes `.` and `..` segments and empty segments (`//`), keeping a trailing slash, as
/// `aws-sigv4` and botocore do ("Normalize URI paths according to RFC 3986 … AWS services require
/// consecutive slashes to be removed", botocore `utils.remove_dot_segments`).
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    if !path.contains('.') && !path.contains("//") && path.starts_with('/') {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    normalized.push('/');
    normalized.push_str(&segments.join("/"));
    let trailing = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    normalized
}

/// The canonical URI for non-S3 services: the path exactly as sent on the wire (already
/// percent-encoded by the client), normalised, then URI-encoded again with `/` kept. "Each path
/// segment must be URI-encoded twice … except for Amazon S3" (AWS SigV4 docs); the SDKs do it by
/// encoding the already-encoded path, so `%2F` becomes `%252F`.
#[must_use]
pub fn canonical_uri(raw_path: &str) -> String {
    let normalized = normalize_path(raw_path);
    let mut out = String::with_capacity(normalized.len() + 8);
    uri_encode_into(normalized.as_bytes(), true, &mut out);
    out
}

/// The canonical query string: every parameter decoded, re-encoded with the SigV4 set, sorted by
/// encoded key then encoded value (repeated keys are kept), joined with `&`. A presigned request's
/// own `X-Amz-Signature` is left out, since it cannot sign itself.
#[must_use]
pub fn canonical_query(raw_query: Option<&str>, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw_query.unwrap_or_default())
        .into_iter()
        .filter(|(key, _)| !(presigned && key.as_slice() == X_AMZ_SIGNATURE.as_bytes()))
        .map(|(key, value)| (uri_encode(&key), uri_encode(&value)))
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Appends a header value trimmed and with runs of spaces collapsed ("Trimall", AWS SigV4 docs).
fn push_trimmed(value: &[u8], out: &mut Vec<u8>) {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    let mut previous_space = false;
    for &b in value.get(start..end).unwrap_or_default() {
        if b == b' ' {
            if !previous_space {
                out.push(b);
            }
            previous_space = true;
        } else {
            out.push(b);
            previous_space = false;
        }
    }
}

/// The canonical value of one signed header: all its values, trimmed, joined by `,`. `host` falls
/// back to the request URI's authority (HTTP/2 carries it as `:authority`, not as a header).
fn push_header_value(name: &str, uri: &Uri, headers: &HeaderMap, out: &mut Vec<u8>) {
    let lookup = if name == ":authority" { "host" } else { name };
    let mut values = headers.get_all(lookup).iter().peekable();
    if values.peek().is_none() {
        if lookup == "host"
            && let Some(authority) = uri.authority()
        {
            out.extend_from_slice(authority.as_str().as_bytes());
        }
        return;
    }
    let mut first = true;
    for value in values {
        if !first {
            out.push(b',');
        }
        first = false;
        push_trimmed(value.as_bytes(), out);
    }
}

/// Everything the canonical request is made of.
pub struct CanonicalParts<'a> {
    /// The HTTP method, upper case as sent.
    pub method: &'a str,
    /// The request URI (path and query as received).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The signed header names, lower case, in the order the client listed them.
    pub signed_headers: &'a [String],
    /// The payload hash: hex SHA-256 of the body, or `x-amz-content-sha256` as sent.
    pub payload_hash: &'a [u8],
    /// A presigned (query) request: its `X-Amz-Signature` is not part of the query.
    pub presigned: bool,
}

/// The canonical request, as bytes.
#[must_use]
pub fn canonical_request(parts: &CanonicalParts<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(parts.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(parts.uri.query(), parts.presigned).as_bytes());
    out.push(b'\n');
    for name in parts.signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        push_header_value(name, parts.uri, parts.headers, &mut out);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(parts.signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(parts.payload_hash);
    out
}

/// `date/region/service/aws4_request`.
#[must_use]
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/{TERMINATOR}")
}

/// The string to sign: algorithm, timestamp, scope and the hex SHA-256 of the canonical request.
#[must_use]
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &[u8]) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex(&sha256(canonical_request))
    )
}

/// The signature: lower-case hex HMAC-SHA256 of the string to sign under the signing key.
#[must_use]
pub fn signature(key: &SigningKey, string_to_sign: &str) -> String {
    hex(&hmac_sha256(key.expose(), string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_then_encoded_again() {
        for (raw, canonical) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/a//b/", "/a/b/"),
            ("/a/./b/../c", "/a/c"),
            ("/../..", "/"),
            ("/a/..", "/"),
            ("/a/b/.", "/a/b/"),
            ("/a%20b/%2F", "/a%2520b/%252F"),
            ("/~user/a-b_c.d", "/~user/a-b_c.d"),
            (
                "/a:b@c!$&'()*+,;=",
                "/a%3Ab%40c%21%24%26%27%28%29%2A%2B%2C%3B%3D",
            ),
        ] {
            assert_eq!(canonical_uri(raw), canonical, "{raw:?}");
        }
    }

    #[test]
    fn query_is_sorted_by_encoded_key_then_value() {
        assert_eq!(canonical_query(None, false), "");
        assert_eq!(
            canonical_query(Some("b=2&a=3&a=1&A=x"), false),
            "A=x&a=1&a=3&b=2"
        );
        assert_eq!(canonical_query(Some("k&e="), false), "e=&k=");
        assert_eq!(
            canonical_query(Some("a=b+c%2fd&%7e=~"), false),
            "a=b%20c%2Fd&~=~"
        );
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=abc&X-Amz-Date=1"), true),
            "X-Amz-Date=1"
        );
        assert_eq!(
            canonical_query(Some("X-Amz-Signature=abc"), false),
            "X-Amz-Signature=abc"
        );
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        let mut out = Vec::new();
        push_trimmed(b"  a   b \t c  ", &mut out);
        assert_eq!(out, b"a b \t c");
        out.clear();
        push_trimmed(b"   ", &mut out);
        assert_eq!(out, b"");
        out.clear();
        push_trimmed(&[0xff, b' ', b' ', 0x80], &mut out);
        assert_eq!(out, [0xff, b' ', 0x80]);
    }
}
