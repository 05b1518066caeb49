#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rotation webhooks against a hand-written HTTP/1.1 server on 127.0.0.1 that records what
//! it receives.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use coffer_crypto::SecretBytes;
use coffer_rotation::invoke::{
    CallbackCredentials, FunctionTarget, InvokeErrorKind, OutcomeDetail, PostError, RotationEvent,
    RotationFunction, Step, Target, Webhook, invoke_webhook, post, verify_webhook_signature,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SECRET_ACCESS_KEY: &str = "sak-canary-5a1f9e2b7c44d0e1";
const SESSION_TOKEN: &str = "st-canary-0d3e8f71aa92b6c5e4";
const ROTATION_TOKEN: &str = "rot-canary-77f0c1d2e3";
const SIGNING_SECRET: &str = "whsec-canary-31415926";
const ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:rotate-db";

fn event(step: Step) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf".into(),
        client_request_token: "c0ffee00-1111-4222-8333-944445555666".into(),
        rotation_token: ROTATION_TOKEN.into(),
    }
}

fn creds() -> CallbackCredentials {
    CallbackCredentials {
        endpoint_url: "https://coffer.test:8443".into(),
        region: "eu-west-1".into(),
        access_key_id: "ASIACOFFERTEST000001".into(),
        secret_access_key: SecretBytes::from(SECRET_ACCESS_KEY.to_owned()),
        session_token: SESSION_TOKEN.into(),
    }
}

fn hook(url: String) -> Webhook {
    Webhook {
        url,
        signing_secret: None,
        timeout: Duration::from_secs(10),
        ca_bundle: None,
    }
}

/// What the test server received.
#[derive(Debug)]
struct Seen {
    request_line: String,
    /// Names as they came on the wire.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Seen {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut seen = Seen {
        request_line,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = seen.header("content-length").unwrap().parse().unwrap();
    while seen.body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed before the end of the body");
        seen.body.extend_from_slice(&chunk[..n]);
    }
    seen
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    // The client may stop reading a long body: that is its right.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

/// A server for one request; `extra` are more header lines (each ending in CRLF).
async fn one_shot(
    status: &'static str,
    extra: &'static str,
    body: Vec<u8>,
) -> (String, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let seen = read_request(&mut stream).await;
        answer(&mut stream, status, extra, &body).await;
        seen
    });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn posts_exactly_the_event_with_credentials_and_a_valid_signature() {
    let (base, server) = one_shot("200 OK", "", b"rotated".to_vec()).await;
    let mut webhook = hook(format!("{base}/rotate?fn=db"));
    webhook.signing_secret = Some(SecretBytes::from(SIGNING_SECRET.to_owned()));
    let event = event(Step::CreateSecret);

    let outcome = invoke_webhook(&webhook, &event, &creds()).await.unwrap();
    let seen = server.await.unwrap();

    assert_eq!(seen.request_line, "POST /rotate?fn=db HTTP/1.1");
    assert_eq!(
        seen.header("host"),
        Some(base.trim_start_matches("http://"))
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    // The body is exactly AWS's event.
    assert_eq!(seen.body, event.to_json().as_bytes());
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "Step": "createSecret",
            "SecretId": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf",
            "ClientRequestToken": "c0ffee00-1111-4222-8333-944445555666",
            "RotationToken": ROTATION_TOKEN,
        })
    );
    // The credentials, under the documented (title-cased) names.
    let exact = |name: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(exact("X-Coffer-Endpoint"), Some("https://coffer.test:8443"));
    assert_eq!(exact("X-Coffer-Region"), Some("eu-west-1"));
    assert_eq!(
        exact("X-Coffer-Access-Key-Id"),
        Some("ASIACOFFERTEST000001")
    );
    assert_eq!(exact("X-Coffer-Secret-Access-Key"), Some(SECRET_ACCESS_KEY));
    assert_eq!(exact("X-Coffer-Session-Token"), Some(SESSION_TOKEN));
    // The signature: recomputed here independently, then with the published check.
    let timestamp = exact("X-Coffer-Timestamp").unwrap();
    let signature = exact("X-Coffer-Signature").unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(timestamp.parse::<u64>().unwrap()) <= 5);
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&seen.body);
    let mac = coffer_crypto::hmac_sha256(SIGNING_SECRET.as_bytes(), &signed);
    assert_eq!(signature, format!("sha256={}", coffer_crypto::hex(&mac)));
    assert!(verify_webhook_signature(
        SIGNING_SECRET.as_bytes(),
        timestamp,
        &seen.body,
        signature,
        SystemTime::now(),
        Duration::from_secs(300),
    ));
    assert!(!verify_webhook_signature(
        b"another secret",
        timestamp,
        &seen.body,
        signature,
        SystemTime::now(),
        Duration::from_secs(300),
    ));

    assert_eq!(
        outcome.detail,
        OutcomeDetail::Http {
            status: 200,
            body: "rotated".into()
        }
    );
}

#[tokio::test]
async fn without_a_signing_secret_no_signature_headers_are_sent() {
    let (base, server) = one_shot("204 No Content", "", Vec::new()).await;
    let outcome = invoke_webhook(&hook(base), &event(Step::FinishSecret), &creds())
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST / HTTP/1.1");
    assert!(seen.header("x-coffer-signature").is_none());
    assert!(seen.header("x-coffer-timestamp").is_none());
    assert_eq!(seen.header("x-coffer-session-token"), Some(SESSION_TOKEN));
    assert!(matches!(
        outcome.detail,
        OutcomeDetail::Http { status: 204, .. }
    ));
}

#[tokio::test]
async fn non_2xx_fails_with_the_status_and_a_sanitised_body() {
    // A careless webhook echoes what it got, with terminal escapes.
    let body = format!(
        "boom: key {SECRET_ACCESS_KEY} token {SESSION_TOKEN} sig {SIGNING_SECRET} \x1b[31mred\x1b[0m\r\n"
    );
    let (base, server) = one_shot("500 Internal Server Error", "", body.into_bytes()).await;
    let mut webhook = hook(format!("{base}/hook?token=query-canary-42"));
    webhook.signing_secret = Some(SecretBytes::from(SIGNING_SECRET.to_owned()));
    let function = RotationFunction {
        arn: ARN.into(),
        target: FunctionTarget::Webhook(webhook),
    };

    let err = function
        .invoke(&event(Step::SetSecret), &creds())
        .await
        .unwrap_err();
    server.await.unwrap();

    let InvokeErrorKind::Status {
        status,
        location,
        body,
    } = &err.kind
    else {
        panic!("expected a status error, got {err:?}");
    };
    assert_eq!(*status, 500);
    assert_eq!(*location, None);
    assert!(body.starts_with("boom: key <redacted> token <redacted> sig <redacted>"));
    assert_eq!(err.function.as_deref(), Some(ARN));
    assert_eq!(err.step, Step::SetSecret);
    assert_eq!(
        err.target,
        Target::Webhook {
            url: format!("{base}/hook")
        }
    );
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains(ARN), "{text}");
    assert!(text.contains("step setSecret"), "{text}");
    assert!(text.contains("HTTP 500 Internal Server Error"), "{text}");
    assert!(text.contains("boom"), "{text}");
    for canary in [
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
        SIGNING_SECRET,
        "query-canary",
        "\x1b",
    ] {
        assert!(!text.contains(canary), "{canary:?} in {text}");
        assert!(
            !format!("{err:?}").contains(canary),
            "{canary:?} in {err:?}"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let elsewhere = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let location: &'static str = Box::leak(
        format!(
            "Location: http://{}/other\r\n",
            elsewhere.local_addr().unwrap()
        )
        .into_boxed_str(),
    );
    let (base, server) = one_shot("302 Found", location, Vec::new()).await;
    let err = invoke_webhook(&hook(base), &event(Step::TestSecret), &creds())
        .await
        .unwrap_err();
    server.await.unwrap();
    let InvokeErrorKind::Status {
        status, location, ..
    } = &err.kind
    else {
        panic!("expected a status error, got {err:?}");
    };
    assert_eq!(*status, 302);
    assert!(location.as_deref().unwrap().ends_with("/other"));
    assert!(err.to_string().contains("never follows"), "{err}");
    // Nobody knocked at the redirect target.
    let knocked = tokio::time::timeout(Duration::from_millis(200), elsewhere.accept()).await;
    assert!(knocked.is_err(), "the redirect was followed");
}

#[tokio::test]
async fn a_webhook_that_never_answers_is_cut_by_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let _seen = read_request(&mut stream).await;
        // Hold the connection open, say nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let mut webhook = hook(format!("http://{addr}/slow"));
    webhook.timeout = Duration::from_secs(1);

    let started = Instant::now();
    let err = invoke_webhook(&webhook, &event(Step::TestSecret), &creds())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    server.abort();

    assert!(err.is_timeout(), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    let text = err.to_string();
    assert!(text.contains("timeout of 1 s"), "{text}");
    assert!(text.contains("testSecret"), "{text}");
}

#[tokio::test]
async fn connection_refused_is_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = invoke_webhook(
        &hook(format!("http://{addr}/")),
        &event(Step::CreateSecret),
        &creds(),
    )
    .await
    .unwrap_err();
    let InvokeErrorKind::Connect { reason } = &err.kind else {
        panic!("expected a connect error, got {err:?}");
    };
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    assert!(reason.contains(&addr.port().to_string()), "{reason}");
    assert!(err.to_string().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn a_long_body_is_cut_short() {
    let (base, _server) = one_shot("200 OK", "", vec![b'x'; 1 << 20]).await;
    let outcome = invoke_webhook(&hook(base), &event(Step::FinishSecret), &creds())
        .await
        .unwrap();
    let OutcomeDetail::Http { status, body } = outcome.detail else {
        panic!("expected an HTTP outcome");
    };
    assert_eq!(status, 200);
    assert!(body.len() < 4096 && body.starts_with("xxxx") && body.ends_with("[…]"));
}

#[tokio::test]
async fn unusable_registrations_are_config_errors() {
    for url in [
        "ftp://127.0.0.1/",
        "127.0.0.1:9/hook",
        "http://user:pw-canary-9@127.0.0.1:9/",
    ] {
        let err = invoke_webhook(&hook(url.into()), &event(Step::CreateSecret), &creds())
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind, InvokeErrorKind::Config { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains("pw-canary"), "{err}");
    }
    let mut webhook = hook("https://127.0.0.1:9/".into());
    webhook.ca_bundle = Some("/nonexistent/ca.pem".into());
    let err = invoke_webhook(&webhook, &event(Step::CreateSecret), &creds())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind, InvokeErrorKind::Config { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}

/// An https server with a throw-away self-signed certificate for 127.0.0.1 and localhost,
/// answering one request with 200; returns its port, the certificate (PEM) and what it saw
/// (`None` when the handshake failed).
async fn tls_one_shot() -> (u16, String, JoinHandle<Option<Seen>>) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_pem = certified.cert.pem();
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let seen = read_request(&mut tls).await;
        answer(&mut tls, "200 OK", "", b"tls ok").await;
        Some(seen)
    });
    (port, cert_pem, server)
}

#[tokio::test]
async fn https_verifies_against_the_configured_ca_bundle() {
    let (port, cert_pem, server) = tls_one_shot().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, cert_pem).unwrap();
    let mut webhook = hook(format!("https://127.0.0.1:{port}/rotate"));
    webhook.ca_bundle = Some(bundle);
    webhook.signing_secret = Some(SecretBytes::from(SIGNING_SECRET.to_owned()));

    let event = event(Step::SetSecret);
    let outcome = invoke_webhook(&webhook, &event, &creds()).await.unwrap();
    let seen = server.await.unwrap().expect("the handshake succeeded");
    assert_eq!(seen.request_line, "POST /rotate HTTP/1.1");
    assert_eq!(seen.body, event.to_json().as_bytes());
    assert_eq!(
        seen.header("x-coffer-secret-access-key"),
        Some(SECRET_ACCESS_KEY)
    );
    assert_eq!(
        outcome.detail,
        OutcomeDetail::Http {
            status: 200,
            body: "tls ok".into()
        }
    );
}

#[tokio::test]
async fn https_without_a_bundle_trusts_only_the_web_pki() {
    let (port, _cert_pem, server) = tls_one_shot().await;
    let webhook = hook(format!("https://localhost:{port}/rotate"));
    let err = invoke_webhook(&webhook, &event(Step::SetSecret), &creds())
        .await
        .unwrap_err();
    assert!(server.await.unwrap().is_none(), "no request may be sent");
    let InvokeErrorKind::Tls { reason } = &err.kind else {
        panic!("expected a TLS error, got {err:?}");
    };
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert!(err.to_string().contains("TLS handshake failed"), "{err}");
}

// The generic POST (audit sinks and alerts) shares the client.

#[tokio::test]
async fn post_sends_the_body_signed_with_no_credentials() {
    let (base, server) = one_shot("202 Accepted", "", b"queued".to_vec()).await;
    let secret = SecretBytes::from(SIGNING_SECRET.to_owned());
    let body = bytes::Bytes::from_static(b"{\"a\":1}\n{\"b\":2}\n");
    let response = post(
        &format!("{base}/ingest"),
        body.clone(),
        "application/x-ndjson",
        Some(&secret),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen.request_line, "POST /ingest HTTP/1.1");
    assert_eq!(seen.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(seen.body, body.as_ref());
    assert!(seen.header("x-coffer-session-token").is_none());
    assert!(seen.header("x-coffer-access-key-id").is_none());
    assert!(verify_webhook_signature(
        SIGNING_SECRET.as_bytes(),
        seen.header("x-coffer-timestamp").unwrap(),
        &seen.body,
        seen.header("x-coffer-signature").unwrap(),
        SystemTime::now(),
        Duration::from_secs(300),
    ));
    assert_eq!(response.status, 202);
    assert!(response.is_success());
    assert_eq!(response.body, "queued");
}

#[tokio::test]
async fn post_reports_any_status_and_redacts_the_signing_secret() {
    let echo = format!("bad signature {SIGNING_SECRET}").into_bytes();
    let (base, server) = one_shot("401 Unauthorized", "", echo).await;
    let secret = SecretBytes::from(SIGNING_SECRET.to_owned());
    let response = post(
        &base,
        bytes::Bytes::from_static(b"{}"),
        "application/json",
        Some(&secret),
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    server.await.unwrap();
    assert_eq!(response.status, 401);
    assert!(!response.is_success());
    assert!(!response.body.contains(SIGNING_SECRET), "{}", response.body);
    assert!(
        response.body.starts_with("bad signature"),
        "{}",
        response.body
    );

    let (base, _server) = one_shot("302 Found", "Location: /elsewhere\r\n", Vec::new()).await;
    let response = post(
        &base,
        bytes::Bytes::from_static(b"{}"),
        "application/json",
        None,
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.location.as_deref(), Some("/elsewhere"));
}

#[tokio::test]
async fn post_errors_say_what_failed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let post_to = |url: String, content_type: &'static str| async move {
        post(
            &url,
            bytes::Bytes::new(),
            content_type,
            None,
            None,
            Duration::from_secs(5),
        )
        .await
    };
    let err = post_to(format!("http://{addr}/"), "application/json")
        .await
        .unwrap_err();
    assert!(matches!(err, PostError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("could not connect"), "{err}");
    let err = post_to("ftp://127.0.0.1/".into(), "application/json")
        .await
        .unwrap_err();
    assert!(matches!(err, PostError::Config { .. }), "{err:?}");
    let err = post_to(format!("http://{addr}/"), "text/plain\n")
        .await
        .unwrap_err();
    assert!(matches!(err, PostError::Config { .. }), "{err:?}");

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", silent.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let (_stream, _) = silent.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let started = Instant::now();
    let err = post(
        &url,
        bytes::Bytes::new(),
        "application/json",
        None,
        None,
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PostError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn post_over_https_uses_the_ca_bundle() {
    let (port, cert_pem, server) = tls_one_shot().await;
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, cert_pem).unwrap();
    let response = post(
        &format!("https://localhost:{port}/ingest"),
        bytes::Bytes::from_static(b"{}\n"),
        "application/x-ndjson",
        None,
        Some(&bundle),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let seen = server.await.unwrap().expect("the handshake succeeded");
    assert_eq!(seen.body, b"{}\n");
    assert_eq!((response.status, response.body.as_str()), (200, "tls ok"));
}
