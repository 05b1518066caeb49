//! Reading records back in seq order, for external sinks that catch up from their cursor and
//! (later) for LookupEvents. Reading trusts the files as they are; [`crate::verify`] is what
//! checks them. It does check that seqs follow each other, so a reader never silently skips.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use crate::files::{self, SegmentFile};
use crate::format::{self, Line};
use crate::{AuditError, Hash};

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position in the log, from 1, without gaps.
    pub seq: u64,
    /// The previous record's hash.
    pub prev: Hash,
    /// Its chain hash.
    pub hash: Hash,
    /// The event's JSON, exactly as appended.
    pub event: Vec<u8>,
}

/// Records from the log directory `dir` with `seq >= from`, in order. Blocking IO.
///
/// Fails with [`AuditError::Pruned`] when `from` is older than the oldest retained record.
/// Iteration ends at the end of the log (a last line still being written is not returned),
/// or after [`Records::until`]'s bound.
pub fn read_records(dir: &Path, from: u64) -> Result<Records, AuditError> {
    let from = from.max(1);
    let segments = files::list_segments(dir)?;
    let start = segments.iter().rposition(|s| s.first_seq <= from);
    let idx = match (start, segments.first()) {
        (Some(i), _) => i,
        (None, Some(first)) => {
            return Err(AuditError::Pruned {
                requested: from,
                first_available: first.first_seq,
            });
        }
        (None, None) => 0,
    };
    Ok(Records {
        dir: dir.to_path_buf(),
        segments,
        idx,
        reader: None,
        line: 0,
        from,
        until: None,
        expect: Some(from),
        buf: Vec::new(),
        done: false,
        at_bound: false,
    })
}

/// The first seq of every segment of the log directory `dir`, ascending. Segment `i` holds
/// the records from `starts[i]` up to `starts[i + 1] - 1` (the last one up to the end of the
/// log), so a reader can go through the log newest segment first, reading each with
/// [`read_records`] and [`Records::until`] (LookupEvents does). Retention removes the
/// oldest entries. Blocking IO.
pub fn segment_starts(dir: &Path) -> Result<Vec<u64>, AuditError> {
    Ok(files::list_segments(dir)?
        .into_iter()
        .map(|s| s.first_seq)
        .collect())
}

/// Iterator over [`AuditRecord`]s; see [`read_records`].
pub struct Records {
    dir: PathBuf,
    segments: Vec<SegmentFile>,
    idx: usize,
    reader: Option<BufReader<File>>,
    line: u64,
    from: u64,
    until: Option<u64>,
    expect: Option<u64>,
    buf: Vec<u8>,
    done: bool,
    /// Ended at `until` with nothing read past it: [`Records::extend_until`] can go on.
    at_bound: bool,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("dir", &self.dir)
            .field("from", &self.from)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Records {
    /// Stops after the record with seq `last`.
    #[must_use]
    pub fn until(mut self, last: u64) -> Self {
        self.until = Some(last);
        self
    }

    /// Raises the bound set by [`Records::until`] to `last` and, if the iteration ended at
    /// the old bound, lets it go on from where it stopped, without reading the segment again
    /// from its start. A sink following the log keeps one `Records` and extends it as the
    /// synced seq advances. Returns `false` (and changes nothing) when `last` is below the
    /// current bound or the iteration ended otherwise (an error, the end of the files, a line
    /// still being written): read afresh with [`read_records`] then.
    pub fn extend_until(&mut self, last: u64) -> bool {
        if (self.done && !self.at_bound) || self.until.is_some_and(|u| last < u) {
            return false;
        }
        self.until = Some(last);
        self.done = false;
        self.at_bound = false;
        true
    }

    fn fail(&mut self, error: AuditError) -> Option<Result<AuditRecord, AuditError>> {
        self.done = true;
        Some(Err(error))
    }

    fn current_name(&self) -> String {
        self.segments
            .get(self.idx)
            .map(SegmentFile::name)
            .unwrap_or_default()
    }

    /// Looks for segments created after the listing (the writer rotated meanwhile).
    fn refresh(&mut self) -> Result<bool, AuditError> {
        let last = self.segments.last().map_or(0, |s| s.first_seq);
        let newer: Vec<SegmentFile> = files::list_segments(&self.dir)?
            .into_iter()
            .filter(|s| s.first_seq > last)
            .collect();
        let found = !newer.is_empty();
        self.segments.extend(newer);
        Ok(found)
    }
}

impl Iterator for Records {
    type Item = Result<AuditRecord, AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            if self
                .until
                .is_some_and(|u| self.expect.is_some_and(|e| e > u))
            {
                self.done = true;
                self.at_bound = true;
                return None;
            }
            let reader = match &mut self.reader {
                Some(r) => r,
                None => {
                    let Some(segment) = self.segments.get(self.idx) else {
                        match self.refresh() {
                            Ok(true) => continue,
                            Ok(false) => {
                                self.done = true;
                                return None;
                            }
                            Err(e) => return self.fail(e),
                        }
                    };
                    let file = match File::open(&segment.path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            let requested = self.expect.unwrap_or(self.from);
                            let first_available = files::list_segments(&self.dir)
                                .ok()
                                .and_then(|s| s.first().map(|s| s.first_seq))
                                .unwrap_or(requested);
                            return self.fail(AuditError::Pruned {
                                requested,
                                first_available,
                            });
                        }
                        Err(e) => {
                            let err = AuditError::io("open", &segment.path, e);
                            return self.fail(err);
                        }
                    };
                    self.line = 0;
                    self.reader
                        .insert(BufReader::with_capacity(256 * 1024, file))
                }
            };
            self.buf.clear();
            let read = match reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) => {
                    let path = self
                        .segments
                        .get(self.idx)
                        .map(|s| s.path.clone())
                        .unwrap_or_default();
                    return self.fail(AuditError::io("read", &path, e));
                }
            };
            if read == 0 {
                self.reader = None;
                self.idx += 1;
                continue;
            }
            self.line += 1;
            let Some(line) = self.buf.strip_suffix(b"\n") else {
                // A line still being written (or torn): the end of what can be read.
                self.done = true;
                return None;
            };
            match format::parse_line(line) {
                Some(Line::Digest(_)) => {}
                Some(Line::Record(r)) => {
                    if r.seq < self.from {
                        continue;
                    }
                    if self.until.is_some_and(|u| r.seq > u) {
                        self.done = true;
                        return None;
                    }
                    if self.expect.is_some_and(|e| e != r.seq) {
                        let error = AuditError::Corrupt {
                            file: self.current_name(),
                            line: self.line,
                        };
                        return self.fail(error);
                    }
                    self.expect = r.seq.checked_add(1);
                    return Some(Ok(AuditRecord {
                        seq: r.seq,
                        prev: r.prev,
                        hash: r.hash,
                        event: r.event.to_vec(),
                    }));
                }
                None => {
                    let error = AuditError::Corrupt {
                        file: self.current_name(),
                        line: self.line,
                    };
                    return self.fail(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::{AuditConfig, AuditKey, AuditLog, Durability};

    #[tokio::test]
    async fn segment_starts_bound_each_segments_records() {
        let dir = tempfile::tempdir().unwrap();
        assert!(segment_starts(dir.path()).unwrap().is_empty());
        let config = AuditConfig {
            segment_max_bytes: 600,
            ..AuditConfig::default()
        };
        let log = AuditLog::open(dir.path(), AuditKey::generate().unwrap(), config).unwrap();
        for i in 0..20 {
            let event = format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(60));
            log.append(event.into_bytes(), Durability::Written)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        let starts = segment_starts(dir.path()).unwrap();
        assert!(starts.len() > 2, "{starts:?}");
        assert_eq!(starts.first(), Some(&1));
        assert!(starts.windows(2).all(|w| w[0] < w[1]));
        // Reading each segment's range, newest first, gives every record once.
        let mut seqs = Vec::new();
        for (i, &lo) in starts.iter().enumerate().rev() {
            let mut records = read_records(dir.path(), lo).unwrap();
            if let Some(next) = starts.get(i + 1) {
                records = records.until(next - 1);
            }
            let mut part: Vec<u64> = records.map(|r| r.unwrap().seq).collect();
            assert_eq!(part.first(), Some(&lo));
            part.reverse();
            seqs.extend(part);
        }
        assert_eq!(seqs, (1..=20).rev().collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn an_iteration_ended_at_its_bound_goes_on_when_extended() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuditConfig {
            segment_max_bytes: 600,
            ..AuditConfig::default()
        };
        let log = AuditLog::open(dir.path(), AuditKey::generate().unwrap(), config).unwrap();
        let append = async |n: u64| {
            let event = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(60));
            log.append(event.into_bytes(), Durability::Synced)
                .await
                .unwrap()
        };
        for n in 1..=5 {
            append(n).await;
        }
        let mut records = read_records(dir.path(), 2).unwrap().until(4);
        let seqs = |r: &mut Records| r.by_ref().map(|r| r.unwrap().seq).collect::<Vec<_>>();
        assert_eq!(seqs(&mut records), vec![2, 3, 4]);
        // Across segment rotations and records appended after the iteration ended.
        for n in 6..=20 {
            append(n).await;
        }
        assert!(!records.extend_until(3));
        assert!(records.extend_until(12));
        assert_eq!(seqs(&mut records), (5..=12).collect::<Vec<_>>());
        assert!(records.extend_until(20));
        assert_eq!(seqs(&mut records), (13..=20).collect::<Vec<_>>());
        // Ended by the end of the files rather than the bound: not resumable.
        assert!(records.extend_until(25));
        assert_eq!(seqs(&mut records), Vec::<u64>::new());
        assert!(!records.extend_until(30));
        log.close().await.unwrap();
    }
}
