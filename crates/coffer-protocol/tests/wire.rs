//! The endpoint's wire behaviour without a server: authentication outcomes and malformed
//! input, each mapped to AWS's error code and HTTP status (never a 500 or a panic).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coffer_core::clock::SystemClock;
use coffer_core::{Coffer, InitOptions};
use coffer_protocol::{AuthMode, Endpoint};
use coffer_sigv4::{Credentials, SigningParams};

struct Fixture {
    _dir: tempfile::TempDir,
    endpoint: Endpoint,
    creds: Credentials,
}

fn fixture(mode: AuthMode) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let out = Coffer::init(dir.path(), &InitOptions::default()).unwrap();
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let creds = Credentials {
        access_key_id: out.access_key_id.clone(),
        secret_access_key: zeroize::Zeroizing::new(
            out.secret_access_key.as_str().unwrap().to_string(),
        ),
        session_token: None,
    };
    Fixture {
        _dir: dir,
        endpoint: Endpoint::new(Arc::new(coffer), mode),
        creds,
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn request(target: Option<&str>, body: &str) -> http::Request<Bytes> {
    let mut b = http::Request::post("http://127.0.0.1:4566/")
        .header("host", "127.0.0.1:4566")
        .header("content-type", "application/x-amz-json-1.1");
    if let Some(t) = target {
        b = b.header("x-amz-target", t);
    }
    b.body(Bytes::from(body.to_string())).unwrap()
}

fn signed(creds: &Credentials, target: Option<&str>, body: &str, at: i64) -> http::Request<Bytes> {
    let (mut parts, body) = request(target, body).into_parts();
    let params = SigningParams {
        credentials: creds,
        region: "us-east-1",
        service: "secretsmanager",
        content_sha256_header: false,
    };
    coffer_sigv4::sign(&mut parts, &body, &params, at).unwrap();
    http::Request::from_parts(parts, body)
}

async fn call(f: &Fixture, req: http::Request<Bytes>) -> (u16, serde_json::Value) {
    let resp = f
        .endpoint
        .handle(req, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await;
    let status = resp.status().as_u16();
    let code_header = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(resp.headers().contains_key("x-amzn-requestid"));
    let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    if let Some(code) = code_header {
        assert_eq!(body["__type"], code.as_str());
    }
    (status, body)
}

#[tokio::test]
async fn malformed_requests_get_aws_errors() {
    let f = fixture(AuthMode::SigV4);
    let cases: &[(Option<&str>, &str, &str)] = &[
        (
            Some("secretsmanager.CreateSecret"),
            "{not json",
            "SerializationException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            "[1,2]",
            "SerializationException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            r#"{"Name": 5}"#,
            "SerializationException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            r#"{"Name": "x", "Tags": "nope"}"#,
            "SerializationException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            r#"{"Name": "x", "SecretBinary": "%%%"}"#,
            "SerializationException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            "{}",
            "ValidationException",
        ),
        (
            Some("secretsmanager.GetSecretValue"),
            "{}",
            "ValidationException",
        ),
        (
            Some("secretsmanager.GetSecretValue"),
            "",
            "ValidationException",
        ),
        (
            Some("secretsmanager.ListSecrets"),
            r#"{"MaxResults": "ten"}"#,
            "SerializationException",
        ),
        (
            Some("secretsmanager.ListSecrets"),
            r#"{"MaxResults": 0}"#,
            "ValidationException",
        ),
        (
            Some("secretsmanager.ListSecrets"),
            r#"{"SortOrder": "sideways"}"#,
            "ValidationException",
        ),
        (
            Some("secretsmanager.ListSecrets"),
            r#"{"Filters": [{"Key": "colour", "Values": ["x"]}]}"#,
            "ValidationException",
        ),
        (
            Some("secretsmanager.ListSecrets"),
            r#"{"NextToken": "garbage"}"#,
            "InvalidNextTokenException",
        ),
        (
            Some("secretsmanager.DescribeSecret"),
            r#"{"SecretId": "missing"}"#,
            "ResourceNotFoundException",
        ),
        (
            Some("secretsmanager.NoSuchOperation"),
            "{}",
            "UnknownOperationException",
        ),
        (Some("kinesis.PutRecord"), "{}", "UnknownOperationException"),
        (None, "{}", "UnknownOperationException"),
        (
            Some("secretsmanager.RotateSecret"),
            r#"{"SecretId": "x"}"#,
            "ResourceNotFoundException",
        ),
        (
            Some("secretsmanager.ReplicateSecretToRegions"),
            r#"{"SecretId": "x"}"#,
            "InvalidRequestException",
        ),
        (
            Some("secretsmanager.CreateSecret"),
            r#"{"Name": "x", "SecretString": "a", "SecretBinary": "YQ=="}"#,
            "InvalidParameterException",
        ),
    ];
    for (target, body, code) in cases {
        let (status, out) = call(&f, signed(&f.creds, *target, body, now())).await;
        assert_eq!(status, 400, "{target:?} {body}: {out}");
        assert_eq!(out["__type"], *code, "{target:?} {body}: {out}");
        assert!(
            out["Message"].as_str().is_some_and(|m| !m.is_empty()),
            "{out}"
        );
    }
}

#[tokio::test]
async fn authentication_outcomes() {
    let f = fixture(AuthMode::SigV4);
    let target = Some("secretsmanager.ListSecrets");
    let (status, ok) = call(&f, signed(&f.creds, target, "{}", now())).await;
    assert_eq!(status, 200, "{ok}");
    assert!(ok["SecretList"].is_array());

    let (_, out) = call(&f, request(target, "{}")).await;
    assert_eq!(out["__type"], "MissingAuthenticationTokenException");

    let wrong = Credentials {
        secret_access_key: zeroize::Zeroizing::new("x".repeat(40)),
        ..f.creds.clone()
    };
    let (_, out) = call(&f, signed(&wrong, target, "{}", now())).await;
    assert_eq!(out["__type"], "InvalidSignatureException");

    let unknown = Credentials {
        access_key_id: "AKIAAAAAAAAAAAAAAAAA".into(),
        ..f.creds.clone()
    };
    let (_, out) = call(&f, signed(&unknown, target, "{}", now())).await;
    assert_eq!(out["__type"], "UnrecognizedClientException");
    assert_eq!(
        out["Message"],
        "The security token included in the request is invalid."
    );

    let (_, out) = call(&f, signed(&f.creds, target, "{}", now() - 20 * 60)).await;
    assert_eq!(out["__type"], "InvalidSignatureException");
    assert!(
        out["Message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{out}"
    );

    // the body is covered by the signature
    let mut tampered = signed(&f.creds, target, "{}", now());
    *tampered.body_mut() = Bytes::from_static(b"{\"MaxResults\":1}");
    let (_, out) = call(&f, tampered).await;
    assert_eq!(out["__type"], "InvalidSignatureException");

    let mut partial = request(target, "{}");
    partial.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIA/20260101/us-east-1/secretsmanager/aws4_request",
        ),
    );
    let (_, out) = call(&f, partial).await;
    assert_eq!(out["__type"], "IncompleteSignatureException");

    // temporary credentials do not exist before STS
    let with_token = Credentials {
        session_token: Some("token".into()),
        ..f.creds.clone()
    };
    let (_, out) = call(&f, signed(&with_token, target, "{}", now())).await;
    assert_eq!(out["__type"], "UnrecognizedClientException");
}

#[tokio::test]
async fn accept_any_credentials_takes_any_key() {
    let f = fixture(AuthMode::AcceptAnyCredentials);
    let test_creds = Credentials {
        access_key_id: "test".into(),
        secret_access_key: zeroize::Zeroizing::new("test".into()),
        session_token: None,
    };
    let (status, out) = call(
        &f,
        signed(
            &test_creds,
            Some("secretsmanager.CreateSecret"),
            r#"{"Name":"a","SecretString":"v","ClientRequestToken":"00000000-0000-4000-8000-000000000001"}"#,
            now() - 86_400,
        ),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(out["ARN"].as_str().unwrap().contains(":secret:a-"));
}

#[tokio::test]
async fn values_round_trip_through_json() {
    let f = fixture(AuthMode::SigV4);
    let create = r#"{"Name":"bin","SecretBinary":"AAEC/w==","ClientRequestToken":"00000000000000000000000000000001"}"#;
    let (status, out) = call(
        &f,
        signed(&f.creds, Some("secretsmanager.CreateSecret"), create, now()),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["VersionId"], "00000000000000000000000000000001");
    let (_, out) = call(
        &f,
        signed(
            &f.creds,
            Some("secretsmanager.GetSecretValue"),
            r#"{"SecretId":"bin"}"#,
            now(),
        ),
    )
    .await;
    assert_eq!(out["SecretBinary"], "AAEC/w==");
    assert!(out.get("SecretString").is_none());
    assert_eq!(out["VersionStages"], serde_json::json!(["AWSCURRENT"]));
    assert!(out["CreatedDate"].as_f64().unwrap() > 1.7e9);
}
