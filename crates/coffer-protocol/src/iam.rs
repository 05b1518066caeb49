//! The IAM API (query protocol, `Version=2010-05-08`): users, groups, roles, access keys,
//! inline and managed policies, virtual MFA devices, with the shapes of the botocore model
//! `iam/2010-05-08`.
//! Policy documents are returned URL-encoded (RFC 3986), as IAM does; the SDKs decode them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use coffer_core::{
    AccessKeyRecord, AssignmentStatus, Caller, Coffer, CoreError, ManagedPolicy, PrincipalKind,
    PrincipalRecord, RoleInput, Simulation, SimulationSource,
};
use zeroize::Zeroizing;

use crate::error::ApiError;
use crate::query::{Form, Xml, iso8601, uri_encode};

pub(crate) const VERSION: &str = "2010-05-08";
pub(crate) const NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

fn title(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Group => "Group",
        PrincipalKind::Role => "Role",
    }
}

/// The fields of a user, group or role, inside its element.
fn principal_fields(x: &mut Xml, p: &PrincipalRecord) {
    let t = title(p.kind);
    x.text("Path", &p.path)
        .text(&format!("{t}Name"), &p.name)
        .text(&format!("{t}Id"), &p.principal_id)
        .text("Arn", &p.arn())
        .text("CreateDate", &iso8601(p.created_ms));
    if p.kind != PrincipalKind::Group && !p.tags.is_empty() {
        tags_xml(x, &p.tags);
    }
    if p.kind == PrincipalKind::Role {
        if let Some(doc) = &p.trust_policy {
            x.text("AssumeRolePolicyDocument", &uri_encode(doc));
        }
        if let Some(d) = &p.description {
            x.text("Description", d);
        }
        x.text(
            "MaxSessionDuration",
            &p.max_session_secs.unwrap_or(3600).to_string(),
        );
    }
}

fn tags_xml(x: &mut Xml, tags: &[(String, String)]) {
    x.node("Tags", |x| {
        for (k, v) in tags {
            x.node("member", |x| {
                x.text("Key", k).text("Value", v);
            });
        }
    });
}

fn inline_list(x: &mut Xml, element: &str, policies: &[(String, String)]) {
    x.node(element, |x| {
        for (name, doc) in policies {
            x.node("member", |x| {
                x.text("PolicyName", name)
                    .text("PolicyDocument", &uri_encode(doc));
            });
        }
    });
}

fn attached_list(x: &mut Xml, arns: &[String]) {
    x.node("AttachedManagedPolicies", |x| {
        for arn in arns {
            let name = arn.rsplit('/').next().unwrap_or(arn);
            x.node("member", |x| {
                x.text("PolicyName", name).text("PolicyArn", arn);
            });
        }
    });
}

fn principal_list(x: &mut Xml, element: &str, items: &[PrincipalRecord]) {
    x.node(element, |x| {
        for p in items {
            x.node("member", |x| principal_fields(x, p));
        }
    });
}

/// A `Blob` member holding a secret (an MFA seed or its QR code): base64, as the query
/// protocol carries blobs, from a zeroizing buffer into the response.
fn secret_blob(x: &mut Xml, name: &str, bytes: &[u8]) {
    let encoded = Zeroizing::new(BASE64.encode(bytes));
    x.text(name, &encoded);
}

/// The `User` of a virtual MFA device: the user's fields without its tags (IAM's listings
/// return "a subset of the available attributes", ListVirtualMFADevices API reference).
fn mfa_user(x: &mut Xml, p: &PrincipalRecord) {
    x.node("User", |x| {
        x.text("Path", &p.path)
            .text("UserName", &p.name)
            .text("UserId", &p.principal_id)
            .text("Arn", &p.arn())
            .text("CreateDate", &iso8601(p.created_ms));
    });
}

fn policy_fields(x: &mut Xml, p: &ManagedPolicy) {
    x.text("PolicyName", &p.name)
        .text("PolicyId", &p.policy_id)
        .text("Arn", &p.arn)
        .text("Path", &p.path)
        .text("DefaultVersionId", &format!("v{}", p.default_version))
        .text("AttachmentCount", &p.attachment_count.to_string())
        .text("PermissionsBoundaryUsageCount", "0")
        .text("IsAttachable", "true");
    if let Some(d) = &p.description {
        x.text("Description", d);
    }
    x.text("CreateDate", &iso8601(p.created_ms))
        .text("UpdateDate", &iso8601(p.updated_ms));
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

fn boolean(form: &Form, name: &str) -> Result<bool, ApiError> {
    match form.get(name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::new(
            "ValidationError",
            format!("Invalid value for parameter {name}: {other} is not a boolean"),
        )),
    }
}

/// The principal kind named inside an action (`PutGroupPolicy` → group), with its name
/// parameter (`GroupName`).
fn kind_in(action: &str) -> Option<(PrincipalKind, &'static str)> {
    if action.contains("User") {
        Some((PrincipalKind::User, "UserName"))
    } else if action.contains("Group") {
        Some((PrincipalKind::Group, "GroupName"))
    } else if action.contains("Role") {
        Some((PrincipalKind::Role, "RoleName"))
    } else {
        None
    }
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
        "CreateUser" | "CreateGroup" => {
            let p = if action == "CreateUser" {
                coffer
                    .create_user(
                        caller,
                        form.required("UserName")?,
                        form.get("Path"),
                        form.pairs("Tags"),
                    )
                    .await
            } else {
                coffer
                    .create_group(caller, form.required("GroupName")?, form.get("Path"))
                    .await
            }
            .map_err(iam)?;
            x.node(title(p.kind), |x| principal_fields(x, &p));
        }
        "CreateRole" => {
            let input = RoleInput {
                name: form.required("RoleName")?.to_string(),
                path: form.get("Path").map(str::to_string),
                trust_policy: form.required("AssumeRolePolicyDocument")?.to_string(),
                description: form.get("Description").map(str::to_string),
                max_session_secs: form.integer("MaxSessionDuration")?,
                tags: form.pairs("Tags"),
            };
            let p = coffer.create_role(caller, input).await.map_err(iam)?;
            x.node("Role", |x| principal_fields(x, &p));
        }
        "GetUser" => {
            let p = coffer
                .get_user(caller, form.get("UserName"))
                .await
                .map_err(iam)?;
            x.node("User", |x| principal_fields(x, &p));
        }
        "GetRole" => {
            let p = coffer
                .get_principal(caller, PrincipalKind::Role, form.required("RoleName")?)
                .await
                .map_err(iam)?;
            x.node("Role", |x| principal_fields(x, &p));
        }
        "GetGroup" => {
            let (g, members) = coffer
                .group_members(caller, form.required("GroupName")?)
                .await
                .map_err(iam)?;
            let (members, marker) = page(form, members)?;
            x.node("Group", |x| principal_fields(x, &g));
            principal_list(&mut x, "Users", &members);
            truncation(&mut x, marker);
        }
        "ListUsers" | "ListGroups" | "ListRoles" => {
            let kind = kind_in(action).map_or(PrincipalKind::User, |(k, _)| k);
            let items = coffer
                .list_principals(caller, kind, form.get("PathPrefix"))
                .await
                .map_err(iam)?;
            let (items, marker) = page(form, items)?;
            principal_list(&mut x, &format!("{}s", title(kind)), &items);
            truncation(&mut x, marker);
        }
        "ListGroupsForUser" => {
            let groups = coffer
                .groups_for_user(caller, form.required("UserName")?)
                .await
                .map_err(iam)?;
            let (groups, marker) = page(form, groups)?;
            principal_list(&mut x, "Groups", &groups);
            truncation(&mut x, marker);
        }
        "DeleteUser" | "DeleteGroup" | "DeleteRole" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .delete_principal(caller, kind, form.required(param)?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "AddUserToGroup" => {
            coffer
                .add_user_to_group(
                    caller,
                    form.required("GroupName")?,
                    form.required("UserName")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "RemoveUserFromGroup" => {
            coffer
                .remove_user_from_group(
                    caller,
                    form.required("GroupName")?,
                    form.required("UserName")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "UpdateRole" => {
            coffer
                .update_role(
                    caller,
                    form.required("RoleName")?,
                    form.get("Description").map(str::to_string),
                    form.integer("MaxSessionDuration")?,
                )
                .await
                .map_err(iam)?;
            return Ok(Some(String::new()));
        }
        "UpdateAssumeRolePolicy" => {
            coffer
                .update_assume_role_policy(
                    caller,
                    form.required("RoleName")?,
                    form.required("PolicyDocument")?,
                )
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
        "PutUserPolicy" | "PutGroupPolicy" | "PutRolePolicy" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .put_inline_policy(
                    caller,
                    kind,
                    form.required(param)?,
                    form.required("PolicyName")?,
                    form.required("PolicyDocument")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "GetUserPolicy" | "GetGroupPolicy" | "GetRolePolicy" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            let policy_name = form.required("PolicyName")?;
            let (owner, document) = coffer
                .get_inline_policy(caller, kind, form.required(param)?, policy_name)
                .await
                .map_err(iam)?;
            x.text(param, &owner)
                .text("PolicyName", policy_name)
                .text("PolicyDocument", &uri_encode(&document));
        }
        "ListUserPolicies" | "ListGroupPolicies" | "ListRolePolicies" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            let names = coffer
                .list_inline_policies(caller, kind, form.required(param)?)
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
        "DeleteUserPolicy" | "DeleteGroupPolicy" | "DeleteRolePolicy" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .delete_inline_policy(
                    caller,
                    kind,
                    form.required(param)?,
                    form.required("PolicyName")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "CreatePolicy" => {
            let p = coffer
                .create_policy(
                    caller,
                    form.required("PolicyName")?,
                    form.get("Path"),
                    form.required("PolicyDocument")?,
                    form.get("Description").map(str::to_string),
                )
                .await
                .map_err(iam)?;
            x.node("Policy", |x| policy_fields(x, &p));
        }
        "GetPolicy" => {
            let p = coffer
                .get_policy(caller, form.required("PolicyArn")?)
                .await
                .map_err(iam)?;
            x.node("Policy", |x| policy_fields(x, &p));
        }
        "ListPolicies" => {
            let scope = form.get("Scope").unwrap_or("All");
            if !["All", "AWS", "Local"].contains(&scope) {
                return Err(ApiError::new(
                    "ValidationError",
                    format!(
                        "1 validation error detected: Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
                    ),
                ));
            }
            let policies = coffer
                .list_policies(caller, scope, boolean(form, "OnlyAttached")?)
                .await
                .map_err(iam)?;
            let (policies, marker) = page(form, policies)?;
            x.node("Policies", |x| {
                for p in &policies {
                    x.node("member", |x| policy_fields(x, p));
                }
            });
            truncation(&mut x, marker);
        }
        "DeletePolicy" => {
            coffer
                .delete_policy(caller, form.required("PolicyArn")?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "CreatePolicyVersion" => {
            let (id, default, created) = coffer
                .create_policy_version(
                    caller,
                    form.required("PolicyArn")?,
                    form.required("PolicyDocument")?,
                    boolean(form, "SetAsDefault")?,
                )
                .await
                .map_err(iam)?;
            x.node("PolicyVersion", |x| {
                x.text("VersionId", &id)
                    .text("IsDefaultVersion", &default.to_string())
                    .text("CreateDate", &iso8601(created));
            });
        }
        "GetPolicyVersion" => {
            let version = form.required("VersionId")?;
            let (doc, default, created) = coffer
                .get_policy_version(caller, form.required("PolicyArn")?, version)
                .await
                .map_err(iam)?;
            x.node("PolicyVersion", |x| {
                x.text("Document", &uri_encode(&doc))
                    .text("VersionId", version)
                    .text("IsDefaultVersion", &default.to_string())
                    .text("CreateDate", &iso8601(created));
            });
        }
        "ListPolicyVersions" => {
            let versions = coffer
                .list_policy_versions(caller, form.required("PolicyArn")?)
                .await
                .map_err(iam)?;
            let (versions, marker) = page(form, versions)?;
            x.node("Versions", |x| {
                for (id, default, created) in &versions {
                    x.node("member", |x| {
                        x.text("VersionId", id)
                            .text("IsDefaultVersion", &default.to_string())
                            .text("CreateDate", &iso8601(*created));
                    });
                }
            });
            truncation(&mut x, marker);
        }
        "DeletePolicyVersion" => {
            coffer
                .delete_policy_version(
                    caller,
                    form.required("PolicyArn")?,
                    form.required("VersionId")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "SetDefaultPolicyVersion" => {
            coffer
                .set_default_policy_version(
                    caller,
                    form.required("PolicyArn")?,
                    form.required("VersionId")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "AttachUserPolicy" | "AttachGroupPolicy" | "AttachRolePolicy" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .attach_policy(
                    caller,
                    kind,
                    form.required(param)?,
                    form.required("PolicyArn")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "DetachUserPolicy" | "DetachGroupPolicy" | "DetachRolePolicy" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .detach_policy(
                    caller,
                    kind,
                    form.required(param)?,
                    form.required("PolicyArn")?,
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "ListAttachedUserPolicies" | "ListAttachedGroupPolicies" | "ListAttachedRolePolicies" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            let arns = coffer
                .attached_policies(caller, kind, form.required(param)?)
                .await
                .map_err(iam)?;
            let (arns, marker) = page(form, arns)?;
            x.node("AttachedPolicies", |x| {
                for arn in &arns {
                    let name = arn.rsplit('/').next().unwrap_or(arn);
                    x.node("member", |x| {
                        x.text("PolicyName", name).text("PolicyArn", arn);
                    });
                }
            });
            truncation(&mut x, marker);
        }
        "TagUser" | "TagRole" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .tag_principal(caller, kind, form.required(param)?, form.pairs("Tags"))
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "UntagUser" | "UntagRole" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            coffer
                .untag_principal(caller, kind, form.required(param)?, &form.list("TagKeys"))
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "ListUserTags" | "ListRoleTags" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            let tags = coffer
                .principal_tags(caller, kind, form.required(param)?)
                .await
                .map_err(iam)?;
            tags_xml(&mut x, &tags);
            x.text("IsTruncated", "false");
        }
        "GetAccountAuthorizationDetails" => {
            let d = coffer.authorization_details(caller).await.map_err(iam)?;
            x.node("UserDetailList", |x| {
                for u in &d.users {
                    x.node("member", |x| {
                        principal_fields(x, &u.principal);
                        inline_list(x, "UserPolicyList", &u.inline);
                        x.node("GroupList", |x| {
                            for g in &u.groups {
                                x.text("member", g);
                            }
                        });
                        attached_list(x, &u.attached);
                    });
                }
            });
            x.node("GroupDetailList", |x| {
                for g in &d.groups {
                    x.node("member", |x| {
                        principal_fields(x, &g.principal);
                        inline_list(x, "GroupPolicyList", &g.inline);
                        attached_list(x, &g.attached);
                    });
                }
            });
            x.node("RoleDetailList", |x| {
                for r in &d.roles {
                    x.node("member", |x| {
                        principal_fields(x, &r.principal);
                        inline_list(x, "RolePolicyList", &r.inline);
                        attached_list(x, &r.attached);
                    });
                }
            });
            x.node("Policies", |x| {
                for (p, versions) in &d.policies {
                    x.node("member", |x| {
                        policy_fields(x, p);
                        x.node("PolicyVersionList", |x| {
                            for v in versions {
                                x.node("member", |x| {
                                    x.text("Document", &uri_encode(&v.document))
                                        .text("VersionId", &format!("v{}", v.version))
                                        .text(
                                            "IsDefaultVersion",
                                            &(v.version == p.default_version).to_string(),
                                        )
                                        .text("CreateDate", &iso8601(v.created_ms));
                                });
                            }
                        });
                    });
                }
            });
            x.text("IsTruncated", "false");
        }
        "SimulatePrincipalPolicy" | "SimulateCustomPolicy" => {
            let source = if action == "SimulatePrincipalPolicy" {
                SimulationSource::Principal(form.required("PolicySourceArn")?.to_string())
            } else {
                SimulationSource::Custom
            };
            let context = (1..)
                .map_while(|i| {
                    let name = form.get(&format!("ContextEntries.member.{i}.ContextKeyName"))?;
                    Some((
                        name.to_string(),
                        form.list(&format!("ContextEntries.member.{i}.ContextKeyValues")),
                    ))
                })
                .collect();
            let sim = Simulation {
                source,
                policies: form.list("PolicyInputList"),
                actions: form.list("ActionNames"),
                resources: form.list("ResourceArns"),
                resource_policy: form.get("ResourcePolicy").map(str::to_string),
                context,
            };
            let results = coffer.simulate(caller, sim).await.map_err(iam)?;
            x.node("EvaluationResults", |x| {
                for r in &results {
                    x.node("member", |x| {
                        x.text("EvalActionName", &r.action)
                            .text("EvalResourceName", &r.resource)
                            .text("EvalDecision", r.decision);
                        x.node("MatchedStatements", |x| {
                            for (id, kind) in &r.matched {
                                x.node("member", |x| {
                                    x.text("SourcePolicyId", id).text("SourcePolicyType", kind);
                                });
                            }
                        });
                        x.node("MissingContextValues", |_| {});
                    });
                }
            });
            x.text("IsTruncated", "false");
        }
        "UpdateUser" | "UpdateGroup" => {
            let (kind, param) = kind_in(action).unwrap_or((PrincipalKind::User, "UserName"));
            let new_name = if kind == PrincipalKind::User {
                form.get("NewUserName")
            } else {
                form.get("NewGroupName")
            };
            coffer
                .update_principal(
                    caller,
                    kind,
                    form.required(param)?,
                    new_name,
                    form.get("NewPath"),
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "CreateVirtualMFADevice" => {
            let d = coffer
                .create_virtual_mfa_device(
                    caller,
                    form.required("VirtualMFADeviceName")?,
                    form.get("Path"),
                    form.pairs("Tags"),
                )
                .await
                .map_err(iam)?;
            x.node("VirtualMFADevice", |x| {
                x.text("SerialNumber", &d.serial_number);
                secret_blob(x, "Base32StringSeed", d.base32_seed.expose());
                secret_blob(x, "QRCodePNG", d.qr_code_png.expose());
                if !d.tags.is_empty() {
                    tags_xml(x, &d.tags);
                }
            });
        }
        "EnableMFADevice" | "ResyncMFADevice" => {
            let (user, serial, code1, code2) = (
                form.required("UserName")?,
                form.required("SerialNumber")?,
                form.required("AuthenticationCode1")?,
                form.required("AuthenticationCode2")?,
            );
            if action == "EnableMFADevice" {
                coffer
                    .enable_mfa_device(caller, user, serial, code1, code2)
                    .await
            } else {
                coffer
                    .resync_mfa_device(caller, user, serial, code1, code2)
                    .await
            }
            .map_err(iam)?;
            return Ok(None);
        }
        "DeactivateMFADevice" => {
            coffer
                .deactivate_mfa_device(caller, form.get("UserName"), form.required("SerialNumber")?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "DeleteVirtualMFADevice" => {
            coffer
                .delete_virtual_mfa_device(caller, form.required("SerialNumber")?)
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "ListMFADevices" => {
            let devices = coffer
                .list_mfa_devices(caller, form.get("UserName"))
                .await
                .map_err(iam)?;
            let (devices, marker) = page(form, devices)?;
            x.node("MFADevices", |x| {
                for d in &devices {
                    x.node("member", |x| {
                        x.text("UserName", &d.user_name)
                            .text("SerialNumber", &d.serial_number)
                            .text("EnableDate", &iso8601(d.enable_date_ms));
                    });
                }
            });
            truncation(&mut x, marker);
        }
        "ListVirtualMFADevices" => {
            let status = form
                .get("AssignmentStatus")
                .map_or(Ok(AssignmentStatus::Any), AssignmentStatus::parse)
                .map_err(iam)?;
            let devices = coffer
                .list_virtual_mfa_devices(caller, status)
                .await
                .map_err(iam)?;
            let (devices, marker) = page(form, devices)?;
            // Without tags: "this operation does not return tags" (API reference).
            x.node("VirtualMFADevices", |x| {
                for d in &devices {
                    x.node("member", |x| {
                        x.text("SerialNumber", &d.serial_number);
                        if let Some(u) = &d.user {
                            mfa_user(x, u);
                        }
                        if let Some(at) = d.enable_date_ms {
                            x.text("EnableDate", &iso8601(at));
                        }
                    });
                }
            });
            truncation(&mut x, marker);
        }
        "TagMFADevice" => {
            coffer
                .tag_mfa_device(caller, form.required("SerialNumber")?, form.pairs("Tags"))
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "UntagMFADevice" => {
            coffer
                .untag_mfa_device(
                    caller,
                    form.required("SerialNumber")?,
                    &form.list("TagKeys"),
                )
                .await
                .map_err(iam)?;
            return Ok(None);
        }
        "ListMFADeviceTags" => {
            let tags = coffer
                .list_mfa_device_tags(caller, form.required("SerialNumber")?)
                .await
                .map_err(iam)?;
            let (tags, marker) = page(form, tags)?;
            tags_xml(&mut x, &tags);
            truncation(&mut x, marker);
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
