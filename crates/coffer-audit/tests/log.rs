//! The writer: group commit, recovery, rotation, digests on a timer, retention, reading.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use coffer_audit::{
    AuditConfig, AuditError, AuditKey, AuditLog, BreakKind, Durability, SinkCursor, read_records,
    verify,
};
use common::{
    copy_key, event, file_name, is_digest, read_lines, segments, small_config, write_lines,
    write_log,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_present_once_and_chained() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let config = AuditConfig {
        segment_max_bytes: 256 * 1024,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(dir.path(), copy_key(&key), config).unwrap();
    let mut tasks = Vec::new();
    for task in 0..64u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..100u64 {
                let n = task * 1000 + i;
                let durability = if i % 10 == 0 {
                    Durability::Synced
                } else {
                    Durability::Written
                };
                acked.push((log.append(event(n, 600), durability).await.unwrap(), n));
            }
            acked
        }));
    }
    let mut by_seq = BTreeMap::new();
    for task in tasks {
        for (seq, n) in task.await.unwrap() {
            assert!(
                by_seq.insert(seq, n).is_none(),
                "seq {seq} acknowledged twice"
            );
        }
    }
    assert_eq!(by_seq.len(), 6400);
    assert_eq!(
        by_seq.keys().copied().collect::<Vec<_>>(),
        (1..=6400).collect::<Vec<_>>()
    );
    assert_eq!(log.written_seq(), 6400);
    log.close().await.unwrap();

    // Every acknowledged seq holds the event that was acknowledged with it.
    let records: Vec<_> = read_records(dir.path(), 1)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 6400);
    for r in &records {
        assert_eq!(r.event, event(by_seq[&r.seq], 600));
    }
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.sealed_through, Some(6400));
    assert!(report.segments > 1, "rotation happened: {report:?}");
    assert!(matches!(
        log.append(event(0, 1), Durability::Written).await,
        Err(AuditError::Closed)
    ));
}

/// Appenders, a task sealing in a loop and the ticker (deadlines every millisecond) all take
/// the writer's lock; an append that finds it taken must still be written promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_seals_and_the_ticker_never_stall() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let config = AuditConfig {
        digest_interval: Duration::from_millis(1),
        sync_interval: Duration::from_millis(1),
        digest_every_records: 7,
        ..AuditConfig::default()
    };
    let log = AuditLog::open(dir.path(), copy_key(&key), config).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sealer = {
        let log = log.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                log.seal().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..400 {
                let append = log.append(event(task * 1000 + n, 10), Durability::Written);
                tokio::time::timeout(Duration::from_secs(1), append)
                    .await
                    .expect("an append stalled")
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sealer.await.unwrap();
    log.close().await.unwrap();
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 3200);
}

#[tokio::test]
async fn a_torn_last_line_is_cut_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 5).await;
    let last = segments(dir.path()).pop().unwrap();
    let before = std::fs::read(&last).unwrap();
    // Half a record, as a batch interrupted by kill -9 leaves it.
    let mut torn = before.clone();
    torn.extend_from_slice(b"{\"seq\":6,\"prev\":\"00112233");
    std::fs::write(&last, &torn).unwrap();
    assert_eq!(
        verify(dir.path(), &key.public_key())
            .unwrap()
            .problem
            .unwrap()
            .kind,
        BreakKind::TruncatedTail
    );

    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    assert_eq!(std::fs::read(&last).unwrap(), before);
    assert_eq!(
        log.append(event(6, 10), Durability::Synced).await.unwrap(),
        6
    );
    log.close().await.unwrap();
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.last_seq, Some(6));
}

#[tokio::test]
async fn unsealed_records_left_by_a_crash_are_sealed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 3).await;
    // Remove the final digest as if the process had died before sealing; put back the head
    // that an earlier process would have left (none: nothing was sealed before).
    let last = segments(dir.path()).pop().unwrap();
    let mut lines = read_lines(&last);
    assert!(is_digest(lines.last().unwrap()));
    lines.pop();
    write_lines(&last, &lines);
    std::fs::remove_file(dir.path().join("head.json")).unwrap();
    assert!(verify(dir.path(), &key.public_key()).unwrap().is_intact());

    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    // The seal happens on the writer thread right after open.
    let sealed = log.seal().await.unwrap();
    assert!(sealed.is_none() || sealed.is_some_and(|d| d.last_seq == 3));
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert_eq!(report.sealed_through, Some(3), "{report:?}");
    assert_eq!(report.head_seq, Some(3));
    log.close().await.unwrap();
}

#[tokio::test]
async fn a_damaged_last_record_stops_open() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 3).await;
    let last = segments(dir.path()).pop().unwrap();
    let mut lines = read_lines(&last);
    lines.push(b"{\"seq\":4,garbage}".to_vec());
    write_lines(&last, &lines);
    let err = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap_err();
    assert!(
        matches!(err, AuditError::Corrupt { line, .. } if line == lines.len() as u64),
        "{err}"
    );
}

#[tokio::test]
async fn a_head_that_contradicts_the_log_is_kept_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 25).await;
    // Cut the tail by whole lines (records and their digests), then reopen and write more.
    let last = segments(dir.path()).pop().unwrap();
    let mut lines = read_lines(&last);
    lines.truncate(lines.len().saturating_sub(4));
    write_lines(&last, &lines);
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    for n in 0..30 {
        log.append(event(n, 10), Durability::Written).await.unwrap();
    }
    log.close().await.unwrap();
    let rejected: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("head.rejected-"))
        .collect();
    assert_eq!(rejected.len(), 1);
    let report = verify(dir.path(), &key.public_key()).unwrap();
    let problem = report.problem.unwrap();
    assert_eq!(problem.position.file, rejected[0], "{problem}");
    assert_eq!(problem.kind, BreakKind::BadDigest, "{problem}");
}

#[tokio::test]
async fn one_writer_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    assert!(matches!(
        AuditLog::open(dir.path(), copy_key(&key), small_config()),
        Err(AuditError::Locked(_))
    ));
    log.append(event(1, 10), Durability::Written).await.unwrap();
    // A verifier sees that the log is live.
    assert!(verify(dir.path(), &key.public_key()).unwrap().live);
    log.close().await.unwrap();
    // The lock goes with the writer.
    let again = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    again.close().await.unwrap();
}

#[tokio::test]
async fn an_append_dropped_while_gathering_does_not_stall_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    // The first poll queues the event and yields to gather a batch; then the future is dropped.
    let mut append = Box::pin(log.append(event(1, 1), Durability::Written));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(append.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the append was gathering");
    drop(append);
    // The dropped append's event was written when it was dropped (never acknowledged).
    assert_eq!(
        log.append(event(2, 1), Durability::Written).await.unwrap(),
        2
    );
    log.close().await.unwrap();
    assert!(verify(dir.path(), &key.public_key()).unwrap().is_intact());
}

#[tokio::test]
async fn invalid_events_are_refused_without_using_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    for bad in [&b"{\"a\":\n1}"[..], b"not json", b"[]"] {
        assert!(matches!(
            log.append(bad.to_vec(), Durability::Written).await,
            Err(AuditError::InvalidEvent(_))
        ));
    }
    assert_eq!(
        log.append(event(1, 1), Durability::Written).await.unwrap(),
        1
    );
    log.close().await.unwrap();
}

#[tokio::test]
async fn digests_are_written_on_a_timer() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let config = AuditConfig {
        digest_interval: Duration::from_millis(50),
        sync_interval: Duration::from_millis(10),
        ..AuditConfig::default()
    };
    let log = AuditLog::open(dir.path(), copy_key(&key), config).unwrap();
    for n in 0..5 {
        log.append(event(n, 10), Durability::Written).await.unwrap();
    }
    let mut synced = log.subscribe_synced();
    tokio::time::timeout(Duration::from_secs(5), synced.wait_for(|s| *s >= 5))
        .await
        .unwrap()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let report = verify(dir.path(), &key.public_key()).unwrap();
        assert!(report.is_intact(), "{report:?}");
        if report.head_seq == Some(5) && report.sealed_through == Some(5) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no digest: {report:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    log.close().await.unwrap();
}

#[tokio::test]
async fn retention_prunes_sealed_segments_and_what_remains_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    for n in 1..=60 {
        log.append(event(n, 40), Durability::Written).await.unwrap();
    }
    log.seal().await.unwrap();
    let before = segments(dir.path());
    assert!(before.len() >= 4);

    // Nothing is older than a cutoff in the past.
    assert_eq!(log.prune(0).unwrap().removed_segments, 0);

    let outcome = log.prune(i64::MAX).unwrap();
    assert_eq!(
        outcome.removed_segments,
        before.len() - 1,
        "the active segment stays"
    );
    let after = segments(dir.path());
    assert_eq!(after, before[before.len() - 1..]);
    let first_retained = outcome.first_retained_seq.unwrap();
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.anchor_seq, Some(first_retained));
    assert_eq!(report.first_seq, Some(first_retained));

    // Readers are told what is gone.
    assert!(matches!(
        read_records(dir.path(), 1),
        Err(AuditError::Pruned { requested: 1, first_available }) if first_available == first_retained
    ));
    // And the log goes on.
    for n in 61..=90 {
        log.append(event(n, 40), Durability::Written).await.unwrap();
    }
    log.close().await.unwrap();
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.last_seq, Some(90));

    // Deleting the oldest retained segment now contradicts the anchor...
    let segs = segments(dir.path());
    let copy = common::copy_dir(dir.path());
    std::fs::remove_file(&segs[0]).unwrap();
    let problem = verify(dir.path(), &key.public_key())
        .unwrap()
        .problem
        .unwrap();
    assert_eq!(problem.kind, BreakKind::Deleted, "{problem}");
    assert_eq!(problem.position.file, file_name(&segs[1]));

    // ...and a forged anchor that would excuse it does not verify.
    let anchor = copy.path().join("anchor.json");
    let text = std::fs::read_to_string(&anchor).unwrap();
    let forged = text.replace(
        &format!("\"next_seq\":{first_retained}"),
        &format!("\"next_seq\":{}", first_retained + 1),
    );
    std::fs::write(&anchor, forged).unwrap();
    let problem = verify(copy.path(), &key.public_key())
        .unwrap()
        .problem
        .unwrap();
    assert_eq!(problem.kind, BreakKind::BadDigest, "{problem}");
    assert_eq!(problem.position.file, "anchor.json");
}

#[tokio::test]
async fn a_prune_interrupted_before_removing_files_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    write_log(dir.path(), &key, small_config(), 60).await;
    let saved = common::copy_dir(dir.path());
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    log.prune(i64::MAX).unwrap();
    log.close().await.unwrap();
    // Put the pruned segments back: as if the crash came after the anchor, before unlink.
    for seg in segments(saved.path()) {
        let to = dir.path().join(file_name(&seg));
        if !to.exists() {
            std::fs::copy(&seg, &to).unwrap();
        }
    }
    let report = verify(dir.path(), &key.public_key()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    assert!(log.prune(i64::MAX).unwrap().removed_segments > 0);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_catches_up_through_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::generate().unwrap();
    let log = AuditLog::open(dir.path(), copy_key(&key), small_config()).unwrap();
    for n in 1..=40 {
        log.append(event(n, 40), Durability::Synced).await.unwrap();
    }
    assert_eq!(log.synced_seq(), 40);

    // A sink that delivers 15 at a time, crashing (dropping its iterator) in between.
    let mut delivered = Vec::new();
    loop {
        let cursor = SinkCursor::load(dir.path(), "siem")
            .unwrap()
            .map_or(0, |c| c.seq());
        let batch: Vec<_> = log
            .records_from(cursor + 1)
            .unwrap()
            .take(15)
            .map(Result::unwrap)
            .collect();
        let Some(last) = batch.last() else { break };
        SinkCursor::new("siem", last.seq)
            .unwrap()
            .store(dir.path())
            .unwrap();
        delivered.extend(batch.iter().map(|r| r.seq));
    }
    assert_eq!(delivered, (1..=40).collect::<Vec<_>>());

    // Written-but-not-synced records are not offered yet.
    let config_log = log.clone();
    config_log
        .append(event(41, 1), Durability::Written)
        .await
        .unwrap();
    let offered = log.records_from(41).unwrap().count();
    assert!(offered <= usize::from(log.synced_seq() >= 41));
    log.close().await.unwrap();
    assert_eq!(read_records(dir.path(), 41).unwrap().count(), 1);
    // Reading from the middle of a segment, and past the end.
    let from_17: Vec<u64> = read_records(dir.path(), 17)
        .unwrap()
        .map(|r| r.unwrap().seq)
        .take(3)
        .collect();
    assert_eq!(from_17, vec![17, 18, 19]);
    assert_eq!(read_records(dir.path(), 1000).unwrap().count(), 0);
}

#[tokio::test]
async fn open_never_panics_on_garbage() {
    let key = AuditKey::generate().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &key, small_config(), 5).await;
        let last = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        for _ in 0..(next() % 200) {
            let b = (next() % 256) as u8;
            bytes.push(if next() % 16 == 0 { b'\n' } else { b });
        }
        if round % 2 == 0 {
            bytes.push(b'\n');
        }
        std::fs::write(&last, &bytes).unwrap();
        if round % 3 == 0 {
            std::fs::write(dir.path().join("head.json"), &bytes[..bytes.len() / 2]).unwrap();
        }
        match AuditLog::open(dir.path(), copy_key(&key), small_config()) {
            Ok(log) => {
                let _ = log.append(event(1, 1), Durability::Synced).await;
                log.close().await.unwrap();
            }
            Err(e) => assert!(matches!(e, AuditError::Corrupt { .. }), "{e}"),
        }
        let _ = verify(dir.path(), &key.public_key()).unwrap();
    }
}
