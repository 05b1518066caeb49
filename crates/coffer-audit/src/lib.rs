//! The tamper-evident, durable audit log: how coffer stores the CloudTrail-format event of
//! every API call and proves that nobody changed, removed, added or reordered one since.
//!
//! This crate owns the files under `DATA_DIR/audit/` and nothing else. It never sees a secret
//! value: the caller builds and redacts each event before appending it, and this crate treats
//! the event as opaque JSON. Errors and log lines name files, line numbers and seqs, never
//! event content.
//!
//! # Design
//!
//! ## Storage: append-only JSON-line segments
//!
//! Events go into segment files (`seg-<first seq, 20 digits>.jsonl`), one line per record:
//!
//! ```text
//! {"seq":42,"prev":"<hex sha256>","hash":"<hex sha256>","event":{…the event as appended…}}
//! ```
//!
//! `hash = SHA-256("coffer-audit-record-v1\0" ‖ seq (u64 BE) ‖ prev (32 bytes) ‖ event bytes)`
//! and `prev` is the previous record's `hash` (zeros before seq 1), across segment
//! boundaries too: a segment's first record chains to the previous segment's last. The line is
//! parsed by position, not re-serialised, so the event's bytes are hashed exactly as written
//! and there is one spelling of every record (the private `format` module has the full
//! grammar; [`Digest`] has the digest's). Every line is plain JSON: `jq` reads the log.
//!
//! Why files rather than a table in the SQLite store: appending a few hundred bytes to a file
//! is the cheapest durable operation there is, and grouping many appends into one `write(2)`
//! makes it cheaper still, while an `INSERT` per read would put a B-tree update and the WAL
//! under every `GetSecretValue` and contend with the store's single writer. Files can also be
//! verified, shipped and pruned (an `unlink`) with no database open, and a verifier can run on
//! a copy on another machine.
//!
//! ## Group commit
//!
//! [`AuditLog::append`] checks the event's framing (one line of UTF-8 holding a JSON object,
//! within a size limit) on the caller's task and queues it. The first append to find no batch
//! being gathered yields once, so that the other tasks ready on its worker can queue theirs,
//! then takes the writer's lock and becomes the leader: it chains and encodes everything
//! queued into one buffer and hands it to the kernel with one `write(2)`, resolving every
//! append in the batch. Appends that arrive meanwhile are followers: they wait for a leader to
//! write them. Whoever releases the writer's lock looks at the queue again, so no follower is
//! left behind; a leader writes a few rounds at most, then the ticker thread takes over.
//!
//! The yield makes the batch size follow the load: on an idle server it returns at once and
//! an append costs one `write(2)` and no thread switch (≈2.2 µs end to end); on a busy one it
//! waits for one pass of the worker's run queue, the batch grows, and the per-event cost of
//! the system call falls. Writing on the callers' tasks rather than on a dedicated writer
//! thread matters on a small machine: the first design, a writer thread fed by a channel,
//! paid two context switches per batch and measured about three times the CPU per event
//! (≈6.6 µs against ≈2.2 µs in the benchmark below with 10 µs of work per event, though
//! measured while another process held one of the two cores). The
//! leader's `write(2)` is a copy into the page cache; nothing on a caller's task ever fsyncs.
//!
//! Measured with `cargo run --release -p coffer-audit --example append_bench` on the 2-core
//! build machine (ext4), 800-byte events from 64 tasks:
//!
//! | workload | events/s | CPU per event |
//! |---|---:|---:|
//! | appends only, `Written` | 380,000–470,000 | 2.8–3.6 µs |
//! | appends only, one in ten `Synced` | 330,000–400,000 | 3.3–3.8 µs |
//! | appends only, all `Synced` | 150,000–185,000 | 4.7–5.8 µs |
//! | 20 µs of work per event, without / with a `Written` append | 95,500 / 82,400 (−13.7%) | +2.3 µs |
//! | 10 µs of work per event, without / with a `Written` append | 181,000 / 140,000 (−23%) | +2.2 µs |
//!
//! The CPU column is the whole process (harness included). Part of the throughput cost falls
//! outside it: the kernel's writeback of 80–140 MB/s of log. `GetSecretValue` costs about
//! 28 µs of CPU per request in the project's benchmark (generator included), so auditing
//! every read should cost it roughly 10%, which the wired-up server must confirm.
//!
//! ## Durability and the fsync policy
//!
//! An append resolves only after the `write(2)` of its whole batch returned: the record is in
//! the kernel's page cache and survives the process being killed (`kill -9`, OOM, panic). What
//! it does not survive by itself is a power loss or kernel crash, which needs `fdatasync`:
//!
//! * [`Durability::Synced`] appends (for calls that change state) resolve after an `fdatasync`
//!   that covers them;
//! * [`Durability::Written`] appends (reads) resolve after the write, and are fsynced at most
//!   `sync_interval` (default 100 ms; the server sets 1 s, see its `AUDIT_SYNC_INTERVAL`) later. **A power loss can lose acknowledged reads' events
//!   from that last window; never a mutation's, never anything on a process crash.**
//!
//! `fdatasync` runs on its own syncer thread, so the writer keeps writing reads while a
//! mutation's batch is being flushed; concurrent mutations share one flush.
//!
//! ## Digests, the head and the anchor
//!
//! A hash chain alone shows that a record was changed, but whoever can write the files can also
//! recompute every hash after their change. So the writer seals the chain every
//! `digest_every_records` records or `digest_interval` (and when a segment fills up, on
//! [`AuditLog::seal`] and on [`AuditLog::close`]) with a digest line: an Ed25519 signature
//! ([`AuditKey`], generated at init, its PKCS#8 held sealed by the caller) over the range of
//! seqs it covers and the last record's hash. Consecutive digests cover consecutive ranges.
//!
//! Digests cannot show that records were cut off the end, so the latest digest is also kept in
//! `head.json`, replaced (atomically) only after the log up to it is fsynced; the verifier
//! requires the log to reach the head. Retention pruning writes a signed `anchor.json`, the
//! seq and `prev` the first retained record must have, so a pruned log still verifies and a
//! deleted oldest segment is still detected. [`verify`] lists what each check catches and the
//! two honest limits (unsealed trailing records; a wholesale rollback of the directory).
//!
//! ## Crash recovery
//!
//! On open, a last line without its newline is the torn remainder of a batch whose `write(2)`
//! was interrupted; since no append of that batch had resolved, it is cut off and the chain
//! continues from the last complete record. Records that survived unsealed are sealed at once.
//! A head that contradicts the log is set aside as `head.rejected-*.json` (evidence that
//! `verify` keeps reporting) rather than overwritten or allowed to stop the server.
//!
//! ## Retention, reading, sinks
//!
//! [`AuditLog::prune`] removes whole sealed segments older than a cutoff (so an event outlives
//! the retention period by at most one segment's span); the server decides the period and
//! when to prune. Retention does not wait for sinks: a sink that fell behind further than
//! the retention period gets [`AuditError::Pruned`] with the first seq still held, and can
//! report the gap and continue from there. [`read_records`] and
//! [`AuditLog::records_from`] iterate from a seq, for sinks that catch up and for
//! LookupEvents; a sink remembers its progress in a [`SinkCursor`]. Sinks are offered only
//! fsynced records, so a power loss can never make the log forget an event a sink already
//! shipped (and reuse its seq).
//!
//! ## What wiring must add
//!
//! The store commits a change in its own SQLite transaction, and this log is a separate file,
//! so "the change and its event commit together" needs the caller's help: for a mutation,
//! write the event into the change's transaction (an outbox row), append it here with
//! [`Durability::Synced`] after the commit and before answering, and delete the outbox row;
//! at start, append any outbox rows left by a crash. Reads append with
//! [`Durability::Written`] before answering.

mod cursor;
mod files;
mod format;
mod key;
mod log;
mod prune;
mod reader;
mod verify;

use std::path::{Path, PathBuf};

pub use cursor::SinkCursor;
pub use format::{Anchor, Digest};
pub use key::{AuditKey, AuditPublicKey};
pub use log::{AuditConfig, AuditLog, Durability};
pub use prune::PruneOutcome;
pub use reader::{AuditRecord, Records, read_records, segment_starts};
pub use verify::{Break, BreakKind, Position, Report, verify};

/// A SHA-256 chain hash.
pub type Hash = [u8; 32];

/// Errors of the audit log. None carries event content.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed (disk full, permissions, a removed directory).
    #[error("audit log: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another [`AuditLog`] in this one) has the directory open.
    #[error("audit log {} is in use by another process", .0.display())]
    Locked(PathBuf),
    /// The log was closed (or its writer stopped) before the request was served.
    #[error("the audit log is closed")]
    Closed,
    /// A write or fsync failed earlier; the log accepts nothing until it is reopened.
    #[error("the audit log stopped accepting events after a failed write or fsync")]
    Poisoned,
    /// The event is not one line of JSON holding an object, or is too large.
    #[error("audit event rejected: {0}")]
    InvalidEvent(&'static str),
    /// The signing key could not be generated, parsed or used.
    #[error("audit signing key: {0}")]
    Key(&'static str),
    /// A line needed to continue or read the log cannot be parsed.
    #[error("the audit log is damaged at {file} line {line}; run `coffer audit verify`")]
    Corrupt {
        /// File name within the log directory.
        file: String,
        /// Line number from 1.
        line: u64,
    },
    /// The requested records were removed by retention.
    #[error("audit records before seq {first_available} were pruned (asked for seq {requested})")]
    Pruned {
        /// The seq asked for.
        requested: u64,
        /// The oldest seq still held.
        first_available: u64,
    },
    /// A sink name must be 1–64 of `A-Z a-z 0-9 _ -`.
    #[error("a sink name must be 1-64 characters of A-Z, a-z, 0-9, _ and -")]
    InvalidSinkName,
}

impl AuditError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}
