//! Temporary credentials through `Coffer`: the session token is bound to its access key id and
//! account, cannot be altered or outlive its expiry (by the injected clock), and a role session
//! acts with its role's policies, in its role's account, also when assumed from another account.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use base64::Engine;
use coffer_core::clock::ManualClock;
use coffer_core::*;

const A: &str = "111111111111";
const B: &str = "222222222222";
const T0: i64 = 1_800_000_000_000;

fn caller(account_id: &str, arn: &str, t: PrincipalType) -> Caller {
    Caller {
        account_id: account_id.into(),
        principal_arn: arn.into(),
        principal_type: t,
        access_key_id: "AKIAEXAMPLE".into(),
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: true,
        session: None,
    }
}

fn root(account_id: &str) -> Caller {
    caller(
        account_id,
        &format!("arn:aws:iam::{account_id}:root"),
        PrincipalType::Root,
    )
}

struct World {
    coffer: Arc<Coffer>,
    clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some(A.into()),
        },
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at(T0));
    let coffer = Arc::new(Coffer::open(dir.path(), clock.clone()).unwrap());
    coffer.create_account(Some(B)).await.unwrap();
    World {
        coffer,
        clock,
        _dir: dir,
    }
}

impl World {
    /// An IAM user of `account` with one inline policy (if given), as a caller.
    async fn user(&self, account: &str, name: &str, policy: Option<serde_json::Value>) -> Caller {
        let r = root(account);
        let u = self
            .coffer
            .create_user(&r, name, None, vec![])
            .await
            .unwrap();
        if let Some(p) = policy {
            self.coffer
                .put_inline_policy(&r, PrincipalKind::User, name, "p", &p.to_string())
                .await
                .unwrap();
        }
        caller(account, &u.arn(), PrincipalType::IamUser)
    }

    async fn role(
        &self,
        account: &str,
        name: &str,
        trust: serde_json::Value,
        policy: serde_json::Value,
    ) -> String {
        let r = root(account);
        let role = self
            .coffer
            .create_role(
                &r,
                RoleInput {
                    name: name.into(),
                    path: Some("/apps/".into()),
                    trust_policy: trust.to_string(),
                    description: None,
                    max_session_secs: None,
                    tags: vec![],
                },
            )
            .await
            .unwrap();
        self.coffer
            .put_inline_policy(&r, PrincipalKind::Role, name, "p", &policy.to_string())
            .await
            .unwrap();
        role.arn()
    }

    /// The caller that presents `creds`, as the authenticator would build it.
    async fn session_caller(&self, creds: &TemporaryCredentials) -> Caller {
        let s = self
            .coffer
            .session_credentials(&creds.access_key_id, &creds.session_token)
            .await
            .unwrap();
        Caller {
            account_id: s.account_id,
            principal_arn: s.principal_arn,
            principal_type: s.principal_type,
            access_key_id: creds.access_key_id.clone(),
            region: "us-east-1".into(),
            source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            secure_transport: true,
            session: Some(s.session),
        }
    }
}

fn allow(action: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": resource}]})
}

fn trust(principal: &str) -> serde_json::Value {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]})
}

fn rejection(r: Result<SessionCredentials, TokenRejection>) -> TokenRejection {
    match r {
        Ok(_) => panic!("the token was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_token_opens_only_unaltered_and_for_its_own_key() {
    let w = world().await;
    let user = w.user(A, "alice", None).await;
    let creds = w
        .coffer
        .get_session_token(&user, Some(900), None, None)
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert_eq!(creds.expiration_ms, T0 + 900_000);
    let ok = w
        .coffer
        .session_credentials(&creds.access_key_id, &creds.session_token)
        .await
        .unwrap();
    assert_eq!(ok.principal_arn, user.principal_arn);
    assert_eq!(ok.principal_type, PrincipalType::IamUser);
    // The server recomputes the same secret from the key id: it is never stored.
    assert_eq!(
        ok.secret_access_key.expose(),
        creds.secret_access_key.expose()
    );
    assert!(ok.session.principal_id.starts_with("AIDA"));

    let raw = base64::engine::general_purpose::STANDARD
        .decode(&creds.session_token)
        .unwrap();
    for at in 0..raw.len() {
        let mut bad = raw.clone();
        bad[at] ^= 0x20;
        let token = base64::engine::general_purpose::STANDARD.encode(&bad);
        assert!(
            matches!(
                rejection(
                    w.coffer
                        .session_credentials(&creds.access_key_id, &token)
                        .await
                ),
                TokenRejection::Invalid
            ),
            "a token altered at byte {at} was not refused as invalid"
        );
    }
    // Cut short, or presented with another key id.
    let short = base64::engine::general_purpose::STANDARD.encode(&raw[..raw.len() - 1]);
    assert!(matches!(
        rejection(
            w.coffer
                .session_credentials(&creds.access_key_id, &short)
                .await
        ),
        TokenRejection::Invalid
    ));
    assert!(matches!(
        rejection(
            w.coffer
                .session_credentials("ASIAAAAAAAAAAAAAAAAA", &creds.session_token)
                .await
        ),
        TokenRejection::Invalid
    ));
    // Moved to another account (the account id is in the header and bound to the seal).
    let mut moved = raw.clone();
    moved[1..13].copy_from_slice(B.as_bytes());
    let moved = base64::engine::general_purpose::STANDARD.encode(&moved);
    assert!(matches!(
        rejection(
            w.coffer
                .session_credentials(&creds.access_key_id, &moved)
                .await
        ),
        TokenRejection::Invalid
    ));
    assert!(matches!(
        rejection(w.coffer.session_credentials(&creds.access_key_id, "").await),
        TokenRejection::Invalid
    ));
}

#[tokio::test]
async fn a_token_expires_by_the_injected_clock() {
    let w = world().await;
    let user = w.user(A, "bob", None).await;
    let creds = w
        .coffer
        .get_session_token(&user, Some(3600), None, None)
        .await
        .unwrap();
    w.clock.advance(3_599_999);
    w.coffer
        .session_credentials(&creds.access_key_id, &creds.session_token)
        .await
        .unwrap();
    w.clock.advance(1);
    assert!(matches!(
        rejection(
            w.coffer
                .session_credentials(&creds.access_key_id, &creds.session_token)
                .await
        ),
        TokenRejection::Expired
    ));
}

#[tokio::test]
async fn a_role_in_another_account_needs_its_trust_and_the_callers_identity_policy() {
    let w = world().await;
    let secret = w
        .coffer
        .create_secret(
            &root(A),
            CreateSecretInput {
                name: "shared/db".into(),
                client_request_token: Some("00000000-0000-4000-8000-000000000001".into()),
                value: Some(SecretValue::String(SecretBytes::from(
                    "hunter2".to_string(),
                ))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // A's role trusts account B (delegating to B's identity policies).
    let role_arn = w
        .role(
            A,
            "reader",
            trust(&format!("arn:aws:iam::{B}:root")),
            allow("secretsmanager:GetSecretValue", &secret.arn),
        )
        .await;
    assert_eq!(role_arn, format!("arn:aws:iam::{A}:role/apps/reader"));
    let input = AssumeRoleInput {
        role_arn: role_arn.clone(),
        role_session_name: "ci".into(),
        ..Default::default()
    };

    let plain = w.user(B, "carol", None).await;
    let err = w.coffer.assume_role(&plain, &input).await.unwrap_err();
    assert!(
        matches!(&err, CoreError::AccessDenied(m) if m == &format!(
            "User: arn:aws:iam::{B}:user/carol is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        )),
        "{err:?}"
    );

    let allowed = w
        .user(B, "dave", Some(allow("sts:AssumeRole", &role_arn)))
        .await;
    let out = w.coffer.assume_role(&allowed, &input).await.unwrap();
    assert_eq!(out.arn, format!("arn:aws:sts::{A}:assumed-role/reader/ci"));
    assert!(out.assumed_role_id.starts_with("AROA") && out.assumed_role_id.ends_with(":ci"));
    assert_eq!(out.credentials.expiration_ms, T0 + 3_600_000);

    // The session belongs to account A and acts with the role's policy there.
    let session = w.session_caller(&out.credentials).await;
    assert_eq!(session.account_id, A);
    assert_eq!(session.principal_type, PrincipalType::AssumedRole);
    let value = w
        .coffer
        .get_secret_value(
            &session,
            GetSecretValueInput {
                secret_id: secret.arn.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    match value.value {
        SecretValue::String(s) => assert_eq!(s.expose(), b"hunter2"),
        SecretValue::Binary(_) => panic!("binary"),
    }
    let id = w.coffer.get_caller_identity(&session).await.unwrap();
    assert_eq!(id.arn, out.arn);
    assert_eq!(id.user_id, out.assumed_role_id);
    assert_eq!(id.account, A);

    // Chaining from the session: one hour at most.
    let again = w
        .role(
            A,
            "again",
            trust(&role_arn),
            allow("secretsmanager:ListSecrets", "*"),
        )
        .await;
    let too_long = AssumeRoleInput {
        role_arn: again.clone(),
        role_session_name: "hop".into(),
        duration_seconds: Some(3601),
        ..Default::default()
    };
    let err = w.coffer.assume_role(&session, &too_long).await.unwrap_err();
    assert!(matches!(err, CoreError::Validation(m) if m.contains("role chaining")));
}

#[tokio::test]
async fn a_session_policy_can_only_narrow() {
    let w = world().await;
    let user = w.user(A, "erin", None).await;
    let role_arn = w
        .role(
            A,
            "lister",
            trust(&user.principal_arn),
            allow("secretsmanager:ListSecrets", "*"),
        )
        .await;
    let with_policy = |policy: serde_json::Value| AssumeRoleInput {
        role_arn: role_arn.clone(),
        role_session_name: "s1".into(),
        policy: Some(policy.to_string()),
        ..Default::default()
    };
    let narrowed = w
        .coffer
        .assume_role(
            &user,
            &with_policy(allow("secretsmanager:DescribeSecret", "*")),
        )
        .await
        .unwrap();
    let session = w.session_caller(&narrowed.credentials).await;
    let err = w
        .coffer
        .list_secrets(&session, Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::AccessDenied(m) if m.ends_with("because no session policy allows the secretsmanager:ListSecrets action")),
        "{err:?}"
    );
    let same = w
        .coffer
        .assume_role(&user, &with_policy(allow("secretsmanager:*", "*")))
        .await
        .unwrap();
    let session = w.session_caller(&same.credentials).await;
    w.coffer
        .list_secrets(&session, Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn sessions_carry_mfa_and_issue_time_for_conditions() {
    let w = world().await;
    // Deny everything unless MFA was used, the usual guard; with long-term keys the key is
    // absent, so BoolIfExists denies too.
    let guard = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:ListSecrets", "Resource": "*"},
        {"Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*",
         "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}]});
    let user = w.user(A, "frank", Some(guard)).await;
    let err = w
        .coffer
        .list_secrets(&user, Default::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, CoreError::AccessDenied(m) if m.contains("explicit deny")));
    let creds = w
        .coffer
        .get_session_token(&user, None, None, None)
        .await
        .unwrap();
    assert_eq!(creds.expiration_ms, T0 + 12 * 3_600_000);
    let session = w.session_caller(&creds).await;
    assert_eq!(session.session.as_ref().unwrap().mfa_authenticated_ms, None);
    assert!(
        w.coffer
            .list_secrets(&session, Default::default())
            .await
            .is_err()
    );
    // A session cannot mint another session.
    let err = w
        .coffer
        .get_session_token(&session, None, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CoreError::AccessDenied(m) if m == "Cannot call GetSessionToken with session credentials")
    );
    // A root user's session lasts an hour at most.
    let r = w
        .coffer
        .get_session_token(&root(A), Some(129_600), None, None)
        .await
        .unwrap();
    assert_eq!(r.expiration_ms, T0 + 3_600_000);
}
