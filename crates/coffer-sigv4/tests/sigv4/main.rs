//! Integration tests for `coffer-sigv4`, in one binary so `aws-sigv4` is linked once.
//!
//! - `known_answers`: AWS's documented examples, byte for byte.
//! - `oracle`: requests signed by the official `aws-sigv4` crate pass our verifier, and our signer
//!   produces the same `Authorization` header.
//! - `refusals`: tables of mutated and malformed requests and the exact AWS error each gets.
//! - `robustness`: arbitrary bytes in every input never panic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failure is a panic

mod known_answers;
mod oracle;
mod refusals;
mod robustness;

use coffer_sigv4::{SigV4Error, derive_signing_key, parse_claim, verify};

/// AWS's documentation example credentials.
pub const AKID: &str = "AKIDEXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z, the timestamp of AWS's examples.
pub const T0: i64 = 1_440_938_160;

/// A request as a server receives it: origin-form URI, headers, body.
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body.to_vec()).unwrap()
}

/// Parses and verifies as the server does, looking the key up with `secret_for`.
pub fn authenticate_with(
    req: &http::Request<Vec<u8>>,
    now: i64,
    service: Option<&str>,
    secret_for: impl Fn(&str) -> Option<&'static str>,
) -> Result<(), SigV4Error> {
    let (parts, body) = req.clone().into_parts();
    let claim = parse_claim(&parts)?;
    let secret = secret_for(&claim.access_key_id).expect("unknown access key in a test");
    let key = derive_signing_key(
        secret.as_bytes(),
        &claim.date,
        &claim.region,
        &claim.service,
    );
    verify(&parts, &body, &claim, &key, now, service)
}

/// [`authenticate_with`] for the documentation key only.
pub fn authenticate(
    req: &http::Request<Vec<u8>>,
    now: i64,
    service: Option<&str>,
) -> Result<(), SigV4Error> {
    authenticate_with(req, now, service, |id| (id == AKID).then_some(SECRET))
}
