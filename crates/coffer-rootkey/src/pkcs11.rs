//! The PKCS#11 provider: each generation is an AES-256 secret key object generated inside a
//! token (persistent, sensitive, never extractable), labelled `coffer-root-<n>` with a random
//! CKA_ID recorded in the descriptor; sealing and opening run CKM_AES_GCM inside the token and
//! produce coffer-crypto's envelope layout (see `layout`).
//!
//! Owns the process-wide PKCS#11 state: a module may be initialised only once per process and
//! a token's login is shared by all sessions of the process, so modules and logged-in
//! sessions are kept in registries keyed by canonical module path (and token label) and
//! shared by every store using them. Must never log or keep the PIN (only a keyed digest, to
//! refuse a second open with another PIN while logged in), and never ask the token for key
//! bytes. A `Session` is not `Sync`, so each token's one session sits behind a `Mutex`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use coffer_crypto::{SecretBytes, constant_time_eq, fill_random, hex, hmac_sha256};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;

use crate::descriptor::{self, KeyRef};
use crate::layout::{self, NONCE_LEN, TAG_LEN};
use crate::{Pkcs11Config, ProviderKind, RootKey, RootKeyError};

const KEY_ID_LEN: usize = 16;

pub(crate) fn key_label(generation: u32) -> String {
    format!("coffer-root-{generation}")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves nothing half-updated that matters here: the maps
    // only gain or replace entries, and a session has no Rust-side state.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(Mutex::default)
}

type TokenKey = (PathBuf, String);

fn tokens() -> &'static Mutex<HashMap<TokenKey, Weak<Token>>> {
    static TOKENS: OnceLock<Mutex<HashMap<TokenKey, Weak<Token>>>> = OnceLock::new();
    TOKENS.get_or_init(Mutex::default)
}

/// A per-process random key for the PIN digest, so the digest is useless outside this process.
fn pin_digest(pin: &str) -> Result<[u8; 32], RootKeyError> {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = match KEY.get() {
        Some(k) => k,
        None => {
            let mut k = [0u8; 32];
            fill_random(&mut k)?;
            KEY.get_or_init(|| k)
        }
    };
    Ok(hmac_sha256(key, pin.as_bytes()))
}

fn detail(e: &CkError) -> String {
    e.to_string()
}

/// One logged-in session to one token, shared by every generation (and store) using it.
pub(crate) struct Token {
    module: PathBuf,
    label: String,
    session: Mutex<Session>,
    pin_digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module (once per process), finds the token by label and logs in with the PIN.
    pub(crate) fn open(cfg: &Pkcs11Config) -> Result<Arc<Token>, RootKeyError> {
        let module_err = |detail: String| RootKeyError::Module {
            module: cfg.module.display().to_string(),
            detail,
        };
        let canonical = std::fs::canonicalize(&cfg.module)
            .map_err(|e| module_err(format!("cannot find it: {e}")))?;
        let digest = pin_digest(&cfg.pin)?;
        let key = (canonical.clone(), cfg.token_label.clone());

        let mut registry = lock(tokens());
        if let Some(token) = registry.get(&key).and_then(Weak::upgrade) {
            // Already logged in by this process; the token cannot check the PIN again, we can.
            if !constant_time_eq(&token.pin_digest, &digest) {
                return Err(RootKeyError::WrongPin {
                    token: cfg.token_label.clone(),
                });
            }
            return Ok(token);
        }

        let ctx = module(&canonical).map_err(|e| module_err(detail(&e)))?;
        let not_found = || RootKeyError::TokenNotFound {
            token: cfg.token_label.clone(),
            module: cfg.module.display().to_string(),
        };
        let token_err = |action: &'static str, e: CkError| RootKeyError::Token {
            token: cfg.token_label.clone(),
            action,
            detail: detail(&e),
        };
        let mut slot = None;
        for s in ctx
            .get_slots_with_initialized_token()
            .map_err(|e| token_err("list slots", e))?
        {
            let info = ctx
                .get_token_info(s)
                .map_err(|e| token_err("read token info", e))?;
            if info.label() == cfg.token_label {
                slot = Some(s);
                break;
            }
        }
        let slot = slot.ok_or_else(not_found)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| token_err("open a session", e))?;
        let pin = AuthPin::from(cfg.pin.as_str());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) => {}
            // Logged in by something else in this process: log in again so the PIN is checked.
            Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                session.logout().map_err(|e| token_err("log out", e))?;
                session
                    .login(UserType::User, Some(&pin))
                    .map_err(|e| login_error(cfg, e))?;
            }
            Err(e) => return Err(login_error(cfg, e)),
        }
        let token = Arc::new(Token {
            module: cfg.module.clone(),
            label: cfg.token_label.clone(),
            session: Mutex::new(session),
            pin_digest: digest,
        });
        registry.retain(|_, w| w.strong_count() > 0);
        registry.insert(key, Arc::downgrade(&token));
        Ok(token)
    }

    fn err(&self, action: &'static str, e: &CkError) -> RootKeyError {
        RootKeyError::Token {
            token: self.label.clone(),
            action,
            detail: detail(e),
        }
    }

    /// Generates a new generation's key object inside the token.
    pub(crate) fn generate(
        self: &Arc<Self>,
        generation: u32,
    ) -> Result<(TokenRootKey, KeyRef), RootKeyError> {
        let mut id = [0u8; KEY_ID_LEN];
        fill_random(&mut id)?;
        let key_label = key_label(generation);
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Modifiable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(key_label.clone().into_bytes()),
            Attribute::Id(id.to_vec()),
        ];
        let handle = lock(&self.session)
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| self.err("generate an AES key", &e))?;
        Ok((
            TokenRootKey::new(self.clone(), generation, handle),
            KeyRef::Pkcs11 {
                key_label,
                key_id: hex(&id),
            },
        ))
    }

    fn find(&self, key_ref: &KeyRef) -> Result<Option<ObjectHandle>, RootKeyError> {
        let KeyRef::Pkcs11 { key_label, key_id } = key_ref else {
            return Err(RootKeyError::Token {
                token: self.label.clone(),
                action: "find the key object",
                detail: "the descriptor names no token key".to_string(),
            });
        };
        let id = descriptor::unhex(key_id).unwrap_or_default();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(key_label.clone().into_bytes()),
            Attribute::Id(id),
        ];
        let found = lock(&self.session)
            .find_objects(&template)
            .map_err(|e| self.err("search for key objects", &e))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(RootKeyError::Token {
                token: self.label.clone(),
                action: "find the key object",
                detail: format!("several objects are labelled {key_label:?} with this store's id"),
            }),
        }
    }

    /// The key object of an existing generation.
    pub(crate) fn load(
        self: &Arc<Self>,
        generation: u32,
        key_ref: &KeyRef,
    ) -> Result<TokenRootKey, RootKeyError> {
        let handle = self
            .find(key_ref)?
            .ok_or_else(|| RootKeyError::KeyObjectMissing {
                token: self.label.clone(),
                key_label: key_label(generation),
            })?;
        Ok(TokenRootKey::new(self.clone(), generation, handle))
    }

    /// Destroys a retired generation's key object; already gone is fine (a resumed finish).
    pub(crate) fn destroy(&self, key_ref: &KeyRef) -> Result<(), RootKeyError> {
        if let Some(handle) = self.find(key_ref)? {
            lock(&self.session)
                .destroy_object(handle)
                .map_err(|e| self.err("destroy the retired key object", &e))?;
        }
        Ok(())
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }
}

fn login_error(cfg: &Pkcs11Config, e: CkError) -> RootKeyError {
    let token = cfg.token_label.clone();
    match e {
        CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange | RvError::PinInvalid, _) => {
            RootKeyError::WrongPin { token }
        }
        CkError::Pkcs11(RvError::PinLocked, _) => RootKeyError::PinLocked { token },
        other => RootKeyError::Token {
            token,
            action: "log in",
            detail: detail(&other),
        },
    }
}

/// The module's context, loading and initialising it on first use in this process.
fn module(canonical: &PathBuf) -> Result<Pkcs11, CkError> {
    let mut map = lock(modules());
    if let Some(ctx) = map.get(canonical) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(canonical)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(e),
    }
    // Kept for the life of the process: finalising would log out every other user of it.
    map.insert(canonical.clone(), ctx.clone());
    Ok(ctx)
}

/// A root key generation that lives in a token.
pub(crate) struct TokenRootKey {
    token: Arc<Token>,
    label: String,
    generation: u32,
    handle: ObjectHandle,
}

impl TokenRootKey {
    fn new(token: Arc<Token>, generation: u32, handle: ObjectHandle) -> Self {
        Self {
            token,
            label: descriptor::expected_label(ProviderKind::Pkcs11, generation),
            generation,
            handle,
        }
    }
}

impl std::fmt::Debug for TokenRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRootKey")
            .field("label", &self.label)
            .field("generation", &self.generation)
            .field("token", &self.token.label)
            .finish()
    }
}

impl RootKey for TokenRootKey {
    fn label(&self) -> &str {
        &self.label
    }

    fn generation(&self) -> u32 {
        self.generation
    }

    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, RootKeyError> {
        let header = layout::header(&self.label)?;
        let full_aad = layout::joined_aad(&header, aad);
        // The IV comes from our CSPRNG, not the token's, as with every other envelope.
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, &full_aad, 128.into())
            .map_err(|e| self.token.err("prepare AES-GCM", &e))?;
        let body = lock(&self.token.session)
            .encrypt(&Mechanism::AesGcm(params), self.handle, plaintext)
            .map_err(|e| self.token.err("encrypt with the root key", &e))?;
        if body.len() != plaintext.len() + TAG_LEN {
            return Err(RootKeyError::Seal);
        }
        Ok([header.as_slice(), &nonce, &body].concat())
    }

    fn open(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, RootKeyError> {
        let parts = layout::parse(blob)?;
        if parts.label != self.label {
            return Err(RootKeyError::Open);
        }
        let full_aad = layout::joined_aad(parts.header, aad);
        let mut iv = [0u8; NONCE_LEN];
        iv.copy_from_slice(parts.nonce);
        let params = GcmParams::new(&mut iv, &full_aad, 128.into())
            .map_err(|e| self.token.err("prepare AES-GCM", &e))?;
        match lock(&self.token.session).decrypt(&Mechanism::AesGcm(params), self.handle, parts.body)
        {
            Ok(plain) => Ok(SecretBytes::new(plain)),
            Err(e) if is_token_failure(&e) => Err(self.token.err("decrypt with the root key", &e)),
            // Tokens differ in the code they return for a failed tag; anything that is not
            // the token itself failing means the blob or its AAD is wrong.
            Err(_) => Err(RootKeyError::Open),
        }
    }
}

/// Errors that mean the token or session is unusable, as opposed to a bad ciphertext.
fn is_token_failure(e: &CkError) -> bool {
    match e {
        CkError::Pkcs11(rv, _) => matches!(
            rv,
            RvError::DeviceError
                | RvError::DeviceMemory
                | RvError::DeviceRemoved
                | RvError::HostMemory
                | RvError::TokenNotPresent
                | RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::CryptokiNotInitialized
                | RvError::OperationActive
        ),
        _ => true,
    }
}
