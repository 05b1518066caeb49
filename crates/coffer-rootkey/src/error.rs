//! `RootKeyError`: every way finding, unlocking, using or rotating the root key can fail.
//!
//! Owns the wording operators read when coffer will not start, so each message says what to
//! do next. Must never carry key bytes, passphrases, PINs or plaintext: variants hold paths,
//! labels, generation numbers and the text of library errors (which never include them).

use crate::ProviderKind;

/// How to start coffer for each kind of store, in one place so the CLI's flags and these
/// messages cannot drift apart silently.
pub(crate) fn unlock_hint(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::File => {
            "this store's root key is the file root.key in its data directory; start coffer with --root-key file (the default)"
        }
        ProviderKind::Passphrase => {
            "this store's root key is protected by a passphrase; start coffer with --root-key passphrase and COFFER_ROOT_PASSPHRASE"
        }
        ProviderKind::Pkcs11 => {
            "this store's root key is held in a PKCS#11 token; start coffer with --root-key pkcs11 and COFFER_PKCS11_PIN"
        }
    }
}

/// Why the root key could not be created, unlocked, used or rotated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootKeyError {
    #[error("{data_dir} has no root key yet; run `coffer init` first")]
    NotInitialised { data_dir: String },
    #[error("{data_dir} already has a root key ({found}); refusing to create another")]
    AlreadyInitialised { data_dir: String, found: String },
    /// The store's descriptor names another provider than the one coffer was started with.
    #[error("{}", unlock_hint(*store))]
    WrongProvider {
        store: ProviderKind,
        given: ProviderKind,
    },
    #[error(
        "the passphrase does not unlock this store; check COFFER_ROOT_PASSPHRASE (the passphrase given when the store was created)"
    )]
    WrongPassphrase,
    #[error("the passphrase is empty; choose a non-empty passphrase")]
    EmptyPassphrase,
    #[error(
        "PKCS#11 token {token:?} refused the PIN; check COFFER_PKCS11_PIN (the token's user PIN)"
    )]
    WrongPin { token: String },
    #[error(
        "the user PIN of PKCS#11 token {token:?} is locked after too many wrong attempts; unlock it with the token's administration tool"
    )]
    PinLocked { token: String },
    /// The key material was found and usable, but it is not the key the store was created
    /// with (its check blob does not open).
    #[error(
        "{what} is not the root key this store was created with (generation {generation}); restore the right one from backup"
    )]
    WrongKey { what: String, generation: u32 },
    #[error("the root key descriptor {path} is damaged ({detail}); restore it from backup")]
    Corrupt { path: String, detail: String },
    #[error(
        "{path} was written by a newer coffer (format {found}, this build reads format {supported}); upgrade coffer"
    )]
    NewerFormat {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("{path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    /// A blob names a root key generation this set does not hold.
    #[error(
        "this ciphertext was sealed by root key {label:?}, which this store no longer has or never had (a finished rotation, or data from another store)"
    )]
    UnknownGeneration { label: String },
    #[error(
        "the ciphertext could not be decrypted: it is truncated, tampered with, or bound to other associated data"
    )]
    Open,
    #[error("the plaintext could not be encrypted")]
    Seal,
    /// The in-memory set no longer matches the descriptor on disk (another rotation step ran).
    #[error(
        "the root keys in memory (generations {in_memory}) no longer match {path} (generations {on_disk}); reopen the root key and retry"
    )]
    Stale {
        path: String,
        in_memory: String,
        on_disk: String,
    },
    #[error(transparent)]
    KeyFile(#[from] coffer_crypto::RootKeyError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("cryptographic failure: {0}")]
    Crypto(#[from] coffer_crypto::CryptoError),
    #[error("cannot derive a key from the passphrase: {detail}")]
    Kdf { detail: String },
    #[error(
        "cannot use PKCS#11 module {module}: {detail}; check the module path (is the token's library installed?)"
    )]
    Module { module: String, detail: String },
    #[error(
        "no initialised PKCS#11 token labelled {token:?} in module {module}; check the token label or initialise the token with its tool"
    )]
    TokenNotFound { token: String, module: String },
    #[error(
        "this store's root key is in PKCS#11 token {store:?}, not {given:?}; start coffer with the token label {store:?}"
    )]
    TokenMismatch { store: String, given: String },
    #[error(
        "PKCS#11 token {token:?} has no key object {key_label:?} with this store's id; was the token re-initialised or the key deleted? Restore the token from backup"
    )]
    KeyObjectMissing { token: String, key_label: String },
    #[error("PKCS#11 token {token:?}: cannot {action}: {detail}")]
    Token {
        token: String,
        action: &'static str,
        detail: String,
    },
}

impl RootKeyError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            source,
        }
    }
}
