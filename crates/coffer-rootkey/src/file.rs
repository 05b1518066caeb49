//! The file provider: generation 1 is `DATA_DIR/root.key` (the pre-descriptor layout, label
//! "root"), generation n > 1 is `DATA_DIR/root-<n>.key`; hex, mode 0600, written and read by
//! coffer-crypto (which refuses loose permissions).
//!
//! Owns only those file names and their lifecycle. Must never read or delete any other file:
//! names come from the generation number, never from the descriptor's text.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use coffer_crypto::{ROOT_KEY_FILE, RootKeyError as KeyFileError, SymmetricKey};

use crate::descriptor::{self, KeyRef};
use crate::software::SoftwareKey;
use crate::{ProviderKind, RootKeyError};

pub(crate) fn file_name(generation: u32) -> String {
    if generation == 1 {
        ROOT_KEY_FILE.to_string()
    } else {
        format!("root-{generation}.key")
    }
}

fn label(generation: u32) -> String {
    descriptor::expected_label(ProviderKind::File, generation)
}

/// Creates the key file of `generation`. With `adopt`, an existing file of that name is
/// loaded instead: it can only be left by a rotation that crashed before recording it, so
/// nothing was ever sealed with it and using it is as good as a fresh key.
pub(crate) fn create(
    data_dir: &Path,
    generation: u32,
    adopt: bool,
) -> Result<(SoftwareKey, KeyRef), RootKeyError> {
    let name = file_name(generation);
    let path = data_dir.join(&name);
    let key = match SymmetricKey::create_root_key_file(&path) {
        Ok(k) => k,
        Err(KeyFileError::Exists { .. }) if adopt => SymmetricKey::load_root_key_file(&path)?,
        Err(e) => return Err(e.into()),
    };
    // The file must be durable before a descriptor that names it is.
    descriptor::sync_dir(data_dir)?;
    Ok((
        SoftwareKey::new(label(generation), generation, key),
        KeyRef::File { file: name },
    ))
}

pub(crate) fn load(data_dir: &Path, generation: u32) -> Result<SoftwareKey, RootKeyError> {
    let key = SymmetricKey::load_root_key_file(&data_dir.join(file_name(generation)))?;
    Ok(SoftwareKey::new(label(generation), generation, key))
}

/// Deletes a retired generation's file; already gone is fine (a resumed finish).
pub(crate) fn destroy(data_dir: &Path, generation: u32) -> Result<(), RootKeyError> {
    let path = data_dir.join(file_name(generation));
    // Best effort against recovery from simple filesystems; copy-on-write filesystems and
    // SSDs may keep old blocks regardless, which is why the file was 0600 all along.
    if let Ok(meta) = fs::metadata(&path)
        && let Ok(mut f) = OpenOptions::new().write(true).open(&path)
    {
        let zeros = vec![0u8; usize::try_from(meta.len()).unwrap_or(0)];
        let _ = f.write_all(&zeros).and_then(|()| f.sync_all());
    }
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RootKeyError::io("delete retired root key file", &path, e)),
    }
    descriptor::sync_dir(data_dir)
}
