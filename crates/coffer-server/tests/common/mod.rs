//! Starting a server on a free port and talking to it over HTTP/1.1, HTTP/2 and TLS.
#![allow(dead_code)] // each test file uses a different part
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer_server::{DevOptions, Server, ServerConfig, ServerError};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const LOOPBACK_ANY_PORT: &str = "127.0.0.1:0";

pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Running {
    /// Signals shutdown and waits (at most `within`) for `run` to return.
    pub async fn shut_down(self, within: Duration) -> Result<(), ServerError> {
        let _ = self.stop.send(());
        tokio::time::timeout(within, self.task)
            .await
            .expect("server did not shut down in time")
            .expect("server task panicked")
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(self) -> JoinHandle<Result<(), ServerError>> {
        let _ = self.stop.send(());
        self.task
    }
}

pub fn dev_config(options: DevOptions) -> ServerConfig {
    let mut config = ServerConfig::dev(options);
    config.listen = LOOPBACK_ANY_PORT.parse().unwrap();
    config.shutdown_grace = Duration::from_secs(5);
    config
}

pub async fn start(config: ServerConfig) -> Running {
    let server = Server::bind(config).await.expect("bind");
    start_bound(server)
}

pub fn start_bound(server: Server) -> Running {
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0, "local_addr must report the real port");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn request(
    method: Method,
    authority: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority)
        .body(Full::new(body.into()))
        .unwrap()
}

async fn reply(response: http::Response<hyper::body::Incoming>) -> Reply {
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body,
    }
}

/// One HTTP/1.1 request on a new connection, over any stream.
pub async fn http1_over<S>(
    io: S,
    method: Method,
    authority: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    reply(
        sender
            .send_request(request(method, authority, path, body))
            .await
            .unwrap(),
    )
    .await
}

/// One HTTP/2 request on a new connection, over any stream.
pub async fn http2_over<S>(
    io: S,
    method: Method,
    authority: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Reply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut req = request(method, authority, path, body);
    *req.uri_mut() = format!("http://{authority}{path}").parse().unwrap();
    reply(sender.send_request(req).await.unwrap()).await
}

pub async fn http1(addr: SocketAddr, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    http1_over(stream, method, &addr.to_string(), path, body).await
}

/// A TLS client that trusts exactly the certificate in `cert_pem`.
pub fn tls_client_trusting(cert_pem: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(name.to_owned()).unwrap(), stream)
        .await
}
