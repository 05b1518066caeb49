//! What a server is told when it starts: where its data lives, where it listens and how it
//! talks. The shapes make the dangerous combinations unrepresentable where they can
//! (`AcceptAnyCredentials` and the manual clock exist only in [`Mode::Dev`]) and
//! [`ServerConfig::validate`] refuses the rest before anything is opened or bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coffer_core::Unlock;
use coffer_protocol::AuthMode;

use crate::error::ServerError;

/// `coffer server --data-dir`: HTTPS on loopback unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8443));
/// `coffer server --dev`: the port LocalStack users already point their SDKs at.
pub const DEFAULT_DEV_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4566));
/// The dev account, as in LocalStack and moto, so suites written for them find their ARNs.
pub const DEFAULT_DEV_ACCOUNT_ID: &str = "000000000000";
/// The region the dev server tells clients to use.
pub const DEV_REGION: &str = "us-east-1";
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// AWS documents 65,536 bytes as the largest secret value; base64 of a binary value, the
/// surrounding JSON and a resource policy (20,480 chars) fit in 2 MiB with a wide margin, and
/// nothing legitimate comes close.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// How long shutdown waits for in-flight requests before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub mode: Mode,
    /// How often secrets whose recovery window has ended are purged.
    pub purge_interval: Duration,
    /// Requests with a larger body are answered with 413 without being read.
    pub max_body_bytes: usize,
    /// The bound on finishing in-flight requests after the shutdown signal.
    pub shutdown_grace: Duration,
    /// How a data directory's root key is unlocked (a dev server always uses a key file).
    pub unlock: Arc<Unlock>,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A data directory made by `coffer init`.
    DataDir { path: PathBuf, transport: Transport },
    /// A throw-away data directory, initialised at start and removed at exit; plain HTTP on
    /// loopback only.
    Dev(DevOptions),
}

/// How a data-directory server talks to its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS with the certificate in `DATA_DIR/tls/` (see [`crate::TlsFiles`]).
    Tls,
    /// Plain HTTP. Refused on a non-loopback address unless `allow_non_loopback`, because
    /// every request carries secret values or credentials.
    InsecureHttp { allow_non_loopback: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevOptions {
    /// The 12-digit id of the dev account.
    pub account_id: String,
    /// Take any access key as the dev account's root user without checking signatures.
    pub accept_any_credentials: bool,
    /// Use a clock that moves only when `POST /_coffer/clock/advance` says so, and enable the
    /// `/_coffer/` admin routes.
    pub manual_clock: bool,
}

impl Default for DevOptions {
    fn default() -> Self {
        Self {
            account_id: DEFAULT_DEV_ACCOUNT_ID.to_owned(),
            accept_any_credentials: false,
            manual_clock: false,
        }
    }
}

impl ServerConfig {
    /// A server over an initialised data directory, on [`DEFAULT_LISTEN`] with TLS.
    #[must_use]
    pub fn data_dir(path: impl Into<PathBuf>) -> Self {
        Self::with_mode(
            DEFAULT_LISTEN,
            Mode::DataDir {
                path: path.into(),
                transport: Transport::Tls,
            },
        )
    }

    /// A dev server on [`DEFAULT_DEV_LISTEN`].
    #[must_use]
    pub fn dev(options: DevOptions) -> Self {
        Self::with_mode(DEFAULT_DEV_LISTEN, Mode::Dev(options))
    }

    fn with_mode(listen: SocketAddr, mode: Mode) -> Self {
        Self {
            listen,
            mode,
            purge_interval: DEFAULT_PURGE_INTERVAL,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            unlock: Arc::new(Unlock::File),
        }
    }

    /// Refuses the combinations that would expose credentials or secrets.
    pub fn validate(&self) -> Result<(), ServerError> {
        let loopback = is_loopback(self.listen.ip());
        match &self.mode {
            Mode::Dev(_) if !loopback => Err(ServerError::DevNonLoopback { addr: self.listen }),
            Mode::DataDir {
                transport:
                    Transport::InsecureHttp {
                        allow_non_loopback: false,
                    },
                ..
            } if !loopback => Err(ServerError::InsecureNonLoopback { addr: self.listen }),
            Mode::Dev(_) | Mode::DataDir { .. } => {
                if self.purge_interval.is_zero() {
                    return Err(ServerError::InvalidConfig(
                        "the purge interval must be positive",
                    ));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn auth_mode(&self) -> AuthMode {
        match &self.mode {
            Mode::Dev(DevOptions {
                accept_any_credentials: true,
                ..
            }) => AuthMode::AcceptAnyCredentials,
            Mode::Dev(_) | Mode::DataDir { .. } => AuthMode::SigV4,
        }
    }

    /// Plain HTTP on an address other hosts can reach (allowed only when asked for explicitly).
    #[must_use]
    pub fn serves_plain_http_publicly(&self) -> bool {
        matches!(
            self.mode,
            Mode::DataDir {
                transport: Transport::InsecureHttp { .. },
                ..
            }
        ) && !is_loopback(self.listen.ip())
    }
}

/// `::ffff:127.0.0.1` is loopback too; `0.0.0.0` and `::` (every interface) are not.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insecure(listen: &str, allow_non_loopback: bool) -> ServerConfig {
        let mut config = ServerConfig::data_dir("/nonexistent");
        config.mode = Mode::DataDir {
            path: "/nonexistent".into(),
            transport: Transport::InsecureHttp { allow_non_loopback },
        };
        config.listen = listen.parse().unwrap();
        config
    }

    fn dev(listen: &str) -> ServerConfig {
        let mut config = ServerConfig::dev(DevOptions::default());
        config.listen = listen.parse().unwrap();
        config
    }

    #[test]
    fn validation_table() {
        let cases: &[(&str, ServerConfig, bool)] = &[
            (
                "insecure on 127.0.0.1",
                insecure("127.0.0.1:0", false),
                true,
            ),
            ("insecure on ::1", insecure("[::1]:0", false), true),
            (
                "insecure on ::ffff:127.0.0.1",
                insecure("[::ffff:127.0.0.1]:0", false),
                true,
            ),
            ("insecure on 0.0.0.0", insecure("0.0.0.0:0", false), false),
            ("insecure on ::", insecure("[::]:0", false), false),
            ("insecure on 10.1.2.3", insecure("10.1.2.3:0", false), false),
            (
                "insecure on 0.0.0.0, allowed",
                insecure("0.0.0.0:0", true),
                true,
            ),
            (
                "tls on 0.0.0.0",
                {
                    let mut c = ServerConfig::data_dir("/x");
                    c.listen = "0.0.0.0:0".parse().unwrap();
                    c
                },
                true,
            ),
            ("dev on 127.0.0.1", dev("127.0.0.1:0"), true),
            ("dev on ::1", dev("[::1]:0"), true),
            ("dev on 0.0.0.0", dev("0.0.0.0:0"), false),
            ("dev on 192.168.1.1", dev("192.168.1.1:0"), false),
        ];
        for (name, config, ok) in cases {
            assert_eq!(
                config.validate().is_ok(),
                *ok,
                "{name}: {:?}",
                config.validate()
            );
        }
    }

    #[test]
    fn accept_any_credentials_only_in_dev() {
        assert_eq!(ServerConfig::data_dir("/x").auth_mode(), AuthMode::SigV4);
        assert_eq!(
            ServerConfig::dev(DevOptions::default()).auth_mode(),
            AuthMode::SigV4
        );
        let options = DevOptions {
            accept_any_credentials: true,
            ..DevOptions::default()
        };
        assert_eq!(
            ServerConfig::dev(options).auth_mode(),
            AuthMode::AcceptAnyCredentials
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(
            ServerConfig::data_dir("/x").listen.to_string(),
            "127.0.0.1:8443"
        );
        assert_eq!(
            ServerConfig::dev(DevOptions::default()).listen.to_string(),
            "127.0.0.1:4566"
        );
        assert_eq!(DevOptions::default().account_id, "000000000000");
    }
}
