#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Sinks and alerts against a real audit log in a temporary directory, and webhook
//! receivers on 127.0.0.1.

use std::sync::Mutex;
use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use coffer_audit::{AuditConfig, AuditKey, Durability};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const SIGNING_SECRET: &str = "sink-secret-canary-2718";

fn open_log(dir: &Path, config: AuditConfig) -> Arc<AuditLog> {
    Arc::new(AuditLog::open(dir, AuditKey::generate().unwrap(), config).unwrap())
}

fn event(n: u64) -> Vec<u8> {
    let name = if n.is_multiple_of(5) {
        "DeleteSecret"
    } else {
        "GetSecretValue"
    };
    json!({
        "eventVersion": "1.11",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": name,
        "eventType": "AwsApiCall",
        "requestParameters": {"secretId": format!("prod/app-{n}")},
        "eventID": format!("event-{n}"),
    })
    .to_string()
    .into_bytes()
}

async fn append(log: &AuditLog, range: std::ops::RangeInclusive<u64>, durability: Durability) {
    for n in range {
        let seq = log.append(event(n), durability).await.unwrap();
        assert_eq!(seq, n);
    }
}

fn settings(value: &Value) -> AuditSettings {
    AuditSettings::parse(&value.to_string(), Path::new("/"), &|name| {
        (name == "SINK_SECRET").then(|| SIGNING_SECRET.to_owned())
    })
    .unwrap()
}

/// Polls `check` for up to 30 s.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = StdInstant::now() + Duration::from_secs(30);
    while !check() {
        assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn file_lines(path: &Path) -> Vec<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn events(range: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    range.map(event).collect()
}

fn stored_cursor(dir: &Path, name: &str) -> Option<u64> {
    SinkCursor::load(dir, name).unwrap().map(|c| c.seq())
}

/// A port nothing listens on (for now).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
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

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut seen = Seen {
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = seen.header("content-length")?.parse().unwrap();
    while seen.body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        seen.body.extend_from_slice(&chunk[..n]);
    }
    Some(seen)
}

/// Serves `listener`: the first `refuse` requests get a 503, the others a 200 and are
/// recorded.
fn receiver(listener: TcpListener, refuse: usize) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut count = 0;
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let Some(request) = read_request(&mut stream).await else {
                continue;
            };
            count += 1;
            let status = if count <= refuse {
                "503 Service Unavailable"
            } else {
                record.lock().unwrap().push(request);
                "200 OK"
            };
            let answer =
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    });
    seen
}

fn received_lines(seen: &Mutex<Vec<Seen>>) -> Vec<Vec<u8>> {
    seen.lock()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.body
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------

#[test]
fn the_documented_example_parses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("siem.key"), "whsec-canary-1\n").unwrap();
    std::fs::write(
        dir.path().join("ca.pem"),
        "not checked until the first request",
    )
    .unwrap();
    let file = dir.path().join("audit.json");
    std::fs::write(
        &file,
        r#"{"retention_days": 365,
            "sinks": [{"name": "local-copy", "type": "file", "path": "/var/log/coffer/audit.jsonl"},
                      {"name": "console", "type": "stdout"},
                      {"name": "siem", "type": "webhook", "url": "https://siem.example/ingest",
                       "signing_secret_file": "siem.key", "ca_bundle": "ca.pem",
                       "batch_size": 100, "timeout_seconds": 10}],
            "alerts": [{"name": "secret-deleted", "pattern": {"eventName": ["DeleteSecret"]},
                        "webhook": {"url": "http://127.0.0.1:9000/alerts", "retry_initial_ms": 50, "retry_max_ms": 500}}]}"#,
    )
    .unwrap();
    let settings = AuditSettings::from_file(&file).unwrap();
    assert_eq!(settings.retention, Some(Duration::from_secs(365 * 86_400)));
    assert_eq!(settings.sinks.len(), 3);
    let SinkKind::File { path } = &settings.sinks[0].kind else {
        panic!("{:?}", settings.sinks[0]);
    };
    assert_eq!(path, Path::new("/var/log/coffer/audit.jsonl"));
    assert_eq!(settings.sinks[0].retry, Backoff::default());
    assert!(matches!(settings.sinks[1].kind, SinkKind::Stdout));
    let SinkKind::Webhook {
        webhook,
        batch_size,
    } = &settings.sinks[2].kind
    else {
        panic!("{:?}", settings.sinks[2]);
    };
    assert_eq!(*batch_size, 100);
    assert_eq!(webhook.timeout, Duration::from_secs(10));
    // Relative to the settings file; the line end is not part of the secret.
    assert_eq!(
        webhook.ca_bundle.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(
        webhook.signing_secret.as_ref().map(SecretBytes::expose),
        Some(&b"whsec-canary-1"[..])
    );
    assert!(!format!("{settings:?}").contains("whsec-canary"));
    let alert = &settings.alerts[0];
    assert_eq!(alert.cursor_name(), "alert-secret-deleted");
    assert_eq!(
        alert.retry,
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500)
        }
    );
    assert!(alert.pattern.matches(&json!({"eventName": "DeleteSecret"})));
    assert!(
        !alert
            .pattern
            .matches(&json!({"eventName": "GetSecretValue"}))
    );
    assert_eq!(alert.webhook.url, "http://127.0.0.1:9000/alerts");

    let empty = AuditSettings::parse("{}", Path::new("/"), &|_| None).unwrap();
    assert!(empty.retention.is_none() && empty.sinks.is_empty() && empty.alerts.is_empty());
}

#[test]
fn bad_settings_name_the_file_and_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let long = "a".repeat(59);
    let cases: Vec<(String, &[&str])> = vec![
        ("[".into(), &["not valid JSON"]),
        ("[]".into(), &["the settings must be a JSON object"]),
        (r#"{"sink": []}"#.into(), &["unknown member \"sink\"", "retention_days, sinks, alerts"]),
        (r#"{"retention_days": 0}"#.into(), &["\"retention_days\"", "from 1"]),
        (r#"{"sinks": {}}"#.into(), &["\"sinks\" must be a list"]),
        (r#"{"sinks": ["x"]}"#.into(), &["sink 1 must be a JSON object"]),
        (
            r#"{"sinks": [{"name": "a", "type": "file"}]}"#.into(),
            &["sink 1 (\"a\"): member \"path\" is missing"],
        ),
        (r#"{"sinks": [{"type": "stdout"}]}"#.into(), &["sink 1: member \"name\" is missing"]),
        (
            r#"{"sinks": [{"name": "a b", "type": "stdout"}]}"#.into(),
            &["member \"name\" must be 1-64 characters"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "syslog"}]}"#.into(),
            &["member \"type\" must be \"file\", \"stdout\" or \"webhook\", not \"syslog\""],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "stdout", "url": "http://h/"}]}"#.into(),
            &["sink 1 (\"a\"): unknown member \"url\" for a stdout sink"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "stdout"}, {"name": "a", "type": "stdout"}]}"#.into(),
            &["sink \"a\" has the same name as sink \"a\""],
        ),
        (
            r#"{"sinks": [{"name": "alert-x", "type": "stdout"}], "alerts": [{"name": "x", "pattern": {"a": [1]}, "webhook": {"url": "http://h/"}}]}"#.into(),
            &["alert \"x\" has the same name as sink \"alert-x\""],
        ),
        (
            format!(r#"{{"alerts": [{{"name": "{long}", "pattern": {{"a": [1]}}, "webhook": {{"url": "http://h/"}}}}]}}"#),
            &["member \"name\" must be 1-58 characters"],
        ),
        (
            r#"{"alerts": [{"name": "x", "pattern": {"eventName": "DeleteSecret"}, "webhook": {"url": "http://h/"}}]}"#.into(),
            &["alert 1 (\"x\"): member \"pattern\" invalid event pattern at eventName"],
        ),
        (
            r#"{"alerts": [{"name": "x", "pattern": {"a": [1]}}]}"#.into(),
            &["alert 1 (\"x\"): member \"webhook\" is missing"],
        ),
        (
            r#"{"alerts": [{"name": "x", "pattern": {"a": [1]}, "webhook": {"url": "http://h/", "batch_size": 5}}]}"#.into(),
            &["alert 1 (\"x\"), member \"webhook\": unknown member \"batch_size\""],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "ftp://h/?token=query-canary"}]}"#.into(),
            &["member \"url\"", "must start with http:// or https://"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://u:pw-canary@h/"}]}"#.into(),
            &["member \"url\"", "user info"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "signing_secret_file": "missing.key"}]}"#.into(),
            &["member \"signing_secret_file\" names", "missing.key, which cannot be read"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "signing_secret_env": "NOT_SET_ANYWHERE"}]}"#.into(),
            &["NOT_SET_ANYWHERE, which is not set or empty"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "signing_secret_env": "A", "signing_secret_file": "b"}]}"#.into(),
            &["not both"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "ca_bundle": "none.pem"}]}"#.into(),
            &["member \"ca_bundle\" names", "none.pem"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "batch_size": 0}]}"#.into(),
            &["member \"batch_size\" must be a whole number from 1 to 10000, not 0"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "webhook", "url": "https://h/", "timeout_seconds": "10"}]}"#.into(),
            &["member \"timeout_seconds\" must be a whole number"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "stdout", "retry_initial_ms": 500, "retry_max_ms": 100}]}"#.into(),
            &["member \"retry_max_ms\" must not be less than retry_initial_ms"],
        ),
        (
            r#"{"sinks": [{"name": "a", "type": "file", "path": "x.jsonl"}, {"name": "b", "type": "file", "path": "x.jsonl"}]}"#.into(),
            &["sinks \"a\" and \"b\" both write to"],
        ),
    ];
    let file = dir.path().join("audit.json");
    for (text, expected) in cases {
        std::fs::write(&file, &text).unwrap();
        let err = AuditSettings::from_file(&file).unwrap_err();
        assert!(
            err.starts_with(&format!("{}: ", file.display())),
            "{text}: {err}"
        );
        for part in expected {
            assert!(err.contains(part), "{text}: {err:?} lacks {part:?}");
        }
        assert!(!err.contains("canary"), "{err}");
    }
    let err = AuditSettings::from_file(&dir.path().join("absent.json")).unwrap_err();
    assert!(
        err.contains("cannot read") && err.contains("absent.json"),
        "{err}"
    );

    // A retry_initial_ms above the default cap raises the cap.
    let s =
        settings(&json!({"sinks": [{"name": "a", "type": "stdout", "retry_initial_ms": 120_000}]}));
    assert_eq!(s.sinks[0].retry.max, Duration::from_secs(120));
}

// ---------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sink_gets_every_event_once_in_order_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let out = dir.path().join("copy.jsonl");
    let log = open_log(&log_dir, AuditConfig::default());
    // Appended before the sink exists: a new sink starts with the retained history.
    append(&log, 1..=30, Durability::Synced).await;
    let settings = settings(&json!({"sinks": [{"name": "copy", "type": "file", "path": out}]}));

    let sinks = start(Arc::clone(&log), &settings);
    append(&log, 31..=45, Durability::Synced).await;
    append(&log, 46..=60, Durability::Written).await;
    eventually("60 lines", || file_lines(&out).len() >= 60).await;
    sinks.stop().await;
    assert_eq!(file_lines(&out), events(1..=60));
    assert_eq!(stored_cursor(&log_dir, "copy"), Some(60));

    // Appended while the sink is stopped, then after it starts again.
    append(&log, 61..=90, Durability::Synced).await;
    let sinks = start(Arc::clone(&log), &settings);
    append(&log, 91..=100, Durability::Synced).await;
    eventually("100 lines", || file_lines(&out).len() >= 100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sinks.stop().await;
    assert_eq!(file_lines(&out), events(1..=100));
    assert_eq!(stored_cursor(&log_dir, "copy"), Some(100));
    log.close().await.unwrap();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_is_down_gets_everything_in_order_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = open_log(&log_dir, AuditConfig::default());
    let port = closed_port().await;
    let settings = settings(&json!({"sinks": [{
        "name": "siem", "type": "webhook", "url": format!("http://127.0.0.1:{port}/ingest?k=v"),
        "signing_secret_env": "SINK_SECRET", "batch_size": 7,
        "retry_initial_ms": 20, "retry_max_ms": 200, "timeout_seconds": 5,
    }]}));
    let sinks = start(Arc::clone(&log), &settings);

    // The sink fails (connection refused) meanwhile; appends do not wait for it.
    let started = StdInstant::now();
    append(&log, 1..=1000, Durability::Written).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "1000 appends took {elapsed:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(stored_cursor(&log_dir, "siem"), None);

    // Up, and refusing its first two batches.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let seen = receiver(listener, 2);
    append(&log, 1001..=1010, Durability::Synced).await;
    eventually("1010 events at the webhook", || {
        received_lines(&seen).len() >= 1010
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sinks.stop().await;

    assert_eq!(received_lines(&seen), events(1..=1010));
    assert_eq!(stored_cursor(&log_dir, "siem"), Some(1010));
    let requests = seen.lock().unwrap().clone();
    for request in &requests {
        assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
        let lines = request.body.iter().filter(|b| **b == b'\n').count();
        assert!((1..=7).contains(&lines), "{lines} events in one request");
        assert!(request.body.ends_with(b"\n"));
        assert!(coffer_rotation::invoke::verify_webhook_signature(
            SIGNING_SECRET.as_bytes(),
            request.header("x-coffer-timestamp").unwrap(),
            &request.body,
            request.header("x-coffer-signature").unwrap(),
            SystemTime::now(),
            Duration::from_secs(300),
        ));
    }
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_rule_posts_only_matching_events_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = open_log(&log_dir, AuditConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let seen = receiver(listener, 1);
    let settings = settings(&json!({"alerts": [{
        "name": "deleted",
        "pattern": {"eventName": ["DeleteSecret"], "requestParameters": {"secretId": [{"wildcard": "prod/*"}]}},
        "webhook": {"url": url, "retry_initial_ms": 20, "retry_max_ms": 100},
    }]}));
    append(&log, 1..=20, Durability::Synced).await;
    let sinks = start(Arc::clone(&log), &settings);
    append(&log, 21..=41, Durability::Synced).await;
    let matching: Vec<Vec<u8>> = (1..=41u64)
        .filter(|n| n.is_multiple_of(5))
        .map(event)
        .collect();
    eventually("the alerts", || {
        seen.lock().unwrap().len() >= matching.len()
    })
    .await;
    // The cursor moves past the events that do not match too.
    eventually("the cursor at 41", || {
        stored_cursor(&log_dir, "alert-deleted") == Some(41)
    })
    .await;
    sinks.stop().await;

    let requests = seen.lock().unwrap().clone();
    let bodies: Vec<Vec<u8>> = requests.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, matching);
    for request in &requests {
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert!(request.header("x-coffer-signature").is_none());
    }
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_behind_retention_reports_the_gap_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let out = dir.path().join("late.jsonl");
    let config = AuditConfig {
        segment_max_bytes: 2_000,
        ..AuditConfig::default()
    };
    let log = open_log(&log_dir, config);
    append(&log, 1..=60, Durability::Synced).await;
    log.seal().await.unwrap();
    SinkCursor::new("late", 2).unwrap().store(&log_dir).unwrap();
    let cutoff = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        + 3_600_000;
    let pruned = log.prune(cutoff).unwrap();
    let first = pruned.first_retained_seq.unwrap();
    assert!(first > 3, "{pruned:?}");

    let settings = settings(&json!({"sinks": [{"name": "late", "type": "file", "path": out}]}));
    let sinks = start(Arc::clone(&log), &settings);
    eventually("the retained events", || {
        stored_cursor(&log_dir, "late") == Some(60)
    })
    .await;
    sinks.stop().await;
    assert_eq!(file_lines(&out), events(first..=60));
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_prompt_while_a_webhook_is_failing() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("audit");
    let log = open_log(&log_dir, AuditConfig::default());
    append(&log, 1..=5, Durability::Synced).await;
    let port = closed_port().await;
    let settings = settings(&json!({
        "sinks": [{"name": "siem", "type": "webhook", "url": format!("http://127.0.0.1:{port}/"),
                   "retry_initial_ms": 60_000}],
        "alerts": [{"name": "all", "pattern": {"eventName": [{"exists": true}]},
                    "webhook": {"url": format!("http://127.0.0.1:{port}/"), "retry_initial_ms": 60_000}}],
    }));
    let sinks = start(Arc::clone(&log), &settings);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = StdInstant::now();
    sinks.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stored_cursor(&log_dir, "siem"), None);
    assert_eq!(stored_cursor(&log_dir, "alert-all"), None);
    log.close().await.unwrap();
}
