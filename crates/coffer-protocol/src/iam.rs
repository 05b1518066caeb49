//! The IAM API (query protocol, `Version=2010-05-08`): users, access keys and inline user
//! policies, with the shapes of the botocore model `iam/2010-05-08`.

use coffer_core::{AccessKeyRecord, Caller, Coffer, CoreError, UserRecord};

use crate::error::ApiError;
use crate::query::{Form, Xml, iso8601, uri_encode};

pub(crate) const VERSION: &str = "2010-05-08";
pub(crate) const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

fn user_xml(x: &mut Xml, u: &UserRecord) {
    x.node("User", |x| {
        x.text("Path", &u.path)
            .text("UserName", &u.user_name)
            .text("UserId", &u.user_id)
            .text("Arn", &u.arn())
            .text("CreateDate", &iso8601(u.created_ms));
    });
}

fn status(active: bool) -> &'static str {
    if active { "Active" } else { "Inactive" }
}

fn key_metadata(x: &mut Xml, user_name: &str, k: &AccessKeyRecord) {
    x.node("member", |x| {
        x.text("UserName", user_name)
            .text("AccessKeyId", &k.access_key_id)
            .text("Status", status(k.active))
            .text("CreateDate", &iso8601(k.created_ms));
    });
}

/// Pages a listing by `MaxItems` (1–1000, default 100) and an opaque `Marker` (the offset).
fn page<T>(form: &Form, items: Vec<T>) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = form.integer("MaxItems")?.unwrap_or(100);
    if !(1..=1000).contains(&max) {
        return Err(ApiError::new(
            "ValidationError",
            format!(
                "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            ),
        ));
    }
    let start = match form.get("Marker") {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| ApiError::new("InvalidInput", "Invalid Marker."))?,
        None => 0,
    };
    let max = usize::try_from(max).unwrap_or(100);
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let end = start.saturating_add(max);
    Ok((page, (end < total).then(|| end.to_string())))
}

fn truncation(x: &mut Xml, marker: Option<String>) {
    match marker {
        Some(m) => {
            x.text("IsTruncated", "true").text("Marker", &m);
        }
        None => {
            x.text("IsTruncated", "false");
        }
    }
}

fn iam(e: CoreError) -> ApiError {
    ApiError::iam(e)
}

/// Runs one IAM action; `Ok(Some(xml))` is the content of `<ActionResult>`, `Ok(None)` an
/// action without a result element.
pub(crate) async fn dispatch(
    coffer: &Coffer,
    caller: &Caller,
    action: &str,
    form: &Form,
) -> Result<Option<String>, ApiError> {
    let mut x = Xml::default();
    match action {
        "CreateUser" => {
            let u = coffer
                .create_user(caller, form.required("UserName")?, form.get("Path"))
                .await
                .map_err(iam)?;
            user_xml(&mut x, &u);
        }
        "GetUser" => {
            let u = coffer
                .get_user(caller, form.get("UserName"))
                .await
                .map_err(iam)?;
            user_xml(&mut x, &u);
        }
        "ListUsers" => {
            let users = coffer
                .list_users(caller, form.get("PathPrefix"))
                .await
                .map_err(iam)?;
            let (users, marker) = page(form, users)?;
            x.node("Users", |x| {
                for u in &users {
                    x.node("member", |x| {
                        x.text("Path", &u.path)
                            .text("UserName", &u.user_name)
                            .text("UserId", &u.user_id)
                            .text("Arn", &u.arn())
                            .text("CreateDate", &iso8601(u.created_ms));
                    });
                }
            });
            truncation(&mut x, marker);
        }
        "DeleteUser" => {
            coffer
                .delete_user(caller, form.required("UserName")?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "CreateAccessKey" => {
            let k = coffer
                .create_access_key(caller, form.get("UserName"))
                .await
                .map_err(iam)?;
            let secret = k.secret_access_key.as_str().unwrap_or_default();
            x.node("AccessKey", |x| {
                x.text(
                    "UserName",
                    k.record.user_name.as_deref().unwrap_or_default(),
                )
                .text("AccessKeyId", &k.record.access_key_id)
                .text("Status", status(k.record.active))
                .text("SecretAccessKey", secret)
                .text("CreateDate", &iso8601(k.record.created_ms));
            });
        }
        "ListAccessKeys" => {
            let (user_name, keys) = coffer
                .list_access_keys(caller, form.get("UserName"))
                .await
                .map_err(iam)?;
            let (keys, marker) = page(form, keys)?;
            x.text("UserName", &user_name);
            x.node("AccessKeyMetadata", |x| {
                for k in &keys {
                    key_metadata(x, &user_name, k);
                }
            });
            truncation(&mut x, marker);
        }
        "UpdateAccessKey" => {
            coffer
                .update_access_key(
                    caller,
                    form.get("UserName"),
                    form.required("AccessKeyId")?,
                    form.required("Status")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "DeleteAccessKey" => {
            coffer
                .delete_access_key(caller, form.get("UserName"), form.required("AccessKeyId")?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "GetAccessKeyLastUsed" => {
            let (user_name, used) = coffer
                .access_key_last_used(caller, form.required("AccessKeyId")?)
                .await
                .map_err(iam)?;
            x.text("UserName", &user_name);
            // IAM answers "N/A" for a key that was never used (GetAccessKeyLastUsed reference).
            x.node("AccessKeyLastUsed", |x| match &used {
                Some(u) => {
                    x.text("LastUsedDate", &iso8601(u.at_ms))
                        .text("ServiceName", &u.service)
                        .text("Region", &u.region);
                }
                None => {
                    x.text("ServiceName", "N/A").text("Region", "N/A");
                }
            });
        }
        "PutUserPolicy" => {
            coffer
                .put_user_policy(
                    caller,
                    form.required("UserName")?,
                    form.required("PolicyName")?,
                    form.required("PolicyDocument")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "GetUserPolicy" => {
            let policy_name = form.required("PolicyName")?;
            let (user_name, document) = coffer
                .get_user_policy(caller, form.required("UserName")?, policy_name)
                .await
                .map_err(iam)?;
            // IAM returns documents URL-encoded (RFC 3986); the SDKs decode them.
            x.text("UserName", &user_name)
                .text("PolicyName", policy_name)
                .text("PolicyDocument", &uri_encode(&document));
        }
        "ListUserPolicies" => {
            let names = coffer
                .list_user_policies(caller, form.required("UserName")?)
                .await
                .map_err(iam)?;
            let (names, marker) = page(form, names)?;
            x.node("PolicyNames", |x| {
                for n in &names {
                    x.text("member", n);
                }
            });
            truncation(&mut x, marker);
        }
        "DeleteUserPolicy" => {
            coffer
                .delete_user_policy(
                    caller,
                    form.required("UserName")?,
                    form.required("PolicyName")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
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
