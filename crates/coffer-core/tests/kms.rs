//! The key service across accounts, through `Coffer`: a key is usable from another account
//! only when its key policy allows that account (and the other account's identity allows it),
//! and the AWS managed key of Secrets Manager never is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use coffer_core::clock::SystemClock;
use coffer_core::kms::{CreateKeyInput, EncryptionContext, SECRETS_MANAGER_ALIAS};
use coffer_core::*;

fn root(account_id: &str) -> Caller {
    Caller {
        account_id: account_id.into(),
        principal_arn: format!("arn:aws:iam::{account_id}:root"),
        principal_type: PrincipalType::Root,
        access_key_id: "AKIAEXAMPLE".into(),
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: true,
        session: None,
    }
}

fn plaintext(s: &str) -> SecretBytes {
    SecretBytes::from(s.to_string())
}

#[tokio::test]
async fn another_account_uses_a_key_only_when_the_key_policy_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some("111111111111".into()),
        },
    )
    .unwrap();
    let coffer = Arc::new(Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap());
    coffer.create_account(Some("222222222222")).await.unwrap();
    let (a, b) = (root("111111111111"), root("222222222222"));
    let ctx = EncryptionContext::new();

    let key = coffer
        .kms_create_key(&a, CreateKeyInput::default())
        .await
        .unwrap();
    let arn = key.arn();
    // By id, the key is looked up in B's own account: not found.
    let err = coffer
        .kms_encrypt(&b, &key.key_id, &plaintext("x"), &ctx, None, false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::Kms {
                code: KmsCode::NotFound,
                ..
            }
        ),
        "{err:?}"
    );
    // By ARN, it is found, but the default key policy trusts only account A.
    let err = coffer
        .kms_encrypt(&b, &arn, &plaintext("x"), &ctx, None, false)
        .await
        .unwrap_err();
    match err {
        CoreError::AccessDenied(m) => {
            assert!(m.contains("arn:aws:iam::222222222222:root"), "{m}");
            assert!(m.contains("kms:Encrypt"), "{m}");
        }
        other => panic!("{other:?}"),
    }

    // A grants account B encrypt/decrypt in the key policy.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "PartnerUse", "Effect": "Allow", "Principal": {"AWS": "222222222222"},
             "Action": ["kms:Encrypt", "kms:Decrypt"], "Resource": "*"}
        ]
    })
    .to_string();
    coffer
        .kms_put_key_policy(&a, &key.key_id, None, &policy, false)
        .await
        .unwrap();
    let c = coffer
        .kms_encrypt(&b, &arn, &plaintext("shared"), &ctx, None, false)
        .await
        .unwrap();
    let p = coffer
        .kms_decrypt(&a, &c.blob, &ctx, None, None, false)
        .await
        .unwrap();
    assert_eq!(p.plaintext.expose(), b"shared");
    let p = coffer
        .kms_decrypt(&b, &c.blob, &ctx, None, None, false)
        .await
        .unwrap();
    assert_eq!(p.plaintext.expose(), b"shared");
    // Only what was granted: B may not manage the key.
    assert!(matches!(
        coffer.kms_disable_key(&b, &arn).await,
        Err(CoreError::AccessDenied(_))
    ));

    // An explicit deny for B in the key policy wins over the allow.
    let mut deny_value: serde_json::Value = serde_json::from_str(&policy).unwrap();
    deny_value["Statement"][1]["Effect"] = "Deny".into();
    coffer
        .kms_put_key_policy(&a, &key.key_id, None, &deny_value.to_string(), false)
        .await
        .unwrap();
    assert!(matches!(
        coffer
            .kms_decrypt(&b, &c.blob, &ctx, None, None, false)
            .await,
        Err(CoreError::AccessDenied(_))
    ));
}

#[tokio::test]
async fn the_secrets_manager_key_is_not_for_direct_or_foreign_use() {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some("111111111111".into()),
        },
    )
    .unwrap();
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    coffer.create_account(Some("222222222222")).await.unwrap();
    let (a, b) = (root("111111111111"), root("222222222222"));
    // DescribeKey of the predefined alias creates the key, as AWS does.
    let key = coffer
        .kms_describe_key(&a, SECRETS_MANAGER_ALIAS)
        .await
        .unwrap();
    assert_eq!(key.manager, KeyManager::Aws);
    let ctx = EncryptionContext::new();
    // Not directly, even for the account's root user: only through Secrets Manager.
    assert!(matches!(
        coffer
            .kms_encrypt(
                &a,
                SECRETS_MANAGER_ALIAS,
                &plaintext("x"),
                &ctx,
                None,
                false
            )
            .await,
        Err(CoreError::AccessDenied(_))
    ));
    // Its policy cannot be changed, nor the key scheduled for deletion.
    assert!(matches!(
        coffer
            .kms_schedule_key_deletion(&a, &key.key_id, Some(7))
            .await,
        Err(CoreError::AccessDenied(_))
    ));
    // Not from another account either.
    assert!(matches!(
        coffer.kms_describe_key(&b, &key.arn()).await,
        Err(CoreError::AccessDenied(_))
    ));
}
