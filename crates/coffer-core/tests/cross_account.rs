//! Secrets Manager across accounts, through `Coffer`: account B reads account A's secret only
//! when all three layers allow it — A's resource policy on the secret, B's identity-based
//! policy, and the key policy of A's customer managed key — and each missing layer is refused
//! with AWS's error. A secret under the AWS managed key `aws/secretsmanager` never serves
//! another account. Other accounts' secrets are reached by full ARN only, and a denied caller
//! cannot tell a missing secret from one it may not use.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use coffer_core::clock::SystemClock;
use coffer_core::kms::CreateKeyInput;
use coffer_core::*;

const A: &str = "111111111111";
const B: &str = "222222222222";
const REGION: &str = "us-east-1";
const DEFAULT_KEY_ERROR: &str = "You can't access a secret from a different AWS account if you encrypt the secret with the default KMS service key.";
const KMS_DENIED: &str = "Access to KMS is not allowed";

fn caller(account_id: &str, principal_arn: String, principal_type: PrincipalType) -> Caller {
    Caller {
        account_id: account_id.into(),
        principal_arn,
        principal_type,
        access_key_id: "AKIAEXAMPLE".into(),
        region: REGION.into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: true,
        session: None,
    }
}

fn root(account_id: &str) -> Caller {
    caller(
        account_id,
        format!("arn:aws:iam::{account_id}:root"),
        PrincipalType::Root,
    )
}

fn user(account_id: &str, name: &str) -> Caller {
    caller(
        account_id,
        format!("arn:aws:iam::{account_id}:user/{name}"),
        PrincipalType::IamUser,
    )
}

fn in_region(c: &Caller, region: &str) -> Caller {
    let mut c = c.clone();
    c.region = region.into();
    c
}

fn string(s: &str) -> Option<SecretValue> {
    Some(SecretValue::String(SecretBytes::from(s.to_string())))
}

fn tok() -> Option<String> {
    Some(ids::uuid_v4().unwrap())
}

fn denied(principal: &str, action: &str, resource: &str, why: &str) -> CoreError {
    CoreError::AccessDenied(format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource} {why}"
    ))
}

fn no_resource_policy(principal: &str, action: &str, resource: &str) -> CoreError {
    denied(
        principal,
        action,
        resource,
        &format!("because no resource-based policy allows the {action} action"),
    )
}

fn no_identity_policy(principal: &str, action: &str, resource: &str) -> CoreError {
    denied(
        principal,
        action,
        resource,
        &format!("because no identity-based policy allows the {action} action"),
    )
}

fn doc(statements: serde_json::Value) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// Two accounts in one store: A owns a secret under its customer managed key; B has an IAM
/// user `reader`. No layer grants anything yet.
struct World {
    _dir: tempfile::TempDir,
    coffer: Coffer,
    a: Caller,
    b: Caller,
    reader: Caller,
    key_arn: String,
    secret_arn: String,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Coffer::init(
            dir.path(),
            &InitOptions {
                account_id: Some(A.into()),
            },
        )
        .unwrap();
        let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
        let created = coffer.create_account(Some(B)).await.unwrap();
        assert_eq!(created.account_id, B);
        let (a, b) = (root(A), root(B));
        coffer
            .create_user(&b, "reader", None, Vec::new())
            .await
            .unwrap();
        let key = coffer
            .kms_create_key(&a, CreateKeyInput::default())
            .await
            .unwrap();
        let key_arn = key.arn();
        let secret_arn = coffer
            .create_secret(
                &a,
                CreateSecretInput {
                    name: "shared/db".into(),
                    kms_key_id: Some(key_arn.clone()),
                    value: string("s3cr3t"),
                    client_request_token: tok(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .arn;
        let world = World {
            _dir: dir,
            coffer,
            a,
            b,
            reader: user(B, "reader"),
            key_arn,
            secret_arn,
        };
        world.set_key_policy(&["kms:Decrypt"]).await;
        world
    }

    /// A's key policy: A's account administers; B's account may use the key for `actions`
    /// (delegated to B's identity-based policies).
    async fn set_key_policy(&self, b_actions: &[&str]) {
        let mut statements = vec![serde_json::json!({
            "Sid": "Owner", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{A}:root")},
            "Action": "kms:*", "Resource": "*"
        })];
        if !b_actions.is_empty() {
            statements.push(serde_json::json!({
                "Sid": "PartnerUse", "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{B}:root")},
                "Action": b_actions, "Resource": "*"
            }));
        }
        self.coffer
            .kms_put_key_policy(
                &self.a,
                &self.key_arn,
                None,
                &doc(serde_json::Value::Array(statements)),
                false,
            )
            .await
            .unwrap();
    }

    /// A's resource policy on the secret, allowing `principal` the `actions`.
    async fn share_with(&self, principal: &str, actions: &[&str]) {
        self.share_with_on(&self.secret_arn, principal, actions)
            .await;
    }

    async fn share_with_on(&self, secret_arn: &str, principal: &str, actions: &[&str]) {
        let policy = doc(serde_json::json!([{
            "Effect": "Allow", "Principal": {"AWS": principal},
            "Action": actions, "Resource": "*"
        }]));
        self.coffer
            .put_resource_policy(&self.a, secret_arn, &policy, false)
            .await
            .unwrap();
    }

    /// B's identity-based policy on `reader`: the given actions on A's secrets and key.
    async fn allow_reader(&self, secret_actions: &[&str], kms_actions: &[&str]) {
        let mut statements = Vec::new();
        if !secret_actions.is_empty() {
            statements.push(serde_json::json!({
                "Effect": "Allow", "Action": secret_actions,
                "Resource": format!("arn:aws:secretsmanager:{REGION}:{A}:secret:*")
            }));
        }
        if !kms_actions.is_empty() {
            statements.push(serde_json::json!({
                "Effect": "Allow", "Action": kms_actions, "Resource": self.key_arn
            }));
        }
        if statements.is_empty() {
            self.coffer
                .delete_inline_policy(&self.b, PrincipalKind::User, "reader", "cross")
                .await
                .unwrap();
            return;
        }
        self.coffer
            .put_inline_policy(
                &self.b,
                PrincipalKind::User,
                "reader",
                "cross",
                &doc(serde_json::Value::Array(statements)),
            )
            .await
            .unwrap();
    }

    async fn read(&self, who: &Caller, secret_id: &str) -> Result<String, CoreError> {
        let v = self
            .coffer
            .get_secret_value(
                who,
                GetSecretValueInput {
                    secret_id: secret_id.into(),
                    ..Default::default()
                },
            )
            .await?;
        match v.value {
            SecretValue::String(s) => Ok(s.as_str().unwrap().to_string()),
            SecretValue::Binary(_) => panic!("binary"),
        }
    }
}

const GET: &str = "secretsmanager:GetSecretValue";

#[tokio::test]
async fn three_layers_allow_and_each_one_removed_denies() {
    let w = World::new().await;
    let reader = w.reader.principal_arn.clone();
    w.share_with(&reader, &[GET]).await;
    w.allow_reader(&[GET], &["kms:Decrypt"]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");

    // Without A's resource policy.
    w.coffer
        .delete_resource_policy(&w.a, &w.secret_arn)
        .await
        .unwrap();
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        no_resource_policy(&reader, GET, &w.secret_arn)
    );
    w.share_with(&reader, &[GET]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");

    // Without B's identity-based allow on the secret.
    w.allow_reader(&[], &["kms:Decrypt"]).await;
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        no_identity_policy(&reader, GET, &w.secret_arn)
    );
    // Without B's identity-based allow of kms:Decrypt on A's key.
    w.allow_reader(&[GET], &[]).await;
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        CoreError::AccessDenied(KMS_DENIED.into())
    );
    w.allow_reader(&[GET], &["kms:Decrypt"]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");

    // Without B in A's key policy.
    w.set_key_policy(&[]).await;
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        CoreError::AccessDenied(KMS_DENIED.into())
    );
    w.set_key_policy(&["kms:Decrypt"]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");

    // An explicit deny in the resource policy wins over everything.
    let deny = doc(serde_json::json!([
        {"Effect": "Allow", "Principal": {"AWS": reader}, "Action": GET, "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": reader}, "Action": GET, "Resource": "*"}
    ]));
    w.coffer
        .put_resource_policy(&w.a, &w.secret_arn, &deny, false)
        .await
        .unwrap();
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        denied(
            &reader,
            GET,
            &w.secret_arn,
            "with an explicit deny in a resource-based policy"
        )
    );
}

#[tokio::test]
async fn a_policy_naming_account_b_delegates_to_b_identity_policies() {
    let w = World::new().await;
    let reader = w.reader.principal_arn.clone();
    w.share_with(&format!("arn:aws:iam::{B}:root"), &[GET])
        .await;
    // The account principal alone grants nothing: B's identity policy must allow too.
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        no_identity_policy(&reader, GET, &w.secret_arn)
    );
    w.allow_reader(&[GET], &["kms:Decrypt"]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");
    // The 12-digit form of the account principal means the same.
    w.share_with(B, &[GET]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");
}

#[tokio::test]
async fn b_root_needs_the_resource_policy_and_the_key_policy() {
    let w = World::new().await;
    let b_root = w.b.principal_arn.clone();
    // B's root may do everything in B, but nothing in A without A's resource policy.
    assert_eq!(
        w.read(&w.b, &w.secret_arn).await.unwrap_err(),
        no_resource_policy(&b_root, GET, &w.secret_arn)
    );
    let err = w
        .coffer
        .describe_secret(&w.b, &w.secret_arn)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        no_resource_policy(&b_root, "secretsmanager:DescribeSecret", &w.secret_arn)
    );
    w.share_with(&format!("arn:aws:iam::{B}:root"), &[GET])
        .await;
    assert_eq!(w.read(&w.b, &w.secret_arn).await.unwrap(), "s3cr3t");
    w.set_key_policy(&[]).await;
    assert_eq!(
        w.read(&w.b, &w.secret_arn).await.unwrap_err(),
        CoreError::AccessDenied(KMS_DENIED.into())
    );
}

#[tokio::test]
async fn the_default_key_never_serves_another_account() {
    let w = World::new().await;
    let arn = w
        .coffer
        .create_secret(
            &w.a,
            CreateSecretInput {
                name: "shared/default-key".into(),
                value: string("under aws/secretsmanager"),
                client_request_token: tok(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .arn;
    w.share_with_on(&arn, &w.reader.principal_arn, &["secretsmanager:*"])
        .await;
    w.allow_reader(&["secretsmanager:*"], &["kms:*"]).await;
    let default_key_error = CoreError::InvalidRequest(DEFAULT_KEY_ERROR.into());
    // Metadata is shared (AWS's own test shows DescribeSecret working) ...
    let described = w.coffer.describe_secret(&w.reader, &arn).await.unwrap();
    assert_eq!(described.arn, arn);
    // ... the value is not, for reading or writing.
    assert_eq!(
        w.read(&w.reader, &arn).await.unwrap_err(),
        default_key_error
    );
    let put = w
        .coffer
        .put_secret_value(
            &w.reader,
            PutSecretValueInput {
                secret_id: arn.clone(),
                client_request_token: tok(),
                value: string("from B"),
                version_stages: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(put, default_key_error);
    // Nor for B's root.
    w.share_with_on(&arn, &format!("arn:aws:iam::{B}:root"), &[GET])
        .await;
    assert_eq!(w.read(&w.b, &arn).await.unwrap_err(), default_key_error);
    // The owner still reads it.
    assert_eq!(
        w.read(&w.a, &arn).await.unwrap(),
        "under aws/secretsmanager"
    );
    // The authorization comes first: without the resource policy it is AccessDenied.
    w.coffer.delete_resource_policy(&w.a, &arn).await.unwrap();
    assert_eq!(
        w.read(&w.reader, &arn).await.unwrap_err(),
        no_resource_policy(&w.reader.principal_arn, GET, &arn)
    );
}

#[tokio::test]
async fn missing_and_refused_secrets_look_alike() {
    let w = World::new().await;
    let reader = w.reader.principal_arn.clone();
    w.allow_reader(&[GET, "secretsmanager:DescribeSecret"], &["kms:Decrypt"])
        .await;
    // An existing secret without a policy for B, and one that does not exist: the same
    // AccessDenied, naming the ARN as given.
    assert_eq!(
        w.read(&w.reader, &w.secret_arn).await.unwrap_err(),
        no_resource_policy(&reader, GET, &w.secret_arn)
    );
    let missing = format!("arn:aws:secretsmanager:{REGION}:{A}:secret:no/such-AbCdEf");
    assert_eq!(
        w.read(&w.reader, &missing).await.unwrap_err(),
        no_resource_policy(&reader, GET, &missing)
    );
    // Also for B's root, and for an account that does not exist.
    let nowhere = format!("arn:aws:secretsmanager:{REGION}:333333333333:secret:x-AbCdEf");
    assert_eq!(
        w.read(&w.b, &nowhere).await.unwrap_err(),
        no_resource_policy(&w.b.principal_arn, GET, &nowhere)
    );
    // Forcing the deletion of a missing secret of another account is refused too, rather
    // than answered as if it had worked.
    let err = w
        .coffer
        .delete_secret(
            &w.b,
            DeleteSecretInput {
                secret_id: missing.clone(),
                force_delete_without_recovery: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        no_resource_policy(&w.b.principal_arn, "secretsmanager:DeleteSecret", &missing)
    );

    // Shared now: only the full ARN reaches it from B. A partial ARN of another account is
    // treated as naming nothing; a name is looked up in B's own account.
    w.share_with(&reader, &[GET]).await;
    assert_eq!(w.read(&w.reader, &w.secret_arn).await.unwrap(), "s3cr3t");
    let partial = format!("arn:aws:secretsmanager:{REGION}:{A}:secret:shared/db");
    assert_eq!(
        w.read(&w.reader, &partial).await.unwrap_err(),
        no_resource_policy(&reader, GET, &partial)
    );
    assert_eq!(
        w.read(&w.b, "shared/db").await.unwrap_err(),
        CoreError::NotFound("Secrets Manager can't find the specified secret.".into())
    );
    // Malformed ids get the same validation error as in the caller's own account.
    assert!(matches!(
        w.read(&w.reader, &format!("{}!", w.secret_arn)).await,
        Err(CoreError::Validation(_))
    ));
}

#[tokio::test]
async fn secrets_are_regional_across_accounts_too() {
    let w = World::new().await;
    let reader = w.reader.principal_arn.clone();
    w.share_with(&reader, &[GET]).await;
    w.allow_reader(&[GET], &["kms:Decrypt"]).await;
    // B asking in another region finds nothing there: the request is about a secret of
    // account A that does not exist in eu-west-1, so A's resource policy cannot allow it.
    let elsewhere = in_region(&w.reader, "eu-west-1");
    assert_eq!(
        w.read(&elsewhere, &w.secret_arn).await.unwrap_err(),
        no_resource_policy(&reader, GET, &w.secret_arn)
    );
    // The owner asking in another region: not found, as before.
    assert_eq!(
        w.read(&in_region(&w.a, "eu-west-1"), &w.secret_arn)
            .await
            .unwrap_err(),
        CoreError::NotFound("Secrets Manager can't find the specified secret.".into())
    );
}

#[tokio::test]
async fn operations_by_secret_id_work_across_accounts_as_far_as_policies_allow() {
    let w = World::new().await;
    let reader = w.reader.clone();
    let arn = w.secret_arn.clone();
    w.set_key_policy(&["kms:Decrypt", "kms:GenerateDataKey"])
        .await;
    w.allow_reader(
        &["secretsmanager:*"],
        &["kms:Decrypt", "kms:GenerateDataKey"],
    )
    .await;

    // Nothing without A's resource policy: every operation is refused the same way.
    let c = &w.coffer;
    let refused = |action: &str| no_resource_policy(&reader.principal_arn, action, &arn);
    assert_eq!(
        c.describe_secret(&reader, &arn).await.unwrap_err(),
        refused("secretsmanager:DescribeSecret")
    );
    assert_eq!(
        c.resource_policy(&reader, &arn).await.unwrap_err(),
        refused("secretsmanager:GetResourcePolicy")
    );
    assert_eq!(
        c.tag_resource(&reader, &arn, &[("team".into(), "b".into())])
            .await
            .unwrap_err(),
        refused("secretsmanager:TagResource")
    );
    assert_eq!(
        c.list_secret_version_ids(
            &reader,
            ListSecretVersionIdsInput {
                secret_id: arn.clone(),
                ..Default::default()
            }
        )
        .await
        .unwrap_err(),
        refused("secretsmanager:ListSecretVersionIds")
    );

    // A shares everything with B's reader.
    w.share_with(&reader.principal_arn, &["secretsmanager:*"])
        .await;
    assert_eq!(c.describe_secret(&reader, &arn).await.unwrap().arn, arn);
    let (policy_arn, _, policy) = c.resource_policy(&reader, &arn).await.unwrap();
    assert_eq!(policy_arn, arn);
    assert!(policy.unwrap().contains("secretsmanager:*"));
    c.tag_resource(&reader, &arn, &[("team".into(), "b".into())])
        .await
        .unwrap();
    assert_eq!(
        c.describe_secret(&w.a, &arn).await.unwrap().tags,
        vec![("team".to_string(), "b".to_string())]
    );
    c.untag_resource(&reader, &arn, &["team".to_string()])
        .await
        .unwrap();
    assert!(c.describe_secret(&w.a, &arn).await.unwrap().tags.is_empty());

    // B writes a new value under A's key (the key policy allows GenerateDataKey to B).
    let put = c
        .put_secret_value(
            &reader,
            PutSecretValueInput {
                secret_id: arn.clone(),
                client_request_token: tok(),
                value: string("from B"),
                version_stages: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(put.arn, arn);
    assert_eq!(w.read(&w.a, &arn).await.unwrap(), "from B");
    assert_eq!(w.read(&reader, &arn).await.unwrap(), "from B");
    let versions = c
        .list_secret_version_ids(
            &reader,
            ListSecretVersionIdsInput {
                secret_id: arn.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(versions.versions.len(), 2);
    // Move AWSCURRENT back to the first version.
    let first = versions
        .versions
        .iter()
        .find(|v| v.stages.iter().any(|s| s == "AWSPREVIOUS"))
        .unwrap()
        .version_id
        .clone();
    c.update_secret_version_stage(
        &reader,
        UpdateSecretVersionStageInput {
            secret_id: arn.clone(),
            version_stage: "AWSCURRENT".into(),
            remove_from_version_id: put.version_id.clone(),
            move_to_version_id: Some(first),
        },
    )
    .await
    .unwrap();
    assert_eq!(w.read(&reader, &arn).await.unwrap(), "s3cr3t");
    c.update_secret(
        &reader,
        UpdateSecretInput {
            secret_id: arn.clone(),
            description: Some("edited by B".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.describe_secret(&w.a, &arn)
            .await
            .unwrap()
            .description
            .as_deref(),
        Some("edited by B")
    );

    // BatchGetSecretValue takes full ARNs of other accounts; its own action (on `*`) is
    // decided in B alone.
    c.put_inline_policy(
        &w.b,
        PrincipalKind::User,
        "reader",
        "batch",
        &doc(serde_json::json!([{
            "Effect": "Allow",
            "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"],
            "Resource": "*"
        }])),
    )
    .await
    .unwrap();
    let batch = c
        .batch_get_secret_value(
            &reader,
            BatchGetSecretValueInput {
                secret_ids: Some(vec![arn.clone(), format!("{arn}x")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(batch.values.len(), 1);
    assert_eq!(batch.values[0].arn, arn);
    assert_eq!(batch.errors.len(), 1);
    assert!(
        matches!(&batch.errors[0].1, CoreError::AccessDenied(m) if m.contains("because no resource-based policy allows")),
        "{:?}",
        batch.errors
    );

    // Listing stays within the caller's account.
    let listed = c
        .list_secrets(&reader, ListSecretsInput::default())
        .await
        .unwrap();
    assert!(listed.secrets.is_empty());

    // A policy B puts on A's secret is judged broad from A's point of view.
    let for_b = doc(serde_json::json!([{
        "Effect": "Allow", "Principal": {"AWS": reader.principal_arn},
        "Action": "secretsmanager:*", "Resource": "*"
    }]));
    assert!(matches!(
        c.put_resource_policy(&reader, &arn, &for_b, true).await,
        Err(CoreError::PublicPolicy(_))
    ));
    c.put_resource_policy(&reader, &arn, &for_b, false)
        .await
        .unwrap();

    // B deletes and restores A's secret.
    c.delete_secret(
        &reader,
        DeleteSecretInput {
            secret_id: arn.clone(),
            recovery_window_in_days: Some(7),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        c.describe_secret(&w.a, &arn)
            .await
            .unwrap()
            .deleted_ms
            .is_some()
    );
    c.restore_secret(&reader, &arn).await.unwrap();
    assert!(
        c.describe_secret(&w.a, &arn)
            .await
            .unwrap()
            .deleted_ms
            .is_none()
    );

    // Creating always happens in the caller's own account.
    let created = c
        .create_secret(
            &w.b,
            CreateSecretInput {
                name: "shared/db".into(),
                value: string("B's own"),
                client_request_token: tok(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(created.arn.contains(&format!(":{B}:secret:shared/db-")));
    assert_eq!(w.read(&w.b, "shared/db").await.unwrap(), "B's own");
}
