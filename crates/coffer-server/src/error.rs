//! Why a server could not start. Messages say what is wrong; the binary adds what to do next
//! in terms of its own flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use coffer_core::CoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory exists (or not) but `coffer init` has not been run on it.
    #[error("data directory {} is not initialised", dir.display())]
    NotInitialised { dir: PathBuf },

    /// The data directory, or a file in it, cannot be read: usually permissions, or the
    /// server runs as a different user than `coffer init` did.
    #[error("cannot read data directory {}: {source}", dir.display())]
    DataDirUnreadable {
        dir: PathBuf,
        source: std::io::Error,
    },

    /// Plain HTTP on an address other hosts can reach would send credentials and secret
    /// values in clear text.
    #[error(
        "refusing plain HTTP on the non-loopback address {addr}: credentials and secret values would cross the network in clear text"
    )]
    InsecureNonLoopback { addr: SocketAddr },

    /// The dev server has a throw-away store, plain HTTP and prints root credentials: it is for
    /// this machine only.
    #[error("the dev server listens on loopback only, not on {addr}")]
    DevNonLoopback { addr: SocketAddr },

    #[error("invalid server configuration: {0}")]
    InvalidConfig(&'static str),

    /// Another process (often another coffer, or LocalStack on 4566) holds the port.
    #[error("cannot listen on {addr}: address already in use")]
    AddrInUse { addr: SocketAddr },

    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },

    /// The certificate or key in `DATA_DIR/tls/` is missing, unreadable or not usable.
    #[error("cannot load the TLS certificate {}: {reason}", path.display())]
    TlsFiles { path: PathBuf, reason: String },

    /// Generating or writing the self-signed certificate failed.
    #[error("cannot write the TLS certificate to {}: {reason}", path.display())]
    TlsCertificate { path: PathBuf, reason: String },

    #[error("cannot create a temporary data directory for the dev server: {0}")]
    DevDataDir(std::io::Error),

    /// Opening or initialising the store failed.
    #[error("{0}")]
    Core(#[from] CoreError),

    /// A rotation function of [`crate::ServerConfig::rotation_functions`] (`coffer server
    /// --rotation-functions FILE`) could not be registered.
    #[error("cannot register the rotation function {arn}: {reason}")]
    RotationFunction { arn: String, reason: String },

    /// A start-up task panicked or was cancelled.
    #[error("server start-up was interrupted: {0}")]
    Startup(String),
}
