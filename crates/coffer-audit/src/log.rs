//! The writer side: [`AuditLog`] opens (and recovers) the directory; appends are then written
//! by group commit, and two threads do what must not happen on a caller's task.
//!
//! * **Group commit, leader and followers.** An append puts its event on a queue. If no batch
//!   is being gathered, it starts one: it yields once (the other tasks ready on its worker
//!   queue their events meanwhile), then tries to take the writer's lock. Holding it makes
//!   it the leader: it takes everything queued, chains and encodes it into one buffer, hands
//!   it to the kernel with one `write(2)`, and resolves the batch (its own event included);
//!   then it looks at the queue again, since followers may have queued meanwhile. An append
//!   that finds a batch gathering, or the lock taken, is a follower: it waits for a leader to
//!   write its event. Uncontended, an append is one `write(2)` on the caller's task with no
//!   thread switch; under load the batches grow. A leader writes a few rounds at most, then
//!   leaves the rest to the ticker, so no caller works for others indefinitely. The crate
//!   docs give the measurements behind this design.
//! * The **syncer** thread runs `fdatasync` for batches holding [`Durability::Synced`] events
//!   and at least every `sync_interval` otherwise, then rewrites the head file when the synced
//!   range ends with a digest. The writer never waits for a disk flush.
//! * The **ticker** thread sleeps until the next deadline (a periodic fsync, a periodic digest),
//!   a second at most, and wakes early to take over a long queue or to shut the log down.
//!
//! A write or fsync error poisons the log: every later append fails with
//! [`AuditError::Poisoned`] until it is reopened. After a failed fsync the kernel may have
//! dropped the dirty pages, so no later success could be trusted (the "fsyncgate" lesson);
//! failing closed lets the server refuse requests rather than serve them unaudited.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};

use crate::files::{self, HEAD_FILE, LOCK_FILE, REJECTED_HEAD_PREFIX, SegmentFile};
use crate::format::{self, Anchor, Digest, GENESIS_PREV, Line};
use crate::key::{AuditKey, AuditPublicKey};
use crate::reader::{Records, read_records};
use crate::{AuditError, Hash, prune};

/// Tuning of an [`AuditLog`]. The defaults suit a server auditing every read.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// A segment is sealed and a new one started once it reaches this size.
    pub segment_max_bytes: u64,
    /// A digest is written after this many records at the latest.
    pub digest_every_records: u64,
    /// …and this long after the first record it would cover at the latest. This bounds how
    /// many trailing records could be cut off the log without the head noticing.
    pub digest_interval: Duration,
    /// [`Durability::Written`] records are fsynced this long after being written at the latest:
    /// the window in which a power loss (not a process crash) can lose acknowledged reads.
    pub sync_interval: Duration,
    /// Larger events are refused ([`AuditError::InvalidEvent`]). CloudTrail's own limit is
    /// 256 KiB per event.
    pub max_event_bytes: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            segment_max_bytes: 64 * 1024 * 1024,
            digest_every_records: 10_000,
            digest_interval: Duration::from_secs(1),
            sync_interval: Duration::from_millis(100),
            max_event_bytes: 256 * 1024,
        }
    }
}

/// How durable an event must be before [`AuditLog::append`] resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Handed to the kernel with `write(2)`: survives the process being killed (`kill -9`,
    /// a panic, an OOM kill); lost only if the machine loses power or the kernel crashes
    /// within `sync_interval` of the write. For reads.
    Written,
    /// On stable storage (`fdatasync`) before the append resolves. For calls that change state,
    /// whose own change the store has already made durable.
    Synced,
}

type Reply = oneshot::Sender<Result<u64, AuditError>>;
type SealReply = oneshot::Sender<Result<Option<Digest>, AuditError>>;

struct Pending {
    event: Vec<u8>,
    durability: Durability,
    reply: Reply,
}

/// State shared with the syncer.
struct Shared {
    poisoned: AtomicBool,
    /// Last seq handed to the kernel.
    written: watch::Sender<u64>,
    /// Last seq known to be on stable storage.
    synced: watch::Sender<u64>,
}

impl Shared {
    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// A leader writes at most this many rounds of the queue before leaving it to the ticker.
const LEADER_ROUNDS: usize = 4;

/// The ticker's longest sleep.
const TICKER_IDLE: Duration = Duration::from_secs(1);

/// The durable, tamper-evident audit log of one data directory. Cheap to clone; every clone
/// appends to the same log. Dropping the last clone seals and stops the log in the
/// background; [`AuditLog::close`] does the same and waits for it.
#[derive(Clone)]
pub struct AuditLog {
    handle: Arc<Handle>,
}

/// Dropping the last handle tells the ticker to shut the log down.
struct Handle {
    core: Arc<Core>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.core.signal_ticker(|t| t.shutdown = true);
    }
}

struct Core {
    /// An append is gathering a batch (yielding once before it leads).
    gathering: AtomicBool,
    /// The log was closed: appends fail at once.
    closed: AtomicBool,
    dir: PathBuf,
    key: Arc<AuditKey>,
    max_event_bytes: usize,
    /// Appends waiting for a leader.
    queue: Mutex<Vec<Pending>>,
    /// Whoever holds this lock writes. Lock order: `state`, then `queue`.
    state: Mutex<WriterState>,
    ticker: Mutex<TickerSignal>,
    ticker_wake: Condvar,
    shared: Arc<Shared>,
    prune_lock: Mutex<()>,
}

#[derive(Default)]
struct TickerSignal {
    wake: bool,
    shutdown: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the data is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends a gathering, also when the gathering append's future is dropped: the queue is then
/// written by whoever leads next.
struct Gathering<'a>(&'a Core);

impl Drop for Gathering<'_> {
    fn drop(&mut self) {
        self.0.gathering.store(false, Ordering::Release);
        self.0.lead();
    }
}

impl Core {
    fn signal_ticker(&self, set: impl FnOnce(&mut TickerSignal)) {
        set(&mut lock(&self.ticker));
        self.ticker_wake.notify_one();
    }

    fn queue_is_empty(&self) -> bool {
        lock(&self.queue).is_empty()
    }

    /// Writes everything queued, holding the writer's lock.
    fn write_queued(&self, state: &mut WriterState) {
        let mut batch = std::mem::take(&mut state.spare);
        std::mem::swap(&mut *lock(&self.queue), &mut batch);
        state.write_batch(&mut batch);
        // Keep the capacity for the next swap.
        state.spare = batch;
        if std::mem::take(&mut state.deadline_added) {
            self.signal_ticker(|t| t.wake = true);
        }
    }

    /// Becomes the leader if nobody writes, and writes until the queue is empty (a few rounds
    /// at most). Whoever releases the writer's lock calls this again, so an event queued by a
    /// follower that found the lock taken is never left behind.
    fn lead(&self) {
        for _ in 0..LEADER_ROUNDS {
            let mut state = match self.state.try_lock() {
                Ok(state) => state,
                Err(TryLockError::WouldBlock) => return,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
            };
            self.write_queued(&mut state);
            drop(state);
            if self.queue_is_empty() {
                return;
            }
        }
        self.signal_ticker(|t| t.wake = true);
    }

    /// Runs `f` with the writer's lock (waiting for it), after writing what is queued.
    fn with_state<R>(&self, f: impl FnOnce(&mut WriterState) -> R) -> R {
        let result = {
            let mut state = lock(&self.state);
            self.write_queued(&mut state);
            f(&mut state)
        };
        self.lead();
        result
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("dir", &self.handle.core.dir)
            .field("written_seq", &self.written_seq())
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens the log in `dir` (created if missing), taking the directory's lock, recovering
    /// from a crash (a torn last line is cut off: it was never acknowledged) and starting the
    /// syncer and ticker threads. Blocking; call it before serving.
    pub fn open(dir: &Path, key: AuditKey, config: AuditConfig) -> Result<Self, AuditError> {
        files::ensure_dir(dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| AuditError::io("open", &lock_path, e))?;
        if lock_file.try_lock().is_err() {
            return Err(AuditError::Locked(dir.to_path_buf()));
        }
        let key = Arc::new(key);
        let recovered = recover(dir, &key)?;
        let last_seq = recovered.next_seq.saturating_sub(1);
        let shared = Arc::new(Shared {
            poisoned: AtomicBool::new(false),
            written: watch::channel(last_seq).0,
            synced: watch::channel(last_seq).0,
        });
        let (sync_tx, sync_rx) = mpsc::channel();
        {
            let dir = dir.to_path_buf();
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("coffer-audit-sync".into())
                .spawn(move || run_syncer(&sync_rx, &dir, &shared))
                .map_err(|e| AuditError::io("start the syncer thread for", &lock_path, e))?;
        }
        let uncovered = recovered.next_seq > recovered.digest_first;
        let state = WriterState {
            dir: dir.to_path_buf(),
            key: Arc::clone(&key),
            config: config.clone(),
            segment: recovered.segment,
            next_seq: recovered.next_seq,
            last_hash: recovered.last_hash,
            digest_first: recovered.digest_first,
            // Records that survived a crash unsealed are sealed at once.
            digest_due: uncovered.then(Instant::now),
            sync_due: None,
            deadline_added: false,
            dir_unsynced: false,
            buf: Vec::with_capacity(64 * 1024),
            scratch: Vec::with_capacity(4096),
            spare: Vec::new(),
            shared: Arc::clone(&shared),
            sync_tx: Some(sync_tx),
            closed: false,
            lock_file: Some(lock_file),
        };
        let core = Arc::new(Core {
            gathering: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            dir: dir.to_path_buf(),
            key,
            max_event_bytes: config.max_event_bytes,
            queue: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            ticker: Mutex::new(TickerSignal::default()),
            ticker_wake: Condvar::new(),
            shared,
            prune_lock: Mutex::new(()),
        });
        {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("coffer-audit-tick".into())
                .spawn(move || run_ticker(&core))
                .map_err(|e| AuditError::io("start the ticker thread for", &lock_path, e))?;
        }
        Ok(Self {
            handle: Arc::new(Handle { core }),
        })
    }

    /// Appends one event (a single-line JSON object, already redacted by the caller) and
    /// resolves with its seq once it is as durable as `durability` asks. Events appended
    /// while another batch is being written go into the next batch (group commit).
    ///
    /// The leader of a batch performs its `write(2)` on the calling task: a copy into the page
    /// cache, microseconds, never an fsync.
    ///
    /// If the future is dropped before it resolves, the event may or may not be in the log;
    /// it was not acknowledged.
    pub async fn append(&self, event: Vec<u8>, durability: Durability) -> Result<u64, AuditError> {
        let core = &self.handle.core;
        check_event(&event, core.max_event_bytes)?;
        if core.closed.load(Ordering::Acquire) {
            return Err(AuditError::Closed);
        }
        let (reply, done) = oneshot::channel();
        lock(&core.queue).push(Pending {
            event,
            durability,
            reply,
        });
        if core
            .gathering
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // Let the other tasks that are ready on this worker queue their events first.
            let gather = Gathering(core);
            tokio::task::yield_now().await;
            drop(gather);
        }
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes a digest over the records not yet covered by one, makes it durable and updates
    /// the head. Resolves with that digest (`None` when every record was already covered).
    pub async fn seal(&self) -> Result<Option<Digest>, AuditError> {
        let (reply, done) = oneshot::channel();
        self.handle.core.with_state(|state| {
            if state.closed {
                let _ = reply.send(Err(AuditError::Closed));
            } else {
                state.seal(Some(reply));
            }
        });
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes what is queued, seals, syncs and releases the directory. Later appends fail
    /// with [`AuditError::Closed`]. Closing twice is harmless.
    pub async fn close(&self) -> Result<(), AuditError> {
        let (reply, done) = oneshot::channel();
        self.handle.core.closed.store(true, Ordering::Release);
        self.handle
            .core
            .with_state(|state| state.finish(Some(reply)));
        self.handle.core.signal_ticker(|t| t.shutdown = true);
        match done.await {
            Ok(result) => result.map(|_| ()),
            Err(_) => Ok(()),
        }
    }

    /// The last seq handed to the kernel (0 for an empty log).
    #[must_use]
    pub fn written_seq(&self) -> u64 {
        *self.handle.core.shared.written.borrow()
    }

    /// The last seq known to be on stable storage.
    #[must_use]
    pub fn synced_seq(&self) -> u64 {
        *self.handle.core.shared.synced.borrow()
    }

    /// Follows [`AuditLog::synced_seq`]: an external sink waits on it, then reads up to it.
    #[must_use]
    pub fn subscribe_synced(&self) -> watch::Receiver<u64> {
        self.handle.core.shared.synced.subscribe()
    }

    /// The records from `from` up to [`AuditLog::synced_seq`] (as of this call), for sinks
    /// that catch up. Records that are written but not yet synced are not offered: after a
    /// power loss they could be gone and their seqs reused, and a sink must never have
    /// shipped an event the log no longer holds. Blocking IO: iterate on a blocking thread.
    pub fn records_from(&self, from: u64) -> Result<Records, AuditError> {
        Ok(read_records(&self.handle.core.dir, from)?.until(self.synced_seq()))
    }

    /// Retention: removes whole sealed segments whose seal is older than `cutoff_ms` (Unix
    /// milliseconds), oldest first, never the segment being written, after signing an anchor
    /// at the first retained record so that what remains still verifies. Blocking IO.
    pub fn prune(&self, cutoff_ms: i64) -> Result<prune::PruneOutcome, AuditError> {
        let core = &self.handle.core;
        let _guard = lock(&core.prune_lock);
        prune::prune_segments(&core.dir, &core.key, cutoff_ms)
    }

    /// The public key that verifies this log's digests.
    #[must_use]
    pub fn public_key(&self) -> AuditPublicKey {
        self.handle.core.key.public_key()
    }

    /// The log's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.handle.core.dir
    }
}

/// Sleeps until the next deadline or a signal; takes over the queue when a leader left work;
/// finishes the log when the last handle is gone or it was closed.
fn run_ticker(core: &Core) {
    loop {
        let next = lock(&core.state).next_deadline();
        // Every release of the writer's lock is followed by a look at the queue: an append
        // may have found the lock taken just now.
        core.lead();
        let shutdown = {
            let signal = lock(&core.ticker);
            let idle = |t: &mut TickerSignal| !t.wake && !t.shutdown;
            // Also awake once a second when idle: should an append ever be left queued, it
            // waits a second rather than forever.
            let timeout = next.map_or(TICKER_IDLE, |at| {
                at.saturating_duration_since(Instant::now())
                    .min(TICKER_IDLE)
            });
            let (mut signal, _) = core
                .ticker_wake
                .wait_timeout_while(signal, timeout, idle)
                .unwrap_or_else(PoisonError::into_inner);
            signal.wake = false;
            signal.shutdown
        };
        core.with_state(|state| {
            while !core.queue_is_empty() {
                core.write_queued(state);
            }
            if shutdown {
                core.closed.store(true, Ordering::Release);
                state.finish(None);
            } else {
                state.on_deadlines();
            }
        });
        if shutdown {
            return;
        }
    }
}

/// An event must be one line of UTF-8 holding a JSON object, within the size limit: the line
/// format depends on the first three, and `jq` and sinks rely on them. The caller builds
/// events with `serde_json`, so release builds trust the JSON grammar inside and check only
/// this framing (a few passes over the bytes); debug builds parse the event fully. A grammar
/// slip would cost readability, never verifiability: the hash covers the bytes as they are.
fn check_event(event: &[u8], max: usize) -> Result<(), AuditError> {
    if event.len() > max {
        return Err(AuditError::InvalidEvent(
            "larger than the configured maximum",
        ));
    }
    let text = std::str::from_utf8(event).map_err(|_| AuditError::InvalidEvent("not UTF-8"))?;
    if !text.starts_with('{') || !text.trim_end_matches([' ', '\t']).ends_with('}') {
        return Err(AuditError::InvalidEvent("not a JSON object"));
    }
    // `contains` on bytes is a vectorised memchr; this runs for every event.
    if event.contains(&b'\n') || event.contains(&b'\r') {
        return Err(AuditError::InvalidEvent("contains a line break"));
    }
    if cfg!(debug_assertions) {
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|_| AuditError::InvalidEvent("not valid JSON"))?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The segment being appended to.
struct OpenSegment {
    file: Arc<File>,
    path: PathBuf,
    len: u64,
}

struct Recovered {
    segment: OpenSegment,
    next_seq: u64,
    last_hash: Hash,
    /// The first seq not covered by a digest.
    digest_first: u64,
}

/// Finds where the chain continues, cuts a torn last line, and brings the head in line with
/// the last digest in the log.
///
/// Cutting the torn line is safe because an append resolves only after the `write(2)` of its
/// whole batch returned: a line that is incomplete on disk belongs to a batch that was never
/// acknowledged. Complete lines of such a batch stay; they are events of calls that may or may
/// not have been answered, which an audit log should keep.
fn recover(dir: &Path, key: &AuditKey) -> Result<Recovered, AuditError> {
    let anchor = files::read_optional(&dir.join(files::ANCHOR_FILE))?
        .and_then(|bytes| Anchor::from_json(&bytes))
        .filter(|a| a.verify(&key.public_key()));
    let (start_seq, start_prev) = anchor
        .as_ref()
        .map_or((1, GENESIS_PREV), |a| (a.next_seq, a.prev_hash));
    let segments = files::list_segments(dir)?;

    let mut last_record: Option<(u64, Hash)> = None;
    let mut last_digest: Option<(Digest, PathBuf)> = None;
    let mut digest_search_failed = false;
    let mut current: Option<(SegmentFile, u64)> = None;
    let last_index = segments.len().saturating_sub(1);
    'segments: for (i, segment) in segments.iter().enumerate().rev() {
        let mut buf = files::read_file(&segment.path)?;
        if i == last_index {
            let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            if complete < buf.len() {
                tracing::warn!(
                    segment = %segment.name(),
                    bytes = buf.len() - complete,
                    "audit log: cutting a torn last line (an unacknowledged write interrupted by a crash)"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&segment.path)
                    .map_err(|e| AuditError::io("open", &segment.path, e))?;
                file.set_len(complete as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| AuditError::io("truncate", &segment.path, e))?;
                buf.truncate(complete);
            }
            current = Some((segment.clone(), buf.len() as u64));
        }
        let (lines, _) = files::split_lines(&buf);
        for (index, line) in lines.iter().enumerate().rev() {
            match format::parse_line(line) {
                Some(Line::Record(r)) => {
                    if last_record.is_none() {
                        last_record = Some((r.seq, r.hash));
                    }
                }
                Some(Line::Digest(d)) => {
                    if last_digest.is_none() {
                        last_digest = Some((d, segment.path.clone()));
                    }
                }
                None if last_record.is_none() => {
                    return Err(AuditError::Corrupt {
                        file: segment.name(),
                        line: index as u64 + 1,
                    });
                }
                None => {
                    // Damage before the last record: `verify` reports it; the writer only
                    // needs to know where the next digest starts.
                    digest_search_failed = true;
                    break 'segments;
                }
            }
            if last_record.is_some() && last_digest.is_some() {
                break 'segments;
            }
        }
    }

    let (next_seq, last_hash) = match last_record {
        Some((seq, hash)) => (seq.saturating_add(1), hash),
        None => (start_seq, start_prev),
    };
    let digest_first = match &last_digest {
        Some((d, _)) if !digest_search_failed => d.last_seq.saturating_add(1),
        _ => start_seq,
    }
    // A damaged log could hold a digest past its last record; never seal backwards.
    .min(next_seq);

    let segment = match current {
        Some((segment, len)) => {
            let file = OpenOptions::new()
                .append(true)
                .open(&segment.path)
                .map_err(|e| AuditError::io("open", &segment.path, e))?;
            // What a previous process wrote may still be only in the page cache.
            file.sync_data()
                .map_err(|e| AuditError::io("fsync", &segment.path, e))?;
            OpenSegment {
                file: Arc::new(file),
                path: segment.path,
                len,
            }
        }
        None => {
            let (segment, file) = files::create_segment(dir, next_seq)?;
            files::sync_dir(dir)?;
            OpenSegment {
                file: Arc::new(file),
                path: segment.path,
                len: 0,
            }
        }
    };

    reconcile_head(dir, key, last_digest.as_ref())?;
    Ok(Recovered {
        segment,
        next_seq,
        last_hash,
        digest_first,
    })
}

/// The head must be the log's last digest, or an older one (a crash between writing a digest
/// and replacing the head). A head that is unreadable, not ours, or that promises more than
/// the log holds is evidence of tampering or damage: it is kept as `head.rejected-<ms>.json`
/// (which `verify` keeps reporting until an operator removes it) and replaced, so the server
/// can run on while the evidence stays.
fn reconcile_head(
    dir: &Path,
    key: &AuditKey,
    last_digest: Option<&(Digest, PathBuf)>,
) -> Result<(), AuditError> {
    let head_path = dir.join(HEAD_FILE);
    let public = key.public_key();
    let head = files::read_optional(&head_path)?;
    let parsed = head.as_deref().map(Digest::from_json);
    let consistent = match (&parsed, last_digest) {
        (None, _) => true,
        (Some(Some(h)), Some((d, _))) => h.verify(&public) && (h.last_seq < d.last_seq || h == d),
        (Some(_), _) => false,
    };
    if !consistent {
        let rejected = dir.join(format!("{REJECTED_HEAD_PREFIX}{}.json", now_ms()));
        tracing::error!(
            rejected = %rejected.display(),
            "audit log: the head file contradicts the log (tampering or damage); kept aside, run `coffer audit verify`"
        );
        std::fs::rename(&head_path, &rejected)
            .map_err(|e| AuditError::io("rename", &head_path, e))?;
    }
    let current = if consistent { parsed.flatten() } else { None };
    if let Some((digest, segment_path)) = last_digest
        && current.as_ref() != Some(digest)
    {
        // The digest's segment was synced above or when it was sealed; sync it again in case
        // the previous process died before its syncer ran.
        File::open(segment_path)
            .and_then(|f| f.sync_data())
            .map_err(|e| AuditError::io("fsync", segment_path, e))?;
        files::replace_file(dir, HEAD_FILE, digest.to_json().as_bytes(), true)?;
    }
    Ok(())
}

/// Everything the leader owns while it writes.
struct WriterState {
    dir: PathBuf,
    key: Arc<AuditKey>,
    config: AuditConfig,
    segment: OpenSegment,
    next_seq: u64,
    last_hash: Hash,
    /// The first seq not covered by a digest.
    digest_first: u64,
    digest_due: Option<Instant>,
    sync_due: Option<Instant>,
    /// A deadline was set where there was none: the ticker must re-plan its sleep.
    deadline_added: bool,
    /// A segment was created and the directory not yet fsynced.
    dir_unsynced: bool,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// An empty vector swapped with the queue, so draining it allocates nothing.
    spare: Vec<Pending>,
    shared: Arc<Shared>,
    sync_tx: Option<mpsc::Sender<SyncJob>>,
    closed: bool,
    /// Holds the directory's lock until the log is finished.
    lock_file: Option<File>,
}

/// Work for the syncer: make `file` (and, with `sync_dir`, the directory) durable through
/// `upto`, then resolve `waiters`, then (if any) write `head` and resolve `seal`.
struct SyncJob {
    file: Arc<File>,
    path: PathBuf,
    upto: u64,
    sync_dir: bool,
    waiters: Vec<(u64, Reply)>,
    head: Option<Digest>,
    seal: Option<SealReply>,
}

impl WriterState {
    fn next_deadline(&self) -> Option<Instant> {
        match (self.digest_due, self.sync_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadlines(&mut self) {
        let now = Instant::now();
        if self.digest_due.is_some_and(|at| at <= now) {
            self.seal(None);
        }
        if self.sync_due.is_some_and(|at| at <= now) {
            self.request_sync(Vec::new(), None, None);
        }
    }

    fn write_batch(&mut self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        if self.closed || self.shared.is_poisoned() {
            let closed = self.closed;
            for p in batch.drain(..) {
                let _ = p.reply.send(Err(if closed {
                    AuditError::Closed
                } else {
                    AuditError::Poisoned
                }));
            }
            return;
        }
        self.buf.clear();
        let first_seq = self.next_seq;
        let mut prev = self.last_hash;
        for (seq, p) in (first_seq..).zip(batch.iter()) {
            let hash = format::record_hash(seq, &prev, &p.event, &mut self.scratch);
            format::encode_record(&mut self.buf, seq, &prev, &hash, &p.event);
            prev = hash;
        }
        if let Err(e) = self.write_buf() {
            tracing::error!(segment = %self.segment.path.display(), error = %e, "audit log: write failed");
            for p in batch.drain(..) {
                let _ = p.reply.send(Err(AuditError::io(
                    "write",
                    &self.segment.path,
                    copy_io_error(&e),
                )));
            }
            return;
        }
        let last_seq = first_seq + batch.len() as u64 - 1;
        self.next_seq = last_seq + 1;
        self.last_hash = prev;
        self.shared.written.send_replace(last_seq);
        let mut waiters = Vec::new();
        for (seq, p) in (first_seq..).zip(batch.drain(..)) {
            match p.durability {
                Durability::Written => {
                    let _ = p.reply.send(Ok(seq));
                }
                Durability::Synced => waiters.push((seq, p.reply)),
            }
        }
        let now = Instant::now();
        if self.digest_due.is_none() {
            self.digest_due = Some(now + self.config.digest_interval);
            self.deadline_added = true;
        }
        if !waiters.is_empty() {
            self.request_sync(waiters, None, None);
        } else if self.sync_due.is_none() {
            self.sync_due = Some(now + self.config.sync_interval);
            self.deadline_added = true;
        }
        if self.next_seq.saturating_sub(self.digest_first)
            >= self.config.digest_every_records.max(1)
        {
            self.seal(None);
        }
        if self.segment.len >= self.config.segment_max_bytes {
            self.rotate();
        }
    }

    /// Appends `buf` to the segment with one `write_all`. On failure the segment is cut back to
    /// its previous length, so no partial line stays in front of later records; if even that
    /// fails, the log is poisoned.
    fn write_buf(&mut self) -> io::Result<()> {
        let before = self.segment.len;
        match (&*self.segment.file).write_all(&self.buf) {
            Ok(()) => {
                self.segment.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self.segment.file.set_len(before).is_err() {
                    self.shared.poison();
                }
                Err(e)
            }
        }
    }

    /// Writes a digest over `digest_first..next_seq` (if non-empty) and has the syncer make it
    /// durable and the head. `reply` resolves once that is done.
    fn seal(&mut self, reply: Option<SealReply>) {
        self.digest_due = None;
        if self.shared.is_poisoned() {
            if let Some(reply) = reply {
                let _ = reply.send(Err(AuditError::Poisoned));
            }
            return;
        }
        if self.next_seq == self.digest_first {
            if reply.is_some() {
                self.request_sync(Vec::new(), None, reply);
            }
            return;
        }
        let digest = match Digest::sign(
            &self.key,
            self.digest_first,
            self.next_seq - 1,
            self.last_hash,
            now_ms(),
        ) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "audit log: cannot sign a digest");
                self.digest_due = Some(Instant::now() + self.config.digest_interval);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(e));
                }
                return;
            }
        };
        self.buf.clear();
        self.buf.extend_from_slice(digest.to_json().as_bytes());
        self.buf.push(b'\n');
        match self.write_buf() {
            Ok(()) => {
                self.digest_first = self.next_seq;
                self.request_sync(Vec::new(), Some(digest), reply);
            }
            Err(e) => {
                tracing::error!(segment = %self.segment.path.display(), error = %e, "audit log: cannot write a digest");
                self.digest_due = Some(Instant::now() + self.config.digest_interval);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(AuditError::io("write", &self.segment.path, e)));
                }
            }
        }
    }

    /// Seals the full segment and starts the next one, named by the seq it will start with.
    fn rotate(&mut self) {
        if self.next_seq > self.digest_first {
            self.seal(None);
            if self.next_seq > self.digest_first {
                return; // sealing failed; retried after the next batch
            }
        }
        match files::create_segment(&self.dir, self.next_seq) {
            Ok((segment, file)) => {
                self.segment = OpenSegment {
                    file: Arc::new(file),
                    path: segment.path,
                    len: 0,
                };
                // The syncer makes the new name durable before any Synced event in it resolves.
                self.dir_unsynced = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "audit log: cannot start a new segment; still appending to the full one");
            }
        }
    }

    fn request_sync(
        &mut self,
        waiters: Vec<(u64, Reply)>,
        head: Option<Digest>,
        seal: Option<SealReply>,
    ) {
        self.sync_due = None;
        let job = SyncJob {
            file: Arc::clone(&self.segment.file),
            path: self.segment.path.clone(),
            upto: self.next_seq.saturating_sub(1),
            sync_dir: std::mem::take(&mut self.dir_unsynced),
            waiters,
            head,
            seal,
        };
        let Some(tx) = &self.sync_tx else {
            job.fail(|| AuditError::Closed);
            return;
        };
        if let Err(mpsc::SendError(job)) = tx.send(job) {
            job.fail(|| AuditError::Closed);
        }
    }

    /// Seals what is unsealed, syncs, stops the syncer once it is done, and releases the
    /// directory. `reply` resolves when the final digest and head are durable.
    fn finish(&mut self, reply: Option<SealReply>) {
        if self.closed {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(None));
            }
            return;
        }
        self.closed = true;
        if self.next_seq > self.digest_first {
            self.seal(reply);
        } else if reply.is_some() || self.sync_due.is_some() {
            self.request_sync(Vec::new(), None, reply);
        }
        // The syncer finishes the jobs already sent, then stops.
        self.sync_tx = None;
        self.digest_due = None;
        self.sync_due = None;
        self.lock_file = None;
    }
}

impl SyncJob {
    fn fail(self, error: impl Fn() -> AuditError) {
        for (_, reply) in self.waiters {
            let _ = reply.send(Err(error()));
        }
        if let Some(seal) = self.seal {
            let _ = seal.send(Err(error()));
        }
    }
}

fn copy_io_error(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

fn run_syncer(rx: &mpsc::Receiver<SyncJob>, dir: &Path, shared: &Shared) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        if shared.is_poisoned() {
            for job in jobs {
                job.fail(|| AuditError::Poisoned);
            }
            continue;
        }
        // Every job's bytes were written before it was sent, so one fdatasync per distinct
        // file, in order, covers them all.
        let mut synced: Vec<&Arc<File>> = Vec::new();
        let mut failure: Option<(io::Error, PathBuf)> = None;
        if jobs.iter().any(|j| j.sync_dir)
            && let Err(e) = File::open(dir).and_then(|d| d.sync_all())
        {
            failure = Some((e, dir.to_path_buf()));
        }
        for job in &jobs {
            if failure.is_some() {
                break;
            }
            if synced.iter().any(|f| Arc::ptr_eq(f, &job.file)) {
                continue;
            }
            if let Err(e) = job.file.sync_data() {
                failure = Some((e, job.path.clone()));
                break;
            }
            synced.push(&job.file);
        }
        if let Some((e, path)) = failure {
            tracing::error!(path = %path.display(), error = %e, "audit log: fsync failed; the log stops accepting events");
            shared.poison();
            for job in jobs {
                job.fail(|| AuditError::io("fsync", &path, copy_io_error(&e)));
            }
            continue;
        }
        let upto = jobs.iter().map(|j| j.upto).max().unwrap_or(0);
        // The head is written only now that everything it covers is on stable storage, so
        // after a power loss the head never promises more than the log holds.
        let head = jobs.iter().rev().find_map(|j| j.head.as_ref());
        let head_result = match head {
            Some(digest) => files::replace_file(dir, HEAD_FILE, digest.to_json().as_bytes(), false),
            None => Ok(()),
        };
        if let Err(e) = &head_result {
            tracing::error!(error = %e, "audit log: cannot update the head file");
        }
        shared.synced.send_if_modified(|s| {
            let advance = upto > *s;
            if advance {
                *s = upto;
            }
            advance
        });
        for job in jobs {
            for (seq, reply) in job.waiters {
                let _ = reply.send(Ok(seq));
            }
            if let Some(seal) = job.seal {
                let result = match (&head_result, job.head) {
                    (Err(_), Some(_)) => Err(AuditError::io(
                        "write",
                        &dir.join(HEAD_FILE),
                        io::Error::other("the head file could not be replaced"),
                    )),
                    (_, head) => Ok(head),
                };
                let _ = seal.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn events_must_be_single_line_json_objects() {
        let max = 64;
        assert!(check_event(br#"{"a":1}"#, max).is_ok());
        assert!(check_event(br#"{"a":1}  "#, max).is_ok());
        for bad in [
            &b""[..],
            b"[1]",
            b"{\"a\":\n1}",
            b"{\"a\":1",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":}",
            &[b'{'; 65][..],
        ] {
            assert!(
                matches!(check_event(bad, max), Err(AuditError::InvalidEvent(_))),
                "{bad:?}"
            );
        }
    }
}
