//! Sink cursors: how far each external sink (a SIEM, an S3 bucket, syslog) has delivered.
//! A sink reads [`crate::AuditLog::records_from`]`(cursor + 1)`, delivers, then stores the
//! new cursor; a crash between the two redelivers a few events (at-least-once), never skips.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::files::{self, CURSOR_DIR};

/// The last seq a named sink has delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkCursor {
    name: String,
    seq: u64,
}

impl SinkCursor {
    /// A cursor for sink `name` (1–64 of `A-Z a-z 0-9 _ -`: it names a file) at `seq`.
    pub fn new(name: &str, seq: u64) -> Result<Self, AuditError> {
        let valid = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(AuditError::InvalidSinkName);
        }
        Ok(Self {
            name: name.to_owned(),
            seq,
        })
    }

    /// The sink's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last seq delivered (0: nothing yet).
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The stored cursor of sink `name` in the log directory `dir`, if any.
    pub fn load(dir: &Path, name: &str) -> Result<Option<Self>, AuditError> {
        let probe = Self::new(name, 0)?;
        let path = dir.join(CURSOR_DIR).join(probe.file_name());
        let Some(bytes) = files::read_optional(&path)? else {
            return Ok(None);
        };
        let cursor: Self = serde_json::from_slice(&bytes).map_err(|_| AuditError::Corrupt {
            file: probe.file_name(),
            line: 1,
        })?;
        if cursor.name != probe.name {
            return Err(AuditError::Corrupt {
                file: probe.file_name(),
                line: 1,
            });
        }
        Ok(Some(cursor))
    }

    /// Stores the cursor durably (atomic replace).
    pub fn store(&self, dir: &Path) -> Result<(), AuditError> {
        let cursors = dir.join(CURSOR_DIR);
        files::ensure_dir(&cursors)?;
        let json = serde_json::to_vec(self).unwrap_or_default();
        files::replace_file(&cursors, &self.file_name(), &json, false)
    }

    fn file_name(&self) -> String {
        format!("{}.json", self.name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn cursors_persist_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(SinkCursor::load(dir.path(), "siem").unwrap(), None);
        SinkCursor::new("siem", 41)
            .unwrap()
            .store(dir.path())
            .unwrap();
        SinkCursor::new("siem", 42)
            .unwrap()
            .store(dir.path())
            .unwrap();
        let c = SinkCursor::load(dir.path(), "siem").unwrap().unwrap();
        assert_eq!((c.name(), c.seq()), ("siem", 42));
        for bad in ["", "../x", "a/b", "a b", &"x".repeat(65)] {
            assert!(matches!(
                SinkCursor::new(bad, 0),
                Err(AuditError::InvalidSinkName)
            ));
        }
        std::fs::write(dir.path().join(CURSOR_DIR).join("siem.json"), b"{").unwrap();
        assert!(SinkCursor::load(dir.path(), "siem").is_err());
    }
}
