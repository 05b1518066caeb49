//! The offline verifier behind `coffer audit verify`: walks every segment and checks each
//! record's hash, each `prev` link, seq continuity, each digest's signature and coverage, the
//! anchor (where the retained log begins) and the head (how far the log must reach), and
//! reports the first place where any of it breaks.
//!
//! What each check catches:
//!
//! | tampering | how it shows |
//! |---|---|
//! | an event, seq or prev edited | the record's hash no longer matches: [`BreakKind::Changed`] |
//! | an edit re-hashed, chain re-hashed after it | the next record's `prev`, or the covering digest's signed `last_hash`: `Changed` |
//! | a record deleted | a seq gap: [`BreakKind::Deleted`] (or a digest covering records that are not there) |
//! | a record inserted or duplicated | the chain resumes after it, or two records claim one seq: [`BreakKind::Inserted`] |
//! | records swapped or moved | a seq ahead of its place whose missing predecessor follows: [`BreakKind::Reordered`] |
//! | a digest forged, edited, removed or copied | signature, key id, or coverage not continuing the previous digest: [`BreakKind::BadDigest`] |
//! | a middle segment deleted | a seq gap at the next segment: `Deleted` |
//! | the oldest segments deleted | the first record is not where the signed anchor (or seq 1) says: `Deleted` |
//! | the tail cut mid-line | [`BreakKind::TruncatedTail`] |
//! | the tail cut by whole records, digests and segments | the signed head promises more: `TruncatedTail` |
//!
//! The limits, stated honestly: records written after the last digest (at most
//! `digest_interval` or `digest_every_records` of them) can be cut off by whole lines
//! without trace, since nothing signed mentions them yet; and someone holding the directory
//! can roll it back wholesale (log, head and anchor together) to an older consistent state.
//! Only digests kept outside the machine (shipped by a sink, or noted by an auditor) detect that.
//!
//! A log that is open for writing (its lock is held) may end in a line being written; that
//! is reported as `live`, not as damage.

use std::fmt;
use std::fs::{File, TryLockError};
use std::path::Path;

use crate::files::{self, ANCHOR_FILE, HEAD_FILE, LOCK_FILE};
use crate::format::{self, Anchor, Digest, GENESIS_PREV, Line, RecordLine};
use crate::key::AuditPublicKey;
use crate::{AuditError, Hash};

/// What kind of break the verifier found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakKind {
    /// A line that is neither a record nor a digest in the one accepted encoding (an edit
    /// that broke its syntax, a non-final segment cut mid-line), a segment whose name
    /// contradicts its first record, or an unreadable head or anchor file.
    Malformed,
    /// A record whose hash does not match its content, that does not chain to the record
    /// before it, or a digest whose signed hash the records no longer end in.
    Changed,
    /// Records missing: a gap in seqs, a deleted segment, a log that starts after the anchor.
    Deleted,
    /// A record that does not belong where it is: a copy, or one the chain skips over.
    Inserted,
    /// A record ahead of its place, its missing predecessor coming later.
    Reordered,
    /// A digest, head or anchor whose signature does not verify with the key, that was signed
    /// by another key, or whose coverage does not continue the previous digest; or a head
    /// that no digest in the log matches.
    BadDigest,
    /// The log ends before its end: its last line is cut, or the head promises records the
    /// log does not hold, or the head is missing although the log holds digests.
    TruncatedTail,
}

impl fmt::Display for BreakKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed",
            Self::Changed => "changed",
            Self::Deleted => "deleted",
            Self::Inserted => "inserted",
            Self::Reordered => "reordered",
            Self::BadDigest => "bad digest",
            Self::TruncatedTail => "truncated tail",
        })
    }
}

/// Where a break is: a file of the log directory, a line in it (from 1; 0 for the file as a
/// whole) and the seq concerned, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// File name within the log directory.
    pub file: String,
    /// Line number from 1, or 0 for a whole file.
    pub line: u64,
    /// The seq at this place, when known.
    pub seq: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, " line {}", self.line)?;
        }
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        Ok(())
    }
}

/// The first place where verification failed. `detail` names seqs and files, never event
/// content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// What is wrong.
    pub kind: BreakKind,
    /// Where.
    pub position: Position,
    /// Why, in words.
    pub detail: String,
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.kind, self.position, self.detail)
    }
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Segment files walked.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// Digests checked.
    pub digests: u64,
    /// The first and last seq checked.
    pub first_seq: Option<u64>,
    /// See `first_seq`.
    pub last_seq: Option<u64>,
    /// The last seq covered by a valid digest; records after it are chained but not yet sealed.
    pub sealed_through: Option<u64>,
    /// The last seq the head promises.
    pub head_seq: Option<u64>,
    /// The first retained seq according to the anchor, if the log was pruned.
    pub anchor_seq: Option<u64>,
    /// The log was open for writing during verification.
    pub live: bool,
    /// The first break, `None` when the log verified.
    pub problem: Option<Break>,
}

impl Report {
    /// Whether everything verified.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// Records after the last digest (chained, not yet covered by a signature).
    #[must_use]
    pub fn unsealed_records(&self) -> u64 {
        match (self.last_seq, self.sealed_through) {
            (Some(last), Some(sealed)) => last.saturating_sub(sealed),
            (Some(_), None) => self.records,
            _ => 0,
        }
    }

    fn broken(mut self, kind: BreakKind, position: Position, detail: String) -> Self {
        self.problem = Some(Break {
            kind,
            position,
            detail,
        });
        self
    }
}

/// A head file to hold against the log: `head.json`, or one that open set aside.
struct HeadCheck {
    file: String,
    digest: Digest,
    rejected: bool,
    matched: bool,
}

/// The last accepted record.
#[derive(Clone)]
struct Accepted {
    seq: u64,
    prev: Hash,
    hash: Hash,
    file: String,
    line: u64,
}

/// Verifies the log in `dir` against `key`. A damaged or tampered log is a [`Report`] with a
/// `problem`, never an error or a panic; `Err` only when a file cannot be read at all.
pub fn verify(dir: &Path, key: &AuditPublicKey) -> Result<Report, AuditError> {
    let mut report = Report {
        live: is_live(dir),
        ..Report::default()
    };
    let whole = |file: &str| Position {
        file: file.to_owned(),
        line: 0,
        seq: None,
    };

    let anchor = match files::read_optional(&dir.join(ANCHOR_FILE))? {
        None => None,
        Some(bytes) => match Anchor::from_json(&bytes) {
            None => {
                return Ok(report.broken(
                    BreakKind::Malformed,
                    whole(ANCHOR_FILE),
                    "the anchor file is not a valid anchor".into(),
                ));
            }
            Some(a) if !a.verify(key) => {
                return Ok(report.broken(
                    BreakKind::BadDigest,
                    whole(ANCHOR_FILE),
                    format!(
                        "the anchor's signature does not verify with key {}",
                        key.key_id()
                    ),
                ));
            }
            Some(a) => Some(a),
        },
    };

    let mut heads = Vec::new();
    let mut head_paths = vec![(dir.join(HEAD_FILE), false)];
    head_paths.extend(
        files::list_rejected_heads(dir)?
            .into_iter()
            .map(|p| (p, true)),
    );
    for (path, rejected) in head_paths {
        let Some(bytes) = files::read_optional(&path)? else {
            continue;
        };
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(digest) = Digest::from_json(&bytes) else {
            return Ok(report.broken(
                BreakKind::Malformed,
                whole(&file),
                "the head file is not a valid digest".into(),
            ));
        };
        if !digest.verify(key) {
            return Ok(report.broken(
                BreakKind::BadDigest,
                whole(&file),
                format!(
                    "the head's signature does not verify with key {}",
                    key.key_id()
                ),
            ));
        }
        if !rejected {
            report.head_seq = Some(digest.last_seq);
        }
        heads.push(HeadCheck {
            file,
            digest,
            rejected,
            matched: false,
        });
    }

    let (start_seq, start_prev) = anchor
        .as_ref()
        .map_or((1, GENESIS_PREV), |a| (a.next_seq, a.prev_hash));
    report.anchor_seq = anchor.as_ref().map(|a| a.next_seq);
    // Segments older than the anchor are left over from a prune interrupted by a crash.
    let segments: Vec<_> = files::list_segments(dir)?
        .into_iter()
        .filter(|s| s.first_seq >= start_seq || anchor.is_none())
        .collect();

    let mut chain = Chain {
        expected_seq: start_seq,
        expected_prev: start_prev,
        digest_first: start_seq,
        last: None,
    };
    let mut scratch = Vec::new();
    let mut end = Position {
        file: "(no segment)".into(),
        line: 0,
        seq: None,
    };
    for (index, segment) in segments.iter().enumerate() {
        let name = segment.name();
        let buf = files::read_file(&segment.path)?;
        let (lines, tail) = files::split_lines(&buf);
        report.segments += 1;
        let mut first_in_segment = true;
        for (i, line) in lines.iter().enumerate() {
            let line_no = i as u64 + 1;
            let at = |seq: Option<u64>| Position {
                file: name.clone(),
                line: line_no,
                seq,
            };
            match format::parse_line(line) {
                None => {
                    return Ok(report.broken(
                        BreakKind::Malformed,
                        at(None),
                        "the line is neither a record nor a digest".into(),
                    ));
                }
                Some(Line::Record(r)) => {
                    if !r.hash_matches(&mut scratch) {
                        return Ok(report.broken(
                            BreakKind::Changed,
                            at(Some(r.seq)),
                            "the record's hash does not match its content".into(),
                        ));
                    }
                    if r.seq != chain.expected_seq || r.prev != chain.expected_prev {
                        let (kind, position, detail) =
                            classify(&lines, i, &r, &chain, &name, &mut scratch);
                        return Ok(report.broken(kind, position, detail));
                    }
                    if first_in_segment && r.seq != segment.first_seq {
                        return Ok(report.broken(
                            BreakKind::Malformed,
                            at(Some(r.seq)),
                            format!(
                                "the file name says the segment starts at seq {}",
                                segment.first_seq
                            ),
                        ));
                    }
                    first_in_segment = false;
                    let Some(next) = r.seq.checked_add(1) else {
                        return Ok(report.broken(
                            BreakKind::Malformed,
                            at(Some(r.seq)),
                            "the seq is at the end of its range".into(),
                        ));
                    };
                    report.records += 1;
                    report.first_seq.get_or_insert(r.seq);
                    report.last_seq = Some(r.seq);
                    chain.expected_seq = next;
                    chain.expected_prev = r.hash;
                    chain.last = Some(Accepted {
                        seq: r.seq,
                        prev: r.prev,
                        hash: r.hash,
                        file: name.clone(),
                        line: line_no,
                    });
                }
                Some(Line::Digest(d)) => {
                    if let Some((kind, detail)) = check_digest(&d, &chain, key) {
                        return Ok(report.broken(kind, at(Some(d.last_seq)), detail));
                    }
                    report.digests += 1;
                    report.sealed_through = Some(d.last_seq);
                    chain.digest_first = d.last_seq.saturating_add(1);
                    for head in heads.iter_mut().filter(|h| h.digest.last_seq == d.last_seq) {
                        if head.digest != d {
                            return Ok(report.broken(
                                BreakKind::BadDigest,
                                whole(&head.file),
                                format!(
                                    "the head and the log's digest at {} line {line_no} both seal seq {} but differ",
                                    name, d.last_seq
                                ),
                            ));
                        }
                        head.matched = true;
                    }
                }
            }
        }
        let tail_at = Position {
            file: name.clone(),
            line: lines.len() as u64 + 1,
            seq: None,
        };
        if !tail.is_empty() {
            if index + 1 < segments.len() {
                return Ok(report.broken(
                    BreakKind::Malformed,
                    tail_at,
                    "the segment ends mid-line, but later segments follow".into(),
                ));
            }
            if !report.live {
                return Ok(report.broken(
                    BreakKind::TruncatedTail,
                    tail_at,
                    "the log ends mid-line: its last line was cut".into(),
                ));
            }
        }
        end = tail_at;
    }
    end.seq = Some(chain.expected_seq);

    let last_seq = chain.expected_seq.saturating_sub(1);
    for head in &heads {
        if head.matched && !head.rejected {
            continue;
        }
        if head.digest.last_seq > last_seq {
            return Ok(report.broken(
                BreakKind::TruncatedTail,
                end,
                format!(
                    "{} promises records through seq {}, but the log ends at seq {last_seq}",
                    head.file, head.digest.last_seq
                ),
            ));
        }
        if report
            .sealed_through
            .is_none_or(|s| s < head.digest.last_seq)
        {
            return Ok(report.broken(
                BreakKind::TruncatedTail,
                end,
                format!(
                    "the log ends before the digest sealing seq {} that {} names",
                    head.digest.last_seq, head.file
                ),
            ));
        }
        let detail = if head.rejected {
            "opening the log found this head contradicting it and set it aside".to_owned()
        } else {
            format!(
                "no digest in the log matches the head sealing seq {} (a digest was removed or replaced)",
                head.digest.last_seq
            )
        };
        return Ok(report.broken(BreakKind::BadDigest, whole(&head.file), detail));
    }
    if report.digests > 0 && !report.live && !heads.iter().any(|h| !h.rejected) {
        return Ok(report.broken(
            BreakKind::TruncatedTail,
            whole(HEAD_FILE),
            "the log holds digests but the head file is missing".into(),
        ));
    }
    Ok(report)
}

struct Chain {
    expected_seq: u64,
    expected_prev: Hash,
    /// The `first_seq` the next digest must have.
    digest_first: u64,
    last: Option<Accepted>,
}

fn check_digest(d: &Digest, chain: &Chain, key: &AuditPublicKey) -> Option<(BreakKind, String)> {
    if d.key_id != key.key_id() {
        return Some((
            BreakKind::BadDigest,
            format!("the digest names key {}, not {}", d.key_id, key.key_id()),
        ));
    }
    if !d.verify(key) {
        return Some((
            BreakKind::BadDigest,
            "the digest's signature does not verify".into(),
        ));
    }
    if d.first_seq > chain.digest_first {
        return Some((
            BreakKind::BadDigest,
            format!(
                "the digest starts at seq {}; the one covering seqs {}..{} is missing",
                d.first_seq,
                chain.digest_first,
                d.first_seq - 1
            ),
        ));
    }
    if d.first_seq < chain.digest_first {
        return Some((
            BreakKind::BadDigest,
            format!(
                "the digest starts at seq {}, inside what an earlier digest covers (a copied digest)",
                d.first_seq
            ),
        ));
    }
    let last = chain.expected_seq.saturating_sub(1);
    if d.last_seq > last {
        return Some((
            BreakKind::Deleted,
            format!(
                "the digest covers records through seq {}, but before it the log reaches only seq {last}",
                d.last_seq
            ),
        ));
    }
    if d.last_seq < last {
        return Some((
            BreakKind::Inserted,
            format!(
                "the digest covers records through seq {}, but records through seq {last} precede it",
                d.last_seq
            ),
        ));
    }
    if d.last_hash != chain.expected_prev {
        return Some((
            BreakKind::Changed,
            format!(
                "the records through seq {} no longer end in the hash this digest signed: records in seqs {}..={} were altered and re-hashed",
                d.last_seq, d.first_seq, d.last_seq
            ),
        ));
    }
    None
}

/// Names the break when a record with a valid hash is not the expected next link, looking at
/// the lines after it to tell an insertion from a deletion or a reordering.
fn classify(
    lines: &[&[u8]],
    index: usize,
    r: &RecordLine<'_>,
    chain: &Chain,
    file: &str,
    scratch: &mut Vec<u8>,
) -> (BreakKind, Position, String) {
    let here = Position {
        file: file.to_owned(),
        line: index as u64 + 1,
        seq: Some(r.seq),
    };
    // A record ahead of its place whose predecessor comes later in the segment was moved.
    if r.seq > chain.expected_seq && later_records(lines, index).any(|x| x.hash == r.prev) {
        return (
            BreakKind::Reordered,
            here,
            format!(
                "seq {} comes before seq {}, which it follows in the chain",
                r.seq,
                r.seq - 1
            ),
        );
    }
    let next = next_record(lines, index, scratch);
    if next.is_some_and(|n| n.seq == chain.expected_seq && n.prev == chain.expected_prev) {
        return (
            BreakKind::Inserted,
            here,
            "the record does not belong to the chain: the next record continues it".into(),
        );
    }
    if let Some(last) = &chain.last
        && r.seq == last.seq
        && r.prev == last.prev
    {
        if r.hash != last.hash
            && next.is_some_and(|n| Some(n.seq) == r.seq.checked_add(1) && n.prev == r.hash)
        {
            return (
                BreakKind::Inserted,
                Position {
                    file: last.file.clone(),
                    line: last.line,
                    seq: Some(last.seq),
                },
                "the record takes the place of the next line's record, from which the chain continues".into(),
            );
        }
        return (
            BreakKind::Inserted,
            here,
            format!("a second record for seq {}", r.seq),
        );
    }
    if r.seq > chain.expected_seq {
        let expected_later = later_records(lines, index).any(|x| x.seq == chain.expected_seq);
        if expected_later {
            return (
                BreakKind::Reordered,
                here,
                format!("seq {} comes before seq {}", r.seq, chain.expected_seq),
            );
        }
        let missing = if r.seq - chain.expected_seq == 1 {
            format!("seq {} is missing", chain.expected_seq)
        } else {
            format!("seqs {}..={} are missing", chain.expected_seq, r.seq - 1)
        };
        return (BreakKind::Deleted, here, missing);
    }
    if r.seq < chain.expected_seq {
        return (
            BreakKind::Inserted,
            here,
            format!(
                "seq {} appears again after seq {}",
                r.seq,
                chain.expected_seq.saturating_sub(1)
            ),
        );
    }
    (
        BreakKind::Changed,
        here,
        "the record does not chain to the one before it (one of them was altered and re-hashed)"
            .into(),
    )
}

/// The record lines after `index`.
fn later_records<'a>(lines: &[&'a [u8]], index: usize) -> impl Iterator<Item = RecordLine<'a>> {
    lines
        .iter()
        .skip(index + 1)
        .copied()
        .filter_map(|l| match format::parse_line(l) {
            Some(Line::Record(r)) => Some(r),
            _ => None,
        })
}

/// The first record line after `index`, if its hash is intact.
fn next_record<'a>(
    lines: &[&'a [u8]],
    index: usize,
    scratch: &mut Vec<u8>,
) -> Option<RecordLine<'a>> {
    later_records(lines, index)
        .next()
        .filter(|r| r.hash_matches(scratch))
}

/// Whether a writer holds the directory's lock.
fn is_live(dir: &Path) -> bool {
    let Ok(lock) = File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(lock.try_lock_shared(), Err(TryLockError::WouldBlock))
}
