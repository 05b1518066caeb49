//! The official AWS SDK for Rust (`aws-sdk-sts`) against `coffer server --dev`: GetCallerIdentity,
//! GetSessionToken and AssumeRole (trust policies, ExternalId, session policies inline and
//! managed, session tags, durations, role chaining), and the temporary credentials they hand out
//! used by `aws-sdk-secretsmanager`: what they may do, and how they fail when tampered with or
//! expired (by the manual clock, not by sleeping). The SDK decoding every answer into its
//! modeled shapes (or reading the query protocol's `<Error><Code>` for unmodeled errors) is what
//! proves the wire format. Expectations follow AWS's documented behaviour (STS API reference;
//! see tests/python/test_sts.py for the same behaviour through boto3). Each test gets its own
//! server; the IAM set-up (users, roles, policies) is signed by hand in `common`.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_sts as sts;
use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_e2e::sm::operation::create_secret::CreateSecretOutput;
use coffer_e2e::{DevOptions, Server, sm};
use common::{
    Iam, User, allow, long_term, policy, root_credentials, service_error_status, sm_client,
    sts_client, temporary, trust,
};
use serde_json::json;

/// AWS's messages (STS API reference and recorded AWS answers; see tests/python/test_sts.py).
const ROOT_REFUSED: &str = "Roles may not be assumed by root accounts.";
const CHAINING_LIMIT: &str = "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.";
const ROLE_LIMIT: &str =
    "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
const EXPIRED: &str = "The security token included in the request is expired";
const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
const NO_SESSION_CHAINING: &str = "Cannot call GetSessionToken with session credentials";

/// Seconds since the epoch, now.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// Asserts that the credentials expire `secs` from now (give or take a minute of test time).
#[track_caller]
fn assert_expires_in(c: &sts::types::Credentials, secs: i64) {
    let left = c.expiration().secs() - now();
    assert!(
        (secs - 60..=secs + 5).contains(&left),
        "expected expiry in about {secs} s, it is in {left} s ({:?})",
        c.expiration()
    );
}

/// Asserts the shape of temporary credentials: `ASIA` + 16, a 40-character secret, a token.
#[track_caller]
fn assert_temporary(c: &sts::types::Credentials) {
    let id = c.access_key_id();
    assert!(
        id.starts_with("ASIA") && id.len() == 20,
        "temporary access key id: {id}"
    );
    assert_eq!(c.secret_access_key().len(), 40);
    assert!(!c.session_token().is_empty());
    assert!(
        STANDARD.decode(c.session_token()).is_ok(),
        "the session token is base64: {}",
        c.session_token()
    );
}

/// Creates a secret as root; its ARN.
async fn secret(server: &Server, name: &str, value: &str) -> String {
    let out: CreateSecretOutput = server
        .client()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_owned()
}

async fn assume(
    server: &Server,
    who: &User,
    role_arn: &str,
) -> sts::operation::assume_role::AssumeRoleOutput {
    sts_client(server, long_term(&who.key))
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("sess")
        .send()
        .await
        .unwrap()
}

/// The error code and message of a failed SDK call whose error is not modeled (or is).
#[track_caller]
fn code_and_message<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

/// Whether an AssumeRole error is none of the model's exceptions (the query protocol's common
/// errors: `AccessDenied`, `ValidationError`, `ExpiredToken` …).
fn unmodeled(e: &AssumeRoleError) -> bool {
    !(e.is_expired_token_exception()
        || e.is_malformed_policy_document_exception()
        || e.is_packed_policy_too_large_exception()
        || e.is_region_disabled_exception())
}

/// `PackedPolicySize`, which the newest model deprecates in favour of `SessionTokenUtilization`
/// but AWS still answers (and coffer answers).
#[allow(deprecated, reason = "PackedPolicySize is still part of AWS's answer")]
fn packed_policy_size(out: &sts::operation::assume_role::AssumeRoleOutput) -> Option<i32> {
    out.packed_policy_size()
}

/// Flips one bit of the decoded token and re-encodes it.
fn flip(token: &str, at: usize) -> String {
    let mut raw = STANDARD.decode(token).unwrap();
    raw[at] ^= 0x01;
    STANDARD.encode(raw)
}

// --- GetCallerIdentity and GetSessionToken ----------------------------------------------------------

#[tokio::test]
async fn caller_identity_of_root() {
    let server = Server::dev().unwrap();
    let who = sts_client(&server, root_credentials(&server))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.account(), Some(server.account_id.as_str()));
    assert_eq!(
        who.arn(),
        Some(format!("arn:aws:iam::{}:root", server.account_id).as_str())
    );
    assert_eq!(who.user_id(), Some(server.account_id.as_str()));
}

#[tokio::test]
async fn root_session_token_creates_and_reads_a_secret() {
    let server = Server::dev().unwrap();
    let root_arn = format!("arn:aws:iam::{}:root", server.account_id);
    let out = sts_client(&server, root_credentials(&server))
        .get_session_token()
        .send()
        .await
        .unwrap();
    let creds = out.credentials().expect("Credentials");
    assert_temporary(creds);
    // The root user's sessions last at most an hour, whatever is asked (default 12 h).
    assert_expires_in(creds, 3600);

    let sm = sm_client(&server, temporary(creds));
    let created = sm
        .create_secret()
        .name("sts/root-session")
        .secret_string("made with a session token")
        .send()
        .await
        .unwrap();
    assert!(created.arn().unwrap().contains(":secret:sts/root-session-"));
    let got = sm
        .get_secret_value()
        .secret_id("sts/root-session")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("made with a session token"));
    // The root user with its long-term key sees the same secret.
    let again = server
        .client()
        .get_secret_value()
        .secret_id(created.arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(again.secret_string(), Some("made with a session token"));

    let session_sts = sts_client(&server, temporary(creds));
    let who = session_sts.get_caller_identity().send().await.unwrap();
    assert_eq!(who.arn(), Some(root_arn.as_str()));
    assert_eq!(who.account(), Some(server.account_id.as_str()));

    // Session credentials may not ask for another session.
    let (e, status) = service_error_status(session_sts.get_session_token().send().await);
    assert_eq!(
        code_and_message(&e),
        ("AccessDenied".to_owned(), NO_SESSION_CHAINING.to_owned())
    );
    assert_eq!(status, 403);

    // Asking for more than an hour is not an error for root: it is capped.
    let capped = sts_client(&server, root_credentials(&server))
        .get_session_token()
        .duration_seconds(129_600)
        .send()
        .await
        .unwrap();
    assert_expires_in(capped.credentials().unwrap(), 3600);
}

#[tokio::test]
async fn user_session_token_acts_as_the_user_but_not_on_iam() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let user = iam
        .user(&[policy(&[
            allow("secretsmanager:ListSecrets", "*"),
            allow("iam:ListUsers", "*"),
        ])])
        .await;
    let sts_user = sts_client(&server, long_term(&user.key));
    let out = sts_user.get_session_token().send().await.unwrap();
    let creds = out.credentials().unwrap();
    assert_temporary(creds);
    assert_expires_in(creds, 12 * 3600);

    let who = sts_client(&server, temporary(creds))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.arn(), Some(user.arn.as_str()));
    assert!(who.user_id().unwrap().starts_with("AIDA"), "{who:?}");
    sm_client(&server, temporary(creds))
        .list_secrets()
        .send()
        .await
        .unwrap();

    // IAM with the long-term key works; with the session (no MFA) it does not.
    iam_as(&server, long_term(&user.key))
        .ok("ListUsers", &[])
        .await;
    let e = iam_as(&server, temporary(creds))
        .call("ListUsers", &[])
        .await
        .unwrap_err();
    assert_eq!(
        (e.status, e.code(), e.message()),
        (
            403,
            Some("InvalidClientTokenId".to_owned()),
            Some(INVALID_TOKEN.to_owned())
        ),
        "{}",
        e.body
    );

    // DurationSeconds: 900 ..= 129600.
    for bad in [899, 129_601] {
        let (e, status) = service_error_status(
            sts_user
                .get_session_token()
                .duration_seconds(bad)
                .send()
                .await,
        );
        assert_eq!(e.code(), Some("ValidationError"), "{bad}: {e:?}");
        assert_eq!(status, 400);
    }
    let short = sts_user
        .get_session_token()
        .duration_seconds(900)
        .send()
        .await
        .unwrap();
    assert_expires_in(short.credentials().unwrap(), 900);
}

fn iam_as(server: &Server, credentials: Credentials) -> Iam {
    Iam::with(server, credentials)
}

// --- AssumeRole -------------------------------------------------------------------------------------

#[tokio::test]
async fn assume_role_session_reads_only_what_the_role_allows() {
    let server = Server::dev().unwrap();
    let wanted = secret(&server, "sts/wanted", "one").await;
    let other = secret(&server, "sts/other", "two").await;
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await; // no identity policy at all: the trust policy names it
    let role = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:GetSecretValue", &wanted)])],
            None,
        )
        .await;
    assert!(role.role_id.starts_with("AROA"), "{role:?}");

    let out = sts_client(&server, long_term(&user.key))
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("alice@example.com")
        .duration_seconds(1800)
        .send()
        .await
        .unwrap();
    let creds = out.credentials().expect("Credentials");
    assert_temporary(creds);
    assert_expires_in(creds, 1800);
    let session_arn = format!(
        "arn:aws:sts::{}:assumed-role/{}/alice@example.com",
        server.account_id, role.name
    );
    let assumed = out.assumed_role_user().expect("AssumedRoleUser");
    assert_eq!(assumed.arn(), session_arn);
    assert_eq!(
        assumed.assumed_role_id(),
        format!("{}:alice@example.com", role.role_id)
    );
    assert_eq!(packed_policy_size(&out), None, "no session policy, no size");

    let who = sts_client(&server, temporary(creds))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.arn(), Some(session_arn.as_str()));
    assert_eq!(who.user_id(), Some(assumed.assumed_role_id()));
    assert_eq!(who.account(), Some(server.account_id.as_str()));

    let sm = sm_client(&server, temporary(creds));
    let got = sm
        .get_secret_value()
        .secret_id(&wanted)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("one"));
    let e = coffer_e2e::service_error(sm.get_secret_value().secret_id(&other).send().await);
    assert_eq!(e.code(), Some("AccessDeniedException"), "{e:?}");
    assert_eq!(
        e.message(),
        Some(
            format!(
                "User: {session_arn} is not authorized to perform: secretsmanager:GetSecretValue \
                 on resource: {other} because no identity-based policy allows the \
                 secretsmanager:GetSecretValue action"
            )
            .as_str()
        )
    );
    // The user itself has no permission: only the role does.
    let e = coffer_e2e::service_error(
        sm_client(&server, long_term(&user.key))
            .get_secret_value()
            .secret_id(&wanted)
            .send()
            .await,
    );
    assert_eq!(e.code(), Some("AccessDeniedException"));
}

#[tokio::test]
async fn root_may_not_assume_roles() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let root_arn = format!("arn:aws:iam::{}:root", server.account_id);
    let role = iam.role(&trust(&root_arn, None), &[], None).await;
    let (e, status) = service_error_status(
        sts_client(&server, root_credentials(&server))
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name("root")
            .send()
            .await,
    );
    assert!(unmodeled(&e), "not a modeled error: {e:?}");
    assert_eq!(
        code_and_message(&e),
        ("AccessDenied".to_owned(), ROOT_REFUSED.to_owned())
    );
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_role_that_does_not_trust_the_user_or_does_not_exist_is_refused_alike() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let trusted = iam.user(&[]).await;
    let stranger = iam.user(&[policy(&[allow("sts:AssumeRole", "*")])]).await;
    let role = iam.role(&trust(&trusted.arn, None), &[], None).await;
    let missing = format!("arn:aws:iam::{}:role/does-not-exist", server.account_id);
    for arn in [&role.arn, &missing] {
        let (e, status) = service_error_status(
            sts_client(&server, long_term(&stranger.key))
                .assume_role()
                .role_arn(arn)
                .role_session_name("s1")
                .send()
                .await,
        );
        assert_eq!(
            code_and_message(&e),
            (
                "AccessDenied".to_owned(),
                format!(
                    "User: {} is not authorized to perform: sts:AssumeRole on resource: {arn}",
                    stranger.arn
                )
            )
        );
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn durations_max_session_duration_and_role_chaining() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let first = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("sts:AssumeRole", "*")])],
            Some(4 * 3600),
        )
        .await;
    let sts_user = sts_client(&server, long_term(&user.key));
    let attempt = |secs: i32| {
        sts_user
            .assume_role()
            .role_arn(&first.arn)
            .role_session_name("dur")
            .duration_seconds(secs)
            .send()
    };

    // Default one hour; up to MaxSessionDuration.
    let default = assume(&server, &user, &first.arn).await;
    assert_expires_in(default.credentials().unwrap(), 3600);
    let long = attempt(4 * 3600).await.unwrap();
    assert_expires_in(long.credentials().unwrap(), 4 * 3600);

    let (e, status) = service_error_status(attempt(4 * 3600 + 1).await);
    assert!(unmodeled(&e), "{e:?}");
    assert_eq!(
        code_and_message(&e),
        ("ValidationError".to_owned(), ROLE_LIMIT.to_owned())
    );
    assert_eq!(status, 400);
    let (e, _) = service_error_status(attempt(899).await);
    assert_eq!(
        code_and_message(&e),
        (
            "ValidationError".to_owned(),
            "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value greater than or equal to 900"
                .to_owned()
        )
    );

    // A role session assuming another role is chaining: at most one hour, whatever the role allows.
    let second = iam
        .role(&trust(&first.arn, None), &[], Some(12 * 3600))
        .await;
    let chain = sts_client(&server, temporary(long.credentials().unwrap()));
    let (e, status) = service_error_status(
        chain
            .assume_role()
            .role_arn(&second.arn)
            .role_session_name("hop")
            .duration_seconds(7200)
            .send()
            .await,
    );
    assert_eq!(
        code_and_message(&e),
        ("ValidationError".to_owned(), CHAINING_LIMIT.to_owned())
    );
    assert_eq!(status, 400);
    let hop = chain
        .assume_role()
        .role_arn(&second.arn)
        .role_session_name("hop")
        .duration_seconds(3600)
        .send()
        .await
        .unwrap();
    assert_expires_in(hop.credentials().unwrap(), 3600);
    assert_eq!(
        hop.assumed_role_user().unwrap().arn(),
        format!(
            "arn:aws:sts::{}:assumed-role/{}/hop",
            server.account_id, second.name
        )
    );
}

#[tokio::test]
async fn session_policies_narrow_the_role() {
    let server = Server::dev().unwrap();
    let a = secret(&server, "sts/a", "a").await;
    let b = secret(&server, "sts/b", "b").await;
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let role = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:GetSecretValue", "*")])],
            None,
        )
        .await;
    let sts_user = sts_client(&server, long_term(&user.key));

    // Inline: Secrets Manager decrypts with the caller's permissions, so a session policy that
    // narrows a role must leave kms:Decrypt too, as on AWS.
    let out = sts_user
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("narrow")
        .policy(policy(&[
            allow("secretsmanager:GetSecretValue", &a),
            allow("kms:Decrypt", "*"),
        ]))
        .send()
        .await
        .unwrap();
    let size = packed_policy_size(&out).expect("PackedPolicySize");
    assert!((0..=100).contains(&size), "PackedPolicySize {size}");
    let sm = sm_client(&server, temporary(out.credentials().unwrap()));
    let got = sm.get_secret_value().secret_id(&a).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("a"));
    let e = coffer_e2e::service_error(sm.get_secret_value().secret_id(&b).send().await);
    assert_eq!(e.code(), Some("AccessDeniedException"));
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("because no session policy allows the secretsmanager:GetSecretValue action"),
        "{e:?}"
    );

    // A session policy cannot widen what the role allows.
    let wide = sts_user
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("wide")
        .policy(policy(&[allow("secretsmanager:*", "*")]))
        .send()
        .await
        .unwrap();
    let e = coffer_e2e::service_error(
        sm_client(&server, temporary(wide.credentials().unwrap()))
            .delete_secret()
            .secret_id(&a)
            .send()
            .await,
    );
    assert_eq!(e.code(), Some("AccessDeniedException"));

    // Managed session policies (PolicyArns.member.N.arn) narrow too.
    let managed = iam
        .managed_policy(&policy(&[
            allow("secretsmanager:GetSecretValue", &b),
            allow("kms:Decrypt", "*"),
        ]))
        .await;
    let out = sts_user
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("managed")
        .policy_arns(PolicyDescriptorType::builder().arn(&managed).build())
        .send()
        .await
        .unwrap();
    let sm = sm_client(&server, temporary(out.credentials().unwrap()));
    let got = sm.get_secret_value().secret_id(&b).send().await.unwrap();
    assert_eq!(got.secret_string(), Some("b"));
    let e = coffer_e2e::service_error(sm.get_secret_value().secret_id(&a).send().await);
    assert_eq!(e.code(), Some("AccessDeniedException"));

    // A malformed session policy is the modeled MalformedPolicyDocumentException.
    let (e, status) = service_error_status(
        sts_user
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name("bad")
            .policy("{not json")
            .send()
            .await,
    );
    assert!(
        matches!(e, AssumeRoleError::MalformedPolicyDocumentException(_)),
        "{e:?}"
    );
    assert_eq!(status, 400);
    // A missing managed policy is an invalid parameter.
    let (e, _) = service_error_status(
        sts_user
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name("nope")
            .policy_arns(
                PolicyDescriptorType::builder()
                    .arn(format!(
                        "arn:aws:iam::{}:policy/nope-123456",
                        server.account_id
                    ))
                    .build(),
            )
            .send()
            .await,
    );
    assert_eq!(e.code(), Some("InvalidParameterValue"), "{e:?}");
}

#[tokio::test]
async fn external_id_required_by_the_trust_policy() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let role = iam
        .role(
            &trust(
                &user.arn,
                Some(json!({ "StringEquals": { "sts:ExternalId": "vendor-42" } })),
            ),
            &[],
            None,
        )
        .await;
    let sts_user = sts_client(&server, long_term(&user.key));
    let denied = format!(
        "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
        user.arn, role.arn
    );
    for external_id in [None, Some("vendor-43")] {
        let (e, status) = service_error_status(
            sts_user
                .assume_role()
                .role_arn(&role.arn)
                .role_session_name("vendor")
                .set_external_id(external_id.map(str::to_owned))
                .send()
                .await,
        );
        assert_eq!(
            code_and_message(&e),
            ("AccessDenied".to_owned(), denied.clone()),
            "ExternalId {external_id:?}"
        );
        assert_eq!(status, 403);
    }
    let out = sts_user
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("vendor")
        .external_id("vendor-42")
        .send()
        .await
        .unwrap();
    assert_temporary(out.credentials().unwrap());
}

#[tokio::test]
async fn session_tags_become_principal_tags_and_transitive_ones_follow_a_chain() {
    let server = Server::dev().unwrap();
    let s = secret(&server, "sts/apollo", "x").await;
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let tagging_trust = |principal: &str| {
        policy(&[json!({
            "Effect": "Allow",
            "Principal": { "AWS": principal },
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        })])
    };
    let first = iam
        .role(
            &tagging_trust(&user.arn),
            &[policy(&[allow("sts:AssumeRole", "*")])],
            None,
        )
        .await;
    let second = iam
        .role(
            &tagging_trust(&first.arn),
            &[policy(&[json!({
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": { "StringEquals": { "aws:PrincipalTag/project": "apollo" } },
            })])],
            None,
        )
        .await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let one = sts_client(&server, long_term(&user.key))
        .assume_role()
        .role_arn(&first.arn)
        .role_session_name("one")
        .tags(tag("project", "apollo"))
        .tags(tag("team", "red"))
        .transitive_tag_keys("project")
        .send()
        .await
        .unwrap();
    assert!(
        packed_policy_size(&one).is_some(),
        "tags are packed: {one:?}"
    );
    let chain = sts_client(&server, temporary(one.credentials().unwrap()));
    let two = chain
        .assume_role()
        .role_arn(&second.arn)
        .role_session_name("two")
        .send()
        .await
        .unwrap();
    let got = sm_client(&server, temporary(two.credentials().unwrap()))
        .get_secret_value()
        .secret_id(&s)
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("x"));
    // A transitive tag cannot be overridden further down the chain.
    let (e, _) = service_error_status(
        chain
            .assume_role()
            .role_arn(&second.arn)
            .role_session_name("two")
            .tags(tag("project", "gemini"))
            .send()
            .await,
    );
    assert_eq!(e.code(), Some("InvalidParameterValue"), "{e:?}");
    // Without the transitive key the second hop has no project tag: denied.
    let plain = sts_client(&server, long_term(&user.key))
        .assume_role()
        .role_arn(&first.arn)
        .role_session_name("one")
        .tags(tag("project", "apollo"))
        .send()
        .await
        .unwrap();
    let two = sts_client(&server, temporary(plain.credentials().unwrap()))
        .assume_role()
        .role_arn(&second.arn)
        .role_session_name("two")
        .send()
        .await
        .unwrap();
    let e = coffer_e2e::service_error(
        sm_client(&server, temporary(two.credentials().unwrap()))
            .get_secret_value()
            .secret_id(&s)
            .send()
            .await,
    );
    assert_eq!(e.code(), Some("AccessDeniedException"));
}

/// A GetSessionToken session belongs to the user it was issued for (its unique id, `AIDA…`), as a
/// role session belongs to its role's id: a user deleted and created again under the same name
/// is another user, and the old session must not act with the new user's permissions.
#[tokio::test]
async fn a_user_session_does_not_pass_to_a_recreated_user_of_the_same_name() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let list = policy(&[allow("secretsmanager:ListSecrets", "*")]);
    let user = iam.user(std::slice::from_ref(&list)).await;
    let creds = sts_client(&server, long_term(&user.key))
        .get_session_token()
        .send()
        .await
        .unwrap()
        .credentials()
        .cloned()
        .unwrap();
    let sm = sm_client(&server, temporary(&creds));
    sm.list_secrets().send().await.unwrap();
    iam.ok(
        "DeleteUserPolicy",
        &[("UserName", &user.name), ("PolicyName", "p0")],
    )
    .await;
    iam.ok(
        "DeleteAccessKey",
        &[
            ("UserName", &user.name),
            ("AccessKeyId", &user.key.access_key_id),
        ],
    )
    .await;
    iam.ok("DeleteUser", &[("UserName", &user.name)]).await;
    iam.ok("CreateUser", &[("UserName", &user.name)]).await;
    iam.ok(
        "PutUserPolicy",
        &[
            ("UserName", &user.name),
            ("PolicyName", "p0"),
            ("PolicyDocument", &list),
        ],
    )
    .await;
    assert!(
        sm.list_secrets().send().await.is_err(),
        "the session of the deleted user acts as the new user of the same name"
    );
}

// --- tampering and expiry ---------------------------------------------------------------------------

#[tokio::test]
async fn a_tampered_session_token_is_refused() {
    let server = Server::dev().unwrap();
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let role = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:ListSecrets", "*")])],
            None,
        )
        .await;
    let out = assume(&server, &user, &role.arn).await;
    let creds = out.credentials().unwrap();
    sm_client(&server, temporary(creds))
        .list_secrets()
        .send()
        .await
        .unwrap();
    let with_token = |token: &str| {
        common::sdk_credentials(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(token),
        )
    };
    let raw_len = STANDARD.decode(creds.session_token()).unwrap().len();
    for at in [0, 5, 20, raw_len / 2, raw_len - 1] {
        let bad = flip(creds.session_token(), at);
        let e = coffer_e2e::service_error(
            sm_client(&server, with_token(&bad))
                .list_secrets()
                .send()
                .await,
        );
        assert_eq!(
            (e.code(), e.message()),
            (Some("UnrecognizedClientException"), Some(INVALID_TOKEN)),
            "bit flipped at byte {at}: {e:?}"
        );
        let (e, status) = service_error_status(
            sts_client(&server, with_token(&bad))
                .get_caller_identity()
                .send()
                .await,
        );
        assert_eq!(
            code_and_message(&e),
            ("InvalidClientTokenId".to_owned(), INVALID_TOKEN.to_owned()),
            "bit flipped at byte {at}"
        );
        assert_eq!(status, 403);
    }
    // Another session's token with this session's keys: the token names its own key id.
    let other = assume(&server, &user, &role.arn).await;
    let e = coffer_e2e::service_error(
        sm_client(
            &server,
            with_token(other.credentials().unwrap().session_token()),
        )
        .list_secrets()
        .send()
        .await,
    );
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
    // The right token with a wrong secret fails the signature.
    let wrong_secret = common::sdk_credentials(
        creds.access_key_id(),
        &"x".repeat(40),
        Some(creds.session_token()),
    );
    let e = coffer_e2e::service_error(sm_client(&server, wrong_secret).list_secrets().send().await);
    assert_eq!(e.code(), Some("InvalidSignatureException"), "{e:?}");
    // A temporary key id without its token is unknown.
    let tokenless = common::sdk_credentials(creds.access_key_id(), creds.secret_access_key(), None);
    let e = coffer_e2e::service_error(sm_client(&server, tokenless).list_secrets().send().await);
    assert_eq!(e.code(), Some("UnrecognizedClientException"), "{e:?}");
}

#[tokio::test]
async fn expired_credentials_are_refused() {
    let server = Server::dev_with(DevOptions {
        manual_clock: true,
        ..DevOptions::default()
    })
    .unwrap();
    let s = secret(&server, "sts/expiring", "v").await;
    let iam = Iam::root(&server);
    let user = iam
        .user(&[policy(&[allow("secretsmanager:GetSecretValue", "*")])])
        .await;
    let role = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:GetSecretValue", "*")])],
            None,
        )
        .await;
    let role_creds = sts_client(&server, long_term(&user.key))
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("short")
        .duration_seconds(900)
        .send()
        .await
        .unwrap()
        .credentials()
        .cloned()
        .unwrap();
    let user_creds = sts_client(&server, long_term(&user.key))
        .get_session_token()
        .duration_seconds(1800)
        .send()
        .await
        .unwrap()
        .credentials()
        .cloned()
        .unwrap();
    let role_sm = sm_client(&server, temporary(&role_creds));
    let user_sm = sm_client(&server, temporary(&user_creds));
    let read = |c: &sm::Client| c.get_secret_value().secret_id(&s).send();
    assert_eq!(read(&role_sm).await.unwrap().secret_string(), Some("v"));
    assert_eq!(read(&user_sm).await.unwrap().secret_string(), Some("v"));

    server.advance_clock(899).unwrap();
    assert_eq!(read(&role_sm).await.unwrap().secret_string(), Some("v"));
    server.advance_clock(2).unwrap();
    let (e, status) = service_error_status(read(&role_sm).await);
    assert_eq!(
        (e.code(), e.message()),
        (Some("ExpiredTokenException"), Some(EXPIRED)),
        "{e:?}"
    );
    assert_eq!(status, 400);
    let (e, status) = service_error_status(
        sts_client(&server, temporary(&role_creds))
            .get_caller_identity()
            .send()
            .await,
    );
    assert_eq!(
        code_and_message(&e),
        ("ExpiredToken".to_owned(), EXPIRED.to_owned())
    );
    assert_eq!(status, 403);
    // AssumeRole's modeled ExpiredTokenException is about a token in the input (SAML, web
    // identity); an expired signing token is the query protocol's ExpiredToken, unmodeled.
    let (e, status) = service_error_status(
        sts_client(&server, temporary(&role_creds))
            .assume_role()
            .role_arn(&role.arn)
            .role_session_name("late")
            .send()
            .await,
    );
    assert!(unmodeled(&e), "{e:?}");
    assert_eq!(e.code(), Some("ExpiredToken"));
    assert_eq!(status, 403);

    // The GetSessionToken session lasts its own 1800 s.
    assert_eq!(read(&user_sm).await.unwrap().secret_string(), Some("v"));
    server.advance_clock(900).unwrap();
    let e = coffer_e2e::service_error(read(&user_sm).await);
    assert_eq!(e.code(), Some("ExpiredTokenException"), "{e:?}");
    // The long-term key is not affected by any of this.
    let who = sts_client(&server, long_term(&user.key))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(who.arn(), Some(user.arn.as_str()));
}

// --- the SDK's own credential provider chain --------------------------------------------------------

/// What `aws-config`'s `AssumeRoleProvider` does (aws-config is deliberately not a dependency):
/// an SDK credentials provider that calls AssumeRole with a source identity's credentials and
/// hands the SDK the temporary credentials with their expiry, which the SDK caches.
#[derive(Debug)]
struct AssumeRoleProvider {
    sts: sts::Client,
    role_arn: String,
    calls: Arc<AtomicUsize>,
}

impl ProvideCredentials for AssumeRoleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let out = self
                .sts
                .assume_role()
                .role_arn(&self.role_arn)
                .role_session_name("sdk-provider")
                .send()
                .await
                .map_err(CredentialsError::provider_error)?;
            let c = out
                .credentials()
                .ok_or_else(|| CredentialsError::unhandled("AssumeRole answered no Credentials"))?;
            let expiry =
                SystemTime::try_from(*c.expiration()).map_err(CredentialsError::unhandled)?;
            Ok(Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                Some(expiry),
                "assume-role",
            ))
        })
    }
}

#[tokio::test]
async fn an_sdk_credentials_provider_assuming_a_role_is_called_once_and_cached() {
    let server = Server::dev().unwrap();
    let s = secret(&server, "sts/provider", "through a provider").await;
    let iam = Iam::root(&server);
    let user = iam.user(&[]).await;
    let role = iam
        .role(
            &trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:GetSecretValue", &s)])],
            None,
        )
        .await;
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = AssumeRoleProvider {
        sts: sts_client(&server, long_term(&user.key)),
        role_arn: role.arn.clone(),
        calls: Arc::clone(&calls),
    };
    let sm = sm_client(&server, provider);
    for _ in 0..3 {
        let got = sm.get_secret_value().secret_id(&s).send().await.unwrap();
        assert_eq!(got.secret_string(), Some("through a provider"));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the SDK caches credentials until near their Expiration"
    );
    let who = sts_client(
        &server,
        AssumeRoleProvider {
            sts: sts_client(&server, long_term(&user.key)),
            role_arn: role.arn.clone(),
            calls: Arc::new(AtomicUsize::new(0)),
        },
    )
    .get_caller_identity()
    .send()
    .await
    .unwrap();
    assert_eq!(
        who.arn(),
        Some(
            format!(
                "arn:aws:sts::{}:assumed-role/{}/sdk-provider",
                server.account_id, role.name
            )
            .as_str()
        )
    );
}
