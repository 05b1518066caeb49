//! The official signer, `aws-sigv4`, as an oracle: everything it signs must verify here, and our
//! signer must write the very same `Authorization` header for the same request.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    sign as aws_sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use coffer_sigv4::{Credentials, SigningParams, sign};

use crate::{T0, authenticate_with};

const KEYS: [(&str, &str); 2] = [
    (
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    (
        "ASIAQ3EGSB6V3EXAMPLE",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    ),
];
const SESSION_TOKEN: &str =
    "IQoJb3JpZ2luX2VjEJ//////////wEaCXVzLWVhc3QtMSJGMEQCIBbiDVWzuTvQnRNG82h3eN8t5DzpmC4KHgfE";

fn secret_for(id: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _)| *k == id).map(|(_, s)| *s)
}

/// One request to sign: a full URL (as the client sees it), headers and body.
struct Case {
    method: &'static str,
    url: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
}

const JSON: &str = "application/x-amz-json-1.1";

const CASES: &[Case] = &[
    Case {
        method: "POST",
        url: "https://secretsmanager.us-east-1.amazonaws.com/",
        headers: &[
            ("content-type", JSON),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ],
        body: br#"{"SecretId":"prod/db/password"}"#,
    },
    Case {
        method: "POST",
        url: "http://127.0.0.1:4566/",
        headers: &[
            ("content-type", JSON),
            ("x-amz-target", "secretsmanager.CreateSecret"),
            ("user-agent", "aws-sdk-rust/1.3 os/linux lang/rust"),
            ("x-amz-user-agent", "aws-sdk-rust/1.3 api/secretsmanager"),
            (
                "amz-sdk-invocation-id",
                "3f1c3c4e-1a2b-4c5d-8e9f-0a1b2c3d4e5f",
            ),
            ("amz-sdk-request", "attempt=1; max=3"),
        ],
        body: "{\"Name\":\"ünïcödé\",\"SecretString\":\"{\\\"k\\\":\\\"v\\\"}\"}".as_bytes(),
    },
    Case {
        method: "GET",
        url: "https://example.amazonaws.com/",
        headers: &[],
        body: b"",
    },
    Case {
        method: "GET",
        url: "https://example.amazonaws.com:8443/a%20b/c%2Fd/~e/f.g/h-i_j/%E2%9C%93/",
        headers: &[],
        body: b"",
    },
    Case {
        method: "GET",
        url: "https://example.amazonaws.com/arn:aws:secretsmanager:us-east-1:123456789012:secret:a@b!c$d&e'f(g)h*i+j,k;l=m",
        headers: &[],
        body: b"",
    },
    Case {
        method: "DELETE",
        url: "https://example.amazonaws.com/a/./b/../c//d/",
        headers: &[],
        body: b"",
    },
    Case {
        method: "GET",
        url: "https://example.amazonaws.com/?b=2&a=1&a=0&a=10&empty=&novalue&uni=%E2%9C%93&sp=a%20b&plus=a+b&sl=%2F&tilde=~&star=%2A&%C3%A9=k",
        headers: &[],
        body: b"",
    },
    Case {
        method: "GET",
        url: "https://example.amazonaws.com/?Action=ListUsers&Version=2010-05-08&Marker=a%3D%3D&MaxItems=10",
        headers: &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body: b"",
    },
    Case {
        method: "PUT",
        url: "https://example.amazonaws.com/path",
        headers: &[
            ("x-custom", "  a   b  c  "),
            ("x-multi", "first"),
            ("x-multi", "second  value"),
            ("x-empty", ""),
            ("content-type", "text/plain"),
        ],
        body: b"some body\nwith lines",
    },
    Case {
        method: "POST",
        url: "https://sts.amazonaws.com/",
        headers: &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body: b"Action=GetCallerIdentity&Version=2011-06-15",
    },
];

/// How the oracle signs: in the header or presigned, with or without `x-amz-content-sha256`.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Header,
    HeaderWithContentSha256,
    Presigned {
        expires: u64,
        unsigned_payload: bool,
    },
}

/// Signs `case` with `aws-sigv4` and returns the request as the server receives it: origin-form
/// URI plus the `Host` header an HTTP client derives from the URL.
fn oracle_sign(
    case: &Case,
    key: (&str, &str),
    token: Option<&str>,
    region: &str,
    service: &str,
    mode: Mode,
    at: i64,
) -> http::Request<Vec<u8>> {
    let identity: Identity = aws_credential_types::Credentials::new(
        key.0,
        key.1,
        token.map(str::to_owned),
        None,
        "test",
    )
    .into();
    let mut settings = SigningSettings::default();
    let mut body = SignableBody::Bytes(case.body);
    match mode {
        Mode::Header => {}
        Mode::HeaderWithContentSha256 => {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256
        }
        Mode::Presigned {
            expires,
            unsigned_payload,
        } => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(expires));
            if unsigned_payload {
                body = SignableBody::UnsignedPayload;
            }
        }
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at).unwrap()))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new(case.method, case.url, case.headers.iter().copied(), body).unwrap();
    let (instructions, _signature) = aws_sign(signable, &params).unwrap().into_parts();

    let mut client_side = crate::request(case.method, case.url, case.headers, case.body);
    instructions.apply_to_request_http1x(&mut client_side);
    to_server_side(client_side)
}

/// What the server sees of a client request: the path and query only, and a `Host` header.
fn to_server_side(req: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let (mut parts, body) = req.into_parts();
    let uri = parts.uri.clone();
    if !parts.headers.contains_key("host") {
        let authority = uri.authority().unwrap();
        let default = matches!(
            (uri.scheme_str(), authority.port_u16()),
            (Some("https"), Some(443) | None) | (Some("http"), Some(80) | None)
        );
        let host = if default {
            authority.host()
        } else {
            authority.as_str()
        };
        parts.headers.insert("host", host.parse().unwrap());
    }
    parts.uri = uri.path_and_query().unwrap().as_str().parse().unwrap();
    http::Request::from_parts(parts, body)
}

fn sessions() -> [((&'static str, &'static str), Option<&'static str>); 2] {
    [(KEYS[0], None), (KEYS[1], Some(SESSION_TOKEN))]
}

#[test]
fn everything_aws_sigv4_signs_in_the_header_verifies() {
    let mut checked = 0;
    for case in CASES {
        for (key, token) in sessions() {
            for mode in [Mode::Header, Mode::HeaderWithContentSha256] {
                for (region, service) in [("us-east-1", "secretsmanager"), ("eu-central-1", "kms")]
                {
                    let req = oracle_sign(case, key, token, region, service, mode, T0);
                    let result = authenticate_with(&req, T0 + 299, Some(service), secret_for);
                    assert_eq!(
                        result,
                        Ok(()),
                        "{} {} {mode:?} {region} {service}",
                        case.method,
                        case.url
                    );
                    let (parts, _) = req.into_parts();
                    let claim = coffer_sigv4::parse_claim(&parts).unwrap();
                    assert_eq!(claim.security_token.as_deref(), token);
                    assert_eq!(claim.access_key_id, key.0);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, CASES.len() * 8);
}

#[test]
fn everything_aws_sigv4_presigns_verifies_within_its_expiry() {
    for case in CASES {
        for (key, token) in sessions() {
            for unsigned_payload in [false, true] {
                let mode = Mode::Presigned {
                    expires: 900,
                    unsigned_payload,
                };
                let req = oracle_sign(case, key, token, "us-east-1", "secretsmanager", mode, T0);
                let label = format!("{} {} {mode:?}", case.method, case.url);
                let (parts, _) = req.clone().into_parts();
                let claim = coffer_sigv4::parse_claim(&parts).unwrap();
                assert!(claim.presigned, "{label}");
                assert_eq!(claim.expires, Some(900), "{label}");
                assert_eq!(claim.security_token.as_deref(), token, "{label}");
                assert_eq!(
                    authenticate_with(&req, T0 + 900, Some("secretsmanager"), secret_for),
                    Ok(()),
                    "{label}"
                );
                let late = authenticate_with(&req, T0 + 901, Some("secretsmanager"), secret_for)
                    .unwrap_err();
                assert_eq!(
                    late.message(),
                    "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T125101Z - 15 min.)",
                    "{label}"
                );
            }
        }
    }
}

#[test]
fn our_signer_writes_what_aws_sigv4_writes() {
    for case in CASES {
        for (key, token) in sessions() {
            for (mode, content_sha256_header) in
                [(Mode::Header, false), (Mode::HeaderWithContentSha256, true)]
            {
                for at in [T0, 1_700_000_000, 4_102_444_799] {
                    let theirs =
                        oracle_sign(case, key, token, "us-west-2", "secretsmanager", mode, at);

                    let credentials = Credentials::new(key.0, key.1, token.map(str::to_owned));
                    let params = SigningParams {
                        content_sha256_header,
                        ..SigningParams::new(&credentials, "us-west-2", "secretsmanager")
                    };
                    let (mut parts, body) =
                        crate::request(case.method, case.url, case.headers, case.body).into_parts();
                    sign(&mut parts, &body, &params, at).unwrap();
                    let ours = to_server_side(http::Request::from_parts(parts, body));

                    let label = format!("{} {} {mode:?} {at}", case.method, case.url);
                    for name in [
                        "authorization",
                        "x-amz-date",
                        "x-amz-security-token",
                        "x-amz-content-sha256",
                        "host",
                    ] {
                        assert_eq!(
                            ours.headers().get(name),
                            theirs.headers().get(name),
                            "{name}: {label}"
                        );
                    }
                    assert_eq!(
                        authenticate_with(&ours, at, Some("secretsmanager"), secret_for),
                        Ok(()),
                        "{label}"
                    );
                }
            }
        }
    }
}

#[test]
fn re_signing_replaces_the_previous_signature() {
    let credentials = Credentials::new(KEYS[1].0, KEYS[1].1, Some(SESSION_TOKEN.to_owned()));
    let params = SigningParams::new(&credentials, "us-east-1", "secretsmanager");
    let mut req = crate::request(
        "POST",
        "https://secretsmanager.us-east-1.amazonaws.com/",
        &[("content-type", JSON)],
        b"{}",
    );
    coffer_sigv4::sign_request(&mut req, &params, T0).unwrap();
    coffer_sigv4::sign_request(&mut req, &params, T0 + 3600).unwrap();
    assert_eq!(req.headers().get_all("authorization").iter().count(), 1);
    assert_eq!(
        req.headers().get_all("x-amz-security-token").iter().count(),
        1
    );
    assert_eq!(req.headers()["x-amz-date"], "20150830T133600Z");
    assert_eq!(
        authenticate_with(
            &to_server_side(req),
            T0 + 3600,
            Some("secretsmanager"),
            secret_for
        ),
        Ok(())
    );
}
