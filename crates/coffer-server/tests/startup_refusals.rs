//! Start-ups the server must refuse, before it opens a store. None of these needs an
//! initialised data directory.
#![allow(clippy::expect_used)]

mod common;

use std::net::TcpListener;

use coffer_server::{DevOptions, Mode, Server, ServerConfig, ServerError, Transport};
use common::{LOOPBACK_ANY_PORT, dev_config};

fn insecure(data_dir: &std::path::Path, listen: &str, allow_non_loopback: bool) -> ServerConfig {
    let mut config = ServerConfig::data_dir(data_dir);
    config.mode = Mode::DataDir {
        path: data_dir.to_path_buf(),
        transport: Transport::InsecureHttp { allow_non_loopback },
    };
    config.listen = listen.parse().expect("socket address");
    config
}

/// `Server` is not `Debug`, so `unwrap_err` is not available.
async fn refusal(config: ServerConfig) -> ServerError {
    match Server::bind(config).await {
        Ok(server) => panic!("started on {}", server.local_addr()),
        Err(e) => e,
    }
}

#[tokio::test]
async fn plain_http_on_a_non_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let err = refusal(insecure(dir.path(), listen, false)).await;
        assert!(
            matches!(err, ServerError::InsecureNonLoopback { .. }),
            "{listen}: {err}"
        );
        assert!(err.to_string().contains("clear text"), "{err}");
    }
}

#[tokio::test]
async fn the_loopback_check_comes_before_the_data_dir_check() {
    // Refused for the address even though the directory is not initialised either: the more
    // dangerous mistake is reported first.
    let dir = tempfile::tempdir().unwrap();
    let err = refusal(insecure(dir.path(), "0.0.0.0:0", false)).await;
    assert!(
        matches!(err, ServerError::InsecureNonLoopback { .. }),
        "{err}"
    );
    // Allowed explicitly, the next check (initialised?) is what stops it.
    let err = refusal(insecure(dir.path(), "0.0.0.0:0", true)).await;
    assert!(matches!(err, ServerError::NotInitialised { .. }), "{err}");
}

#[tokio::test]
async fn dev_mode_is_loopback_only() {
    let mut config = ServerConfig::dev(DevOptions::default());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = refusal(config).await;
    assert!(matches!(err, ServerError::DevNonLoopback { .. }), "{err}");
}

#[tokio::test]
async fn an_uninitialised_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("does-not-exist")] {
        let mut config = ServerConfig::data_dir(&path);
        config.listen = LOOPBACK_ANY_PORT.parse().unwrap();
        match refusal(config).await {
            ServerError::NotInitialised { dir } => assert_eq!(dir, path),
            other => panic!("{}: {other}", path.display()),
        }
    }
}

#[tokio::test]
async fn tls_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Looks initialised to the server's pre-check; the certificate is what is missing.
    std::fs::write(dir.path().join("root.key"), b"placeholder").unwrap();
    let mut config = ServerConfig::data_dir(dir.path());
    config.listen = LOOPBACK_ANY_PORT.parse().unwrap();
    let err = refusal(config).await;
    assert!(matches!(err, ServerError::TlsFiles { .. }), "{err}");
    assert!(err.to_string().contains("cert.pem"), "{err}");
}

#[tokio::test]
async fn a_port_in_use_is_reported_as_such() {
    let taken = TcpListener::bind(LOOPBACK_ANY_PORT).unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = dev_config(DevOptions::default());
    config.listen = addr;
    match refusal(config).await {
        ServerError::AddrInUse { addr: reported } => assert_eq!(reported, addr),
        other => panic!("{other}"),
    }
}
