//! STUB: replaced by the real protocol layer. Public API that the server builds against.
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use coffer_core::Coffer;

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
    _coffer: Arc<Coffer>,
    _auth: AuthMode,
}

impl Endpoint {
    #[must_use]
    pub fn new(coffer: Arc<Coffer>, auth: AuthMode) -> Self {
        Self { _coffer: coffer, _auth: auth }
    }

    /// Handles one AWS API request whose body has been read in full (the server enforces the
    /// body size limit before calling this).
    pub async fn handle(&self, _request: http::Request<Bytes>, _source_ip: IpAddr) -> http::Response<Bytes> {
        http::Response::new(Bytes::new())
    }
}
