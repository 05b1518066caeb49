//! Audit sinks and alert rules: copies of the audit trail for somewhere else (a local file,
//! stdout for a log shipper, a SIEM's HTTP endpoint) and alerts on the events that matter,
//! all fed from the durable audit log on their own tasks.
//!
//! # Configuration (`coffer server --audit-config FILE`)
//!
//! ```json
//! {"retention_days": 365,
//!  "sinks": [{"name": "local-copy", "type": "file", "path": "/var/log/coffer/audit.jsonl"},
//!            {"name": "console", "type": "stdout"},
//!            {"name": "siem", "type": "webhook", "url": "https://siem.example/ingest",
//!             "signing_secret_file": "/etc/coffer/siem.key", "ca_bundle": "/etc/ssl/ca.pem",
//!             "batch_size": 100, "timeout_seconds": 10}],
//!  "alerts": [{"name": "secret-deleted", "pattern": {"eventName": ["DeleteSecret"]},
//!              "webhook": {"url": "http://127.0.0.1:9000/alerts"}}]}
//! ```
//!
//! Every member is optional except each sink's and alert's `name`, a sink's `type` and what
//! its type needs (`path`, `url`), and an alert's `pattern` and `webhook.url`. Unknown
//! members are errors. Relative paths are relative to the configuration file's directory.
//!
//! * `retention_days`: events older than this are pruned (see `AuditLog::prune`).
//! * Names are 1–64 of `A-Z a-z 0-9 _ -`, unique; an alert's at most 58 (its progress is
//!   kept as the cursor `alert-<name>` in `DATA_DIR/audit/cursors/`). Renaming a sink makes
//!   it a new sink.
//! * `file`: appends each event as one JSON line (the CloudTrail event only, not the log's
//!   record wrapper) to `path` (created with mode 0600; its directory must exist), and
//!   `fdatasync`s before recording progress. The file is reopened for every batch, so
//!   rotating it by renaming works.
//! * `stdout`: writes the same lines to standard output (coffer's own log goes to stderr).
//! * `webhook`: POSTs batches of up to `batch_size` events (default 100; and about 4 MiB)
//!   as `application/x-ndjson`, one event per line. `url` is `http://` or `https://` (no user
//!   info); `ca_bundle` is a PEM file of the CAs to trust instead of the public web PKI;
//!   with `signing_secret_file` (the file's content, without a trailing newline) or
//!   `signing_secret_env` (a variable's value) every request carries `X-Coffer-Timestamp`
//!   and `X-Coffer-Signature`, exactly as a rotation webhook's (`sha256=` + hex HMAC-SHA256
//!   of `TIMESTAMP + "." + BODY`); `timeout_seconds` (default 10) bounds each request.
//! * Alerts: `pattern` is an EventBridge-style event pattern
//!   ([`coffer_core::audit::pattern`]); every matching event is POSTed on its own, as
//!   `application/json`, to `webhook` (same members as a webhook sink but `batch_size`).
//! * `retry_initial_ms` / `retry_max_ms` (on a sink, or in an alert's `webhook`): a failed
//!   delivery is retried forever, waiting from `retry_initial_ms` (default 1000), doubling
//!   up to `retry_max_ms` (default 60000). Each failure is logged as a warning naming the
//!   sink, the seqs and the reason, never an event's content. A webhook has delivered when
//!   it answers 2xx.
//!
//! # Delivery
//!
//! Each sink and alert has its own task that follows the log: it reads the records after
//! its cursor up to the log's fsynced seq (so it never ships an event a power loss could
//! take back), delivers them in order, then stores its cursor; caught up, it waits for the
//! synced seq to move. Reading is plain file reads on a blocking thread, so a slow or failed
//! sink falls behind and catches up later but never holds an append or a request.
//!
//! * **Where a sink starts.** A sink with no cursor yet starts at the oldest retained event:
//!   a sink added later receives the history that retention still holds.
//! * **At least once.** Progress is stored after delivery, so a crash between the two
//!   delivers that batch again (receivers can deduplicate on `eventID`), and so can a
//!   stop ([`SinkSet::stop`]) that abandons a webhook request already in flight.
//! * **Retention wins.** A sink that fell further behind than the retention period finds its
//!   next events pruned: it logs a warning with the missing seqs and goes on from the oldest
//!   retained event.
//! * Alert rules read every event and POST only the matching ones; their cursor moves past
//!   the others.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer_audit::{AuditError, AuditLog, AuditRecord, Records, SinkCursor};
use coffer_core::audit::pattern::EventPattern;
use coffer_crypto::SecretBytes;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The default bound on one webhook request.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of events per webhook request.
pub const DEFAULT_BATCH_SIZE: usize = 100;
const MAX_BATCH_SIZE: u64 = 10_000;
/// File and stdout sinks (and alert rules) read up to this many events at a time.
const READ_BATCH: usize = 1_000;
/// …and stop adding events to a batch at this size (events are at most 256 KiB).
const READ_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A sink that is keeping up reads at most this often, so that a busy log is delivered in
/// batches rather than one fsync or request per event.
const MIN_READ_INTERVAL: Duration = Duration::from_millis(100);
/// How long [`SinkSet::stop`] waits for a task to finish what it is doing.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The longest alert name: `alert-` + name must be a cursor name (64 characters).
const MAX_ALERT_NAME: usize = 64 - ALERT_CURSOR_PREFIX.len();
const ALERT_CURSOR_PREFIX: &str = "alert-";

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

/// The audit trail's retention, sinks and alert rules (`--audit-config FILE`).
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    /// `retention_days`: events older than this are pruned. `None` keeps everything.
    pub retention: Option<Duration>,
    pub sinks: Vec<SinkSpec>,
    pub alerts: Vec<AlertRule>,
}

/// One sink: where every event goes.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// Also the name of its cursor.
    pub name: String,
    pub kind: SinkKind,
    pub retry: Backoff,
}

/// Where a sink delivers.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Appends JSON lines to a file, `fdatasync`ed before progress is recorded.
    File { path: PathBuf },
    /// Writes JSON lines to standard output.
    Stdout,
    /// POSTs batches of up to `batch_size` events as `application/x-ndjson`.
    Webhook {
        webhook: WebhookTarget,
        batch_size: usize,
    },
}

/// An alert rule: events matching `pattern` are POSTed one by one to `webhook`.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// Its cursor is `alert-<name>`.
    pub name: String,
    pub pattern: EventPattern,
    pub webhook: WebhookTarget,
    pub retry: Backoff,
}

impl AlertRule {
    /// The name of the alert's cursor.
    #[must_use]
    pub fn cursor_name(&self) -> String {
        format!("{ALERT_CURSOR_PREFIX}{}", self.name)
    }
}

/// An HTTP(S) endpoint events are POSTed to.
#[derive(Clone)]
pub struct WebhookTarget {
    /// `http://…` or `https://…`, without user info.
    pub url: String,
    /// Signs every request (`X-Coffer-Timestamp`, `X-Coffer-Signature`).
    pub signing_secret: Option<SecretBytes>,
    /// PEM file of the CAs to trust for `https://` instead of the public web PKI.
    pub ca_bundle: Option<PathBuf>,
    /// The bound on one request (connect, TLS, request, answer).
    pub timeout: Duration,
}

impl WebhookTarget {
    /// The URL without user info, query or fragment (which may carry tokens): what logs show.
    #[must_use]
    pub fn shown_url(&self) -> String {
        shown_url(&self.url)
    }
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.shown_url())
            .field("signing_secret", &self.signing_secret)
            .field("ca_bundle", &self.ca_bundle)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How failed deliveries are retried: forever, waiting `initial`, then twice as long each
/// time up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl AuditSettings {
    /// Reads and checks the settings file. Errors name the file and the offending member.
    /// Reads the signing secret files (and variables) it names.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        Self::parse(&text, base, &|name| std::env::var(name).ok())
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses settings from JSON text; relative paths are taken from `base`, and
    /// `signing_secret_env` variables are looked up with `env`.
    pub fn parse(
        text: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let mut top = Members::new(&value, "the settings".to_owned())?;
        let retention = top
            .integer("retention_days", 1, 100 * 366)?
            .map(|days| Duration::from_secs(days * 86_400));
        let sinks = top.array("sinks")?;
        let alerts = top.array("alerts")?;
        top.finish("")?;

        let parser = Parser { base, env };
        let sinks = sinks
            .iter()
            .enumerate()
            .map(|(i, sink)| parser.sink(i + 1, sink))
            .collect::<Result<Vec<_>, _>>()?;
        let alerts = alerts
            .iter()
            .enumerate()
            .map(|(i, alert)| parser.alert(i + 1, alert))
            .collect::<Result<Vec<_>, _>>()?;

        // One cursor per sink and alert, one writer per file.
        let mut cursors: HashMap<String, String> = HashMap::new();
        let mut files: HashMap<&Path, &str> = HashMap::new();
        let owners = sinks
            .iter()
            .map(|s| (s.name.clone(), format!("sink {:?}", s.name)))
            .chain(
                alerts
                    .iter()
                    .map(|a| (a.cursor_name(), format!("alert {:?}", a.name))),
            );
        for (cursor, owner) in owners {
            if let Some(first) = cursors.get(&cursor) {
                return Err(format!(
                    "{owner} has the same name as {first}; give each sink and alert its own name"
                ));
            }
            cursors.insert(cursor, owner);
        }
        for sink in &sinks {
            if let SinkKind::File { path } = &sink.kind {
                if let Some(first) = files.get(path.as_path()) {
                    return Err(format!(
                        "sinks {first:?} and {:?} both write to {}; give each file sink its own file",
                        sink.name,
                        path.display()
                    ));
                }
                files.insert(path.as_path(), &sink.name);
            }
        }
        Ok(Self {
            retention,
            sinks,
            alerts,
        })
    }
}

/// Reads one JSON object's members, remembering which were asked for so that the others
/// can be reported as unknown.
struct Members<'a> {
    object: &'a Map<String, Value>,
    place: String,
    known: Vec<&'static str>,
}

impl<'a> Members<'a> {
    fn new(value: &'a Value, place: String) -> Result<Self, String> {
        match value {
            Value::Object(object) => Ok(Self {
                object,
                place,
                known: Vec::new(),
            }),
            _ => Err(format!("{place} must be a JSON object {{…}}")),
        }
    }

    fn error(&self, key: &str, what: impl fmt::Display) -> String {
        format!("{}: member {key:?} {what}", self.place)
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.object.get(key)
    }

    fn string(&mut self, key: &'static str) -> Result<Option<&'a str>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
            Some(Value::String(_)) => Err(self.error(key, "must not be empty")),
            Some(other) => Err(self.error(key, format!("must be a string, not {}", kind(other)))),
        }
    }

    fn required_string(&mut self, key: &'static str) -> Result<&'a str, String> {
        self.string(key)?
            .ok_or_else(|| format!("{}: member {key:?} is missing", self.place))
    }

    fn integer(&mut self, key: &'static str, min: u64, max: u64) -> Result<Option<u64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => match value.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.error(
                    key,
                    format!("must be a whole number from {min} to {max}, not {value}"),
                )),
            },
        }
    }

    fn array(&mut self, key: &'static str) -> Result<&'a [Value], String> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => {
                Err(self.error(key, format!("must be a list [...], not {}", kind(other))))
            }
        }
    }

    fn object(&mut self, key: &'static str) -> Result<&'a Value, String> {
        match self.get(key) {
            Some(value @ Value::Object(_)) => Ok(value),
            Some(other) => {
                Err(self.error(key, format!("must be an object {{…}}, not {}", kind(other))))
            }
            None => Err(format!("{}: member {key:?} is missing", self.place)),
        }
    }

    /// Fails on a member nobody asked for; `what` qualifies the list (" for a file sink").
    fn finish(&self, what: &str) -> Result<(), String> {
        let mut unknown: Vec<&String> = self
            .object
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()))
            .collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{}: unknown member {first:?}{what}; expected {}",
                self.place,
                self.known.join(", ")
            )),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

struct Parser<'a> {
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Parser<'_> {
    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }

    fn sink(&self, number: usize, value: &Value) -> Result<SinkSpec, String> {
        let label = value
            .get("name")
            .and_then(Value::as_str)
            .map(|n| format!(" ({n:?})"))
            .unwrap_or_default();
        let mut m = Members::new(value, format!("sink {number}{label}"))?;
        let name = m.required_string("name")?;
        check_name(name, 64).map_err(|e| m.error("name", e))?;
        let sink_type = m.required_string("type")?;
        let retry = backoff(&mut m)?;
        let (kind, what) = match sink_type {
            "file" => {
                let path = self.resolve(m.required_string("path")?);
                (SinkKind::File { path }, " for a file sink")
            }
            "stdout" => (SinkKind::Stdout, " for a stdout sink"),
            "webhook" => {
                let webhook = self.webhook(&mut m)?;
                let batch_size = m
                    .integer("batch_size", 1, MAX_BATCH_SIZE)?
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(DEFAULT_BATCH_SIZE);
                (
                    SinkKind::Webhook {
                        webhook,
                        batch_size,
                    },
                    " for a webhook sink",
                )
            }
            other => {
                return Err(m.error(
                    "type",
                    format!("must be \"file\", \"stdout\" or \"webhook\", not {other:?}"),
                ));
            }
        };
        m.finish(what)?;
        Ok(SinkSpec {
            name: name.to_owned(),
            kind,
            retry,
        })
    }

    fn alert(&self, number: usize, value: &Value) -> Result<AlertRule, String> {
        let label = value
            .get("name")
            .and_then(Value::as_str)
            .map(|n| format!(" ({n:?})"))
            .unwrap_or_default();
        let mut m = Members::new(value, format!("alert {number}{label}"))?;
        let name = m.required_string("name")?;
        check_name(name, MAX_ALERT_NAME).map_err(|e| m.error("name", e))?;
        let pattern = m.object("pattern")?;
        let pattern = EventPattern::parse(pattern).map_err(|e| m.error("pattern", e))?;
        let webhook = m.object("webhook")?;
        m.finish("")?;
        let mut w = Members::new(
            webhook,
            format!("alert {number}{label}, member \"webhook\""),
        )?;
        let retry = backoff(&mut w)?;
        let target = self.webhook(&mut w)?;
        w.finish("")?;
        Ok(AlertRule {
            name: name.to_owned(),
            pattern,
            webhook: target,
            retry,
        })
    }

    fn webhook(&self, m: &mut Members<'_>) -> Result<WebhookTarget, String> {
        let url = m.required_string("url")?;
        check_url(url).map_err(|e| m.error("url", e))?;
        let secret_file = m.string("signing_secret_file")?;
        let secret_env = m.string("signing_secret_env")?;
        let signing_secret = match (secret_file, secret_env) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{}: give signing_secret_file or signing_secret_env, not both",
                    m.place
                ));
            }
            (Some(file), None) => {
                let path = self.resolve(file);
                let bytes = std::fs::read(&path).map_err(|e| {
                    m.error(
                        "signing_secret_file",
                        format!("names {}, which cannot be read: {e}", path.display()),
                    )
                })?;
                let secret = trim_line_end(bytes);
                if secret.is_empty() {
                    return Err(m.error(
                        "signing_secret_file",
                        format!("names {}, which is empty", path.display()),
                    ));
                }
                Some(secret)
            }
            (None, Some(var)) => match (self.env)(var) {
                Some(value) if !value.is_empty() => Some(SecretBytes::from(value)),
                _ => {
                    return Err(m.error(
                        "signing_secret_env",
                        format!("names the environment variable {var}, which is not set or empty"),
                    ));
                }
            },
            (None, None) => None,
        };
        let ca_bundle = match m.string("ca_bundle")? {
            Some(file) => {
                let path = self.resolve(file);
                std::fs::File::open(&path).map_err(|e| {
                    m.error(
                        "ca_bundle",
                        format!("names {}, which cannot be read: {e}", path.display()),
                    )
                })?;
                Some(path)
            }
            None => None,
        };
        let timeout = m
            .integer("timeout_seconds", 1, 300)?
            .map_or(DEFAULT_WEBHOOK_TIMEOUT, Duration::from_secs);
        Ok(WebhookTarget {
            url: url.to_owned(),
            signing_secret,
            ca_bundle,
            timeout,
        })
    }
}

fn backoff(m: &mut Members<'_>) -> Result<Backoff, String> {
    const MAX_MS: u64 = 3_600_000;
    let default = Backoff::default();
    let initial = m.integer("retry_initial_ms", 1, MAX_MS)?;
    let max = m.integer("retry_max_ms", 1, MAX_MS)?;
    let initial = initial.map_or(default.initial, Duration::from_millis);
    let max = match max {
        Some(ms) => Duration::from_millis(ms),
        None => default.max.max(initial),
    };
    if max < initial {
        return Err(m.error("retry_max_ms", "must not be less than retry_initial_ms"));
    }
    Ok(Backoff { initial, max })
}

/// A secret read from a file: without the line end an editor or `echo` adds.
fn trim_line_end(mut bytes: Vec<u8>) -> SecretBytes {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    SecretBytes::new(bytes)
}

fn check_name(name: &str, max: usize) -> Result<(), String> {
    let valid = (1..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "must be 1-{max} characters of A-Z, a-z, 0-9, _ and -, not {name:?}"
        ))
    }
}

/// What [`coffer_rotation::invoke::post`] would refuse, said at start rather than at the
/// first delivery.
fn check_url(url: &str) -> Result<(), String> {
    let shown = shown_url(url);
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{shown:?} must start with http:// or https://"));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{shown:?} names no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{shown:?} carries user info (user:password@), which coffer does not send; \
             authenticate with a signing secret instead"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!("{shown:?} names no host"));
    }
    Ok(())
}

/// Whether `url` is plain `http://` to a host other than this one.
fn is_plain_remote(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    if uri.scheme_str() != Some("http") {
        return false;
    }
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    !loopback
}

/// The URL as logs show it: scheme and host only. User info, path, query and fragment are
/// left out, since chat webhooks (Slack, Teams) carry their token in the path.
fn shown_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "(a webhook URL)".to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority
        .rfind('@')
        .map_or(authority, |at| &authority[at + 1..]);
    format!("{}{host}/…", &url[..scheme_end + 3])
}

// ---------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------

/// The running sinks and alerts. Dropping it stops them without waiting; [`SinkSet::stop`]
/// waits.
#[derive(Debug)]
pub struct SinkSet {
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<()>)>,
}

/// Starts one delivery task per sink and alert of `settings`, following `log`. Call it
/// within the server's Tokio runtime.
pub fn start(log: Arc<AuditLog>, settings: &AuditSettings) -> SinkSet {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::with_capacity(settings.sinks.len() + settings.alerts.len());
    let followers = settings
        .sinks
        .iter()
        .map(|sink| Follower {
            label: format!("sink {}", sink.name),
            cursor: sink.name.clone(),
            retry: sink.retry,
            target: match &sink.kind {
                SinkKind::File { path } => Target::File { path: path.clone() },
                SinkKind::Stdout => Target::Stdout,
                SinkKind::Webhook {
                    webhook,
                    batch_size,
                } => Target::Webhook {
                    webhook: webhook.clone(),
                    batch_size: *batch_size,
                },
            },
        })
        .chain(settings.alerts.iter().map(|alert| Follower {
            label: format!("alert {}", alert.name),
            cursor: alert.cursor_name(),
            retry: alert.retry,
            target: Target::Alert {
                pattern: alert.pattern.clone(),
                webhook: alert.webhook.clone(),
            },
        }));
    for follower in followers {
        if let Target::Webhook { webhook, .. } | Target::Alert { webhook, .. } = &follower.target
            && is_plain_remote(&webhook.url)
        {
            tracing::warn!(
                audit_sink = %follower.label,
                url = %webhook.shown_url(),
                "audit events go to this webhook over plain http:// and cross the network unencrypted; use https://"
            );
        }
        let label = follower.label.clone();
        let task = tokio::spawn(follower.run(Arc::clone(&log), stopped.clone()));
        tasks.push((label, task));
    }
    if !tasks.is_empty() {
        tracing::info!(
            sinks = settings.sinks.len(),
            alerts = settings.alerts.len(),
            "audit sinks started"
        );
    }
    SinkSet { stop, tasks }
}

impl SinkSet {
    /// Stops every task: a request or a wait between retries is abandoned at once (it is
    /// retried at the next start), a file write in progress is finished and recorded.
    /// Waits a few seconds at most.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + STOP_GRACE;
        for (label, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(audit_sink = %label, error = %e, "audit sink task failed");
                }
                Err(_) => {
                    task.abort();
                    tracing::warn!(audit_sink = %label, "audit sink did not stop in time; abandoned");
                }
            }
        }
    }
}

/// One sink's or alert's delivery task.
struct Follower {
    /// `sink NAME` or `alert NAME`, for logs.
    label: String,
    cursor: String,
    retry: Backoff,
    target: Target,
}

enum Target {
    File {
        path: PathBuf,
    },
    Stdout,
    Webhook {
        webhook: WebhookTarget,
        batch_size: usize,
    },
    Alert {
        pattern: EventPattern,
        webhook: WebhookTarget,
    },
}

impl Target {
    fn batch_size(&self) -> usize {
        match self {
            Target::Webhook { batch_size, .. } => *batch_size,
            _ => READ_BATCH,
        }
    }
}

/// Waits until the stop signal (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for `delay`; false when stopped first.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped(stop) => false,
    }
}

/// What reading a batch gave.
enum Read {
    Records(Vec<AuditRecord>),
    /// Retention removed the next records; go on after `first_available - 1`.
    Pruned {
        first_available: u64,
    },
    Failed(String),
}

/// The open reader of a follower and the seq it yields next.
struct Reader {
    records: Records,
    next: u64,
}

impl Follower {
    async fn run(self, log: Arc<AuditLog>, mut stop: watch::Receiver<bool>) {
        let Follower {
            label,
            cursor: cursor_name,
            retry,
            target,
        } = self;
        let dir = log.dir().to_path_buf();
        let mut synced = log.subscribe_synced();
        let mut cursor = initial_cursor(&dir, &cursor_name, &label, log.synced_seq()).await;
        let mut reader: Option<Reader> = None;
        let mut read_delay = retry.initial;
        let mut last_read: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let upto = *synced.borrow_and_update();
            if cursor >= upto {
                tokio::select! {
                    changed = synced.changed() => if changed.is_err() { break },
                    () = stopped(&mut stop) => break,
                }
                // Caught up: let a busy log gather a batch.
                if let Some(at) = last_read {
                    let since = at.elapsed();
                    if since < MIN_READ_INTERVAL
                        && !pause(MIN_READ_INTERVAL - since, &mut stop).await
                    {
                        break;
                    }
                }
                continue;
            }
            last_read = Some(Instant::now());
            let batch = tokio::select! {
                read = read_batch(&log, &mut reader, cursor, upto, target.batch_size()) => read,
                () = stopped(&mut stop) => break,
            };
            let batch = match batch {
                Read::Records(records) if records.is_empty() => Read::Failed(format!(
                    "no record from seq {} could be read although the log is synced up to {upto}",
                    cursor + 1
                )),
                other => other,
            };
            let records = match batch {
                Read::Records(records) => records,
                Read::Pruned { first_available } => {
                    tracing::warn!(
                        audit_sink = %label,
                        missing_from = cursor + 1,
                        missing_to = first_available.saturating_sub(1),
                        "audit events were pruned by retention before this sink delivered them; going on from the oldest retained event"
                    );
                    cursor = first_available.saturating_sub(1);
                    store_cursor(&dir, &cursor_name, &label, cursor).await;
                    continue;
                }
                Read::Failed(error) => {
                    reader = None;
                    tracing::warn!(
                        audit_sink = %label,
                        from = cursor + 1,
                        %error,
                        retry_in = ?read_delay,
                        "cannot read the audit log for this sink; retrying"
                    );
                    if !pause(read_delay, &mut stop).await {
                        break;
                    }
                    read_delay = (read_delay * 2).min(retry.max);
                    continue;
                }
            };
            read_delay = retry.initial;
            let Some(last) = records.last().map(|r| r.seq) else {
                continue;
            };
            let ctx = Ctx {
                label: &label,
                retry,
                dir: &dir,
                cursor_name: &cursor_name,
            };
            match target.deliver(&ctx, &records, &mut stop).await {
                Delivered::All => {
                    cursor = last;
                    store_cursor(&dir, &cursor_name, &label, cursor).await;
                }
                Delivered::Stopped { upto } => {
                    if let Some(upto) = upto {
                        store_cursor(&dir, &cursor_name, &label, upto).await;
                    }
                    break;
                }
            }
        }
        tracing::debug!(audit_sink = %label, "audit sink stopped");
    }
}

/// The cursor to continue from: the stored one, or (for a new sink, or one whose cursor
/// cannot be read) just before the oldest retained event.
async fn initial_cursor(dir: &Path, name: &str, label: &str, synced: u64) -> u64 {
    let (dir, name) = (dir.to_path_buf(), name.to_owned());
    let loaded = tokio::task::spawn_blocking(move || {
        let stored = SinkCursor::load(&dir, &name).map_err(|e| e.to_string());
        let oldest = coffer_audit::segment_starts(&dir)
            .ok()
            .and_then(|starts| starts.first().copied())
            .unwrap_or(1);
        (stored, oldest)
    })
    .await;
    let (stored, oldest) =
        loaded.unwrap_or_else(|e| (Err(format!("the loading task failed: {e}")), 1));
    let from_oldest = oldest.saturating_sub(1);
    let cursor = match stored {
        Ok(Some(cursor)) => cursor.seq(),
        Ok(None) => {
            tracing::info!(audit_sink = %label, from = oldest, "new audit sink: delivering from the oldest retained event");
            from_oldest
        }
        Err(error) => {
            tracing::warn!(
                audit_sink = %label,
                %error,
                from = oldest,
                "cannot read this sink's cursor; delivering from the oldest retained event (events it had delivered are delivered again)"
            );
            from_oldest
        }
    };
    if cursor > synced {
        tracing::warn!(
            audit_sink = %label,
            cursor,
            log_seq = synced,
            "this sink's cursor is ahead of the audit log (was the audit directory replaced?); delivering the log's new events from here"
        );
        return synced;
    }
    cursor
}

async fn store_cursor(dir: &Path, name: &str, label: &str, seq: u64) {
    let (dir, name) = (dir.to_path_buf(), name.to_owned());
    let stored = tokio::task::spawn_blocking(move || SinkCursor::new(&name, seq)?.store(&dir))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    if let Err(error) = stored {
        tracing::warn!(
            audit_sink = %label,
            seq,
            %error,
            "cannot store this sink's cursor; after a restart it delivers some events again"
        );
    }
}

/// Reads the records after `cursor` up to `upto` (at most `max`, and about
/// [`READ_BATCH_BYTES`]), continuing the open reader when it is at the right place.
async fn read_batch(
    log: &Arc<AuditLog>,
    reader: &mut Option<Reader>,
    cursor: u64,
    upto: u64,
    max: usize,
) -> Read {
    let log = Arc::clone(log);
    let open = reader.take().filter(|r| r.next == cursor + 1);
    let read = tokio::task::spawn_blocking(move || {
        let resumed = open.and_then(|mut open| open.records.extend_until(upto).then_some(open));
        let mut records = match resumed {
            Some(open) => open.records,
            None => match log.records_from(cursor + 1) {
                Ok(records) => records.until(upto),
                Err(e) => return (None, Err(e)),
            },
        };
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < max && bytes < READ_BATCH_BYTES {
            match records.next() {
                Some(Ok(record)) => {
                    bytes += record.event.len();
                    batch.push(record);
                }
                // Deliver what was read; the error comes back at the next read.
                Some(Err(_)) if !batch.is_empty() => return (None, Ok(batch)),
                Some(Err(e)) => return (None, Err(e)),
                None => break,
            }
        }
        let next = batch.last().map_or(cursor + 1, |r| r.seq + 1);
        (Some(Reader { records, next }), Ok(batch))
    })
    .await;
    match read {
        Ok((open, Ok(batch))) => {
            *reader = open;
            Read::Records(batch)
        }
        Ok((
            _,
            Err(AuditError::Pruned {
                first_available, ..
            }),
        )) => Read::Pruned { first_available },
        Ok((_, Err(e))) => Read::Failed(e.to_string()),
        Err(e) => Read::Failed(format!("the reading task failed: {e}")),
    }
}

/// What a follower's delivery needs to know besides the records.
struct Ctx<'a> {
    label: &'a str,
    retry: Backoff,
    dir: &'a Path,
    cursor_name: &'a str,
}

enum Delivered {
    All,
    /// Stopped before the end; `upto` is the last seq delivered, if any was.
    Stopped {
        upto: Option<u64>,
    },
}

impl Target {
    async fn deliver(
        &self,
        ctx: &Ctx<'_>,
        records: &[AuditRecord],
        stop: &mut watch::Receiver<bool>,
    ) -> Delivered {
        let (first, last) = match (records.first(), records.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Delivered::All,
        };
        match self {
            Target::File { path } => {
                let lines = Bytes::from(json_lines(records));
                let path = path.clone();
                // Not abandoned at a stop: a batch written but not recorded would be
                // written again at the next start.
                let write = move || {
                    let lines = lines.clone();
                    let path = path.clone();
                    async move {
                        tokio::task::spawn_blocking(move || append_to_file(&path, &lines))
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()))
                    }
                };
                retry_blocking(ctx, first, last, stop, write).await
            }
            Target::Stdout => {
                let lines = Bytes::from(json_lines(records));
                let write = move || {
                    let lines = lines.clone();
                    async move {
                        tokio::task::spawn_blocking(move || {
                            let mut out = std::io::stdout().lock();
                            out.write_all(&lines).and_then(|()| out.flush())
                        })
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                    }
                };
                retry_blocking(ctx, first, last, stop, write).await
            }
            Target::Webhook { webhook, .. } => {
                let body = Bytes::from(json_lines(records));
                if post_until_delivered(
                    ctx,
                    webhook,
                    body,
                    "application/x-ndjson",
                    (first, last),
                    stop,
                )
                .await
                {
                    Delivered::All
                } else {
                    Delivered::Stopped { upto: None }
                }
            }
            Target::Alert { pattern, webhook } => {
                let mut delivered: Option<u64> = None;
                for record in records {
                    let event: Value = match serde_json::from_slice(&record.event) {
                        Ok(event) => event,
                        Err(_) => {
                            tracing::warn!(audit_sink = %ctx.label, seq = record.seq, "audit event is not JSON; the alert rule skips it");
                            continue;
                        }
                    };
                    if !pattern.matches(&event) {
                        continue;
                    }
                    let body = Bytes::from(record.event.clone());
                    let seqs = (record.seq, record.seq);
                    if !post_until_delivered(ctx, webhook, body, "application/json", seqs, stop)
                        .await
                    {
                        return Delivered::Stopped { upto: delivered };
                    }
                    delivered = Some(record.seq);
                    // An alert is not sent twice because a later one in the batch is slow.
                    store_cursor(ctx.dir, ctx.cursor_name, ctx.label, record.seq).await;
                }
                Delivered::All
            }
        }
    }
}

/// Runs a blocking delivery (file, stdout) until it succeeds; a stop is noticed between
/// attempts only.
async fn retry_blocking<F, Fut>(
    ctx: &Ctx<'_>,
    first: u64,
    last: u64,
    stop: &mut watch::Receiver<bool>,
    attempt: F,
) -> Delivered
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut delay = ctx.retry.initial;
    loop {
        match attempt().await {
            Ok(()) => return Delivered::All,
            Err(error) => {
                tracing::warn!(
                    audit_sink = %ctx.label,
                    first_seq = first,
                    last_seq = last,
                    %error,
                    retry_in = ?delay,
                    "audit sink cannot write; retrying"
                );
            }
        }
        if !pause(delay, stop).await {
            return Delivered::Stopped { upto: None };
        }
        delay = (delay * 2).min(ctx.retry.max);
    }
}

/// POSTs `body` until the webhook answers 2xx; false when stopped first (the request in
/// flight, if any, is abandoned).
async fn post_until_delivered(
    ctx: &Ctx<'_>,
    webhook: &WebhookTarget,
    body: Bytes,
    content_type: &str,
    (first, last): (u64, u64),
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut delay = ctx.retry.initial;
    let mut failures = 0u32;
    loop {
        let attempt = coffer_rotation::invoke::post(
            &webhook.url,
            body.clone(),
            content_type,
            webhook.signing_secret.as_ref(),
            webhook.ca_bundle.as_deref(),
            webhook.timeout,
        );
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = stopped(stop) => return false,
        };
        match outcome {
            Ok(response) if response.is_success() => {
                if failures > 0 {
                    tracing::info!(
                        audit_sink = %ctx.label,
                        url = %webhook.shown_url(),
                        failures,
                        "audit webhook accepts events again"
                    );
                }
                return true;
            }
            // The body is not logged: a receiver may echo the events.
            Ok(response) => tracing::warn!(
                audit_sink = %ctx.label,
                url = %webhook.shown_url(),
                status = response.status,
                first_seq = first,
                last_seq = last,
                retry_in = ?delay,
                "audit webhook did not accept the events (only a 2xx answer does); retrying"
            ),
            Err(error) => tracing::warn!(
                audit_sink = %ctx.label,
                url = %webhook.shown_url(),
                %error,
                first_seq = first,
                last_seq = last,
                retry_in = ?delay,
                "cannot deliver audit events to the webhook; retrying"
            ),
        }
        failures = failures.saturating_add(1);
        if !pause(delay, stop).await {
            return false;
        }
        delay = (delay * 2).min(ctx.retry.max);
    }
}

/// The events, one JSON object per line.
fn json_lines(records: &[AuditRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.iter().map(|r| r.event.len() + 1).sum());
    for record in records {
        out.extend_from_slice(&record.event);
        out.push(b'\n');
    }
    out
}

/// Appends `lines` to the file at `path` and `fdatasync`s it; on failure, cuts the file
/// back so that the retry does not leave part of the batch twice.
fn append_to_file(path: &Path, lines: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let existed = path.exists();
    let mut file = options.open(path)?;
    let start = file.metadata()?.len();
    if let Err(e) = file.write_all(lines).and_then(|()| file.sync_data()) {
        let _ = file.set_len(start);
        return Err(e);
    }
    if !existed && let Some(parent) = path.parent() {
        // The new file's name must survive a power loss too.
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
