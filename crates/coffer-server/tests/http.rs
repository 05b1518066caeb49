//! The server over real sockets: routes, body limit, HTTP/1.1 and HTTP/2, TLS, the dev admin
//! routes and graceful shutdown.
//!
//! Every test here starts a server over a real store, so it needs a working
//! `coffer_core::Coffer::init` (dev mode calls it; the TLS test calls it directly).

mod common;

use std::time::Duration;

use coffer_core::{Coffer, InitOptions};
use coffer_server::{DEFAULT_MAX_BODY_BYTES, DevOptions, ServerConfig, write_tls_certificate};
use common::{
    LOOPBACK_ANY_PORT, dev_config, http1, http1_over, http2_over, start, tls_client_trusting,
    tls_connect,
};
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn manual_clock() -> DevOptions {
    DevOptions {
        manual_clock: true,
        ..DevOptions::default()
    }
}

#[tokio::test]
async fn health_over_http1_and_h2c() {
    let server = start(dev_config(DevOptions::default())).await;
    let reply = http1(server.addr, Method::GET, "/health", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.json(), serde_json::json!({ "status": "ok" }));

    let stream = TcpStream::connect(server.addr).await.unwrap();
    let reply = http2_over(stream, Method::GET, &server.addr.to_string(), "/health", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!({ "status": "ok" }));
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let server = start(dev_config(DevOptions::default())).await;
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::PUT, "/"),
        (Method::DELETE, "/health"),
        (Method::POST, "/_coffer/anything"),
    ] {
        let reply = http1(server.addr, method.clone(), path, "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.json()["__type"], "NotFound", "{method} {path}");
    }
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn every_post_goes_to_the_aws_endpoint() {
    let server = start(dev_config(DevOptions::default())).await;
    for path in ["/", "/health", "/some/path"] {
        let reply = http1(server.addr, Method::POST, path, "{}").await;
        // Whatever the endpoint answers to an unsigned request, it is not one of the server's own.
        assert_ne!(reply.status, StatusCode::NOT_FOUND, "POST {path}");
        assert_ne!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "POST {path}");
    }
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let server = start(dev_config(DevOptions::default())).await;
    let at_limit = http1(
        server.addr,
        Method::POST,
        "/",
        vec![b'a'; DEFAULT_MAX_BODY_BYTES],
    )
    .await;
    assert_ne!(at_limit.status, StatusCode::PAYLOAD_TOO_LARGE);

    let over = http1(
        server.addr,
        Method::POST,
        "/",
        vec![b'a'; DEFAULT_MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        over.content_type.as_deref(),
        Some("application/x-amz-json-1.1")
    );
    let body = over.json();
    assert_eq!(body["__type"], "SerializationException");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Request body too large"),
        "{body}"
    );

    // Over HTTP/2 the client gets the 413 too, not a reset stream.
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let over = http2_over(
        stream,
        Method::POST,
        &server.addr.to_string(),
        "/",
        vec![b'a'; DEFAULT_MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);

    // A client that waits for `100 Continue` is answered 413 at once and never asked for the body.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        DEFAULT_MAX_BODY_BYTES + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_some(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_client_still_sending_its_oversized_body_reads_the_413() {
    // Without `Expect: 100-continue` the client sends the whole body before it reads. Were the
    // server to answer and close at once, the client's socket would be reset and the 413 lost.
    let server = start(dev_config(DevOptions::default())).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let size = 4 * DEFAULT_MAX_BODY_BYTES;
    let sending = tokio::spawn(async move {
        let head = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n");
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&vec![b'a'; size]).await?;
        Ok::<_, std::io::Error>(writer)
    });
    let writer = sending
        .await
        .unwrap()
        .expect("the server stopped reading the body");
    let mut response = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    drop(writer);
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    // No Content-Length: the limit is enforced while reading.
    let mut config = dev_config(DevOptions::default());
    config.max_body_bytes = 1024;
    let server = start(config).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let chunk = vec![b'a'; 600];
    let mut request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let response = read_some(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn admin_routes_do_not_exist_without_the_manual_clock() {
    let server = start(dev_config(DevOptions::default())).await;
    for path in ["/_coffer/clock/advance", "/_coffer/tasks/run"] {
        let reply = http1(server.addr, Method::POST, path, r#"{"seconds": 60}"#).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn manual_clock_admin_routes() {
    let server = start(dev_config(manual_clock())).await;
    let advance =
        |seconds: &'static str| http1(server.addr, Method::POST, "/_coffer/clock/advance", seconds);
    let first = advance(r#"{"seconds": 3600}"#).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = advance(r#"{"seconds": 86400}"#).await;
    assert_eq!(second.status, StatusCode::OK);
    let moved = second.json()["now_millis"].as_i64().unwrap()
        - first.json()["now_millis"].as_i64().unwrap();
    // The clock moves only when told: exactly a day, however long the requests took.
    assert_eq!(moved, 86_400_000);

    for bad in [
        "",
        "{}",
        r#"{"seconds": "60"}"#,
        r#"{"seconds": 1.5}"#,
        r#"{"seconds": 60, "x": 1}"#,
    ] {
        let reply = advance(bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(reply.json()["__type"], "ValidationException");
    }

    let run = http1(server.addr, Method::POST, "/_coffer/tasks/run", "").await;
    assert_eq!(run.status, StatusCode::OK);
    assert_eq!(
        run.json(),
        serde_json::json!({ "purged": 0, "rotations": 0 })
    );
    // GET is not a route even with the manual clock.
    assert_eq!(
        http1(server.addr, Method::GET, "/_coffer/tasks/run", "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn dev_mode_reports_its_credentials_and_removes_its_directory() {
    let options = DevOptions {
        account_id: "111122223333".into(),
        ..DevOptions::default()
    };
    let server = coffer_server::Server::bind(dev_config(options))
        .await
        .unwrap();
    let credentials = server.dev_credentials().expect("dev credentials");
    assert_eq!(credentials.account_id, "111122223333");
    assert_eq!(credentials.region, "us-east-1");
    assert!(!credentials.access_key_id.is_empty());
    assert!(!credentials.secret_access_key.is_empty());
    assert_eq!(server.scheme(), "http");

    let data_dir = server.data_dir().to_path_buf();
    assert!(
        data_dir.join("root.key").exists(),
        "dev mode initialises {}",
        data_dir.display()
    );
    let running = common::start_bound(server);
    running.shut_down(Duration::from_secs(5)).await.unwrap();
    assert!(!data_dir.exists(), "{} was not removed", data_dir.display());
}

#[tokio::test]
async fn https_with_the_init_certificate() {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(dir.path(), &InitOptions { account_id: None }).unwrap();
    let files = write_tls_certificate(dir.path(), &["coffer.test".to_owned()]).unwrap();
    let mut config = ServerConfig::data_dir(dir.path());
    config.listen = LOOPBACK_ANY_PORT.parse().unwrap();
    let server = coffer_server::Server::bind(config).await.unwrap();
    assert_eq!(server.scheme(), "https");
    assert!(server.dev_credentials().is_none());
    let server = common::start_bound(server);
    let authority = server.addr.to_string();

    // HTTP/1.1, verifying the certificate as 127.0.0.1 and as localhost.
    let connector = tls_client_trusting(&files.cert, &[b"http/1.1"]);
    for name in ["127.0.0.1", "localhost", "coffer.test"] {
        let stream = tls_connect(&connector, server.addr, name).await.unwrap();
        let reply = http1_over(stream, Method::GET, &authority, "/health", "").await;
        assert_eq!(reply.status, StatusCode::OK, "{name}");
        assert_eq!(reply.json(), serde_json::json!({ "status": "ok" }));
    }
    // A name the certificate does not cover fails verification.
    assert!(
        tls_connect(&connector, server.addr, "other.example")
            .await
            .is_err()
    );

    // HTTP/2 by ALPN.
    let connector = tls_client_trusting(&files.cert, &[b"h2", b"http/1.1"]);
    let stream = tls_connect(&connector, server.addr, "localhost")
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let reply = http2_over(stream, Method::GET, &authority, "/health", "").await;
    assert_eq!(reply.status, StatusCode::OK);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(!read_some(&mut plain).await.starts_with("HTTP/1.1 200"));

    server.shut_down(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let server = start(dev_config(DevOptions::default())).await;
    let addr = server.addr;
    // An idle keep-alive connection must not hold shutdown up.
    let idle = TcpStream::connect(addr).await.unwrap();

    // A request whose body is half sent when shutdown begins.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let run = server.signal_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !run.is_finished(),
        "shutdown must wait for the in-flight request"
    );

    stream.write_all(b"56789").await.unwrap();
    let response = read_some(&mut stream).await;
    assert!(
        response.starts_with("HTTP/1.1 "),
        "the in-flight request got no response: {response:?}"
    );

    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(idle);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn shutdown_is_bounded_by_the_grace_period() {
    let mut config = dev_config(DevOptions::default());
    config.shutdown_grace = Duration::from_millis(300);
    let server = start(config).await;
    // A request that never completes.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.shut_down(Duration::from_secs(5)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// Reads what arrives until the peer closes, a response is complete enough to judge, or 5 s.
async fn read_some(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}
