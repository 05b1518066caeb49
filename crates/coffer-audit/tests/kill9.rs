//! `kill -9` of a process that is appending: every seq it acknowledged is in the log after
//! reopening, the chain verifies, and appending continues.
//!
//! The child is this test binary itself, running the ignored test `child_appender` (a no-op
//! unless the parent set `COFFER_AUDIT_CHILD_DIR`); it prints `ACK <seq>` after each append
//! resolves, and the parent kills it with SIGKILL mid-stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffer_audit::{AuditConfig, AuditKey, AuditLog, Durability, read_records, verify};
use common::{copy_key, event, hex_decode};

const DIR_VAR: &str = "COFFER_AUDIT_CHILD_DIR";
const KEY_VAR: &str = "COFFER_AUDIT_CHILD_KEY";

fn config() -> AuditConfig {
    AuditConfig {
        // Small segments so that kills also land around rotations.
        segment_max_bytes: 512 * 1024,
        digest_every_records: 500,
        ..AuditConfig::default()
    }
}

#[test]
#[ignore = "the child process of kill9_keeps_every_acknowledged_event"]
fn child_appender() {
    let (Ok(dir), Ok(key)) = (std::env::var(DIR_VAR), std::env::var(KEY_VAR)) else {
        return;
    };
    let key = AuditKey::from_pkcs8(&hex_decode(&key)).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = AuditLog::open(Path::new(&dir), key, config()).unwrap();
        let mut tasks = Vec::new();
        for task in 0..32u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    let durability = if i % 50 == 0 {
                        Durability::Synced
                    } else {
                        Durability::Written
                    };
                    let seq = log.append(event(task, 2000), durability).await.unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {seq}").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

/// Runs a child against `dir` until it acknowledged at least `acks` appends, kills it with
/// SIGKILL, and returns every seq it acknowledged.
fn run_and_kill(dir: &Path, key: &AuditKey, acks: usize) -> BTreeSet<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_appender", "--ignored", "--nocapture"])
        .env(DIR_VAR, dir)
        .env(KEY_VAR, coffer_crypto::hex(key.pkcs8()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while acked.len() < acks {
        assert!(
            Instant::now() < deadline,
            "the child acknowledged only {}",
            acked.len()
        );
        let Some(line) = lines.next() else {
            panic!("the child exited after {} acknowledgements", acked.len())
        };
        if let Some(seq) = line.unwrap().strip_prefix("ACK ") {
            acked.insert(seq.parse::<u64>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(seq) = line.strip_prefix("ACK ") {
            acked.insert(seq.parse::<u64>().unwrap());
        }
    }
    acked
}

#[tokio::test]
async fn kill9_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let mut all_acked = BTreeSet::new();
    for round in 0..3 {
        let acked = run_and_kill(dir.path(), &key, 3000);
        all_acked.extend(acked);
        // Reopening recovers (cutting a torn line, if the kill left one) and seals.
        let log = AuditLog::open(dir.path(), copy_key(&key), config()).unwrap();
        log.seal().await.unwrap();
        let report = verify(dir.path(), &key.public_key()).unwrap();
        assert!(report.is_intact(), "round {round}: {report:?}");
        let present: BTreeSet<u64> = read_records(dir.path(), 1)
            .unwrap()
            .map(|r| r.unwrap().seq)
            .collect();
        let missing: Vec<_> = all_acked.difference(&present).take(10).collect();
        assert!(
            missing.is_empty(),
            "round {round}: acknowledged but lost: {missing:?}"
        );
        assert_eq!(present.len() as u64, report.last_seq.unwrap());
        log.close().await.unwrap();
    }
}
