//! Server side: checks a parsed [`SignatureClaim`] against the request it came with.
//!
//! Order: credential scope, then the clock, then the payload hash, then the signature. The caller
//! runs [`crate::parse_claim`] first and looks the access key up between the two (AWS answers
//! `UnrecognizedClientException` for an unknown key after the scope checks; ours come after the
//! lookup, which only changes which error a request with several faults gets).

use coffer_crypto::{constant_time_eq, hex, sha256};
use http::request::Parts;

use crate::canonical::{
    CanonicalParts, TERMINATOR, UNSIGNED_PAYLOAD, canonical_request, credential_scope, signature,
    string_to_sign,
};
use crate::claim::SignatureClaim;
use crate::error::{ScopeProblem, SigV4Error};
use crate::key::SigningKey;
use crate::time::{display_amz_date, parse_amz_date};

/// How far a request's timestamp may be from the server's clock, either way: five minutes for AWS
/// JSON services ("Signature expired: … (… - 5 min.)", Secrets Manager in boto/botocore#3587).
pub const MAX_SKEW_SECS: i64 = 300;

const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Refuses a credential scoped to a region other than `expected_region`: "Credential should be
/// scoped to a valid region, not 'wrong-region'." (SQS, quoted in a public integration guide).
/// Separate from [`verify`] because which regions an endpoint serves is the caller's business.
///
/// # Errors
/// `InvalidSignatureException` when the regions differ.
pub fn check_region(claim: &SignatureClaim, expected_region: &str) -> Result<(), SigV4Error> {
    if claim.region == expected_region {
        Ok(())
    } else {
        Err(SigV4Error::ScopeMismatch(vec![ScopeProblem::Region {
            claimed: claim.region.clone(),
        }]))
    }
}

/// Verifies the signature and its freshness. `now_unix_secs` is the server's clock, passed in so
/// this stays pure; `expected_service` is the signing name this endpoint answers to (e.g.
/// `secretsmanager`), or `None` to accept any.
///
/// # Errors
/// `InvalidSignatureException` for a scope that does not match the request or service, a
/// timestamp outside the allowed window, a body that does not match `x-amz-content-sha256`, or a
/// signature that does not match; `IncompleteSignatureException` for a claim whose timestamp is
/// not ISO 8601 basic format (only possible for a hand-built claim).
pub fn verify(
    parts: &Parts,
    body: &[u8],
    claim: &SignatureClaim,
    key: &SigningKey,
    now_unix_secs: i64,
    expected_service: Option<&str>,
) -> Result<(), SigV4Error> {
    check_scope(claim, expected_service)?;
    check_time(claim, now_unix_secs)?;

    let body_hash = hex(&sha256(body));
    let scope = credential_scope(&claim.date, &claim.region, &claim.service);
    let check = |payload_hash: &[u8]| {
        let canonical = canonical_request(&CanonicalParts {
            method: parts.method.as_str(),
            uri: &parts.uri,
            headers: &parts.headers,
            signed_headers: &claim.signed_headers,
            payload_hash,
            presigned: claim.presigned,
        });
        let to_sign = string_to_sign(&claim.amz_date, &scope, &canonical);
        let expected = signature(key, &to_sign);
        if constant_time_eq(expected.as_bytes(), claim.signature.as_bytes()) {
            Ok(())
        } else {
            Err(SigV4Error::SignatureDoesNotMatch {
                canonical_request: String::from_utf8_lossy(&canonical).into_owned(),
                string_to_sign: to_sign,
            })
        }
    };

    match parts
        .headers
        .get(X_AMZ_CONTENT_SHA256)
        .map(http::HeaderValue::as_bytes)
    {
        // The header replaces the body hash in the canonical request (botocore `canonical_request`
        // does exactly this), so it must be checked against the body actually received or the
        // body could be swapped under a valid signature. UNSIGNED-PAYLOAD is honoured only for
        // presigned URLs, where the signer chose not to bind the body.
        Some(declared) if declared == body_hash.as_bytes() => check(declared),
        Some(declared) if claim.presigned && declared == UNSIGNED_PAYLOAD.as_bytes() => {
            check(declared)
        }
        Some(_) => Err(SigV4Error::ContentSha256Mismatch),
        // A presigned URL may have been signed over UNSIGNED-PAYLOAD without saying so in a
        // header (S3-style presigners, `aws-sigv4` with `SignableBody::UnsignedPayload`).
        None if claim.presigned => check(body_hash.as_bytes())
            .or_else(|err| check(UNSIGNED_PAYLOAD.as_bytes()).map_err(|_| err)),
        None => check(body_hash.as_bytes()),
    }
}

fn check_scope(claim: &SignatureClaim, expected_service: Option<&str>) -> Result<(), SigV4Error> {
    let mut problems = Vec::new();
    if let Some(expected) = expected_service
        && claim.service != expected
    {
        problems.push(ScopeProblem::Service {
            expected: expected.to_owned(),
        });
    }
    if claim.terminator != TERMINATOR {
        problems.push(ScopeProblem::Terminator {
            claimed: claim.terminator.clone(),
        });
    }
    let request_date = claim.amz_date.get(..8).unwrap_or(&claim.amz_date);
    if claim.date != request_date {
        problems.push(ScopeProblem::Date {
            scope_date: claim.date.clone(),
            request_date: request_date.to_owned(),
            amz_date: claim.amz_date.clone(),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SigV4Error::ScopeMismatch(problems))
    }
}

/// A window of `secs` the way AWS spells it in "Signature expired" messages ("5 min", "15 min").
fn spell_window(secs: u64) -> String {
    if secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} sec")
    }
}

/// Header-signed requests must be within [`MAX_SKEW_SECS`] of now either way; the bounds
/// themselves are accepted ("is now earlier than" / "is still later than" are strict). A
/// presigned request is valid from its timestamp (less the same skew) until `X-Amz-Expires`
/// seconds after it; without `X-Amz-Expires` it gets the header window, as AWS JSON services
/// apply their usual window to presigned requests (aws/aws-sdk-go#2167, STS).
fn check_time(claim: &SignatureClaim, now: i64) -> Result<(), SigV4Error> {
    let signed_at = parse_amz_date(&claim.amz_date).ok_or_else(|| SigV4Error::MalformedDate {
        value: claim.amz_date.clone(),
    })?;
    let latest = now.saturating_add(MAX_SKEW_SECS);
    if signed_at > latest {
        return Err(SigV4Error::SignatureNotYetCurrent {
            signed_at: claim.amz_date.clone(),
            latest: display_amz_date(latest),
            now: display_amz_date(now),
        });
    }
    let window = match (claim.presigned, claim.expires) {
        (true, Some(expires)) => expires,
        _ => MAX_SKEW_SECS.unsigned_abs(),
    };
    let earliest = now.saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
    if signed_at < earliest {
        return Err(SigV4Error::SignatureExpired {
            signed_at: claim.amz_date.clone(),
            earliest: display_amz_date(earliest),
            now: display_amz_date(now),
            window: spell_window(window),
        });
    }
    Ok(())
}
