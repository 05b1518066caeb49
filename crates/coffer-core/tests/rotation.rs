//! The rotation engine through `Coffer` against the machine's MariaDB (127.0.0.1:3306, root with
//! an empty password; `COFFER_TEST_MYSQL_*` point elsewhere): the built-in rotators in both
//! strategies, schedules driven by a manual clock, a failing step that leaves AWSCURRENT alone,
//! and a store reopened mid-rotation that continues the same run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use coffer_core::clock::ManualClock;
use coffer_core::rotation::{FunctionSpec, RotateSecretInput};
use coffer_core::*;
use coffer_rotation::db;
use mysql_async::prelude::Queryable;
use serde_json::json;

const ACCOUNT: &str = "111111111111";
const T0: i64 = 1_800_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn host() -> String {
    env("COFFER_TEST_MYSQL_HOST", "127.0.0.1")
}

fn port() -> u16 {
    env("COFFER_TEST_MYSQL_PORT", "3306").parse().unwrap()
}

fn opts(user: &str, password: &str) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname(host())
        .tcp_port(port())
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// A MariaDB user of its own with a password, dropped when the guard goes.
struct DbUser {
    names: Vec<String>,
}

impl Drop for DbUser {
    fn drop(&mut self) {
        let names = self.names.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = mysql_async::Conn::new(admin_opts()).await {
                    for n in names {
                        let _ = c.query_drop(format!("DROP USER IF EXISTS '{n}'@'%'")).await;
                    }
                }
            });
        })
        .join();
    }
}

fn admin_opts() -> mysql_async::OptsBuilder {
    opts(
        &env("COFFER_TEST_MYSQL_USER", "root"),
        &env("COFFER_TEST_MYSQL_PASSWORD", ""),
    )
}

async fn make_user(name: &str, password: &str) -> DbUser {
    let mut c = match mysql_async::Conn::new(admin_opts()).await {
        Ok(c) => c,
        Err(e) => panic!(
            "MariaDB/MySQL is not usable at {}:{} as root: {e}. Start it (service mariadb start; scripts/setup-system installs and starts it)",
            host(),
            port()
        ),
    };
    c.query_drop(format!(
        "CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await
    .unwrap();
    c.query_drop(format!("GRANT SELECT ON mysql.help_topic TO '{name}'@'%'"))
        .await
        .unwrap();
    DbUser {
        names: vec![name.to_string(), format!("{name}_clone")],
    }
}

fn root() -> Caller {
    Caller {
        account_id: ACCOUNT.into(),
        principal_arn: format!("arn:aws:iam::{ACCOUNT}:root"),
        principal_type: PrincipalType::Root,
        access_key_id: "AKIAEXAMPLE".into(),
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: true,
        session: None,
    }
}

fn uid() -> String {
    ids::uuid_v4().unwrap().replace('-', "")[..10].to_string()
}

struct World {
    coffer: Arc<Coffer>,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some(ACCOUNT.into()),
        },
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at(T0));
    let coffer = Arc::new(Coffer::open(dir.path(), clock.clone()).unwrap());
    World { coffer, clock, dir }
}

impl World {
    async fn secret(&self, name: &str, value: serde_json::Value) -> String {
        self.coffer
            .create_secret(
                &root(),
                CreateSecretInput {
                    name: name.into(),
                    client_request_token: Some(ids::uuid_v4().unwrap()),
                    value: Some(SecretValue::String(SecretBytes::from(value.to_string()))),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .arn
    }

    async fn builtin(&self, strategy: db::Strategy) -> String {
        let arn = format!(
            "arn:aws:lambda:us-east-1:{ACCOUNT}:function:mariadb-{}",
            uid()
        );
        self.coffer
            .register_rotation_function(
                ACCOUNT,
                &arn,
                FunctionSpec::Builtin {
                    engine: db::Engine::MySql,
                    strategy,
                },
            )
            .await
            .unwrap();
        arn
    }

    async fn value(&self, arn: &str, stage: &str) -> serde_json::Value {
        let out = self
            .coffer
            .get_secret_value(
                &root(),
                GetSecretValueInput {
                    secret_id: arn.into(),
                    version_stage: Some(stage.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        match out.value {
            SecretValue::String(s) => serde_json::from_slice(s.expose()).unwrap(),
            SecretValue::Binary(_) => panic!("binary"),
        }
    }

    async fn rotate(&self, arn: &str, function: &str, immediately: bool) -> Option<String> {
        self.coffer
            .rotate_secret(
                &root(),
                RotateSecretInput {
                    secret_id: arn.into(),
                    rotation_lambda_arn: Some(function.into()),
                    rotation_rules: Some(coffer_schedule::RotationRules {
                        automatically_after_days: Some(1),
                        ..Default::default()
                    }),
                    rotate_immediately: Some(immediately),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .version_id
    }
}

async fn logs_in(v: &serde_json::Value) -> bool {
    let parsed = db::parse_secret(v.to_string().as_bytes()).unwrap();
    db::test_secret(&parsed).await.is_ok()
}

fn db_secret(user: &str, password: &str) -> serde_json::Value {
    json!({"engine": "mariadb", "host": host(), "port": port(), "username": user,
           "password": password, "dbname": "mysql", "ssl": false})
}

#[tokio::test]
async fn single_user_rotation_changes_the_password_in_the_database() {
    let w = world();
    let user = format!("cs{}", uid());
    let _guard = make_user(&user, "first-Pass1").await;
    let arn = w.secret("db/single", db_secret(&user, "first-Pass1")).await;
    let f = w.builtin(db::Strategy::SingleUser).await;
    let token = w.rotate(&arn, &f, true).await.unwrap();
    assert_eq!(w.coffer.run_due_rotations().await.unwrap(), 1);

    let current = w.value(&arn, "AWSCURRENT").await;
    let previous = w.value(&arn, "AWSPREVIOUS").await;
    assert_eq!(previous["password"], "first-Pass1");
    assert_ne!(current["password"], "first-Pass1");
    assert!(logs_in(&current).await, "the new password logs in");
    assert!(!logs_in(&previous).await, "the old password no longer does");
    let rec = w.coffer.describe_secret(&root(), &arn).await.unwrap();
    let v = rec.versions.iter().find(|v| v.version_id == token).unwrap();
    assert_eq!(v.stages, vec!["AWSCURRENT".to_string()]);
    let rotation = rec.rotation.unwrap();
    assert_eq!(rotation.last_rotated_ms, Some(T0));
    assert!(rotation.run.is_none());
    // Scheduled one day on: the window is the next day but one (UTC), and nothing is due now.
    assert!(rotation.next_rotation_ms.unwrap() > T0);
    assert_eq!(w.coffer.run_due_rotations().await.unwrap(), 0);
    let events: Vec<String> = w
        .coffer
        .rotation_status(&arn)
        .await
        .unwrap()
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events.first().map(String::as_str), Some("RotationStarted"));
    assert_eq!(events.last().map(String::as_str), Some("RotationSucceeded"));
}

#[tokio::test]
async fn alternating_users_toggle_and_keep_the_old_user() {
    let w = world();
    let user = format!("ca{}", uid());
    let _guard = make_user(&user, "orig-Pass1").await;
    let master = w
        .secret(
            "db/master",
            json!({"engine": "mariadb", "host": host(), "port": port(),
                   "username": env("COFFER_TEST_MYSQL_USER", "root"),
                   "password": env("COFFER_TEST_MYSQL_PASSWORD", ""), "ssl": false}),
        )
        .await;
    let mut secret = db_secret(&user, "orig-Pass1");
    secret["masterarn"] = json!(master);
    let arn = w.secret("db/alt", secret).await;
    let f = w.builtin(db::Strategy::AlternatingUsers).await;
    w.rotate(&arn, &f, true).await;
    w.coffer.run_due_rotations().await.unwrap();
    let first = w.value(&arn, "AWSCURRENT").await;
    assert_eq!(first["username"], format!("{user}_clone"));
    assert!(logs_in(&first).await);
    // The original user still logs in with its old password, as AWS documents.
    assert!(logs_in(&w.value(&arn, "AWSPREVIOUS").await).await);

    // The next scheduled rotation, by the clock, toggles back.
    w.clock.advance(3 * DAY_MS);
    assert_eq!(w.coffer.run_due_rotations().await.unwrap(), 1);
    let second = w.value(&arn, "AWSCURRENT").await;
    assert_eq!(second["username"], user);
    assert_ne!(second["password"], "orig-Pass1");
    assert!(logs_in(&second).await);
}

#[tokio::test]
async fn a_failed_step_keeps_current_and_a_reopened_store_continues_the_run() {
    let w = world();
    let user = format!("cr{}", uid());
    let _guard = make_user(&user, "keep-Pass1").await;
    let master = w
        .secret(
            "db/badmaster",
            json!({"engine": "mariadb", "host": host(), "port": port(),
                   "username": "root", "password": "not-the-password", "ssl": false}),
        )
        .await;
    let mut secret = db_secret(&user, "keep-Pass1");
    secret["masterarn"] = json!(master);
    let arn = w.secret("db/retry", secret).await;
    let f = w.builtin(db::Strategy::AlternatingUsers).await;
    let token = w.rotate(&arn, &f, true).await.unwrap();
    w.coffer.run_due_rotations().await.unwrap();

    // AWSCURRENT is untouched and still readable; the step and its error are recorded.
    assert_eq!(w.value(&arn, "AWSCURRENT").await["password"], "keep-Pass1");
    let status = w.coffer.rotation_status(&arn).await.unwrap().unwrap();
    let run = status.rotation.run.clone().unwrap();
    assert_eq!(run.token, token);
    assert_eq!(run.attempts, 1);
    let set = run.steps.iter().find(|s| s.step == "setSecret").unwrap();
    assert!(!set.ok);
    assert!(set.error.as_deref().unwrap().contains("root"), "{set:?}");
    assert!(run.steps.iter().any(|s| s.step == "createSecret" && s.ok));
    // Retried with backoff, not at once.
    assert!(status.rotation.due_ms.unwrap() > T0);
    assert_eq!(w.coffer.run_due_rotations().await.unwrap(), 0);

    // The server goes away mid-rotation; the store is opened again.
    let World { coffer, clock, dir } = w;
    drop(coffer);
    let coffer = Arc::new(Coffer::open(dir.path(), clock.clone()).unwrap());
    let w = World { coffer, clock, dir };
    // The operator fixes the master secret; the retry is due after its backoff.
    w.coffer
        .put_secret_value(
            &root(),
            PutSecretValueInput {
                secret_id: master.clone(),
                client_request_token: Some(ids::uuid_v4().unwrap()),
                value: Some(SecretValue::String(SecretBytes::from(
                    json!({"engine": "mariadb", "host": host(), "port": port(),
                           "username": env("COFFER_TEST_MYSQL_USER", "root"),
                           "password": env("COFFER_TEST_MYSQL_PASSWORD", ""), "ssl": false})
                    .to_string(),
                ))),
                version_stages: None,
            },
        )
        .await
        .unwrap();
    w.clock.advance(31_000);
    assert_eq!(w.coffer.run_due_rotations().await.unwrap(), 1);
    let rec = w.coffer.describe_secret(&root(), &arn).await.unwrap();
    // The same run finished: its version, made before the restart, is now AWSCURRENT.
    let v = rec.versions.iter().find(|v| v.version_id == token).unwrap();
    assert_eq!(v.stages, vec!["AWSCURRENT".to_string()]);
    assert!(logs_in(&w.value(&arn, "AWSCURRENT").await).await);
}

#[tokio::test]
async fn rotate_secret_errors_as_aws() {
    let w = world();
    let arn = w.secret("plain", json!({"password": "x"})).await;
    let err = w
        .coffer
        .rotate_secret(
            &root(),
            RotateSecretInput {
                secret_id: arn.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m == "No Lambda rotation function ARN is associated with this secret."),
        "{err:?}"
    );
    // A database secret that cannot be reached: the run fails at setSecret, retries back off,
    // and after the last attempt it gives up until its next window.
    let f = w.builtin(db::Strategy::SingleUser).await;
    let unreachable = w
        .secret(
            "db/gone",
            json!({"engine": "mariadb", "host": "127.0.0.1", "port": 1, "username": "u",
                   "password": "p", "ssl": false}),
        )
        .await;
    w.rotate(&unreachable, &f, true).await;
    for _ in 0..rotation::MAX_ATTEMPTS {
        w.coffer.run_due_rotations().await.unwrap();
        w.clock.advance(31 * 60_000);
    }
    let status = w
        .coffer
        .rotation_status(&unreachable)
        .await
        .unwrap()
        .unwrap();
    let run = status.rotation.run.unwrap();
    assert!(run.gave_up, "{run:?}");
    assert_eq!(run.attempts, rotation::MAX_ATTEMPTS);
    assert!(status.events.iter().any(|e| e.event == "RotationFailed"));
    let err = w
        .coffer
        .rotate_secret(
            &root(),
            RotateSecretInput {
                secret_id: unreachable,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m == "A previous rotation isn't complete. That rotation will be continued."),
        "{err:?}"
    );
}

#[tokio::test]
async fn who_may_aim_a_rotation_and_at_what() {
    let w = world();
    let user = format!("cp{}", uid());
    let _guard = make_user(&user, "pin-Pass1").await;
    let arn = w.secret("db/pinned", db_secret(&user, "pin-Pass1")).await;
    let f = w.builtin(db::Strategy::SingleUser).await;
    let rotate = |function: String| RotateSecretInput {
        secret_id: arn.clone(),
        rotation_lambda_arn: Some(function),
        rotate_immediately: Some(false),
        ..Default::default()
    };
    // A function of another region (or account) is not the secret's.
    let elsewhere = f.replace(":us-east-1:", ":eu-west-1:");
    let err = w
        .coffer
        .rotate_secret(&root(), rotate(elsewhere))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m.contains("must be in the secret's account")),
        "{err:?}"
    );

    // An IAM user needs lambda:InvokeFunction on the function besides RotateSecret.
    let r = root();
    coffer_core::Coffer::create_user(&w.coffer, &r, "operator", None, vec![])
        .await
        .unwrap();
    let policy = |actions: serde_json::Value| {
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": "*"}]})
        .to_string()
    };
    w.coffer
        .put_inline_policy(
            &r,
            PrincipalKind::User,
            "operator",
            "p",
            &policy(json!(["secretsmanager:*"])),
        )
        .await
        .unwrap();
    let operator = Caller {
        principal_arn: format!("arn:aws:iam::{ACCOUNT}:user/operator"),
        principal_type: PrincipalType::IamUser,
        ..root()
    };
    let err = w
        .coffer
        .rotate_secret(&operator, rotate(f.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::AccessDenied(m) if m.contains("lambda:InvokeFunction")),
        "{err:?}"
    );
    w.coffer
        .put_inline_policy(
            &r,
            PrincipalKind::User,
            "operator",
            "p",
            &policy(json!(["secretsmanager:*", "lambda:InvokeFunction"])),
        )
        .await
        .unwrap();
    w.coffer
        .rotate_secret(&operator, rotate(f.clone()))
        .await
        .unwrap();

    // Whoever may only write the value cannot aim the rotator at another database.
    w.coffer
        .put_secret_value(
            &r,
            PutSecretValueInput {
                secret_id: arn.clone(),
                client_request_token: Some(ids::uuid_v4().unwrap()),
                value: Some(SecretValue::String(SecretBytes::from(
                    json!({"engine": "mariadb", "host": "203.0.113.9", "port": 3306,
                           "username": user, "password": "pin-Pass1", "ssl": false})
                    .to_string(),
                ))),
                version_stages: None,
            },
        )
        .await
        .unwrap();
    w.coffer.retry_rotation(&arn).await.unwrap();
    w.coffer.run_due_rotations().await.unwrap();
    let run = w
        .coffer
        .rotation_status(&arn)
        .await
        .unwrap()
        .unwrap()
        .rotation
        .run
        .unwrap();
    let set = run.steps.iter().find(|s| s.step == "setSecret").unwrap();
    assert!(!set.ok);
    assert!(
        set.error
            .as_deref()
            .unwrap()
            .contains("call RotateSecret again"),
        "{set:?}"
    );
    // A retry continues the same run.
    let token = w.coffer.retry_rotation(&arn).await.unwrap();
    assert_eq!(token, run.token);
}

#[tokio::test]
async fn a_builtin_rotator_needs_a_database_secret() {
    let w = world();
    let arn = w.secret("plain/empty", json!({"password": "x"})).await;
    let f = w.builtin(db::Strategy::SingleUser).await;
    // RotateSecret on a value that is no database secret is refused for a built-in rotator.
    let err = w
        .coffer
        .rotate_secret(
            &root(),
            RotateSecretInput {
                secret_id: arn.clone(),
                rotation_lambda_arn: Some(f),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m.contains("not a database secret")),
        "{err:?}"
    );

    // A MariaDB secret under a PostgreSQL rotator is refused before anything runs.
    let maria = w.secret("db/maria", db_secret("someone", "pw-Pass1")).await;
    let pg = format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:pg-{}", uid());
    w.coffer
        .register_rotation_function(
            ACCOUNT,
            &pg,
            FunctionSpec::Builtin {
                engine: db::Engine::Postgres,
                strategy: db::Strategy::SingleUser,
            },
        )
        .await
        .unwrap();
    let err = w
        .coffer
        .rotate_secret(
            &root(),
            RotateSecretInput {
                secret_id: maria,
                rotation_lambda_arn: Some(pg),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest(m) if m.contains("MySQL/MariaDB database, and the rotation function rotates postgres")),
        "{err:?}"
    );
}
