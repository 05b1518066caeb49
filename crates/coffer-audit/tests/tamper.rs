//! Tampering with a closed log: each change is detected with the right kind at the right place.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use coffer_audit::{AuditKey, BreakKind, Position, Report, verify};
use common::{
    copy_dir, file_name, is_digest, locate, read_lines, segments, seq_of, small_config,
    write_lines, write_log,
};

const RECORDS: u64 = 60;

/// A closed log of 60 records over several segments, digests every 10 records and at each
/// rotation, and the key that signed it.
async fn base_log() -> (tempfile::TempDir, AuditKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), RECORDS).await;
    (dir, key)
}

fn check(dir: &Path, key: &AuditKey) -> Report {
    verify(dir, &key.public_key()).unwrap()
}

fn assert_break(report: &Report, kind: BreakKind, file: &str, line: u64, seq: Option<u64>) {
    let problem = report
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("expected {kind}, the log verified: {report:?}"));
    assert_eq!(problem.kind, kind, "{problem}");
    assert_eq!(
        problem.position,
        Position {
            file: file.to_owned(),
            line,
            seq
        },
        "{problem}"
    );
}

/// A seq at least `from` whose neighbours in its segment are records (not digests or ends).
fn interior_seq(dir: &Path, from: u64) -> u64 {
    (from..RECORDS)
        .find(|&seq| {
            let (path, i) = locate(dir, seq);
            let lines = read_lines(&path);
            i > 0 && i + 1 < lines.len() && !is_digest(&lines[i - 1]) && !is_digest(&lines[i + 1])
        })
        .unwrap()
}

/// The record line `{"seq":…,"prev":…,"hash":…,"event":…}` with a correct hash.
fn record_line(seq: u64, prev: &[u8; 32], event: &[u8]) -> (Vec<u8>, [u8; 32]) {
    let mut m = b"coffer-audit-record-v1\0".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(prev);
    m.extend_from_slice(event);
    let hash = coffer_crypto::sha256(&m);
    let mut line = format!(
        r#"{{"seq":{seq},"prev":"{}","hash":"{}","event":"#,
        coffer_crypto::hex(prev),
        coffer_crypto::hex(&hash)
    )
    .into_bytes();
    line.extend_from_slice(event);
    line.push(b'}');
    (line, hash)
}

fn hash_of(line: &[u8]) -> [u8; 32] {
    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
    let bytes = common::hex_decode(v["hash"].as_str().unwrap());
    bytes.try_into().unwrap()
}

fn event_of(line: &[u8]) -> Vec<u8> {
    let marker = b",\"event\":";
    let at = line
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    line[at + marker.len()..line.len() - 1].to_vec()
}

#[tokio::test]
async fn an_untouched_log_verifies() {
    let (dir, key) = base_log().await;
    let report = check(dir.path(), &key);
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, RECORDS);
    assert_eq!(
        (report.first_seq, report.last_seq),
        (Some(1), Some(RECORDS))
    );
    assert_eq!(report.sealed_through, Some(RECORDS));
    assert_eq!(report.head_seq, Some(RECORDS));
    assert_eq!(report.unsealed_records(), 0);
    assert!(report.segments >= 3, "{report:?}");
    assert!(!report.live);
    // Another key does not verify it.
    let other = AuditKey::generate().unwrap();
    assert!(!check(dir.path(), &other).is_intact());
}

#[tokio::test]
async fn a_changed_byte_of_an_event_is_reported_where_it_is() {
    let (dir, key) = base_log().await;
    let (path, i) = locate(dir.path(), 25);
    let mut lines = read_lines(&path);
    let at = lines[i].iter().rposition(|b| *b == b'x').unwrap();
    lines[i][at] = b'y';
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Changed,
        &file_name(&path),
        i as u64 + 1,
        Some(25),
    );
}

#[tokio::test]
async fn a_deleted_record_is_a_gap() {
    let (dir, key) = base_log().await;
    let seq = interior_seq(dir.path(), 22);
    let (path, i) = locate(dir.path(), seq);
    let mut lines = read_lines(&path);
    lines.remove(i);
    write_lines(&path, &lines);
    let report = check(dir.path(), &key);
    assert_break(
        &report,
        BreakKind::Deleted,
        &file_name(&path),
        i as u64 + 1,
        Some(seq + 1),
    );
    assert!(
        report
            .problem
            .unwrap()
            .detail
            .contains(&format!("seq {seq} is missing"))
    );
}

#[tokio::test]
async fn the_last_record_before_a_digest_deleted_is_reported_at_the_digest() {
    let (dir, key) = base_log().await;
    let (path, i) = locate(dir.path(), 10);
    let mut lines = read_lines(&path);
    assert!(is_digest(&lines[i + 1]));
    lines.remove(i);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Deleted,
        &file_name(&path),
        i as u64 + 1,
        Some(10),
    );
}

#[tokio::test]
async fn inserted_records_are_found() {
    let (dir, key) = base_log().await;
    let seq = interior_seq(dir.path(), 22);
    let (path, i) = locate(dir.path(), seq);
    let original = read_lines(&path);

    // A copy of an old record.
    let (old_path, old_i) = locate(dir.path(), 5);
    let old_line = read_lines(&old_path)[old_i].clone();
    let mut lines = original.clone();
    lines.insert(i + 1, old_line);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Inserted,
        &file_name(&path),
        i as u64 + 2,
        Some(5),
    );

    // A copy of the record just before.
    let mut lines = original.clone();
    lines.insert(i + 1, original[i].clone());
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Inserted,
        &file_name(&path),
        i as u64 + 2,
        Some(seq),
    );

    // A forged record, correctly chained to its predecessor and hashed: the genuine record of
    // its seq follows it, and the chain continues from the genuine one.
    let (forged, _) = record_line(
        seq + 1,
        &hash_of(&original[i]),
        br#"{"eventName":"Forged"}"#,
    );
    let mut lines = original.clone();
    lines.insert(i + 1, forged);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Inserted,
        &file_name(&path),
        i as u64 + 2,
        Some(seq + 1),
    );

    // A forged record with an unused seq and a made-up predecessor.
    let (forged, _) = record_line(9_999, &[3u8; 32], br#"{"eventName":"Forged"}"#);
    let mut lines = original;
    lines.insert(i + 1, forged);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Inserted,
        &file_name(&path),
        i as u64 + 2,
        Some(9_999),
    );
}

#[tokio::test]
async fn swapped_or_moved_records_are_reordered() {
    let (dir, key) = base_log().await;
    let seq = interior_seq(dir.path(), 22);
    let (path, i) = locate(dir.path(), seq);
    let original = read_lines(&path);
    assert_eq!(seq_of(&original[i + 1]), Some(seq + 1));

    let mut lines = original.clone();
    lines.swap(i, i + 1);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Reordered,
        &file_name(&path),
        i as u64 + 1,
        Some(seq + 1),
    );

    // The record moved to the end of its segment.
    let mut lines = original;
    let moved = lines.remove(i);
    lines.push(moved);
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Reordered,
        &file_name(&path),
        i as u64 + 1,
        Some(seq + 1),
    );
}

#[tokio::test]
async fn a_tail_cut_by_whole_records_is_found_through_the_head() {
    let (dir, key) = base_log().await;
    let segs = segments(dir.path());
    let last = segs.last().unwrap();
    let mut lines = read_lines(last);
    // The final digest and the two records before it.
    assert!(is_digest(lines.last().unwrap()));
    lines.truncate(lines.len() - 3);
    write_lines(last, &lines);
    let report = check(dir.path(), &key);
    assert_break(
        &report,
        BreakKind::TruncatedTail,
        &file_name(last),
        lines.len() as u64 + 1,
        Some(RECORDS - 1),
    );

    // Whole trailing segments removed.
    let (dir, key) = base_log().await;
    let segs = segments(dir.path());
    std::fs::remove_file(segs.last().unwrap()).unwrap();
    let report = check(dir.path(), &key);
    assert_eq!(report.problem.unwrap().kind, BreakKind::TruncatedTail);

    // Everything removed.
    for seg in &segs[..segs.len() - 1] {
        std::fs::remove_file(seg).unwrap();
    }
    let report = check(dir.path(), &key);
    assert_eq!(report.problem.unwrap().kind, BreakKind::TruncatedTail);
}

#[tokio::test]
async fn a_tail_cut_mid_line_is_found() {
    let (dir, key) = base_log().await;
    let last = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let lines = read_lines(&last).len() as u64;
    std::fs::write(&last, &bytes[..bytes.len() - 40]).unwrap();
    assert_break(
        &check(dir.path(), &key),
        BreakKind::TruncatedTail,
        &file_name(&last),
        lines,
        None,
    );
}

#[tokio::test]
async fn a_deleted_middle_segment_is_a_gap() {
    let (dir, key) = base_log().await;
    let segs = segments(dir.path());
    assert!(segs.len() >= 3);
    let first_of_third = seq_of(&read_lines(&segs[2])[0]).unwrap();
    std::fs::remove_file(&segs[1]).unwrap();
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Deleted,
        &file_name(&segs[2]),
        1,
        Some(first_of_third),
    );

    // The first segment, in a log never pruned: it must start at seq 1.
    let (dir, key) = base_log().await;
    let segs = segments(dir.path());
    let first_of_second = seq_of(&read_lines(&segs[1])[0]).unwrap();
    std::fs::remove_file(&segs[0]).unwrap();
    assert_break(
        &check(dir.path(), &key),
        BreakKind::Deleted,
        &file_name(&segs[1]),
        1,
        Some(first_of_second),
    );
}

#[tokio::test]
async fn forged_digests_are_bad_digests() {
    let (dir, key) = base_log().await;
    let (path, i) = locate(dir.path(), 10);
    let original = read_lines(&path);
    let digest_line = original[i + 1].clone();
    assert!(is_digest(&digest_line));
    let text = String::from_utf8(digest_line).unwrap();

    // A field changed under the old signature.
    let mut lines = original.clone();
    lines[i + 1] = text
        .replace("\"last_seq\":10", "\"last_seq\":9")
        .into_bytes();
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::BadDigest,
        &file_name(&path),
        i as u64 + 2,
        Some(9),
    );

    // A correct digest, signed by another key.
    let other = AuditKey::generate().unwrap();
    let forged = {
        let d = coffer_audit::Digest::from_json(text.as_bytes()).unwrap();
        let mut copy = d.clone();
        copy.key_id = other.public_key().key_id();
        copy.signature = [0u8; 64];
        copy.to_json()
    };
    let mut lines = original.clone();
    lines[i + 1] = forged.into_bytes();
    write_lines(&path, &lines);
    assert_break(
        &check(dir.path(), &key),
        BreakKind::BadDigest,
        &file_name(&path),
        i as u64 + 2,
        Some(10),
    );

    // Removed: the next digest does not continue where the previous one ended.
    let mut lines = original;
    lines.remove(i + 1);
    write_lines(&path, &lines);
    let report = check(dir.path(), &key);
    let problem = report.problem.unwrap();
    assert_eq!(problem.kind, BreakKind::BadDigest, "{problem}");
    assert!(problem.detail.contains("1..10"), "{problem}");
}

#[tokio::test]
async fn a_rehashed_chain_is_caught_by_the_digest_that_covers_the_edit() {
    let (dir, key) = base_log().await;
    let (edited_path, at) = locate(dir.path(), 25);
    let covering = read_lines(&edited_path)
        .iter()
        .enumerate()
        .skip(at)
        .find(|(_, l)| is_digest(l))
        .map(|(i, _)| i as u64 + 1)
        .unwrap();
    // Edit seq 25 and recompute every hash and link from there on, as someone without the
    // signing key could.
    let mut prev = [0u8; 32];
    for path in segments(dir.path()) {
        let mut lines = read_lines(&path);
        for line in &mut lines {
            let Some(seq) = seq_of(line) else { continue };
            let mut event = event_of(line);
            if seq == 25 {
                let x = event.iter().rposition(|b| *b == b'x').unwrap();
                event[x] = b'y';
            }
            let (new_line, hash) = record_line(seq, &prev, &event);
            *line = new_line;
            prev = hash;
        }
        write_lines(&path, &lines);
    }
    let report = check(dir.path(), &key);
    let problem = report.problem.clone().unwrap();
    assert_break(
        &report,
        BreakKind::Changed,
        &file_name(&edited_path),
        covering,
        problem.position.seq,
    );
    assert!(problem.detail.contains("re-hashed"), "{problem}");
}

#[tokio::test]
async fn a_missing_or_foreign_head_is_reported() {
    let (dir, key) = base_log().await;
    let copy = copy_dir(dir.path());
    std::fs::remove_file(dir.path().join("head.json")).unwrap();
    let report = check(dir.path(), &key);
    assert_eq!(report.problem.unwrap().kind, BreakKind::TruncatedTail);

    let head = copy.path().join("head.json");
    let text = std::fs::read_to_string(&head).unwrap();
    std::fs::write(&head, text.replace("\"time_ms\":", "\"time_ms\":1")).unwrap();
    let report = check(copy.path(), &key);
    assert_break(&report, BreakKind::BadDigest, "head.json", 0, None);
}

#[tokio::test]
async fn every_single_byte_flip_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let config = coffer_audit::AuditConfig {
        digest_every_records: 4,
        ..small_config()
    };
    write_log(dir.path(), &key, config, 9).await;
    let mut targets = segments(dir.path());
    targets.push(dir.path().join("head.json"));
    let mut flips = 0;
    for path in targets {
        let original = std::fs::read(&path).unwrap();
        for at in 0..original.len() {
            let mut bytes = original.clone();
            bytes[at] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            let report = check(dir.path(), &key);
            assert!(
                !report.is_intact(),
                "a flip at byte {at} of {} went unnoticed",
                file_name(&path)
            );
            flips += 1;
        }
        std::fs::write(&path, &original).unwrap();
    }
    assert!(check(dir.path(), &key).is_intact());
    assert!(flips > 3000, "{flips}");
}

#[tokio::test]
async fn every_truncation_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 8).await;
    let last = segments(dir.path()).pop().unwrap();
    let original = std::fs::read(&last).unwrap();
    for len in 0..original.len() {
        std::fs::write(&last, &original[..len]).unwrap();
        let report = check(dir.path(), &key);
        let kind = report.problem.map(|p| p.kind);
        assert_eq!(kind, Some(BreakKind::TruncatedTail), "cut at {len}");
    }
}

#[tokio::test]
async fn garbage_is_a_report_not_a_panic() {
    let (dir, key) = base_log().await;
    let last = segments(dir.path()).pop().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let prefixes: [&[u8]; 6] = [
        b"",
        b"{\"seq\":",
        b"{\"seq\":18446744073709551615,\"prev\":\"",
        b"{\"digest\":{\"first_seq\":",
        b"\n\n",
        b"{\"anchor\":",
    ];
    for round in 0..300 {
        let mut bytes = prefixes[round % prefixes.len()].to_vec();
        for _ in 0..(next() % 600) {
            let b = (next() % 256) as u8;
            bytes.push(if next() % 8 == 0 { b'\n' } else { b });
        }
        std::fs::write(&last, &bytes).unwrap();
        std::fs::write(dir.path().join("anchor.json"), &bytes).unwrap();
        let report = check(dir.path(), &key);
        assert!(!report.is_intact());
        std::fs::remove_file(dir.path().join("anchor.json")).unwrap();
        let report = check(dir.path(), &key);
        assert!(!report.is_intact());
        let _ = report.problem.map(|p| p.to_string());
    }
}
