//! The Secrets Manager operations: each takes the authenticated [`Caller`] and a typed input
//! and returns a typed output or a [`CoreError`] carrying AWS's message.
//!
//! Writes follow one pattern: read the secret's record, apply the rules to a copy, and write
//! it back conditional on the revision that was read; a concurrent change makes the write
//! fail with a conflict and the operation starts again from a fresh read. Plaintext values
//! are sealed before they reach the store and opened only into [`SecretBytes`].

use coffer_crypto::constant_time_eq;
use coffer_store::{SecretRecord, SecretWrite, Store, StoreError, ValueKind, VersionRecord};

use crate::listing::{self, Filter, SortBy};
use crate::stages::{self, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use crate::{Caller, Coffer, CoreError, RequestKeys, SecretBytes, ids, keyring::ValueBinding};

const DAY_MS: i64 = 86_400_000;
const MAX_VALUE_BYTES: usize = 65_536;
const MAX_TAGS: usize = 50;
pub(crate) const WRITE_ATTEMPTS: usize = 16;

/// A secret value as given by or returned to a client.
#[derive(Debug, Clone)]
pub enum SecretValue {
    String(SecretBytes),
    Binary(SecretBytes),
}

impl SecretValue {
    fn kind(&self) -> ValueKind {
        match self {
            SecretValue::String(_) => ValueKind::String,
            SecretValue::Binary(_) => ValueKind::Binary,
        }
    }

    fn bytes(&self) -> &SecretBytes {
        match self {
            SecretValue::String(b) | SecretValue::Binary(b) => b,
        }
    }
}

#[derive(Debug, Default)]
pub struct CreateSecretInput {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct PutSecretValueInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub value: Option<SecretValue>,
    pub version_stages: Option<Vec<String>>,
}

#[derive(Debug, Default)]
pub struct UpdateSecretInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
}

/// What a write returns: the secret and, when a version was made, its id and labels.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    pub arn: String,
    pub name: String,
    pub version_id: Option<String>,
    pub version_stages: Vec<String>,
}

#[derive(Debug, Default)]
pub struct GetSecretValueInput {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

#[derive(Debug)]
pub struct SecretValueOutput {
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
    pub created_ms: i64,
    pub value: SecretValue,
}

#[derive(Debug, Default)]
pub struct ListSecretsInput {
    pub include_planned_deletion: bool,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Vec<Filter>,
    pub sort_by: SortBy,
    pub descending: bool,
}

#[derive(Debug)]
pub struct ListSecretsOutput {
    pub secrets: Vec<SecretRecord>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default)]
pub struct BatchGetSecretValueInput {
    pub secret_ids: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Debug)]
pub struct BatchGetSecretValueOutput {
    pub values: Vec<SecretValueOutput>,
    /// Per-secret failures: the id as given, and why.
    pub errors: Vec<(String, CoreError)>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default)]
pub struct ListSecretVersionIdsInput {
    pub secret_id: String,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: bool,
}

#[derive(Debug)]
pub struct ListSecretVersionIdsOutput {
    pub arn: String,
    pub name: String,
    pub versions: Vec<VersionRecord>,
    pub next_token: Option<String>,
}

#[derive(Debug, Default)]
pub struct DeleteSecretInput {
    pub secret_id: String,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Debug)]
pub struct DeleteSecretOutput {
    pub arn: Option<String>,
    pub name: String,
    pub deletion_date_ms: i64,
}

#[derive(Debug, Default)]
pub struct UpdateSecretVersionStageInput {
    pub secret_id: String,
    pub version_stage: String,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

// ---------- validation (AWS's model constraints and service rules) ----------

fn length_error(field: &str, value: Option<&str>, constraint: &str) -> CoreError {
    let shown = value.map(|v| format!(" '{v}'")).unwrap_or_default();
    CoreError::Validation(format!(
        "1 validation error detected: Value{shown} at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

fn check_len(
    field: &str,
    value: &str,
    min: usize,
    max: usize,
    sensitive: bool,
) -> Result<(), CoreError> {
    let n = value.chars().count();
    let shown = if sensitive { None } else { Some(value) };
    if n < min {
        return Err(length_error(
            field,
            shown,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(length_error(
            field,
            shown,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_name(name: &str) -> Result<(), CoreError> {
    check_len("name", name, 1, 512, false)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
    {
        return Err(invalid_name());
    }
    Ok(())
}

/// AWS answers a name or secret id with characters outside the name alphabet with a
/// `ValidationException` on every operation (recorded against AWS in LocalStack's
/// `test_invalid_secret_name` snapshot), not with `InvalidParameterException`.
fn invalid_name() -> CoreError {
    CoreError::Validation(
        "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
            .into(),
    )
}

/// A `SecretId` is a name or an ARN: the name alphabet plus `:`.
pub(crate) fn validate_secret_id(secret_id: &str) -> Result<(), CoreError> {
    check_len("secretId", secret_id, 1, 2048, false)?;
    if !secret_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-:".contains(&b))
    {
        return Err(invalid_name());
    }
    Ok(())
}

/// Raw requests must carry their own token: the SDKs and the CLI generate one, and AWS refuses
/// a new version without it (recorded against AWS in LocalStack's `test_no_client_request_token`).
fn require_token(token: Option<String>) -> Result<String, CoreError> {
    token.ok_or_else(|| {
        CoreError::InvalidRequest(
            "You must provide a ClientRequestToken value. We recommend a UUID-type value.".into(),
        )
    })
}

/// `RotateSecret`'s ClientRequestToken: the id of the version the rotation makes.
pub(crate) fn validate_rotation_token(token: Option<&str>) -> Result<Option<String>, CoreError> {
    validate_token(token)
}

fn validate_token(token: Option<&str>) -> Result<Option<String>, CoreError> {
    match token {
        Some(t) => {
            check_len("clientRequestToken", t, 32, 64, false)?;
            Ok(Some(t.to_string()))
        }
        None => Ok(None),
    }
}

fn validate_value(value: Option<&SecretValue>) -> Result<(), CoreError> {
    if let Some(v) = value {
        let field = match v {
            SecretValue::String(_) => "secretString",
            SecretValue::Binary(_) => "secretBinary",
        };
        let n = v.bytes().len();
        if n == 0 {
            return Err(length_error(
                field,
                None,
                "Member must have length greater than or equal to 1",
            ));
        }
        if n > MAX_VALUE_BYTES {
            return Err(length_error(
                field,
                None,
                "Member must have length less than or equal to 65536",
            ));
        }
    }
    Ok(())
}

fn validate_description(d: Option<&str>) -> Result<(), CoreError> {
    d.map_or(Ok(()), |d| check_len("description", d, 0, 2048, false))
}

fn validate_kms_key(k: Option<&str>) -> Result<(), CoreError> {
    match k {
        None => Ok(()),
        Some(k) => check_len("kmsKeyId", k, 0, 2048, false),
    }
}

fn validate_tags(tags: &[(String, String)]) -> Result<(), CoreError> {
    for (i, (k, v)) in tags.iter().enumerate() {
        check_len(&format!("tags.{}.member.key", i + 1), k, 1, 128, false)?;
        check_len(&format!("tags.{}.member.value", i + 1), v, 0, 256, false)?;
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(CoreError::InvalidParameter(format!(
                "Invalid tag key {k}: the aws: prefix is reserved for use by AWS."
            )));
        }
        let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
        if !k.chars().all(allowed) || !v.chars().all(allowed) {
            return Err(CoreError::InvalidParameter(
                "Tag keys and values may contain only letters, numbers, spaces and the characters _ . : / = + - @".into(),
            ));
        }
    }
    Ok(())
}

fn validate_stage(stage: &str) -> Result<(), CoreError> {
    check_len("versionStage", stage, 1, 256, false)
}

fn merge_tags(
    existing: &mut Vec<(String, String)>,
    new: &[(String, String)],
) -> Result<(), CoreError> {
    for (k, v) in new {
        match existing.iter_mut().find(|(ek, _)| ek == k) {
            Some(slot) => slot.1 = v.clone(),
            None => existing.push((k.clone(), v.clone())),
        }
    }
    // TagResource declares no LimitExceededException in the service model; AWS reports the
    // tag quota as an invalid parameter.
    if existing.len() > MAX_TAGS {
        return Err(CoreError::InvalidParameter(format!(
            "The request failed because it would exceed the limit of {MAX_TAGS} tags per secret."
        )));
    }
    Ok(())
}

fn midnight(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

fn page_size(
    max_results: Option<i64>,
    default: usize,
    max: i64,
    field: &str,
) -> Result<usize, CoreError> {
    match max_results {
        None => Ok(default),
        Some(n) if n < 1 => Err(length_error(
            field,
            Some(&n.to_string()),
            "Member must have value greater than or equal to 1",
        )),
        Some(n) if n > max => Err(length_error(
            field,
            Some(&n.to_string()),
            &format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => usize::try_from(n).map_err(|_| CoreError::Internal("page size".into())),
    }
}

fn paginate<T>(
    items: Vec<T>,
    size: usize,
    token: Option<&str>,
    fingerprint: &str,
) -> Result<(Vec<T>, Option<String>), CoreError> {
    let start = match token {
        Some(t) => listing::decode_token(t, fingerprint)?,
        None => 0,
    };
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let end = start.saturating_add(size);
    let next = (end < total).then(|| listing::encode_token(end, fingerprint));
    Ok((page, next))
}

impl<S: Store> Coffer<S> {
    // ---------- lookup ----------

    /// Finds a secret by name, full ARN or partial ARN (the ARN without the `-XXXXXX`
    /// suffix) in the caller's account and region, or by full ARN in another account of the
    /// caller's region. Whether the caller may use what is found is for `find_authorized`.
    async fn find_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<Option<SecretRecord>, CoreError> {
        validate_secret_id(secret_id)?;
        if let Some(rest) = secret_id.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(6, ':').collect();
            let [
                _partition,
                service,
                region,
                account,
                resource_type,
                name_part,
            ] = parts.as_slice()
            else {
                return Ok(None);
            };
            if *service != "secretsmanager" || *resource_type != "secret" {
                return Ok(None);
            }
            // Secrets are regional: an ARN of another region names nothing here (replication is
            // not implemented), whichever account it names.
            if *region != caller.region {
                return Ok(None);
            }
            // "To retrieve a secret from another account, you must use an ARN" (API reference,
            // GetSecretValue/SecretId): another account's secret is found by its full ARN only,
            // never by name or partial ARN, and then both the caller's identity-based policies
            // and the secret's resource policy must allow the request (`decide`).
            if *account != caller.account_id {
                return Ok(self
                    .store
                    .get_secret_by_arn(secret_id)
                    .await?
                    .filter(|s| s.account_id == *account && s.region == *region));
            }
            if let Some(found) = self.store.get_secret_by_arn(secret_id).await? {
                return Ok(Some(found));
            }
            return Ok(self
                .store
                .get_secret_by_name(account, region, name_part)
                .await?);
        }
        Ok(self
            .store
            .get_secret_by_name(&caller.account_id, &caller.region, secret_id)
            .await?)
    }

    /// Finds the secret and authorizes `action` on it before anything is read from it. A
    /// secret that does not exist is authorized against the ARN it would have, so a caller
    /// without access learns nothing about which secrets exist.
    pub(crate) async fn require_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
        keys: RequestKeys,
    ) -> Result<SecretRecord, CoreError> {
        self.find_authorized(caller, secret_id, action, keys)
            .await?
            .ok_or_else(CoreError::secret_not_found)
    }

    /// Finds the secret and authorizes `action` on it, with the secret's condition keys
    /// (`secretsmanager:SecretId`, `secretsmanager:ResourceTag/*`, `aws:ResourceTag/*`) and
    /// the operation's `keys`.
    async fn find_authorized(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
        mut keys: RequestKeys,
    ) -> Result<Option<SecretRecord>, CoreError> {
        let found = self.find_secret(caller, secret_id).await?;
        let resource = match &found {
            Some(rec) => rec.arn.clone(),
            None if secret_id.starts_with("arn:") => secret_id.to_string(),
            None => format!(
                "arn:aws:secretsmanager:{}:{}:secret:{secret_id}",
                caller.region, caller.account_id
            ),
        };
        let policy = match found.as_ref().and_then(|r| r.resource_policy.as_deref()) {
            // Stored policies were validated on write; one that no longer parses grants nothing.
            Some(text) => crate::policies::parse(text, crate::policies::Kind::Resource).ok(),
            None => None,
        };
        // The root user without a resource policy is decided without evaluation, so the
        // condition keys are only built when a policy will read them (GetSecretValue's hot path).
        if !caller.is_unrestricted_root() || policy.is_some() {
            keys.push(("secretsmanager:SecretId".into(), vec![resource.clone()]));
            if let Some(rec) = &found {
                for (k, v) in &rec.tags {
                    keys.push((format!("secretsmanager:ResourceTag/{k}"), vec![v.clone()]));
                    keys.push((format!("aws:ResourceTag/{k}"), vec![v.clone()]));
                }
            }
        }
        self.decide(caller, action, &resource, keys, policy.as_ref())
            .await
            .map(|()| found)
    }

    pub(crate) async fn require_live_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
        keys: RequestKeys,
    ) -> Result<SecretRecord, CoreError> {
        let rec = self.require_secret(caller, secret_id, action, keys).await?;
        if rec.deleted_ms.is_some() {
            return Err(CoreError::marked_for_deletion());
        }
        Ok(rec)
    }

    fn binding<'a>(
        rec: &'a SecretRecord,
        version_id: &'a str,
        kind: ValueKind,
    ) -> ValueBinding<'a> {
        ValueBinding {
            account_id: &rec.account_id,
            region: &rec.region,
            arn: &rec.arn,
            version_id,
            kind,
        }
    }

    async fn seal(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        version_id: &str,
        value: &SecretValue,
    ) -> Result<coffer_store::SealedValue, CoreError> {
        let data_key = coffer_crypto::SymmetricKey::generate()?;
        let wrapped_key = self
            .secret_data_key(
                caller,
                &rec.account_id,
                &rec.region,
                rec.kms_key_id.as_deref(),
                &secret_context(&rec.arn, version_id),
                &data_key,
            )
            .await?;
        let sealed = self.keyring.seal_with_data_key(
            &data_key,
            &Self::binding(rec, version_id, value.kind()),
            value.bytes().expose(),
        )?;
        Ok(coffer_store::SealedValue {
            wrapped_key,
            sealed,
        })
    }

    async fn open_version(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        version: &VersionRecord,
    ) -> Result<SecretValue, CoreError> {
        if version.empty {
            return Err(CoreError::NotFound(format!(
                "Secrets Manager can't find the specified secret value for VersionId: {}",
                version.version_id
            )));
        }
        let sealed = self
            .store
            .get_sealed_value(&rec.arn, &version.version_id)
            .await?
            .ok_or_else(|| {
                CoreError::Internal(format!(
                    "value of version {} of {} is missing",
                    version.version_id, rec.arn
                ))
            })?;
        let binding = Self::binding(rec, &version.version_id, version.kind);
        let plain = match self
            .open_secret_data_key(
                caller,
                &rec.region,
                &sealed.wrapped_key,
                &secret_context(&rec.arn, &version.version_id),
            )
            .await?
        {
            Some(data_key) => {
                self.keyring
                    .open_with_data_key(&data_key, &binding, &sealed.sealed)?
            }
            None => {
                // Written before the key service, under the account's own key: like the AWS
                // managed key, it serves only its own account.
                if caller.account_id != rec.account_id {
                    return Err(crate::kms::default_key_cross_account());
                }
                let key = self.account_key(&rec.account_id).await?;
                self.keyring.open_value(&key, &binding, &sealed)?
            }
        };
        Ok(match version.kind {
            ValueKind::String => SecretValue::String(plain),
            ValueKind::Binary => SecretValue::Binary(plain),
        })
    }

    /// Re-seals the versions labelled AWSCURRENT, AWSPENDING or AWSPREVIOUS under `next`'s
    /// KMS key when it differs from `rec`'s ("Secrets Manager re-encrypts the AWSCURRENT,
    /// AWSPENDING, and AWSPREVIOUS versions with the new key", user guide, "Secret encryption
    /// and decryption"). Versions added by this write are already under the new key.
    async fn reseal_staged(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        next: &SecretRecord,
        write: &mut SecretWrite,
    ) -> Result<(), CoreError> {
        if rec.kms_key_id == next.kms_key_id {
            return Ok(());
        }
        for version in &next.versions {
            let labelled = version
                .stages
                .iter()
                .any(|s| s == AWSCURRENT || s == AWSPENDING || s == AWSPREVIOUS);
            let added = write
                .new_values
                .iter()
                .any(|(id, _)| *id == version.version_id);
            if !labelled || added || version.empty {
                continue;
            }
            let value = self.open_version(caller, rec, version).await?;
            let sealed = self.seal(caller, next, &version.version_id, &value).await?;
            write
                .replaced_values
                .push((version.version_id.clone(), sealed));
        }
        Ok(())
    }

    /// Whether an existing version holds exactly `value` (for idempotent retries).
    async fn same_value(
        &self,
        caller: &Caller,
        rec: &SecretRecord,
        version: &VersionRecord,
        value: &SecretValue,
    ) -> Result<bool, CoreError> {
        if version.kind != value.kind() {
            return Ok(false);
        }
        let stored = self.open_version(caller, rec, version).await?;
        Ok(constant_time_eq(
            stored.bytes().expose(),
            value.bytes().expose(),
        ))
    }

    /// Writes `next` if the secret is still at `current.revision`. `Ok(false)` on conflict.
    pub(crate) async fn commit(
        &self,
        current: &SecretRecord,
        mut next: SecretRecord,
        write: SecretWrite,
    ) -> Result<bool, CoreError> {
        next.revision = current.revision + 1;
        match self
            .store
            .update_secret(current.revision, next, write)
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn too_much_contention() -> CoreError {
        CoreError::Internal("the secret is being changed by many requests at once; retry".into())
    }

    // ---------- operations ----------

    pub async fn create_secret(
        &self,
        caller: &Caller,
        input: CreateSecretInput,
    ) -> Result<WriteOutcome, CoreError> {
        validate_name(&input.name)?;
        let token = validate_token(input.client_request_token.as_deref())?;
        validate_description(input.description.as_deref())?;
        validate_kms_key(input.kms_key_id.as_deref())?;
        validate_value(input.value.as_ref())?;
        validate_tags(&input.tags)?;
        let mut tags = Vec::new();
        merge_tags(&mut tags, &input.tags)?;
        // Authorized on the ARN the new secret will carry, before anything is read.
        let arn = format!(
            "arn:aws:secretsmanager:{}:{}:secret:{}-{}",
            caller.region,
            caller.account_id,
            input.name,
            ids::arn_suffix()?
        );
        let mut keys: RequestKeys = vec![("secretsmanager:Name".into(), vec![input.name.clone()])];
        if let Some(d) = &input.description {
            keys.push(("secretsmanager:Description".into(), vec![d.clone()]));
        }
        if let Some(k) = &input.kms_key_id {
            keys.push(("secretsmanager:KmsKeyId".into(), vec![k.clone()]));
        }
        keys.extend(request_tag_keys(&input.tags));
        self.authorize_with(caller, "secretsmanager:CreateSecret", &arn, keys)
            .await?;

        if let Some(existing) = self
            .store
            .get_secret_by_name(&caller.account_id, &caller.region, &input.name)
            .await?
        {
            if existing.deleted_ms.is_some() {
                return Err(CoreError::InvalidRequest(
                    "You can't create this secret because a secret with this name is already scheduled for deletion."
                        .into(),
                ));
            }
            // A retried CreateSecret with the same token and value succeeds again (API
            // reference, CreateSecret/ClientRequestToken); with another value it fails.
            if let (Some(t), Some(v)) = (&token, &input.value)
                && let Some(version) = existing.versions.iter().find(|ver| &ver.version_id == t)
            {
                if self.same_value(caller, &existing, version, v).await? {
                    return Ok(WriteOutcome {
                        arn: existing.arn.clone(),
                        name: existing.name.clone(),
                        version_id: Some(t.clone()),
                        version_stages: version.stages.clone(),
                    });
                }
                return Err(token_in_use(t, &existing.arn));
            }
            return Err(CoreError::ResourceExists(format!(
                "The operation failed because the secret {} already exists.",
                input.name
            )));
        }

        let now = self.clock.now_millis();
        let mut rec = SecretRecord {
            arn,
            account_id: caller.account_id.clone(),
            region: caller.region.clone(),
            name: input.name,
            description: input.description,
            kms_key_id: input.kms_key_id.filter(|k| !k.is_empty()),
            tags,
            owning_service: None,
            created_ms: now,
            last_changed_ms: now,
            last_accessed_ms: None,
            deleted_ms: None,
            deletion_due_ms: None,
            resource_policy: None,
            rotation: None,
            versions: Vec::new(),
            revision: 1,
        };
        let mut write = SecretWrite::default();
        let mut outcome = WriteOutcome {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            version_id: None,
            version_stages: vec![],
        };
        if input.value.is_none()
            && let Some(k) = &rec.kms_key_id
        {
            self.check_secret_key(&rec, k).await?;
        }
        if let Some(value) = &input.value {
            let version_id = require_token(token)?;
            let sealed = self.seal(caller, &rec, &version_id, value).await?;
            let version = VersionRecord {
                version_id: version_id.clone(),
                stages: vec![],
                created_ms: now,
                last_accessed_ms: None,
                kind: value.kind(),
                empty: false,
            };
            stages::add_version(&mut rec.versions, version, &[AWSCURRENT.to_string()])?;
            write.new_values.push((version_id.clone(), sealed));
            outcome.version_id = Some(version_id);
            outcome.version_stages = vec![AWSCURRENT.to_string()];
        }
        self.store
            .create_secret(rec, write)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => CoreError::ResourceExists(format!(
                    "The operation failed because the secret {} already exists.",
                    outcome.name
                )),
                other => other.into(),
            })?;
        Ok(outcome)
    }

    /// Adds a version carrying `stages` (idempotent on the token), shared by
    /// `PutSecretValue` and `UpdateSecret`.
    async fn add_version(
        &self,
        caller: &Caller,
        new: NewVersion<'_>,
        mut also: impl FnMut(&mut SecretRecord),
    ) -> Result<WriteOutcome, CoreError> {
        let NewVersion {
            secret_id,
            action,
            token,
            value,
            stages: version_stages,
        } = new;
        let version_id = require_token(token)?;
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_live_secret(caller, secret_id, action, Vec::new())
                .await?;
            if let Some(existing) = rec
                .versions
                .iter()
                .find(|v| v.version_id == version_id && v.empty)
            {
                // The version a rotation made (AWSPENDING, no value yet): createSecret fills
                // it, keeping its labels and adding the ones given.
                let now = self.clock.now_millis();
                let mut next = rec.clone();
                also(&mut next);
                let sealed = self.seal(caller, &next, &version_id, value).await?;
                let mut labels = existing.stages.clone();
                for stage in version_stages {
                    if !labels.contains(stage) {
                        labels.push(stage.clone());
                    }
                }
                next.versions.retain(|v| v.version_id != version_id);
                let version = VersionRecord {
                    version_id: version_id.clone(),
                    stages: vec![],
                    created_ms: now,
                    last_accessed_ms: None,
                    kind: value.kind(),
                    empty: false,
                };
                stages::add_version(&mut next.versions, version, &labels)?;
                next.last_changed_ms = now;
                let outcome = WriteOutcome {
                    arn: next.arn.clone(),
                    name: next.name.clone(),
                    version_id: Some(version_id.clone()),
                    version_stages: labels,
                };
                let mut write = SecretWrite {
                    new_values: vec![(version_id.clone(), sealed)],
                    removed_versions: Vec::new(),
                    replaced_values: Vec::new(),
                };
                self.reseal_staged(caller, &rec, &next, &mut write).await?;
                if self.commit(&rec, next, write).await? {
                    return Ok(outcome);
                }
                continue;
            }
            if let Some(existing) = rec.versions.iter().find(|v| v.version_id == version_id) {
                if self.same_value(caller, &rec, existing, value).await? {
                    return Ok(WriteOutcome {
                        arn: rec.arn.clone(),
                        name: rec.name.clone(),
                        version_id: Some(version_id),
                        version_stages: existing.stages.clone(),
                    });
                }
                return Err(token_in_use(&version_id, &rec.arn));
            }
            let now = self.clock.now_millis();
            let mut next = rec.clone();
            also(&mut next);
            let sealed = self.seal(caller, &next, &version_id, value).await?;
            let version = VersionRecord {
                version_id: version_id.clone(),
                stages: vec![],
                created_ms: now,
                last_accessed_ms: None,
                kind: value.kind(),
                empty: false,
            };
            stages::add_version(&mut next.versions, version, version_stages)?;
            let removed = stages::prune(&mut next.versions, now);
            next.last_changed_ms = now;
            let outcome = WriteOutcome {
                arn: next.arn.clone(),
                name: next.name.clone(),
                version_id: Some(version_id.clone()),
                version_stages: version_stages.to_vec(),
            };
            let mut write = SecretWrite {
                new_values: vec![(version_id.clone(), sealed)],
                removed_versions: removed,
                replaced_values: Vec::new(),
            };
            self.reseal_staged(caller, &rec, &next, &mut write).await?;
            if self.commit(&rec, next, write).await? {
                return Ok(outcome);
            }
        }
        Err(Self::too_much_contention())
    }

    pub async fn put_secret_value(
        &self,
        caller: &Caller,
        input: PutSecretValueInput,
    ) -> Result<WriteOutcome, CoreError> {
        validate_secret_id(&input.secret_id)?;
        let token = validate_token(input.client_request_token.as_deref())?;
        validate_value(input.value.as_ref())?;
        let stages = match input.version_stages {
            Some(s) => {
                if s.is_empty() || s.len() > 20 {
                    return Err(length_error(
                        "versionStages",
                        None,
                        "Member must have length less than or equal to 20",
                    ));
                }
                s.iter().try_for_each(|x| validate_stage(x))?;
                s
            }
            None => vec![AWSCURRENT.to_string()],
        };
        let Some(value) = input.value else {
            return Err(CoreError::InvalidParameter(
                "You must provide either SecretString or SecretBinary.".into(),
            ));
        };
        let new = NewVersion {
            secret_id: &input.secret_id,
            action: "secretsmanager:PutSecretValue",
            token,
            value: &value,
            stages: &stages,
        };
        self.add_version(caller, new, |_| {}).await
    }

    pub async fn update_secret(
        &self,
        caller: &Caller,
        input: UpdateSecretInput,
    ) -> Result<WriteOutcome, CoreError> {
        validate_secret_id(&input.secret_id)?;
        let token = validate_token(input.client_request_token.as_deref())?;
        validate_description(input.description.as_deref())?;
        validate_kms_key(input.kms_key_id.as_deref())?;
        validate_value(input.value.as_ref())?;
        let description = input.description.clone();
        // "If you set this to an empty string, Secrets Manager uses the AWS managed key
        // aws/secretsmanager" (UpdateSecret, KmsKeyId): `Some(None)` switches to the default.
        let kms_key_id: Option<Option<String>> = input
            .kms_key_id
            .clone()
            .map(|k| (!k.is_empty()).then_some(k));
        let apply = |rec: &mut SecretRecord| {
            if let Some(d) = &description {
                rec.description = Some(d.clone());
            }
            if let Some(k) = &kms_key_id {
                rec.kms_key_id.clone_from(k);
            }
        };
        if let Some(value) = &input.value {
            return self
                .add_version(
                    caller,
                    NewVersion {
                        secret_id: &input.secret_id,
                        action: "secretsmanager:UpdateSecret",
                        token,
                        value,
                        stages: &[AWSCURRENT.to_string()],
                    },
                    apply,
                )
                .await;
        }
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_live_secret(
                    caller,
                    &input.secret_id,
                    "secretsmanager:UpdateSecret",
                    Vec::new(),
                )
                .await?;
            let outcome = WriteOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: None,
                version_stages: vec![],
            };
            if description.is_none() && kms_key_id.is_none() {
                return Ok(outcome);
            }
            // With a new value, sealing it under the new key checks the key; without one there
            // may be nothing to re-seal, so the key must be checked here.
            if let Some(Some(k)) = &kms_key_id {
                self.check_secret_key(&rec, k).await?;
            }
            let mut next = rec.clone();
            apply(&mut next);
            next.last_changed_ms = self.clock.now_millis();
            let mut write = SecretWrite::default();
            self.reseal_staged(caller, &rec, &next, &mut write).await?;
            if self.commit(&rec, next, write).await? {
                return Ok(outcome);
            }
        }
        Err(Self::too_much_contention())
    }

    pub async fn update_secret_version_stage(
        &self,
        caller: &Caller,
        input: UpdateSecretVersionStageInput,
    ) -> Result<WriteOutcome, CoreError> {
        validate_stage(&input.version_stage)?;
        for id in [&input.remove_from_version_id, &input.move_to_version_id]
            .into_iter()
            .flatten()
        {
            check_len("versionId", id, 32, 64, false)?;
        }
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_live_secret(
                    caller,
                    &input.secret_id,
                    "secretsmanager:UpdateSecretVersionStage",
                    Vec::new(),
                )
                .await?;
            let mut next = rec.clone();
            stages::update_stage(
                &mut next.versions,
                &input.version_stage,
                input.remove_from_version_id.as_deref(),
                input.move_to_version_id.as_deref(),
            )?;
            let now = self.clock.now_millis();
            let removed = stages::prune(&mut next.versions, now);
            next.last_changed_ms = now;
            let outcome = WriteOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: None,
                version_stages: vec![],
            };
            if self
                .commit(
                    &rec,
                    next,
                    SecretWrite {
                        removed_versions: removed,
                        ..SecretWrite::default()
                    },
                )
                .await?
            {
                return Ok(outcome);
            }
        }
        Err(Self::too_much_contention())
    }

    pub async fn describe_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<SecretRecord, CoreError> {
        self.require_secret(
            caller,
            secret_id,
            "secretsmanager:DescribeSecret",
            Vec::new(),
        )
        .await
    }

    pub async fn get_secret_value(
        &self,
        caller: &Caller,
        input: GetSecretValueInput,
    ) -> Result<SecretValueOutput, CoreError> {
        if let Some(v) = &input.version_id {
            check_len("versionId", v, 32, 64, false)?;
        }
        if let Some(s) = &input.version_stage {
            validate_stage(s)?;
        }
        let rec = self
            .require_live_secret(
                caller,
                &input.secret_id,
                "secretsmanager:GetSecretValue",
                version_keys(&input),
            )
            .await?;
        let version = match (&input.version_id, &input.version_stage) {
            (Some(id), stage) => {
                let v = rec.versions.iter().find(|v| &v.version_id == id).ok_or_else(|| {
                    CoreError::NotFound(format!("Secrets Manager can't find the specified secret value for VersionId: {id}"))
                })?;
                if let Some(stage) = stage
                    && !v.stages.iter().any(|s| s == stage)
                {
                    return Err(CoreError::InvalidRequest(
                        "You provided a VersionStage that is not associated to the provided VersionId.".into(),
                    ));
                }
                v
            }
            (None, stage) => {
                let stage = stage.as_deref().unwrap_or(AWSCURRENT);
                stages::holder(&rec.versions, stage).ok_or_else(|| {
                    CoreError::NotFound(format!("Secrets Manager can't find the specified secret value for staging label: {stage}"))
                })?
            }
        };
        let value = self.open_version(caller, &rec, version).await?;
        let today = midnight(self.clock.now_millis());
        if rec.last_accessed_ms != Some(today) || version.last_accessed_ms != Some(today) {
            // LastAccessedDate has day granularity, so this writes at most once a day per
            // version; a failure here must not fail the read.
            if let Err(e) = self
                .store
                .touch_access(&rec.arn, &version.version_id, today)
                .await
            {
                tracing::warn!(error = %e, "could not record LastAccessedDate");
            }
        }
        Ok(SecretValueOutput {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            version_id: version.version_id.clone(),
            version_stages: version.stages.clone(),
            created_ms: version.created_ms,
            value,
        })
    }

    pub async fn batch_get_secret_value(
        &self,
        caller: &Caller,
        input: BatchGetSecretValueInput,
    ) -> Result<BatchGetSecretValueOutput, CoreError> {
        // Each secret is also authorized for GetSecretValue; a denial lands in `Errors`.
        self.authorize(caller, "secretsmanager:BatchGetSecretValue", "*")
            .await?;
        match (&input.secret_ids, &input.filters) {
            (Some(_), Some(_)) => {
                return Err(CoreError::InvalidParameter(
                    "Either 'SecretIdList' or 'Filters' must be provided, but not both.".into(),
                ));
            }
            (None, None) => {
                return Err(CoreError::InvalidParameter(
                    "Either 'SecretIdList' or 'Filters' must be provided.".into(),
                ));
            }
            (Some(_), None) if input.max_results.is_some() => {
                return Err(CoreError::InvalidParameter(
                    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.".into(),
                ));
            }
            _ => {}
        }
        let mut out = BatchGetSecretValueOutput {
            values: vec![],
            errors: vec![],
            next_token: None,
        };
        if let Some(ids) = input.secret_ids {
            if ids.is_empty() || ids.len() > 20 {
                return Err(length_error(
                    "secretIdList",
                    None,
                    "Member must have length less than or equal to 20",
                ));
            }
            for id in ids {
                match self
                    .get_secret_value(
                        caller,
                        GetSecretValueInput {
                            secret_id: id.clone(),
                            ..Default::default()
                        },
                    )
                    .await
                {
                    Ok(v) => out.values.push(v),
                    Err(CoreError::Internal(e)) => return Err(CoreError::Internal(e)),
                    Err(e) => out.errors.push((id, e)),
                }
            }
            return Ok(out);
        }
        let filters = input.filters.unwrap_or_default();
        if filters.len() > 10 {
            return Err(length_error(
                "filters",
                None,
                "Member must have length less than or equal to 10",
            ));
        }
        listing::validate_filters(&filters)?;
        let size = page_size(input.max_results, 20, 20, "maxResults")?;
        let mut all: Vec<SecretRecord> = self
            .store
            .list_secrets(&caller.account_id, &caller.region)
            .await?
            .into_iter()
            .filter(|s| s.deleted_ms.is_none() && listing::matches(s, &filters))
            .collect();
        listing::sort(&mut all, SortBy::CreatedDate, false);
        let fp = listing::fingerprint(&["batch", &format!("{filters:?}")]);
        let (page, next) = paginate(all, size, input.next_token.as_deref(), &fp)?;
        out.next_token = next;
        for s in page {
            match self
                .get_secret_value(
                    caller,
                    GetSecretValueInput {
                        secret_id: s.arn.clone(),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(v) => out.values.push(v),
                Err(CoreError::Internal(e)) => return Err(CoreError::Internal(e)),
                Err(e) => out.errors.push((s.arn, e)),
            }
        }
        Ok(out)
    }

    pub async fn list_secrets(
        &self,
        caller: &Caller,
        input: ListSecretsInput,
    ) -> Result<ListSecretsOutput, CoreError> {
        self.authorize(caller, "secretsmanager:ListSecrets", "*")
            .await?;
        if input.filters.len() > 10 {
            return Err(length_error(
                "filters",
                None,
                "Member must have length less than or equal to 10",
            ));
        }
        listing::validate_filters(&input.filters)?;
        let size = page_size(input.max_results, 100, 100, "maxResults")?;
        let mut all: Vec<SecretRecord> = self
            .store
            .list_secrets(&caller.account_id, &caller.region)
            .await?
            .into_iter()
            .filter(|s| {
                (input.include_planned_deletion || s.deleted_ms.is_none())
                    && listing::matches(s, &input.filters)
            })
            .collect();
        listing::sort(&mut all, input.sort_by, input.descending);
        let fp = listing::fingerprint(&[
            "list",
            &format!("{:?}", input.filters),
            &format!(
                "{:?}{}{}",
                input.sort_by, input.descending, input.include_planned_deletion
            ),
        ]);
        let (secrets, next_token) = paginate(all, size, input.next_token.as_deref(), &fp)?;
        Ok(ListSecretsOutput {
            secrets,
            next_token,
        })
    }

    pub async fn list_secret_version_ids(
        &self,
        caller: &Caller,
        input: ListSecretVersionIdsInput,
    ) -> Result<ListSecretVersionIdsOutput, CoreError> {
        let size = page_size(input.max_results, 100, 100, "maxResults")?;
        let rec = self
            .require_secret(
                caller,
                &input.secret_id,
                "secretsmanager:ListSecretVersionIds",
                Vec::new(),
            )
            .await?;
        let mut versions: Vec<VersionRecord> = rec
            .versions
            .iter()
            .filter(|v| input.include_deprecated || !v.stages.is_empty())
            .cloned()
            .collect();
        versions.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then_with(|| a.version_id.cmp(&b.version_id))
        });
        let fp =
            listing::fingerprint(&["versions", &rec.arn, &input.include_deprecated.to_string()]);
        let (versions, next_token) = paginate(versions, size, input.next_token.as_deref(), &fp)?;
        Ok(ListSecretVersionIdsOutput {
            arn: rec.arn,
            name: rec.name,
            versions,
            next_token,
        })
    }

    pub async fn delete_secret(
        &self,
        caller: &Caller,
        input: DeleteSecretInput,
    ) -> Result<DeleteSecretOutput, CoreError> {
        let force = input.force_delete_without_recovery.unwrap_or(false);
        // AWS checks the range before the combination (moto#6461 quotes AWS answering a zero
        // window with force by the range error).
        let days = input.recovery_window_in_days.unwrap_or(30);
        if !(7..=30).contains(&days) {
            return Err(CoreError::InvalidParameter(
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).".into(),
            ));
        }
        if force && input.recovery_window_in_days.is_some() {
            return Err(CoreError::InvalidParameter(
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.".into(),
            ));
        }
        for _ in 0..WRITE_ATTEMPTS {
            let now = self.clock.now_millis();
            let Some(rec) = self
                .find_authorized(
                    caller,
                    &input.secret_id,
                    "secretsmanager:DeleteSecret",
                    Vec::new(),
                )
                .await?
            else {
                // Forcing the deletion of a secret that does not exist is not an error (API
                // reference, DeleteSecret/ForceDeleteWithoutRecovery).
                if force {
                    // AWS still answers with an ARN, made up for the name.
                    let arn = if input.secret_id.starts_with("arn:") {
                        input.secret_id.clone()
                    } else {
                        format!(
                            "arn:aws:secretsmanager:{}:{}:secret:{}-{}",
                            caller.region,
                            caller.account_id,
                            input.secret_id,
                            ids::arn_suffix()?
                        )
                    };
                    return Ok(DeleteSecretOutput {
                        arn: Some(arn),
                        name: input.secret_id.clone(),
                        deletion_date_ms: now,
                    });
                }
                return Err(CoreError::secret_not_found());
            };
            if force {
                self.store.purge_secret(&rec.arn).await?;
                return Ok(DeleteSecretOutput {
                    arn: Some(rec.arn),
                    name: rec.name,
                    deletion_date_ms: now,
                });
            }
            if rec.deleted_ms.is_some() {
                return Err(CoreError::marked_for_deletion());
            }
            let due = now + days * DAY_MS;
            let mut next = rec.clone();
            next.deleted_ms = Some(now);
            next.deletion_due_ms = Some(due);
            if self.commit(&rec, next, SecretWrite::default()).await? {
                return Ok(DeleteSecretOutput {
                    arn: Some(rec.arn),
                    name: rec.name,
                    deletion_date_ms: due,
                });
            }
        }
        Err(Self::too_much_contention())
    }

    pub async fn restore_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<WriteOutcome, CoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_secret(
                    caller,
                    secret_id,
                    "secretsmanager:RestoreSecret",
                    Vec::new(),
                )
                .await?;
            let outcome = WriteOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: None,
                version_stages: vec![],
            };
            if rec.deleted_ms.is_none() {
                return Ok(outcome);
            }
            let mut next = rec.clone();
            next.deleted_ms = None;
            next.deletion_due_ms = None;
            if self.commit(&rec, next, SecretWrite::default()).await? {
                return Ok(outcome);
            }
        }
        Err(Self::too_much_contention())
    }

    pub async fn tag_resource(
        &self,
        caller: &Caller,
        secret_id: &str,
        tags: &[(String, String)],
    ) -> Result<(), CoreError> {
        validate_tags(tags)?;
        self.change_tags(
            caller,
            secret_id,
            "secretsmanager:TagResource",
            &request_tag_keys(tags),
            |existing| merge_tags(existing, tags),
        )
        .await
    }

    pub async fn untag_resource(
        &self,
        caller: &Caller,
        secret_id: &str,
        keys: &[String],
    ) -> Result<(), CoreError> {
        for (i, k) in keys.iter().enumerate() {
            check_len(&format!("tagKeys.{}.member", i + 1), k, 1, 128, false)?;
        }
        self.change_tags(
            caller,
            secret_id,
            "secretsmanager:UntagResource",
            &vec![("aws:TagKeys".to_string(), keys.to_vec())],
            |existing| {
                existing.retain(|(k, _)| !keys.contains(k));
                Ok(())
            },
        )
        .await
    }

    async fn change_tags(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
        keys: &RequestKeys,
        change: impl Fn(&mut Vec<(String, String)>) -> Result<(), CoreError>,
    ) -> Result<(), CoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_live_secret(caller, secret_id, action, keys.clone())
                .await?;
            let mut next = rec.clone();
            change(&mut next.tags)?;
            next.last_changed_ms = self.clock.now_millis();
            if self.commit(&rec, next, SecretWrite::default()).await? {
                return Ok(());
            }
        }
        Err(Self::too_much_contention())
    }

    /// `GetRandomPassword`.
    pub async fn random_password(
        &self,
        caller: &Caller,
        spec: &crate::password::PasswordSpec,
    ) -> Result<SecretBytes, CoreError> {
        self.authorize(caller, "secretsmanager:GetRandomPassword", "*")
            .await?;
        crate::password::generate(spec)
    }

    /// `GetResourcePolicy`: the secret's ARN, name and policy, if one is attached.
    pub async fn resource_policy(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<(String, String, Option<String>), CoreError> {
        let rec = self
            .require_secret(
                caller,
                secret_id,
                "secretsmanager:GetResourcePolicy",
                Vec::new(),
            )
            .await?;
        Ok((rec.arn, rec.name, rec.resource_policy))
    }

    /// `ListResourcePolicies`: the names of the secret's policies. A secret has at most the
    /// one policy `PutResourcePolicy` sets, which AWS names `default`.
    pub async fn list_resource_policies(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<Vec<String>, CoreError> {
        let rec = self
            .require_secret(
                caller,
                secret_id,
                "secretsmanager:ListResourcePolicies",
                Vec::new(),
            )
            .await?;
        Ok(rec
            .resource_policy
            .map(|_| "default".to_string())
            .into_iter()
            .collect())
    }

    /// `PutResourcePolicy`: attaches a resource-based policy; with `block_public_policy`,
    /// refuses one that grants access beyond the account.
    pub async fn put_resource_policy(
        &self,
        caller: &Caller,
        secret_id: &str,
        policy: &str,
        block_public_policy: bool,
    ) -> Result<WriteOutcome, CoreError> {
        check_len(
            "resourcePolicy",
            policy,
            1,
            coffer_policy::SECRET_RESOURCE_POLICY_MAX,
            true,
        )?;
        parse_secret_policy(policy)?;
        // Broad is judged from the secret's account: a policy another account puts on it
        // (cross-account PutResourcePolicy) must keep access within the owner's account.
        if block_public_policy
            && !crate::policies::broad_access(policy, owner_account(caller, secret_id)).is_empty()
        {
            return Err(CoreError::PublicPolicy(
                "The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.".into(),
            ));
        }
        self.set_resource_policy(
            caller,
            secret_id,
            "secretsmanager:PutResourcePolicy",
            vec![(
                "secretsmanager:BlockPublicPolicy".into(),
                vec![block_public_policy.to_string()],
            )],
            Some(policy.to_string()),
        )
        .await
    }

    pub async fn delete_resource_policy(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<WriteOutcome, CoreError> {
        self.set_resource_policy(
            caller,
            secret_id,
            "secretsmanager:DeleteResourcePolicy",
            Vec::new(),
            None,
        )
        .await
    }

    async fn set_resource_policy(
        &self,
        caller: &Caller,
        secret_id: &str,
        action: &str,
        keys: RequestKeys,
        policy: Option<String>,
    ) -> Result<WriteOutcome, CoreError> {
        for _ in 0..WRITE_ATTEMPTS {
            let rec = self
                .require_live_secret(caller, secret_id, action, keys.clone())
                .await?;
            let outcome = WriteOutcome {
                arn: rec.arn.clone(),
                name: rec.name.clone(),
                version_id: None,
                version_stages: vec![],
            };
            let mut next = rec.clone();
            next.resource_policy = policy.clone();
            next.last_changed_ms = self.clock.now_millis();
            if self.commit(&rec, next, SecretWrite::default()).await? {
                return Ok(outcome);
            }
        }
        Err(Self::too_much_contention())
    }

    /// `ValidateResourcePolicy`: syntax and broad-access findings, as `(check, message)`.
    pub async fn validate_resource_policy(
        &self,
        caller: &Caller,
        secret_id: Option<&str>,
        policy: &str,
    ) -> Result<Vec<(String, String)>, CoreError> {
        match secret_id {
            Some(id) => {
                self.require_secret(
                    caller,
                    id,
                    "secretsmanager:ValidateResourcePolicy",
                    Vec::new(),
                )
                .await?;
            }
            None => {
                self.authorize(caller, "secretsmanager:ValidateResourcePolicy", "*")
                    .await?
            }
        }
        check_len(
            "resourcePolicy",
            policy,
            1,
            coffer_policy::SECRET_RESOURCE_POLICY_MAX,
            true,
        )?;
        let mut findings = Vec::new();
        match crate::policies::parse(policy, crate::policies::Kind::Resource) {
            Err(e) => findings.push(("SYNTAX_CHECK".to_string(), e.to_string())),
            Ok(_) => {
                let owner =
                    secret_id.map_or(caller.account_id.as_str(), |id| owner_account(caller, id));
                for problem in crate::policies::broad_access(policy, owner) {
                    findings.push(("BROAD_ACCESS_CHECK".to_string(), problem));
                }
            }
        }
        Ok(findings)
    }

    /// Purges every secret whose recovery window has ended: its record, versions, wrapped
    /// data keys and ciphertext are deleted (and overwritten on disk). Returns how many.
    /// Also does the key service's due work: destroying keys after their waiting period and
    /// automatic material rotation.
    pub async fn purge_due(&self) -> Result<usize, CoreError> {
        let due = self
            .store
            .secrets_due_for_purge(self.clock.now_millis())
            .await?;
        for arn in &due {
            // Read only to describe the deletion in its event; a failed read must not stop
            // the purge.
            let record = self.store.get_secret_by_arn(arn).await.ok().flatten();
            self.store.purge_secret(arn).await?;
            tracing::info!(secret = %arn, "purged secret at the end of its recovery window");
            if let Some(rec) = record {
                // Named like KMS's `DeleteKey` service event for a key deleted at the end of
                // its waiting period (KMS developer guide, "DeleteKey" CloudTrail example).
                self.record_service_event(crate::audit::ServiceEvent {
                    source: crate::audit::EventSource::SecretsManager,
                    event_name: "DeleteSecret",
                    account_id: &rec.account_id,
                    region: &rec.region,
                    resource: crate::audit::Resource::secret(rec.arn.clone()),
                    details: serde_json::json!({ "secretId": rec.arn, "name": rec.name }),
                })
                .await;
            }
        }
        self.kms_run_due().await?;
        Ok(due.len())
    }
}

/// The encryption context Secrets Manager binds a version's data key to (user guide,
/// "Secrets Manager encryption context").
fn secret_context(arn: &str, version_id: &str) -> crate::kms::EncryptionContext {
    [
        ("SecretARN".to_string(), arn.to_string()),
        ("SecretVersionId".to_string(), version_id.to_string()),
    ]
    .into()
}

/// A version to add: to which secret, under which authorized action, with which token,
/// value and labels.
struct NewVersion<'a> {
    secret_id: &'a str,
    action: &'a str,
    token: Option<String>,
    value: &'a SecretValue,
    stages: &'a [String],
}

/// A resource policy for a secret; Secrets Manager answers any invalid document with one
/// message (aws-cloudformation-user-guide#623 quotes it).
fn parse_secret_policy(policy: &str) -> Result<coffer_policy::Policy, CoreError> {
    crate::policies::parse(policy, crate::policies::Kind::Resource)
        .map_err(|_| CoreError::MalformedPolicy("This policy has invalid syntax.".into()))
}

/// The 12-digit account of an ARN (its fifth field), if it names one.
fn arn_account(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?
        .split(':')
        .nth(3)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
}

/// The account whose secret `secret_id` names: the account of a full or partial ARN, else
/// the caller's (names are always looked up in the caller's account).
fn owner_account<'a>(caller: &'a Caller, secret_id: &'a str) -> &'a str {
    arn_account(secret_id).unwrap_or(&caller.account_id)
}

/// `aws:RequestTag/*` and `aws:TagKeys` for the tags a request sets.
fn request_tag_keys(tags: &[(String, String)]) -> RequestKeys {
    let mut keys: RequestKeys = tags
        .iter()
        .map(|(k, v)| (format!("aws:RequestTag/{k}"), vec![v.clone()]))
        .collect();
    keys.push((
        "aws:TagKeys".into(),
        tags.iter().map(|(k, _)| k.clone()).collect(),
    ));
    keys
}

/// `secretsmanager:VersionId` and `secretsmanager:VersionStage` of a read.
fn version_keys(input: &GetSecretValueInput) -> RequestKeys {
    let mut keys = RequestKeys::new();
    if let Some(v) = &input.version_id {
        keys.push(("secretsmanager:VersionId".into(), vec![v.clone()]));
    }
    if let Some(v) = &input.version_stage {
        keys.push(("secretsmanager:VersionStage".into(), vec![v.clone()]));
    }
    keys
}

fn token_in_use(token: &str, arn: &str) -> CoreError {
    CoreError::ResourceExists(format!(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    ))
}
