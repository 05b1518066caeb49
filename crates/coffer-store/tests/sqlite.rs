//! The SQLite store's contract: what `coffer-core` relies on from any `Store`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coffer_store::*;

fn secret(arn: &str, name: &str, revision: i64) -> SecretRecord {
    SecretRecord {
        arn: arn.into(),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        name: name.into(),
        description: Some("d".into()),
        kms_key_id: None,
        tags: vec![("k".into(), "v".into())],
        owning_service: None,
        created_ms: 1,
        last_changed_ms: 2,
        last_accessed_ms: None,
        deleted_ms: None,
        deletion_due_ms: None,
        resource_policy: None,
        rotation: None,
        versions: vec![VersionRecord {
            version_id: "v1".into(),
            stages: vec!["AWSCURRENT".into()],
            created_ms: 1,
            last_accessed_ms: None,
            kind: ValueKind::Binary,
            empty: false,
        }],
        revision,
    }
}

fn value(tag: u8) -> SealedValue {
    SealedValue {
        wrapped_key: vec![tag; 8],
        sealed: vec![tag; 16],
    }
}

fn one_value(id: &str, tag: u8) -> SecretWrite {
    SecretWrite {
        new_values: vec![(id.into(), value(tag))],
        ..SecretWrite::default()
    }
}

#[tokio::test]
async fn records_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .create_secret(secret("arn:a", "a", 1), one_value("v1", 7))
            .await
            .unwrap();
        store.touch_access("arn:a", "v1", 86_400_000).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let got = store
        .get_secret_by_name("111122223333", "us-east-1", "a")
        .await
        .unwrap()
        .unwrap();
    let mut want = secret("arn:a", "a", 1);
    want.last_accessed_ms = Some(86_400_000);
    want.versions[0].last_accessed_ms = Some(86_400_000);
    assert_eq!(got, want);
    assert_eq!(store.get_secret_by_arn("arn:a").await.unwrap(), Some(want));
    assert_eq!(
        store.get_sealed_value("arn:a", "v1").await.unwrap(),
        Some(value(7))
    );
    assert_eq!(store.get_sealed_value("arn:a", "v2").await.unwrap(), None);
    store.integrity_check().unwrap();
}

#[tokio::test]
async fn names_are_unique_per_account_and_region() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    store
        .create_secret(secret("arn:a", "a", 1), SecretWrite::default())
        .await
        .unwrap();
    let dup = store
        .create_secret(secret("arn:b", "a", 1), SecretWrite::default())
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists)));
    let mut other_region = secret("arn:c", "a", 1);
    other_region.region = "eu-west-1".into();
    store
        .create_secret(other_region, SecretWrite::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .list_secrets("111122223333", "us-east-1")
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .list_secrets("111122223333", "eu-west-1")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn updates_are_conditional_on_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    store
        .create_secret(secret("arn:a", "a", 1), one_value("v1", 1))
        .await
        .unwrap();
    let mut next = secret("arn:a", "a", 2);
    next.description = Some("new".into());
    store
        .update_secret(1, next.clone(), one_value("v2", 2))
        .await
        .unwrap();
    // a writer that read revision 1 loses, and its values are not written
    let stale = store
        .update_secret(1, secret("arn:a", "a", 2), one_value("v3", 3))
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict)));
    assert_eq!(store.get_sealed_value("arn:a", "v3").await.unwrap(), None);
    let got = store.get_secret_by_arn("arn:a").await.unwrap().unwrap();
    assert_eq!(got.description.as_deref(), Some("new"));
    assert_eq!(got.revision, 2);
    // removing a version removes its value
    store
        .update_secret(
            2,
            secret("arn:a", "a", 3),
            SecretWrite {
                removed_versions: vec!["v2".into()],
                ..SecretWrite::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(store.get_sealed_value("arn:a", "v2").await.unwrap(), None);
    assert_eq!(
        store.get_sealed_value("arn:a", "v1").await.unwrap(),
        Some(value(1))
    );
}

#[tokio::test]
async fn purge_due_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    let mut due = secret("arn:due", "due", 1);
    due.deleted_ms = Some(10);
    due.deletion_due_ms = Some(100);
    store.create_secret(due, one_value("v1", 1)).await.unwrap();
    store
        .create_secret(secret("arn:live", "live", 1), one_value("v1", 2))
        .await
        .unwrap();
    assert!(store.secrets_due_for_purge(99).await.unwrap().is_empty());
    assert_eq!(
        store.secrets_due_for_purge(100).await.unwrap(),
        vec!["arn:due".to_string()]
    );
    store.purge_secret("arn:due").await.unwrap();
    assert_eq!(store.get_secret_by_arn("arn:due").await.unwrap(), None);
    assert_eq!(store.get_sealed_value("arn:due", "v1").await.unwrap(), None);
    assert!(store.get_secret_by_arn("arn:live").await.unwrap().is_some());
}

#[tokio::test]
async fn accounts_and_access_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    let account = AccountRecord {
        account_id: "111122223333".into(),
        created_ms: 5,
        wrapped_account_key: vec![1, 2, 3],
    };
    let key = AccessKeyRecord {
        access_key_id: "AKIAEXAMPLE".into(),
        account_id: "111122223333".into(),
        principal_arn: "arn:aws:iam::111122223333:root".into(),
        user_name: None,
        sealed_secret: vec![9; 4],
        active: true,
        created_ms: 5,
    };
    store
        .insert_account(account.clone(), key.clone())
        .await
        .unwrap();
    assert_eq!(
        store.get_account("111122223333").await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(store.list_accounts().await.unwrap(), vec![account.clone()]);
    assert_eq!(
        store.get_access_key("AKIAEXAMPLE").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(store.get_access_key("AKIAOTHER").await.unwrap(), None);
    // the account and its key are written together or not at all
    let mut other_key = key.clone();
    other_key.account_id = "444455556666".into();
    let again = store.insert_account(account, other_key).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_ms) VALUES (999, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().expect("must refuse");
    assert!(err.to_string().contains("upgrade coffer"), "{err}");
}

#[tokio::test]
async fn reads_after_writes_never_see_cached_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    store
        .create_secret(secret("arn:a", "a", 1), one_value("v1", 1))
        .await
        .unwrap();
    for rev in 1..20 {
        // fill the cache by name, by ARN and for the value, then change everything
        assert_eq!(
            store
                .get_secret_by_name("111122223333", "us-east-1", "a")
                .await
                .unwrap()
                .unwrap()
                .revision,
            rev
        );
        assert_eq!(
            store
                .get_secret_by_arn("arn:a")
                .await
                .unwrap()
                .unwrap()
                .revision,
            rev
        );
        let mut next = secret("arn:a", "a", rev + 1);
        next.description = Some(format!("rev {}", rev + 1));
        let id = format!("v{}", rev + 1);
        store
            .update_secret(rev, next, one_value(&id, 9))
            .await
            .unwrap();
        let by_name = store
            .get_secret_by_name("111122223333", "us-east-1", "a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            by_name.description.as_deref(),
            Some(format!("rev {}", rev + 1).as_str())
        );
        assert_eq!(
            store
                .get_secret_by_arn("arn:a")
                .await
                .unwrap()
                .unwrap()
                .revision,
            rev + 1
        );
    }
    assert!(
        store
            .get_sealed_value("arn:a", "v1")
            .await
            .unwrap()
            .is_some()
    );
    store.purge_secret("arn:a").await.unwrap();
    assert_eq!(store.get_sealed_value("arn:a", "v1").await.unwrap(), None);
    assert_eq!(store.get_secret_by_arn("arn:a").await.unwrap(), None);
}

#[test]
fn one_process_owns_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DB_FILE);
    let first = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path)
        .err()
        .expect("a second open must be refused");
    assert!(
        err.to_string().contains("in use by another coffer process"),
        "{err}"
    );
    drop(first);
    SqliteStore::open(&path).unwrap();
}

#[tokio::test]
async fn database_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    store
        .create_secret(secret("arn:a", "a", 1), one_value("v1", 1))
        .await
        .unwrap();
    for name in [
        DB_FILE.to_string(),
        format!("{DB_FILE}-wal"),
        format!("{DB_FILE}-shm"),
    ] {
        let mode = std::fs::metadata(dir.path().join(&name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}

#[tokio::test]
async fn replaced_values_overwrite_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    store
        .create_secret(secret("arn:r", "r", 1), one_value("v1", 1))
        .await
        .unwrap();
    store
        .update_secret(
            1,
            secret("arn:r", "r", 2),
            SecretWrite {
                replaced_values: vec![("v1".into(), value(9))],
                ..SecretWrite::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_sealed_value("arn:r", "v1").await.unwrap(),
        Some(value(9))
    );
}

#[tokio::test]
async fn kms_keys_materials_aliases_and_root_sealed_blobs() {
    use coffer_store::*;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("k.db")).unwrap();
    store
        .insert_account(
            AccountRecord {
                account_id: "111122223333".into(),
                created_ms: 1,
                wrapped_account_key: vec![1],
            },
            AccessKeyRecord {
                access_key_id: "AKIA1".into(),
                account_id: "111122223333".into(),
                principal_arn: "arn:aws:iam::111122223333:root".into(),
                user_name: None,
                sealed_secret: vec![2],
                active: true,
                created_ms: 1,
            },
        )
        .await
        .unwrap();
    let material = |id: &str, b: u8| KeyMaterialRecord {
        material_id: id.into(),
        created_ms: 1,
        rotation_type: None,
        sealed: vec![b],
    };
    let mut key = KmsKeyRecord {
        key_id: "k1".into(),
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        created_ms: 1,
        description: "d".into(),
        manager: KeyManager::Customer,
        state: KeyState::Enabled,
        deletion_due_ms: None,
        pending_window_days: None,
        policy: "{}".into(),
        tags: vec![],
        rotation_enabled: false,
        rotation_period_days: 365,
        next_rotation_ms: None,
        on_demand_rotation_ms: None,
        materials: vec![material("m1", 3)],
        revision: 1,
    };
    let alias = AliasRecord {
        account_id: "111122223333".into(),
        region: "us-east-1".into(),
        alias_name: "alias/a".into(),
        target_key_id: "k1".into(),
        created_ms: 1,
        updated_ms: 1,
    };
    store
        .insert_kms_key(key.clone(), Some(alias.clone()))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_alias(alias.clone()).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(store.get_kms_key("k1").await.unwrap(), Some(key.clone()));

    // An update appends new material and fails on a stale revision.
    key.materials.push(material("m2", 4));
    key.revision = 2;
    store.update_kms_key(1, key.clone()).await.unwrap();
    assert!(matches!(
        store.update_kms_key(1, key.clone()).await,
        Err(StoreError::Conflict)
    ));
    let stored = store.get_kms_key("k1").await.unwrap().unwrap();
    assert_eq!(stored.materials.len(), 2);
    assert_eq!(stored.current_material().unwrap().material_id, "m2");

    // Root-sealed blobs: account key, access key secret, two materials; CAS replacement.
    let sealed = store.root_sealed().await.unwrap();
    assert_eq!(sealed.len(), 4);
    let m1 = sealed
        .iter()
        .find(|s| s.material_id.as_deref() == Some("m1"))
        .unwrap()
        .clone();
    assert_eq!(
        m1.key_arn.as_deref(),
        Some("arn:aws:kms:us-east-1:111122223333:key/k1")
    );
    assert!(
        store
            .replace_root_sealed(m1.clone(), vec![7])
            .await
            .unwrap()
    );
    assert!(
        !store.replace_root_sealed(m1, vec![8]).await.unwrap(),
        "stale blob"
    );
    assert_eq!(
        store.get_kms_key("k1").await.unwrap().unwrap().materials[0].sealed,
        vec![7]
    );

    // Destroying the key takes its material and aliases with it.
    store.destroy_kms_key("k1").await.unwrap();
    assert_eq!(store.get_kms_key("k1").await.unwrap(), None);
    assert_eq!(
        store
            .get_alias("111122223333", "us-east-1", "alias/a")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.root_sealed().await.unwrap().len(), 2);
}

#[tokio::test]
async fn mfa_devices_are_conditional_and_follow_their_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    let a = "111122223333";
    store
        .insert_account(
            AccountRecord {
                account_id: a.into(),
                created_ms: 1,
                wrapped_account_key: vec![1],
            },
            AccessKeyRecord {
                access_key_id: "AKIA1".into(),
                account_id: a.into(),
                principal_arn: format!("arn:aws:iam::{a}:root"),
                user_name: None,
                sealed_secret: vec![2],
                active: true,
                created_ms: 1,
            },
        )
        .await
        .unwrap();
    let user = PrincipalRecord {
        account_id: a.into(),
        kind: PrincipalKind::User,
        name: "Alice".into(),
        principal_id: "AIDAEXAMPLEALICE0001".into(),
        path: "/".into(),
        created_ms: 1,
        trust_policy: None,
        description: None,
        max_session_secs: None,
        tags: vec![],
    };
    store.insert_principal(user).await.unwrap();
    let device = MfaDeviceRecord {
        account_id: a.into(),
        path: "/team/".into(),
        name: "Phone".into(),
        sealed_seed: vec![7; 40],
        user_name: None,
        enabled_ms: None,
        last_counter: 0,
        drift_steps: 0,
        tags: vec![("k".into(), "v".into())],
        created_ms: 5,
        revision: 1,
    };
    assert_eq!(
        device.serial_number(),
        "arn:aws:iam::111122223333:mfa/team/Phone"
    );
    assert!(
        !format!("{device:?}").contains("7, 7"),
        "Debug hides the seal"
    );
    store.insert_mfa_device(device.clone()).await.unwrap();
    let mut twin = device.clone();
    twin.name = "PHONE".into();
    assert!(matches!(
        store.insert_mfa_device(twin).await,
        Err(StoreError::AlreadyExists)
    ));
    assert_eq!(
        store.get_mfa_device(a, "/TEAM/phone").await.unwrap(),
        Some(device.clone())
    );

    // Enabling for a user that does not exist is refused; for one that does, it sticks.
    let mut enabled = device.clone();
    enabled.user_name = Some("nobody".into());
    enabled.enabled_ms = Some(9);
    enabled.revision = 2;
    assert!(matches!(
        store.update_mfa_device(1, enabled.clone()).await,
        Err(StoreError::Conflict)
    ));
    enabled.user_name = Some("alice".into());
    enabled.last_counter = 42;
    store.update_mfa_device(1, enabled.clone()).await.unwrap();
    // A second writer that read revision 1 loses.
    let mut stale = enabled.clone();
    stale.last_counter = 43;
    stale.revision = 2;
    assert!(matches!(
        store.update_mfa_device(1, stale).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.user_mfa_devices(a, "ALICE").await.unwrap(),
        vec![enabled.clone()]
    );
    assert_eq!(store.list_mfa_devices(a).await.unwrap().len(), 1);

    // Renaming the user carries the device along; deleting it releases the device.
    store
        .rename_principal(a, PrincipalKind::User, "alice", "Alicia", "/")
        .await
        .unwrap();
    assert!(store.user_mfa_devices(a, "alice").await.unwrap().is_empty());
    let moved = store.user_mfa_devices(a, "alicia").await.unwrap();
    assert_eq!(moved[0].user_name.as_deref(), Some("Alicia"));
    assert_eq!(moved[0].revision, 3);
    assert!(
        store
            .delete_principal(a, PrincipalKind::User, "alicia")
            .await
            .unwrap()
    );
    let released = store
        .get_mfa_device(a, "/team/phone")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((released.user_name, released.enabled_ms), (None, None));
    assert_eq!(released.last_counter, 42, "consumed codes stay consumed");

    // Deletion is conditional on the revision too.
    assert!(matches!(
        store.delete_mfa_device(a, "/team/phone", 3).await,
        Err(StoreError::Conflict)
    ));
    store
        .delete_mfa_device(a, "/team/phone", released.revision)
        .await
        .unwrap();
    assert_eq!(store.get_mfa_device(a, "/team/phone").await.unwrap(), None);
}

#[tokio::test]
async fn one_holder_at_a_time_holds_a_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    assert!(
        store
            .try_lease("scheduler", "node-a", 1_000, 30_000)
            .await
            .unwrap()
    );
    // Another node cannot take it while it lasts; its holder renews it.
    assert!(
        !store
            .try_lease("scheduler", "node-b", 20_000, 30_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lease("scheduler", "node-a", 25_000, 30_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("scheduler", "node-b", 54_999, 30_000)
            .await
            .unwrap()
    );
    // Once it lapses (node-a stopped renewing), the other node takes it, and node-a is out.
    assert!(
        store
            .try_lease("scheduler", "node-b", 55_000, 30_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("scheduler", "node-a", 56_000, 30_000)
            .await
            .unwrap()
    );
    // Leases are independent by name.
    assert!(
        store
            .try_lease("other", "node-a", 56_000, 30_000)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn rotation_due_follows_the_record_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join(DB_FILE)).unwrap();
    store
        .create_secret(secret("arn:r", "r", 1), one_value("v1", 1))
        .await
        .unwrap();
    assert!(
        store
            .secrets_due_for_rotation(i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
    let mut next = secret("arn:r", "r", 2);
    next.rotation = Some(RotationRecord {
        enabled: true,
        due_ms: Some(5_000),
        ..RotationRecord::default()
    });
    store
        .update_secret(1, next.clone(), SecretWrite::default())
        .await
        .unwrap();
    assert!(
        store
            .secrets_due_for_rotation(4_999)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.secrets_due_for_rotation(5_000).await.unwrap(),
        vec!["arn:r".to_string()]
    );
    assert_eq!(
        store.rotating_secrets().await.unwrap(),
        vec!["arn:r".to_string()]
    );
    let read = store.get_secret_by_arn("arn:r").await.unwrap().unwrap();
    assert_eq!(read.rotation, next.rotation);
    // A secret scheduled for deletion is not rotated.
    let mut deleted = next;
    deleted.revision = 3;
    deleted.deleted_ms = Some(6_000);
    deleted.deletion_due_ms = Some(100_000);
    store
        .update_secret(2, deleted, SecretWrite::default())
        .await
        .unwrap();
    assert!(
        store
            .secrets_due_for_rotation(i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}
