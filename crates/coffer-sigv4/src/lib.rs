//! AWS Signature Version 4, as pure functions: the canonical request, server-side verification
//! and a client signer, for AWS services other than S3 (the path is encoded twice and normalised).
//!
//! This crate owns the SigV4 wire rules and AWS's exact error codes and messages for them. It must
//! never do IO, read a clock, hold global state or look a credential up: the caller passes "now"
//! in and resolves access keys itself (an unknown key is the caller's
//! `UnrecognizedClientException`, "The security token included in the request is invalid.").
//!
//! Server side, per request:
//! 1. [`parse_claim`] reads the `Authorization` header or presigned query;
//! 2. the caller looks up `claim.access_key_id` and, if it serves fixed regions, calls
//!    [`check_region`];
//! 3. [`derive_signing_key`] gives the signing key (callers cache it per access key and day);
//! 4. [`verify`] checks scope, clock skew, payload hash and signature (in constant time).
//!
//! Client side, [`sign`] adds `x-amz-date`, `x-amz-security-token` and `authorization`.
//!
//! Every function returns an error for bad input; none panics.

#![forbid(unsafe_code)]

pub mod canonical;
mod claim;
mod encoding;
mod error;
mod key;
mod sign;
mod time;
mod verify;

pub use claim::{MAX_PRESIGNED_EXPIRES_SECS, SignatureClaim, parse_claim};
pub use error::{AuthorizationParam, ExpiresProblem, ScopeProblem, SigV4Error};
pub use key::{SigningKey, derive_signing_key};
pub use sign::{Credentials, SigningParams, sign, sign_request};
pub use time::{format_amz_date, parse_amz_date, parse_http_date};
pub use verify::{MAX_SKEW_SECS, check_region, verify};
