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
    })
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
