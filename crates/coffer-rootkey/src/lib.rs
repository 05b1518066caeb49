//! The root of trust: where coffer's root key lives, and one interface to it.
//!
//! A data directory's root key is held by one provider, named in `DATA_DIR/root-key.json`
//! (see `descriptor`):
//! - **file** (the default): `root.key` (and `root-<n>.key` after rotations), hex, 0600;
//! - **passphrase**: random keys sealed under an Argon2id-derived KEK, inside the descriptor;
//! - **pkcs11**: AES-256 key objects that never leave a token (HSM, SoftHSM, YubiHSM, ...).
//!
//! A data dir with `root.key` and no descriptor (created before this crate) is a file store
//! whose only generation has label "root"; it gets a descriptor when a rotation begins.
//!
//! Keys come in generations: [`RootKeys`] seals with the current one and opens with whichever
//! sealed a blob (the envelope header names it). A rotation is [`begin_rotation`] (new
//! current generation, old ones retiring), the caller re-sealing everything, then
//! [`finish_rotation`] (retiring generations and their material destroyed).
//!
//! This crate owns the root key material and its files/objects. It must never expose key
//! bytes (there is no accessor), never put keys, passphrases or PINs in errors or `Debug`,
//! and never write anything in the data dir except `root-key.json`, its temp file and the
//! file provider's key files.

mod descriptor;
mod error;
mod file;
mod layout;
mod passphrase;
mod pkcs11;
mod software;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_crypto::{ROOT_KEY_FILE, SecretBytes, envelope_key_id, hex};
use zeroize::Zeroizing;

pub use descriptor::DESCRIPTOR_FILE;
pub use error::RootKeyError;

use descriptor::{Descriptor, Generation, KeyRef, State, TokenRef};
use passphrase::{KdfParams, Kek};

/// One root key generation. Never exposes its key bytes.
pub trait RootKey: Send + Sync + std::fmt::Debug {
    /// The label written into the header of everything this key seals: "root" for a
    /// legacy/first file key, `"root/<generation>"` otherwise.
    fn label(&self) -> &str;
    /// 1 for the first key of a store, N+1 for the key a rotation from N makes.
    fn generation(&self) -> u32;
    /// Seals with coffer-crypto's envelope layout (so `coffer_crypto::envelope_key_id` works
    /// on the result), AAD authenticated.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, RootKeyError>;
    /// Opens a blob this generation sealed, given the same `aad`. Any other blob or `aad`
    /// gives [`RootKeyError::Open`].
    fn open(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, RootKeyError>;
}

/// How to unlock (or create) a store's root key; built by the CLI from flags/env.
pub enum Unlock {
    File,
    Passphrase(Zeroizing<String>),
    Pkcs11(Pkcs11Config),
}

impl Unlock {
    /// The provider this unlock method is for.
    #[must_use]
    pub fn kind(&self) -> ProviderKind {
        match self {
            Unlock::File => ProviderKind::File,
            Unlock::Passphrase(_) => ProviderKind::Passphrase,
            Unlock::Pkcs11(_) => ProviderKind::Pkcs11,
        }
    }
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unlock::File => f.write_str("File"),
            Unlock::Passphrase(_) => f.write_str("Passphrase(<redacted>)"),
            Unlock::Pkcs11(cfg) => f.debug_tuple("Pkcs11").field(cfg).finish(),
        }
    }
}

/// Where a PKCS#11 root key lives. The module and token label are recorded in the
/// descriptor; the PIN never is.
pub struct Pkcs11Config {
    /// The token's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`. This one is used
    /// on open (the descriptor's is only a record), so a moved library needs no edit.
    pub module: PathBuf,
    /// The token's label. Empty on open means "the one the descriptor names".
    pub token_label: String,
    /// The token's user PIN.
    pub pin: Zeroizing<String>,
}

impl std::fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// What a data dir's descriptor says holds its root key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    File,
    Passphrase,
    Pkcs11,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProviderKind::File => "file",
            ProviderKind::Passphrase => "passphrase",
            ProviderKind::Pkcs11 => "pkcs11",
        })
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "file" => Ok(ProviderKind::File),
            "passphrase" => Ok(ProviderKind::Passphrase),
            "pkcs11" => Ok(ProviderKind::Pkcs11),
            other => Err(format!(
                "unknown root key provider {other:?}; expected file, passphrase or pkcs11"
            )),
        }
    }
}

/// Fixed plaintext of every generation's check blob.
const CHECK_PLAINTEXT: &[u8] = b"coffer root key check v1";

fn check_aad(label: &str, generation: u32) -> Vec<u8> {
    format!("coffer-rootkey/check|{label}|{generation}").into_bytes()
}

/// Provider state needed to add or destroy generations after opening.
#[derive(Clone)]
enum Backing {
    File,
    Passphrase(Arc<Kek>),
    Pkcs11(Arc<pkcs11::Token>),
}

/// The generations a store uses: seal with the current one, open with whichever sealed it.
/// Cheap to clone and share (`Arc`s inside).
#[derive(Clone)]
pub struct RootKeys {
    provider: ProviderKind,
    current: Arc<dyn RootKey>,
    /// Retiring generations, oldest first (empty unless a rotation is in progress).
    retiring: Vec<Arc<dyn RootKey>>,
    /// The descriptor these keys were opened from; `None` for a legacy (pre-descriptor) dir.
    descriptor: Option<Descriptor>,
    backing: Backing,
}

impl RootKeys {
    /// The generation new seals use.
    #[must_use]
    pub fn current(&self) -> Arc<dyn RootKey> {
        self.current.clone()
    }

    /// Seals under the current generation.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, RootKeyError> {
        self.current.seal(plaintext, aad)
    }

    /// Opens with the generation the blob's header names.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<SecretBytes, RootKeyError> {
        let label = envelope_key_id(blob).map_err(|_| RootKeyError::Open)?;
        self.generations()
            .find(|k| k.label() == label)
            .ok_or_else(|| RootKeyError::UnknownGeneration {
                label: label.to_string(),
            })?
            .open(blob, aad)
    }

    /// Whether `blob` was sealed by the current generation (so a rotation can skip it).
    #[must_use]
    pub fn is_current(&self, blob: &[u8]) -> bool {
        envelope_key_id(blob).is_ok_and(|label| label == self.current.label())
    }

    /// Whether older generations are still listed (a rotation began and has not finished).
    #[must_use]
    pub fn rotation_in_progress(&self) -> bool {
        !self.retiring.is_empty()
    }

    #[must_use]
    pub fn provider(&self) -> ProviderKind {
        self.provider
    }

    fn generations(&self) -> impl Iterator<Item = &Arc<dyn RootKey>> {
        std::iter::once(&self.current).chain(self.retiring.iter())
    }

    fn generation_numbers(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.generations().map(|k| k.generation()).collect();
        v.sort_unstable();
        v
    }
}

impl std::fmt::Debug for RootKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKeys")
            .field("provider", &self.provider)
            .field("current", &self.current.label())
            .field(
                "retiring",
                &self.retiring.iter().map(|k| k.label()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What kind of root key a data dir uses (reads the descriptor; legacy root.key → File).
/// `None` if not initialised.
pub fn provider_of(data_dir: &Path) -> Result<Option<ProviderKind>, RootKeyError> {
    if let Some(d) = descriptor::read(data_dir)? {
        return Ok(Some(d.provider));
    }
    Ok(legacy_key_exists(data_dir)?.then_some(ProviderKind::File))
}

fn legacy_key_exists(data_dir: &Path) -> Result<bool, RootKeyError> {
    let path = data_dir.join(ROOT_KEY_FILE);
    path.try_exists()
        .map_err(|e| RootKeyError::io("check for", &path, e))
}

/// Creates generation 1 for a new data dir (fails if one exists) and writes the descriptor.
pub fn create(data_dir: &Path, unlock: &Unlock) -> Result<RootKeys, RootKeyError> {
    create_with(data_dir, unlock, KdfParams::for_new_store())
}

/// [`create`] with Argon2 parameters that make a passphrase store fast to create and open
/// and worthless against guessing. For tests in other crates; never for real data.
#[doc(hidden)]
pub fn create_insecure_for_tests(
    data_dir: &Path,
    unlock: &Unlock,
) -> Result<RootKeys, RootKeyError> {
    create_with(data_dir, unlock, KdfParams::CHEAP)
}

fn create_with(data_dir: &Path, unlock: &Unlock, kdf: KdfParams) -> Result<RootKeys, RootKeyError> {
    let already = |found: &str| RootKeyError::AlreadyInitialised {
        data_dir: data_dir.display().to_string(),
        found: found.to_string(),
    };
    if descriptor::read(data_dir)?.is_some() {
        return Err(already(DESCRIPTOR_FILE));
    }
    if legacy_key_exists(data_dir)? {
        return Err(already(ROOT_KEY_FILE));
    }
    let provider = unlock.kind();
    let (key, key_ref, backing, token): (Arc<dyn RootKey>, _, _, _) = match unlock {
        Unlock::File => {
            let (key, key_ref) = file::create(data_dir, 1, false)?;
            (Arc::new(key), key_ref, Backing::File, None)
        }
        Unlock::Passphrase(pass) => {
            let kek = Kek::create(pass, kdf)?;
            let (key, key_ref) = kek.new_generation(1)?;
            (
                Arc::new(key),
                key_ref,
                Backing::Passphrase(Arc::new(kek)),
                None,
            )
        }
        Unlock::Pkcs11(cfg) => {
            let token = pkcs11::Token::open(cfg)?;
            let (key, key_ref) = token.generate(1)?;
            let token_ref = TokenRef {
                module: cfg.module.clone(),
                token_label: token.label().to_string(),
            };
            (
                Arc::new(key),
                key_ref,
                Backing::Pkcs11(token),
                Some(token_ref),
            )
        }
    };
    let d = Descriptor {
        format: descriptor::FORMAT,
        provider,
        pkcs11: token,
        generations: vec![generation_entry(&*key, key_ref, State::Current)?],
    };
    descriptor::write(data_dir, &d)?;
    Ok(RootKeys {
        provider,
        current: key,
        retiring: Vec::new(),
        descriptor: Some(d),
        backing,
    })
}

fn generation_entry(
    key: &dyn RootKey,
    key_ref: KeyRef,
    state: State,
) -> Result<Generation, RootKeyError> {
    let check = key.seal(CHECK_PLAINTEXT, &check_aad(key.label(), key.generation()))?;
    Ok(Generation {
        generation: key.generation(),
        label: key.label().to_string(),
        state,
        check: hex(&check),
        key: key_ref,
    })
}

/// Whether `key` is the key that sealed generation `g`'s check blob.
fn passes_check(key: &dyn RootKey, g: &Generation) -> bool {
    descriptor::unhex(&g.check)
        .and_then(|blob| key.open(&blob, &check_aad(&g.label, g.generation)).ok())
        .is_some_and(|plain| plain.expose() == CHECK_PLAINTEXT)
}

/// Opens every listed generation. Refuses, saying what to do, when `unlock` is the wrong kind
/// for this store or the wrong secret.
pub fn open(data_dir: &Path, unlock: &Unlock) -> Result<RootKeys, RootKeyError> {
    let Some(d) = descriptor::read(data_dir)? else {
        if !legacy_key_exists(data_dir)? {
            return Err(RootKeyError::NotInitialised {
                data_dir: data_dir.display().to_string(),
            });
        }
        if !matches!(unlock, Unlock::File) {
            return Err(RootKeyError::WrongProvider {
                store: ProviderKind::File,
                given: unlock.kind(),
            });
        }
        return Ok(RootKeys {
            provider: ProviderKind::File,
            current: Arc::new(file::load(data_dir, 1)?),
            retiring: Vec::new(),
            descriptor: None,
            backing: Backing::File,
        });
    };
    if d.provider != unlock.kind() {
        return Err(RootKeyError::WrongProvider {
            store: d.provider,
            given: unlock.kind(),
        });
    }
    let (mut keys, backing) = match unlock {
        Unlock::File => open_file(data_dir, &d)?,
        Unlock::Passphrase(pass) => open_passphrase(data_dir, &d, pass)?,
        Unlock::Pkcs11(cfg) => open_pkcs11(&d, cfg)?,
    };
    let current = keys.pop().ok_or_else(|| RootKeyError::Corrupt {
        path: descriptor::path(data_dir).display().to_string(),
        detail: "no generations listed".to_string(),
    })?;
    Ok(RootKeys {
        provider: d.provider,
        current,
        retiring: keys,
        descriptor: Some(d),
        backing,
    })
}

/// Every generation of a store, oldest first, and what is needed to add more.
type Opened = (Vec<Arc<dyn RootKey>>, Backing);

fn open_file(data_dir: &Path, d: &Descriptor) -> Result<Opened, RootKeyError> {
    let mut keys: Vec<Arc<dyn RootKey>> = Vec::new();
    for g in &d.generations {
        let key = file::load(data_dir, g.generation)?;
        if !passes_check(&key, g) {
            return Err(RootKeyError::WrongKey {
                what: format!(
                    "the key in {}",
                    data_dir.join(file::file_name(g.generation)).display()
                ),
                generation: g.generation,
            });
        }
        keys.push(Arc::new(key));
    }
    Ok((keys, Backing::File))
}

fn open_passphrase(data_dir: &Path, d: &Descriptor, pass: &str) -> Result<Opened, RootKeyError> {
    let corrupt = |detail: String| RootKeyError::Corrupt {
        path: descriptor::path(data_dir).display().to_string(),
        detail,
    };
    // One Argon2 run per distinct salt and parameters (normally one for all generations).
    let mut keks: Vec<Arc<Kek>> = Vec::new();
    let mut opened = Vec::new();
    for g in &d.generations {
        let KeyRef::Passphrase { kdf, sealed_key } = &g.key else {
            return Err(corrupt(format!(
                "generation {} is not sealed",
                g.generation
            )));
        };
        let kek = match keks.iter().find(|k| k.record() == kdf) {
            Some(k) => k.clone(),
            None => {
                let k = Arc::new(Kek::derive(pass, kdf)?);
                keks.push(k.clone());
                k
            }
        };
        opened.push((g, kek.open_generation(g.generation, sealed_key), kek));
    }
    if opened.iter().all(|(_, key, _)| key.is_none()) {
        return Err(RootKeyError::WrongPassphrase);
    }
    // The passphrase opened some generation, so a failure elsewhere is damage, not a typo.
    let mut keys: Vec<Arc<dyn RootKey>> = Vec::new();
    let mut current_kek = None;
    for (g, key, kek) in opened {
        let key = key.ok_or_else(|| {
            corrupt(format!(
                "the sealed key of generation {} does not open with the passphrase that opens the others",
                g.generation
            ))
        })?;
        if !passes_check(&key, g) {
            return Err(corrupt(format!(
                "the check blob of generation {} does not match its key",
                g.generation
            )));
        }
        keys.push(Arc::new(key));
        current_kek = Some(kek);
    }
    let kek = current_kek.ok_or_else(|| corrupt("no generations listed".to_string()))?;
    Ok((keys, Backing::Passphrase(kek)))
}

fn open_pkcs11(d: &Descriptor, cfg: &Pkcs11Config) -> Result<Opened, RootKeyError> {
    let recorded = d
        .pkcs11
        .as_ref()
        .map(|t| t.token_label.clone())
        .unwrap_or_default();
    if !cfg.token_label.is_empty() && cfg.token_label != recorded {
        return Err(RootKeyError::TokenMismatch {
            store: recorded,
            given: cfg.token_label.clone(),
        });
    }
    let token = pkcs11::Token::open(&Pkcs11Config {
        module: cfg.module.clone(),
        token_label: recorded,
        pin: cfg.pin.clone(),
    })?;
    let mut keys: Vec<Arc<dyn RootKey>> = Vec::new();
    for g in &d.generations {
        let key = token.load(g.generation, &g.key)?;
        if !passes_check(&key, g) {
            return Err(RootKeyError::WrongKey {
                what: format!(
                    "key object {:?} in PKCS#11 token {:?}",
                    pkcs11::key_label(g.generation),
                    token.label()
                ),
                generation: g.generation,
            });
        }
        keys.push(Arc::new(key));
    }
    Ok((keys, Backing::Pkcs11(token)))
}

/// The descriptor as it is on disk, or as a legacy dir implies it: file generation 1.
fn on_disk(data_dir: &Path, keys: &RootKeys) -> Result<Descriptor, RootKeyError> {
    if let Some(d) = descriptor::read(data_dir)? {
        return Ok(d);
    }
    if keys.descriptor.is_some()
        || keys.provider != ProviderKind::File
        || keys.current.generation() != 1
        || !legacy_key_exists(data_dir)?
    {
        return Err(stale(data_dir, keys, &[]));
    }
    Ok(Descriptor {
        format: descriptor::FORMAT,
        provider: ProviderKind::File,
        pkcs11: None,
        generations: vec![generation_entry(
            &*keys.current,
            KeyRef::File {
                file: file::file_name(1),
            },
            State::Current,
        )?],
    })
}

fn list(gens: &[u32]) -> String {
    gens.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn stale(data_dir: &Path, keys: &RootKeys, on_disk: &[u32]) -> RootKeyError {
    RootKeyError::Stale {
        path: descriptor::path(data_dir).display().to_string(),
        in_memory: list(&keys.generation_numbers()),
        on_disk: if on_disk.is_empty() {
            "none".to_string()
        } else {
            list(on_disk)
        },
    }
}

/// Starts a rotation: makes generation N+1, records it as current in the descriptor (old ones
/// stay, marked retiring) and returns the new set. If a rotation is already in progress,
/// returns the set unchanged (resume).
pub fn begin_rotation(data_dir: &Path, keys: &RootKeys) -> Result<RootKeys, RootKeyError> {
    let mut d = on_disk(data_dir, keys)?;
    if d.generation_numbers() != keys.generation_numbers() || d.provider != keys.provider {
        return Err(stale(data_dir, keys, &d.generation_numbers()));
    }
    if keys.rotation_in_progress() {
        return Ok(keys.clone());
    }
    let next = keys
        .current
        .generation()
        .checked_add(1)
        .ok_or(RootKeyError::Seal)?;
    let (key, key_ref): (Arc<dyn RootKey>, KeyRef) = match &keys.backing {
        Backing::File => {
            let (k, r) = file::create(data_dir, next, true)?;
            (Arc::new(k), r)
        }
        Backing::Passphrase(kek) => {
            let (k, r) = kek.new_generation(next)?;
            (Arc::new(k), r)
        }
        Backing::Pkcs11(token) => {
            let (k, r) = token.generate(next)?;
            (Arc::new(k), r)
        }
    };
    for g in &mut d.generations {
        g.state = State::Retiring;
    }
    d.generations
        .push(generation_entry(&*key, key_ref, State::Current)?);
    descriptor::write(data_dir, &d)?;
    Ok(RootKeys {
        provider: keys.provider,
        current: key,
        // No rotation was in progress (checked above), so the old current is the only one.
        retiring: vec![keys.current.clone()],
        descriptor: Some(d),
        backing: keys.backing.clone(),
    })
}

/// Ends a rotation after the caller re-sealed everything: drops retiring generations from
/// the descriptor, then destroys their material (key file / token object; a passphrase
/// store's sealed blob goes with the descriptor entry). Returns the new set. Safe to call
/// again with the same `keys` if destroying failed after the descriptor was written.
pub fn finish_rotation(data_dir: &Path, keys: &RootKeys) -> Result<RootKeys, RootKeyError> {
    let mut d = on_disk(data_dir, keys)?;
    let resumed = d.generation_numbers() == [keys.current.generation()];
    if !resumed && d.generation_numbers() != keys.generation_numbers() {
        return Err(stale(data_dir, keys, &d.generation_numbers()));
    }
    if !keys.rotation_in_progress() {
        return Ok(keys.clone());
    }
    // What to destroy comes from the set the caller holds: after a crash between the two
    // steps below, the descriptor no longer lists it.
    let retired: Vec<Generation> = keys
        .descriptor
        .as_ref()
        .map(|kd| {
            kd.generations
                .iter()
                .filter(|g| g.generation != keys.current.generation())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if !resumed {
        d.generations
            .retain(|g| g.generation == keys.current.generation());
        descriptor::write(data_dir, &d)?;
    }
    // The descriptor no longer names them, so destroying now cannot strand the store.
    for g in &retired {
        match &keys.backing {
            Backing::File => file::destroy(data_dir, g.generation)?,
            Backing::Passphrase(_) => {}
            Backing::Pkcs11(token) => token.destroy(&g.key)?,
        }
    }
    Ok(RootKeys {
        provider: keys.provider,
        current: keys.current.clone(),
        retiring: Vec::new(),
        descriptor: Some(d),
        backing: keys.backing.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    #[test]
    fn keys_and_errors_cross_threads() {
        shareable::<RootKeys>();
        shareable::<Arc<dyn RootKey>>();
        shareable::<RootKeyError>();
    }

    #[test]
    fn provider_names_round_trip() {
        for kind in [
            ProviderKind::File,
            ProviderKind::Passphrase,
            ProviderKind::Pkcs11,
        ] {
            assert_eq!(kind.to_string().parse::<ProviderKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert!("hsm".parse::<ProviderKind>().is_err());
    }
}
