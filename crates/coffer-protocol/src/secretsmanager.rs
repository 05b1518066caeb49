//! The Secrets Manager API in AWS JSON 1.1: request and response shapes of the botocore
//! service model (`secretsmanager/2017-10-17/service-2.json`), and the dispatch from
//! `X-Amz-Target: secretsmanager.<Operation>` to `coffer-core`.
//!
//! Inputs are read into DTOs here and turned into core inputs; outputs are written straight
//! from core results. Secret values are held in zeroizing buffers until they are written
//! into the response body. Unknown members are ignored, as AWS does, so newer SDKs keep
//! working.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_core::listing::{Filter, FilterKey, SortBy};
use coffer_core::password::PasswordSpec;
use coffer_core::rotation::{RotateSecretInput, RotationOutcome};
use coffer_core::{
    BatchGetSecretValueInput, Caller, Coffer, CreateSecretInput, DeleteSecretInput,
    GetSecretValueInput, ListSecretVersionIdsInput, ListSecretsInput, PutSecretValueInput,
    SecretBytes, SecretRecord, SecretValue, SecretValueOutput, UpdateSecretInput,
    UpdateSecretVersionStageInput, WriteOutcome,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::ApiError;

/// A sensitive string member (`SecretString`): kept in a zeroizing buffer.
#[derive(Default)]
struct Sensitive(Zeroizing<String>);

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Sensitive(Zeroizing::new(s)))
    }
}

impl Sensitive {
    fn into_secret(self) -> SecretBytes {
        SecretBytes::new(std::mem::take(&mut *Zeroizing::new(
            self.0.as_bytes().to_vec(),
        )))
    }
}

pub(crate) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // SDKs send `{}` for an operation without members; an empty body is read the same way.
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::serialization(describe_json_error(&e)))
}

fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("The request body is not valid JSON: {e}"),
        Category::Data => format!("A member of the request has the wrong type: {e}"),
        Category::Io => "The request body could not be read.".to_string(),
    }
}

fn required(value: Option<String>, member: &str) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::missing(member))
}

fn value_from(
    string: Option<Sensitive>,
    binary: Option<String>,
) -> Result<Option<SecretValue>, ApiError> {
    match (string, binary) {
        (Some(_), Some(_)) => Err(ApiError::new(
            "InvalidParameterException",
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (Some(s), None) => Ok(Some(SecretValue::String(s.into_secret()))),
        (None, Some(b)) => {
            let bytes = Zeroizing::new(b);
            let decoded = BASE64
                .decode(bytes.as_bytes())
                .map_err(|_| ApiError::serialization("SecretBinary is not valid base64."))?;
            Ok(Some(SecretValue::Binary(SecretBytes::new(decoded))))
        }
        (None, None) => Ok(None),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagDto {
    key: Option<String>,
    value: Option<String>,
}

fn tags_from(tags: Option<Vec<TagDto>>) -> Result<Vec<(String, String)>, ApiError> {
    tags.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let key = t
                .key
                .ok_or_else(|| ApiError::missing(&format!("tags.{}.member.key", i + 1)))?;
            Ok((key, t.value.unwrap_or_default()))
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FilterDto {
    key: Option<String>,
    values: Option<Vec<String>>,
}

fn filters_from(filters: Option<Vec<FilterDto>>) -> Result<Vec<Filter>, ApiError> {
    filters
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let key_text = f.key.unwrap_or_default();
            let key = FilterKey::parse(&key_text).ok_or_else(|| {
                ApiError::new(
                    "ValidationException",
                    format!(
                        "1 validation error detected: Value '{key_text}' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]"
                    ),
                )
            })?;
            let values = f.values.unwrap_or_default();
            for v in &values {
                let ok = v.len() <= 512
                    && v.chars().enumerate().all(|(i, c)| c.is_ascii_alphanumeric() || " :_@/+=.-".contains(c) || (c == '!' && i == 0));
                if !ok {
                    return Err(ApiError::new(
                        "ValidationException",
                        format!(
                            "1 validation error detected: Value '[{v}]' at 'filters.1.member.values' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 512, Member must have length greater than or equal to 0, Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$]"
                        ),
                    ));
                }
            }
            Ok(Filter { key, values })
        })
        .collect()
}

// ---------- responses ----------

pub(crate) fn secs(ms: i64) -> f64 {
    // AWS JSON timestamps are epoch seconds; fractional milliseconds keep LastChangedDate's
    // millisecond precision.
    #[allow(clippy::cast_precision_loss)]
    let v = ms as f64 / 1000.0;
    v
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagOut<'a> {
    key: &'a str,
    value: &'a str,
}

fn tags_out(rec: &SecretRecord) -> Option<Vec<TagOut<'_>>> {
    (!rec.tags.is_empty()).then(|| {
        rec.tags
            .iter()
            .map(|(k, v)| TagOut { key: k, value: v })
            .collect()
    })
}

fn stage_map(rec: &SecretRecord) -> serde_json::Map<String, serde_json::Value> {
    rec.versions
        .iter()
        .filter(|v| !v.stages.is_empty())
        .map(|v| {
            (
                v.version_id.clone(),
                serde_json::Value::from(v.stages.clone()),
            )
        })
        .collect()
}

fn describe(rec: &SecretRecord, versions_key: &str) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("ARN".into(), rec.arn.clone().into());
    m.insert("Name".into(), rec.name.clone().into());
    if let Some(d) = &rec.description {
        m.insert("Description".into(), d.clone().into());
    }
    if let Some(k) = &rec.kms_key_id {
        m.insert("KmsKeyId".into(), k.clone().into());
    }
    m.insert("LastChangedDate".into(), secs(rec.last_changed_ms).into());
    if let Some(t) = rec.last_accessed_ms {
        m.insert("LastAccessedDate".into(), secs(t).into());
    }
    if let Some(t) = rec.deleted_ms {
        m.insert("DeletedDate".into(), secs(t).into());
    }
    if let Some(tags) = tags_out(rec) {
        m.insert(
            "Tags".into(),
            serde_json::to_value(tags).unwrap_or_default(),
        );
    }
    let stages = stage_map(rec);
    // AWS omits the map for a secret without labelled versions.
    if !stages.is_empty() {
        m.insert(versions_key.into(), stages.into());
    }
    if let Some(s) = &rec.owning_service {
        m.insert("OwningService".into(), s.clone().into());
    }
    m.insert("CreatedDate".into(), secs(rec.created_ms).into());
    rotation_fields(&mut m, rec);
    serde_json::Value::Object(m)
}

/// RotationEnabled, RotationLambdaARN, RotationRules, LastRotatedDate, NextRotationDate.
fn rotation_fields(m: &mut serde_json::Map<String, serde_json::Value>, rec: &SecretRecord) {
    let Some(r) = &rec.rotation else {
        return;
    };
    m.insert("RotationEnabled".into(), r.enabled.into());
    if let Some(arn) = &r.lambda_arn {
        m.insert("RotationLambdaARN".into(), arn.clone().into());
    }
    // Stored as given; shown as AWS shows them (e.g. `rate(10 days)` also as
    // AutomaticallyAfterDays 10).
    let given = coffer_schedule::RotationRules {
        automatically_after_days: r.automatically_after_days,
        schedule_expression: r.schedule_expression.clone(),
        duration: r.duration.clone(),
    };
    let shown = coffer_schedule::Schedule::parse(&given).map_or(given, |s| s.rules());
    let mut rules = serde_json::Map::new();
    if let Some(d) = shown.automatically_after_days {
        rules.insert("AutomaticallyAfterDays".into(), d.into());
    }
    if let Some(e) = shown.schedule_expression {
        rules.insert("ScheduleExpression".into(), e.into());
    }
    if let Some(d) = shown.duration {
        rules.insert("Duration".into(), d.into());
    }
    if !rules.is_empty() {
        m.insert("RotationRules".into(), rules.into());
    }
    if let Some(t) = r.last_rotated_ms {
        m.insert("LastRotatedDate".into(), secs(t).into());
    }
    if let (true, Some(t)) = (r.enabled, r.next_rotation_ms) {
        m.insert("NextRotationDate".into(), secs(t).into());
    }
}

pub(crate) fn to_body<T: Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|e| {
        ApiError::from(coffer_core::CoreError::Internal(format!(
            "encoding a response: {e}"
        )))
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ValueOut<'a> {
    #[serde(rename = "ARN")]
    arn: &'a str,
    name: &'a str,
    version_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_binary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_string: Option<&'a str>,
    version_stages: &'a [String],
    created_date: f64,
}

/// The JSON of one secret value; the base64 of a binary value is zeroized once written.
fn value_body(v: &SecretValueOutput) -> Result<Vec<u8>, ApiError> {
    let (string, encoded) = match &v.value {
        SecretValue::String(b) => (
            Some(b.as_str().ok_or_else(|| {
                ApiError::from(coffer_core::CoreError::Internal(
                    "stored string is not UTF-8".into(),
                ))
            })?),
            None,
        ),
        SecretValue::Binary(b) => (None, Some(Zeroizing::new(BASE64.encode(b.expose())))),
    };
    let out = ValueOut {
        arn: &v.arn,
        name: &v.name,
        version_id: &v.version_id,
        secret_binary: encoded.as_ref().map(|e| e.as_str()),
        secret_string: string,
        version_stages: &v.version_stages,
        created_date: secs(v.created_ms),
    };
    to_body(&out)
}

fn write_outcome(o: &WriteOutcome, with_stages: bool) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("ARN".into(), o.arn.clone().into());
    m.insert("Name".into(), o.name.clone().into());
    if let Some(v) = &o.version_id {
        m.insert("VersionId".into(), v.clone().into());
    }
    if with_stages && o.version_id.is_some() {
        m.insert("VersionStages".into(), o.version_stages.clone().into());
    }
    serde_json::Value::Object(m)
}

// ---------- operations ----------

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretIdOnly {
    secret_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateSecretDto {
    name: Option<String>,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    secret_binary: Option<String>,
    secret_string: Option<Sensitive>,
    tags: Option<Vec<TagDto>>,
    add_replica_regions: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutSecretValueDto {
    secret_id: Option<String>,
    client_request_token: Option<String>,
    secret_binary: Option<String>,
    secret_string: Option<Sensitive>,
    version_stages: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateSecretDto {
    secret_id: Option<String>,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    secret_binary: Option<String>,
    secret_string: Option<Sensitive>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetSecretValueDto {
    secret_id: Option<String>,
    version_id: Option<String>,
    version_stage: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetDto {
    secret_id_list: Option<Vec<String>>,
    filters: Option<Vec<FilterDto>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListSecretsDto {
    include_planned_deletion: Option<bool>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<FilterDto>>,
    sort_order: Option<String>,
    sort_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListVersionsDto {
    secret_id: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    include_deprecated: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteSecretDto {
    secret_id: Option<String>,
    recovery_window_in_days: Option<i64>,
    force_delete_without_recovery: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateStageDto {
    secret_id: Option<String>,
    version_stage: Option<String>,
    remove_from_version_id: Option<String>,
    move_to_version_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourceDto {
    secret_id: Option<String>,
    tags: Option<Vec<TagDto>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UntagResourceDto {
    secret_id: Option<String>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutPolicyDto {
    secret_id: Option<String>,
    resource_policy: Option<String>,
    block_public_policy: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RandomPasswordDto {
    password_length: Option<i64>,
    exclude_characters: Option<String>,
    exclude_numbers: Option<bool>,
    exclude_punctuation: Option<bool>,
    exclude_uppercase: Option<bool>,
    exclude_lowercase: Option<bool>,
    include_space: Option<bool>,
    require_each_included_type: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotationRulesDto {
    automatically_after_days: Option<i64>,
    schedule_expression: Option<String>,
    duration: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RotateSecretDto {
    secret_id: Option<String>,
    client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    rotation_lambda_arn: Option<String>,
    rotation_rules: Option<RotationRulesDto>,
    rotate_immediately: Option<bool>,
}

fn rotation_outcome(o: &RotationOutcome) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("ARN".into(), o.arn.clone().into());
    m.insert("Name".into(), o.name.clone().into());
    if let Some(v) = &o.version_id {
        m.insert("VersionId".into(), v.clone().into());
    }
    serde_json::Value::Object(m)
}

/// The Secrets Manager operations of the service model that coffer does not serve yet; they
/// arrive with replication.
const NOT_YET: &[&str] = &[
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "StopReplicationToReplica",
];

/// Runs one operation; `Ok` carries the JSON response body.
pub(crate) async fn dispatch(
    coffer: &Coffer,
    caller: &Caller,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    match operation {
        "CreateSecret" => {
            let d: CreateSecretDto = parse(body)?;
            if d.add_replica_regions
                .as_ref()
                .is_some_and(|r| !r.is_empty())
            {
                return Err(ApiError::new(
                    "InvalidRequestException",
                    "coffer does not replicate secrets to other regions yet; create the secret without AddReplicaRegions.",
                ));
            }
            let input = CreateSecretInput {
                name: required(d.name, "name")?,
                client_request_token: d.client_request_token,
                description: d.description,
                kms_key_id: d.kms_key_id,
                value: value_from(d.secret_string, d.secret_binary)?,
                tags: tags_from(d.tags)?,
            };
            let o = coffer.create_secret(caller, input).await?;
            to_body(&write_outcome(&o, false))
        }
        "RotateSecret" => {
            let d: RotateSecretDto = parse(body)?;
            let rules = d.rotation_rules.map(|r| coffer_schedule::RotationRules {
                automatically_after_days: r.automatically_after_days,
                schedule_expression: r.schedule_expression,
                duration: r.duration,
            });
            let input = RotateSecretInput {
                secret_id: required(d.secret_id, "secretId")?,
                client_request_token: d.client_request_token,
                rotation_lambda_arn: d.rotation_lambda_arn,
                rotation_rules: rules,
                rotate_immediately: d.rotate_immediately,
            };
            let o = coffer.rotate_secret(caller, input).await?;
            to_body(&rotation_outcome(&o))
        }
        "CancelRotateSecret" => {
            let d: SecretIdOnly = parse(body)?;
            let o = coffer
                .cancel_rotate_secret(caller, &required(d.secret_id, "secretId")?)
                .await?;
            to_body(&rotation_outcome(&o))
        }
        "DescribeSecret" => {
            let d: SecretIdOnly = parse(body)?;
            let rec = coffer
                .describe_secret(caller, &required(d.secret_id, "secretId")?)
                .await?;
            to_body(&describe(&rec, "VersionIdsToStages"))
        }
        "GetSecretValue" => {
            let d: GetSecretValueDto = parse(body)?;
            let input = GetSecretValueInput {
                secret_id: required(d.secret_id, "secretId")?,
                version_id: d.version_id,
                version_stage: d.version_stage,
            };
            let v = coffer.get_secret_value(caller, input).await?;
            value_body(&v)
        }
        "BatchGetSecretValue" => {
            let d: BatchGetDto = parse(body)?;
            let input = BatchGetSecretValueInput {
                secret_ids: d.secret_id_list,
                filters: match d.filters {
                    Some(f) => Some(filters_from(Some(f))?),
                    None => None,
                },
                max_results: d.max_results,
                next_token: d.next_token,
            };
            let out = coffer.batch_get_secret_value(caller, input).await?;
            let mut buf = Zeroizing::new(Vec::with_capacity(256));
            buf.extend_from_slice(b"{\"SecretValues\":[");
            for (i, v) in out.values.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                let piece = value_body(v)?;
                buf.extend_from_slice(&Zeroizing::new(piece));
            }
            buf.extend_from_slice(b"],\"Errors\":");
            let errors: Vec<serde_json::Value> = out
                .errors
                .into_iter()
                .map(|(id, e)| {
                    let api = ApiError::from(e);
                    serde_json::json!({"SecretId": id, "ErrorCode": api.code, "Message": api.message})
                })
                .collect();
            buf.extend_from_slice(&to_body(&errors)?);
            if let Some(t) = out.next_token {
                buf.extend_from_slice(b",\"NextToken\":");
                buf.extend_from_slice(&to_body(&t)?);
            }
            buf.push(b'}');
            Ok(std::mem::take(&mut *buf))
        }
        "PutSecretValue" => {
            let d: PutSecretValueDto = parse(body)?;
            let input = PutSecretValueInput {
                secret_id: required(d.secret_id, "secretId")?,
                client_request_token: d.client_request_token,
                value: value_from(d.secret_string, d.secret_binary)?,
                version_stages: d.version_stages,
            };
            let o = coffer.put_secret_value(caller, input).await?;
            to_body(&write_outcome(&o, true))
        }
        "UpdateSecret" => {
            let d: UpdateSecretDto = parse(body)?;
            let input = UpdateSecretInput {
                secret_id: required(d.secret_id, "secretId")?,
                client_request_token: d.client_request_token,
                description: d.description,
                kms_key_id: d.kms_key_id,
                value: value_from(d.secret_string, d.secret_binary)?,
            };
            let o = coffer.update_secret(caller, input).await?;
            to_body(&write_outcome(&o, false))
        }
        "UpdateSecretVersionStage" => {
            let d: UpdateStageDto = parse(body)?;
            let input = UpdateSecretVersionStageInput {
                secret_id: required(d.secret_id, "secretId")?,
                version_stage: required(d.version_stage, "versionStage")?,
                remove_from_version_id: d.remove_from_version_id,
                move_to_version_id: d.move_to_version_id,
            };
            let o = coffer.update_secret_version_stage(caller, input).await?;
            to_body(&write_outcome(&o, false))
        }
        "ListSecrets" => {
            let d: ListSecretsDto = parse(body)?;
            let sort_by = match d.sort_by.as_deref() {
                None => SortBy::default(),
                Some(s) => SortBy::parse(s).ok_or_else(|| {
                    enum_error(
                        "sortBy",
                        s,
                        "[created-date, last-accessed-date, last-changed-date, name]",
                    )
                })?,
            };
            let descending = match d.sort_order.as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(s) => return Err(enum_error("sortOrder", s, "[asc, desc]")),
            };
            let input = ListSecretsInput {
                include_planned_deletion: d.include_planned_deletion.unwrap_or(false),
                max_results: d.max_results,
                next_token: d.next_token,
                filters: filters_from(d.filters)?,
                sort_by,
                descending,
            };
            let out = coffer.list_secrets(caller, input).await?;
            let list: Vec<serde_json::Value> = out
                .secrets
                .iter()
                .map(|s| describe(s, "SecretVersionsToStages"))
                .collect();
            let mut m = serde_json::Map::new();
            m.insert("SecretList".into(), list.into());
            if let Some(t) = out.next_token {
                m.insert("NextToken".into(), t.into());
            }
            to_body(&m)
        }
        "ListSecretVersionIds" => {
            let d: ListVersionsDto = parse(body)?;
            let input = ListSecretVersionIdsInput {
                secret_id: required(d.secret_id, "secretId")?,
                max_results: d.max_results,
                next_token: d.next_token,
                include_deprecated: d.include_deprecated.unwrap_or(false),
            };
            let out = coffer.list_secret_version_ids(caller, input).await?;
            let versions: Vec<serde_json::Value> = out
                .versions
                .iter()
                .map(|v| {
                    let mut m = serde_json::Map::new();
                    m.insert("VersionId".into(), v.version_id.clone().into());
                    // A deprecated version has no labels and AWS sends no member for them.
                    if !v.stages.is_empty() {
                        m.insert("VersionStages".into(), v.stages.clone().into());
                    }
                    if let Some(t) = v.last_accessed_ms {
                        m.insert("LastAccessedDate".into(), secs(t).into());
                    }
                    m.insert("CreatedDate".into(), secs(v.created_ms).into());
                    serde_json::Value::Object(m)
                })
                .collect();
            let mut m = serde_json::Map::new();
            m.insert("Versions".into(), versions.into());
            if let Some(t) = out.next_token {
                m.insert("NextToken".into(), t.into());
            }
            m.insert("ARN".into(), out.arn.into());
            m.insert("Name".into(), out.name.into());
            to_body(&m)
        }
        "DeleteSecret" => {
            let d: DeleteSecretDto = parse(body)?;
            let input = DeleteSecretInput {
                secret_id: required(d.secret_id, "secretId")?,
                recovery_window_in_days: d.recovery_window_in_days,
                force_delete_without_recovery: d.force_delete_without_recovery,
            };
            let o = coffer.delete_secret(caller, input).await?;
            let mut m = serde_json::Map::new();
            if let Some(arn) = o.arn {
                m.insert("ARN".into(), arn.into());
            }
            m.insert("Name".into(), o.name.into());
            m.insert("DeletionDate".into(), secs(o.deletion_date_ms).into());
            to_body(&m)
        }
        "RestoreSecret" => {
            let d: SecretIdOnly = parse(body)?;
            let o = coffer
                .restore_secret(caller, &required(d.secret_id, "secretId")?)
                .await?;
            to_body(&write_outcome(&o, false))
        }
        "TagResource" => {
            let d: TagResourceDto = parse(body)?;
            let id = required(d.secret_id, "secretId")?;
            let tags = tags_from(Some(d.tags.ok_or_else(|| ApiError::missing("tags"))?))?;
            coffer.tag_resource(caller, &id, &tags).await?;
            Ok(b"{}".to_vec())
        }
        "UntagResource" => {
            let d: UntagResourceDto = parse(body)?;
            let id = required(d.secret_id, "secretId")?;
            let keys = d.tag_keys.ok_or_else(|| ApiError::missing("tagKeys"))?;
            coffer.untag_resource(caller, &id, &keys).await?;
            Ok(b"{}".to_vec())
        }
        "GetRandomPassword" => {
            let d: RandomPasswordDto = parse(body)?;
            let spec = PasswordSpec {
                length: d.password_length,
                exclude_characters: d.exclude_characters,
                exclude_numbers: d.exclude_numbers.unwrap_or(false),
                exclude_punctuation: d.exclude_punctuation.unwrap_or(false),
                exclude_uppercase: d.exclude_uppercase.unwrap_or(false),
                exclude_lowercase: d.exclude_lowercase.unwrap_or(false),
                include_space: d.include_space.unwrap_or(false),
                require_each_included_type: d.require_each_included_type,
            };
            let password = coffer.random_password(caller, &spec).await?;
            #[derive(Serialize)]
            struct Out<'a> {
                #[serde(rename = "RandomPassword")]
                random_password: &'a str,
            }
            let text = password.as_str().unwrap_or_default();
            to_body(&Out {
                random_password: text,
            })
        }
        "GetResourcePolicy" => {
            let d: SecretIdOnly = parse(body)?;
            let (arn, name, policy) = coffer
                .resource_policy(caller, &required(d.secret_id, "secretId")?)
                .await?;
            let mut m = serde_json::Map::new();
            m.insert("ARN".into(), arn.into());
            m.insert("Name".into(), name.into());
            if let Some(p) = policy {
                m.insert("ResourcePolicy".into(), p.into());
            }
            to_body(&m)
        }
        "PutResourcePolicy" => {
            let d: PutPolicyDto = parse(body)?;
            let id = required(d.secret_id, "secretId")?;
            let policy = required(d.resource_policy, "resourcePolicy")?;
            let o = coffer
                .put_resource_policy(caller, &id, &policy, d.block_public_policy.unwrap_or(false))
                .await?;
            to_body(&write_outcome(&o, false))
        }
        "DeleteResourcePolicy" => {
            let d: SecretIdOnly = parse(body)?;
            let o = coffer
                .delete_resource_policy(caller, &required(d.secret_id, "secretId")?)
                .await?;
            to_body(&write_outcome(&o, false))
        }
        "ValidateResourcePolicy" => {
            let d: PutPolicyDto = parse(body)?;
            let policy = required(d.resource_policy, "resourcePolicy")?;
            let findings = coffer
                .validate_resource_policy(caller, d.secret_id.as_deref(), &policy)
                .await?;
            let errors: Vec<serde_json::Value> = findings
                .iter()
                .map(|(check, message)| serde_json::json!({"CheckName": check, "ErrorMessage": message}))
                .collect();
            to_body(
                &serde_json::json!({"PolicyValidationPassed": findings.is_empty(), "ValidationErrors": errors}),
            )
        }
        "ListResourcePolicies" => {
            let d: SecretIdOnly = parse(body)?;
            let names = coffer
                .list_resource_policies(caller, &required(d.secret_id, "secretId")?)
                .await?;
            let policies: Vec<serde_json::Value> = names
                .into_iter()
                .map(|n| serde_json::json!({"PolicyName": n}))
                .collect();
            to_body(&serde_json::json!({"ResourcePolicies": policies}))
        }
        "AssociateCrossAccountReplica" | "DisassociateCrossAccountReplica" => {
            Err(not_yet(operation))
        }
        op if NOT_YET.contains(&op) => Err(not_yet(op)),
        other => Err(ApiError::new(
            "UnknownOperationException",
            format!("Unknown operation secretsmanager.{other}"),
        )),
    }
}

fn not_yet(op: &str) -> ApiError {
    ApiError::new(
        "InvalidRequestException",
        format!("coffer does not support {op} yet: replication is not available in this version."),
    )
}

fn enum_error(member: &str, value: &str, set: &str) -> ApiError {
    ApiError::new(
        "ValidationException",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: {set}"
        ),
    )
}
