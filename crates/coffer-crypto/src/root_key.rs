//! The root key file: 32 random bytes in `DATA_DIR/root.key`, mode 0600, never in the store.
//!
//! The file holds the key hex-encoded on one line so that an operator can back it up with
//! ordinary tools. Loading refuses a file that others can read.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use crate::{SymmetricKey, hex};

/// File name of the root key inside the data directory.
pub const ROOT_KEY_FILE: &str = "root.key";

/// Why the root key file could not be created or read. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum RootKeyError {
    #[error("cannot read root key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create root key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("root key file {path} already exists; refusing to overwrite it")]
    Exists { path: String },
    #[error(
        "root key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
    #[error("root key file {path} is malformed: expected 64 hexadecimal characters")]
    Malformed { path: String },
    #[error("cannot generate a root key: {0}")]
    Crypto(#[from] crate::CryptoError),
}

impl SymmetricKey {
    /// Generates a new root key and writes it to `path` with mode 0600. Fails if the file exists.
    pub fn create_root_key_file(path: &Path) -> Result<SymmetricKey, RootKeyError> {
        let shown = path.display().to_string();
        let key = SymmetricKey::generate()?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    RootKeyError::Exists {
                        path: shown.clone(),
                    }
                } else {
                    RootKeyError::Write {
                        path: shown.clone(),
                        source,
                    }
                }
            })?;
        let mut line = Zeroizing::new(hex(key.expose()));
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| RootKeyError::Write {
                path: shown,
                source,
            })?;
        Ok(key)
    }

    /// Reads the root key from `path`, refusing files readable by group or others.
    pub fn load_root_key_file(path: &Path) -> Result<SymmetricKey, RootKeyError> {
        let shown = path.display().to_string();
        let meta = fs::metadata(path).map_err(|source| RootKeyError::Read {
            path: shown.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(RootKeyError::Permissions { path: shown, mode });
        }
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| RootKeyError::Read {
                    path: shown.clone(),
                    source,
                })?,
            );
        let bytes = decode_hex(text.trim()).ok_or(RootKeyError::Malformed {
            path: shown.clone(),
        })?;
        SymmetricKey::from_bytes(&bytes).map_err(|_| RootKeyError::Malformed { path: shown })
    }
}

fn decode_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if s.len() != 64 {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(32));
    for pair in s.as_bytes().chunks(2) {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out.push(u8::try_from(hi * 16 + lo).ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_file_is_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOT_KEY_FILE);
        let key = SymmetricKey::create_root_key_file(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = SymmetricKey::load_root_key_file(&path).unwrap();
        assert_eq!(loaded.expose(), key.expose());
        assert!(matches!(
            SymmetricKey::create_root_key_file(&path),
            Err(RootKeyError::Exists { .. })
        ));
    }

    #[test]
    fn loose_permissions_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOT_KEY_FILE);
        SymmetricKey::create_root_key_file(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = SymmetricKey::load_root_key_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");

        let bad = dir.path().join("bad.key");
        fs::write(&bad, "zz").unwrap();
        fs::set_permissions(&bad, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            SymmetricKey::load_root_key_file(&bad),
            Err(RootKeyError::Malformed { .. })
        ));
        assert!(matches!(
            SymmetricKey::load_root_key_file(&dir.path().join("missing")),
            Err(RootKeyError::Read { .. })
        ));
    }
}
