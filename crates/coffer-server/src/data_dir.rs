//! How the server tells an initialised data directory from one that is not, before it opens
//! anything, so the operator gets "run `coffer init`" rather than a store error.

use std::io::ErrorKind;
use std::path::Path;

use coffer_crypto::ROOT_KEY_FILE;
use coffer_rootkey::DESCRIPTOR_FILE;

use crate::error::ServerError;

/// Whether `data_dir` has been made by `coffer init` (it holds the root key file or the root
/// key descriptor, which `Coffer::init` writes first). A directory that does not exist is not initialised; one that
/// cannot be read is an error.
pub fn is_initialised(data_dir: &Path) -> Result<bool, ServerError> {
    let unreadable = |source| ServerError::DataDirUnreadable {
        dir: data_dir.to_path_buf(),
        source,
    };
    match std::fs::metadata(data_dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(unreadable(std::io::Error::new(
                ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(unreadable(e)),
    }
    // Listing the directory proves it is readable (metadata on the key file alone succeeds in
    // a directory we can search but not list).
    std::fs::read_dir(data_dir).map_err(unreadable)?;
    // A file root key is `root.key` until its first rotation; every other store (and a file
    // store after a rotation) has the descriptor.
    for name in [DESCRIPTOR_FILE, ROOT_KEY_FILE] {
        match std::fs::metadata(data_dir.join(name)) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(unreadable(e)),
        }
    }
    Ok(false)
}

pub(crate) fn require_initialised(data_dir: &Path) -> Result<(), ServerError> {
    if is_initialised(data_dir)? {
        Ok(())
    } else {
        Err(ServerError::NotInitialised {
            dir: data_dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_initialised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_initialised(&dir.path().join("absent")).unwrap());
        assert!(!is_initialised(dir.path()).unwrap());
        std::fs::write(dir.path().join(ROOT_KEY_FILE), b"k").unwrap();
        assert!(is_initialised(dir.path()).unwrap());
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            is_initialised(&file),
            Err(ServerError::DataDirUnreadable { .. })
        ));
    }
}
