//! Invoking an external rotation function: an HTTP webhook or a local executable.
//!
//! coffer rotates secrets the way Secrets Manager does, without Lambda. A rotation function
//! is registered under a Lambda-shaped ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`)
//! and is either a [`Webhook`] or an [`Executable`]. The engine in `coffer-core` runs the four
//! steps and calls [`RotationFunction::invoke`] (or [`invoke_webhook`] / [`invoke_executable`])
//! once per step with AWS's rotation event and temporary credentials scoped to the secret,
//! so the function can call back into coffer's Secrets Manager API. A step succeeded when
//! the call returns `Ok`; everything else is an [`InvokeError`] whose `Display` tells an
//! operator which function, which step, what happened and what to check.
//!
//! # The event
//!
//! Exactly AWS's four fields (Secrets Manager user guide, "Rotation by Lambda function"),
//! as one JSON object in this order:
//!
//! ```json
//! {"Step":"createSecret","SecretId":"arn:aws:secretsmanager:…","ClientRequestToken":"…","RotationToken":"…"}
//! ```
//!
//! `Step` is one of `createSecret`, `setSecret`, `testSecret`, `finishSecret`;
//! `ClientRequestToken` is the id of the version being created (the `AWSPENDING` one);
//! `RotationToken` identifies this rotation to the service (AWS marks it sensitive: it is
//! never logged, and `Debug` of [`RotationEvent`] redacts it).
//!
//! # Webhooks
//!
//! coffer POSTs the event (the body is exactly the JSON above, `Content-Type:
//! application/json`) over HTTP/1.1 to the configured `http://` or `https://` URL. Any 2xx
//! status is success; any other status (redirects included: coffer never follows them),
//! a connection error, a TLS error or no complete answer within the timeout is failure.
//! For `https://` the server certificate is verified against the configured CA bundle (PEM)
//! when one is set, otherwise against the public web PKI (Mozilla's roots). The callback
//! credentials travel in headers; use `https://` for anything but a webhook on the same host.
//!
//! | header | value |
//! |---|---|
//! | `X-Coffer-Endpoint` | coffer's Secrets Manager endpoint URL (boto3 `endpoint_url`) |
//! | `X-Coffer-Region` | the region to sign for (boto3 `region_name`) |
//! | `X-Coffer-Access-Key-Id` | temporary access key id (`ASIA…`) |
//! | `X-Coffer-Secret-Access-Key` | its secret access key |
//! | `X-Coffer-Session-Token` | its session token |
//! | `X-Coffer-Timestamp` | Unix time in seconds when coffer sent the request (only with a signing secret) |
//! | `X-Coffer-Signature` | `sha256=` + lowercase hex HMAC-SHA256 over `TIMESTAMP + "." + BODY`, keyed with the signing secret (only with a signing secret) |
//!
//! To check that a call comes from coffer, the receiver recomputes the HMAC-SHA256 of the
//! `X-Coffer-Timestamp` value, a `.`, and the raw request body (the bytes as received, before
//! any JSON parsing) under the shared signing secret, compares `sha256=<hex>` with
//! `X-Coffer-Signature` in constant time, and rejects timestamps more than a few minutes
//! from its own clock (so a captured request cannot be replayed later). In Python:
//!
//! ```python
//! import hashlib, hmac, time
//!
//! def from_coffer(headers, body: bytes, secret: bytes, tolerance=300) -> bool:
//!     ts = headers.get("X-Coffer-Timestamp", "")
//!     sig = headers.get("X-Coffer-Signature", "")
//!     if not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
//!         return False
//!     mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
//!     return hmac.compare_digest("sha256=" + mac, sig)
//! ```
//!
//! [`verify_webhook_signature`] is the same check in Rust.
//!
//! The same client is available for other deliveries (audit sinks and alert rules) as
//! [`post`]: any body and content type, the same TLS, timeout, redirect and signing rules,
//! no credentials.
//!
//! # Executables
//!
//! coffer starts the program (with its arguments, in its working directory) as the user
//! coffer runs as, writes the event JSON and a newline to its stdin and closes it. The
//! environment is built from nothing: `PATH` (coffer's, or `/usr/local/bin:/usr/bin:/bin`),
//! `HOME` and `LANG` when coffer has them, the operator's extra variables
//! ([`Executable::env`]), then the callback variables, which win over any extra variable of
//! the same name:
//!
//! | variable | value |
//! |---|---|
//! | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SECRETSMANAGER` | coffer's endpoint |
//! | `SECRETS_MANAGER_ENDPOINT` | coffer's endpoint (AWS's rotation templates read it) |
//! | `AWS_REGION`, `AWS_DEFAULT_REGION` | the region |
//! | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` | the temporary credentials |
//!
//! boto3 and the other AWS SDKs pick these up, so a Python rotation function written for
//! AWS runs through `examples/rotation/aws_lambda_glue.py`. When coffer serves a certificate
//! the function does not trust yet, add `AWS_CA_BUNDLE` to [`Executable::env`].
//!
//! Exit status 0 is success; anything else (or a signal) is failure, and the error carries
//! the last few KB of stderr (or of stdout, when stderr is empty). stdout and stderr are read
//! concurrently, so a chatty program cannot block on a full pipe. The program runs in its
//! own process group: when the timeout passes, the whole group is killed with `SIGKILL`
//! (children included), and when the program exits, whatever it left running in its group
//! is killed too; dropping the invocation future kills the group as well.
//!
//! # What is never logged
//!
//! The secret access key, the session token, the rotation token and the signing secret
//! never reach a log or an error: output quoted in errors is cut to a few KB, stripped of
//! control characters, and every occurrence of those values (also one cut in half at the
//! edge of the quoted window) is replaced by `<redacted>`.

mod error;
mod executable;
mod redact;
mod webhook;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use coffer_crypto::SecretBytes;
use serde::{Deserialize, Serialize};

pub use error::{InvokeError, InvokeErrorKind, Target};
pub use executable::{Executable, invoke_executable};
pub use webhook::{
    PostError, PostResponse, Webhook, headers, invoke_webhook, post, verify_webhook_signature,
    webhook_signature,
};

/// How long a function may take for one step when its registration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One of the four rotation steps, named on the wire as AWS names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Step {
    #[serde(rename = "createSecret")]
    CreateSecret,
    #[serde(rename = "setSecret")]
    SetSecret,
    #[serde(rename = "testSecret")]
    TestSecret,
    #[serde(rename = "finishSecret")]
    FinishSecret,
}

impl Step {
    /// The four steps in the order the engine runs them.
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    /// The wire name: `createSecret`, `setSecret`, `testSecret` or `finishSecret`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step name that is not one of AWS's four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown rotation step {0:?}: expected createSecret, setSecret, testSecret or finishSecret"
)]
pub struct ParseStepError(pub String);

impl FromStr for Step {
    type Err = ParseStepError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .into_iter()
            .find(|step| step.as_str() == s)
            .ok_or_else(|| ParseStepError(s.to_owned()))
    }
}

/// The event a rotation function receives for one step: AWS's four fields.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationEvent {
    #[serde(rename = "Step")]
    pub step: Step,
    /// The secret's full ARN.
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    /// The version id of the new (`AWSPENDING`) version.
    #[serde(rename = "ClientRequestToken")]
    pub client_request_token: String,
    /// Identifies this rotation to the service; sensitive (never logged).
    #[serde(rename = "RotationToken")]
    pub rotation_token: String,
}

impl RotationEvent {
    /// The event as the function receives it: one JSON object with exactly `Step`,
    /// `SecretId`, `ClientRequestToken` and `RotationToken`, in that order, no whitespace.
    #[must_use]
    pub fn to_json(&self) -> String {
        // Built by hand (each string escaped by serde_json) so that it cannot fail and the
        // field order never depends on serde_json's features.
        let quote = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
        format!(
            "{{\"Step\":{},\"SecretId\":{},\"ClientRequestToken\":{},\"RotationToken\":{}}}",
            quote(self.step.as_str()),
            quote(&self.secret_id),
            quote(&self.client_request_token),
            quote(&self.rotation_token),
        )
    }
}

impl fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("client_request_token", &self.client_request_token)
            .field("rotation_token", &"<redacted>")
            .finish()
    }
}

/// Temporary credentials scoped to the secret being rotated, and where to use them: what a
/// function needs to call back into coffer's Secrets Manager API. `Debug` redacts the secret
/// access key and the session token.
#[derive(Clone)]
pub struct CallbackCredentials {
    /// coffer's Secrets Manager endpoint, e.g. `https://coffer.internal:8443`.
    pub endpoint_url: String,
    pub region: String,
    /// `ASIA…`
    pub access_key_id: String,
    pub secret_access_key: SecretBytes,
    pub session_token: String,
}

impl fmt::Debug for CallbackCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackCredentials")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &"<redacted>")
            .finish()
    }
}

/// A step that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOutcome {
    /// From the start of the call (connect, or spawn) to the answer (or exit).
    pub elapsed: Duration,
    pub detail: OutcomeDetail,
}

/// What the function said while succeeding, for the operator's log: cut to a few KB,
/// stripped of control characters, credentials redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeDetail {
    /// A webhook answered with this 2xx status and the start of this body.
    Http { status: u16, body: String },
    /// An executable exited with status 0 after writing these (tails of) output.
    Exited { stdout: String, stderr: String },
}

/// Where a registered rotation function runs.
#[derive(Debug, Clone)]
pub enum FunctionTarget {
    Webhook(Webhook),
    Executable(Executable),
}

/// A rotation function as registered with coffer: its Lambda-shaped ARN and where it runs.
#[derive(Debug, Clone)]
pub struct RotationFunction {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`
    pub arn: String,
    pub target: FunctionTarget,
}

impl RotationFunction {
    /// Runs one step: [`invoke_webhook`] or [`invoke_executable`], with the function's ARN
    /// in the error.
    pub async fn invoke(
        &self,
        event: &RotationEvent,
        creds: &CallbackCredentials,
    ) -> Result<InvokeOutcome, InvokeError> {
        let result = match &self.target {
            FunctionTarget::Webhook(hook) => invoke_webhook(hook, event, creds).await,
            FunctionTarget::Executable(exe) => invoke_executable(exe, event, creds).await,
        };
        result.map_err(|e| e.for_function(&self.arn))
    }
}

/// `start + timeout`, or a time decades away when that does not fit (`Duration::MAX`).
fn deadline(start: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    start
        .checked_add(timeout)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 60 * 60))
}

/// A spawned task that must not outlive the invocation (a connection driver, a pipe
/// reader): aborted when this is dropped, also when the invocation future is.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> RotationEvent {
        RotationEvent {
            step: Step::TestSecret,
            secret_id: "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf".into(),
            client_request_token: "tok-\"quoted\"\n".into(),
            rotation_token: "rot-canary-91".into(),
        }
    }

    #[test]
    fn steps_round_trip_their_wire_names() {
        for step in Step::ALL {
            assert_eq!(step.to_string().parse::<Step>(), Ok(step));
            assert_eq!(
                serde_json::to_string(&step).unwrap(),
                format!("\"{}\"", step.as_str())
            );
        }
        assert_eq!("createSecret".parse::<Step>(), Ok(Step::CreateSecret));
        assert!("create_secret".parse::<Step>().is_err());
        assert!("CreateSecret".parse::<Step>().is_err());
    }

    #[test]
    fn event_json_has_exactly_aws_fields_in_order() {
        let e = event();
        let json = e.to_json();
        assert!(json.starts_with(
            "{\"Step\":\"testSecret\",\"SecretId\":\"arn:aws:secretsmanager:us-east-1:"
        ));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 4);
        assert_eq!(object["ClientRequestToken"], "tok-\"quoted\"\n");
        assert_eq!(object["RotationToken"], "rot-canary-91");
        let parsed: RotationEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, e);
        assert_eq!(serde_json::to_string(&e).unwrap(), json);
    }

    #[test]
    fn debug_redacts_tokens_and_keys() {
        let printed = format!("{:?}", event());
        assert!(!printed.contains("canary"), "{printed}");
        let creds = CallbackCredentials {
            endpoint_url: "http://127.0.0.1:1".into(),
            region: "us-east-1".into(),
            access_key_id: "ASIAEXAMPLE".into(),
            secret_access_key: SecretBytes::from("sak-canary-1".to_owned()),
            session_token: "st-canary-2".into(),
        };
        let printed = format!("{creds:?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("ASIAEXAMPLE"));
    }
}
