//! The audit trail: the CloudTrail-format event of every API call and of what the service
//! does by itself (rotation, scheduled deletion), appended to the tamper-evident log of
//! `coffer-audit`, and read back for LookupEvents and alert rules.
//!
//! This module owns what an event says and what it must never say: secret values, passwords,
//! data keys, plaintexts, key material, session tokens and MFA seeds are removed before an
//! event is built. It never writes files itself (that is `coffer-audit`'s) and never decides
//! who may read the trail (LookupEvents is authorized like every other call).

pub mod lookup;
pub mod pattern;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use coffer_audit::{AuditConfig, AuditKey, AuditLog, AuditPublicKey, Durability};
use coffer_store::Store;
use serde_json::Value;

use crate::clock::iso8601;
use crate::{Caller, Coffer, CoreError, PrincipalType, ids};

/// The open audit log of a server.
pub struct AuditTrail {
    log: Arc<AuditLog>,
    /// Set when an append failed: the log accepts nothing more until the server restarts.
    refusing: std::sync::atomic::AtomicBool,
}

impl AuditTrail {
    /// The log events are appended to.
    #[must_use]
    pub fn log(&self) -> &Arc<AuditLog> {
        &self.log
    }

    /// The log's directory (`DATA_DIR/audit`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.log.dir()
    }
}

// ---------------------------------------------------------------------------------------
// Opening the trail
// ---------------------------------------------------------------------------------------

/// Name of the audit signing key in the store's service keys.
const SIGNING_KEY: &str = "audit-signing";
/// Events above this size are recorded without their request and response members (the
/// log's own limit, `AuditConfig::max_event_bytes`, is 256 KiB).
const MAX_EVENT_BYTES: usize = 192 * 1024;
/// Version of the CloudTrail record format written (CloudTrail's `eventVersion`).
pub const EVENT_VERSION: &str = "1.11";

impl<S: Store> Coffer<S> {
    /// The audit log's Ed25519 signing key, made and sealed under the root key on first use
    /// (by `coffer init`, or the first start of a data directory made before the audit
    /// trail existed).
    pub async fn audit_signing_key(&self) -> Result<AuditKey, CoreError> {
        let sealed = match self.store.service_key(SIGNING_KEY).await? {
            Some(sealed) => sealed,
            None => {
                let key = AuditKey::generate()
                    .map_err(|e| CoreError::Internal(format!("audit signing key: {e}")))?;
                let sealed = self.keyring.seal_service_key(SIGNING_KEY, key.pkcs8())?;
                self.store
                    .insert_service_key(SIGNING_KEY, sealed, self.clock.now_millis())
                    .await?
            }
        };
        let pkcs8 = self.keyring.open_service_key(SIGNING_KEY, &sealed)?;
        AuditKey::from_pkcs8(pkcs8.expose())
            .map_err(|e| CoreError::Internal(format!("audit signing key: {e}")))
    }

    /// The public half of the audit signing key, for `coffer audit verify` and for export.
    pub async fn audit_public_key(&self) -> Result<AuditPublicKey, CoreError> {
        Ok(self.audit_signing_key().await?.public_key())
    }

    /// Opens the audit log at `dir` (recovering it after a crash) and records every call
    /// from now on. Fails if a trail is open already.
    pub async fn open_audit(
        &self,
        dir: &Path,
        config: AuditConfig,
    ) -> Result<Arc<AuditTrail>, CoreError> {
        let key = self.audit_signing_key().await?;
        let dir = dir.to_path_buf();
        let log = tokio::task::spawn_blocking(move || AuditLog::open(&dir, key, config))
            .await
            .map_err(|e| CoreError::Internal(format!("audit log open task failed: {e}")))?
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let trail = Arc::new(AuditTrail {
            log: Arc::new(log),
            refusing: std::sync::atomic::AtomicBool::new(false),
        });
        self.audit
            .set(Arc::clone(&trail))
            .map_err(|_| CoreError::Internal("the audit trail is open already".into()))?;
        Ok(trail)
    }
}

// ---------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------

/// The service an event belongs to (`eventSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    SecretsManager,
    Kms,
    Iam,
    Sts,
    CloudTrail,
    /// A request that named no service coffer serves.
    Unknown,
}

impl EventSource {
    /// The `eventSource` host name.
    #[must_use]
    pub fn host(self) -> &'static str {
        match self {
            EventSource::SecretsManager => "secretsmanager.amazonaws.com",
            EventSource::Kms => "kms.amazonaws.com",
            EventSource::Iam => "iam.amazonaws.com",
            EventSource::Sts => "sts.amazonaws.com",
            EventSource::CloudTrail => "cloudtrail.amazonaws.com",
            EventSource::Unknown => "unknown",
        }
    }
}

/// A resource an event names (CloudTrail's `resources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub resource_type: &'static str,
    pub arn: String,
}

impl Resource {
    /// A Secrets Manager secret.
    #[must_use]
    pub fn secret(arn: impl Into<String>) -> Self {
        Self {
            resource_type: "AWS::SecretsManager::Secret",
            arn: arn.into(),
        }
    }

    /// A KMS key.
    #[must_use]
    pub fn kms_key(arn: impl Into<String>) -> Self {
        Self {
            resource_type: "AWS::KMS::Key",
            arn: arn.into(),
        }
    }

    /// An IAM role.
    #[must_use]
    pub fn role(arn: impl Into<String>) -> Self {
        Self {
            resource_type: "AWS::IAM::Role",
            arn: arn.into(),
        }
    }
}

/// What the protocol layer knows of one API call once it was answered.
#[derive(Debug)]
pub struct ApiCall<'a> {
    pub source: EventSource,
    pub event_name: &'a str,
    /// The authenticated caller; `None` when authentication failed.
    pub caller: Option<&'a Caller>,
    /// The access key id the request claimed, when authentication failed.
    pub claimed_access_key_id: Option<&'a str>,
    pub region: &'a str,
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
    /// The request's members under their wire names; redacted here.
    pub request_parameters: Option<Value>,
    /// The response's members under their wire names; redacted here, and kept only for calls
    /// that change something (and the STS calls that issue credentials), as CloudTrail does.
    pub response_elements: Option<Value>,
    /// `(errorCode, errorMessage)` of a failed or denied call.
    pub error: Option<(&'a str, &'a str)>,
    pub resources: Vec<Resource>,
}

/// Whether CloudTrail calls an operation read-only: reads, and the cryptographic operations
/// that change no state (KMS's Encrypt/Decrypt/GenerateDataKey… are `readOnly: true` there).
#[must_use]
pub fn is_read_only(source: EventSource, event_name: &str) -> bool {
    const READ_PREFIXES: &[&str] = &["Get", "Describe", "List", "Lookup", "Simulate", "BatchGet"];
    if READ_PREFIXES.iter().any(|p| event_name.starts_with(p)) {
        return true;
    }
    match source {
        EventSource::SecretsManager => event_name == "ValidateResourcePolicy",
        EventSource::Kms => matches!(
            event_name,
            "Encrypt"
                | "Decrypt"
                | "ReEncrypt"
                | "GenerateDataKey"
                | "GenerateDataKeyWithoutPlaintext"
                | "GenerateDataKeyPair"
                | "GenerateDataKeyPairWithoutPlaintext"
                | "GenerateRandom"
                | "GenerateMac"
                | "VerifyMac"
                | "Sign"
                | "Verify"
        ),
        EventSource::Sts => matches!(event_name, "AssumeRole" | "GetSessionToken"),
        _ => false,
    }
}

/// Member names (compared without case) whose values never enter an event, at any depth.
///
/// The first group is every member the service models of Secrets Manager, KMS, IAM, STS and
/// CloudTrail (botocore's `service-2.json`) mark `sensitive`, so members of operations coffer
/// does not implement (a SAML assertion, a web identity token, a private key) are covered
/// too. `AccessKeyID` of an XKS proxy credential is the one such name left out: an access key
/// id is not a secret, and CloudTrail keeps the ids of issued keys. The second group is what
/// the models do not mark but CloudTrail leaves out as well: ciphertexts (data keys), issued
/// session tokens, key material, MFA codes and the rotation callback's token.
const REDACTED_MEMBERS: &[&str] = &[
    // marked `sensitive` in the models
    "addprivatekey",
    "base32stringseed",
    "keystorepassword",
    "message",
    "newpassword",
    "oldpassword",
    "password",
    "plaintext",
    "privatekey",
    "privatekeyplaintext",
    "publickey",
    "qrcodepng",
    "randompassword",
    "rawsecretaccesskey",
    "rotationtoken",
    "samlassertion",
    "secretaccesskey",
    "secretbinary",
    "secretstring",
    "servicecredentialsecret",
    "servicepassword",
    "sharedsecret",
    "tradeintoken",
    "webidentitytoken",
    // not marked, left out all the same
    "ciphertextblob",
    "sourceciphertextblob",
    "ciphertextforrecipient",
    "privatekeyciphertextblob",
    "sessiontoken",
    "encryptedkeymaterial",
    "keymaterial",
    "importtoken",
    "authenticationcode1",
    "authenticationcode2",
    "tokencode",
    "x-amz-security-token",
];

/// The name a request or response member has in an event (`SecretId` → `secretId`, cut if
/// absurdly long), or `None` when its value must never be recorded.
#[must_use]
pub fn event_member_name(name: &str) -> Option<String> {
    (!is_redacted(name)).then(|| shorten(&lower_first(name)).into_owned())
}

/// A member's string value as an event keeps it (see [`MAX_KEPT_STRING`]).
#[must_use]
pub fn event_string(text: &str) -> String {
    shorten(text).into_owned()
}

fn is_redacted(name: &str) -> bool {
    REDACTED_MEMBERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
}

/// The longest string an event keeps of a request or response member, or of an error
/// message; longer ones are cut (on a character boundary) and marked. Requests may be up to
/// the body limit (2 MiB), events at most 256 KiB, and a call must never go unanswered
/// because its event would be too large.
pub const MAX_KEPT_STRING: usize = 2048;

/// At most this many items of an array are kept (a 2 MiB body can hold tens of thousands of
/// tiny ones); the rest is counted by [`more_items`].
pub const MAX_KEPT_ARRAY_ITEMS: usize = 100;

/// The marker that stands for array items left out.
#[must_use]
pub fn more_items(left_out: usize) -> Value {
    Value::String(format!("…[{left_out} more items]"))
}

/// `text` cut to [`MAX_KEPT_STRING`] bytes, with how much was left out.
fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_KEPT_STRING {
        return text.into();
    }
    let mut end = MAX_KEPT_STRING;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} more bytes]", &text[..end], text.len() - end).into()
}

/// Removes the members of [`REDACTED_MEMBERS`] at any depth, spells member names as
/// CloudTrail does (first letter lower case: `SecretId` → `secretId`), and shortens long
/// strings and arrays (see [`MAX_KEPT_STRING`]).
#[must_use]
pub fn redact(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| !is_redacted(k))
                .map(|(k, v)| (shorten(&lower_first(&k)).into_owned(), redact(v)))
                .collect(),
        ),
        Value::Array(items) => {
            let total = items.len();
            let mut kept: Vec<Value> = items
                .into_iter()
                .take(MAX_KEPT_ARRAY_ITEMS)
                .map(redact)
                .collect();
            if total > MAX_KEPT_ARRAY_ITEMS {
                kept.push(Value::String(format!(
                    "…[{} more items]",
                    total - MAX_KEPT_ARRAY_ITEMS
                )));
            }
            Value::Array(kept)
        }
        Value::String(text) if text.len() > MAX_KEPT_STRING => {
            Value::String(shorten(&text).into_owned())
        }
        other => other,
    }
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_uppercase() => {
            let mut out = String::with_capacity(name.len());
            out.push(first.to_ascii_lowercase());
            out.push_str(chars.as_str());
            out
        }
        _ => name.to_string(),
    }
}

/// A JSON string literal (escaped) of `text`.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Writing a &str into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, text).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

fn push_json_value(out: &mut Vec<u8>, value: &Value) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// Writes `"key":` after a comma when needed.
struct Fields<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Fields<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        push_json_str(self.out, key);
        self.out.push(b':');
        self.out
    }
    fn str(&mut self, key: &str, value: &str) {
        let out = self.key(key);
        push_json_str(out, value);
    }
    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.str(key, v);
        }
    }
    fn raw(&mut self, key: &str, json: &str) {
        self.key(key).extend_from_slice(json.as_bytes());
    }
    fn value(&mut self, key: &str, value: Option<&Value>) {
        let out = self.key(key);
        match value {
            Some(v) => push_json_value(out, v),
            None => out.extend_from_slice(b"null"),
        }
    }
    fn close(self) {
        self.out.push(b'}');
    }
}

/// The principal's unique id (`principalId`) as far as the caller carries it; long-term IAM
/// user keys need the user's record (see [`Coffer::record_api_call`]).
fn session_principal_id(caller: &Caller) -> Option<&str> {
    match (&caller.session, caller.principal_type) {
        (Some(s), _) => Some(s.principal_id.as_str()),
        (None, PrincipalType::Root) => Some(caller.account_id.as_str()),
        _ => None,
    }
}

fn write_user_identity(
    out: &mut Vec<u8>,
    caller: Option<&Caller>,
    claimed: Option<&str>,
    user_principal_id: Option<&str>,
) {
    let mut f = Fields::open(out);
    let Some(caller) = caller else {
        f.str("type", "Unknown");
        f.opt_str("accessKeyId", claimed.map(shorten).as_deref());
        f.close();
        return;
    };
    let kind = match caller.principal_type {
        PrincipalType::Root => "Root",
        PrincipalType::IamUser => "IAMUser",
        PrincipalType::AssumedRole => "AssumedRole",
    };
    f.str("type", kind);
    f.opt_str(
        "principalId",
        session_principal_id(caller).or(user_principal_id),
    );
    f.str("arn", &caller.principal_arn);
    f.str("accountId", &caller.account_id);
    f.str("accessKeyId", &caller.access_key_id);
    f.opt_str("userName", caller.user_name());
    if let Some(session) = &caller.session {
        let out = f.key("sessionContext");
        let mut sc = Fields::open(out);
        if let Some(role) = &session.role {
            let out = sc.key("sessionIssuer");
            let mut issuer = Fields::open(out);
            issuer.str("type", "Role");
            issuer.str("principalId", &role.role_id);
            issuer.str("arn", &role.role_arn);
            issuer.str("accountId", &caller.account_id);
            issuer.str(
                "userName",
                role.role_arn.rsplit('/').next().unwrap_or_default(),
            );
            issuer.close();
        }
        let out = sc.key("attributes");
        let mut attrs = Fields::open(out);
        attrs.str("creationDate", &iso8601(session.issued_ms));
        attrs.str(
            "mfaAuthenticated",
            if session.mfa_authenticated_ms.is_some() {
                "true"
            } else {
                "false"
            },
        );
        attrs.close();
        sc.opt_str("sourceIdentity", session.source_identity.as_deref());
        sc.close();
    }
    f.close();
}

fn write_resources(f: &mut Fields<'_>, resources: &[Resource]) {
    if resources.is_empty() {
        return;
    }
    let out = f.key("resources");
    out.push(b'[');
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut rf = Fields::open(out);
        rf.opt_str("accountId", arn_account(&r.arn));
        rf.str("type", r.resource_type);
        rf.str("ARN", &shorten(&r.arn));
        rf.close();
    }
    out.push(b']');
}

/// `eventTime` (whole seconds), formatted once per second per thread: every event of a busy
/// second shares it.
fn event_time(now_ms: i64) -> String {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let second = now_ms.div_euclid(1000);
    LAST.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            *cached = second;
            *text = iso8601(now_ms);
        }
        text.clone()
    })
}

/// The account of an ARN (its fifth field), when it names one.
fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.strip_prefix("arn:")?.split(':').nth(3)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

/// An error message as the trail keeps it. A SigV4 signature mismatch echoes the canonical
/// request and string to sign after a blank line, as AWS does for the client's debugging;
/// the canonical request carries the request's headers, `X-Amz-Security-Token` (a session
/// token) among them, so the trail keeps only the sentence before it.
///
/// Validation messages quote the value they refuse (`Value '123456' at 'tokenCode' failed
/// to satisfy constraint…`); where the member is one whose value is never recorded, the
/// quoted value is replaced.
fn logged_message(message: &str) -> std::borrow::Cow<'_, str> {
    let first = message.split("\n\n").next().unwrap_or_default();
    if !first.contains("' at '") {
        return shorten(first);
    }
    std::borrow::Cow::Owned(shorten(&scrub_quoted_values(first)).into_owned())
}

/// Replaces `X` in each `Value 'X' at 'member'` whose member (its last `.` part) is redacted.
fn scrub_quoted_values(message: &str) -> String {
    const OPEN: &str = "Value '";
    const AT: &str = "' at '";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(OPEN) {
        let value_start = start + OPEN.len();
        // The member follows the last "' at '" before the message goes on, so a quoted value
        // that itself contains "' at '" is still covered up to its real end.
        let Some(at) = rest[value_start..].find(AT).map(|i| value_start + i) else {
            break;
        };
        let member_start = at + AT.len();
        let Some(member_len) = rest[member_start..].find('\'') else {
            break;
        };
        let member = &rest[member_start..member_start + member_len];
        let last = member.rsplit('.').next().unwrap_or(member);
        out.push_str(&rest[..value_start]);
        if is_redacted(last) {
            out.push_str("[redacted]");
        } else {
            out.push_str(&rest[value_start..at]);
        }
        out.push_str(&rest[at..member_start + member_len]);
        rest = &rest[member_start + member_len..];
    }
    out.push_str(rest);
    out
}

/// The CloudTrail record of an API call, as one line of JSON. Shortened members keep almost
/// every event small; one with a great many members is recorded without them rather than
/// refused (the log takes at most 256 KiB).
fn api_call_event(
    call: &ApiCall<'_>,
    read_only: bool,
    user_principal_id: Option<&str>,
    now_ms: i64,
    event_id: &str,
) -> Vec<u8> {
    let event = encode_api_call(call, None, read_only, user_principal_id, now_ms, event_id);
    if event.len() <= MAX_EVENT_BYTES {
        return event;
    }
    let omitted = serde_json::json!({
        "omitted": format!("the request's members made a {}-byte event; they are not recorded", event.len())
    });
    encode_api_call(
        call,
        Some(&omitted),
        read_only,
        user_principal_id,
        now_ms,
        event_id,
    )
}

/// [`api_call_event`]'s encoding; `omitted` stands in for the request's and response's
/// members when given.
fn encode_api_call(
    call: &ApiCall<'_>,
    omitted: Option<&Value>,
    read_only: bool,
    user_principal_id: Option<&str>,
    now_ms: i64,
    event_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    let mut f = Fields::open(&mut out);
    f.str("eventVersion", EVENT_VERSION);
    write_user_identity(
        f.key("userIdentity"),
        call.caller,
        call.claimed_access_key_id,
        user_principal_id,
    );
    f.str("eventTime", &event_time(now_ms));
    f.str("eventSource", call.source.host());
    f.str("eventName", call.event_name);
    f.str("awsRegion", &shorten(call.region));
    {
        // An address needs no escaping; written straight into the line.
        use std::io::Write as _;
        let out = f.key("sourceIPAddress");
        let _ = write!(out, "\"{}\"", call.source_ip);
    }
    f.opt_str("userAgent", call.user_agent.map(shorten).as_deref());
    if let Some((code, message)) = call.error {
        f.str("errorCode", code);
        f.str("errorMessage", &logged_message(message));
    }
    match omitted {
        None => {
            f.value("requestParameters", call.request_parameters.as_ref());
            f.value("responseElements", call.response_elements.as_ref());
        }
        Some(note) => {
            f.value("requestParameters", Some(note));
            f.value("responseElements", None);
        }
    }
    f.str("requestID", call.request_id);
    f.str("eventID", event_id);
    f.raw("readOnly", if read_only { "true" } else { "false" });
    if call.caller.is_some() {
        write_resources(&mut f, &call.resources);
    }
    f.str("eventType", "AwsApiCall");
    f.raw("managementEvent", "true");
    // The account whose trail receives the event: the resource's owner for a call across
    // accounts, else the caller's.
    // An unauthenticated request names no account: it must not land in the trail (and
    // alerts) of whichever account an ARN in it names.
    let recipient = call.caller.and_then(|c| {
        call.resources
            .iter()
            .find_map(|r| arn_account(&r.arn))
            .or(Some(c.account_id.as_str()))
    });
    f.opt_str("recipientAccountId", recipient);
    f.str("eventCategory", "Management");
    f.close();
    out
}

/// Something the service did by itself (CloudTrail's `AwsServiceEvent`): a rotation's
/// progress, a secret or key deleted at the end of its waiting period.
#[derive(Debug)]
pub(crate) struct ServiceEvent<'a> {
    pub source: EventSource,
    pub event_name: &'a str,
    pub account_id: &'a str,
    pub region: &'a str,
    pub resource: Resource,
    /// `serviceEventDetails`: facts of the event (never a secret).
    pub details: Value,
}

fn service_event(event: &ServiceEvent<'_>, now_ms: i64, event_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut f = Fields::open(&mut out);
    f.str("eventVersion", EVENT_VERSION);
    {
        let out = f.key("userIdentity");
        let mut ui = Fields::open(out);
        ui.str("accountId", event.account_id);
        ui.str("invokedBy", event.source.host());
        ui.close();
    }
    f.str("eventTime", &iso8601(now_ms));
    f.str("eventSource", event.source.host());
    f.str("eventName", event.event_name);
    f.str("awsRegion", event.region);
    f.str("sourceIPAddress", event.source.host());
    f.str("userAgent", event.source.host());
    f.value("requestParameters", None);
    f.value("responseElements", None);
    f.value("serviceEventDetails", Some(&redact(event.details.clone())));
    f.str("eventID", event_id);
    f.raw("readOnly", "false");
    write_resources(&mut f, std::slice::from_ref(&event.resource));
    f.str("eventType", "AwsServiceEvent");
    f.raw("managementEvent", "true");
    f.str("recipientAccountId", event.account_id);
    f.str("eventCategory", "Management");
    f.close();
    out
}

fn audit_failure(e: &coffer_audit::AuditError) -> CoreError {
    tracing::error!(error = %e, "the audit trail could not record an event");
    CoreError::Internal(
        "The audit trail could not record this request, so it was not answered; the server's log says why."
            .into(),
    )
}

impl<S: Store> Coffer<S> {
    /// Records an API call in the audit trail before its answer is sent (a no-op when no trail
    /// is open). Reads are durable against a crash of the process once this returns; calls
    /// that change something also against a power loss. An error means the call must not be
    /// answered with its result: the trail fails closed.
    pub async fn record_api_call(&self, call: ApiCall<'_>) -> Result<(), CoreError> {
        let Some(trail) = self.audit.get() else {
            return Ok(());
        };
        let read_only = is_read_only(call.source, call.event_name);
        let user_principal_id = match call.caller {
            Some(c) if c.session.is_none() && c.principal_type == PrincipalType::IamUser => {
                self.user_principal_id(c).await
            }
            _ => None,
        };
        let event_id = ids::unique_id();
        let now_ms = self.clock.now_millis();
        let event = api_call_event(
            &call,
            read_only,
            user_principal_id.as_deref(),
            now_ms,
            &event_id,
        );
        // Calls that issue credentials change nothing stored, but their event is what ties
        // the credentials' later use to who obtained them: kept like a change.
        let issues_credentials = call.source == EventSource::Sts
            && matches!(call.event_name, "AssumeRole" | "GetSessionToken");
        let durability = if call.error.is_none() && (!read_only || issues_credentials) {
            Durability::Synced
        } else {
            Durability::Written
        };
        trail
            .log
            .append(event, durability)
            .await
            .map(|_| ())
            .map_err(|e| {
                trail
                    .refusing
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                audit_failure(&e)
            })
    }

    /// Whether calls may be served: no trail is open, or it is accepting events. Once an
    /// append failed (a failed write or fsync poisons the log until it is reopened), calls
    /// are refused before they run, so nothing changes without its event.
    pub fn audit_accepting(&self) -> bool {
        self.audit
            .get()
            .is_none_or(|t| !t.refusing.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Records something the service did by itself. A failure is logged, not returned: the
    /// work it records is done already.
    pub(crate) async fn record_service_event(&self, event: ServiceEvent<'_>) {
        let Some(trail) = self.audit.get() else {
            return;
        };
        let event_id = ids::unique_id();
        let bytes = service_event(&event, self.clock.now_millis(), &event_id);
        if let Err(e) = trail.log.append(bytes, Durability::Synced).await {
            audit_failure(&e);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{RoleSession, Session};
    use serde_json::json;

    fn caller(kind: PrincipalType, session: Option<Session>) -> Caller {
        let arn = match kind {
            PrincipalType::Root => "arn:aws:iam::111122223333:root",
            PrincipalType::IamUser => "arn:aws:iam::111122223333:user/alice",
            PrincipalType::AssumedRole => "arn:aws:sts::111122223333:assumed-role/deployer/ci",
        };
        Caller {
            account_id: "111122223333".into(),
            principal_arn: arn.into(),
            principal_type: kind,
            access_key_id: "AKIAEXAMPLE".into(),
            region: "eu-west-1".into(),
            source_ip: "192.0.2.7".parse().unwrap(),
            secure_transport: true,
            session: session.map(Arc::new),
        }
    }

    fn call<'a>(caller: Option<&'a Caller>) -> ApiCall<'a> {
        ApiCall {
            source: EventSource::SecretsManager,
            event_name: "GetSecretValue",
            caller,
            claimed_access_key_id: Some("AKIAUNKNOWN"),
            region: "eu-west-1",
            source_ip: "192.0.2.7".parse().unwrap(),
            user_agent: Some("aws-cli/2.0"),
            request_id: "req-1",
            request_parameters: Some(redact(
                json!({"SecretId": "prod/db", "VersionStage": "AWSCURRENT"}),
            )),
            response_elements: None,
            error: None,
            resources: vec![Resource::secret(
                "arn:aws:secretsmanager:eu-west-1:444455556666:secret:prod/db-AbCdEf",
            )],
        }
    }

    fn event(call: &ApiCall<'_>, principal_id: Option<&str>) -> Value {
        let read_only = is_read_only(call.source, call.event_name);
        let bytes = api_call_event(call, read_only, principal_id, 1_795_465_338_443, "ev-1");
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn redaction_removes_secret_members_at_any_depth_and_lowers_names() {
        let got = redact(json!({
            "SecretId": "db",
            "SecretString": "hunter2",
            "SecretBinary": "aHVudGVyMg==",
            "Nested": {"Plaintext": "p", "KeyId": "k", "List": [{"Password": "x", "UserName": "u"}]},
            "Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "s", "SessionToken": "t"},
            "Base32StringSeed": "seed", "QRCodePNG": "png", "AuthenticationCode1": "123456",
            "TokenCode": "654321", "CiphertextBlob": "c", "Message": "m", "RandomPassword": "r"
        }));
        assert_eq!(
            got,
            json!({
                "secretId": "db",
                "nested": {"keyId": "k", "list": [{"userName": "u"}]},
                "credentials": {"accessKeyId": "ASIA"}
            })
        );
    }

    #[test]
    fn an_iam_user_call_has_cloudtrails_fields() {
        let c = caller(PrincipalType::IamUser, None);
        let e = event(&call(Some(&c)), Some("AIDAEXAMPLE"));
        assert_eq!(e["eventVersion"], EVENT_VERSION);
        assert_eq!(
            e["userIdentity"],
            json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                   "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333",
                   "accessKeyId": "AKIAEXAMPLE", "userName": "alice"})
        );
        assert_eq!(e["eventTime"], "2026-11-23T20:22:18Z");
        assert_eq!(e["eventSource"], "secretsmanager.amazonaws.com");
        assert_eq!(e["eventName"], "GetSecretValue");
        assert_eq!(e["awsRegion"], "eu-west-1");
        assert_eq!(e["sourceIPAddress"], "192.0.2.7");
        assert_eq!(e["userAgent"], "aws-cli/2.0");
        assert_eq!(
            e["requestParameters"],
            json!({"secretId": "prod/db", "versionStage": "AWSCURRENT"})
        );
        assert_eq!(e["responseElements"], Value::Null);
        assert_eq!(e["requestID"], "req-1");
        assert_eq!(e["eventID"], "ev-1");
        assert_eq!(e["readOnly"], true);
        assert_eq!(e["eventType"], "AwsApiCall");
        assert_eq!(e["managementEvent"], true);
        assert_eq!(e["eventCategory"], "Management");
        assert!(e.get("errorCode").is_none());
        // A call on another account's secret is delivered to the secret's owner.
        assert_eq!(e["recipientAccountId"], "444455556666");
        assert_eq!(
            e["resources"],
            json!([{"accountId": "444455556666", "type": "AWS::SecretsManager::Secret",
                    "ARN": "arn:aws:secretsmanager:eu-west-1:444455556666:secret:prod/db-AbCdEf"}])
        );
    }

    #[test]
    fn role_sessions_carry_the_issuer_and_mfa() {
        let session = Session {
            principal_id: "AROAEXAMPLE:ci".into(),
            issued_ms: 1_795_465_000_000,
            expires_ms: 1_795_468_600_000,
            mfa_authenticated_ms: Some(1_795_465_000_000),
            role: Some(RoleSession {
                role_arn: "arn:aws:iam::111122223333:role/ops/deployer".into(),
                role_id: "AROAEXAMPLE".into(),
                session_name: "ci".into(),
                chained: false,
            }),
            policy: None,
            policy_arns: Vec::new(),
            tags: Vec::new(),
            transitive_tag_keys: Vec::new(),
            source_identity: Some("alice".into()),
        };
        let c = caller(PrincipalType::AssumedRole, Some(session));
        let e = event(&call(Some(&c)), None);
        let ui = &e["userIdentity"];
        assert_eq!(ui["type"], "AssumedRole");
        assert_eq!(ui["principalId"], "AROAEXAMPLE:ci");
        assert!(ui.get("userName").is_none());
        assert_eq!(
            ui["sessionContext"],
            json!({
                "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                    "arn": "arn:aws:iam::111122223333:role/ops/deployer",
                    "accountId": "111122223333", "userName": "deployer"},
                "attributes": {"creationDate": "2026-11-23T20:16:40Z", "mfaAuthenticated": "true"},
                "sourceIdentity": "alice"
            })
        );
    }

    #[test]
    fn root_and_unauthenticated_callers() {
        let root = caller(PrincipalType::Root, None);
        let e = event(&call(Some(&root)), None);
        assert_eq!(e["userIdentity"]["type"], "Root");
        assert_eq!(e["userIdentity"]["principalId"], "111122223333");
        assert!(e["userIdentity"].get("sessionContext").is_none());

        let mut anonymous = call(None);
        anonymous.error = Some((
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ));
        anonymous.resources.clear();
        let e = event(&anonymous, None);
        assert_eq!(
            e["userIdentity"],
            json!({"type": "Unknown", "accessKeyId": "AKIAUNKNOWN"})
        );
        assert_eq!(e["errorCode"], "UnrecognizedClientException");
        assert_eq!(
            e["errorMessage"],
            "The security token included in the request is invalid."
        );
        assert!(e.get("recipientAccountId").is_none());
    }

    #[test]
    fn event_text_is_escaped_json() {
        let c = caller(PrincipalType::Root, None);
        let mut tricky = call(Some(&c));
        tricky.user_agent = Some("agent \"quoted\"\n{line}");
        tricky.error = Some(("AccessDeniedException", "no \\ access\u{2028}"));
        let e = event(&tricky, None);
        assert_eq!(e["userAgent"], "agent \"quoted\"\n{line}");
        assert_eq!(e["errorMessage"], "no \\ access\u{2028}");
    }

    #[test]
    fn long_members_are_shortened_and_huge_requests_still_fit() {
        let long = "é".repeat(5000);
        let got = redact(json!({"Name": long, "Items": (0..500).collect::<Vec<_>>()}));
        let name = got["name"].as_str().unwrap();
        assert!(name.len() < MAX_KEPT_STRING + 40, "{}", name.len());
        assert!(name.ends_with("more bytes]"), "{name}");
        let items = got["items"].as_array().unwrap();
        assert_eq!(items.len(), MAX_KEPT_ARRAY_ITEMS + 1);
        assert_eq!(items[MAX_KEPT_ARRAY_ITEMS], "…[400 more items]");

        let c = caller(PrincipalType::Root, None);
        let mut huge = call(Some(&c));
        let members: serde_json::Map<String, Value> = (0..5000)
            .map(|i| (format!("Member{i}"), Value::String("x".repeat(100))))
            .collect();
        huge.request_parameters = Some(redact(Value::Object(members)));
        huge.error = Some(("ValidationException", &*"m".repeat(100_000).leak()));
        let bytes = api_call_event(&huge, true, None, 0, "ev-huge");
        assert!(bytes.len() <= MAX_EVENT_BYTES, "{}", bytes.len());
        let e: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(e["errorMessage"].as_str().unwrap().len() < MAX_KEPT_STRING + 40);
        assert!(
            e["requestParameters"]["omitted"]
                .as_str()
                .unwrap()
                .contains("they are not recorded"),
            "{}",
            e["requestParameters"]
        );
        assert_eq!(e["eventName"], "GetSecretValue");
    }

    #[test]
    fn quoted_values_of_secret_members_are_scrubbed_from_messages() {
        let m = "1 validation error detected: Value '123456' at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]{6}";
        assert_eq!(
            logged_message(m),
            "1 validation error detected: Value '[redacted]' at 'tokenCode' failed to satisfy constraint: Member must satisfy regular expression pattern: [0-9]{6}"
        );
        let two = "2 validation errors detected: Value 'alice' at 'userName' failed; Value 'it's' at 'x.password' failed";
        assert_eq!(
            logged_message(two),
            "2 validation errors detected: Value 'alice' at 'userName' failed; Value '[redacted]' at 'x.password' failed"
        );
        assert_eq!(logged_message("no quotes here"), "no quotes here");
        assert_eq!(logged_message("Value 'dangling"), "Value 'dangling");
    }

    #[test]
    fn read_only_follows_cloudtrail() {
        for (source, name, read_only) in [
            (EventSource::SecretsManager, "GetSecretValue", true),
            (EventSource::SecretsManager, "BatchGetSecretValue", true),
            (EventSource::SecretsManager, "PutSecretValue", false),
            (EventSource::SecretsManager, "DeleteSecret", false),
            (EventSource::Kms, "Decrypt", true),
            (EventSource::Kms, "GenerateDataKey", true),
            (EventSource::Kms, "ScheduleKeyDeletion", false),
            (EventSource::Iam, "ListUsers", true),
            (EventSource::Iam, "CreateAccessKey", false),
            (EventSource::Sts, "GetCallerIdentity", true),
            (EventSource::CloudTrail, "LookupEvents", true),
        ] {
            assert_eq!(is_read_only(source, name), read_only, "{name}");
        }
    }

    #[test]
    fn service_events_name_the_service_as_the_actor() {
        let e = service_event(
            &ServiceEvent {
                source: EventSource::SecretsManager,
                event_name: "RotationFailed",
                account_id: "111122223333",
                region: "us-east-1",
                resource: Resource::secret(
                    "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf",
                ),
                details: json!({"secretId": "arn", "step": "setSecret", "SecretString": "never"}),
            },
            0,
            "ev-2",
        );
        let e: Value = serde_json::from_slice(&e).unwrap();
        assert_eq!(
            e["userIdentity"],
            json!({"accountId": "111122223333", "invokedBy": "secretsmanager.amazonaws.com"})
        );
        assert_eq!(e["eventType"], "AwsServiceEvent");
        assert_eq!(e["eventName"], "RotationFailed");
        assert_eq!(e["readOnly"], false);
        assert_eq!(
            e["serviceEventDetails"],
            json!({"secretId": "arn", "step": "setSecret"})
        );
        assert_eq!(e["recipientAccountId"], "111122223333");
    }
}
