//! Shared by the integration tests: SDK clients the harness library cannot hand out because
//! their crates are dev-dependencies (`aws-sdk-kms`, `aws-sdk-sts`), and the few IAM calls the STS
//! tests need, signed by hand (no `aws-sdk-iam`: too heavy to build for a handful of calls).

#![allow(dead_code, reason = "each test crate uses a part of these helpers")]

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_kms as kms;
use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_sts as sts;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::SdkError;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use coffer_e2e::{Server, random_hex, sm};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A KMS client for the server, configured like the harness's Secrets Manager client: static
/// credentials, fixed endpoint and region, nothing from the environment.
pub fn kms_client(server: &Server) -> kms::Client {
    let config = kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(server.region.clone()))
        .endpoint_url(&server.endpoint)
        .credentials_provider(Credentials::new(
            &server.credentials.access_key_id,
            &server.credentials.secret_access_key,
            None,
            None,
            "coffer-e2e",
        ))
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .retry_config(RetryConfig::disabled())
        .build();
    kms::Client::from_conf(config)
}

// --- STS and IAM ------------------------------------------------------------------------------

/// AWS credentials as every SDK takes them: an access key pair and, for temporary
/// credentials, the session token. No expiry: the server decides when they stop working.
pub fn sdk_credentials(
    access_key_id: &str,
    secret_access_key: &str,
    session_token: Option<&str>,
) -> Credentials {
    Credentials::new(
        access_key_id,
        secret_access_key,
        session_token.map(str::to_owned),
        None,
        "coffer-e2e",
    )
}

/// The server's root credentials.
pub fn root_credentials(server: &Server) -> Credentials {
    long_term(&server.credentials)
}

/// Long-term credentials (an access key of the root user or an IAM user).
pub fn long_term(c: &coffer_e2e::Credentials) -> Credentials {
    sdk_credentials(&c.access_key_id, &c.secret_access_key, None)
}

/// The temporary credentials STS answered, as credentials to sign with.
pub fn temporary(c: &sts::types::Credentials) -> Credentials {
    sdk_credentials(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token()),
    )
}

/// An STS client for the server signing with `credentials`; no retries, so an error answer is
/// the one the server gave, once.
pub fn sts_client(server: &Server, credentials: impl ProvideCredentials + 'static) -> sts::Client {
    let config = sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(server.region.clone()))
        .endpoint_url(&server.endpoint)
        .credentials_provider(credentials)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .retry_config(RetryConfig::disabled())
        .build();
    sts::Client::from_conf(config)
}

/// A Secrets Manager client for the server signing with `credentials` (e.g. temporary ones);
/// otherwise the harness's configuration, without retries.
pub fn sm_client(server: &Server, credentials: impl ProvideCredentials + 'static) -> sm::Client {
    let config = server
        .config_builder()
        .credentials_provider(credentials)
        .retry_config(sm::config::retry::RetryConfig::disabled())
        .build();
    sm::Client::from_conf(config)
}

/// The modeled error of a call that must fail and the HTTP status it came with.
#[track_caller]
pub fn service_error_status<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> (E, u16)
where
    T: std::fmt::Debug,
    E: std::fmt::Debug,
{
    match result {
        Ok(v) => panic!("expected a service error, the call succeeded: {v:?}"),
        Err(SdkError::ServiceError(e)) => {
            let status = e.raw().status().as_u16();
            (e.into_err(), status)
        }
        Err(other) => panic!("expected a service error, got {other:?}"),
    }
}

/// A policy document with these statements.
pub fn policy(statements: &[serde_json::Value]) -> String {
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// `{"Effect":"Allow","Action":action,"Resource":resource}`.
pub fn allow(action: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({ "Effect": "Allow", "Action": action, "Resource": resource })
}

/// A trust policy letting `principal` (an ARN) call `sts:AssumeRole`, with an optional
/// `Condition` block.
pub fn trust(principal: &str, condition: Option<serde_json::Value>) -> String {
    let mut statement = serde_json::json!({
        "Effect": "Allow",
        "Principal": { "AWS": principal },
        "Action": "sts:AssumeRole",
    });
    if let Some(c) = condition {
        statement["Condition"] = c;
    }
    policy(&[statement])
}

/// A role as CreateRole answered it.
#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub arn: String,
    pub role_id: String,
}

/// An IAM user with one access key.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub arn: String,
    pub key: coffer_e2e::Credentials,
}

/// An IAM error answer: HTTP status and the XML body (`<Code>`, `<Message>`).
#[derive(Debug)]
pub struct IamError {
    pub status: u16,
    pub body: String,
}

impl IamError {
    pub fn code(&self) -> Option<String> {
        xml_text(&self.body, "Code")
    }

    pub fn message(&self) -> Option<String> {
        xml_text(&self.body, "Message")
    }
}

/// The few IAM calls the STS tests need, as SigV4-signed query-protocol POSTs
/// (`Action=…&Version=2010-05-08`, service `iam`): `aws-sdk-iam` is too heavy to build for them.
pub struct Iam {
    addr: std::net::SocketAddr,
    region: String,
    credentials: Credentials,
}

impl Iam {
    /// IAM as the server's root user.
    pub fn root(server: &Server) -> Iam {
        Iam::with(server, root_credentials(server))
    }

    /// IAM signing with other credentials (e.g. temporary ones).
    pub fn with(server: &Server, credentials: Credentials) -> Iam {
        Iam {
            addr: server.addr,
            region: server.region.clone(),
            credentials,
        }
    }

    /// One call; the response body on a 2xx answer, else the status and body.
    pub async fn call(&self, action: &str, params: &[(&str, &str)]) -> Result<String, IamError> {
        let mut body = format!("Action={}&Version=2010-05-08", form_encode(action));
        for (k, v) in params {
            body.push('&');
            body.push_str(&form_encode(k));
            body.push('=');
            body.push_str(&form_encode(v));
        }
        let (status, text) = self
            .post(body.into_bytes())
            .await
            .unwrap_or_else(|e| panic!("IAM {action}: no answer: {e:#}"));
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(IamError { status, body: text })
        }
    }

    /// A call that must succeed; panics with the answer otherwise.
    pub async fn ok(&self, action: &str, params: &[(&str, &str)]) -> String {
        self.call(action, params)
            .await
            .unwrap_or_else(|e| panic!("IAM {action} failed ({}): {}", e.status, e.body))
    }

    /// CreateUser with a unique name, an inline policy per document, and CreateAccessKey.
    pub async fn user(&self, policies: &[String]) -> User {
        let name = format!("u-{}", random_hex(10));
        let created = self.ok("CreateUser", &[("UserName", &name)]).await;
        let arn = xml_text(&created, "Arn").expect("CreateUser answered no Arn");
        for (i, doc) in policies.iter().enumerate() {
            self.ok(
                "PutUserPolicy",
                &[
                    ("UserName", &name),
                    ("PolicyName", &format!("p{i}")),
                    ("PolicyDocument", doc),
                ],
            )
            .await;
        }
        let key = self.ok("CreateAccessKey", &[("UserName", &name)]).await;
        let key = coffer_e2e::Credentials {
            access_key_id: xml_text(&key, "AccessKeyId").expect("no AccessKeyId"),
            secret_access_key: xml_text(&key, "SecretAccessKey").expect("no SecretAccessKey"),
        };
        User { name, arn, key }
    }

    /// CreateRole with a unique name, the trust policy and optionally MaxSessionDuration, and
    /// an inline policy per document (PutRolePolicy).
    pub async fn role(&self, trust: &str, policies: &[String], max_session: Option<u32>) -> Role {
        let name = format!("r-{}", random_hex(10));
        let max = max_session.map(|m| m.to_string());
        let mut params = vec![
            ("RoleName", name.as_str()),
            ("AssumeRolePolicyDocument", trust),
        ];
        if let Some(m) = &max {
            params.push(("MaxSessionDuration", m));
        }
        let created = self.ok("CreateRole", &params).await;
        let role = Role {
            arn: xml_text(&created, "Arn").expect("CreateRole answered no Arn"),
            role_id: xml_text(&created, "RoleId").expect("CreateRole answered no RoleId"),
            name,
        };
        for (i, doc) in policies.iter().enumerate() {
            self.ok(
                "PutRolePolicy",
                &[
                    ("RoleName", &role.name),
                    ("PolicyName", &format!("p{i}")),
                    ("PolicyDocument", doc),
                ],
            )
            .await;
        }
        role
    }

    /// CreatePolicy (a customer managed policy); its ARN.
    pub async fn managed_policy(&self, doc: &str) -> String {
        let name = format!("mp-{}", random_hex(10));
        let created = self
            .ok(
                "CreatePolicy",
                &[("PolicyName", &name), ("PolicyDocument", doc)],
            )
            .await;
        xml_text(&created, "Arn").expect("CreatePolicy answered no Arn")
    }

    async fn post(&self, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
        let host = self.addr.to_string();
        let unsigned = [
            ("host", host.as_str()),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ];
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("iam")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            "POST",
            "/",
            unsigned.iter().copied(),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut request = http::Request::builder().method("POST").uri("/");
        for (name, value) in unsigned.iter().copied().chain(instructions.headers()) {
            request = request.header(name, value);
        }
        let request = request
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(Full::new(Bytes::from(body)))?;
        let stream = TcpStream::connect(self.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let response =
            tokio::time::timeout(Duration::from_secs(30), sender.send_request(request)).await??;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// `application/x-www-form-urlencoded` as SigV4 wants it: everything but unreserved characters
/// percent-encoded.
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of the first `<tag>…</tag>` in `xml`, with the five XML entities decoded.
pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}
