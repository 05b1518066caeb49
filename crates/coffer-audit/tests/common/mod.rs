//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use coffer_audit::{AuditConfig, AuditKey, AuditLog, Durability};

/// A CloudTrail-shaped event of about `pad + 120` bytes.
pub fn event(n: u64, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"eventVersion":"1.08","eventName":"GetSecretValue","requestID":"req-{n}","pad":"{}"}}"#,
        "x".repeat(pad)
    )
    .into_bytes()
}

/// Small segments and frequent digests, no timer-driven digests: the layout of the files
/// depends only on the appends.
pub fn small_config() -> AuditConfig {
    AuditConfig {
        segment_max_bytes: 4096,
        digest_every_records: 10,
        digest_interval: Duration::from_secs(3600),
        ..AuditConfig::default()
    }
}

pub fn copy_key(key: &AuditKey) -> AuditKey {
    AuditKey::from_pkcs8(key.pkcs8()).unwrap()
}

/// Appends `count` events one after another (each its own batch) and closes the log.
pub async fn write_log(dir: &Path, key: &AuditKey, config: AuditConfig, count: u64) {
    let log = AuditLog::open(dir, copy_key(key), config).unwrap();
    for n in 1..=count {
        let durability = if n % 7 == 0 {
            Durability::Synced
        } else {
            Durability::Written
        };
        assert_eq!(log.append(event(n, 40), durability).await.unwrap(), n);
    }
    log.close().await.unwrap();
}

/// Segment files in seq order.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seg-") && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    out
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The lines of a file, without their newlines (the file must end with one).
pub fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

pub fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(path, bytes).unwrap();
}

pub fn is_digest(line: &[u8]) -> bool {
    line.starts_with(b"{\"digest\":")
}

/// The seq of a record line.
pub fn seq_of(line: &[u8]) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("seq")?.as_u64()
}

/// (segment path, 0-based line index) of the record with `seq`.
pub fn locate(dir: &Path, seq: u64) -> (PathBuf, usize) {
    for path in segments(dir) {
        for (i, line) in read_lines(&path).iter().enumerate() {
            if seq_of(line) == Some(seq) {
                return (path, i);
            }
        }
    }
    panic!("seq {seq} not found");
}

pub fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Copies every file of `from` (not subdirectories) into a new temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.path().join(entry.file_name())).unwrap();
        }
    }
    to
}
