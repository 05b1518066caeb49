//! The coffer server: it owns the listening socket, TLS, HTTP/1.1 and HTTP/2 connections, the
//! few routes of its own (`GET /health`, the dev-only `/_coffer/…` admin routes), the request
//! body limit and the background tasks. Everything an AWS client sends goes, as bytes, to
//! [`coffer_protocol::Endpoint`]; this crate never looks inside an AWS request and never logs a
//! request's headers or body (they carry signatures and secret values).
//!
//! Routing is a `match` on method and path over hyper connections (hyper-util's `auto` builder),
//! not an axum router: there are four routes, the AWS endpoint takes every `POST`, and a plain
//! `match` costs nothing per request and answers unknown routes with exactly the JSON 404 we
//! want instead of a framework's 405.
//!
//! ```no_run
//! # async fn example() -> Result<(), coffer_server::ServerError> {
//! use coffer_server::{Server, ServerConfig};
//! let mut config = ServerConfig::data_dir("/var/lib/coffer");
//! config.listen = "127.0.0.1:0".parse().unwrap_or(config.listen);
//! let server = Server::bind(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod admin;
mod config;
mod data_dir;
mod error;
mod routes;
mod server;
mod sinks;
mod tls;

pub use admin::{
    ADMIN_SOCKET, MAX_REQUEST_BYTES, audit_public_key, create_account, list_accounts,
    rotation_cancel, rotation_function_list, rotation_function_register, rotation_function_remove,
    rotation_retry, rotation_status,
};
pub use coffer_protocol::AuthMode;
pub use config::{
    AuditOptions, DEFAULT_DEV_ACCOUNT_ID, DEFAULT_DEV_LISTEN, DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_PURGE_INTERVAL, DEFAULT_SHUTDOWN_GRACE, DEV_REGION, DevOptions,
    MAX_FUNCTION_TIMEOUT_SECS, Mode, RotationFunctionConfig, ServerConfig, Transport,
};
pub use data_dir::is_initialised;
pub use error::ServerError;
pub use server::{AUDIT_DIR, DevCredentials, Server, serve};
pub use sinks::AuditSettings;
pub use tls::{TlsFiles, write_tls_certificate};
