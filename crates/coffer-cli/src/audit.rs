//! `coffer audit verify|public-key|tail`: checking and reading the audit trail of a data
//! directory. These read the log's files directly (`DATA_DIR/audit/`), so they work on a copy
//! of the directory and while a server is writing; only the public key comes from the
//! store (or the running server), because a key kept next to the files proves nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use coffer_audit::{AuditPublicKey, Report};
use coffer_core::audit::lookup::{EventFilter, newest_matching};

use crate::Failure;
use crate::admin::{self, Owner};
use crate::root_key::RootKeyFlags;

const EXAMPLES: &str = "\
Examples:
  Check the whole trail (exit status 1 and the first broken place if anything was changed,
  removed, inserted, reordered or cut off):
    coffer audit verify --data-dir /var/lib/coffer

  Keep the public key somewhere the server cannot write, and verify against that copy:
    coffer audit public-key --data-dir /var/lib/coffer > /secure/coffer-audit.pem
    coffer audit verify --data-dir /var/lib/coffer --public-key /secure/coffer-audit.pem

  Watch who reads one secret, as it happens:
    coffer audit tail --data-dir /var/lib/coffer --follow \\
        --filter EventName=GetSecretValue --filter ResourceName=prod/db

  A dev server prints `export COFFER_DATA_DIR=...`; with that exported:
    coffer audit tail -n 5 --output json";

/// Verify, export the key of, and read the audit trail.
///
/// Every API call (allowed or denied) and everything the service does by itself (rotations,
/// deletions at the end of a waiting period) is one CloudTrail-format event in
/// DATA_DIR/audit/. The events are hash-chained and sealed by Ed25519-signed digests.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check every event's hash and link, every digest's signature, and that the log reaches
    /// its signed head; exit 1 naming the first place where it breaks.
    #[command(after_help = EXAMPLES)]
    Verify(VerifyArgs),
    /// Print the public key that verifies the trail's digests (PEM).
    #[command(after_help = EXAMPLES)]
    PublicKey(PublicKeyArgs),
    /// Print the latest events, oldest first, and with --follow those that arrive.
    #[command(after_help = EXAMPLES)]
    Tail(TailArgs),
}

#[derive(Debug, Args)]
struct DataDir {
    /// The data directory made by `coffer init` (a dev server prints its own as
    /// `export COFFER_DATA_DIR=...`).
    #[arg(long, env = "COFFER_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    /// Text for people.
    Table,
    /// JSON for scripts: `verify` prints its report as one object, `tail` one event per line.
    Json,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    target: DataDir,

    /// Verify with this public key (PEM, from `coffer audit public-key`) instead of the one
    /// sealed in the store. Keep a copy where whoever can write the data directory cannot.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,

    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,

    #[command(flatten)]
    unlock: RootKeyFlags,
}

#[derive(Debug, Args)]
struct PublicKeyArgs {
    #[command(flatten)]
    target: DataDir,

    #[command(flatten)]
    unlock: RootKeyFlags,
}

#[derive(Debug, Args)]
struct TailArgs {
    #[command(flatten)]
    target: DataDir,

    /// How many of the latest (matching) events to print first.
    #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
    lines: usize,

    /// Keep printing events as they are recorded, until interrupted.
    #[arg(short, long)]
    follow: bool,

    /// Only events where KEY=VALUE, repeatable (all must hold). Keys are LookupEvents'
    /// attributes (EventName, EventSource, Username, ResourceName, ResourceType, AccessKeyId,
    /// ReadOnly, EventId) and StartTime / EndTime (ISO 8601, e.g. 2026-11-24T10:00:00Z).
    #[arg(long, value_name = "KEY=VALUE")]
    filter: Vec<String>,

    /// How to print events: `table` is one line each, `json` the whole CloudTrail record.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

pub(crate) fn run(args: AuditArgs) -> Result<(), Failure> {
    match args.command {
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::PublicKey(args) => {
            let key = public_key(&args.target.data_dir, &args.unlock)?;
            print!("{}", key.to_pem());
            Ok(())
        }
        AuditCommand::Tail(args) => tail(&args),
    }
}

fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(coffer_server::AUDIT_DIR)
}

/// The trail's public key, from the running server or the store.
fn public_key(data_dir: &Path, unlock: &RootKeyFlags) -> anyhow::Result<AuditPublicKey> {
    match admin::reach(data_dir, unlock)? {
        Owner::Server(stream) => {
            let answer = admin::result(admin::ask(stream, "audit-public-key")?)?;
            let pem = answer
                .get("pem")
                .and_then(|p| p.as_str())
                .ok_or_else(|| anyhow!("the server answered without a public key"))?;
            AuditPublicKey::from_pem(pem).map_err(|e| anyhow!("{e}"))
        }
        Owner::Offline(store) => store
            .block_on(store.coffer.audit_public_key())
            .map_err(|e| anyhow!("{e}")),
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let data_dir = &args.target.data_dir;
    let key = match &args.public_key {
        Some(file) => {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the public key {}", file.display()))?;
            AuditPublicKey::from_pem(&pem).map_err(|e| anyhow!("{}: {e}", file.display()))?
        }
        None => public_key(data_dir, &args.unlock)?,
    };
    let dir = audit_dir(data_dir);
    if !dir.is_dir() {
        return Err(anyhow!(
            "{} has no audit log yet (it is made when the server first starts)",
            data_dir.display()
        )
        .into());
    }
    let report = coffer_audit::verify(&dir, &key)
        .with_context(|| format!("cannot read the audit log in {}", dir.display()))?;
    match args.output {
        Output::Json => println!("{}", report_json(&report, &key)),
        Output::Table => print_report(&report, &key),
    }
    match &report.problem {
        None => Ok(()),
        Some(problem) => Err(anyhow!("the audit trail does not verify: {problem}").into()),
    }
}

fn report_json(report: &Report, key: &AuditPublicKey) -> serde_json::Value {
    serde_json::json!({
        "intact": report.is_intact(),
        "key_id": key.key_id(),
        "segments": report.segments,
        "records": report.records,
        "digests": report.digests,
        "first_seq": report.first_seq,
        "last_seq": report.last_seq,
        "sealed_through": report.sealed_through,
        "unsealed_records": report.unsealed_records(),
        "anchor_seq": report.anchor_seq,
        "live": report.live,
        "problem": report.problem.as_ref().map(|p| serde_json::json!({
            "kind": p.kind.to_string(),
            "file": p.position.file,
            "line": p.position.line,
            "seq": p.position.seq,
            "detail": p.detail,
        })),
    })
}

fn print_report(report: &Report, key: &AuditPublicKey) {
    let range = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!("events {first}..{last}"),
        _ => "no events".to_string(),
    };
    println!(
        "{range} in {} segment(s), {} digest(s), key {}",
        report.segments,
        report.digests,
        key.key_id()
    );
    if let Some(anchor) = report.anchor_seq {
        println!("pruned by retention before event {anchor} (anchored)");
    }
    let unsealed = report.unsealed_records();
    if unsealed > 0 {
        println!(
            "{unsealed} latest event(s) chained but not yet sealed by a digest{}",
            if report.live {
                " (the server is writing; they are sealed within a second)"
            } else {
                ""
            }
        );
    }
    match &report.problem {
        None => println!("OK: the trail verifies"),
        Some(problem) => println!("BROKEN: {problem}"),
    }
}

/// One line for people: time, source, name, who, outcome, resource.
fn event_line(event: &serde_json::Value) -> String {
    let text = |path: &[&str]| {
        let mut v = event;
        for p in path {
            v = &v[*p];
        }
        v.as_str().unwrap_or("-").to_string()
    };
    let who = match event["userIdentity"]["arn"].as_str() {
        Some(arn) => arn.to_string(),
        None => text(&["userIdentity", "invokedBy"]),
    };
    let outcome = match event["errorCode"].as_str() {
        Some(code) => code.to_string(),
        None => "OK".to_string(),
    };
    let resource = event["resources"][0]["ARN"]
        .as_str()
        .or(event["requestParameters"]["secretId"].as_str())
        .or(event["requestParameters"]["keyId"].as_str())
        .unwrap_or("-");
    let line = format!(
        "{}  {:<26} {:<32} {:<24} {}  {}",
        text(&["eventTime"]),
        text(&["eventSource"]),
        text(&["eventName"]),
        outcome,
        who,
        resource
    );
    // Names and ARNs come from clients: no control character reaches the terminal.
    line.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn print_event(out: &mut impl Write, raw: &str, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => writeln!(out, "{raw}")?,
        Output::Table => {
            let event: serde_json::Value =
                serde_json::from_str(raw).context("an event in the log is not JSON")?;
            writeln!(out, "{}", event_line(&event))?;
        }
    }
    Ok(())
}

fn tail(args: &TailArgs) -> Result<(), Failure> {
    let dir = audit_dir(&args.target.data_dir);
    if !dir.is_dir() {
        return Err(anyhow!(
            "{} has no audit log yet (it is made when the server first starts)",
            args.target.data_dir.display()
        )
        .into());
    }
    let filter = EventFilter::parse_all(&args.filter)
        .map_err(|e| crate::usage("audit tail", e.to_string()))?;
    let mut out = std::io::stdout().lock();
    // The latest matching events, found newest first and printed oldest first.
    let mut latest = Vec::new();
    let mut last_seq = 0;
    if args.lines > 0 {
        latest = newest_matching(&dir, &filter, args.lines, None)
            .map_err(|e| anyhow!("{e}"))?
            .0;
    }
    latest.reverse();
    for event in &latest {
        print_event(&mut out, &event.raw, args.output)?;
        last_seq = last_seq.max(event.seq);
    }
    out.flush().context("cannot write to standard output")?;
    if !args.follow {
        return Ok(());
    }
    // Following starts after the newest event, matching or not.
    let (newest, _) = newest_matching(&dir, &EventFilter::new(), 1, None)
        .map_err(|e| anyhow!("cannot read the audit log: {e}"))?;
    last_seq = last_seq.max(newest.first().map_or(0, |e| e.seq));
    loop {
        let records = match coffer_audit::read_records(&dir, last_seq + 1) {
            Ok(records) => records,
            Err(coffer_audit::AuditError::Pruned {
                first_available, ..
            }) => {
                eprintln!("note: events before {first_available} were pruned by retention");
                last_seq = first_available.saturating_sub(1);
                continue;
            }
            Err(e) => return Err(anyhow!("cannot read the audit log: {e}").into()),
        };
        for record in records {
            let record = record.map_err(|e| anyhow!("cannot read the audit log: {e}"))?;
            last_seq = record.seq;
            let Ok(raw) = std::str::from_utf8(&record.event) else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(raw) else {
                continue;
            };
            if filter.matches(&event) {
                print_event(&mut out, raw, args.output)?;
            }
        }
        out.flush().context("cannot write to standard output")?;
        std::thread::sleep(Duration::from_millis(300));
    }
}
