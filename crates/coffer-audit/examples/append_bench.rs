//! Micro-benchmark of the audit log's append path: N CloudTrail-sized events from T
//! concurrent tasks, then a full verification of the result.
//!
//! ```text
//! cargo run --release -p coffer-audit --example append_bench -- [events] [tasks] [bytes] [written|synced|mixed|off] [work-µs]
//! ```
//!
//! Defaults: 100000 events, 64 tasks, 800-byte events, `written` (reads: no fsync wait), no
//! other work. With `work-µs`, each task burns that much CPU per event before appending, a
//! stand-in for serving the request; comparing `written` with `off` (the same work, no
//! append) then estimates what auditing costs a server's throughput.
//! `COFFER_AUDIT_BENCH_DIR` chooses the file system (default: the system temp dir).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use coffer_audit::{AuditConfig, AuditKey, AuditLog, Durability, verify};

fn event(n: u64, bytes: usize) -> Vec<u8> {
    let mut e = format!(
        concat!(
            r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","principalId":"AIDAEXAMPLE{n:010}","#,
            r#""arn":"arn:aws:iam::123456789012:user/app","accountId":"123456789012","accessKeyId":"AKIAEXAMPLE0000001"}},"#,
            r#""eventTime":"2026-08-04T12:00:00Z","eventSource":"secretsmanager.amazonaws.com","eventName":"GetSecretValue","#,
            r#""awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-sdk-rust/1.3.0 os/linux lang/rust/1.95.0","#,
            r#""requestParameters":{{"secretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}},"#,
            r#""responseElements":null,"requestID":"6f1c2a4e-0000-4000-8000-{n:012}","eventID":"9a7b3c5d-0000-4000-8000-{n:012}","#,
            r#""readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"123456789012","pad":""#
        ),
        n = n
    );
    while e.len() + 2 < bytes {
        e.push('x');
    }
    e.push_str("\"}");
    e.into_bytes()
}

/// User + system CPU time of this process (Linux `/proc/self/stat`, clock ticks of 10 ms).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_comm = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args.first().map_or(100_000, |a| a.parse().unwrap());
    let tasks: u64 = args.get(1).map_or(64, |a| a.parse().unwrap());
    let bytes: usize = args.get(2).map_or(800, |a| a.parse().unwrap());
    let mode = args.get(3).cloned().unwrap_or_else(|| "written".into());
    let work = Duration::from_micros(args.get(4).map_or(0, |a| a.parse().unwrap()));
    let base =
        std::env::var_os("COFFER_AUDIT_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).unwrap();
    let key = AuditKey::generate().unwrap();
    let public = key.public_key();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let log = AuditLog::open(dir.path(), key, AuditConfig::default()).unwrap();
    let per_task = events / tasks;
    let total = per_task * tasks;
    let payloads: Vec<Vec<u8>> = (0..total).map(|n| event(n, bytes)).collect();
    let line_bytes = payloads[0].len();

    // Unloaded latency: one task, one append at a time.
    let single: Vec<Duration> = runtime.block_on({
        let log = log.clone();
        let payloads = payloads[..2000.min(payloads.len())].to_vec();
        async move {
            let mut out = Vec::new();
            for p in payloads {
                let t = Instant::now();
                log.append(p, Durability::Written).await.unwrap();
                out.push(t.elapsed());
            }
            out
        }
    });

    let mut chunks: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut payloads = payloads.into_iter();
    for _ in 0..tasks {
        chunks.push(payloads.by_ref().take(per_task as usize).collect());
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(tasks as usize + 1));
    let mut handles = Vec::new();
    for chunk in chunks {
        let log = log.clone();
        let mode = mode.clone();
        let start = start.clone();
        handles.push(runtime.spawn(async move {
            let mut lat = Vec::with_capacity(chunk.len());
            start.wait().await;
            for (i, p) in chunk.into_iter().enumerate() {
                let durability = match mode.as_str() {
                    "synced" => Durability::Synced,
                    "mixed" if i % 10 == 0 => Durability::Synced,
                    _ => Durability::Written,
                };
                if !work.is_zero() {
                    let until = Instant::now() + work;
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                let t = Instant::now();
                if mode != "off" {
                    log.append(p, durability).await.unwrap();
                } else {
                    std::hint::black_box(p);
                    tokio::task::yield_now().await;
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut latencies: Vec<Duration> = runtime.block_on(async {
        start.wait().await;
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.unwrap());
        }
        all
    });
    let elapsed = started.elapsed();
    let cpu = cpu_before.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    runtime.block_on(log.close()).unwrap();

    latencies.sort();
    let mut single = single;
    single.sort();
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();

    let verify_started = Instant::now();
    let report = verify(dir.path(), &public).unwrap();
    let verify_elapsed = verify_started.elapsed();
    assert!(report.is_intact(), "{report:?}");

    println!("coffer-audit append benchmark");
    println!(
        "  {total} events of {line_bytes} bytes, {tasks} tasks, {mode}, {} µs of work per event, {cores} cores, dir {}",
        work.as_micros(),
        dir.path().display()
    );
    println!(
        "  throughput       {:.0} events/s ({:.1} MB/s of log), wall {:.3} s",
        total as f64 / elapsed.as_secs_f64(),
        size as f64 / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "  cpu              {:.2} µs per event (user+system, whole process, 10 ms ticks)",
            cpu.as_secs_f64() * 1e6 / total as f64
        );
    }
    println!(
        "  latency {tasks} tasks p50 {:?}  p90 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "  latency 1 task   p50 {:?}  p99 {:?}",
        percentile(&single, 0.5),
        percentile(&single, 0.99)
    );
    println!(
        "  verify           {} records, {} digests, {} segments in {:.3} s ({:.0} records/s)",
        report.records,
        report.digests,
        report.segments,
        verify_elapsed.as_secs_f64(),
        report.records as f64 / verify_elapsed.as_secs_f64()
    );
}
