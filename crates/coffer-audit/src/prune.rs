//! Retention: whole sealed segments leave the log oldest first, and a signed anchor records
//! where the retained chain begins.
//!
//! Pruning works on segments, not events: a segment goes once its seal (the digest that ends
//! it) is older than the cutoff, so an event is kept at most one segment's span longer than
//! the retention period, and the retained log always starts at a segment boundary whose
//! predecessor hash is known from the seal. The anchor is written (and made durable) before
//! any file is removed; a crash in between leaves segments older than the anchor, which
//! `verify` and readers skip and the next prune removes.

use std::fs;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use crate::AuditError;
use crate::files::{self, ANCHOR_FILE, SegmentFile};
use crate::format::{Anchor, Digest};
use crate::key::AuditKey;
use crate::log::now_ms;

/// What [`crate::AuditLog::prune`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Segment files removed.
    pub removed_segments: usize,
    /// The first retained seq, when anything was pruned.
    pub first_retained_seq: Option<u64>,
}

/// A digest line is a few hundred bytes; the seal is the segment's last line.
const TAIL_BYTES: u64 = 4096;

pub(crate) fn prune_segments(
    dir: &Path,
    key: &AuditKey,
    cutoff_ms: i64,
) -> Result<PruneOutcome, AuditError> {
    let segments = files::list_segments(dir)?;
    let public = key.public_key();
    let mut last_pruned: Option<(usize, Digest)> = None;
    // Never the last segment: the writer appends to it.
    for (i, pair) in segments.windows(2).enumerate() {
        let [segment, next] = pair else { break };
        let Some(seal) = seal_of(segment)? else { break };
        // Only our own, intact seals are trusted to say how old a segment is: a forged one
        // must not be able to make recent records disappear.
        if !seal.verify(&public)
            || seal.last_seq.checked_add(1) != Some(next.first_seq)
            || seal.time_ms >= cutoff_ms
        {
            break;
        }
        last_pruned = Some((i, seal));
    }
    let Some((last_index, seal)) = last_pruned else {
        return Ok(PruneOutcome {
            removed_segments: 0,
            first_retained_seq: None,
        });
    };
    let next_seq = seal.last_seq + 1;
    let anchor = Anchor::sign(key, next_seq, seal.last_hash, now_ms())?;
    files::replace_file(dir, ANCHOR_FILE, anchor.to_json().as_bytes(), true)?;
    let mut removed = 0;
    for segment in segments.iter().take(last_index + 1) {
        match fs::remove_file(&segment.path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AuditError::io("remove", &segment.path, e)),
        }
    }
    files::sync_dir(dir)?;
    tracing::info!(
        removed,
        first_retained_seq = next_seq,
        "audit log: pruned expired segments"
    );
    Ok(PruneOutcome {
        removed_segments: removed,
        first_retained_seq: Some(next_seq),
    })
}

/// The digest on the last line of a closed segment, if its last line is one.
fn seal_of(segment: &SegmentFile) -> Result<Option<Digest>, AuditError> {
    let mut file =
        fs::File::open(&segment.path).map_err(|e| AuditError::io("open", &segment.path, e))?;
    let len = file
        .metadata()
        .map_err(|e| AuditError::io("stat", &segment.path, e))?
        .len();
    let start = len.saturating_sub(TAIL_BYTES);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut tail))
        .map_err(|e| AuditError::io("read", &segment.path, e))?;
    let Some(body) = tail.strip_suffix(b"\n") else {
        return Ok(None);
    };
    let last_line = body
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(body, |p| &body[p + 1..]);
    Ok(Digest::from_json(last_line))
}
