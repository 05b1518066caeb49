//! Root key rotation through `Coffer`: everything sealed under the root key (account keys,
//! access key secrets, KMS key material) is re-sealed under a new generation, an interrupted
//! rotation resumes after a restart, and afterwards the old generation is gone while every
//! value still reads.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use coffer_core::clock::SystemClock;
use coffer_core::kms::CreateKeyInput;
use coffer_core::*;

fn root_caller(account_id: &str, access_key_id: &str) -> Caller {
    Caller {
        account_id: account_id.into(),
        principal_arn: format!("arn:aws:iam::{account_id}:root"),
        principal_type: PrincipalType::Root,
        access_key_id: access_key_id.into(),
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: false,
        session: None,
    }
}

async fn read(coffer: &Coffer, caller: &Caller, name: &str) -> String {
    let out = coffer
        .get_secret_value(
            caller,
            GetSecretValueInput {
                secret_id: name.into(),
                version_id: None,
                version_stage: None,
            },
        )
        .await
        .unwrap();
    match out.value {
        SecretValue::String(s) => s.as_str().unwrap().to_string(),
        SecretValue::Binary(_) => panic!("binary"),
    }
}

async fn populate(coffer: &Coffer, caller: &Caller) -> Vec<(String, String)> {
    let key = coffer
        .kms_create_key(caller, CreateKeyInput::default())
        .await
        .unwrap();
    coffer
        .kms_rotate_key_on_demand(caller, &key.key_id)
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..6 {
        let name = format!("app/{i}");
        let value = format!("value-{i}");
        coffer
            .create_secret(
                caller,
                CreateSecretInput {
                    name: name.clone(),
                    client_request_token: Some(ids::uuid_v4().unwrap()),
                    description: None,
                    // Half under the AWS managed key, half under the customer managed key.
                    kms_key_id: (i % 2 == 0).then(|| key.key_id.clone()),
                    value: Some(SecretValue::String(SecretBytes::from(value.clone()))),
                    tags: vec![],
                },
            )
            .await
            .unwrap();
        written.push((name, value));
    }
    written
}

fn labels_in(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("root-key.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rotation_reseals_everything_and_destroys_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Coffer::init(dir.path(), &InitOptions::default()).unwrap();
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let caller = root_caller(&out.account_id, &out.access_key_id);
    let written = populate(&coffer, &caller).await;
    let audit_key = coffer.audit_public_key().await.unwrap().to_pem();

    let mut calls = Vec::new();
    let outcome = coffer
        .rotate_root_key(|done, total| calls.push((done, total)))
        .await
        .unwrap();
    assert!(outcome.finished);
    assert_eq!(outcome.generation, 2);
    // one account key, one access key, the managed key's and the CMK's two materials, and
    // the audit log's signing key
    assert_eq!(outcome.total, 6, "{outcome:?}");
    assert_eq!(
        coffer.audit_public_key().await.unwrap().to_pem(),
        audit_key,
        "the audit signing key is re-sealed, not replaced"
    );
    assert_eq!(outcome.resealed, outcome.total);
    assert_eq!(calls.last(), Some(&(outcome.total, outcome.total)));
    assert!(
        !dir.path().join("root.key").exists(),
        "generation 1 destroyed"
    );
    assert!(dir.path().join("root-2.key").exists());
    assert_eq!(labels_in(dir.path()), vec!["root/2"]);
    for (name, value) in &written {
        assert_eq!(&read(&coffer, &caller, name).await, value);
    }
    drop(coffer);

    // A fresh process reads everything with only the new generation.
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    assert!(!coffer.root_rotation_in_progress());
    for (name, value) in &written {
        assert_eq!(&read(&coffer, &caller, name).await, value);
    }
    let key = coffer
        .access_key(&out.access_key_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key.secret_access_key.expose(),
        out.secret_access_key.expose()
    );
    // A second rotation goes on to generation 3.
    let again = coffer.rotate_root_key(|_, _| {}).await.unwrap();
    assert_eq!(again.generation, 3);
}

#[tokio::test]
async fn an_interrupted_rotation_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let out = Coffer::init(dir.path(), &InitOptions::default()).unwrap();
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    let caller = root_caller(&out.account_id, &out.access_key_id);
    let written = populate(&coffer, &caller).await;

    let partial = coffer.rotate_root_key_partly(|_, _| {}, 2).await.unwrap();
    assert!(!partial.finished);
    assert_eq!(partial.resealed, 2);
    drop(coffer);

    // Restarted mid-rotation: both generations are listed and everything reads.
    assert_eq!(labels_in(dir.path()), vec!["root", "root/2"]);
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    assert!(coffer.root_rotation_in_progress());
    for (name, value) in &written {
        assert_eq!(&read(&coffer, &caller, name).await, value);
    }
    // Writes during the rotation are sealed under the new generation.
    coffer
        .create_secret(
            &caller,
            CreateSecretInput {
                name: "during".into(),
                client_request_token: Some(ids::uuid_v4().unwrap()),
                description: None,
                kms_key_id: None,
                value: Some(SecretValue::String(SecretBytes::from("d".to_string()))),
                tags: vec![],
            },
        )
        .await
        .unwrap();

    let done = coffer.rotate_root_key(|_, _| {}).await.unwrap();
    assert!(done.finished);
    assert_eq!(done.generation, 2, "resumed, not started over");
    assert_eq!(
        done.resealed,
        done.total - 2,
        "the two done before are skipped"
    );
    assert!(!dir.path().join("root.key").exists());
    drop(coffer);
    let coffer = Coffer::open(dir.path(), Arc::new(SystemClock)).unwrap();
    for (name, value) in &written {
        assert_eq!(&read(&coffer, &caller, name).await, value);
    }
    assert_eq!(read(&coffer, &caller, "during").await, "d");
}
