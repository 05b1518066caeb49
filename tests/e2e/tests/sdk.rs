//! The official AWS SDK for Rust against `coffer server --dev`: every Secrets Manager operation
//! we serve, and the errors the SDK must decode into its modeled variants (which proves our
//! `__type` error shapes). Expectations follow AWS's documented and observed behaviour, not
//! coffer's code; each test gets its own server.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};

use coffer_e2e::sm::Client;
use coffer_e2e::sm::error::{ProvideErrorMetadata, SdkError};
use coffer_e2e::sm::operation::batch_get_secret_value::BatchGetSecretValueError;
use coffer_e2e::sm::operation::create_secret::CreateSecretError;
use coffer_e2e::sm::operation::delete_secret::DeleteSecretError;
use coffer_e2e::sm::operation::describe_secret::DescribeSecretError;
use coffer_e2e::sm::operation::get_secret_value::GetSecretValueError;
use coffer_e2e::sm::operation::put_secret_value::PutSecretValueError;
use coffer_e2e::sm::operation::tag_resource::TagResourceError;
use coffer_e2e::sm::operation::update_secret::UpdateSecretError;
use coffer_e2e::sm::operation::update_secret_version_stage::UpdateSecretVersionStageError;
use coffer_e2e::sm::primitives::Blob;
use coffer_e2e::sm::types::{Filter, FilterNameStringType, Tag};
use coffer_e2e::{Credentials, DevOptions, Server, random_hex, random_token, service_error};

const DAY: i64 = 86_400;

/// The call must fail with the given modeled error variant.
macro_rules! expect_err {
    ($call:expr, $variant:pat) => {{
        let e = service_error($call.await);
        assert!(
            matches!(e, $variant),
            "expected {}, got {e:?}",
            stringify!($variant)
        );
        assert!(
            e.message().is_some_and(|m| !m.is_empty()),
            "error without a message: {e:?}"
        );
        e
    }};
}

fn start() -> (Server, Client) {
    let server = Server::dev().expect("start coffer server --dev");
    let client = server.client();
    (server, client)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn stage_set(stages: &[String]) -> BTreeSet<String> {
    stages.iter().cloned().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// VersionIdsToStages from DescribeSecret, with the stage lists as sets.
async fn version_stages(c: &Client, id: &str) -> BTreeMap<String, BTreeSet<String>> {
    let d = c.describe_secret().secret_id(id).send().await.unwrap();
    d.version_ids_to_stages()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), stage_set(v))).collect())
        .unwrap_or_default()
}

async fn current_string(c: &Client, id: &str) -> String {
    let v = c.get_secret_value().secret_id(id).send().await.unwrap();
    v.secret_string().expect("SecretString").to_owned()
}

/// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`.
fn assert_secret_arn(arn: &str, server: &Server, name: &str) {
    let prefix = format!(
        "arn:aws:secretsmanager:{}:{}:secret:{name}-",
        server.region, server.account_id
    );
    let suffix = arn
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("ARN {arn} does not start with {prefix}"));
    assert_eq!(suffix.len(), 6, "ARN suffix must be 6 characters: {arn}");
    assert!(
        suffix.chars().all(|c| c.is_ascii_alphanumeric()),
        "ARN suffix must be alphanumeric: {arn}"
    );
}

#[tokio::test]
async fn create_string_secret_then_get_it() {
    let (server, c) = start();
    let created = c
        .create_secret()
        .name("e2e/app/db")
        .description("primary database")
        .secret_string(r#"{"username":"app","password":"hunter2"}"#)
        .tags(tag("team", "core"))
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    assert_secret_arn(arn, &server, "e2e/app/db");
    assert_eq!(created.name(), Some("e2e/app/db"));
    let version = created.version_id().unwrap();
    assert!(!version.is_empty());

    let got = c
        .get_secret_value()
        .secret_id("e2e/app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(got.arn(), Some(arn));
    assert_eq!(got.name(), Some("e2e/app/db"));
    assert_eq!(got.version_id(), Some(version));
    assert_eq!(
        got.secret_string(),
        Some(r#"{"username":"app","password":"hunter2"}"#)
    );
    assert!(got.secret_binary().is_none());
    assert_eq!(stage_set(got.version_stages()), set(&["AWSCURRENT"]));
    assert!(got.created_date().is_some());
}

#[tokio::test]
async fn create_binary_secret_round_trips_every_byte() {
    let (_server, c) = start();
    let bytes: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n', b'"']).collect();
    c.create_secret()
        .name("e2e/binary")
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await
        .unwrap();
    let got = c
        .get_secret_value()
        .secret_id("e2e/binary")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_binary().map(|b| b.as_ref()), Some(&bytes[..]));
    assert!(got.secret_string().is_none());
}

#[tokio::test]
async fn create_is_idempotent_on_client_request_token() {
    let (_server, c) = start();
    let token = random_token();
    let create = || {
        c.create_secret()
            .name("e2e/idempotent")
            .secret_string("same value")
            .client_request_token(&token)
    };
    let first = create().send().await.unwrap();
    assert_eq!(first.version_id(), Some(token.as_str()));
    // A retry of the same request (same token, same value) succeeds and changes nothing.
    let again = create().send().await.unwrap();
    assert_eq!(again.arn(), first.arn());
    assert_eq!(again.version_id(), Some(token.as_str()));
    let versions = c
        .list_secret_version_ids()
        .secret_id("e2e/idempotent")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1);

    // Same token, different value: a version can't be modified.
    expect_err!(
        c.create_secret()
            .name("e2e/idempotent")
            .secret_string("another value")
            .client_request_token(&token)
            .send(),
        CreateSecretError::ResourceExistsException(_)
    );
    // A new request (new token) for an existing name.
    expect_err!(
        c.create_secret()
            .name("e2e/idempotent")
            .secret_string("same value")
            .send(),
        CreateSecretError::ResourceExistsException(_)
    );
}

#[tokio::test]
async fn describe_by_name_full_arn_and_partial_arn() {
    let (server, c) = start();
    let created = c
        .create_secret()
        .name("e2e/describe/db")
        .description("described")
        .secret_string("v1")
        .tags(tag("env", "test"))
        .tags(tag("owner", "e2e"))
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    let version = created.version_id().unwrap().to_owned();
    // A partial ARN is the ARN without the "-XXXXXX" suffix.
    let partial = &arn[..arn.len() - 7];
    assert_eq!(
        partial,
        format!(
            "arn:aws:secretsmanager:{}:{}:secret:e2e/describe/db",
            server.region, server.account_id
        )
    );

    for id in ["e2e/describe/db", arn.as_str(), partial] {
        let d = c.describe_secret().secret_id(id).send().await.unwrap();
        assert_eq!(d.arn(), Some(arn.as_str()), "by {id}");
        assert_eq!(d.name(), Some("e2e/describe/db"), "by {id}");
        assert_eq!(d.description(), Some("described"), "by {id}");
        assert_eq!(
            tag_map(d.tags()),
            BTreeMap::from([
                ("env".to_owned(), "test".to_owned()),
                ("owner".to_owned(), "e2e".to_owned())
            ]),
            "by {id}"
        );
        assert!(d.created_date().is_some(), "by {id}");
        assert!(d.last_changed_date().is_some(), "by {id}");
        assert!(d.deleted_date().is_none(), "by {id}");
        let stages = version_stages(&c, id).await;
        assert_eq!(
            stages,
            BTreeMap::from([(version.clone(), set(&["AWSCURRENT"]))])
        );
        // GetSecretValue resolves the same three forms.
        assert_eq!(current_string(&c, id).await, "v1");
    }

    expect_err!(
        c.describe_secret().secret_id("e2e/describe/nope").send(),
        DescribeSecretError::ResourceNotFoundException(_)
    );
    let wrong_suffix = format!("{partial}-ZZZZZZ");
    expect_err!(
        c.describe_secret().secret_id(wrong_suffix).send(),
        DescribeSecretError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn get_secret_value_by_stage_and_version_id() {
    let (_server, c) = start();
    let v1 = c
        .create_secret()
        .name("e2e/get")
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let v2 = random_token();
    let put = c
        .put_secret_value()
        .secret_id("e2e/get")
        .secret_string("two")
        .client_request_token(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), Some(v2.as_str()));
    assert_eq!(stage_set(put.version_stages()), set(&["AWSCURRENT"]));

    assert_eq!(current_string(&c, "e2e/get").await, "two");
    let prev = c
        .get_secret_value()
        .secret_id("e2e/get")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some("one"));
    assert_eq!(prev.version_id(), Some(v1.as_str()));
    assert_eq!(stage_set(prev.version_stages()), set(&["AWSPREVIOUS"]));

    let by_id = c
        .get_secret_value()
        .secret_id("e2e/get")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.secret_string(), Some("one"));
    let both = c
        .get_secret_value()
        .secret_id("e2e/get")
        .version_id(&v2)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .unwrap();
    assert_eq!(both.secret_string(), Some("two"));

    // A third value: v1 loses its last label and becomes deprecated, but stays readable by id.
    c.put_secret_value()
        .secret_id("e2e/get")
        .secret_string("three")
        .send()
        .await
        .unwrap();
    let stages = version_stages(&c, "e2e/get").await;
    assert_eq!(stages.get(&v2), Some(&set(&["AWSPREVIOUS"])));
    assert!(stages.get(&v1).is_none_or(BTreeSet::is_empty), "{stages:?}");
    let old = c
        .get_secret_value()
        .secret_id("e2e/get")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(old.secret_string(), Some("one"));
    assert!(old.version_stages().is_empty());

    expect_err!(
        c.get_secret_value()
            .secret_id("e2e/get")
            .version_id(random_token())
            .send(),
        GetSecretValueError::ResourceNotFoundException(_)
    );
    expect_err!(
        c.get_secret_value()
            .secret_id("e2e/get")
            .version_stage("NOSUCHSTAGE")
            .send(),
        GetSecretValueError::ResourceNotFoundException(_)
    );
    expect_err!(
        c.get_secret_value().secret_id("e2e/missing").send(),
        GetSecretValueError::ResourceNotFoundException(_)
    );

    // A secret created without a value has no AWSCURRENT version until the first put.
    c.create_secret().name("e2e/empty").send().await.unwrap();
    expect_err!(
        c.get_secret_value().secret_id("e2e/empty").send(),
        GetSecretValueError::ResourceNotFoundException(_)
    );
    let first = c
        .put_secret_value()
        .secret_id("e2e/empty")
        .secret_string("first")
        .send()
        .await
        .unwrap();
    assert_eq!(stage_set(first.version_stages()), set(&["AWSCURRENT"]));
    assert_eq!(current_string(&c, "e2e/empty").await, "first");
}

#[tokio::test]
async fn put_secret_value_idempotency_and_custom_stages() {
    let (_server, c) = start();
    c.create_secret()
        .name("e2e/put")
        .secret_string("initial")
        .send()
        .await
        .unwrap();
    let token = random_token();
    let put = || {
        c.put_secret_value()
            .secret_id("e2e/put")
            .client_request_token(&token)
    };
    let first = put().secret_string("A").send().await.unwrap();
    assert_eq!(first.version_id(), Some(token.as_str()));
    assert_eq!(first.name(), Some("e2e/put"));
    let again = put().secret_string("A").send().await.unwrap();
    assert_eq!(again.version_id(), Some(token.as_str()));
    let all = c
        .list_secret_version_ids()
        .secret_id("e2e/put")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 2, "the retry must not add a version");
    expect_err!(
        put().secret_string("B").send(),
        PutSecretValueError::ResourceExistsException(_)
    );
    assert_eq!(current_string(&c, "e2e/put").await, "A");

    // VersionStages without AWSCURRENT: the new version gets only those labels.
    let pending = c
        .put_secret_value()
        .secret_id("e2e/put")
        .secret_binary(Blob::new(b"pending".to_vec()))
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(stage_set(pending.version_stages()), set(&["AWSPENDING"]));
    assert_eq!(current_string(&c, "e2e/put").await, "A");
    let got = c
        .get_secret_value()
        .secret_id("e2e/put")
        .version_stage("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.secret_binary().map(|b| b.as_ref()),
        Some(&b"pending"[..])
    );
    assert_eq!(got.version_id(), pending.version_id());

    expect_err!(
        c.put_secret_value()
            .secret_id("e2e/put-missing")
            .secret_string("x")
            .send(),
        PutSecretValueError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn update_secret_metadata_and_value() {
    let (_server, c) = start();
    let v1 = c
        .create_secret()
        .name("e2e/update")
        .description("before")
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();

    // Metadata only: no new version.
    let meta = c
        .update_secret()
        .secret_id("e2e/update")
        .description("after")
        .send()
        .await
        .unwrap();
    assert_eq!(meta.name(), Some("e2e/update"));
    assert!(meta.version_id().is_none(), "{meta:?}");
    let d = c
        .describe_secret()
        .secret_id("e2e/update")
        .send()
        .await
        .unwrap();
    assert_eq!(d.description(), Some("after"));
    assert_eq!(version_stages(&c, "e2e/update").await.len(), 1);

    // A value: a new version that takes AWSCURRENT.
    let token = random_token();
    let val = c
        .update_secret()
        .secret_id("e2e/update")
        .secret_string("two")
        .client_request_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(val.version_id(), Some(token.as_str()));
    assert_eq!(current_string(&c, "e2e/update").await, "two");
    assert_eq!(
        version_stages(&c, "e2e/update").await,
        BTreeMap::from([(v1, set(&["AWSPREVIOUS"])), (token, set(&["AWSCURRENT"]))])
    );

    expect_err!(
        c.update_secret()
            .secret_id("e2e/update-missing")
            .description("x")
            .send(),
        UpdateSecretError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn update_secret_version_stage_moves_labels() {
    let (_server, c) = start();
    let v1 = c
        .create_secret()
        .name("e2e/stages")
        .secret_string("one")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let v2 = c
        .put_secret_value()
        .secret_id("e2e/stages")
        .secret_string("two")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();

    // AWSCURRENT is on v2: moving it requires naming v2 in RemoveFromVersionId.
    expect_err!(
        c.update_secret_version_stage()
            .secret_id("e2e/stages")
            .version_stage("AWSCURRENT")
            .move_to_version_id(&v1)
            .send(),
        UpdateSecretVersionStageError::InvalidParameterException(_)
    );
    expect_err!(
        c.update_secret_version_stage()
            .secret_id("e2e/stages")
            .version_stage("AWSCURRENT")
            .move_to_version_id(&v1)
            .remove_from_version_id(&v1)
            .send(),
        UpdateSecretVersionStageError::InvalidParameterException(_)
    );
    let moved = c
        .update_secret_version_stage()
        .secret_id("e2e/stages")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v1)
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.name(), Some("e2e/stages"));
    assert_eq!(current_string(&c, "e2e/stages").await, "one");
    // AWSPREVIOUS follows automatically to the version AWSCURRENT left.
    assert_eq!(
        version_stages(&c, "e2e/stages").await,
        BTreeMap::from([
            (v1.clone(), set(&["AWSCURRENT"])),
            (v2.clone(), set(&["AWSPREVIOUS"]))
        ])
    );

    // A custom label: attach, refuse an implicit move, move explicitly, remove.
    c.update_secret_version_stage()
        .secret_id("e2e/stages")
        .version_stage("blue")
        .move_to_version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        version_stages(&c, "e2e/stages").await.get(&v2),
        Some(&set(&["AWSPREVIOUS", "blue"]))
    );
    expect_err!(
        c.update_secret_version_stage()
            .secret_id("e2e/stages")
            .version_stage("blue")
            .move_to_version_id(&v1)
            .send(),
        UpdateSecretVersionStageError::InvalidParameterException(_)
    );
    c.update_secret_version_stage()
        .secret_id("e2e/stages")
        .version_stage("blue")
        .move_to_version_id(&v1)
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    let blue = c
        .get_secret_value()
        .secret_id("e2e/stages")
        .version_stage("blue")
        .send()
        .await
        .unwrap();
    assert_eq!(blue.version_id(), Some(v1.as_str()));
    c.update_secret_version_stage()
        .secret_id("e2e/stages")
        .version_stage("blue")
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        version_stages(&c, "e2e/stages").await,
        BTreeMap::from([(v1, set(&["AWSCURRENT"])), (v2, set(&["AWSPREVIOUS"]))])
    );

    expect_err!(
        c.update_secret_version_stage()
            .secret_id("e2e/stages")
            .version_stage("green")
            .move_to_version_id(random_token())
            .send(),
        UpdateSecretVersionStageError::InvalidParameterException(_)
            | UpdateSecretVersionStageError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn list_secrets_filters_and_paginates() {
    let (_server, c) = start();
    for i in 0..5 {
        let env = if i % 2 == 0 { "dev" } else { "prod" };
        c.create_secret()
            .name(format!("e2e-list/item-{i}"))
            .description(format!("item number {i}"))
            .secret_string("x")
            .tags(tag("env", env))
            .send()
            .await
            .unwrap();
    }
    c.create_secret()
        .name("other/unrelated")
        .secret_string("x")
        .send()
        .await
        .unwrap();

    // Pagination through the SDK's own paginator, two per page.
    let pages: Vec<_> = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("e2e-list/")
                .build(),
        )
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let names: Vec<String> = pages
        .iter()
        .flat_map(|p| p.secret_list())
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    assert!(
        pages.len() >= 3,
        "5 items at 2 per page: {} pages",
        pages.len()
    );
    assert!(pages.iter().all(|p| p.secret_list().len() <= 2));
    let unique: BTreeSet<_> = names.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "a secret appeared twice: {names:?}"
    );
    assert_eq!(
        unique,
        (0..5).map(|i| format!("e2e-list/item-{i}")).collect()
    );

    // Every secret, unfiltered, one per page.
    let all: Vec<String> = c
        .list_secrets()
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flat_map(|page| page.unwrap().secret_list().to_vec())
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 6, "{all:?}");

    // Filters are ANDed; tag-key and tag-value match by prefix.
    let prod = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values("env")
                .build(),
        )
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagValue)
                .values("prod")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let prod: BTreeSet<_> = prod
        .secret_list()
        .iter()
        .map(|s| s.name().unwrap().to_owned())
        .collect();
    assert_eq!(prod, set(&["e2e-list/item-1", "e2e-list/item-3"]));
    let listed = c.list_secrets().send().await.unwrap();
    let entry = listed
        .secret_list()
        .iter()
        .find(|s| s.name() == Some("e2e-list/item-1"))
        .unwrap();
    assert_eq!(entry.description(), Some("item number 1"));
    assert_eq!(
        tag_map(entry.tags()),
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    );

    // A secret scheduled for deletion is hidden unless IncludePlannedDeletion.
    c.delete_secret()
        .secret_id("e2e-list/item-0")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let names = |out: &coffer_e2e::sm::operation::list_secrets::ListSecretsOutput| {
        out.secret_list()
            .iter()
            .map(|s| s.name().unwrap().to_owned())
            .collect::<BTreeSet<_>>()
    };
    let visible = c.list_secrets().send().await.unwrap();
    assert!(!names(&visible).contains("e2e-list/item-0"));
    let planned = c
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    assert!(names(&planned).contains("e2e-list/item-0"));
    let deleted = planned
        .secret_list()
        .iter()
        .find(|s| s.name() == Some("e2e-list/item-0"))
        .unwrap();
    assert!(deleted.deleted_date().is_some());
}

#[tokio::test]
async fn list_secret_version_ids_hides_deprecated_and_paginates() {
    let (_server, c) = start();
    let created = c
        .create_secret()
        .name("e2e/versions")
        .secret_string("0")
        .send()
        .await
        .unwrap();
    for i in 1..4 {
        c.put_secret_value()
            .secret_id("e2e/versions")
            .secret_string(i.to_string())
            .send()
            .await
            .unwrap();
    }
    let labelled = c
        .list_secret_version_ids()
        .secret_id("e2e/versions")
        .send()
        .await
        .unwrap();
    assert_eq!(labelled.arn(), created.arn());
    assert_eq!(labelled.name(), Some("e2e/versions"));
    let stages: BTreeSet<BTreeSet<String>> = labelled
        .versions()
        .iter()
        .map(|v| stage_set(v.version_stages()))
        .collect();
    assert_eq!(
        stages,
        BTreeSet::from([set(&["AWSCURRENT"]), set(&["AWSPREVIOUS"])])
    );

    let pages: Vec<_> = c
        .list_secret_version_ids()
        .secret_id("e2e/versions")
        .include_deprecated(true)
        .max_results(1)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ids: BTreeSet<String> = pages
        .iter()
        .flat_map(|p| p.versions())
        .map(|v| v.version_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(pages.len() >= 4);
    assert!(ids.contains(created.version_id().unwrap()));
}

#[tokio::test]
async fn batch_get_secret_value_by_ids_and_filters() {
    let (_server, c) = start();
    c.create_secret()
        .name("e2e-batch/a")
        .secret_string("alpha")
        .send()
        .await
        .unwrap();
    let b = c
        .create_secret()
        .name("e2e-batch/b")
        .secret_binary(Blob::new(vec![1, 2, 3]))
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("e2e-batch/c")
        .secret_string("gamma")
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("elsewhere")
        .secret_string("no")
        .send()
        .await
        .unwrap();

    let out = c
        .batch_get_secret_value()
        .secret_id_list("e2e-batch/a")
        .secret_id_list(b.arn().unwrap())
        .secret_id_list("e2e-batch/does-not-exist")
        .send()
        .await
        .unwrap();
    let values: BTreeMap<String, _> = out
        .secret_values()
        .iter()
        .map(|v| (v.name().unwrap().to_owned(), v))
        .collect();
    assert_eq!(values.len(), 2, "{out:?}");
    assert_eq!(values["e2e-batch/a"].secret_string(), Some("alpha"));
    assert_eq!(
        values["e2e-batch/b"].secret_binary().map(|b| b.as_ref()),
        Some(&[1u8, 2, 3][..])
    );
    assert_eq!(values["e2e-batch/b"].arn(), b.arn());
    assert_eq!(values["e2e-batch/b"].version_id(), b.version_id());
    assert_eq!(
        stage_set(values["e2e-batch/a"].version_stages()),
        set(&["AWSCURRENT"])
    );
    assert_eq!(out.errors().len(), 1, "{out:?}");
    let err = &out.errors()[0];
    assert_eq!(err.secret_id(), Some("e2e-batch/does-not-exist"));
    assert_eq!(err.error_code(), Some("ResourceNotFoundException"));
    assert!(err.message().is_some_and(|m| !m.is_empty()));

    let filtered = c
        .batch_get_secret_value()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::Name)
                .values("e2e-batch/")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: BTreeSet<_> = filtered
        .secret_values()
        .iter()
        .map(|v| v.name().unwrap().to_owned())
        .collect();
    assert_eq!(names, set(&["e2e-batch/a", "e2e-batch/b", "e2e-batch/c"]));
    assert!(filtered.errors().is_empty());

    // Either a list of ids or filters, not both.
    let e = service_error(
        c.batch_get_secret_value()
            .secret_id_list("e2e-batch/a")
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values("e2e-batch/")
                    .build(),
            )
            .send()
            .await,
    );
    assert!(
        matches!(
            e,
            BatchGetSecretValueError::InvalidParameterException(_)
                | BatchGetSecretValueError::InvalidRequestException(_)
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn delete_with_recovery_window_then_restore() {
    let (_server, c) = start();
    c.create_secret()
        .name("e2e/delete")
        .secret_string("keep me")
        .send()
        .await
        .unwrap();
    let created = c
        .describe_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap()
        .created_date()
        .unwrap()
        .secs();

    expect_err!(
        c.delete_secret()
            .secret_id("e2e/delete")
            .recovery_window_in_days(7)
            .force_delete_without_recovery(true)
            .send(),
        DeleteSecretError::InvalidParameterException(_)
    );
    for days in [6, 31] {
        expect_err!(
            c.delete_secret()
                .secret_id("e2e/delete")
                .recovery_window_in_days(days)
                .send(),
            DeleteSecretError::InvalidParameterException(_)
        );
    }

    let deleted = c
        .delete_secret()
        .secret_id("e2e/delete")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.name(), Some("e2e/delete"));
    let when = deleted.deletion_date().unwrap().secs() - created;
    assert!(
        (7 * DAY - 300..=7 * DAY + 300).contains(&when),
        "DeletionDate is {when} s after creation, expected 7 days"
    );

    let d = c
        .describe_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_some());
    expect_err!(
        c.get_secret_value().secret_id("e2e/delete").send(),
        GetSecretValueError::InvalidRequestException(_)
    );
    expect_err!(
        c.put_secret_value()
            .secret_id("e2e/delete")
            .secret_string("x")
            .send(),
        PutSecretValueError::InvalidRequestException(_)
    );
    expect_err!(
        c.create_secret()
            .name("e2e/delete")
            .secret_string("x")
            .send(),
        CreateSecretError::InvalidRequestException(_)
    );

    let restored = c
        .restore_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap();
    assert_eq!(restored.name(), Some("e2e/delete"));
    assert_eq!(restored.arn(), deleted.arn());
    assert_eq!(current_string(&c, "e2e/delete").await, "keep me");
    let d = c
        .describe_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_none());

    // Default window is 30 days.
    let default = c
        .delete_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap();
    let when = default.deletion_date().unwrap().secs() - created;
    assert!(
        (30 * DAY - 300..=30 * DAY + 300).contains(&when),
        "default DeletionDate is {when} s after creation, expected 30 days"
    );
    c.restore_secret()
        .secret_id("e2e/delete")
        .send()
        .await
        .unwrap();

    // Forced: gone at once, and the name is free again.
    let forced = c
        .delete_secret()
        .secret_id("e2e/delete")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    assert!(forced.deletion_date().is_some());
    expect_err!(
        c.describe_secret().secret_id("e2e/delete").send(),
        DescribeSecretError::ResourceNotFoundException(_)
    );
    let again = c
        .create_secret()
        .name("e2e/delete")
        .secret_string("new")
        .send()
        .await
        .unwrap();
    assert_ne!(again.arn(), deleted.arn(), "a new secret gets a new ARN");
    expect_err!(
        c.delete_secret().secret_id("e2e/never-existed").send(),
        DeleteSecretError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn recovery_window_ends_in_a_purge_on_the_manual_clock() {
    let server = Server::dev_with(DevOptions {
        manual_clock: true,
        ..DevOptions::default()
    })
    .expect("start coffer server --dev --manual-clock");
    let c = server.client();
    let before = c
        .create_secret()
        .name("e2e/purge")
        .secret_string("short-lived")
        .send()
        .await
        .unwrap();
    let created_at = c
        .describe_secret()
        .secret_id("e2e/purge")
        .send()
        .await
        .unwrap()
        .created_date()
        .unwrap()
        .secs();
    c.delete_secret()
        .secret_id("e2e/purge")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    server.advance_clock(6 * DAY as u64).unwrap();
    server.run_tasks().unwrap();
    let d = c
        .describe_secret()
        .secret_id("e2e/purge")
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_some(), "still inside the window");

    server.advance_clock(2 * DAY as u64).unwrap();
    server.run_tasks().unwrap();
    expect_err!(
        c.describe_secret().secret_id("e2e/purge").send(),
        DescribeSecretError::ResourceNotFoundException(_)
    );
    expect_err!(
        c.get_secret_value().secret_id(before.arn().unwrap()).send(),
        GetSecretValueError::ResourceNotFoundException(_)
    );

    // The name is free again, and the server's clock really moved eight days.
    let reborn = c
        .create_secret()
        .name("e2e/purge")
        .secret_string("reborn")
        .send()
        .await
        .unwrap();
    assert_ne!(reborn.arn(), before.arn());
    let reborn_at = c
        .describe_secret()
        .secret_id("e2e/purge")
        .send()
        .await
        .unwrap()
        .created_date()
        .unwrap()
        .secs();
    assert!(
        reborn_at - created_at >= 8 * DAY,
        "created {created_at}, re-created {reborn_at}: the manual clock did not advance"
    );
}

#[tokio::test]
async fn tag_and_untag_resource() {
    let (_server, c) = start();
    let arn = c
        .create_secret()
        .name("e2e/tags")
        .secret_string("x")
        .tags(tag("a", "1"))
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let tags = |c: Client| async move {
        let d = c
            .describe_secret()
            .secret_id("e2e/tags")
            .send()
            .await
            .unwrap();
        tag_map(d.tags())
    };
    c.tag_resource()
        .secret_id("e2e/tags")
        .tags(tag("b", "2"))
        .tags(tag("a", "3"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(c.clone()).await,
        BTreeMap::from([
            ("a".to_owned(), "3".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ])
    );
    c.untag_resource()
        .secret_id(&arn)
        .tag_keys("a")
        .tag_keys("not-there")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(c.clone()).await,
        BTreeMap::from([("b".to_owned(), "2".to_owned())])
    );
    expect_err!(
        c.tag_resource()
            .secret_id("e2e/tags-missing")
            .tags(tag("k", "v"))
            .send(),
        TagResourceError::ResourceNotFoundException(_)
    );
}

#[tokio::test]
async fn get_random_password_honours_the_character_options() {
    let (_server, c) = start();
    let default = c.get_random_password().send().await.unwrap();
    let pw = default.random_password().unwrap();
    assert_eq!(pw.chars().count(), 32, "default length is 32");
    assert!(pw.chars().all(|ch| ch.is_ascii_graphic()), "{pw:?}");

    let alnum = c
        .get_random_password()
        .password_length(64)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap();
    let pw = alnum.random_password().unwrap();
    assert_eq!(pw.len(), 64);
    assert!(pw.chars().all(|ch| ch.is_ascii_alphanumeric()), "{pw:?}");
    // RequireEachIncludedType defaults to true.
    assert!(pw.chars().any(|ch| ch.is_ascii_uppercase()), "{pw:?}");
    assert!(pw.chars().any(|ch| ch.is_ascii_lowercase()), "{pw:?}");
    assert!(pw.chars().any(|ch| ch.is_ascii_digit()), "{pw:?}");

    let digits = c
        .get_random_password()
        .password_length(20)
        .exclude_uppercase(true)
        .exclude_lowercase(true)
        .exclude_punctuation(true)
        .send()
        .await
        .unwrap();
    let pw = digits.random_password().unwrap();
    assert_eq!(pw.len(), 20);
    assert!(pw.chars().all(|ch| ch.is_ascii_digit()), "{pw:?}");

    let excluded = "abcdefABCDEF0123!@#";
    let pw = c
        .get_random_password()
        .password_length(200)
        .exclude_characters(excluded)
        .send()
        .await
        .unwrap()
        .random_password()
        .unwrap()
        .to_owned();
    assert!(pw.chars().all(|ch| !excluded.contains(ch)), "{pw:?}");

    let spaced = c
        .get_random_password()
        .password_length(4096)
        .include_space(true)
        .send()
        .await
        .unwrap();
    assert!(spaced.random_password().unwrap().contains(' '));
}

#[tokio::test]
async fn signature_failures_surface_as_aws_error_codes() {
    let (server, c) = start();
    c.create_secret()
        .name("e2e/auth")
        .secret_string("x")
        .send()
        .await
        .unwrap();

    let cases = [
        (
            Credentials {
                access_key_id: server.credentials.access_key_id.clone(),
                secret_access_key: format!("{}x", server.credentials.secret_access_key),
            },
            "InvalidSignatureException",
        ),
        (
            Credentials {
                access_key_id: format!("AKIA{}", random_hex(16).to_uppercase()),
                secret_access_key: random_hex(40),
            },
            "UnrecognizedClientException",
        ),
    ];
    for (creds, code) in cases {
        let result = server
            .client_with(&creds)
            .get_secret_value()
            .secret_id("e2e/auth")
            .send()
            .await;
        let status = match &result {
            Err(SdkError::ServiceError(e)) => e.raw().status().as_u16(),
            other => panic!("expected {code}, got {other:?}"),
        };
        let e = service_error(result);
        assert_eq!(e.code(), Some(code), "{e:?}");
        assert!(e.message().is_some_and(|m| !m.is_empty()), "{e:?}");
        assert_eq!(status, 400, "{code} is an HTTP 400 in AWS");
        let e = service_error(server.client_with(&creds).list_secrets().send().await);
        assert_eq!(e.code(), Some(code), "{e:?}");
    }
}

#[tokio::test]
async fn dev_flags_account_id_and_any_credentials() {
    let server = Server::dev_with(DevOptions {
        accept_any_credentials: true,
        account_id: Some("123456789012".to_owned()),
        ..DevOptions::default()
    })
    .expect("start coffer server --dev --accept-any-credentials --account-id");
    assert_eq!(server.account_id, "123456789012");
    let anyone = server.client_with(&Credentials {
        access_key_id: "AKIAANYTHINGATALL000".to_owned(),
        secret_access_key: "whatever".to_owned(),
    });
    let created = anyone
        .create_secret()
        .name("e2e/anyone")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    assert_secret_arn(created.arn().unwrap(), &server, "e2e/anyone");
    assert_eq!(current_string(&server.client(), "e2e/anyone").await, "x");
}
