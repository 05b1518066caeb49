//! The audit directory's files: segment naming and listing, whole-file reads, line splitting,
//! and the atomic replace used for the head, the anchor and sink cursors.
//!
//! ```text
//! DATA_DIR/audit/
//!   seg-00000000000000000001.jsonl   segments, named by the seq of their first record
//!   seg-00000000000000081234.jsonl
//!   head.json                        the latest durable digest (signed)
//!   anchor.json                      where the retained log begins after pruning (signed)
//!   head.rejected-<ms>.json          a head that contradicted the log at open, kept as evidence
//!   cursors/<sink>.json              how far each external sink has delivered
//!   LOCK                             held by the one writer process
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::AuditError;

pub(crate) const HEAD_FILE: &str = "head.json";
pub(crate) const ANCHOR_FILE: &str = "anchor.json";
pub(crate) const LOCK_FILE: &str = "LOCK";
pub(crate) const CURSOR_DIR: &str = "cursors";
pub(crate) const REJECTED_HEAD_PREFIX: &str = "head.rejected-";

const SEGMENT_PREFIX: &str = "seg-";
const SEGMENT_SUFFIX: &str = ".jsonl";

/// A segment file and the seq its name says it starts at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    pub first_seq: u64,
    pub path: PathBuf,
}

impl SegmentFile {
    pub(crate) fn at(dir: &Path, first_seq: u64) -> Self {
        Self {
            first_seq,
            path: dir.join(segment_name(first_seq)),
        }
    }

    pub(crate) fn name(&self) -> String {
        segment_name(self.first_seq)
    }
}

fn segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The segments of `dir`, ordered by first seq. Other files are ignored.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<SegmentFile>, AuditError> {
    let entries = fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix(SEGMENT_PREFIX)
            .and_then(|rest| rest.strip_suffix(SEGMENT_SUFFIX))
        else {
            continue;
        };
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(first_seq) = digits.parse::<u64>() {
            segments.push(SegmentFile {
                first_seq,
                path: entry.path(),
            });
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(segments)
}

/// Head files that open set aside because they contradicted the log, by name.
pub(crate) fn list_rejected_heads(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let entries = fs::read_dir(dir).map_err(|e| AuditError::io("list", dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| AuditError::io("list", dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(REJECTED_HEAD_PREFIX) && n.ends_with(".json"))
        {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, AuditError> {
    fs::read(path).map_err(|e| AuditError::io("read", path, e))
}

/// `Ok(None)` when the file does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuditError::io("read", path, e)),
    }
}

/// The complete lines of `buf` (without their `\n`) and the bytes after the last `\n`
/// (empty unless the file ends mid-line).
pub(crate) fn split_lines(buf: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let (body, tail) = buf.split_at(complete);
    let lines = if body.is_empty() {
        Vec::new()
    } else {
        body[..body.len() - 1].split(|b| *b == b'\n').collect()
    };
    (lines, tail)
}

/// Creates `dir` (owner-only) if it does not exist.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), AuditError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| AuditError::io("create directory", dir, e))
}

/// Makes the directory's entries (a created or renamed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("fsync directory", dir, e))
}

/// Creates a new, empty segment file opened for appending. Its name is not yet durable: the
/// caller syncs the directory before relying on it (the writer leaves that to the syncer).
pub(crate) fn create_segment(
    dir: &Path,
    first_seq: u64,
) -> Result<(SegmentFile, File), AuditError> {
    let segment = SegmentFile::at(dir, first_seq);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&segment.path)
        .map_err(|e| AuditError::io("create", &segment.path, e))?;
    Ok((segment, file))
}

/// Replaces `dir/name` with `bytes` atomically: a temporary file, fsync, rename. With
/// `sync_dir_after`, the rename itself is made durable too.
pub(crate) fn replace_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    sync_dir_after: bool,
) -> Result<(), AuditError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let target = dir.join(name);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AuditError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| AuditError::io("write", &tmp, e))?;
    fs::rename(&tmp, &target).map_err(|e| AuditError::io("rename", &target, e))?;
    if sync_dir_after {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn split_lines_separates_the_torn_tail() {
        let (lines, tail) = split_lines(b"a\nbb\nccc");
        assert_eq!(lines, vec![&b"a"[..], &b"bb"[..]]);
        assert_eq!(tail, b"ccc");
        let (lines, tail) = split_lines(b"a\n\n");
        assert_eq!(lines, vec![&b"a"[..], &b""[..]]);
        assert!(tail.is_empty());
        let (lines, tail) = split_lines(b"");
        assert!(lines.is_empty() && tail.is_empty());
        let (lines, tail) = split_lines(b"torn");
        assert!(lines.is_empty());
        assert_eq!(tail, b"torn");
    }

    #[test]
    fn segments_are_listed_in_seq_order_ignoring_other_files() {
        let dir = tempfile::tempdir().unwrap();
        for seq in [100u64, 1, 20] {
            create_segment(dir.path(), seq).unwrap();
        }
        fs::write(dir.path().join("seg-12.jsonl"), b"").unwrap();
        fs::write(dir.path().join(HEAD_FILE), b"").unwrap();
        let seqs: Vec<u64> = list_segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first_seq)
            .collect();
        assert_eq!(seqs, vec![1, 20, 100]);
    }
}
