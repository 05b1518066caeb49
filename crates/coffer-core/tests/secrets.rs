//! The Secrets Manager rules of `coffer-core`, exercised through `Coffer` over a real SQLite
//! store in a temporary directory, with a manual clock for everything time-dependent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use coffer_core::clock::{Clock, ManualClock};
use coffer_core::listing::{Filter, FilterKey, SortBy};
use coffer_core::*;

const DAY: i64 = 86_400_000;

struct Fixture {
    _dir: tempfile::TempDir,
    coffer: Coffer,
    clock: Arc<ManualClock>,
    caller: Caller,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let out = Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some("111122223333".into()),
        },
    )
    .unwrap();
    assert_eq!(out.account_id, "111122223333");
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let coffer = Coffer::open(dir.path(), clock.clone()).unwrap();
    let caller = Caller {
        account_id: out.account_id,
        principal_arn: "arn:aws:iam::111122223333:root".into(),
        principal_type: PrincipalType::Root,
        access_key_id: out.access_key_id,
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: false,
        session: None,
    };
    Fixture {
        _dir: dir,
        coffer,
        clock,
        caller,
    }
}

fn string(s: &str) -> Option<SecretValue> {
    Some(SecretValue::String(SecretBytes::from(s.to_string())))
}

fn tok() -> Option<String> {
    Some(ids::uuid_v4().unwrap())
}

fn token(n: u32) -> Option<String> {
    Some(format!("{n:0>32}"))
}

async fn create(f: &Fixture, name: &str, value: &str) -> WriteOutcome {
    f.coffer
        .create_secret(
            &f.caller,
            CreateSecretInput {
                name: name.into(),
                value: string(value),
                client_request_token: tok(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
}

async fn get(f: &Fixture, id: &str) -> Result<String, CoreError> {
    let v = f
        .coffer
        .get_secret_value(
            &f.caller,
            GetSecretValueInput {
                secret_id: id.into(),
                ..Default::default()
            },
        )
        .await?;
    match v.value {
        SecretValue::String(s) => Ok(s.as_str().unwrap().to_string()),
        SecretValue::Binary(_) => panic!("binary"),
    }
}

#[tokio::test]
async fn create_get_and_arn_shape() {
    let f = fixture();
    let o = create(&f, "app/db", "hunter2").await;
    let prefix = "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db-";
    assert!(o.arn.starts_with(prefix), "{}", o.arn);
    assert_eq!(o.arn.len(), prefix.len() + 6);
    assert_eq!(get(&f, "app/db").await.unwrap(), "hunter2");
    assert_eq!(get(&f, &o.arn).await.unwrap(), "hunter2");
    // partial ARN: without the random suffix
    assert_eq!(
        get(
            &f,
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/db"
        )
        .await
        .unwrap(),
        "hunter2"
    );
    // another account's ARN is refused as AWS refuses cross-account access without a
    // resource policy; another region does not see it
    let foreign = o.arn.replace("111122223333", "999999999999");
    assert_eq!(
        get(&f, &foreign).await.unwrap_err(),
        CoreError::AccessDenied(format!(
            "User: arn:aws:iam::111122223333:root is not authorized to perform: secretsmanager:GetSecretValue on resource: {foreign} because no resource-based policy allows the secretsmanager:GetSecretValue action"
        ))
    );
    let mut other_region = f.caller.clone();
    other_region.region = "eu-west-1".into();
    let err = f
        .coffer
        .get_secret_value(
            &other_region,
            GetSecretValueInput {
                secret_id: "app/db".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CoreError::NotFound("Secrets Manager can't find the specified secret.".into())
    );
}

#[tokio::test]
async fn binary_values_round_trip() {
    let f = fixture();
    let bytes = vec![0u8, 1, 2, 255, 254];
    f.coffer
        .create_secret(
            &f.caller,
            CreateSecretInput {
                name: "bin".into(),
                value: Some(SecretValue::Binary(SecretBytes::new(bytes.clone()))),
                client_request_token: tok(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let v = f
        .coffer
        .get_secret_value(
            &f.caller,
            GetSecretValueInput {
                secret_id: "bin".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match v.value {
        SecretValue::Binary(b) => assert_eq!(b.expose(), bytes.as_slice()),
        SecretValue::String(_) => panic!("expected binary"),
    }
}

#[tokio::test]
async fn client_request_token_is_idempotent() {
    let f = fixture();
    let input = || CreateSecretInput {
        name: "idem".into(),
        client_request_token: token(1),
        value: string("v1"),
        ..Default::default()
    };
    let a = f.coffer.create_secret(&f.caller, input()).await.unwrap();
    let b = f.coffer.create_secret(&f.caller, input()).await.unwrap();
    assert_eq!(a.arn, b.arn);
    assert_eq!(a.version_id, b.version_id);
    assert_eq!(a.version_id.as_deref(), token(1).as_deref());
    let other_value = CreateSecretInput {
        value: string("v2"),
        ..input()
    };
    assert!(matches!(
        f.coffer.create_secret(&f.caller, other_value).await,
        Err(CoreError::ResourceExists(_))
    ));
    let new_token = CreateSecretInput {
        client_request_token: token(2),
        ..input()
    };
    let err = f
        .coffer
        .create_secret(&f.caller, new_token)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CoreError::ResourceExists(
            "The operation failed because the secret idem already exists.".into()
        )
    );

    let put = |t: u32, v: &str| PutSecretValueInput {
        secret_id: "idem".into(),
        client_request_token: token(t),
        value: string(v),
        version_stages: None,
    };
    let p1 = f
        .coffer
        .put_secret_value(&f.caller, put(3, "v3"))
        .await
        .unwrap();
    let p2 = f
        .coffer
        .put_secret_value(&f.caller, put(3, "v3"))
        .await
        .unwrap();
    assert_eq!(p1.version_id, p2.version_id);
    assert!(matches!(
        f.coffer.put_secret_value(&f.caller, put(3, "other")).await,
        Err(CoreError::ResourceExists(_))
    ));
    let versions = f
        .coffer
        .describe_secret(&f.caller, "idem")
        .await
        .unwrap()
        .versions;
    assert_eq!(versions.len(), 2, "retries must not add versions");
}

#[tokio::test]
async fn put_moves_current_and_previous() {
    let f = fixture();
    let v1 = create(&f, "rot", "one").await.version_id.unwrap();
    let put = |v: &str| PutSecretValueInput {
        secret_id: "rot".into(),
        value: string(v),
        client_request_token: tok(),
        ..Default::default()
    };
    let v2 = f
        .coffer
        .put_secret_value(&f.caller, put("two"))
        .await
        .unwrap()
        .version_id
        .unwrap();
    assert_eq!(get(&f, "rot").await.unwrap(), "two");
    let prev = f
        .coffer
        .get_secret_value(
            &f.caller,
            GetSecretValueInput {
                secret_id: "rot".into(),
                version_stage: Some("AWSPREVIOUS".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(prev.version_id, v1);
    let v3 = f
        .coffer
        .put_secret_value(&f.caller, put("three"))
        .await
        .unwrap()
        .version_id
        .unwrap();
    let rec = f.coffer.describe_secret(&f.caller, "rot").await.unwrap();
    let stages_of = |id: &str| {
        rec.versions
            .iter()
            .find(|v| v.version_id == id)
            .unwrap()
            .stages
            .clone()
    };
    assert_eq!(stages_of(&v3), vec!["AWSCURRENT"]);
    assert_eq!(stages_of(&v2), vec!["AWSPREVIOUS"]);
    assert!(stages_of(&v1).is_empty());

    // a custom stage does not move AWSCURRENT
    let custom = PutSecretValueInput {
        secret_id: "rot".into(),
        value: string("four"),
        version_stages: Some(vec!["blue".into()]),
        client_request_token: tok(),
    };
    f.coffer.put_secret_value(&f.caller, custom).await.unwrap();
    assert_eq!(get(&f, "rot").await.unwrap(), "three");

    // version and stage must agree
    let err = f
        .coffer
        .get_secret_value(
            &f.caller,
            GetSecretValueInput {
                secret_id: "rot".into(),
                version_id: Some(v1.clone()),
                version_stage: Some("AWSCURRENT".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CoreError::InvalidRequest(_)));
}

#[tokio::test]
async fn update_secret_with_and_without_value() {
    let f = fixture();
    let first = create(&f, "upd", "a").await;
    let o = f
        .coffer
        .update_secret(
            &f.caller,
            UpdateSecretInput {
                secret_id: "upd".into(),
                description: Some("desc".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(o.version_id.is_none());
    let rec = f.coffer.describe_secret(&f.caller, "upd").await.unwrap();
    assert_eq!(rec.description.as_deref(), Some("desc"));
    assert_eq!(rec.versions.len(), 1);
    let o = f
        .coffer
        .update_secret(
            &f.caller,
            UpdateSecretInput {
                secret_id: "upd".into(),
                value: string("b"),
                client_request_token: tok(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_ne!(o.version_id, first.version_id);
    assert_eq!(get(&f, "upd").await.unwrap(), "b");
}

#[tokio::test]
async fn limits_and_validation() {
    let f = fixture();
    let cases: Vec<(CreateSecretInput, &str)> = vec![
        (
            CreateSecretInput {
                name: "bad name".into(),
                ..Default::default()
            },
            "Validation",
        ),
        (
            CreateSecretInput {
                name: "x".repeat(513),
                ..Default::default()
            },
            "Validation",
        ),
        (
            CreateSecretInput {
                name: String::new(),
                ..Default::default()
            },
            "Validation",
        ),
        (
            CreateSecretInput {
                name: "big".into(),
                value: string(&"x".repeat(65_537)),
                client_request_token: tok(),
                ..Default::default()
            },
            "Validation",
        ),
        (
            CreateSecretInput {
                name: "tok".into(),
                client_request_token: Some("short".into()),
                ..Default::default()
            },
            "Validation",
        ),
        (
            CreateSecretInput {
                name: "tags".into(),
                tags: (0..51).map(|i| (format!("k{i}"), "v".into())).collect(),
                ..Default::default()
            },
            "InvalidParameter",
        ),
        (
            CreateSecretInput {
                name: "awstag".into(),
                tags: vec![("aws:x".into(), "v".into())],
                ..Default::default()
            },
            "InvalidParameter",
        ),
        (
            CreateSecretInput {
                name: "kms".into(),
                kms_key_id: Some("alias/mine".into()),
                ..Default::default()
            },
            "InvalidParameter",
        ),
    ];
    for (input, want) in cases {
        let name = input.name.chars().take(20).collect::<String>();
        let err = f.coffer.create_secret(&f.caller, input).await.unwrap_err();
        assert!(format!("{err:?}").starts_with(want), "{name}: {err:?}");
    }
    // exactly at the limits is fine
    create(&f, &"n".repeat(512), &"x".repeat(65_536)).await;
    create(&f, "a/b_c+d=e.f@g-h", "ok").await;
}

#[tokio::test]
async fn secret_without_value() {
    let f = fixture();
    let o = f
        .coffer
        .create_secret(
            &f.caller,
            CreateSecretInput {
                name: "empty".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(o.version_id.is_none());
    let err = get(&f, "empty").await.unwrap_err();
    assert_eq!(
        err,
        CoreError::NotFound(
            "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT"
                .into()
        )
    );
}

#[tokio::test]
async fn deletion_window_restore_and_purge() {
    let f = fixture();
    let arn = create(&f, "gone", "v").await.arn;
    let d = f
        .coffer
        .delete_secret(
            &f.caller,
            DeleteSecretInput {
                secret_id: "gone".into(),
                recovery_window_in_days: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(d.deletion_date_ms, f.clock.now_millis() + 7 * DAY);
    let marked =
        "You can't perform this operation on the secret because it was marked for deletion.";
    assert_eq!(
        get(&f, "gone").await.unwrap_err(),
        CoreError::InvalidRequest(marked.into())
    );
    let put = PutSecretValueInput {
        secret_id: "gone".into(),
        value: string("x"),
        client_request_token: tok(),
        ..Default::default()
    };
    assert_eq!(
        f.coffer.put_secret_value(&f.caller, put).await.unwrap_err(),
        CoreError::InvalidRequest(marked.into())
    );
    let again = f
        .coffer
        .create_secret(
            &f.caller,
            CreateSecretInput {
                name: "gone".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(again, CoreError::InvalidRequest(m) if m.contains("already scheduled for deletion"))
    );
    let listed = f
        .coffer
        .list_secrets(&f.caller, ListSecretsInput::default())
        .await
        .unwrap();
    assert!(listed.secrets.is_empty());
    let listed = f
        .coffer
        .list_secrets(
            &f.caller,
            ListSecretsInput {
                include_planned_deletion: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.secrets.len(), 1);

    f.coffer.restore_secret(&f.caller, "gone").await.unwrap();
    assert_eq!(get(&f, "gone").await.unwrap(), "v");

    f.coffer
        .delete_secret(
            &f.caller,
            DeleteSecretInput {
                secret_id: "gone".into(),
                recovery_window_in_days: Some(7),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    f.clock.advance(7 * DAY - 1);
    assert_eq!(f.coffer.purge_due().await.unwrap(), 0);
    f.clock.advance(1);
    assert_eq!(f.coffer.purge_due().await.unwrap(), 1);
    assert!(matches!(get(&f, "gone").await, Err(CoreError::NotFound(_))));
    assert!(
        f.coffer
            .store()
            .get_sealed_value(&arn, "any")
            .await
            .unwrap()
            .is_none()
    );
    let reborn = create(&f, "gone", "new").await;
    assert_ne!(reborn.arn, arn);
}

#[tokio::test]
async fn delete_parameter_rules() {
    let f = fixture();
    create(&f, "d", "v").await;
    let del = |days: Option<i64>, force: Option<bool>| DeleteSecretInput {
        secret_id: "d".into(),
        recovery_window_in_days: days,
        force_delete_without_recovery: force,
    };
    for days in [6, 31, 0, -1] {
        assert!(
            matches!(
                f.coffer
                    .delete_secret(&f.caller, del(Some(days), None))
                    .await,
                Err(CoreError::InvalidParameter(_))
            ),
            "{days}"
        );
    }
    assert!(matches!(
        f.coffer
            .delete_secret(&f.caller, del(Some(7), Some(true)))
            .await,
        Err(CoreError::InvalidParameter(_))
    ));
    let d = f
        .coffer
        .delete_secret(&f.caller, del(None, None))
        .await
        .unwrap();
    assert_eq!(d.deletion_date_ms, f.clock.now_millis() + 30 * DAY);
    assert!(matches!(
        f.coffer.delete_secret(&f.caller, del(None, None)).await,
        Err(CoreError::InvalidRequest(_))
    ));
    f.coffer
        .delete_secret(&f.caller, del(None, Some(true)))
        .await
        .unwrap();
    create(&f, "d", "again").await;
    // forcing the deletion of a missing secret succeeds; without force it is not found
    let missing = DeleteSecretInput {
        secret_id: "nope".into(),
        force_delete_without_recovery: Some(true),
        ..Default::default()
    };
    assert_eq!(
        f.coffer
            .delete_secret(&f.caller, missing)
            .await
            .unwrap()
            .name,
        "nope"
    );
    let missing = DeleteSecretInput {
        secret_id: "nope".into(),
        ..Default::default()
    };
    assert!(matches!(
        f.coffer.delete_secret(&f.caller, missing).await,
        Err(CoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn last_accessed_has_day_granularity() {
    let f = fixture();
    create(&f, "acc", "v").await;
    assert!(
        f.coffer
            .describe_secret(&f.caller, "acc")
            .await
            .unwrap()
            .last_accessed_ms
            .is_none()
    );
    get(&f, "acc").await.unwrap();
    let now = f.clock.now_millis();
    let rec = f.coffer.describe_secret(&f.caller, "acc").await.unwrap();
    assert_eq!(rec.last_accessed_ms, Some(now - now % DAY));
    f.clock.advance(DAY);
    get(&f, "acc").await.unwrap();
    let rec = f.coffer.describe_secret(&f.caller, "acc").await.unwrap();
    assert_eq!(rec.last_accessed_ms, Some(now - now % DAY + DAY));
}

#[tokio::test]
async fn list_filters_sorting_and_pages() {
    let f = fixture();
    for i in 0..25 {
        f.clock.advance(1000);
        let tags = vec![(
            "team".to_string(),
            if i % 2 == 0 { "red" } else { "blue" }.to_string(),
        )];
        f.coffer
            .create_secret(
                &f.caller,
                CreateSecretInput {
                    name: format!("svc/{i:02}"),
                    value: string("v"),
                    tags,
                    client_request_token: tok(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    create(&f, "other", "v").await;
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = f
            .coffer
            .list_secrets(
                &f.caller,
                ListSecretsInput {
                    max_results: Some(10),
                    next_token: token.clone(),
                    filters: vec![Filter {
                        key: FilterKey::Name,
                        values: vec!["svc/".into()],
                    }],
                    sort_by: SortBy::Name,
                    descending: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.secrets.into_iter().map(|s| s.name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let want: Vec<String> = (0..25).rev().map(|i| format!("svc/{i:02}")).collect();
    assert_eq!(seen, want);
    let red = f
        .coffer
        .list_secrets(
            &f.caller,
            ListSecretsInput {
                filters: vec![Filter {
                    key: FilterKey::TagValue,
                    values: vec!["!red".into()],
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(red.secrets.len(), 13, "12 blue + 'other' without tags");
    let bad = ListSecretsInput {
        next_token: Some("nonsense".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.coffer.list_secrets(&f.caller, bad).await,
        Err(CoreError::InvalidNextToken(_))
    ));
}

#[tokio::test]
async fn batch_get_reports_errors_per_secret() {
    let f = fixture();
    create(&f, "b1", "one").await;
    create(&f, "b2", "two").await;
    let out = f
        .coffer
        .batch_get_secret_value(
            &f.caller,
            BatchGetSecretValueInput {
                secret_ids: Some(vec!["b1".into(), "missing".into(), "b2".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.values.len(), 2);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].0, "missing");
    let both = BatchGetSecretValueInput {
        secret_ids: Some(vec!["b1".into()]),
        filters: Some(vec![]),
        ..Default::default()
    };
    assert!(matches!(
        f.coffer.batch_get_secret_value(&f.caller, both).await,
        Err(CoreError::InvalidParameter(_))
    ));
    let by_filter = BatchGetSecretValueInput {
        filters: Some(vec![Filter {
            key: FilterKey::Name,
            values: vec!["b".into()],
        }]),
        max_results: Some(1),
        ..Default::default()
    };
    let page = f
        .coffer
        .batch_get_secret_value(&f.caller, by_filter)
        .await
        .unwrap();
    assert_eq!(page.values.len(), 1);
    assert!(page.next_token.is_some());
}

#[tokio::test]
async fn version_listing_and_pruning_beyond_100() {
    let f = fixture();
    create(&f, "many", "v0").await;
    for i in 1..=105 {
        f.clock.advance(DAY);
        let put = PutSecretValueInput {
            secret_id: "many".into(),
            value: string(&format!("v{i}")),
            client_request_token: tok(),
            ..Default::default()
        };
        f.coffer.put_secret_value(&f.caller, put).await.unwrap();
    }
    let all = f
        .coffer
        .list_secret_version_ids(
            &f.caller,
            ListSecretVersionIdsInput {
                secret_id: "many".into(),
                include_deprecated: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(all.versions.len(), 100);
    let labelled = f
        .coffer
        .list_secret_version_ids(
            &f.caller,
            ListSecretVersionIdsInput {
                secret_id: "many".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(labelled.versions.len(), 2);
    assert_eq!(get(&f, "many").await.unwrap(), "v105");
}

#[tokio::test]
async fn tags_merge_and_remove() {
    let f = fixture();
    create(&f, "t", "v").await;
    f.coffer
        .tag_resource(
            &f.caller,
            "t",
            &[("a".into(), "1".into()), ("b".into(), "2".into())],
        )
        .await
        .unwrap();
    f.coffer
        .tag_resource(&f.caller, "t", &[("a".into(), "9".into())])
        .await
        .unwrap();
    f.coffer
        .untag_resource(&f.caller, "t", &["b".into()])
        .await
        .unwrap();
    let rec = f.coffer.describe_secret(&f.caller, "t").await.unwrap();
    assert_eq!(rec.tags, vec![("a".to_string(), "9".to_string())]);
    let many: Vec<(String, String)> = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(matches!(
        f.coffer.tag_resource(&f.caller, "t", &many).await,
        Err(CoreError::InvalidParameter(_))
    ));
}

#[tokio::test]
async fn concurrent_puts_all_land() {
    let f = Arc::new(fixture());
    create(&f, "race", "v").await;
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let f = Arc::clone(&f);
        tasks.push(tokio::spawn(async move {
            let put = PutSecretValueInput {
                secret_id: "race".into(),
                client_request_token: token(100 + i),
                value: string(&format!("p{i}")),
                ..Default::default()
            };
            f.coffer.put_secret_value(&f.caller, put).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rec = f.coffer.describe_secret(&f.caller, "race").await.unwrap();
    assert_eq!(rec.versions.len(), 9);
    assert_eq!(
        rec.versions
            .iter()
            .filter(|v| v.stages.contains(&"AWSCURRENT".to_string()))
            .count(),
        1
    );
}

#[tokio::test]
async fn stored_ciphertext_is_bound_to_its_row() {
    let f = fixture();
    let a = create(&f, "bind-a", "value-a").await;
    let b = create(&f, "bind-b", "value-b").await;
    let store = f.coffer.store();
    let sealed_a = store
        .get_sealed_value(&a.arn, a.version_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let rec_b = store.get_secret_by_arn(&b.arn).await.unwrap().unwrap();
    // Swap A's ciphertext into B's version row: opening it must fail, not return A's value.
    store.purge_secret(&b.arn).await.unwrap();
    let write = coffer_store::SecretWrite {
        new_values: vec![(b.version_id.clone().unwrap(), sealed_a)],
        ..Default::default()
    };
    store.create_secret(rec_b, write).await.unwrap();
    assert!(matches!(
        get(&f, "bind-b").await,
        Err(CoreError::DecryptionFailure(_))
    ));
    assert_eq!(get(&f, "bind-a").await.unwrap(), "value-a");
}
