//! The official AWS SDK for Rust (`aws-sdk-kms`) against `coffer server --dev`: customer managed
//! keys, encryption with and without an encryption context, data keys, key states, and Secrets
//! Manager storing a secret under a customer managed key. The SDK decoding every answer into its
//! modeled shapes and error variants is what proves the TrentService wire format. Expectations
//! follow AWS's documented behaviour (the KMS API reference); each test gets its own server.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use aws_sdk_kms as kms;
use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::operation::encrypt::EncryptError;
use aws_sdk_kms::operation::generate_data_key::GenerateDataKeyError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyManagerType, KeyState, KeyUsageType, Tag};
use coffer_e2e::sm::operation::create_secret::CreateSecretError;
use coffer_e2e::sm::operation::get_secret_value::GetSecretValueError;
use coffer_e2e::{Server, random_hex, service_error};

/// AWS's answers (KMS API reference and recorded AWS responses; see tests/python/test_kms.py).
const INCORRECT_KEY: &str =
    "The key ID in the request does not identify a CMK that can perform this operation.";
const SM_DECRYPTION_FAILURE: &str =
    "Secrets Manager can't decrypt the protected secret text using the provided KMS key.";

use common::kms_client;

fn start() -> (Server, kms::Client, coffer_e2e::sm::Client) {
    let server = Server::dev().expect("start coffer server --dev");
    let kms = kms_client(&server);
    let sm = server.client();
    (server, kms, sm)
}

fn key_arn(server: &Server, key_id: &str) -> String {
    format!(
        "arn:aws:kms:{}:{}:key/{key_id}",
        server.region, server.account_id
    )
}

/// Creates a key and returns its id.
async fn create_key(kms: &kms::Client, description: &str) -> String {
    let out = kms
        .create_key()
        .description(description)
        .send()
        .await
        .unwrap();
    out.key_metadata().expect("KeyMetadata").key_id().to_owned()
}

#[tokio::test]
async fn create_key_then_describe_it() {
    let (server, kms, _sm) = start();
    let created = kms
        .create_key()
        .description("sdk key")
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("core")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().expect("KeyMetadata");
    let key_id = meta.key_id().to_owned();
    assert_eq!(key_id.len(), 36, "a key id is a UUID: {key_id}");
    assert_eq!(meta.arn(), Some(key_arn(&server, &key_id).as_str()));
    assert_eq!(meta.aws_account_id(), Some(server.account_id.as_str()));
    assert_eq!(meta.description(), Some("sdk key"));
    assert!(meta.enabled());
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(meta.key_manager(), Some(&KeyManagerType::Customer));
    assert!(meta.creation_date().is_some());

    let described = kms
        .describe_key()
        .key_id(key_arn(&server, &key_id))
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), key_id);

    let policy = kms
        .get_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(
        policy["Statement"][0]["Principal"]["AWS"],
        format!("arn:aws:iam::{}:root", server.account_id),
        "the default key policy delegates to the account: {policy}"
    );
    assert_eq!(policy["Statement"][0]["Action"], "kms:*");

    let tags = kms
        .list_resource_tags()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(tags, vec![("team", "core")]);

    let listed = kms.list_keys().send().await.unwrap();
    assert!(
        listed.keys().iter().any(|k| k.key_id() == Some(&key_id)),
        "ListKeys lists the new key"
    );
}

#[tokio::test]
async fn encrypt_and_decrypt_with_and_without_context() {
    let (server, kms, _sm) = start();
    let key_id = create_key(&kms, "crypto").await;
    let arn = key_arn(&server, &key_id);

    // without an encryption context
    let enc = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"no context".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(enc.key_id(), Some(arn.as_str()));
    let blob = enc.ciphertext_blob().unwrap().clone();
    assert!(!blob.as_ref().windows(10).any(|w| w == b"no context"));
    let dec = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"no context");
    assert_eq!(dec.key_id(), Some(arn.as_str()));
    let with_context_given = service_error(
        kms.decrypt()
            .ciphertext_blob(blob.clone())
            .encryption_context("purpose", "test")
            .send()
            .await,
    );
    assert!(
        matches!(
            with_context_given,
            DecryptError::InvalidCiphertextException(_)
        ),
        "{with_context_given:?}"
    );

    // with an encryption context
    let enc = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"bound to context".to_vec()))
        .encryption_context("purpose", "test")
        .encryption_context("tenant", "42")
        .send()
        .await
        .unwrap();
    let bound = enc.ciphertext_blob().unwrap().clone();
    let dec = kms
        .decrypt()
        .ciphertext_blob(bound.clone())
        .encryption_context("tenant", "42")
        .encryption_context("purpose", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), b"bound to context");

    for wrong in [
        vec![],
        vec![("purpose", "test")],
        vec![("purpose", "test"), ("tenant", "43")],
    ] {
        let mut request = kms.decrypt().ciphertext_blob(bound.clone());
        for (k, v) in &wrong {
            request = request.encryption_context(*k, *v);
        }
        let e = service_error(request.send().await);
        assert!(
            matches!(e, DecryptError::InvalidCiphertextException(_)),
            "context {wrong:?}: {e:?}"
        );
    }

    // a tampered ciphertext
    let mut tampered = bound.clone().into_inner();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let e = service_error(
        kms.decrypt()
            .ciphertext_blob(Blob::new(tampered))
            .encryption_context("purpose", "test")
            .encryption_context("tenant", "42")
            .send()
            .await,
    );
    assert!(
        matches!(e, DecryptError::InvalidCiphertextException(_)),
        "{e:?}"
    );

    // naming another key
    let other = create_key(&kms, "other").await;
    let e = service_error(
        kms.decrypt()
            .ciphertext_blob(blob)
            .key_id(&other)
            .send()
            .await,
    );
    assert!(matches!(e, DecryptError::IncorrectKeyException(_)), "{e:?}");
    assert_eq!(e.message(), Some(INCORRECT_KEY));
}

#[tokio::test]
async fn generate_data_key_and_without_plaintext() {
    let (server, kms, _sm) = start();
    let key_id = create_key(&kms, "data keys").await;
    let out = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("file", "a.bin")
        .send()
        .await
        .unwrap();
    let plaintext = out.plaintext().expect("Plaintext").as_ref().to_vec();
    assert_eq!(plaintext.len(), 32);
    assert_eq!(out.key_id(), Some(key_arn(&server, &key_id).as_str()));
    let dec = kms
        .decrypt()
        .ciphertext_blob(out.ciphertext_blob().unwrap().clone())
        .encryption_context("file", "a.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(dec.plaintext().unwrap().as_ref(), plaintext.as_slice());

    let short = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes128)
        .send()
        .await
        .unwrap();
    assert_eq!(short.plaintext().unwrap().as_ref().len(), 16);
    let sized = kms
        .generate_data_key()
        .key_id(&key_id)
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    assert_eq!(sized.plaintext().unwrap().as_ref().len(), 64);

    let without = kms
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    let opened = kms
        .decrypt()
        .ciphertext_blob(without.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref().len(), 32);

    for (spec, bytes) in [(None, None), (Some(DataKeySpec::Aes256), Some(32))] {
        let e = service_error(
            kms.generate_data_key()
                .key_id(&key_id)
                .set_key_spec(spec.clone())
                .set_number_of_bytes(bytes)
                .send()
                .await,
        );
        assert_eq!(
            e.code(),
            Some("ValidationException"),
            "KeySpec {spec:?} and NumberOfBytes {bytes:?}: {e:?}"
        );
    }

    let random = kms
        .generate_random()
        .number_of_bytes(48)
        .send()
        .await
        .unwrap();
    assert_eq!(random.plaintext().unwrap().as_ref().len(), 48);
}

#[tokio::test]
async fn key_states_are_modeled_errors() {
    let (server, kms, _sm) = start();
    let key_id = create_key(&kms, "states").await;
    let arn = key_arn(&server, &key_id);

    let e = service_error(
        kms.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .dry_run(true)
            .send()
            .await,
    );
    assert!(
        matches!(e, EncryptError::DryRunOperationException(_)),
        "{e:?}"
    );

    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let e = service_error(
        kms.generate_data_key()
            .key_id(&key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
    );
    assert!(
        matches!(e, GenerateDataKeyError::DisabledException(_)),
        "{e:?}"
    );
    assert_eq!(e.message(), Some(format!("{arn} is disabled.").as_str()));

    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    assert!(scheduled.deletion_date().is_some());
    let e = service_error(
        kms.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert!(
        matches!(e, EncryptError::KmsInvalidStateException(_)),
        "{e:?}"
    );
    assert_eq!(
        e.message(),
        Some(format!("{arn} is pending deletion.").as_str())
    );

    kms.cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    let meta = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state(),
        Some(&KeyState::Disabled),
        "a cancelled deletion leaves the key disabled"
    );
}

#[tokio::test]
async fn rotation_keeps_old_ciphertexts_readable() {
    let (_server, kms, _sm) = start();
    let key_id = create_key(&kms, "rotating").await;
    let old = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"before".to_vec()))
        .send()
        .await
        .unwrap();
    let old_material = kms
        .decrypt()
        .ciphertext_blob(old.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap()
        .key_material_id()
        .expect("KeyMaterialId")
        .to_owned();

    kms.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();

    let reopened = kms
        .decrypt()
        .ciphertext_blob(old.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(reopened.plaintext().unwrap().as_ref(), b"before");
    assert_eq!(reopened.key_material_id(), Some(old_material.as_str()));
    let new = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"after".to_vec()))
        .send()
        .await
        .unwrap();
    let new_material = kms
        .decrypt()
        .ciphertext_blob(new.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap()
        .key_material_id()
        .expect("KeyMaterialId")
        .to_owned();
    assert_ne!(new_material, old_material);
    let rotations = kms
        .list_key_rotations()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    assert_eq!(
        rotations.rotations()[0].key_material_id(),
        Some(new_material.as_str())
    );
}

#[tokio::test]
async fn secret_under_a_customer_managed_key() {
    let (server, kms, sm) = start();
    let key_id = create_key(&kms, "for secrets").await;
    let alias = format!("alias/e2e-{}", random_hex(12));
    kms.create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();

    let name = format!("e2e/kms/{}", random_hex(8));
    sm.create_secret()
        .name(&name)
        .secret_string("under a customer key")
        .kms_key_id(&alias)
        .send()
        .await
        .unwrap();
    let described = sm.describe_secret().secret_id(&name).send().await.unwrap();
    let shown = described.kms_key_id().expect("KmsKeyId");
    let alias_arn = format!(
        "arn:aws:kms:{}:{}:{alias}",
        server.region, server.account_id
    );
    assert!(
        [
            alias.as_str(),
            alias_arn.as_str(),
            key_id.as_str(),
            key_arn(&server, &key_id).as_str()
        ]
        .contains(&shown),
        "DescribeSecret's KmsKeyId {shown} names the key"
    );
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("under a customer key"));

    // a key that does not exist is refused, and no secret is left behind
    let missing = format!("e2e/kms/{}", random_hex(8));
    let e = service_error(
        sm.create_secret()
            .name(&missing)
            .secret_string("v")
            .kms_key_id("11111111-2222-3333-4444-555555555555")
            .send()
            .await,
    );
    assert!(
        matches!(e, CreateSecretError::InvalidParameterException(_)),
        "{e:?}"
    );
    assert!(
        sm.describe_secret()
            .secret_id(&missing)
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn disabling_the_key_stops_secret_reads_and_enabling_restores_them() {
    let (_server, kms, sm) = start();
    let key_id = create_key(&kms, "switchable").await;
    let name = format!("e2e/kms/{}", random_hex(8));
    sm.create_secret()
        .name(&name)
        .secret_string("on and off")
        .kms_key_id(&key_id)
        .send()
        .await
        .unwrap();

    kms.disable_key().key_id(&key_id).send().await.unwrap();
    let e = service_error(sm.get_secret_value().secret_id(&name).send().await);
    assert!(
        matches!(e, GetSecretValueError::DecryptionFailure(_)),
        "{e:?}"
    );
    assert_eq!(
        coffer_e2e::sm::error::ProvideErrorMetadata::message(&e),
        Some(SM_DECRYPTION_FAILURE)
    );

    kms.enable_key().key_id(&key_id).send().await.unwrap();
    let got = sm.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("on and off"));
}
