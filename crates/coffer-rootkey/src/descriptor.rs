//! The descriptor `DATA_DIR/root-key.json`: which provider holds the root key and which
//! generations exist, as data.
//!
//! Owns the file's format, its validation, mode 0600 and its atomic replacement (temp file,
//! fsync, rename, fsync of the directory), so a crash leaves either the old or the new
//! descriptor, never half of one. Must never hold key bytes, passphrases or PINs: only file
//! names, token references, KDF salts and parameters, and blobs sealed under a key (sealed
//! generation keys, check blobs). Those still allow offline passphrase guessing, hence 0600
//! and no `Debug`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ProviderKind, RootKeyError};

/// File name of the descriptor inside the data directory.
pub const DESCRIPTOR_FILE: &str = "root-key.json";
/// The format this build writes and reads.
pub(crate) const FORMAT: u32 = 1;
const TEMP_FILE: &str = "root-key.json.tmp";

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Descriptor {
    pub format: u32,
    pub provider: ProviderKind,
    /// Where the token is (PKCS#11 stores only). Never the PIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<TokenRef>,
    /// Ascending by generation; the last one is current.
    pub generations: Vec<Generation>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRef {
    pub module: PathBuf,
    pub token_label: String,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct Generation {
    pub generation: u32,
    pub label: String,
    pub state: State,
    /// Hex of [`crate::CHECK_PLAINTEXT`] sealed by this generation (AAD names the generation):
    /// tells a wrong key, passphrase or token apart from a damaged descriptor.
    pub check: String,
    pub key: KeyRef,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    Current,
    Retiring,
}

/// Where one generation's key material is. The variant always matches the provider.
#[derive(Serialize, Deserialize, Clone)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum KeyRef {
    File {
        file: String,
    },
    Passphrase {
        kdf: KdfRecord,
        /// Hex of the 32-byte generation key sealed under the passphrase-derived KEK.
        sealed_key: String,
    },
    Pkcs11 {
        key_label: String,
        /// Hex of the random CKA_ID that tells this store's object apart from another
        /// store's object with the same label in the same token.
        key_id: String,
    },
}

/// Argon2id parameters and salt for deriving the KEK.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct KdfRecord {
    pub algorithm: String,
    pub salt: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

/// Label written into every envelope a generation seals: "root" for the first file key (so
/// every existing ciphertext of a pre-descriptor store keeps its label), "root/<n>" otherwise.
pub(crate) fn expected_label(provider: ProviderKind, generation: u32) -> String {
    if provider == ProviderKind::File && generation == 1 {
        "root".to_string()
    } else {
        format!("root/{generation}")
    }
}

pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(DESCRIPTOR_FILE)
}

impl Descriptor {
    pub fn generation_numbers(&self) -> Vec<u32> {
        self.generations.iter().map(|g| g.generation).collect()
    }

    fn corrupt(path: &Path, detail: impl Into<String>) -> RootKeyError {
        RootKeyError::Corrupt {
            path: path.display().to_string(),
            detail: detail.into(),
        }
    }

    /// Structural rules; anything else in the file is refused rather than guessed at.
    fn validate(&self, path: &Path) -> Result<(), RootKeyError> {
        let bad = |d: String| Self::corrupt(path, d);
        if self.generations.is_empty() {
            return Err(bad("no generations listed".into()));
        }
        if (self.provider == ProviderKind::Pkcs11) != self.pkcs11.is_some() {
            return Err(bad("the pkcs11 section does not match the provider".into()));
        }
        let last = self.generations.len() - 1;
        let mut previous = 0u32;
        for (i, g) in self.generations.iter().enumerate() {
            if g.generation <= previous {
                return Err(bad("generations are not in ascending order".into()));
            }
            previous = g.generation;
            let want_state = if i == last {
                State::Current
            } else {
                State::Retiring
            };
            if g.state != want_state {
                return Err(bad(format!(
                    "generation {} has the wrong state (only the newest is current)",
                    g.generation
                )));
            }
            if g.label != expected_label(self.provider, g.generation) {
                return Err(bad(format!(
                    "generation {} has label {:?}",
                    g.generation, g.label
                )));
            }
            if unhex(&g.check).is_none() {
                return Err(bad(format!(
                    "generation {} has a malformed check blob",
                    g.generation
                )));
            }
            let fits = match (&g.key, self.provider) {
                (KeyRef::File { file }, ProviderKind::File) => {
                    // Only our own names: the descriptor must not point coffer at other files.
                    *file == crate::file::file_name(g.generation)
                }
                (KeyRef::Passphrase { kdf, sealed_key }, ProviderKind::Passphrase) => {
                    unhex(sealed_key).is_some() && unhex(&kdf.salt).is_some()
                }
                (KeyRef::Pkcs11 { key_label, key_id }, ProviderKind::Pkcs11) => {
                    *key_label == crate::pkcs11::key_label(g.generation) && unhex(key_id).is_some()
                }
                _ => false,
            };
            if !fits {
                return Err(bad(format!(
                    "generation {} has a malformed or foreign key reference",
                    g.generation
                )));
            }
        }
        Ok(())
    }
}

/// Reads and validates the descriptor; `None` if the data dir has none.
pub(crate) fn read(data_dir: &Path) -> Result<Option<Descriptor>, RootKeyError> {
    let path = path(data_dir);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RootKeyError::io("read", &path, e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(RootKeyError::Permissions {
            path: path.display().to_string(),
            mode,
        });
    }
    let text = fs::read(&path).map_err(|e| RootKeyError::io("read", &path, e))?;

    // The format number first, so a newer file gets "upgrade coffer" rather than "damaged".
    #[derive(Deserialize)]
    struct Version {
        format: u32,
    }
    let version: Version = serde_json::from_slice(&text)
        .map_err(|e| Descriptor::corrupt(&path, format!("not a descriptor: {e}")))?;
    if version.format != FORMAT {
        if version.format > FORMAT {
            return Err(RootKeyError::NewerFormat {
                path: path.display().to_string(),
                found: version.format,
                supported: FORMAT,
            });
        }
        return Err(Descriptor::corrupt(
            &path,
            format!("unknown format {}", version.format),
        ));
    }
    let d: Descriptor =
        serde_json::from_slice(&text).map_err(|e| Descriptor::corrupt(&path, e.to_string()))?;
    d.validate(&path)?;
    Ok(Some(d))
}

/// Replaces the descriptor atomically and durably.
pub(crate) fn write(data_dir: &Path, d: &Descriptor) -> Result<(), RootKeyError> {
    let final_path = path(data_dir);
    let temp = data_dir.join(TEMP_FILE);
    let mut text = serde_json::to_vec_pretty(d)
        .map_err(|e| Descriptor::corrupt(&final_path, e.to_string()))?;
    text.push(b'\n');

    // A temp file left by a crash may have any mode; start from a fresh 0600 file.
    match fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RootKeyError::io("remove", &temp, e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| RootKeyError::io("create", &temp, e))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(|e| RootKeyError::io("write", &temp, e))?;
    drop(f);
    fs::rename(&temp, &final_path).map_err(|e| RootKeyError::io("replace", &final_path, e))?;
    sync_dir(data_dir)
}

/// Makes a rename or unlink in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RootKeyError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RootKeyError::io("sync", dir, e))
}

pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex(&coffer_crypto::hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("").unwrap(), Vec::<u8>::new());
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn labels_keep_legacy_root_for_the_first_file_key_only() {
        assert_eq!(expected_label(ProviderKind::File, 1), "root");
        assert_eq!(expected_label(ProviderKind::File, 2), "root/2");
        assert_eq!(expected_label(ProviderKind::Passphrase, 1), "root/1");
        assert_eq!(expected_label(ProviderKind::Pkcs11, 3), "root/3");
    }
}
