//! The KMS API in AWS JSON 1.1 (`X-Amz-Target: TrentService.<Operation>`): request and
//! response shapes of the botocore service model (`kms/2014-11-01/service-2.json`), and the
//! dispatch to `coffer-core`'s key service.
//!
//! Blobs (`Plaintext`, `CiphertextBlob`) travel base64-encoded; plaintexts and data keys are
//! held in zeroizing buffers until they are written into the response body. Timestamps are
//! epoch seconds. Errors carry KMS's own exception names; an internal failure is
//! `KMSInternalException` (500).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_core::kms::{CreateKeyInput, EncryptionContext, Page};
use coffer_core::{Caller, Coffer, CoreError, KeyManager, KeyState, KmsKeyRecord, SecretBytes};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::secretsmanager::{parse, secs, to_body};

/// A domain error as KMS reports it.
fn kms_error(e: CoreError) -> ApiError {
    match e {
        CoreError::Internal(_) => {
            let api = ApiError::from(e);
            ApiError {
                code: "KMSInternalException",
                message: api.message,
                status: 500,
            }
        }
        CoreError::NotFound(m) => ApiError::new("NotFoundException", m),
        CoreError::ResourceExists(m) => ApiError::new("AlreadyExistsException", m),
        CoreError::InvalidParameter(m) | CoreError::InvalidRequest(m) => {
            ApiError::new("ValidationException", m)
        }
        other => ApiError::from(other),
    }
}

fn required<T>(value: Option<T>, member: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::missing(member))
}

/// A base64 blob member, decoded into a zeroizing buffer.
#[derive(Default)]
struct Blob(Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        BASE64
            .decode(text.as_bytes())
            .map(|b| Blob(Zeroizing::new(b)))
            .map_err(|_| serde::de::Error::custom("a blob member is not valid base64"))
    }
}

fn blob_required(
    blob: Option<Blob>,
    member: &str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let b = required(blob, member)?.0;
    if b.is_empty() {
        return Err(ApiError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length greater than or equal to 1"
            ),
        ));
    }
    if b.len() > max {
        return Err(ApiError::new(
            "ValidationException",
            format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
            ),
        ));
    }
    Ok(b)
}

fn grant_tokens(tokens: Option<&Vec<String>>) -> Result<(), ApiError> {
    match tokens {
        Some(t) if t.len() > 10 => Err(ApiError::new(
            "ValidationException",
            "1 validation error detected: Value at 'grantTokens' failed to satisfy constraint: Member must have length less than or equal to 10",
        )),
        // coffer has no grants, so no grant token can name one.
        Some(t) if !t.is_empty() => Err(ApiError::new(
            "InvalidGrantTokenException",
            "coffer does not support grants; the grant token is not valid.",
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagDto {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

fn tags_from(tags: Option<Vec<TagDto>>) -> Result<Vec<(String, String)>, ApiError> {
    tags.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let key = required(t.tag_key, &format!("tags.{}.member.tagKey", i + 1))?;
            let value = required(t.tag_value, &format!("tags.{}.member.tagValue", i + 1))?;
            Ok((key, value))
        })
        .collect()
}

fn state_name(s: KeyState) -> &'static str {
    match s {
        KeyState::Enabled => "Enabled",
        KeyState::Disabled => "Disabled",
        KeyState::PendingDeletion => "PendingDeletion",
    }
}

fn key_metadata(k: &KmsKeyRecord) -> Value {
    let mut m = Map::new();
    m.insert("AWSAccountId".into(), k.account_id.clone().into());
    m.insert("KeyId".into(), k.key_id.clone().into());
    m.insert("Arn".into(), k.arn().into());
    m.insert("CreationDate".into(), secs(k.created_ms).into());
    m.insert("Enabled".into(), (k.state == KeyState::Enabled).into());
    m.insert("Description".into(), k.description.clone().into());
    m.insert("KeyUsage".into(), "ENCRYPT_DECRYPT".into());
    m.insert("KeyState".into(), state_name(k.state).into());
    if let Some(due) = k.deletion_due_ms {
        m.insert("DeletionDate".into(), secs(due).into());
    }
    m.insert("Origin".into(), "AWS_KMS".into());
    m.insert(
        "KeyManager".into(),
        match k.manager {
            KeyManager::Customer => "CUSTOMER",
            KeyManager::Aws => "AWS",
        }
        .into(),
    );
    m.insert("CustomerMasterKeySpec".into(), "SYMMETRIC_DEFAULT".into());
    m.insert("KeySpec".into(), "SYMMETRIC_DEFAULT".into());
    m.insert("EncryptionAlgorithms".into(), json!(["SYMMETRIC_DEFAULT"]));
    m.insert("MultiRegion".into(), false.into());
    // `PendingDeletionWindowInDays` is "present only when the KeyState of the KMS key is
    // PendingReplicaDeletion" (KeyMetadata), a state of multi-Region replicas coffer has not.
    if let Some(material) = k.current_material() {
        m.insert(
            "CurrentKeyMaterialId".into(),
            material.material_id.clone().into(),
        );
    }
    Value::Object(m)
}

fn paged<T>(page: Page<T>, member: &str, item: impl Fn(&T) -> Value) -> Value {
    let mut m = Map::new();
    m.insert(member.into(), page.items.iter().map(item).collect());
    m.insert("Truncated".into(), page.next_marker.is_some().into());
    if let Some(next) = page.next_marker {
        m.insert("NextMarker".into(), next.into());
    }
    Value::Object(m)
}

/// A response body that carries a plaintext: built in a zeroizing buffer.
fn with_plaintext(
    mut fields: Map<String, Value>,
    plaintext: &SecretBytes,
) -> Result<Vec<u8>, ApiError> {
    let encoded = Zeroizing::new(BASE64.encode(plaintext.expose()));
    // The placeholder is replaced after encoding so that the plaintext never sits in a
    // `serde_json::Value`, which is not zeroized on drop.
    fields.insert("Plaintext".into(), Value::String("\u{0}".into()));
    let skeleton = to_body(&Value::Object(fields))?;
    let marker = b"\"\\u0000\"";
    let at = skeleton
        .windows(marker.len())
        .position(|w| w == marker)
        .ok_or_else(|| kms_error(CoreError::Internal("response placeholder missing".into())))?;
    let mut out = Zeroizing::new(Vec::with_capacity(skeleton.len() + encoded.len()));
    out.extend_from_slice(&skeleton[..at]);
    out.push(b'"');
    out.extend_from_slice(encoded.as_bytes());
    out.push(b'"');
    out.extend_from_slice(&skeleton[at + marker.len()..]);
    Ok(std::mem::take(&mut *out))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdOnly {
    key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyDto {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    customer_master_key_spec: Option<String>,
    key_spec: Option<String>,
    origin: Option<String>,
    custom_key_store_id: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    tags: Option<Vec<TagDto>>,
    multi_region: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListDto {
    key_id: Option<String>,
    limit: Option<i64>,
    marker: Option<String>,
    include_key_material: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleDeletionDto {
    key_id: Option<String>,
    pending_window_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasDto {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptDto {
    key_id: Option<String>,
    plaintext: Option<Blob>,
    encryption_context: Option<EncryptionContext>,
    grant_tokens: Option<Vec<String>>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptDto {
    ciphertext_blob: Option<Blob>,
    encryption_context: Option<EncryptionContext>,
    grant_tokens: Option<Vec<String>>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    recipient: Option<Value>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptDto {
    ciphertext_blob: Option<Blob>,
    source_encryption_context: Option<EncryptionContext>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Option<EncryptionContext>,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    grant_tokens: Option<Vec<String>>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DataKeyDto {
    key_id: Option<String>,
    encryption_context: Option<EncryptionContext>,
    number_of_bytes: Option<i64>,
    key_spec: Option<String>,
    grant_tokens: Option<Vec<String>>,
    recipient: Option<Value>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RandomDto {
    number_of_bytes: Option<i64>,
    custom_key_store_id: Option<String>,
    recipient: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyPolicyDto {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotationDto {
    key_id: Option<String>,
    rotation_period_in_days: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceDto {
    key_id: Option<String>,
    tags: Option<Vec<TagDto>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceDto {
    key_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

fn no_recipient(recipient: Option<&Value>) -> Result<(), ApiError> {
    if recipient.is_some() {
        return Err(ApiError::new(
            "UnsupportedOperationException",
            "coffer does not support Recipient (Nitro Enclaves attestation).",
        ));
    }
    Ok(())
}

pub(crate) async fn dispatch(
    coffer: &Coffer,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let key_id = |d: KeyIdOnly| required(d.key_id, "keyId");
    match operation {
        "CreateKey" => {
            let d: CreateKeyDto = parse(body)?;
            let input = CreateKeyInput {
                policy: d.policy,
                description: d.description,
                key_usage: d.key_usage,
                key_spec: d.key_spec,
                customer_master_key_spec: d.customer_master_key_spec,
                origin: d.origin,
                custom_key_store_id: d.custom_key_store_id,
                bypass_policy_lockout_safety_check: d
                    .bypass_policy_lockout_safety_check
                    .unwrap_or(false),
                tags: tags_from(d.tags)?,
                multi_region: d.multi_region,
            };
            let k = coffer
                .kms_create_key(caller, input)
                .await
                .map_err(kms_error)?;
            to_body(&json!({"KeyMetadata": key_metadata(&k)}))
        }
        "DescribeKey" => {
            let id = key_id(parse(body)?)?;
            let k = coffer
                .kms_describe_key(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({"KeyMetadata": key_metadata(&k)}))
        }
        "ListKeys" => {
            let d: ListDto = parse(body)?;
            let page = coffer
                .kms_list_keys(caller, d.limit, d.marker.as_deref())
                .await
                .map_err(kms_error)?;
            to_body(&paged(
                page,
                "Keys",
                |k| json!({"KeyId": k.key_id, "KeyArn": k.arn()}),
            ))
        }
        "EnableKey" => {
            let id = key_id(parse(body)?)?;
            coffer
                .kms_enable_key(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "DisableKey" => {
            let id = key_id(parse(body)?)?;
            coffer
                .kms_disable_key(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "ScheduleKeyDeletion" => {
            let d: ScheduleDeletionDto = parse(body)?;
            let k = coffer
                .kms_schedule_key_deletion(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.pending_window_in_days,
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({
                "KeyId": k.arn(),
                "DeletionDate": k.deletion_due_ms.map(secs),
                "KeyState": state_name(k.state),
                "PendingWindowInDays": k.pending_window_days,
            }))
        }
        "CancelKeyDeletion" => {
            let id = key_id(parse(body)?)?;
            let k = coffer
                .kms_cancel_key_deletion(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({"KeyId": k.arn()}))
        }
        "CreateAlias" | "UpdateAlias" => {
            let d: AliasDto = parse(body)?;
            let name = required(d.alias_name, "aliasName")?;
            let target = required(d.target_key_id, "targetKeyId")?;
            if operation == "CreateAlias" {
                coffer.kms_create_alias(caller, &name, &target).await
            } else {
                coffer.kms_update_alias(caller, &name, &target).await
            }
            .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "DeleteAlias" => {
            let d: AliasDto = parse(body)?;
            coffer
                .kms_delete_alias(caller, &required(d.alias_name, "aliasName")?)
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "ListAliases" => {
            let d: ListDto = parse(body)?;
            let page = coffer
                .kms_list_aliases(caller, d.key_id.as_deref(), d.limit, d.marker.as_deref())
                .await
                .map_err(kms_error)?;
            to_body(&paged(page, "Aliases", |a| {
                let mut m = Map::new();
                m.insert("AliasName".into(), a.alias_name.clone().into());
                m.insert("AliasArn".into(), a.alias_arn.clone().into());
                if let Some(t) = &a.target_key_id {
                    m.insert("TargetKeyId".into(), t.clone().into());
                }
                if let Some(t) = a.created_ms {
                    m.insert("CreationDate".into(), secs(t).into());
                }
                if let Some(t) = a.updated_ms {
                    m.insert("LastUpdatedDate".into(), secs(t).into());
                }
                Value::Object(m)
            }))
        }
        "Encrypt" => {
            let d: EncryptDto = parse(body)?;
            grant_tokens(d.grant_tokens.as_ref())?;
            let id = required(d.key_id, "keyId")?;
            let plaintext =
                SecretBytes::new(std::mem::take(&mut *required(d.plaintext, "plaintext")?.0));
            let c = coffer
                .kms_encrypt(
                    caller,
                    &id,
                    &plaintext,
                    &d.encryption_context.unwrap_or_default(),
                    d.encryption_algorithm.as_deref(),
                    d.dry_run.unwrap_or(false),
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({
                "CiphertextBlob": BASE64.encode(&c.blob),
                "KeyId": c.key_arn,
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }))
        }
        "Decrypt" => {
            let d: DecryptDto = parse(body)?;
            grant_tokens(d.grant_tokens.as_ref())?;
            no_recipient(d.recipient.as_ref())?;
            let blob = blob_required(d.ciphertext_blob, "ciphertextBlob", 6144)?;
            let p = coffer
                .kms_decrypt(
                    caller,
                    &blob,
                    &d.encryption_context.unwrap_or_default(),
                    d.key_id.as_deref(),
                    d.encryption_algorithm.as_deref(),
                    d.dry_run.unwrap_or(false),
                )
                .await
                .map_err(kms_error)?;
            let mut m = Map::new();
            m.insert("KeyId".into(), p.key_arn.clone().into());
            m.insert("EncryptionAlgorithm".into(), "SYMMETRIC_DEFAULT".into());
            m.insert("KeyMaterialId".into(), p.material_id.clone().into());
            with_plaintext(m, &p.plaintext)
        }
        "ReEncrypt" => {
            let d: ReEncryptDto = parse(body)?;
            grant_tokens(d.grant_tokens.as_ref())?;
            for algorithm in [
                &d.source_encryption_algorithm,
                &d.destination_encryption_algorithm,
            ] {
                if let Some(a) = algorithm
                    && a != "SYMMETRIC_DEFAULT"
                {
                    return Err(ApiError::new(
                        "InvalidKeyUsageException",
                        format!(
                            "The encryption algorithm {a} is not supported by a symmetric encryption KMS key."
                        ),
                    ));
                }
            }
            let blob = blob_required(d.ciphertext_blob, "ciphertextBlob", 6144)?;
            let destination = required(d.destination_key_id, "destinationKeyId")?;
            let r = coffer
                .kms_re_encrypt(
                    caller,
                    &blob,
                    &d.source_encryption_context.unwrap_or_default(),
                    d.source_key_id.as_deref(),
                    &destination,
                    &d.destination_encryption_context.unwrap_or_default(),
                    d.dry_run.unwrap_or(false),
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({
                "CiphertextBlob": BASE64.encode(&r.ciphertext.blob),
                "SourceKeyId": r.source_key_arn,
                "KeyId": r.ciphertext.key_arn,
                "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "SourceKeyMaterialId": r.source_material_id,
                "DestinationKeyMaterialId": r.ciphertext.material_id,
            }))
        }
        "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
            let d: DataKeyDto = parse(body)?;
            grant_tokens(d.grant_tokens.as_ref())?;
            no_recipient(d.recipient.as_ref())?;
            let with_plaintext_out = operation == "GenerateDataKey";
            let k = coffer
                .kms_generate_data_key(
                    caller,
                    &required(d.key_id, "keyId")?,
                    &d.encryption_context.unwrap_or_default(),
                    d.key_spec.as_deref(),
                    d.number_of_bytes,
                    with_plaintext_out,
                    d.dry_run.unwrap_or(false),
                )
                .await
                .map_err(kms_error)?;
            let mut m = Map::new();
            m.insert(
                "CiphertextBlob".into(),
                BASE64.encode(&k.ciphertext.blob).into(),
            );
            m.insert("KeyId".into(), k.ciphertext.key_arn.clone().into());
            m.insert(
                "KeyMaterialId".into(),
                k.ciphertext.material_id.clone().into(),
            );
            match &k.plaintext {
                Some(p) => with_plaintext(m, p),
                None => to_body(&Value::Object(m)),
            }
        }
        "GenerateRandom" => {
            let d: RandomDto = parse(body)?;
            no_recipient(d.recipient.as_ref())?;
            let bytes = coffer
                .kms_generate_random(caller, d.number_of_bytes, d.custom_key_store_id.as_deref())
                .await
                .map_err(kms_error)?;
            with_plaintext(Map::new(), &bytes)
        }
        "GetKeyPolicy" => {
            let d: KeyPolicyDto = parse(body)?;
            let policy = coffer
                .kms_get_key_policy(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.policy_name.as_deref(),
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({"Policy": policy, "PolicyName": "default"}))
        }
        "PutKeyPolicy" => {
            let d: KeyPolicyDto = parse(body)?;
            coffer
                .kms_put_key_policy(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.policy_name.as_deref(),
                    &required(d.policy, "policy")?,
                    d.bypass_policy_lockout_safety_check.unwrap_or(false),
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "ListKeyPolicies" => {
            let d: ListDto = parse(body)?;
            let names = coffer
                .kms_list_key_policies(caller, &required(d.key_id, "keyId")?)
                .await
                .map_err(kms_error)?;
            to_body(&json!({"PolicyNames": names, "Truncated": false}))
        }
        "EnableKeyRotation" => {
            let d: RotationDto = parse(body)?;
            coffer
                .kms_enable_key_rotation(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.rotation_period_in_days,
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "DisableKeyRotation" => {
            let id = key_id(parse(body)?)?;
            coffer
                .kms_disable_key_rotation(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "GetKeyRotationStatus" => {
            let id = key_id(parse(body)?)?;
            let s = coffer
                .kms_key_rotation_status(caller, &id)
                .await
                .map_err(kms_error)?;
            let mut m = Map::new();
            m.insert("KeyRotationEnabled".into(), s.enabled.into());
            m.insert("KeyId".into(), s.key_arn.into());
            if let Some(p) = s.period_days {
                m.insert("RotationPeriodInDays".into(), p.into());
            }
            if let Some(t) = s.next_rotation_ms {
                m.insert("NextRotationDate".into(), secs(t).into());
            }
            to_body(&Value::Object(m))
        }
        "RotateKeyOnDemand" => {
            let id = key_id(parse(body)?)?;
            let key = coffer
                .kms_rotate_key_on_demand(caller, &id)
                .await
                .map_err(kms_error)?;
            to_body(&json!({"KeyId": key}))
        }
        "ListKeyRotations" => {
            let d: ListDto = parse(body)?;
            let page = coffer
                .kms_list_key_rotations(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.include_key_material.as_deref(),
                    d.limit,
                    d.marker.as_deref(),
                )
                .await
                .map_err(kms_error)?;
            to_body(&paged(page, "Rotations", |r| {
                let mut m = Map::new();
                m.insert("KeyId".into(), r.key_id.clone().into());
                m.insert("KeyMaterialId".into(), r.material_id.clone().into());
                m.insert(
                    "KeyMaterialState".into(),
                    if r.current { "CURRENT" } else { "NON_CURRENT" }.into(),
                );
                m.insert(
                    "ExpirationModel".into(),
                    "KEY_MATERIAL_DOES_NOT_EXPIRE".into(),
                );
                if let Some(t) = r.rotation_ms {
                    m.insert("RotationDate".into(), secs(t).into());
                }
                if let Some(t) = &r.rotation_type {
                    m.insert("RotationType".into(), t.clone().into());
                }
                Value::Object(m)
            }))
        }
        "TagResource" => {
            let d: TagResourceDto = parse(body)?;
            let tags = tags_from(Some(required(d.tags, "tags")?))?;
            coffer
                .kms_tag_resource(caller, &required(d.key_id, "keyId")?, &tags)
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "UntagResource" => {
            let d: UntagResourceDto = parse(body)?;
            coffer
                .kms_untag_resource(
                    caller,
                    &required(d.key_id, "keyId")?,
                    &required(d.tag_keys, "tagKeys")?,
                )
                .await
                .map_err(kms_error)?;
            to_body(&json!({}))
        }
        "ListResourceTags" => {
            let d: ListDto = parse(body)?;
            let page = coffer
                .kms_list_resource_tags(
                    caller,
                    &required(d.key_id, "keyId")?,
                    d.limit,
                    d.marker.as_deref(),
                )
                .await
                .map_err(kms_error)?;
            to_body(&paged(
                page,
                "Tags",
                |(k, v)| json!({"TagKey": k, "TagValue": v}),
            ))
        }
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("coffer does not implement the KMS operation {other}."),
        )),
    }
}
