//! LookupEvents over the audit log: CloudTrail's `LookupEvents` (and the `--filter KEY=VALUE`
//! of `coffer audit tail`) answered from the segments `coffer-audit` writes.
//!
//! # Matching
//!
//! [`EventFilter`] holds the conditions, all of which must hold: lookup attributes (the eight
//! keys of the CloudTrail model, [`LookupAttribute`]), an inclusive time range on
//! `eventTime`, and the account the event belongs to (its `recipientAccountId` or
//! `userIdentity.accountId`). `Username` is the name CloudTrail shows: `userName` for an IAM
//! user, `root` for the root user, the session name for an assumed role. `ResourceName`
//! matches a resource's ARN or the name in it (a secret's name with or without its random
//! suffix, a KMS key's id, an alias, the last element of other ARNs) and, for Secrets
//! Manager events, the request's `secretId` as the caller wrote it.
//!
//! # Reading the log
//!
//! Events come back newest first (by seq, descending). A lookup lists the segments and reads
//! them newest first, each forward with `coffer_audit::read_records` bounded by the next
//! segment's start, so a page of recent events reads the newest segment only. Within a
//! segment, a line is parsed only if it can match: every attribute value (and the account
//! id) must occur in the line's bytes ([`EventFilter::might_match`]), which the writer's
//! JSON spelling guarantees for values without quotes, backslashes or control characters
//! (the others skip this test). The lines that pass are kept in chunks of a few MiB and
//! parsed newest first, only until the page is full, so memory stays bounded and an
//! unfiltered page parses little more than the events it returns.
//!
//! A time range also skips whole segments by the `eventTime` of their first record: events
//! are appended in time order up to the length of a request, so a segment whose successor
//! begins more than [`CLOCK_SLACK_MS`] before the start holds nothing in range and ends the
//! scan, and one that begins more than that after the end is skipped. (A wall clock set back
//! by more than that while the server ran could hide events from a time-bounded lookup.)
//!
//! # Pages
//!
//! The next token is opaque: base64url of a version, the seq to continue below, and a
//! fingerprint of the query's filter (attributes, times, category, account), so a token is
//! refused with another query (`InvalidNextTokenException`), as CloudTrail does. It holds no
//! event content. When retention has removed the segments a token points into, the lookup
//! ends cleanly with what remains (no error, no further token); a segment that disappears
//! during a scan ends it the same way.

use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_audit::{AuditError, read_records, segment_starts};
use coffer_store::Store;
use serde_json::Value;

use crate::clock::{EpochMillis, parse_iso8601};
use crate::{Caller, Coffer, CoreError};

/// `MaxResults` when the request has none, and its largest value.
pub const MAX_RESULTS: usize = 50;

/// The longest `AttributeValue` (where `_`, space, `,` and newline count twice, as the model
/// says).
pub const MAX_ATTRIBUTE_VALUE: usize = 2000;

/// How far an event's `eventTime` may be from the order of appends: the longest a request
/// (or a clock step) can take between its time being taken and its event being appended.
pub const CLOCK_SLACK_MS: i64 = 60 * 60 * 1000;

/// Lines that passed the byte test are parsed in chunks of about this size.
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

const TOKEN_MAGIC: [u8; 3] = [b'c', b't', 1];

const SECRETS_MANAGER: &str = "secretsmanager.amazonaws.com";

/// A lookup attribute of the CloudTrail model (`LookupAttributeKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupAttribute {
    EventId,
    EventName,
    ReadOnly,
    Username,
    ResourceType,
    ResourceName,
    EventSource,
    AccessKeyId,
}

impl LookupAttribute {
    /// Every attribute, in the model's order.
    pub const ALL: [LookupAttribute; 8] = [
        LookupAttribute::EventId,
        LookupAttribute::EventName,
        LookupAttribute::ReadOnly,
        LookupAttribute::Username,
        LookupAttribute::ResourceType,
        LookupAttribute::ResourceName,
        LookupAttribute::EventSource,
        LookupAttribute::AccessKeyId,
    ];

    /// The `AttributeKey` spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EventId => "EventId",
            Self::EventName => "EventName",
            Self::ReadOnly => "ReadOnly",
            Self::Username => "Username",
            Self::ResourceType => "ResourceType",
            Self::ResourceName => "ResourceName",
            Self::EventSource => "EventSource",
            Self::AccessKeyId => "AccessKeyId",
        }
    }

    /// The attribute an `AttributeKey` names, spelled exactly as the model does.
    #[must_use]
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == key)
    }

    /// The attribute a key names in any case (`eventname`, `USERNAME`), for command lines.
    #[must_use]
    pub fn from_key_ignore_case(key: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(key))
    }
}

impl std::fmt::Display for LookupAttribute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A LookupEvents request, as the protocol layer read it. Validation happens in
/// [`lookup_events`], so every caller gets the model's errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupQuery {
    /// `LookupAttributes` as sent, `(AttributeKey, AttributeValue)`: at most one.
    pub lookup_attributes: Vec<(String, String)>,
    /// `StartTime` in Unix milliseconds: events at or after it.
    pub start_time_ms: Option<EpochMillis>,
    /// `EndTime` in Unix milliseconds: events at or before it.
    pub end_time_ms: Option<EpochMillis>,
    /// `EventCategory`: the model's only value is `insight`, and coffer records no Insights
    /// events, so it yields an empty page.
    pub event_category: Option<String>,
    /// `MaxResults`, 1–50; 50 when absent.
    pub max_results: Option<i64>,
    /// `NextToken` from the previous page of the same query.
    pub next_token: Option<String>,
    /// Only events of this account ([`Coffer::lookup_events`] sets the caller's).
    pub account_id: Option<String>,
}

/// One event found, newest first in a [`LookupPage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEvent {
    /// Its position in the audit log.
    pub seq: u64,
    /// `eventID`.
    pub event_id: String,
    /// `eventName`.
    pub event_name: String,
    /// `readOnly` (false when absent).
    pub read_only: bool,
    /// `userIdentity.accessKeyId`.
    pub access_key_id: Option<String>,
    /// `eventTime` in Unix milliseconds (0 when it cannot be read).
    pub event_time_ms: EpochMillis,
    /// `eventSource`.
    pub event_source: String,
    /// The user name CloudTrail shows (see the module docs).
    pub username: Option<String>,
    /// `(type, ARN)` of each entry of `resources`.
    pub resources: Vec<(String, String)>,
    /// The event's JSON exactly as recorded.
    pub raw: String,
}

/// A page of events, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LookupPage {
    pub events: Vec<FoundEvent>,
    /// Present when older events may match.
    pub next_token: Option<String>,
}

/// Why a lookup failed; each variant but [`LookupError::Log`] is an exception of the
/// CloudTrail model ([`LookupError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("{0}")]
    InvalidLookupAttributes(String),
    #[error("{0}")]
    InvalidTimeRange(String),
    #[error("{0}")]
    InvalidMaxResults(String),
    #[error("{0}")]
    InvalidNextToken(String),
    #[error("{0}")]
    InvalidEventCategory(String),
    /// The audit log could not be read.
    #[error("{0}")]
    Log(#[from] AuditError),
}

impl LookupError {
    /// The CloudTrail exception name (`InternalFailure` for a log that cannot be read).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
            Self::InvalidTimeRange(_) => "InvalidTimeRangeException",
            Self::InvalidMaxResults(_) => "InvalidMaxResultsException",
            Self::InvalidNextToken(_) => "InvalidNextTokenException",
            Self::InvalidEventCategory(_) => "InvalidEventCategoryException",
            Self::Log(_) => "InternalFailure",
        }
    }
}

impl From<LookupError> for CoreError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::InvalidNextToken(m) => CoreError::InvalidNextToken(m),
            LookupError::Log(e) => CoreError::Internal(format!("LookupEvents: {e}")),
            other => CoreError::CloudTrail {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

fn invalid_time_range() -> LookupError {
    LookupError::InvalidTimeRange("Start time must be before or equal to end time.".into())
}

// ---------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------

/// Conditions on an event, all of which must hold: lookup attributes (any number here;
/// LookupEvents allows one), an inclusive `eventTime` range, and an account.
///
/// ```
/// use coffer_core::audit::lookup::EventFilter;
///
/// let filter = EventFilter::parse_all(["eventname=GetSecretValue", "Username=alice"]).unwrap();
/// let event = serde_json::json!({
///     "eventName": "GetSecretValue",
///     "userIdentity": {"type": "IAMUser", "userName": "alice"},
/// });
/// assert!(filter.matches(&event));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// With `ReadOnly` values normalised to `true` / `false`.
    attributes: Vec<(LookupAttribute, String)>,
    start_ms: Option<EpochMillis>,
    end_ms: Option<EpochMillis>,
    account_id: Option<String>,
}

impl FromStr for EventFilter {
    type Err = LookupError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

impl EventFilter {
    /// A filter every event passes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// One `KEY=VALUE` condition: a lookup attribute (`EventName=GetSecretValue`,
    /// `username=alice`; keys in any case), or `StartTime=` / `EndTime=` with an ISO 8601 time
    /// (`2026-11-24T10:00:00Z`).
    pub fn parse(spec: &str) -> Result<Self, LookupError> {
        let mut filter = Self::new();
        filter.add(spec)?;
        Ok(filter)
    }

    /// Several `KEY=VALUE` conditions, all of which must hold.
    pub fn parse_all<I, T>(specs: I) -> Result<Self, LookupError>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut filter = Self::new();
        for spec in specs {
            filter.add(spec.as_ref())?;
        }
        Ok(filter)
    }

    /// Adds one `KEY=VALUE` condition (see [`EventFilter::parse`]).
    pub fn add(&mut self, spec: &str) -> Result<(), LookupError> {
        let Some((key, value)) = spec.split_once('=') else {
            return Err(LookupError::InvalidLookupAttributes(format!(
                "A filter is KEY=VALUE, where KEY is one of {}, StartTime or EndTime.",
                key_list()
            )));
        };
        let key = key.trim();
        let time = |what: &str| {
            parse_iso8601(value.trim()).ok_or_else(|| {
                LookupError::InvalidTimeRange(format!(
                    "{what} must be an ISO 8601 UTC time such as 2026-11-24T10:00:00Z."
                ))
            })
        };
        if key.eq_ignore_ascii_case("StartTime") {
            let t = time("StartTime")?;
            let start = self.start_ms.map_or(t, |s| s.max(t));
            return self.set_time_range(Some(start), self.end_ms);
        }
        if key.eq_ignore_ascii_case("EndTime") {
            let t = time("EndTime")?;
            let end = self.end_ms.map_or(t, |e| e.min(t));
            return self.set_time_range(self.start_ms, Some(end));
        }
        let attribute = LookupAttribute::from_key_ignore_case(key).ok_or_else(|| {
            LookupError::InvalidLookupAttributes(format!(
                "{key} is not a lookup attribute; use one of {}, StartTime or EndTime.",
                key_list()
            ))
        })?;
        self.add_attribute(attribute, value)
    }

    /// Adds a lookup attribute condition. `ReadOnly` takes `true` or `false` (any case); a
    /// value must be 1 to 2000 characters.
    pub fn add_attribute(
        &mut self,
        attribute: LookupAttribute,
        value: &str,
    ) -> Result<(), LookupError> {
        let weighted: usize = value
            .chars()
            .map(|c| {
                if matches!(c, '_' | ' ' | ',' | '\n') {
                    2
                } else {
                    1
                }
            })
            .sum();
        if value.is_empty() || weighted > MAX_ATTRIBUTE_VALUE {
            return Err(LookupError::InvalidLookupAttributes(format!(
                "The value of the {attribute} lookup attribute must be 1 to {MAX_ATTRIBUTE_VALUE} characters long."
            )));
        }
        let value = if attribute == LookupAttribute::ReadOnly {
            if value.eq_ignore_ascii_case("true") {
                "true".to_string()
            } else if value.eq_ignore_ascii_case("false") {
                "false".to_string()
            } else {
                return Err(LookupError::InvalidLookupAttributes(
                    "The value of the ReadOnly lookup attribute must be true or false.".into(),
                ));
            }
        } else {
            value.to_string()
        };
        self.attributes.push((attribute, value));
        Ok(())
    }

    /// Keeps events whose `eventTime` is within `[start, end]` (either bound may be open).
    pub fn set_time_range(
        &mut self,
        start_ms: Option<EpochMillis>,
        end_ms: Option<EpochMillis>,
    ) -> Result<(), LookupError> {
        if let (Some(s), Some(e)) = (start_ms, end_ms)
            && s > e
        {
            return Err(invalid_time_range());
        }
        self.start_ms = start_ms;
        self.end_ms = end_ms;
        Ok(())
    }

    /// Keeps the events of one account only.
    #[must_use]
    pub fn in_account(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }

    /// The attribute conditions (`ReadOnly` values normalised to `true` / `false`).
    #[must_use]
    pub fn attributes(&self) -> &[(LookupAttribute, String)] {
        &self.attributes
    }

    /// The time range, inclusive.
    #[must_use]
    pub fn time_range(&self) -> (Option<EpochMillis>, Option<EpochMillis>) {
        (self.start_ms, self.end_ms)
    }

    /// A cheap test on the event's raw JSON: `false` means the event cannot match (a value it
    /// must hold does not occur in it); `true` means [`EventFilter::matches`] must decide.
    #[must_use]
    pub fn might_match(&self, raw: &[u8]) -> bool {
        let mut needles = self
            .attributes
            .iter()
            .filter_map(|(attribute, value)| needle(*attribute, value))
            .chain(self.account_id.as_deref().filter(|a| is_plain(a)))
            .peekable();
        if needles.peek().is_none() {
            return true;
        }
        // Events are UTF-8 (the log checks it); anything else is left to the full test.
        let Ok(text) = std::str::from_utf8(raw) else {
            return true;
        };
        needles.all(|n| text.contains(n))
    }

    /// Whether a parsed event meets every condition.
    #[must_use]
    pub fn matches(&self, event: &Value) -> bool {
        if let Some(account) = &self.account_id
            && !belongs_to(event, account)
        {
            return false;
        }
        if self.start_ms.is_some() || self.end_ms.is_some() {
            let Some(t) = event_time(event) else {
                return false;
            };
            if self.start_ms.is_some_and(|s| t < s) || self.end_ms.is_some_and(|e| t > e) {
                return false;
            }
        }
        self.attributes
            .iter()
            .all(|(attribute, value)| attribute_matches(*attribute, value, event))
    }

    /// [`EventFilter::might_match`], then [`EventFilter::matches`] on the parsed event (an
    /// event that is not JSON never matches).
    #[must_use]
    pub fn matches_raw(&self, raw: &[u8]) -> bool {
        self.might_match(raw)
            && serde_json::from_slice::<Value>(raw).is_ok_and(|event| self.matches(&event))
    }

    /// A stable hash of the conditions, which a next token carries.
    fn fingerprint(&self, insight: bool) -> u64 {
        // FNV-1a: stable across builds and nodes, unlike `DefaultHasher`.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes.iter().chain(&[0xff]) {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (attribute, value) in &self.attributes {
            eat(attribute.as_str().as_bytes());
            eat(value.as_bytes());
        }
        for bound in [self.start_ms, self.end_ms] {
            eat(&bound.map_or([0xee; 8], i64::to_be_bytes));
        }
        eat(self.account_id.as_deref().unwrap_or("-").as_bytes());
        eat(&[u8::from(insight)]);
        hash
    }
}

fn key_list() -> String {
    LookupAttribute::ALL.map(LookupAttribute::as_str).join(", ")
}

/// Whether the writer spells `value` verbatim inside a JSON string (no escapes).
fn is_plain(value: &str) -> bool {
    !value.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// What must occur in the raw event for an attribute condition to hold.
fn needle(attribute: LookupAttribute, value: &str) -> Option<&str> {
    match attribute {
        LookupAttribute::ReadOnly => (value == "true").then_some("true"),
        // The root user's name is derived from `type`, not written.
        LookupAttribute::Username if value == "root" => None,
        _ => is_plain(value).then_some(value),
    }
}

fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key)?.as_str()
}

fn event_time(event: &Value) -> Option<EpochMillis> {
    str_at(event, "eventTime").and_then(parse_iso8601)
}

fn belongs_to(event: &Value, account: &str) -> bool {
    str_at(event, "recipientAccountId") == Some(account)
        || event
            .get("userIdentity")
            .and_then(|u| str_at(u, "accountId"))
            == Some(account)
}

fn read_only(event: &Value) -> bool {
    match event.get("readOnly") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The user name CloudTrail shows for an event's `userIdentity`.
fn username(event: &Value) -> Option<&str> {
    let identity = event.get("userIdentity")?;
    match str_at(identity, "type") {
        Some("Root") => Some("root"),
        Some("AssumedRole") => str_at(identity, "arn")
            .and_then(|arn| arn.rsplit_once('/'))
            .map(|(_, session)| session)
            .or_else(|| {
                str_at(identity, "principalId")
                    .and_then(|p| p.split_once(':'))
                    .map(|(_, session)| session)
            }),
        _ => str_at(identity, "userName"),
    }
}

fn access_key_id(event: &Value) -> Option<&str> {
    event
        .get("userIdentity")
        .and_then(|u| str_at(u, "accessKeyId"))
}

/// `(type, ARN)` of each entry of `resources` (empty strings for absent members).
fn resources(event: &Value) -> impl Iterator<Item = (&str, &str)> {
    event
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let arn = str_at(r, "ARN").or_else(|| str_at(r, "arn"));
            (
                str_at(r, "type").unwrap_or_default(),
                arn.unwrap_or_default(),
            )
        })
}

/// Whether `name` names the resource of `arn`: the resource part (`key/ID`, `alias/NAME`,
/// `user/NAME`), its last element (`ID`, `NAME`), and for a secret its name with and without
/// the six-character suffix Secrets Manager adds.
fn arn_names(arn: &str, name: &str) -> bool {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), _, Some(service), _, _, Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    if resource.is_empty() {
        return false;
    }
    if service == "secretsmanager"
        && let Some(full) = resource.strip_prefix("secret:")
    {
        let base = full
            .rsplit_once('-')
            .filter(|(_, suffix)| suffix.len() == 6)
            .map(|(base, _)| base);
        return full == name || base == Some(name);
    }
    resource == name || resource.rsplit(['/', ':']).next() == Some(name)
}

fn attribute_matches(attribute: LookupAttribute, value: &str, event: &Value) -> bool {
    match attribute {
        LookupAttribute::EventId => str_at(event, "eventID") == Some(value),
        LookupAttribute::EventName => str_at(event, "eventName") == Some(value),
        LookupAttribute::ReadOnly => read_only(event) == (value == "true"),
        LookupAttribute::Username => username(event) == Some(value),
        LookupAttribute::ResourceType => resources(event).any(|(t, _)| t == value),
        LookupAttribute::ResourceName => {
            resources(event)
                .any(|(_, arn)| !arn.is_empty() && (arn == value || arn_names(arn, value)))
                || (str_at(event, "eventSource") == Some(SECRETS_MANAGER)
                    && event
                        .get("requestParameters")
                        .and_then(|p| str_at(p, "secretId"))
                        == Some(value))
        }
        LookupAttribute::EventSource => str_at(event, "eventSource") == Some(value),
        LookupAttribute::AccessKeyId => access_key_id(event) == Some(value),
    }
}

impl FoundEvent {
    /// The summary LookupEvents returns of a recorded event.
    fn from_event(seq: u64, event: &Value, raw: String) -> Self {
        let text = |key: &str| str_at(event, key).unwrap_or_default().to_string();
        Self {
            seq,
            event_id: text("eventID"),
            event_name: text("eventName"),
            read_only: read_only(event),
            access_key_id: access_key_id(event).map(str::to_string),
            event_time_ms: event_time(event).unwrap_or(0),
            event_source: text("eventSource"),
            username: username(event).map(str::to_string),
            resources: resources(event)
                .map(|(t, arn)| (t.to_string(), arn.to_string()))
                .collect(),
            raw,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The scan
// ---------------------------------------------------------------------------------------

/// A validated query.
struct Plan {
    filter: EventFilter,
    max: usize,
    /// Continue with seqs below this one.
    below: Option<u64>,
    fingerprint: u64,
    insight: bool,
}

fn plan(query: &LookupQuery) -> Result<Plan, LookupError> {
    if query.lookup_attributes.len() > 1 {
        return Err(LookupError::InvalidLookupAttributes(
            "You can specify only one lookup attribute.".into(),
        ));
    }
    let mut filter = EventFilter::new();
    for (key, value) in &query.lookup_attributes {
        let attribute = LookupAttribute::from_key(key).ok_or_else(|| {
            LookupError::InvalidLookupAttributes(format!(
                "{key} is not a valid lookup attribute key. Valid keys: {}.",
                key_list()
            ))
        })?;
        filter.add_attribute(attribute, value)?;
    }
    filter.set_time_range(query.start_time_ms, query.end_time_ms)?;
    let max = match query.max_results {
        None => MAX_RESULTS,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                LookupError::InvalidMaxResults(format!(
                    "MaxResults must be from 1 to {MAX_RESULTS}; {n} is not."
                ))
            })?,
    };
    let insight = match query.event_category.as_deref() {
        None => false,
        Some("insight") => true,
        Some(other) => {
            return Err(LookupError::InvalidEventCategory(format!(
                "{other} is not a valid event category. Valid value: insight."
            )));
        }
    };
    if let Some(account) = &query.account_id {
        filter = filter.in_account(account.clone());
    }
    let fingerprint = filter.fingerprint(insight);
    let below = match query.next_token.as_deref() {
        None | Some("") => None,
        Some(token) => Some(decode_token(token, fingerprint)?),
    };
    Ok(Plan {
        filter,
        max,
        below,
        fingerprint,
        insight,
    })
}

fn encode_token(below: u64, fingerprint: u64) -> String {
    let mut bytes = Vec::with_capacity(19);
    bytes.extend_from_slice(&TOKEN_MAGIC);
    bytes.extend_from_slice(&below.to_be_bytes());
    bytes.extend_from_slice(&fingerprint.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_token(token: &str, fingerprint: u64) -> Result<u64, LookupError> {
    let invalid = || {
        LookupError::InvalidNextToken(
            "The NextToken is not valid, or was issued for a request with other parameters.".into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
    let (magic, rest) = bytes.split_at_checked(3).ok_or_else(invalid)?;
    if magic != TOKEN_MAGIC || rest.len() != 16 {
        return Err(invalid());
    }
    let (seq, fp) = rest.split_at(8);
    let seq = u64::from_be_bytes(seq.try_into().map_err(|_| invalid())?);
    let fp = u64::from_be_bytes(fp.try_into().map_err(|_| invalid())?);
    if fp != fingerprint || seq < 2 {
        return Err(invalid());
    }
    Ok(seq)
}

/// Looks events up in the audit log directory `dir`, newest first. Blocking IO: call it on a
/// blocking thread. Validation errors are the CloudTrail model's ([`LookupError::code`]).
pub fn lookup_events(dir: &Path, query: &LookupQuery) -> Result<LookupPage, LookupError> {
    let plan = plan(query)?;
    if plan.insight {
        return Ok(LookupPage::default());
    }
    let (events, oldest) = newest_matching(dir, &plan.filter, plan.max, plan.below)?;
    let next_token = if events.len() >= plan.max {
        events
            .last()
            .filter(|e| oldest.is_some_and(|o| e.seq > o))
            .map(|e| encode_token(e.seq, plan.fingerprint))
    } else {
        None
    };
    Ok(LookupPage { events, next_token })
}

/// The newest `max` events matching `filter` with seqs below `below` (all when `None`),
/// newest first, and the oldest seq the log holds (`None` for an empty log). Blocking IO.
/// This is the scan behind LookupEvents and `coffer audit tail`.
pub fn newest_matching(
    dir: &Path,
    filter: &EventFilter,
    max: usize,
    below: Option<u64>,
) -> Result<(Vec<FoundEvent>, Option<u64>), LookupError> {
    let starts = match segment_starts(dir) {
        Ok(starts) => starts,
        Err(AuditError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), None));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(&oldest) = starts.first() else {
        return Ok((Vec::new(), None));
    };
    let mut first_times = FirstTimes::new(dir, &starts);
    let (start_ms, end_ms) = filter.time_range();
    let mut events: Vec<FoundEvent> = Vec::with_capacity(max.min(MAX_RESULTS));
    for (i, &lo) in starts.iter().enumerate().rev() {
        let mut hi = starts.get(i + 1).map(|next| next.saturating_sub(1));
        if let Some(below) = below {
            if lo >= below {
                continue;
            }
            hi = Some(hi.map_or(below - 1, |h| h.min(below - 1)));
        }
        // Every record of this segment was appended before the next one's first.
        if let Some(start) = start_ms
            && first_times
                .get(i + 1)
                .is_some_and(|t| t.saturating_add(CLOCK_SLACK_MS) < start)
        {
            break;
        }
        if let Some(end) = end_ms
            && first_times
                .get(i)
                .is_some_and(|t| t.saturating_sub(CLOCK_SLACK_MS) > end)
        {
            continue;
        }
        let need = max - events.len();
        let (found, pruned) = scan_segment(dir, lo, hi, filter, need)?;
        events.extend(found);
        if pruned || events.len() >= max {
            break;
        }
    }
    Ok((events, Some(oldest)))
}

/// The `eventTime` of each segment's first record, read when first needed.
struct FirstTimes<'a> {
    dir: &'a Path,
    starts: &'a [u64],
    cache: Vec<Option<Option<EpochMillis>>>,
}

impl<'a> FirstTimes<'a> {
    fn new(dir: &'a Path, starts: &'a [u64]) -> Self {
        Self {
            dir,
            starts,
            cache: vec![None; starts.len()],
        }
    }

    /// `None` when there is no such segment or its first time cannot be read.
    fn get(&mut self, index: usize) -> Option<EpochMillis> {
        let seq = *self.starts.get(index)?;
        let slot = self.cache.get_mut(index)?;
        *slot.get_or_insert_with(|| {
            let record = read_records(self.dir, seq).ok()?.until(seq).next()?.ok()?;
            serde_json::from_slice::<Value>(&record.event)
                .ok()
                .as_ref()
                .and_then(event_time)
        })
    }
}

/// The newest `need` matches among the records `lo..=hi` (to the end of the log when `hi` is
/// `None`), newest first, and whether retention removed the segment meanwhile.
fn scan_segment(
    dir: &Path,
    lo: u64,
    hi: Option<u64>,
    filter: &EventFilter,
    need: usize,
) -> Result<(Vec<FoundEvent>, bool), LookupError> {
    let records = match read_records(dir, lo) {
        Ok(records) => records,
        Err(AuditError::Pruned { .. }) => return Ok((Vec::new(), true)),
        Err(e) => return Err(e.into()),
    };
    let records = match hi {
        Some(hi) => records.until(hi),
        None => records,
    };
    let mut best = Vec::new();
    let mut chunk: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut chunk_bytes = 0;
    let mut pruned = false;
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(AuditError::Pruned { .. }) => {
                pruned = true;
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if !filter.might_match(&record.event) {
            continue;
        }
        chunk_bytes += record.event.len();
        chunk.push((record.seq, record.event));
        if chunk_bytes >= CHUNK_BYTES {
            take_newest(&mut chunk, filter, need, &mut best);
            chunk_bytes = 0;
        }
    }
    take_newest(&mut chunk, filter, need, &mut best);
    Ok((best, pruned))
}

/// Parses `chunk` newest first until `need` events match, and puts them before `best` (older
/// events, newest first), keeping the newest `need`. Empties `chunk`.
fn take_newest(
    chunk: &mut Vec<(u64, Vec<u8>)>,
    filter: &EventFilter,
    need: usize,
    best: &mut Vec<FoundEvent>,
) {
    let mut newer = Vec::new();
    while newer.len() < need {
        let Some((seq, raw)) = chunk.pop() else { break };
        let Ok(event) = serde_json::from_slice::<Value>(&raw) else {
            continue;
        };
        if !filter.matches(&event) {
            continue;
        }
        if let Ok(raw) = String::from_utf8(raw) {
            newer.push(FoundEvent::from_event(seq, &event, raw));
        }
    }
    chunk.clear();
    let keep = need - newer.len();
    newer.extend(best.drain(..).take(keep));
    *best = newer;
}

impl<S: Store> Coffer<S> {
    /// CloudTrail `LookupEvents`: the caller's account's events in the audit trail, newest
    /// first. Authorized as `cloudtrail:LookupEvents` on `*`.
    pub async fn lookup_events(
        &self,
        caller: &Caller,
        mut query: LookupQuery,
    ) -> Result<LookupPage, CoreError> {
        self.authorize(caller, "cloudtrail:LookupEvents", "*")
            .await?;
        let Some(trail) = self.audit() else {
            return Err(CoreError::CloudTrail {
                code: "UnsupportedOperationException",
                message:
                    "This coffer server was started with --no-audit and keeps no audit trail, so there are no events to look up; restart it without --no-audit."
                        .into(),
            });
        };
        query.account_id = Some(caller.account_id.clone());
        let dir = trail.dir().to_path_buf();
        tokio::task::spawn_blocking(move || lookup_events(&dir, &query))
            .await
            .map_err(|e| CoreError::Internal(format!("the LookupEvents scan stopped: {e}")))?
            .map_err(CoreError::from)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Arc;

    use coffer_audit::{AuditConfig, AuditKey, AuditLog, Durability};
    use serde_json::json;

    use super::*;
    use crate::clock::iso8601;

    const A: &str = "111122223333";
    const B: &str = "444455556666";
    const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";
    const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
    const T0: i64 = 1_795_500_000_000;

    fn root_identity(account: &str) -> Value {
        json!({"type": "Root", "principalId": account, "arn": format!("arn:aws:iam::{account}:root"),
               "accountId": account, "accessKeyId": "AKIAROOT0000000000"})
    }

    fn user_identity(name: &str) -> Value {
        json!({"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": format!("arn:aws:iam::{A}:user/{name}"),
               "accountId": A, "accessKeyId": format!("AKIA{}", name.to_uppercase()), "userName": name})
    }

    fn role_identity(session: &str) -> Value {
        json!({"type": "AssumedRole", "principalId": format!("AROAEXAMPLE:{session}"),
               "arn": format!("arn:aws:sts::{A}:assumed-role/deployer/{session}"),
               "accountId": A, "accessKeyId": "ASIAROLE0000000000",
               "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                   "arn": format!("arn:aws:iam::{A}:role/deployer"), "accountId": A, "userName": "deployer"},
                   "attributes": {"creationDate": "2026-11-24T10:00:00Z", "mfaAuthenticated": "false"}}})
    }

    struct Ev {
        identity: Value,
        source: &'static str,
        name: &'static str,
        read_only: bool,
        time_ms: i64,
        params: Value,
        resources: Vec<(&'static str, String)>,
        recipient: Option<&'static str>,
    }

    fn ev(identity: Value, source: &'static str, name: &'static str, time_ms: i64) -> Ev {
        Ev {
            identity,
            source,
            name,
            read_only: name.starts_with("Get") || name.starts_with("List") || name == "Decrypt",
            time_ms,
            params: Value::Null,
            resources: Vec::new(),
            recipient: Some(A),
        }
    }

    fn render(e: &Ev, id: &str) -> Vec<u8> {
        let mut v = json!({
            "eventVersion": "1.11",
            "userIdentity": e.identity,
            "eventTime": iso8601(e.time_ms),
            "eventSource": e.source,
            "eventName": e.name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "127.0.0.1",
            "requestParameters": e.params,
            "responseElements": null,
            "requestID": format!("req-{id}"),
            "eventID": id,
            "readOnly": e.read_only,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "eventCategory": "Management",
        });
        if !e.resources.is_empty() {
            v["resources"] = e
                .resources
                .iter()
                .map(|(t, arn)| json!({"accountId": A, "type": t, "ARN": arn}))
                .collect();
        }
        if let Some(r) = e.recipient {
            v["recipientAccountId"] = json!(r);
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn config(segment_max_bytes: u64) -> AuditConfig {
        AuditConfig {
            segment_max_bytes,
            ..AuditConfig::default()
        }
    }

    /// Appends the events (event ids `e1`, `e2`, … in order) and returns the open log.
    async fn write(dir: &Path, events: &[Ev], segment_max_bytes: u64) -> AuditLog {
        let log = AuditLog::open(
            dir,
            AuditKey::generate().unwrap(),
            config(segment_max_bytes),
        )
        .unwrap();
        for (i, e) in events.iter().enumerate() {
            log.append(render(e, &format!("e{}", i + 1)), Durability::Written)
                .await
                .unwrap();
        }
        log
    }

    /// A small trail of every kind of event, ids e1…e8.
    fn sample() -> Vec<Ev> {
        let mut get = ev(root_identity(A), SECRETS_MANAGER, "GetSecretValue", T0);
        get.params = json!({"secretId": "prod/db"});
        get.resources = vec![("AWS::SecretsManager::Secret", SECRET_ARN.to_string())];
        let mut create = ev(
            user_identity("alice"),
            SECRETS_MANAGER,
            "CreateSecret",
            T0 + 1000,
        );
        create.params = json!({"name": "prod/db"});
        create.resources = vec![("AWS::SecretsManager::Secret", SECRET_ARN.to_string())];
        let mut decrypt = ev(
            role_identity("ci-run"),
            "kms.amazonaws.com",
            "Decrypt",
            T0 + 2000,
        );
        decrypt.resources = vec![(
            "AWS::KMS::Key",
            format!("arn:aws:kms:us-east-1:{A}:key/{KEY_ID}"),
        )];
        let mut alias = ev(
            user_identity("bob"),
            "kms.amazonaws.com",
            "CreateAlias",
            T0 + 3000,
        );
        alias.resources = vec![(
            "AWS::KMS::Key",
            format!("arn:aws:kms:us-east-1:{A}:alias/app"),
        )];
        let mut rotation = ev(
            json!({"accountId": A, "invokedBy": SECRETS_MANAGER}),
            SECRETS_MANAGER,
            "RotationSucceeded",
            T0 + 4000,
        );
        rotation.resources = vec![("AWS::SecretsManager::Secret", SECRET_ARN.to_string())];
        let mut unknown = ev(
            json!({"type": "Unknown", "accessKeyId": "AKIANOBODY00000000"}),
            SECRETS_MANAGER,
            "ListSecrets",
            T0 + 5000,
        );
        unknown.recipient = None;
        let mut other = ev(root_identity(B), SECRETS_MANAGER, "ListSecrets", T0 + 6000);
        other.recipient = Some(B);
        let mut by_name = ev(
            user_identity("alice"),
            SECRETS_MANAGER,
            "GetSecretValue",
            T0 + 7000,
        );
        by_name.params = json!({"secretId": "by-name-only"});
        vec![
            get, create, decrypt, alias, rotation, unknown, other, by_name,
        ]
    }

    fn query(attribute: Option<(&str, &str)>) -> LookupQuery {
        LookupQuery {
            lookup_attributes: attribute
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect(),
            ..LookupQuery::default()
        }
    }

    fn ids(page: &LookupPage) -> Vec<&str> {
        page.events.iter().map(|e| e.event_id.as_str()).collect()
    }

    #[tokio::test]
    async fn each_lookup_attribute_finds_its_events_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = write(dir.path(), &sample(), 64 * 1024 * 1024).await;
        let all = lookup_events(dir.path(), &query(None)).unwrap();
        assert_eq!(ids(&all), ["e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1"]);
        assert_eq!(all.next_token, None);
        let cases: &[(&str, &str, &[&str])] = &[
            ("EventId", "e3", &["e3"]),
            ("EventName", "GetSecretValue", &["e8", "e1"]),
            ("EventName", "getsecretvalue", &[]),
            ("ReadOnly", "true", &["e8", "e7", "e6", "e3", "e1"]),
            ("ReadOnly", "false", &["e5", "e4", "e2"]),
            ("Username", "alice", &["e8", "e2"]),
            ("Username", "root", &["e7", "e1"]),
            ("Username", "ci-run", &["e3"]),
            ("Username", "deployer", &[]),
            (
                "ResourceType",
                "AWS::SecretsManager::Secret",
                &["e5", "e2", "e1"],
            ),
            ("ResourceType", "AWS::KMS::Key", &["e4", "e3"]),
            ("ResourceName", SECRET_ARN, &["e5", "e2", "e1"]),
            ("ResourceName", "prod/db", &["e5", "e2", "e1"]),
            ("ResourceName", "prod/db-AbCdEf", &["e5", "e2", "e1"]),
            ("ResourceName", "prod", &[]),
            ("ResourceName", KEY_ID, &["e3"]),
            ("ResourceName", "alias/app", &["e4"]),
            ("ResourceName", "by-name-only", &["e8"]),
            ("EventSource", "kms.amazonaws.com", &["e4", "e3"]),
            ("AccessKeyId", "AKIAALICE", &["e8", "e2"]),
            ("AccessKeyId", "AKIANOBODY00000000", &["e6"]),
            ("AccessKeyId", "ASIAROLE0000000000", &["e3"]),
        ];
        for (key, value, want) in cases {
            let page = lookup_events(dir.path(), &query(Some((key, value)))).unwrap();
            assert_eq!(ids(&page), *want, "{key}={value}");
        }
        // The summary of an event.
        let page = lookup_events(dir.path(), &query(Some(("EventId", "e3")))).unwrap();
        let e = &page.events[0];
        assert_eq!(e.seq, 3);
        assert_eq!(e.event_name, "Decrypt");
        assert!(e.read_only);
        assert_eq!(e.access_key_id.as_deref(), Some("ASIAROLE0000000000"));
        assert_eq!(e.event_time_ms, T0 + 2000);
        assert_eq!(e.event_source, "kms.amazonaws.com");
        assert_eq!(e.username.as_deref(), Some("ci-run"));
        assert_eq!(
            e.resources,
            [(
                "AWS::KMS::Key".to_string(),
                format!("arn:aws:kms:us-east-1:{A}:key/{KEY_ID}")
            )]
        );
        let raw: Value = serde_json::from_str(&e.raw).unwrap();
        assert_eq!(raw["eventID"], "e3");
        let service = &all.events[3];
        assert_eq!(
            (service.event_id.as_str(), service.username.as_deref()),
            ("e5", None)
        );
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn time_range_is_inclusive_and_account_scoping_uses_recipient_or_identity() {
        let dir = tempfile::tempdir().unwrap();
        let log = write(dir.path(), &sample(), 64 * 1024 * 1024).await;
        let mut q = query(None);
        q.start_time_ms = Some(T0 + 1000);
        q.end_time_ms = Some(T0 + 3000);
        assert_eq!(
            ids(&lookup_events(dir.path(), &q).unwrap()),
            ["e4", "e3", "e2"]
        );
        q.start_time_ms = Some(T0 + 3000);
        assert_eq!(ids(&lookup_events(dir.path(), &q).unwrap()), ["e4"]);
        q.start_time_ms = Some(T0 + 3001);
        q.end_time_ms = None;
        assert_eq!(
            ids(&lookup_events(dir.path(), &q).unwrap()),
            ["e8", "e7", "e6", "e5"]
        );

        let mut q = query(None);
        q.account_id = Some(A.into());
        // e6 (unauthenticated) names no account; e7 belongs to B.
        assert_eq!(
            ids(&lookup_events(dir.path(), &q).unwrap()),
            ["e8", "e5", "e4", "e3", "e2", "e1"]
        );
        q.account_id = Some(B.into());
        assert_eq!(ids(&lookup_events(dir.path(), &q).unwrap()), ["e7"]);
        // The service event belongs to A by its userIdentity alone.
        let mut only_identity = ev(
            json!({"accountId": B, "invokedBy": SECRETS_MANAGER}),
            SECRETS_MANAGER,
            "RotationFailed",
            T0 + 8000,
        );
        only_identity.recipient = None;
        log.append(render(&only_identity, "e9"), Durability::Written)
            .await
            .unwrap();
        assert_eq!(ids(&lookup_events(dir.path(), &q).unwrap()), ["e9", "e7"]);
        q.lookup_attributes = vec![("EventName".into(), "RotationFailed".into())];
        assert_eq!(ids(&lookup_events(dir.path(), &q).unwrap()), ["e9"]);
        log.close().await.unwrap();
    }

    fn many(n: usize) -> Vec<Ev> {
        (0..n)
            .map(|i| {
                let name = if i % 3 == 0 {
                    "GetSecretValue"
                } else {
                    "DescribeSecret"
                };
                let i = i64::try_from(i).unwrap();
                ev(user_identity("alice"), SECRETS_MANAGER, name, T0 + i * 1000)
            })
            .collect()
    }

    fn all_pages(dir: &Path, mut q: LookupQuery) -> Vec<Vec<u64>> {
        let mut pages = Vec::new();
        loop {
            let page = lookup_events(dir, &q).unwrap();
            pages.push(page.events.iter().map(|e| e.seq).collect());
            match page.next_token {
                Some(t) => q.next_token = Some(t),
                None => return pages,
            }
        }
    }

    #[tokio::test]
    async fn pages_continue_across_segments_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let log = write(dir.path(), &many(40), 2048).await;
        let segments = segment_starts(dir.path()).unwrap();
        assert!(segments.len() > 5, "{segments:?}");

        let mut q = query(None);
        q.max_results = Some(7);
        let pages = all_pages(dir.path(), q);
        assert!(pages[..pages.len() - 1].iter().all(|p| p.len() == 7));
        let seqs: Vec<u64> = pages.concat();
        assert_eq!(seqs, (1..=40).rev().collect::<Vec<u64>>());

        // With a filter: every third event, pages of 4.
        let mut q = query(Some(("EventName", "GetSecretValue")));
        q.max_results = Some(4);
        let pages = all_pages(dir.path(), q);
        let seqs: Vec<u64> = pages.concat();
        let want: Vec<u64> = (1..=40).rev().filter(|s| (s - 1) % 3 == 0).collect();
        assert_eq!(seqs, want);
        // 14 matches: pages of 4, 4, 4 and 2, and no token after the partial page.
        assert_eq!(pages.len(), 4);

        // A full page that reaches the oldest record has no token.
        let mut q = query(None);
        q.max_results = Some(40);
        let page = lookup_events(dir.path(), &q).unwrap();
        assert_eq!(page.events.len(), 40);
        assert_eq!(page.next_token, None);
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn time_bounds_skip_segments_far_outside_the_range() {
        let dir = tempfile::tempdir().unwrap();
        // Three days of events, eight hours apart, a few per segment.
        let events: Vec<Ev> = (0..9)
            .map(|i| {
                ev(
                    root_identity(A),
                    SECRETS_MANAGER,
                    "ListSecrets",
                    T0 + i * 8 * 3_600_000,
                )
            })
            .collect();
        let log = write(dir.path(), &events, 1200).await;
        let starts = segment_starts(dir.path()).unwrap();
        assert!(starts.len() >= 3, "{starts:?}");
        let mut q = query(None);
        q.start_time_ms = Some(T0 + 6 * 8 * 3_600_000);
        let want: Vec<u64> = (7..=9).rev().collect();
        let got: Vec<u64> = lookup_events(dir.path(), &q)
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, want);
        q.start_time_ms = None;
        q.end_time_ms = Some(T0 + 8 * 3_600_000);
        let got: Vec<u64> = lookup_events(dir.path(), &q)
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [2, 1]);

        // Neither reads the segments outside its range: damage the oldest and the newest.
        let oldest = dir.path().join(format!("seg-{:020}.jsonl", starts[0]));
        let newest = dir
            .path()
            .join(format!("seg-{:020}.jsonl", starts[starts.len() - 1]));
        log.close().await.unwrap();
        let mut q = query(None);
        q.start_time_ms = Some(T0 + 7 * 8 * 3_600_000);
        let before = std::fs::read(&oldest).unwrap();
        std::fs::write(&oldest, b"garbage\n").unwrap();
        assert!(!lookup_events(dir.path(), &q).unwrap().events.is_empty());
        assert!(lookup_events(dir.path(), &query(None)).is_err());
        std::fs::write(&oldest, before).unwrap();
        let contents = std::fs::read(&newest).unwrap();
        let first_line = contents
            .split_inclusive(|b| *b == b'\n')
            .next()
            .unwrap()
            .to_vec();
        let mut damaged = first_line.clone();
        damaged.extend_from_slice(b"garbage\n");
        std::fs::write(&newest, damaged).unwrap();
        let mut q = query(None);
        q.end_time_ms = Some(T0 + 8 * 3_600_000);
        let got: Vec<u64> = lookup_events(dir.path(), &q)
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(got, [2, 1]);
    }

    #[test]
    fn invalid_requests_get_the_models_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let code = |q: &LookupQuery| lookup_events(dir.path(), q).unwrap_err().code();
        let mut q = query(None);
        q.lookup_attributes = vec![
            ("EventName".into(), "A".into()),
            ("Username".into(), "b".into()),
        ];
        assert_eq!(code(&q), "InvalidLookupAttributesException");
        assert_eq!(
            code(&query(Some(("eventname", "A")))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(&query(Some(("Region", "A")))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(&query(Some(("EventName", "")))),
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            code(&query(Some(("EventName", &"_".repeat(1001))))),
            "InvalidLookupAttributesException"
        );
        assert!(lookup_events(dir.path(), &query(Some(("EventName", &"x".repeat(2000))))).is_ok());
        assert_eq!(
            code(&query(Some(("ReadOnly", "yes")))),
            "InvalidLookupAttributesException"
        );
        let mut q = query(None);
        q.start_time_ms = Some(2);
        q.end_time_ms = Some(1);
        assert_eq!(code(&q), "InvalidTimeRangeException");
        q.end_time_ms = Some(2);
        assert!(lookup_events(dir.path(), &q).is_ok());
        for n in [0, 51, -1] {
            let mut q = query(None);
            q.max_results = Some(n);
            assert_eq!(code(&q), "InvalidMaxResultsException");
        }
        let mut q = query(None);
        q.event_category = Some("Management".into());
        assert_eq!(code(&q), "InvalidEventCategoryException");
        for token in [
            "nonsense",
            "!!!",
            &encode_token(1, 0),
            &URL_SAFE_NO_PAD.encode(b"ct"),
        ] {
            let mut q = query(None);
            q.next_token = Some(token.to_string());
            assert_eq!(code(&q), "InvalidNextTokenException", "{token}");
        }
        // Errors map to CloudTrail codes in the core error.
        let e = CoreError::from(LookupError::InvalidTimeRange("x".into()));
        assert_eq!(
            e,
            CoreError::CloudTrail {
                code: "InvalidTimeRangeException",
                message: "x".into()
            }
        );
    }

    #[tokio::test]
    async fn a_token_belongs_to_its_query_and_insight_lookups_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let log = write(dir.path(), &many(10), 64 * 1024 * 1024).await;
        let mut q = query(Some(("Username", "alice")));
        q.max_results = Some(3);
        let token = lookup_events(dir.path(), &q).unwrap().next_token.unwrap();
        // The same query with another page size continues.
        let mut same = q.clone();
        same.max_results = Some(50);
        same.next_token = Some(token.clone());
        assert_eq!(lookup_events(dir.path(), &same).unwrap().events.len(), 7);
        let changes: [fn(&mut LookupQuery); 4] = [
            |q: &mut LookupQuery| q.lookup_attributes[0].1 = "bob".into(),
            |q: &mut LookupQuery| q.start_time_ms = Some(0),
            |q: &mut LookupQuery| q.account_id = Some(A.into()),
            |q: &mut LookupQuery| q.lookup_attributes.clear(),
        ];
        for change in changes {
            let mut other = same.clone();
            change(&mut other);
            assert_eq!(
                lookup_events(dir.path(), &other).unwrap_err().code(),
                "InvalidNextTokenException"
            );
        }
        let mut insight = query(None);
        insight.event_category = Some("insight".into());
        assert_eq!(
            lookup_events(dir.path(), &insight).unwrap(),
            LookupPage::default()
        );
        log.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_pruned_log_ends_the_pages_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let log = write(dir.path(), &many(40), 2048).await;
        let mut q = query(None);
        q.max_results = Some(10);
        let first = lookup_events(dir.path(), &q).unwrap();
        assert_eq!(first.events.len(), 10);
        let token = first.next_token.unwrap();
        // Retention removes everything but the segment being written.
        let outcome = log.prune(i64::MAX).unwrap();
        assert!(outcome.removed_segments > 0);
        let kept = outcome.first_retained_seq.unwrap();
        q.next_token = Some(token);
        let rest = lookup_events(dir.path(), &q).unwrap();
        assert_eq!(rest.next_token, None);
        assert!(rest.events.iter().all(|e| e.seq >= kept && e.seq < 31));
        // A fresh lookup sees what is left.
        let all = all_pages(dir.path(), query(None)).concat();
        assert_eq!(all, (kept..=40).rev().collect::<Vec<u64>>());
        log.close().await.unwrap();
        // An empty or missing directory has no events.
        assert_eq!(
            lookup_events(&dir.path().join("missing"), &query(None)).unwrap(),
            LookupPage::default()
        );
    }

    #[test]
    fn chunks_keep_the_newest_matches() {
        let filter = EventFilter::parse("EventName=Hit").unwrap();
        let line = |seq: u64, name: &str| {
            let raw = format!(r#"{{"eventName":"{name}","eventID":"{seq}"}}"#);
            (seq, raw.into_bytes())
        };
        let mut best = Vec::new();
        // Older chunk: hits 1, 3; newer chunk: hits 5, 6, 8.
        let mut chunk = vec![line(1, "Hit"), line(2, "Miss"), line(3, "Hit")];
        take_newest(&mut chunk, &filter, 4, &mut best);
        assert!(chunk.is_empty());
        let mut chunk = vec![
            line(5, "Hit"),
            line(6, "Hit"),
            line(7, "Miss"),
            line(8, "Hit"),
        ];
        take_newest(&mut chunk, &filter, 4, &mut best);
        let seqs: Vec<u64> = best.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [8, 6, 5, 3]);
        let mut chunk = vec![
            line(9, "Hit"),
            line(10, "Hit"),
            line(11, "Hit"),
            line(12, "Hit"),
        ];
        take_newest(&mut chunk, &filter, 4, &mut best);
        let seqs: Vec<u64> = best.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [12, 11, 10, 9]);
    }

    #[test]
    fn event_filters_parse_and_combine() {
        let f = EventFilter::parse_all(["eventname=GetSecretValue", " USERNAME =alice"]).unwrap();
        assert_eq!(
            f.attributes(),
            [
                (LookupAttribute::EventName, "GetSecretValue".to_string()),
                (LookupAttribute::Username, "alice".to_string())
            ]
        );
        let event = json!({"eventName": "GetSecretValue", "eventTime": "2026-11-24T10:00:01Z",
                           "userIdentity": {"type": "IAMUser", "userName": "alice"}});
        assert!(f.matches(&event));
        assert!(f.matches_raw(event.to_string().as_bytes()));
        let bob = json!({"eventName": "GetSecretValue", "userIdentity": {"type": "IAMUser", "userName": "bob"}});
        assert!(!f.matches(&bob));
        assert!(!f.might_match(bob.to_string().as_bytes()));

        let f: EventFilter = "ReadOnly=TRUE".parse().unwrap();
        assert_eq!(f.attributes()[0].1, "true");
        assert!(f.matches(&json!({"readOnly": true})));
        assert!(!f.matches(&json!({"readOnly": false})));
        assert!(!f.matches(&json!({})));
        let f: EventFilter = "readonly=false".parse().unwrap();
        assert!(f.matches(&json!({})));

        let f = EventFilter::parse_all([
            "StartTime=2026-11-24T10:00:00Z",
            "EndTime=2026-11-24T10:00:01Z",
            "starttime=2026-11-24T09:00:00Z",
        ])
        .unwrap();
        assert_eq!(
            f.time_range(),
            (
                parse_iso8601("2026-11-24T10:00:00Z"),
                parse_iso8601("2026-11-24T10:00:01Z")
            )
        );
        assert!(f.matches(&event));
        assert!(!f.matches(&json!({"eventTime": "2026-11-24T10:00:02Z"})));
        assert!(!f.matches(&json!({})));

        for bad in [
            "EventName",
            "Region=x",
            "EventName=",
            "StartTime=yesterday",
            "ReadOnly=1",
        ] {
            assert!(EventFilter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            EventFilter::parse_all([
                "StartTime=2026-11-24T10:00:00Z",
                "EndTime=2026-11-24T09:00:00Z"
            ])
            .unwrap_err()
            .code(),
            "InvalidTimeRangeException"
        );
        // Values JSON escapes are still found, by the full test.
        let f = EventFilter::parse(r#"EventName=a"b"#).unwrap();
        let quoted = json!({"eventName": "a\"b"});
        assert!(f.matches_raw(quoted.to_string().as_bytes()));
        // Root's user name is not in the bytes.
        let f = EventFilter::parse("Username=root").unwrap();
        assert!(f.matches_raw(br#"{"userIdentity":{"type":"Root"}}"#));
        // The account is tested on the bytes too.
        let f = EventFilter::new().in_account(B);
        assert!(!f.might_match(br#"{"recipientAccountId":"111122223333"}"#));
        assert!(f.matches_raw(br#"{"recipientAccountId":"444455556666"}"#));
    }

    fn caller(kind: crate::PrincipalType, account: &str, arn: String) -> Caller {
        Caller {
            account_id: account.into(),
            principal_arn: arn,
            principal_type: kind,
            access_key_id: "AKIAEXAMPLE".into(),
            region: "us-east-1".into(),
            source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            secure_transport: true,
            session: None,
        }
    }

    #[tokio::test]
    async fn coffer_lookup_is_authorized_and_scoped_to_the_callers_account() {
        let data = tempfile::tempdir().unwrap();
        crate::Coffer::init(
            data.path(),
            &crate::InitOptions {
                account_id: Some(A.into()),
            },
        )
        .unwrap();
        let coffer = crate::Coffer::open(data.path(), Arc::new(crate::clock::SystemClock)).unwrap();
        coffer.create_account(Some(B)).await.unwrap();
        let root_a = caller(
            crate::PrincipalType::Root,
            A,
            format!("arn:aws:iam::{A}:root"),
        );
        let root_b = caller(
            crate::PrincipalType::Root,
            B,
            format!("arn:aws:iam::{B}:root"),
        );

        let err = coffer
            .lookup_events(&root_a, LookupQuery::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                CoreError::CloudTrail {
                    code: "UnsupportedOperationException",
                    ..
                }
            ),
            "{err:?}"
        );

        let audit_dir = data.path().join("audit");
        let trail = coffer
            .open_audit(&audit_dir, AuditConfig::default())
            .await
            .unwrap();
        for (i, e) in sample().iter().enumerate() {
            trail
                .log()
                .append(render(e, &format!("e{}", i + 1)), Durability::Written)
                .await
                .unwrap();
        }
        let page = coffer
            .lookup_events(&root_a, LookupQuery::default())
            .await
            .unwrap();
        assert_eq!(ids(&page), ["e8", "e5", "e4", "e3", "e2", "e1"]);
        // The caller cannot widen the scope.
        let q = LookupQuery {
            account_id: Some(A.into()),
            ..LookupQuery::default()
        };
        let page = coffer.lookup_events(&root_b, q).await.unwrap();
        assert_eq!(ids(&page), ["e7"]);
        let q = LookupQuery {
            max_results: Some(0),
            ..LookupQuery::default()
        };
        let err = coffer.lookup_events(&root_a, q).await.unwrap_err();
        assert!(
            matches!(
                &err,
                CoreError::CloudTrail {
                    code: "InvalidMaxResultsException",
                    ..
                }
            ),
            "{err:?}"
        );

        // Events as the trail writes them are found by every attribute.
        let dave = caller(
            crate::PrincipalType::IamUser,
            A,
            format!("arn:aws:iam::{A}:user/dave"),
        );
        let secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/x-QwErTy";
        coffer
            .record_api_call(super::super::ApiCall {
                source: super::super::EventSource::SecretsManager,
                event_name: "GetSecretValue",
                caller: Some(&dave),
                claimed_access_key_id: None,
                region: "us-east-1",
                source_ip: dave.source_ip,
                user_agent: Some("aws-cli/2"),
                request_id: "req-dave",
                request_parameters: Some(super::super::redact(json!({"SecretId": "app/x"}))),
                response_elements: None,
                error: None,
                resources: vec![super::super::Resource::secret(secret)],
            })
            .await
            .unwrap();
        for (key, value) in [
            ("Username", "dave"),
            ("ResourceName", "app/x"),
            ("ResourceName", secret),
            ("ResourceType", "AWS::SecretsManager::Secret"),
            ("AccessKeyId", "AKIAEXAMPLE"),
            ("EventName", "GetSecretValue"),
            ("EventSource", "secretsmanager.amazonaws.com"),
            ("ReadOnly", "true"),
        ] {
            let q = LookupQuery {
                lookup_attributes: vec![(key.into(), value.into())],
                max_results: Some(1),
                ..LookupQuery::default()
            };
            let page = coffer.lookup_events(&root_a, q).await.unwrap();
            let found = &page.events[0];
            assert_eq!(found.username.as_deref(), Some("dave"), "{key}={value}");
            assert_eq!(found.event_name, "GetSecretValue");
            assert!(found.read_only);
            assert_eq!(found.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
        }

        // An IAM user without a policy allowing cloudtrail:LookupEvents is denied.
        coffer
            .create_user(&root_a, "carol", None, Vec::new())
            .await
            .unwrap();
        let carol = caller(
            crate::PrincipalType::IamUser,
            A,
            format!("arn:aws:iam::{A}:user/carol"),
        );
        let err = coffer
            .lookup_events(&carol, LookupQuery::default())
            .await
            .unwrap_err();
        match err {
            CoreError::AccessDenied(m) => assert!(m.contains("cloudtrail:LookupEvents"), "{m}"),
            other => panic!("{other:?}"),
        }
        trail.log().close().await.unwrap();
    }
}
