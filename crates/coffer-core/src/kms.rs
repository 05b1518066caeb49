//! The key service (AWS KMS): symmetric encryption keys with their life cycle, key policies,
//! aliases, tags and material rotation; the cryptographic operations; and the AWS managed key
//! `alias/aws/secretsmanager` that Secrets Manager uses when a secret names no key.
//!
//! Every use of a key is authorized against its key policy, which gates the caller's IAM
//! policies (see `authz::decide_key`). Key material lives in memory only inside
//! [`LoadedKey`], unwrapped from the root key; the store holds it sealed. A ciphertext names
//! its key and material in the envelope header and is bound, as associated data, to the key's
//! ARN and to the encryption context, so it opens only under the same key and context.
//!
//! This module must never return or log key material, plaintexts or data keys except as the
//! result of the operation that produces them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use coffer_crypto::{SecretBytes, SymmetricKey, envelope_key_id, fill_random, hex, sha256};
use coffer_policy::Policy;
use coffer_store::{
    AliasRecord, KeyManager, KeyMaterialRecord, KeyState, KmsKeyRecord, StoreError,
};

use crate::authz::RequestKeys;
use crate::error::KmsCode;
use crate::policies::{self, Kind};
use crate::{Caller, Coffer, CoreError, Store, ids};

/// The alias of the AWS managed key that protects secrets that name no key.
pub const SECRETS_MANAGER_ALIAS: &str = "alias/aws/secretsmanager";

/// An encryption context: non-secret pairs bound to a ciphertext, sorted by key.
pub type EncryptionContext = BTreeMap<String, String>;

const MAX_PLAINTEXT: usize = 4096;
const DAY_MS: i64 = 86_400_000;
/// "You can perform on-demand rotation a maximum of 25 times per KMS key" (KMS developer
/// guide, "Rotating keys on demand").
const MAX_ON_DEMAND_ROTATIONS: usize = 25;
const DEFAULT_ROTATION_DAYS: i64 = 365;
const MAX_TAGS: usize = 50;
/// Key policies are limited to 32 KB (KMS developer guide, "Quotas: Key policy document size").
const MAX_KEY_POLICY: usize = 32_768;

/// A key ready for use: its record, parsed policy and unwrapped material versions.
pub(crate) struct LoadedKey {
    pub(crate) record: KmsKeyRecord,
    pub(crate) arn: String,
    policy: Arc<Policy>,
    materials: HashMap<String, Arc<SymmetricKey>>,
    /// The key policy has no conditions and no policy variables, so for a root user (whose
    /// identity side never changes) a decision depends only on who asks for what.
    unconditional: bool,
    /// `(action, principal ARN)` of root users allowed by this version of the key, so the hot
    /// path of reading secrets under a customer managed key skips re-evaluating. A short list
    /// compared in place (no allocation, no hashing); dropped with the `LoadedKey` when the
    /// key (its policy) changes.
    allowed_roots: RwLock<Vec<(String, String)>>,
}

/// Loaded keys by id. A write to a key removes it; a load that raced with a write is not
/// kept (the epoch changed), so a stale key never outlives the write that changed it.
#[derive(Default)]
pub(crate) struct KmsCache {
    epoch: AtomicU64,
    keys: RwLock<HashMap<String, Arc<LoadedKey>>>,
}

impl KmsCache {
    fn get(&self, key_id: &str) -> Option<Arc<LoadedKey>> {
        self.keys.read().ok()?.get(key_id).cloned()
    }

    fn fill(&self, epoch: u64, key: &Arc<LoadedKey>) {
        if let Ok(mut keys) = self.keys.write()
            && self.epoch.load(Ordering::Acquire) == epoch
        {
            if keys.len() > 10_000 {
                keys.clear();
            }
            keys.insert(key.record.key_id.clone(), Arc::clone(key));
        }
    }

    fn invalidate(&self, key_id: &str) {
        if let Ok(mut keys) = self.keys.write() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            keys.remove(key_id);
        }
    }
}

/// What `CreateKey` accepts.
#[derive(Debug, Default)]
pub struct CreateKeyInput {
    pub policy: Option<String>,
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub key_spec: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub origin: Option<String>,
    pub custom_key_store_id: Option<String>,
    pub bypass_policy_lockout_safety_check: bool,
    pub tags: Vec<(String, String)>,
    pub multi_region: Option<bool>,
}

/// A ciphertext and the key that made it.
#[derive(Debug)]
pub struct Ciphertext {
    pub blob: Vec<u8>,
    pub key_arn: String,
    pub material_id: String,
}

/// A decrypted plaintext and the key that opened it.
#[derive(Debug)]
pub struct Plaintext {
    pub plaintext: SecretBytes,
    pub key_arn: String,
    pub material_id: String,
}

/// A data key: its plaintext (unless asked without) and its ciphertext under the KMS key.
#[derive(Debug)]
pub struct DataKey {
    pub plaintext: Option<SecretBytes>,
    pub ciphertext: Ciphertext,
}

/// The outcome of `ReEncrypt`.
#[derive(Debug)]
pub struct ReEncrypted {
    pub ciphertext: Ciphertext,
    pub source_key_arn: String,
    pub source_material_id: String,
}

/// One entry of `ListAliases`; predefined AWS aliases without a key yet have no target.
#[derive(Debug, Clone)]
pub struct AliasEntry {
    pub alias_name: String,
    pub alias_arn: String,
    pub target_key_id: Option<String>,
    pub created_ms: Option<i64>,
    pub updated_ms: Option<i64>,
}

/// One entry of `ListKeyRotations`.
#[derive(Debug, Clone)]
pub struct RotationEntry {
    pub key_id: String,
    pub material_id: String,
    pub rotation_ms: Option<i64>,
    pub rotation_type: Option<String>,
    pub current: bool,
}

/// A page of a list, with the marker of the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// `GetKeyRotationStatus`.
#[derive(Debug)]
pub struct RotationStatus {
    pub key_arn: String,
    pub enabled: bool,
    pub period_days: Option<i64>,
    pub next_rotation_ms: Option<i64>,
}

/// How a `KeyId` parameter names a key.
enum KeyRef {
    Key {
        account_id: String,
        region: String,
        key_id: String,
    },
    Alias {
        account_id: String,
        region: String,
        name: String,
    },
}

fn invalid_key_id(text: &str) -> CoreError {
    CoreError::kms(KmsCode::NotFound, format!("Invalid keyId '{text}'"))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Reads a `KeyId`: a key id, a key ARN, `alias/NAME` or an alias ARN. Ids and alias names
/// refer to `account_id`/`region`; ARNs name their own ("To specify a KMS key in a different
/// AWS account, you must use its key ARN or alias ARN", KMS API reference, `KeyId`).
fn parse_key_ref(account_id: &str, region: &str, text: &str) -> Result<KeyRef, CoreError> {
    if text.is_empty() || text.len() > 2048 {
        return Err(invalid_key_id(text));
    }
    if let Some(rest) = text.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [_partition, service, arn_region, arn_account, resource] = parts.as_slice() else {
            return Err(invalid_key_id(text));
        };
        if *service != "kms" {
            return Err(invalid_key_id(text));
        }
        if *arn_region != region {
            return Err(CoreError::kms(
                KmsCode::NotFound,
                format!("Invalid arn {arn_region}"),
            ));
        }
        if let Some(id) = resource.strip_prefix("key/") {
            return Ok(KeyRef::Key {
                account_id: (*arn_account).to_string(),
                region: (*arn_region).to_string(),
                key_id: id.to_string(),
            });
        }
        if resource.starts_with("alias/") {
            return Ok(KeyRef::Alias {
                account_id: (*arn_account).to_string(),
                region: (*arn_region).to_string(),
                name: (*resource).to_string(),
            });
        }
        return Err(invalid_key_id(text));
    }
    if text.starts_with("alias/") {
        return Ok(KeyRef::Alias {
            account_id: account_id.to_string(),
            region: region.to_string(),
            name: text.to_string(),
        });
    }
    if is_uuid(text) {
        return Ok(KeyRef::Key {
            account_id: account_id.to_string(),
            region: region.to_string(),
            key_id: text.to_string(),
        });
    }
    Err(invalid_key_id(text))
}

fn key_arn(region: &str, account_id: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account_id}:key/{key_id}")
}

fn alias_arn(region: &str, account_id: &str, name: &str) -> String {
    format!("arn:aws:kms:{region}:{account_id}:{name}")
}

fn key_not_found(arn: &str) -> CoreError {
    CoreError::kms(KmsCode::NotFound, format!("Key '{arn}' does not exist"))
}

fn alias_not_found(arn: &str) -> CoreError {
    CoreError::kms(KmsCode::NotFound, format!("Alias {arn} is not found."))
}

fn validation(member: &str, constraint: &str, value: &str) -> CoreError {
    CoreError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

/// A number within the service model's `min`/`max` for `member`, with AWS's one-sided
/// validation messages.
fn check_range(member: &str, value: i64, min: i64, max: i64) -> Result<i64, CoreError> {
    if value < min {
        return Err(validation(
            member,
            &format!("Member must have value greater than or equal to {min}"),
            &value.to_string(),
        ));
    }
    if value > max {
        return Err(validation(
            member,
            &format!("Member must have value less than or equal to {max}"),
            &value.to_string(),
        ));
    }
    Ok(value)
}

fn check_limit(limit: Option<i64>, max: i64) -> Result<usize, CoreError> {
    let n = match limit {
        None => max.min(100),
        Some(n) => check_range("limit", n, 1, max)?,
    };
    Ok(usize::try_from(n).unwrap_or(1))
}

/// One page of `items` (already in order), starting at the item whose marker is `marker`.
fn paginate<T>(
    items: Vec<T>,
    marker_of: impl Fn(&T) -> String,
    limit: usize,
    marker: Option<&str>,
) -> Result<Page<T>, CoreError> {
    let start = match marker {
        None => 0,
        Some(m) => items
            .iter()
            .position(|i| marker_of(i) == m)
            .ok_or_else(|| {
                CoreError::kms(
                    KmsCode::InvalidMarker,
                    "The request was rejected because the marker that specifies where pagination should next begin is not valid.",
                )
            })?,
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next_marker = rest.get(limit).map(&marker_of);
    rest.truncate(limit);
    Ok(Page {
        items: rest,
        next_marker,
    })
}

/// The associated data of a ciphertext: the key's ARN and the encryption context, each
/// length-prefixed so that no two contexts encode alike.
fn ciphertext_aad(key_arn: &str, context: &EncryptionContext) -> Vec<u8> {
    let mut aad = b"coffer/kms-ciphertext/v1\0".to_vec();
    aad.extend_from_slice(key_arn.as_bytes());
    aad.push(0);
    for (k, v) in context {
        for part in [k, v] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            aad.extend_from_slice(&len.to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
    }
    aad
}

fn material_label(key_id: &str, material_id: &str) -> String {
    format!("kms/{key_id}/{material_id}")
}

/// `(key id, material id)` named by a ciphertext made here, if it is one.
pub(crate) fn ciphertext_key(blob: &[u8]) -> Option<(String, String)> {
    let label = envelope_key_id(blob).ok()?;
    let rest = label.strip_prefix("kms/")?;
    let (key_id, material_id) = rest.split_once('/')?;
    Some((key_id.to_string(), material_id.to_string()))
}

fn invalid_ciphertext() -> CoreError {
    CoreError::kms(KmsCode::InvalidCiphertext, "")
}

fn new_material_id() -> Result<String, CoreError> {
    let mut seed = [0u8; 32];
    fill_random(&mut seed)?;
    Ok(hex(&sha256(&seed)))
}

/// The default key policy: "gives the AWS account … full access to the KMS key … allows the
/// account to use IAM policies" (KMS developer guide, "Default key policy").
fn default_key_policy(account_id: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [{
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{account_id}:root")},
            "Action": "kms:*",
            "Resource": "*"
        }]
    })
    .to_string()
}

/// The policy of the AWS managed key for Secrets Manager: usable by principals of the
/// account only through Secrets Manager, readable by the account (the shape of the
/// `auto-secretsmanager-2` policy AWS attaches).
fn secrets_manager_key_policy(account_id: &str, region: &str) -> String {
    let sid = "Allow access through AWS Secrets Manager for all principals in the account that are authorized to use AWS Secrets Manager";
    serde_json::json!({
        "Version": "2012-10-17",
        "Id": "auto-secretsmanager-2",
        "Statement": [
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {
                    "kms:CallerAccount": account_id,
                    "kms:ViaService": format!("secretsmanager.{region}.amazonaws.com")
                }}
            },
            {
                // AWS's own policy repeats the first Sid here; Sids must be unique in
                // documents coffer accepts, so this one says what it is for.
                "Sid": format!("{sid} to generate data keys"),
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:CallerAccount": account_id},
                    "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}
                }
            },
            {
                "Sid": "Allow direct access to key metadata to the account",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account_id}:root")},
                "Action": ["kms:Describe*", "kms:Get*", "kms:List*", "kms:RevokeGrant"],
                "Resource": "*"
            }
        ]
    })
    .to_string()
}

fn check_enum(member: &str, value: &str, allowed: &[&str]) -> Result<(), CoreError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(validation(
            member,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
            value,
        ))
    }
}

fn validate_tags(tags: &[(String, String)]) -> Result<(), CoreError> {
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(CoreError::kms(
                KmsCode::Tag,
                format!("Tag key '{k}' must be 1 to 128 characters long."),
            ));
        }
        if v.chars().count() > 256 {
            return Err(CoreError::kms(
                KmsCode::Tag,
                format!("The value of tag '{k}' must be at most 256 characters long."),
            ));
        }
        if k.starts_with("aws:") {
            return Err(CoreError::kms(
                KmsCode::Tag,
                "Tags beginning with aws: are reserved and can't be used.",
            ));
        }
    }
    Ok(())
}

fn merge_tags(
    into: &mut Vec<(String, String)>,
    tags: &[(String, String)],
) -> Result<(), CoreError> {
    for (k, v) in tags {
        match into.iter_mut().find(|(ek, _)| ek == k) {
            Some(existing) => existing.1 = v.clone(),
            None => into.push((k.clone(), v.clone())),
        }
    }
    if into.len() > MAX_TAGS {
        return Err(CoreError::LimitExceeded(format!(
            "A KMS key can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

fn validate_policy_text(policy: &str) -> Result<Policy, CoreError> {
    if policy.len() > MAX_KEY_POLICY {
        return Err(CoreError::LimitExceeded(format!(
            "The key policy exceeds the maximum size of {MAX_KEY_POLICY} bytes."
        )));
    }
    policies::parse(policy, Kind::Resource)
}

/// The IAM user and role ARNs a policy names as principals (`Principal`/`NotPrincipal`).
fn named_identities(policy: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Vec::new();
    };
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) => a.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for st in &statements {
        for element in ["Principal", "NotPrincipal"] {
            let Some(aws) = st.get(element).and_then(|p| p.get("AWS")) else {
                continue;
            };
            let ids: Vec<&str> = match aws {
                serde_json::Value::String(s) => vec![s.as_str()],
                serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
                _ => Vec::new(),
            };
            out.extend(
                ids.into_iter()
                    .filter(|id| id.contains(":user/") || id.contains(":role/"))
                    .map(str::to_string),
            );
        }
    }
    out
}

fn usable(key: &LoadedKey) -> Result<(), CoreError> {
    match key.record.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(CoreError::kms(
            KmsCode::Disabled,
            format!("{} is disabled.", key.arn),
        )),
        KeyState::PendingDeletion => Err(pending_deletion(&key.arn)),
    }
}

fn pending_deletion(arn: &str) -> CoreError {
    CoreError::kms(KmsCode::InvalidState, format!("{arn} is pending deletion."))
}

fn not_pending(key: &LoadedKey) -> Result<(), CoreError> {
    if key.record.state == KeyState::PendingDeletion {
        Err(pending_deletion(&key.arn))
    } else {
        Ok(())
    }
}

/// `kms:` condition keys of a request on a key; `via_region` when Secrets Manager in that
/// region makes the request on the caller's behalf (`kms:ViaService`).
fn request_keys(
    caller: &Caller,
    context: Option<&EncryptionContext>,
    via_region: Option<&str>,
) -> RequestKeys {
    let mut keys: RequestKeys = vec![(
        "kms:CallerAccount".to_string(),
        vec![caller.account_id.clone()],
    )];
    if let Some(region) = via_region {
        keys.push((
            "kms:ViaService".to_string(),
            vec![format!("secretsmanager.{region}.amazonaws.com")],
        ));
    }
    if let Some(context) = context {
        for (k, v) in context {
            keys.push((format!("kms:EncryptionContext:{k}"), vec![v.clone()]));
        }
        keys.push((
            "kms:EncryptionContextKeys".to_string(),
            context.keys().cloned().collect(),
        ));
    }
    keys
}

impl<S: Store> Coffer<S> {
    // ---------- loading and resolving keys ----------

    fn load_key(&self, record: KmsKeyRecord) -> Result<LoadedKey, CoreError> {
        let arn = record.arn();
        let policy = Policy::parse(&record.policy, Kind::Resource)
            .map_err(|e| CoreError::Internal(format!("stored key policy of {arn}: {e:?}")))?;
        let mut materials = HashMap::with_capacity(record.materials.len());
        for m in &record.materials {
            let key = self
                .keyring
                .open_key_material(&arn, &m.material_id, &m.sealed)?;
            materials.insert(m.material_id.clone(), Arc::new(key));
        }
        let unconditional = !record.policy.contains("Condition") && !record.policy.contains("${");
        Ok(LoadedKey {
            record,
            arn,
            policy: Arc::new(policy),
            materials,
            unconditional,
            allowed_roots: RwLock::new(Vec::new()),
        })
    }

    /// A key by id, from the cache or the store.
    pub(crate) async fn loaded_key(
        &self,
        key_id: &str,
    ) -> Result<Option<Arc<LoadedKey>>, CoreError> {
        if let Some(hit) = self.kms_cache.get(key_id) {
            return Ok(Some(hit));
        }
        let epoch = self.kms_cache.epoch.load(Ordering::Acquire);
        let Some(record) = self.store.get_kms_key(key_id).await? else {
            return Ok(None);
        };
        let loaded = Arc::new(self.load_key(record)?);
        self.kms_cache.fill(epoch, &loaded);
        Ok(Some(loaded))
    }

    /// The key a `KeyId` names, relative to `account_id`/`region`. The predefined alias of
    /// the AWS managed key creates that key on first use, as AWS does.
    async fn resolve_key_in(
        &self,
        account_id: &str,
        region: &str,
        text: &str,
    ) -> Result<Arc<LoadedKey>, CoreError> {
        match parse_key_ref(account_id, region, text)? {
            KeyRef::Key {
                account_id,
                region,
                key_id,
            } => {
                let arn = key_arn(&region, &account_id, &key_id);
                match self.loaded_key(&key_id).await? {
                    Some(k) if k.record.account_id == account_id && k.record.region == region => {
                        Ok(k)
                    }
                    _ => Err(key_not_found(&arn)),
                }
            }
            KeyRef::Alias {
                account_id,
                region,
                name,
            } => {
                if let Some(alias) = self.store.get_alias(&account_id, &region, &name).await? {
                    return match self.loaded_key(&alias.target_key_id).await? {
                        Some(k) => Ok(k),
                        None => Err(alias_not_found(&alias_arn(&region, &account_id, &name))),
                    };
                }
                if name == SECRETS_MANAGER_ALIAS
                    && self.store.get_account(&account_id).await?.is_some()
                {
                    return self.secrets_manager_key(&account_id, &region).await;
                }
                Err(alias_not_found(&alias_arn(&region, &account_id, &name)))
            }
        }
    }

    /// The key a caller's `KeyId` names.
    async fn resolve_key(&self, caller: &Caller, text: &str) -> Result<Arc<LoadedKey>, CoreError> {
        self.resolve_key_in(&caller.account_id, &caller.region, text)
            .await
    }

    /// The AWS managed key of Secrets Manager in an account and region, created on first use.
    pub(crate) async fn secrets_manager_key(
        &self,
        account_id: &str,
        region: &str,
    ) -> Result<Arc<LoadedKey>, CoreError> {
        for _ in 0..3 {
            if let Some(alias) = self
                .store
                .get_alias(account_id, region, SECRETS_MANAGER_ALIAS)
                .await?
                && let Some(key) = self.loaded_key(&alias.target_key_id).await?
            {
                return Ok(key);
            }
            let now = self.clock.now_millis();
            let record = self.new_key_record(
                account_id,
                region,
                "Default key that protects my Secrets Manager data when no other key is defined"
                    .into(),
                KeyManager::Aws,
                secrets_manager_key_policy(account_id, region),
                Vec::new(),
            )?;
            let alias = AliasRecord {
                account_id: account_id.to_string(),
                region: region.to_string(),
                alias_name: SECRETS_MANAGER_ALIAS.to_string(),
                target_key_id: record.key_id.clone(),
                created_ms: now,
                updated_ms: now,
            };
            let mut record = record;
            // AWS managed keys rotate every year (KMS developer guide, "AWS managed keys").
            record.rotation_enabled = true;
            record.next_rotation_ms = Some(now + DEFAULT_ROTATION_DAYS * DAY_MS);
            match self.store.insert_kms_key(record, Some(alias)).await {
                Ok(()) | Err(StoreError::AlreadyExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Internal(format!(
            "the AWS managed key for Secrets Manager in {account_id}/{region} could not be created"
        )))
    }

    fn new_key_record(
        &self,
        account_id: &str,
        region: &str,
        description: String,
        manager: KeyManager,
        policy: String,
        tags: Vec<(String, String)>,
    ) -> Result<KmsKeyRecord, CoreError> {
        let key_id = ids::uuid_v4()?;
        let now = self.clock.now_millis();
        let arn = key_arn(region, account_id, &key_id);
        let material_id = new_material_id()?;
        let material = SymmetricKey::generate()?;
        let sealed = self
            .keyring
            .seal_key_material(&arn, &material_id, &material)?;
        Ok(KmsKeyRecord {
            key_id,
            account_id: account_id.to_string(),
            region: region.to_string(),
            created_ms: now,
            description,
            manager,
            state: KeyState::Enabled,
            deletion_due_ms: None,
            pending_window_days: None,
            policy,
            tags,
            rotation_enabled: false,
            rotation_period_days: DEFAULT_ROTATION_DAYS,
            next_rotation_ms: None,
            on_demand_rotation_ms: None,
            materials: vec![KeyMaterialRecord {
                material_id,
                created_ms: now,
                rotation_type: None,
                sealed,
            }],
            revision: 1,
        })
    }

    /// Applies `change` to the stored key and writes it (retrying on a concurrent write).
    async fn change_key(
        &self,
        key_id: &str,
        change: impl Fn(&mut KmsKeyRecord) -> Result<(), CoreError>,
    ) -> Result<KmsKeyRecord, CoreError> {
        for _ in 0..8 {
            let Some(mut record) = self.store.get_kms_key(key_id).await? else {
                return Err(CoreError::kms(
                    KmsCode::NotFound,
                    format!("Key '{key_id}' does not exist"),
                ));
            };
            let expected = record.revision;
            change(&mut record)?;
            record.revision = expected + 1;
            let result = self.store.update_kms_key(expected, record.clone()).await;
            self.kms_cache.invalidate(key_id);
            match result {
                Ok(()) => return Ok(record),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Internal(format!(
            "key {key_id} is being changed by many requests at once; retry"
        )))
    }

    async fn authorize_key(
        &self,
        caller: &Caller,
        action: &str,
        key: &LoadedKey,
        context: Option<&EncryptionContext>,
        via_region: Option<&str>,
    ) -> Result<(), CoreError> {
        let memo = caller.is_unrestricted_root() && key.unconditional;
        if memo
            && key.allowed_roots.read().is_ok_and(|seen| {
                seen.iter()
                    .any(|(a, p)| a == action && *p == caller.principal_arn)
            })
        {
            return Ok(());
        }
        self.decide_key(
            caller,
            action,
            &key.arn,
            request_keys(caller, context, via_region),
            &key.policy,
        )
        .await?;
        if memo
            && let Ok(mut seen) = key.allowed_roots.write()
            && seen.len() < 64
        {
            seen.push((action.to_string(), caller.principal_arn.clone()));
        }
        Ok(())
    }

    /// Resolves a caller's `KeyId` and authorizes `action` on it.
    async fn authorized_key(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
    ) -> Result<Arc<LoadedKey>, CoreError> {
        let key = self.resolve_key(caller, key_id).await?;
        self.authorize_key(caller, action, &key, None, None).await?;
        Ok(key)
    }

    // ---------- cryptography ----------

    fn encrypt_under(
        key: &LoadedKey,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<Ciphertext, CoreError> {
        let material = key
            .record
            .current_material()
            .ok_or_else(|| CoreError::Internal(format!("{} has no key material", key.arn)))?;
        let secret = key
            .materials
            .get(&material.material_id)
            .ok_or_else(|| CoreError::Internal(format!("material of {} is not loaded", key.arn)))?;
        let blob = secret.seal(
            &material_label(&key.record.key_id, &material.material_id),
            plaintext,
            &ciphertext_aad(&key.arn, context),
        )?;
        Ok(Ciphertext {
            blob,
            key_arn: key.arn.clone(),
            material_id: material.material_id.clone(),
        })
    }

    fn decrypt_under(
        key: &LoadedKey,
        material_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Plaintext, CoreError> {
        let secret = key
            .materials
            .get(material_id)
            .ok_or_else(invalid_ciphertext)?;
        let plaintext = secret
            .open(blob, &ciphertext_aad(&key.arn, context))
            .map_err(|_| invalid_ciphertext())?;
        Ok(Plaintext {
            plaintext,
            key_arn: key.arn.clone(),
            material_id: material_id.to_string(),
        })
    }

    /// The key a ciphertext names, checked against an optional `KeyId`.
    async fn ciphertext_owner(
        &self,
        caller: &Caller,
        blob: &[u8],
        key_id: Option<&str>,
    ) -> Result<(Arc<LoadedKey>, String), CoreError> {
        let (owner_id, material_id) = ciphertext_key(blob).ok_or_else(invalid_ciphertext)?;
        let owner = self.loaded_key(&owner_id).await?;
        if let Some(requested) = key_id {
            let named = self.resolve_key(caller, requested).await?;
            if owner
                .as_ref()
                .is_none_or(|o| o.record.key_id != named.record.key_id)
            {
                return Err(CoreError::kms(
                    KmsCode::IncorrectKey,
                    "The key ID in the request does not identify a CMK that can perform this operation.",
                ));
            }
        }
        let owner = owner.ok_or_else(|| {
            CoreError::AccessDenied(
                "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access."
                    .into(),
            )
        })?;
        Ok((owner, material_id))
    }

    fn check_algorithm(algorithm: Option<&str>) -> Result<(), CoreError> {
        match algorithm {
            None | Some("SYMMETRIC_DEFAULT") => Ok(()),
            Some(a @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE")) => {
                Err(CoreError::kms(
                    KmsCode::InvalidKeyUsage,
                    format!(
                        "The encryption algorithm {a} is not supported by a symmetric encryption KMS key."
                    ),
                ))
            }
            Some(a) => check_enum(
                "encryptionAlgorithm",
                a,
                &[
                    "SYMMETRIC_DEFAULT",
                    "RSAES_OAEP_SHA_1",
                    "RSAES_OAEP_SHA_256",
                    "SM2PKE",
                ],
            ),
        }
    }

    fn dry_run(dry_run: bool) -> Result<(), CoreError> {
        if dry_run {
            Err(CoreError::kms(
                KmsCode::DryRun,
                "The request would have succeeded, but the DryRun option is set.",
            ))
        } else {
            Ok(())
        }
    }

    pub async fn kms_encrypt(
        &self,
        caller: &Caller,
        key_id: &str,
        plaintext: &SecretBytes,
        context: &EncryptionContext,
        algorithm: Option<&str>,
        dry_run: bool,
    ) -> Result<Ciphertext, CoreError> {
        check_plaintext(plaintext)?;
        Self::check_algorithm(algorithm)?;
        let key = self.resolve_key(caller, key_id).await?;
        self.authorize_key(caller, "kms:Encrypt", &key, Some(context), None)
            .await?;
        usable(&key)?;
        Self::dry_run(dry_run)?;
        Self::encrypt_under(&key, plaintext.expose(), context)
    }

    pub async fn kms_decrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        context: &EncryptionContext,
        key_id: Option<&str>,
        algorithm: Option<&str>,
        dry_run: bool,
    ) -> Result<Plaintext, CoreError> {
        Self::check_algorithm(algorithm)?;
        let (key, material_id) = self.ciphertext_owner(caller, blob, key_id).await?;
        self.authorize_key(caller, "kms:Decrypt", &key, Some(context), None)
            .await?;
        usable(&key)?;
        Self::dry_run(dry_run)?;
        Self::decrypt_under(&key, &material_id, blob, context)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn kms_re_encrypt(
        &self,
        caller: &Caller,
        blob: &[u8],
        source_context: &EncryptionContext,
        source_key_id: Option<&str>,
        destination_key_id: &str,
        destination_context: &EncryptionContext,
        dry_run: bool,
    ) -> Result<ReEncrypted, CoreError> {
        let (source, material_id) = self.ciphertext_owner(caller, blob, source_key_id).await?;
        self.authorize_key(
            caller,
            "kms:ReEncryptFrom",
            &source,
            Some(source_context),
            None,
        )
        .await?;
        let destination = self.resolve_key(caller, destination_key_id).await?;
        self.authorize_key(
            caller,
            "kms:ReEncryptTo",
            &destination,
            Some(destination_context),
            None,
        )
        .await?;
        usable(&source)?;
        usable(&destination)?;
        Self::dry_run(dry_run)?;
        let plain = Self::decrypt_under(&source, &material_id, blob, source_context)?;
        let ciphertext =
            Self::encrypt_under(&destination, plain.plaintext.expose(), destination_context)?;
        Ok(ReEncrypted {
            ciphertext,
            source_key_arn: plain.key_arn,
            source_material_id: plain.material_id,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn kms_generate_data_key(
        &self,
        caller: &Caller,
        key_id: &str,
        context: &EncryptionContext,
        key_spec: Option<&str>,
        number_of_bytes: Option<i64>,
        with_plaintext: bool,
        dry_run: bool,
    ) -> Result<DataKey, CoreError> {
        let len = data_key_length(key_spec, number_of_bytes)?;
        let action = if with_plaintext {
            "kms:GenerateDataKey"
        } else {
            "kms:GenerateDataKeyWithoutPlaintext"
        };
        let key = self.resolve_key(caller, key_id).await?;
        self.authorize_key(caller, action, &key, Some(context), None)
            .await?;
        usable(&key)?;
        Self::dry_run(dry_run)?;
        let mut bytes = vec![0u8; len];
        fill_random(&mut bytes)?;
        let plaintext = SecretBytes::new(bytes);
        let ciphertext = Self::encrypt_under(&key, plaintext.expose(), context)?;
        Ok(DataKey {
            plaintext: with_plaintext.then_some(plaintext),
            ciphertext,
        })
    }

    pub async fn kms_generate_random(
        &self,
        caller: &Caller,
        number_of_bytes: Option<i64>,
        custom_key_store_id: Option<&str>,
    ) -> Result<SecretBytes, CoreError> {
        let n = match number_of_bytes {
            None => {
                return Err(CoreError::Validation("NumberOfBytes is required.".into()));
            }
            Some(n) => bytes_in_range(n)?,
        };
        self.authorize(caller, "kms:GenerateRandom", "*").await?;
        if let Some(store) = custom_key_store_id {
            return Err(custom_key_store_not_found(store));
        }
        let mut bytes = vec![0u8; n];
        fill_random(&mut bytes)?;
        Ok(SecretBytes::new(bytes))
    }

    // ---------- key life cycle ----------

    pub async fn kms_create_key(
        &self,
        caller: &Caller,
        input: CreateKeyInput,
    ) -> Result<KmsKeyRecord, CoreError> {
        let spec = match (&input.key_spec, &input.customer_master_key_spec) {
            (Some(_), Some(_)) => {
                return Err(CoreError::Validation(
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.".into(),
                ));
            }
            (Some(s), None) | (None, Some(s)) => s.as_str(),
            (None, None) => "SYMMETRIC_DEFAULT",
        };
        check_enum(
            "keySpec",
            spec,
            &[
                "RSA_2048",
                "RSA_3072",
                "RSA_4096",
                "ECC_NIST_P256",
                "ECC_NIST_P384",
                "ECC_NIST_P521",
                "ECC_SECG_P256K1",
                "SYMMETRIC_DEFAULT",
                "HMAC_224",
                "HMAC_256",
                "HMAC_384",
                "HMAC_512",
                "SM2",
                "ML_DSA_44",
                "ML_DSA_65",
                "ML_DSA_87",
                "ECC_NIST_EDWARDS25519",
            ],
        )?;
        let usage = input.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT");
        check_enum(
            "keyUsage",
            usage,
            &[
                "SIGN_VERIFY",
                "ENCRYPT_DECRYPT",
                "GENERATE_VERIFY_MAC",
                "KEY_AGREEMENT",
            ],
        )?;
        let origin = input.origin.as_deref().unwrap_or("AWS_KMS");
        check_enum(
            "origin",
            origin,
            &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"],
        )?;
        if let Some(d) = &input.description
            && d.chars().count() > 8192
        {
            return Err(validation(
                "description",
                "Member must have length less than or equal to 8192",
                "…",
            ));
        }
        validate_tags(&input.tags)?;
        let mut tags = Vec::new();
        merge_tags(&mut tags, &input.tags)?;
        self.authorize(caller, "kms:CreateKey", "*").await?;
        if let Some(store) = &input.custom_key_store_id {
            return Err(custom_key_store_not_found(store));
        }
        if spec != "SYMMETRIC_DEFAULT" {
            return Err(CoreError::kms(
                KmsCode::Unsupported,
                format!(
                    "coffer supports symmetric encryption keys (KeySpec SYMMETRIC_DEFAULT) only; {spec} keys are not available."
                ),
            ));
        }
        if usage != "ENCRYPT_DECRYPT" {
            return Err(CoreError::Validation(format!(
                "The KeyUsage {usage} is not compatible with KeySpec SYMMETRIC_DEFAULT; use ENCRYPT_DECRYPT."
            )));
        }
        if origin != "AWS_KMS" {
            return Err(CoreError::kms(
                KmsCode::Unsupported,
                format!(
                    "coffer generates key material itself (Origin AWS_KMS); Origin {origin} is not available."
                ),
            ));
        }
        if input.multi_region == Some(true) {
            return Err(CoreError::kms(
                KmsCode::Unsupported,
                "coffer does not offer multi-Region keys.",
            ));
        }
        let policy = match &input.policy {
            Some(text) => {
                let parsed = validate_policy_text(text)?;
                self.check_principals_exist(text).await?;
                if !input.bypass_policy_lockout_safety_check {
                    self.lockout_check(
                        caller,
                        &parsed,
                        &key_arn(&caller.region, &caller.account_id, "*"),
                    )
                    .await?;
                }
                text.clone()
            }
            None => default_key_policy(&caller.account_id),
        };
        let record = self.new_key_record(
            &caller.account_id,
            &caller.region,
            input.description.unwrap_or_default(),
            KeyManager::Customer,
            policy,
            tags,
        )?;
        self.store.insert_kms_key(record.clone(), None).await?;
        Ok(record)
    }

    /// A key policy may name only principals that exist: KMS answers "Policy contains a
    /// statement with one or more invalid principals." otherwise. Principals of accounts this
    /// deployment does not hold cannot be checked and are taken as given.
    async fn check_principals_exist(&self, policy: &str) -> Result<(), CoreError> {
        for arn in named_identities(policy) {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let [_, _, "iam", "", account, resource] = parts.as_slice() else {
                continue;
            };
            if self.store.get_account(account).await?.is_none() {
                continue;
            }
            let (kind, path_name) = match resource.split_once('/') {
                Some(("user", rest)) => (coffer_store::PrincipalKind::User, rest),
                Some(("role", rest)) => (coffer_store::PrincipalKind::Role, rest),
                _ => continue,
            };
            let name = path_name.rsplit('/').next().unwrap_or(path_name);
            let exists = self
                .store
                .get_principal(account, kind, name)
                .await?
                .is_some_and(|p| p.arn() == arn);
            if !exists {
                return Err(CoreError::MalformedPolicy(
                    "Policy contains a statement with one or more invalid principals.".into(),
                ));
            }
        }
        Ok(())
    }

    /// "The key policy must allow the calling principal to make a subsequent PutKeyPolicy
    /// request on the KMS key" unless the caller bypasses the check (API reference,
    /// `BypassPolicyLockoutSafetyCheck`).
    async fn lockout_check(
        &self,
        caller: &Caller,
        policy: &Policy,
        arn: &str,
    ) -> Result<(), CoreError> {
        self.decide_key(
            caller,
            "kms:PutKeyPolicy",
            arn,
            request_keys(caller, None, None),
            policy,
        )
        .await
        .map_err(|_| {
            CoreError::MalformedPolicy(
                "The new key policy will not allow you to update the key policy in the future."
                    .into(),
            )
        })
    }

    pub async fn kms_describe_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KmsKeyRecord, CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:DescribeKey")
            .await?;
        Ok(key.record.clone())
    }

    pub async fn kms_list_keys(
        &self,
        caller: &Caller,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<KmsKeyRecord>, CoreError> {
        let limit = check_limit(limit, 1000)?;
        self.authorize(caller, "kms:ListKeys", "*").await?;
        let keys = self
            .store
            .list_kms_keys(&caller.account_id, &caller.region)
            .await?;
        paginate(keys, |k| k.key_id.clone(), limit, marker)
    }

    pub async fn kms_enable_key(&self, caller: &Caller, key_id: &str) -> Result<(), CoreError> {
        self.set_key_state(caller, key_id, "kms:EnableKey", KeyState::Enabled)
            .await
    }

    pub async fn kms_disable_key(&self, caller: &Caller, key_id: &str) -> Result<(), CoreError> {
        self.set_key_state(caller, key_id, "kms:DisableKey", KeyState::Disabled)
            .await
    }

    /// Enables or disables a key; a key pending deletion must be cancelled first.
    async fn set_key_state(
        &self,
        caller: &Caller,
        key_id: &str,
        action: &str,
        state: KeyState,
    ) -> Result<(), CoreError> {
        let key = self.authorized_key(caller, key_id, action).await?;
        not_pending(&key)?;
        self.change_key(&key.record.key_id, |k| {
            if k.state == KeyState::PendingDeletion {
                return Err(pending_deletion(&k.arn()));
            }
            k.state = state;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn kms_schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_window_days: Option<i64>,
    ) -> Result<KmsKeyRecord, CoreError> {
        let days = pending_window_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(validation(
                "pendingWindowInDays",
                "Member must have value between 7 and 30",
                &days.to_string(),
            ));
        }
        let key = self
            .authorized_key(caller, key_id, "kms:ScheduleKeyDeletion")
            .await?;
        not_pending(&key)?;
        let now = self.clock.now_millis();
        self.change_key(&key.record.key_id, |k| {
            if k.state == KeyState::PendingDeletion {
                return Err(pending_deletion(&k.arn()));
            }
            k.state = KeyState::PendingDeletion;
            k.pending_window_days = Some(days);
            k.deletion_due_ms = Some(now + days * DAY_MS);
            Ok(())
        })
        .await
    }

    pub async fn kms_cancel_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<KmsKeyRecord, CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:CancelKeyDeletion")
            .await?;
        self.change_key(&key.record.key_id, |k| {
            if k.state != KeyState::PendingDeletion {
                return Err(CoreError::kms(
                    KmsCode::InvalidState,
                    format!("{} is not pending deletion.", k.arn()),
                ));
            }
            // "the key state of the KMS key is Disabled" after cancelling (API reference,
            // CancelKeyDeletion).
            k.state = KeyState::Disabled;
            k.pending_window_days = None;
            k.deletion_due_ms = None;
            Ok(())
        })
        .await
    }

    // ---------- key policies ----------

    fn check_policy_name(name: Option<&str>) -> Result<(), CoreError> {
        match name {
            None | Some("default") => Ok(()),
            Some(n) if !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                Err(CoreError::kms(KmsCode::NotFound, "No such policy exists"))
            }
            Some(n) => Err(validation(
                "policyName",
                "Member must satisfy regular expression pattern: [\\w]+",
                n,
            )),
        }
    }

    pub async fn kms_get_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
    ) -> Result<String, CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:GetKeyPolicy")
            .await?;
        Self::check_policy_name(policy_name)?;
        Ok(key.record.policy.clone())
    }

    pub async fn kms_put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
        policy: &str,
        bypass_lockout_check: bool,
    ) -> Result<(), CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:PutKeyPolicy")
            .await?;
        Self::check_policy_name(policy_name)?;
        let parsed = validate_policy_text(policy)?;
        self.check_principals_exist(policy).await?;
        not_pending(&key)?;
        if !bypass_lockout_check {
            self.lockout_check(caller, &parsed, &key.arn).await?;
        }
        self.change_key(&key.record.key_id, |k| {
            k.policy = policy.to_string();
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn kms_list_key_policies(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<Vec<String>, CoreError> {
        self.authorized_key(caller, key_id, "kms:ListKeyPolicies")
            .await?;
        Ok(vec!["default".to_string()])
    }

    // ---------- rotation ----------

    pub async fn kms_enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        period_days: Option<i64>,
    ) -> Result<(), CoreError> {
        let period = period_days.unwrap_or(DEFAULT_ROTATION_DAYS);
        check_range("rotationPeriodInDays", period, 90, 2560)?;
        let key = self
            .authorized_key(caller, key_id, "kms:EnableKeyRotation")
            .await?;
        usable(&key)?;
        let now = self.clock.now_millis();
        self.change_key(&key.record.key_id, |k| {
            k.rotation_enabled = true;
            k.rotation_period_days = period;
            k.next_rotation_ms = Some(now + period * DAY_MS);
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn kms_disable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<(), CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:DisableKeyRotation")
            .await?;
        usable(&key)?;
        self.change_key(&key.record.key_id, |k| {
            k.rotation_enabled = false;
            k.next_rotation_ms = None;
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn kms_key_rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<RotationStatus, CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:GetKeyRotationStatus")
            .await?;
        not_pending(&key)?;
        let r = &key.record;
        Ok(RotationStatus {
            key_arn: key.arn.clone(),
            enabled: r.rotation_enabled,
            period_days: r.rotation_enabled.then_some(r.rotation_period_days),
            next_rotation_ms: if r.rotation_enabled {
                r.next_rotation_ms
            } else {
                None
            },
        })
    }

    pub async fn kms_rotate_key_on_demand(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<String, CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:RotateKeyOnDemand")
            .await?;
        usable(&key)?;
        let done = key
            .record
            .materials
            .iter()
            .filter(|m| m.rotation_type.as_deref() == Some("ON_DEMAND"))
            .count();
        if done >= MAX_ON_DEMAND_ROTATIONS {
            return Err(CoreError::LimitExceeded(format!(
                "{} has reached the maximum of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations.",
                key.arn
            )));
        }
        self.rotate_material(&key.record.key_id, "ON_DEMAND")
            .await?;
        Ok(key.record.key_id.clone())
    }

    /// Adds a new current material version to a key.
    async fn rotate_material(
        &self,
        key_id: &str,
        rotation_type: &str,
    ) -> Result<KmsKeyRecord, CoreError> {
        let now = self.clock.now_millis();
        let material_id = new_material_id()?;
        let material = SymmetricKey::generate()?;
        self.change_key(key_id, |k| {
            let sealed = self
                .keyring
                .seal_key_material(&k.arn(), &material_id, &material)?;
            k.materials.push(KeyMaterialRecord {
                material_id: material_id.clone(),
                created_ms: now,
                rotation_type: Some(rotation_type.to_string()),
                sealed,
            });
            if rotation_type == "ON_DEMAND" {
                k.on_demand_rotation_ms = Some(now);
            } else if k.rotation_enabled {
                k.next_rotation_ms = Some(now + k.rotation_period_days * DAY_MS);
            }
            Ok(())
        })
        .await
    }

    pub async fn kms_list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
        include: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<RotationEntry>, CoreError> {
        let limit = check_limit(limit, 1000)?;
        let all = match include {
            None | Some("ROTATIONS_ONLY") => false,
            Some("ALL_KEY_MATERIAL") => true,
            Some(other) => {
                return Err(validation(
                    "includeKeyMaterial",
                    "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
                    other,
                ));
            }
        };
        let key = self
            .authorized_key(caller, key_id, "kms:ListKeyRotations")
            .await?;
        not_pending(&key)?;
        let current = key.record.current_material().map(|m| m.material_id.clone());
        let entries: Vec<RotationEntry> = key
            .record
            .materials
            .iter()
            .filter(|m| all || m.rotation_type.is_some())
            .map(|m| RotationEntry {
                key_id: key.record.key_id.clone(),
                material_id: m.material_id.clone(),
                rotation_ms: m.rotation_type.is_some().then_some(m.created_ms),
                rotation_type: m.rotation_type.clone(),
                current: current.as_deref() == Some(m.material_id.as_str()),
            })
            .collect();
        paginate(entries, |e| e.material_id.clone(), limit, marker)
    }

    // ---------- tags ----------

    pub async fn kms_tag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tags: &[(String, String)],
    ) -> Result<(), CoreError> {
        validate_tags(tags)?;
        let key = self
            .authorized_key(caller, key_id, "kms:TagResource")
            .await?;
        not_pending(&key)?;
        self.change_key(&key.record.key_id, |k| merge_tags(&mut k.tags, tags))
            .await?;
        Ok(())
    }

    pub async fn kms_untag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tag_keys: &[String],
    ) -> Result<(), CoreError> {
        let key = self
            .authorized_key(caller, key_id, "kms:UntagResource")
            .await?;
        not_pending(&key)?;
        self.change_key(&key.record.key_id, |k| {
            k.tags.retain(|(name, _)| !tag_keys.contains(name));
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn kms_list_resource_tags(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<(String, String)>, CoreError> {
        let limit = check_limit(limit, 50)?;
        let key = self
            .authorized_key(caller, key_id, "kms:ListResourceTags")
            .await?;
        let mut tags = key.record.tags.clone();
        tags.sort();
        paginate(tags, |(k, _)| k.clone(), limit, marker)
    }

    // ---------- aliases ----------

    fn check_alias_name(name: &str) -> Result<(), CoreError> {
        if name.is_empty()
            || name.len() > 256
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_-:".contains(&b))
        {
            return Err(validation(
                "aliasName",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                name,
            ));
        }
        if !name.starts_with("alias/") || name.len() == "alias/".len() {
            return Err(CoreError::Validation(
                "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Checks an alias name, authorizes `action` on the alias's ARN (IAM only: an alias has
    /// no policy) and refuses the prefix reserved for AWS managed keys. Returns the ARN.
    async fn authorize_alias(
        &self,
        caller: &Caller,
        action: &str,
        alias_name: &str,
    ) -> Result<String, CoreError> {
        Self::check_alias_name(alias_name)?;
        let arn = alias_arn(&caller.region, &caller.account_id, alias_name);
        self.authorize(caller, action, &arn).await?;
        if alias_name.starts_with("alias/aws/") {
            return Err(CoreError::kms(
                KmsCode::NotAuthorized,
                "The alias/aws/ prefix is reserved for AWS managed keys.",
            ));
        }
        Ok(arn)
    }

    /// An alias that exists, with `action` authorized on the alias and on the key it points at
    /// (UpdateAlias and DeleteAlias both need the permission on the current key).
    async fn authorize_existing_alias(
        &self,
        caller: &Caller,
        action: &str,
        alias_name: &str,
    ) -> Result<String, CoreError> {
        let arn = self.authorize_alias(caller, action, alias_name).await?;
        let existing = self
            .store
            .get_alias(&caller.account_id, &caller.region, alias_name)
            .await?
            .ok_or_else(|| alias_not_found(&arn))?;
        if let Some(key) = self.loaded_key(&existing.target_key_id).await? {
            self.authorize_key(caller, action, &key, None, None).await?;
        }
        Ok(arn)
    }

    /// The key an alias may point at: a key id or key ARN of the caller's account, not an alias.
    async fn alias_target(
        &self,
        caller: &Caller,
        target: &str,
    ) -> Result<Arc<LoadedKey>, CoreError> {
        if target.starts_with("alias/") || target.contains(":alias/") {
            return Err(CoreError::Validation(
                "Aliases must refer to keys. Not aliases".into(),
            ));
        }
        let key = self.resolve_key(caller, target).await?;
        if key.record.account_id != caller.account_id {
            return Err(key_not_found(&key.arn));
        }
        if key.record.manager == KeyManager::Aws {
            return Err(CoreError::kms(
                KmsCode::NotAuthorized,
                "An alias can't point to an AWS managed key.",
            ));
        }
        Ok(key)
    }

    pub async fn kms_create_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target: &str,
    ) -> Result<(), CoreError> {
        let arn = self
            .authorize_alias(caller, "kms:CreateAlias", alias_name)
            .await?;
        let key = self.alias_target(caller, target).await?;
        self.authorize_key(caller, "kms:CreateAlias", &key, None, None)
            .await?;
        not_pending(&key)?;
        let now = self.clock.now_millis();
        match self
            .store
            .insert_alias(AliasRecord {
                account_id: caller.account_id.clone(),
                region: caller.region.clone(),
                alias_name: alias_name.to_string(),
                target_key_id: key.record.key_id.clone(),
                created_ms: now,
                updated_ms: now,
            })
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists) => Err(CoreError::kms(
                KmsCode::AlreadyExists,
                format!("An alias with the name {arn} already exists"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn kms_update_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target: &str,
    ) -> Result<(), CoreError> {
        let arn = self
            .authorize_existing_alias(caller, "kms:UpdateAlias", alias_name)
            .await?;
        let new_key = self.alias_target(caller, target).await?;
        self.authorize_key(caller, "kms:UpdateAlias", &new_key, None, None)
            .await?;
        not_pending(&new_key)?;
        if !self
            .store
            .retarget_alias(
                &caller.account_id,
                &caller.region,
                alias_name,
                &new_key.record.key_id,
                self.clock.now_millis(),
            )
            .await?
        {
            return Err(alias_not_found(&arn));
        }
        Ok(())
    }

    pub async fn kms_delete_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
    ) -> Result<(), CoreError> {
        let arn = self
            .authorize_existing_alias(caller, "kms:DeleteAlias", alias_name)
            .await?;
        if !self
            .store
            .delete_alias(&caller.account_id, &caller.region, alias_name)
            .await?
        {
            return Err(alias_not_found(&arn));
        }
        Ok(())
    }

    pub async fn kms_list_aliases(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<AliasEntry>, CoreError> {
        let limit = check_limit(limit, 100)?;
        self.authorize(caller, "kms:ListAliases", "*").await?;
        let stored = self
            .store
            .list_aliases(&caller.account_id, &caller.region)
            .await?;
        let entry = |a: &AliasRecord| AliasEntry {
            alias_name: a.alias_name.clone(),
            alias_arn: alias_arn(&a.region, &a.account_id, &a.alias_name),
            target_key_id: Some(a.target_key_id.clone()),
            created_ms: Some(a.created_ms),
            updated_ms: Some(a.updated_ms),
        };
        let entries: Vec<AliasEntry> = match key_id {
            Some(k) => {
                let key = self.resolve_key(caller, k).await?;
                stored
                    .iter()
                    .filter(|a| a.target_key_id == key.record.key_id)
                    .map(entry)
                    .collect()
            }
            None => {
                let mut all: Vec<AliasEntry> = stored.iter().map(entry).collect();
                // "The response might include several aliases that do not have a
                // TargetKeyId field. These are predefined aliases that AWS has created but has
                // not yet associated with a KMS key" (API reference, ListAliases).
                if !stored.iter().any(|a| a.alias_name == SECRETS_MANAGER_ALIAS) {
                    all.push(AliasEntry {
                        alias_name: SECRETS_MANAGER_ALIAS.to_string(),
                        alias_arn: alias_arn(
                            &caller.region,
                            &caller.account_id,
                            SECRETS_MANAGER_ALIAS,
                        ),
                        target_key_id: None,
                        created_ms: None,
                        updated_ms: None,
                    });
                    all.sort_by(|a, b| a.alias_name.cmp(&b.alias_name));
                }
                all
            }
        };
        paginate(entries, |e| e.alias_name.clone(), limit, marker)
    }

    // ---------- the service's own work ----------

    /// Destroys keys whose waiting period has ended and rotates keys whose automatic
    /// rotation is due. Returns `(destroyed, rotated)`.
    pub async fn kms_run_due(&self) -> Result<(usize, usize), CoreError> {
        let now = self.clock.now_millis();
        let due = self.store.kms_keys_due_for_deletion(now).await?;
        for key_id in &due {
            // Read only to describe the deletion in its event; a failed read must not stop
            // the pass.
            let record = self.store.get_kms_key(key_id).await.ok().flatten();
            self.store.destroy_kms_key(key_id).await?;
            self.kms_cache.invalidate(key_id);
            tracing::info!(key = %key_id, "destroyed KMS key at the end of its waiting period");
            if let Some(k) = record {
                let arn = format!("arn:aws:kms:{}:{}:key/{}", k.region, k.account_id, k.key_id);
                self.record_service_event(crate::audit::ServiceEvent {
                    source: crate::audit::EventSource::Kms,
                    event_name: "DeleteKey",
                    account_id: &k.account_id,
                    region: &k.region,
                    resource: crate::audit::Resource::kms_key(arn),
                    details: serde_json::json!({ "keyId": k.key_id }),
                })
                .await;
            }
        }
        let mut rotated = 0;
        for key_id in self.store.kms_keys_due_for_rotation(now).await? {
            let Some(key) = self.loaded_key(&key_id).await? else {
                continue;
            };
            // A disabled key is not rotated; it rotates when it is enabled again and due.
            if key.record.state != KeyState::Enabled || !key.record.rotation_enabled {
                continue;
            }
            self.rotate_material(&key_id, "AUTOMATIC").await?;
            rotated += 1;
            tracing::info!(key = %key.arn, "rotated KMS key material");
            self.record_service_event(crate::audit::ServiceEvent {
                source: crate::audit::EventSource::Kms,
                event_name: "RotateKey",
                account_id: &key.record.account_id,
                region: &key.record.region,
                resource: crate::audit::Resource::kms_key(key.arn.clone()),
                details: serde_json::json!({ "keyId": key.record.key_id, "rotationType": "AUTOMATIC" }),
            })
            .await;
        }
        Ok((due.len(), rotated))
    }

    // ---------- for Secrets Manager ----------

    /// Authorizes Secrets Manager's use of a key on the caller's behalf
    /// (`kms:ViaService = secretsmanager.REGION.amazonaws.com`).
    ///
    /// The AWS managed key's policy is fixed and allows exactly this to every principal of its
    /// account, and the root user has no identity-based policy that could deny it; so for the
    /// root user of the key's own account the decision is known without evaluating (this is
    /// GetSecretValue's hot path). Everyone else is evaluated.
    async fn authorize_via_secrets_manager(
        &self,
        caller: &Caller,
        action: &str,
        key: &LoadedKey,
        region: &str,
        context: &EncryptionContext,
    ) -> Result<(), CoreError> {
        if key.record.manager == KeyManager::Aws && caller.account_id != key.record.account_id {
            return Err(default_key_cross_account());
        }
        let decided = key.record.manager == KeyManager::Aws
            && caller.is_unrestricted_root()
            && caller.account_id == key.record.account_id
            && region == key.record.region;
        if decided {
            return Ok(());
        }
        self.authorize_key(caller, action, key, Some(context), Some(region))
            .await
            .map_err(|_| access_to_kms_denied())
    }

    /// The customer managed key a secret names, resolved in the secret's account and region.
    async fn secret_key(
        &self,
        account_id: &str,
        region: &str,
        kms_key_id: &str,
    ) -> Result<Arc<LoadedKey>, CoreError> {
        self.resolve_key_in(account_id, region, kms_key_id)
            .await
            .map_err(|e| match e {
                CoreError::Kms { .. } => CoreError::InvalidParameter(format!(
                    "The KMS key {kms_key_id} doesn't exist in this account and region, or you aren't allowed to use it."
                )),
                other => other,
            })
    }

    /// Checks that a secret can name `kms_key_id`: the key exists and is enabled.
    pub(crate) async fn check_secret_key(
        &self,
        rec: &coffer_store::SecretRecord,
        kms_key_id: &str,
    ) -> Result<(), CoreError> {
        let key = self
            .secret_key(&rec.account_id, &rec.region, kms_key_id)
            .await?;
        usable(&key).map_err(|_| encryption_failure())
    }

    /// Encrypts a secret version's data key under the secret's KMS key on the caller's
    /// behalf, as Secrets Manager does with `GenerateDataKey` and the encryption context
    /// `SecretARN` + `SecretVersionId` (Secrets Manager user guide, "Secret encryption and
    /// decryption").
    pub(crate) async fn secret_data_key(
        &self,
        caller: &Caller,
        account_id: &str,
        region: &str,
        kms_key_id: Option<&str>,
        context: &EncryptionContext,
        data_key: &SymmetricKey,
    ) -> Result<Vec<u8>, CoreError> {
        let key = match kms_key_id {
            None => self.secrets_manager_key(account_id, region).await?,
            Some(text) => self.secret_key(account_id, region, text).await?,
        };
        self.authorize_via_secrets_manager(caller, "kms:GenerateDataKey", &key, region, context)
            .await?;
        usable(&key).map_err(|_| encryption_failure())?;
        Ok(Self::encrypt_under(&key, data_key.expose(), context)?.blob)
    }

    /// Decrypts a secret version's data key on the caller's behalf (`kms:Decrypt` through
    /// Secrets Manager). `Ok(None)` when the blob was not made by the key service (values
    /// written before it existed, wrapped by the account key).
    pub(crate) async fn open_secret_data_key(
        &self,
        caller: &Caller,
        region: &str,
        blob: &[u8],
        context: &EncryptionContext,
    ) -> Result<Option<SymmetricKey>, CoreError> {
        let Some((key_id, material_id)) = ciphertext_key(blob) else {
            return Ok(None);
        };
        let failure = || {
            CoreError::DecryptionFailure(
                "Secrets Manager can't decrypt the protected secret text using the provided KMS key."
                    .into(),
            )
        };
        let key = self.loaded_key(&key_id).await?.ok_or_else(failure)?;
        self.authorize_via_secrets_manager(caller, "kms:Decrypt", &key, region, context)
            .await?;
        usable(&key).map_err(|_| failure())?;
        let plain =
            Self::decrypt_under(&key, &material_id, blob, context).map_err(|_| failure())?;
        SymmetricKey::from_bytes(plain.plaintext.expose())
            .map(Some)
            .map_err(|_| failure())
    }
}

fn encryption_failure() -> CoreError {
    CoreError::EncryptionFailure(
        "Secrets Manager can't encrypt the protected secret text using the provided KMS key. Check that the KMS key is enabled."
            .into(),
    )
}

/// What Secrets Manager answers another account's caller whose request needs the value of a
/// secret under the AWS managed key `aws/secretsmanager` (GetSecretValue, PutSecretValue, …):
/// that key's policy cannot be changed, so it never serves another account ("you can't use
/// the AWS managed key (aws/secretsmanager) for cross-account access", user guide, "Access
/// AWS Secrets Manager secrets from a different account"). The code and text are AWS's as
/// recorded by LocalStack's AWS-validated `TestSecretsManagerMultiAccounts::
/// test_cross_account_access` (localstack/localstack tests/aws/services/secretsmanager/
/// test_secretsmanager.py, validated 2024-03-18) for GetSecretValue and PutSecretValue, and
/// quoted by the AWS knowledge center article "secrets-manager-cross-account-key".
pub(crate) fn default_key_cross_account() -> CoreError {
    CoreError::InvalidRequest(
        "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key."
            .into(),
    )
}

/// What Secrets Manager answers when the caller may not use the secret's KMS key.
fn access_to_kms_denied() -> CoreError {
    CoreError::AccessDenied("Access to KMS is not allowed".into())
}

fn custom_key_store_not_found(id: &str) -> CoreError {
    CoreError::kms(
        KmsCode::CustomKeyStoreNotFound,
        format!("Custom key store {id} does not exist; coffer has no custom key stores."),
    )
}

fn check_plaintext(plaintext: &SecretBytes) -> Result<(), CoreError> {
    if plaintext.is_empty() {
        return Err(CoreError::Validation(
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
        ));
    }
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(CoreError::Validation(format!(
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to {MAX_PLAINTEXT}"
        )));
    }
    Ok(())
}

fn bytes_in_range(n: i64) -> Result<usize, CoreError> {
    let n = check_range("numberOfBytes", n, 1, 1024)?;
    Ok(usize::try_from(n).unwrap_or(1))
}

fn data_key_length(
    key_spec: Option<&str>,
    number_of_bytes: Option<i64>,
) -> Result<usize, CoreError> {
    match (key_spec, number_of_bytes) {
        (Some(_), Some(_)) => Err(CoreError::Validation(
            "Please specify either number of bytes or key spec.".into(),
        )),
        (None, None) => Err(CoreError::Validation(
            "Please specify either number of bytes or key spec.".into(),
        )),
        (Some("AES_256"), None) => Ok(32),
        (Some("AES_128"), None) => Ok(16),
        (Some(other), None) => Err(validation(
            "keySpec",
            "Member must satisfy enum value set: [AES_256, AES_128]",
            other,
        )),
        (None, Some(n)) => bytes_in_range(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_refs() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert!(matches!(
            parse_key_ref("111122223333", "us-east-1", id),
            Ok(KeyRef::Key { ref key_id, .. }) if key_id == id
        ));
        assert!(matches!(
            parse_key_ref("111122223333", "us-east-1", &format!("arn:aws:kms:us-east-1:444455556666:key/{id}")),
            Ok(KeyRef::Key { ref account_id, ref region, .. }) if account_id == "444455556666" && region == "us-east-1"
        ));
        // Another region's key: "Invalid arn REGION" (recorded AWS answer).
        assert!(matches!(
            parse_key_ref("111122223333", "us-east-1", &format!("arn:aws:kms:eu-west-1:444455556666:key/{id}")),
            Err(CoreError::Kms { code: KmsCode::NotFound, ref message }) if message == "Invalid arn eu-west-1"
        ));
        assert!(matches!(
            parse_key_ref("111122223333", "us-east-1", "alias/app"),
            Ok(KeyRef::Alias { ref name, ref account_id, .. }) if name == "alias/app" && account_id == "111122223333"
        ));
        assert!(matches!(
            parse_key_ref("111122223333", "us-east-1", "arn:aws:kms:us-east-1:444455556666:alias/app"),
            Ok(KeyRef::Alias { ref account_id, .. }) if account_id == "444455556666"
        ));
        for bad in [
            "",
            "nope",
            "arn:aws:s3:::bucket",
            "arn:aws:kms:us-east-1:1:thing/x",
            "1234abcd-12ab-34cd-56ef-1234567890aZ",
        ] {
            assert!(
                parse_key_ref("111122223333", "us-east-1", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn context_encoding_is_unambiguous() {
        let a: EncryptionContext = [("ab".to_string(), "c".to_string())].into();
        let b: EncryptionContext = [("a".to_string(), "bc".to_string())].into();
        assert_ne!(ciphertext_aad("k", &a), ciphertext_aad("k", &b));
        assert_ne!(ciphertext_aad("k1", &a), ciphertext_aad("k2", &a));
        assert_eq!(
            ciphertext_aad("k", &EncryptionContext::new()),
            ciphertext_aad("k", &EncryptionContext::new())
        );
    }

    #[test]
    fn pagination_and_markers() {
        let items: Vec<u32> = (0..5).collect();
        let p = paginate(items.clone(), u32::to_string, 2, None).unwrap();
        assert_eq!(p.items, vec![0, 1]);
        assert_eq!(p.next_marker.as_deref(), Some("2"));
        let p = paginate(items.clone(), u32::to_string, 2, Some("4")).unwrap();
        assert_eq!(p.items, vec![4]);
        assert_eq!(p.next_marker, None);
        assert!(paginate(items, u32::to_string, 2, Some("9")).is_err());
    }

    #[test]
    fn data_key_sizes() {
        assert_eq!(data_key_length(Some("AES_256"), None).unwrap(), 32);
        assert_eq!(data_key_length(Some("AES_128"), None).unwrap(), 16);
        assert_eq!(data_key_length(None, Some(64)).unwrap(), 64);
        assert!(data_key_length(None, None).is_err());
        assert!(data_key_length(Some("AES_256"), Some(32)).is_err());
        assert!(data_key_length(None, Some(0)).is_err());
        assert!(data_key_length(None, Some(1025)).is_err());
        assert!(data_key_length(Some("AES_512"), None).is_err());
    }
}
