//! The STS API (query protocol, `Version=2011-06-15`): `GetCallerIdentity`, `AssumeRole` and
//! `GetSessionToken`, with the shapes of the botocore model `sts/2011-06-15`.

use coffer_core::{AssumeRoleInput, Caller, Coffer, CoreError, TemporaryCredentials};

use crate::error::ApiError;
use crate::query::{Form, Xml, iso8601};

pub(crate) const VERSION: &str = "2011-06-15";
pub(crate) const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// STS's codes and statuses for domain errors (the model's exceptions: `MalformedPolicyDocument`,
/// `PackedPolicyTooLarge`; the query protocol's `ValidationError`, `AccessDenied` 403,
/// `InvalidParameterValue`).
fn sts(e: CoreError) -> ApiError {
    let (code, status) = match &e {
        CoreError::AccessDenied(_) => ("AccessDenied", 403),
        CoreError::Validation(_) => ("ValidationError", 400),
        CoreError::MalformedPolicy(_) => ("MalformedPolicyDocument", 400),
        CoreError::LimitExceeded(_) => ("PackedPolicyTooLarge", 400),
        CoreError::Internal(_) => ("InternalFailure", 500),
        _ => ("InvalidParameterValue", 400),
    };
    let api = ApiError::from(e);
    ApiError {
        code,
        message: api.message,
        status,
    }
}

fn credentials(x: &mut Xml, c: &TemporaryCredentials) {
    x.node("Credentials", |x| {
        x.text("AccessKeyId", &c.access_key_id)
            .text(
                "SecretAccessKey",
                c.secret_access_key.as_str().unwrap_or_default(),
            )
            .text("SessionToken", &c.session_token)
            .text("Expiration", &iso8601(c.expiration_ms));
    });
}

/// `DurationSeconds`, with the model's wording for a value that is not a number.
fn duration(form: &Form) -> Result<Option<i64>, ApiError> {
    form.integer("DurationSeconds")
}

/// Whether a GetSessionToken session may call this STS action: "You cannot call any STS API
/// except AssumeRole or GetCallerIdentity" (STS API reference, GetSessionToken).
fn allowed_for_user_session(action: &str) -> bool {
    matches!(
        action,
        "AssumeRole" | "GetCallerIdentity" | "GetSessionToken"
    )
}

/// Runs one STS action; the content of `<ActionResult>`.
pub(crate) async fn dispatch(
    coffer: &Coffer,
    caller: &Caller,
    action: &str,
    form: &Form,
) -> Result<Option<String>, ApiError> {
    if caller.session.as_ref().is_some_and(|s| s.role.is_none())
        && !allowed_for_user_session(action)
    {
        return Err(ApiError {
            code: "AccessDenied",
            message: format!("Cannot call {action} with session credentials"),
            status: 403,
        });
    }
    let mut x = Xml::default();
    match action {
        "GetCallerIdentity" => {
            let id = coffer.get_caller_identity(caller).await.map_err(sts)?;
            x.text("UserId", &id.user_id)
                .text("Account", &id.account)
                .text("Arn", &id.arn);
        }
        "GetSessionToken" => {
            let c = coffer
                .get_session_token(
                    caller,
                    duration(form)?,
                    form.get("SerialNumber"),
                    form.get("TokenCode"),
                )
                .await
                .map_err(sts)?;
            credentials(&mut x, &c);
        }
        "AssumeRole" => {
            let input = AssumeRoleInput {
                role_arn: form.required("RoleArn")?.to_string(),
                role_session_name: form.required("RoleSessionName")?.to_string(),
                duration_seconds: duration(form)?,
                external_id: form.get("ExternalId").map(str::to_string),
                policy: form.get("Policy").map(str::to_string),
                policy_arns: (1..)
                    .map_while(|i| form.get(&format!("PolicyArns.member.{i}.arn")))
                    .map(str::to_string)
                    .collect(),
                tags: form.pairs("Tags"),
                transitive_tag_keys: form.list("TransitiveTagKeys"),
                serial_number: form.get("SerialNumber").map(str::to_string),
                token_code: form.get("TokenCode").map(str::to_string),
                source_identity: form.get("SourceIdentity").map(str::to_string),
            };
            let r = coffer.assume_role(caller, &input).await.map_err(sts)?;
            credentials(&mut x, &r.credentials);
            x.node("AssumedRoleUser", |x| {
                x.text("AssumedRoleId", &r.assumed_role_id)
                    .text("Arn", &r.arn);
            });
            if let Some(p) = r.packed_policy_size {
                x.text("PackedPolicySize", &p.to_string());
            }
            if let Some(si) = &r.source_identity {
                x.text("SourceIdentity", si);
            }
        }
        "AssumeRoleWithSAML"
        | "AssumeRoleWithWebIdentity"
        | "AssumeRoot"
        | "GetFederationToken"
        | "DecodeAuthorizationMessage"
        | "GetAccessKeyInfo"
        | "GetDelegatedAccessToken"
        | "GetWebIdentityToken" => {
            return Err(ApiError::new(
                "InvalidAction",
                format!(
                    "coffer does not serve {action}: it has no identity providers or federation; use AssumeRole or GetSessionToken"
                ),
            ));
        }
        other => {
            return Err(ApiError::new(
                "InvalidAction",
                format!("Could not find operation {other} for version {VERSION}"),
            ));
        }
    }
    Ok(Some(x.into_string()))
}
