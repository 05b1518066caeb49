//! Crash consistency: every write the server acknowledged survives `kill -9`.
//!
//! `coffer init` makes a data directory; a server on it takes concurrent `CreateSecret` and
//! `PutSecretValue` calls from several writers while we record every acknowledged
//! `(secret, VersionId, value)`. Mid-load the server gets SIGKILL (`Child::kill`), so no shutdown
//! code runs and the SQLite WAL is left hot. Then, for each round:
//! - a copy of the store passes `PRAGMA integrity_check` (a copy, so the restarted server itself
//!   is what recovers the WAL);
//! - a new server on the same directory returns every acknowledged version by its `VersionId`
//!   with exactly the acknowledged value.
//!
//! - every acknowledged call (writes, and reads made alongside them) has its audit event
//!   (by request id) in the audit log, and at the end `coffer audit verify` finds the chain
//!   and its signed digests intact.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffer_e2e::sm::Client;
use coffer_e2e::sm::config::retry::RetryConfig;
use coffer_e2e::sm::error::{ProvideErrorMetadata, SdkError};
use coffer_e2e::sm::operation::RequestId as _;
use coffer_e2e::sm::primitives::Blob;
use coffer_e2e::{Server, random_hex, sqlite_files_under};

/// Concurrent writers; two share each secret so version-stage moves contend.
const WRITERS: usize = 8;
const SECRETS_IN_FLIGHT: usize = 4;
/// Writers move on to a fresh secret after this many puts, to stay far below any per-secret
/// version quota (AWS removes unlabelled versions only beyond 100, and never ones under 24 h).
const PUTS_PER_SECRET: usize = 40;
const KILLS: usize = 3;
const LOAD_BEFORE_KILL: Duration = Duration::from_millis(1500);

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Clone, Debug)]
struct Ack {
    secret: String,
    version_id: String,
    value: Value,
    /// The request ids of this write and of the read that followed it, if it was answered.
    request_ids: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let init = coffer_e2e::init_data_dir(dir.path()).expect("coffer init");
    let mut acked: Vec<Ack> = Vec::new();

    for round in 0..KILLS {
        let server = Server::data_dir(dir.path(), &init, &[]).expect("start coffer server");
        verify_all(&server, &acked, &format!("after kill {round}")).await;

        let client = Client::from_conf(
            server
                .config_builder()
                .retry_config(RetryConfig::disabled())
                .build(),
        );
        let killed = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(client.clone(), round, w, Arc::clone(&killed))))
            .collect();
        tokio::time::sleep(LOAD_BEFORE_KILL).await;
        killed.store(true, Ordering::SeqCst);
        server.kill().expect("SIGKILL coffer");

        let mut new = 0;
        for w in writers {
            let (acks, unexpected) = w.await.unwrap();
            if let Some(e) = unexpected {
                panic!("a write failed before the kill: {e}");
            }
            new += acks.len();
            acked.extend(acks);
        }
        eprintln!("round {round}: {new} writes acknowledged before SIGKILL");
        assert!(new > 0, "no write was acknowledged in {LOAD_BEFORE_KILL:?}");
        check_integrity_of_copy(dir.path());
        check_audit_events(dir.path(), &acked, &format!("after kill {round}"));
    }

    let server = Server::data_dir(dir.path(), &init, &[]).expect("start coffer server");
    verify_all(&server, &acked, "after the last kill").await;
    server.stop().expect("stop coffer");
    check_integrity_of_copy(dir.path());
    check_audit_events(dir.path(), &acked, "after the last stop");
    let verify = std::process::Command::new(coffer_e2e::coffer_bin().unwrap())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run coffer audit verify");
    assert!(
        verify.status.success(),
        "coffer audit verify failed after {KILLS} kills:\n{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}

/// Every acknowledged call's request id is the `requestID` of an event in the audit log.
fn check_audit_events(data_dir: &Path, acked: &[Ack], when: &str) {
    let mut recorded = std::collections::HashSet::new();
    for file in coffer_e2e::files_under(&data_dir.join("audit")).unwrap() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("seg-") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            // A torn last line of a killed batch was never acknowledged.
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(id) = record["event"]["requestID"].as_str() {
                recorded.insert(id.to_owned());
            }
        }
    }
    let missing: Vec<&String> = acked
        .iter()
        .flat_map(|a| &a.request_ids)
        .filter(|id| !recorded.contains(*id))
        .collect();
    let total: usize = acked.iter().map(|a| a.request_ids.len()).sum();
    assert!(
        missing.is_empty(),
        "{when}: {} of {total} acknowledged calls have no audit event; first: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    eprintln!("{when}: all {total} acknowledged calls have their audit event");
}

/// Writes until an error; an error before the kill is reported as unexpected.
async fn writer(
    client: Client,
    round: usize,
    id: usize,
    killed: Arc<AtomicBool>,
) -> (Vec<Ack>, Option<String>) {
    let slot = id % SECRETS_IN_FLIGHT;
    let mut acks = Vec::new();
    let fail = |e: String| {
        if killed.load(Ordering::SeqCst) {
            None
        } else {
            Some(e)
        }
    };
    for seq in 0.. {
        let generation = seq / PUTS_PER_SECRET;
        let secret = format!("crash/r{round}/s{slot}/g{generation}");
        if seq % PUTS_PER_SECRET == 0 {
            let value = format!("create r{round} w{id} n{seq} {}", random_hex(16));
            let out = client
                .create_secret()
                .name(&secret)
                .secret_string(&value)
                .send()
                .await;
            match out {
                Ok(out) => acks.push(Ack {
                    secret: secret.clone(),
                    version_id: out.version_id().unwrap().to_owned(),
                    value: Value::Text(value),
                    request_ids: vec![out.request_id().unwrap().to_owned()],
                }),
                // The other writer on this slot created it first.
                Err(SdkError::ServiceError(e))
                    if e.err().code() == Some("ResourceExistsException") => {}
                Err(e) => return (acks, fail(format!("CreateSecret {secret}: {e:?}"))),
            }
        }
        let value = if seq % 5 == 4 {
            let mut bytes = vec![0u8, 0xff];
            bytes.extend_from_slice(format!("r{round} w{id} n{seq} {}", random_hex(24)).as_bytes());
            Value::Bytes(bytes)
        } else {
            Value::Text(format!("put r{round} w{id} n{seq} {}", random_hex(24)))
        };
        let put = client.put_secret_value().secret_id(&secret);
        let put = match &value {
            Value::Text(s) => put.secret_string(s),
            Value::Bytes(b) => put.secret_binary(Blob::new(b.clone())),
        };
        let mut ack = match put.send().await {
            Ok(out) => Ack {
                secret,
                version_id: out.version_id().unwrap().to_owned(),
                value,
                request_ids: vec![out.request_id().unwrap().to_owned()],
            },
            Err(e) => return (acks, fail(format!("PutSecretValue {secret}: {e:?}"))),
        };
        // A read alongside: reads are audited too, acknowledged after the event's write(2).
        let read = client
            .get_secret_value()
            .secret_id(&ack.secret)
            .version_id(&ack.version_id)
            .send()
            .await;
        match read {
            Ok(out) => ack.request_ids.push(out.request_id().unwrap().to_owned()),
            Err(e) => {
                let unexpected = fail(format!("GetSecretValue {}: {e:?}", ack.secret));
                acks.push(ack);
                return (acks, unexpected);
            }
        }
        acks.push(ack);
    }
    (acks, None)
}

/// Every acknowledged version must be readable by its VersionId with its exact value.
async fn verify_all(server: &Server, acked: &[Ack], when: &str) {
    let client = server.client();
    let chunks: Vec<Vec<Ack>> = acked
        .chunks(acked.len().div_ceil(8).max(1))
        .map(<[Ack]>::to_vec)
        .collect();
    let checkers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for ack in chunk {
                    let got = client
                        .get_secret_value()
                        .secret_id(&ack.secret)
                        .version_id(&ack.version_id)
                        .send()
                        .await;
                    let got = match got {
                        Ok(out) => match (out.secret_string(), out.secret_binary()) {
                            (Some(s), None) => Value::Text(s.to_owned()),
                            (None, Some(b)) => Value::Bytes(b.as_ref().to_vec()),
                            other => {
                                failures.push(format!("{ack:?}: malformed value {other:?}"));
                                continue;
                            }
                        },
                        Err(e) => {
                            failures.push(format!("{ack:?}: {e:?}"));
                            continue;
                        }
                    };
                    if got != ack.value {
                        failures.push(format!("{ack:?}: read back {got:?}"));
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = Vec::new();
    for c in checkers {
        failures.extend(c.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{when}: {} of {} acknowledged writes lost or changed; first ones:\n{}",
        failures.len(),
        acked.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    eprintln!("{when}: all {} acknowledged writes read back", acked.len());
}

/// `PRAGMA integrity_check` (and `foreign_key_check`) on a copy of every SQLite database in the
/// data directory, with its `-wal`/`-journal` files, leaving the original for the server.
fn check_integrity_of_copy(data_dir: &Path) {
    let dbs = sqlite_files_under(data_dir).unwrap();
    assert!(
        !dbs.is_empty(),
        "no SQLite database under {}",
        data_dir.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    for db in dbs {
        let name = db.file_name().unwrap().to_string_lossy().into_owned();
        let copy = scratch.path().join(&name);
        std::fs::copy(&db, &copy).unwrap();
        for suffix in ["-wal", "-journal"] {
            let side = PathBuf::from(format!("{}{suffix}", db.display()));
            if side.exists() {
                std::fs::copy(&side, format!("{}{suffix}", copy.display())).unwrap();
            }
        }
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let rows: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["ok"], "integrity_check of {}", db.display());
        let violations = conn
            .prepare("PRAGMA foreign_key_check")
            .unwrap()
            .query_map([], |_| Ok(()))
            .unwrap()
            .count();
        assert_eq!(violations, 0, "foreign_key_check of {}", db.display());
        eprintln!("{name}: integrity_check ok");
    }
}
