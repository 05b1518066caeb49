#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The MySQL/MariaDB rotators against the machine's server: MariaDB at 127.0.0.1:3306, root
//! with an empty password (`COFFER_TEST_MYSQL_HOST`, `_PORT`, `_USER`, `_PASSWORD` point
//! elsewhere). Each test creates its own users, roles and database under unique names and drops
//! them at the end, also when it fails.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use coffer_crypto::SecretBytes;
use coffer_rotation::db::internals::mysql_quote_string;
use coffer_rotation::db::{
    DbErrorKind, DbSecret, Strategy, parse_master_secret, parse_secret, pending_value, set_secret,
    test_secret,
};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use serde_json::{Value, json};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn server() -> (String, u16) {
    (
        env("COFFER_TEST_MYSQL_HOST", "127.0.0.1"),
        env("COFFER_TEST_MYSQL_PORT", "3306").parse().unwrap(),
    )
}

fn opts(user: &str, password: &str) -> OptsBuilder {
    let (host, port) = server();
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// The administrator's session; fails the test with what to do when there is no server.
async fn admin() -> Conn {
    let user = env("COFFER_TEST_MYSQL_USER", "root");
    let (host, port) = server();
    match tokio::time::timeout(
        Duration::from_secs(5),
        Conn::new(opts(&user, &env("COFFER_TEST_MYSQL_PASSWORD", ""))),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "MariaDB/MySQL is not usable at {host}:{port} as {user}: {e}. Start it (service mariadb start; scripts/setup-system installs and starts it), \
             or point COFFER_TEST_MYSQL_HOST/_PORT/_USER/_PASSWORD at a server where that user may create users and databases"
        ),
        Err(_) => panic!(
            "MariaDB/MySQL at {host}:{port} did not answer within 5 s; start it (service mariadb start, or scripts/setup-system)"
        ),
    }
}

async fn can_login(user: &str, password: &str) -> bool {
    match Conn::new(opts(user, password)).await {
        Ok(conn) => {
            conn.disconnect().await.unwrap();
            true
        }
        Err(_) => false,
    }
}

async fn can_read(user: &str, password: &str, table: &str) -> bool {
    let mut conn = Conn::new(opts(user, password)).await.expect("login");
    let ok = conn
        .query_drop(format!("SELECT COUNT(*) FROM {table}"))
        .await
        .is_ok();
    conn.disconnect().await.unwrap();
    ok
}

/// A unique name for this test run.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}_{}_{}",
        std::process::id() % 100_000,
        nanos % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `'user'@'host'` quoted for the admin session (default SQL mode).
fn account(user: &str, host: &str) -> String {
    format!(
        "{}@{}",
        mysql_quote_string(user, false),
        mysql_quote_string(host, false)
    )
}

/// What a test created; dropped when the test ends, however it ends.
#[derive(Default)]
struct Cleanup {
    statements: Vec<String>,
}

impl Cleanup {
    fn user(&mut self, user: &str) {
        for host in ["%", "127.0.0.1", "localhost"] {
            self.statements
                .push(format!("DROP USER IF EXISTS {}", account(user, host)));
        }
    }

    fn database(&mut self, db: &str) {
        self.statements
            .push(format!("DROP DATABASE IF EXISTS `{db}`"));
    }

    fn role(&mut self, role: &str) {
        self.statements
            .push(format!("DROP ROLE IF EXISTS `{role}`"));
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let statements = std::mem::take(&mut self.statements);
        if statements.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = admin().await;
                for s in statements {
                    let _ = conn.query_drop(s).await;
                }
                let _ = conn.disconnect().await;
            });
        })
        .join();
    }
}

/// A database with tables `t` (granted), `t_secret` (not granted) and `t_role` (through a role).
async fn create_database(conn: &mut Conn, cleanup: &mut Cleanup) -> String {
    let db = unique("ctdb");
    cleanup.database(&db);
    conn.query_drop(format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (x INT); CREATE TABLE `{db}`.t_secret (x INT); CREATE TABLE `{db}`.t_role (x INT)"
    ))
    .await
    .unwrap();
    db
}

/// `'user'@'%'` with SELECT on `db.t`.
async fn create_user(
    conn: &mut Conn,
    cleanup: &mut Cleanup,
    user: &str,
    host: &str,
    pw: &str,
    db: &str,
) {
    cleanup.user(user);
    cleanup.user(&format!("{user}_clone"));
    conn.query_drop(format!(
        "CREATE USER {a} IDENTIFIED BY {p}; GRANT SELECT ON `{db}`.t TO {a}",
        a = account(user, host),
        p = mysql_quote_string(pw, false)
    ))
    .await
    .unwrap();
}

/// A master that may do everything, with a password.
async fn create_master(conn: &mut Conn, cleanup: &mut Cleanup) -> (String, String) {
    let user = unique("ctm");
    let pw = "master'pw\\1".to_owned();
    cleanup.user(&user);
    conn.query_drop(format!(
        "CREATE USER {a} IDENTIFIED BY {p}; GRANT ALL PRIVILEGES ON *.* TO {a} WITH GRANT OPTION",
        a = account(&user, "%"),
        p = mysql_quote_string(&pw, false)
    ))
    .await
    .unwrap();
    (user, pw)
}

fn json_for(user: &str, password: &str, extra: Value) -> Vec<u8> {
    let (host, port) = server();
    let mut v = json!({"engine": "mariadb", "host": host, "port": port.to_string(), "username": user, "password": password});
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    serde_json::to_vec(&v).unwrap()
}

fn secret(user: &str, password: &str) -> DbSecret {
    parse_secret(&json_for(user, password, json!({}))).unwrap()
}

fn master_secret(user: &str, password: &str, for_user: &DbSecret) -> DbSecret {
    parse_master_secret(
        &serde_json::to_vec(&json!({"username": user, "password": password})).unwrap(),
        for_user,
    )
    .unwrap()
}

fn password(s: &str) -> SecretBytes {
    SecretBytes::from(s.to_owned())
}

async fn hosts(conn: &mut Conn, user: &str) -> Vec<String> {
    let mut h: Vec<String> = conn
        .exec("SELECT Host FROM mysql.user WHERE User = ?", (user,))
        .await
        .unwrap();
    h.sort();
    h
}

/// The grants of `user@host` with the grantee written as `<grantee>` and MariaDB's
/// `IDENTIFIED BY PASSWORD '…'` removed, sorted.
async fn normalized_grants(conn: &mut Conn, user: &str, host: &str) -> Vec<String> {
    let lines: Vec<String> = conn
        .query(format!("SHOW GRANTS FOR {}", account(user, host)))
        .await
        .unwrap();
    let grantee = format!(
        "`{}`@`{}`",
        user.replace('`', "``"),
        host.replace('`', "``")
    );
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|l| {
            let l = l.replace(&grantee, "<grantee>");
            match l.find(" IDENTIFIED BY PASSWORD '") {
                Some(at) => {
                    let rest = &l[at + " IDENTIFIED BY PASSWORD '".len()..];
                    let end = rest.find('\'').unwrap();
                    format!("{}{}", &l[..at], &rest[end + 1..])
                }
                None => l,
            }
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn mysql_single_user_sets_the_new_password_and_retires_the_old() {
    let mut cleanup = Cleanup::default();
    let mut conn = admin().await;
    let db = create_database(&mut conn, &mut cleanup).await;
    let user = unique("ctapp");
    create_user(&mut conn, &mut cleanup, &user, "%", "old-pw", &db).await;

    let current_json = json_for(&user, "old-pw", json!({"dbname": db, "note": "kept"}));
    let pending_json =
        pending_value(&current_json, Strategy::SingleUser, &password("new-pw")).unwrap();
    let pending_map: Value = serde_json::from_slice(pending_json.expose()).unwrap();
    assert_eq!(pending_map["note"], "kept");
    assert_eq!(pending_map["username"], user.as_str());
    assert_eq!(pending_map["port"], "3306", "the port keeps its JSON type");
    let current = parse_secret(&current_json).unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();

    let started = Instant::now();
    set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap();
    eprintln!("single-user setSecret took {:?}", started.elapsed());
    assert!(
        can_login(&user, "new-pw").await,
        "the pending password logs in"
    );
    assert!(
        !can_login(&user, "old-pw").await,
        "the old password no longer logs in"
    );
    assert!(
        can_read(&user, "new-pw", &format!("`{db}`.t")).await,
        "privileges are unchanged"
    );
    test_secret(&pending).await.unwrap();
    set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap();
    assert!(
        can_login(&user, "new-pw").await,
        "a retried step is harmless"
    );

    let err = test_secret(&current).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused);
    let msg = err.to_string();
    assert!(
        msg.contains(&user) && msg.contains("127.0.0.1:3306"),
        "{msg}"
    );
    assert!(!msg.contains("old-pw") && !msg.contains("new-pw"), "{msg}");
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_single_user_falls_back_to_the_previous_password() {
    let mut cleanup = Cleanup::default();
    let mut conn = admin().await;
    let db = create_database(&mut conn, &mut cleanup).await;
    let user = unique("ctapp");
    create_user(&mut conn, &mut cleanup, &user, "%", "previous-pw", &db).await;
    let current = secret(&user, "current-pw");
    let previous = secret(&user, "previous-pw");
    let pending = secret(&user, "pending-pw");

    let err = set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused, "{err}");
    for pw in ["previous-pw", "current-pw", "pending-pw"] {
        assert!(!err.to_string().contains(pw), "{err}");
    }
    set_secret(
        Strategy::SingleUser,
        &current,
        &pending,
        Some(&previous),
        None,
    )
    .await
    .unwrap();
    assert!(can_login(&user, "pending-pw").await);
    assert!(!can_login(&user, "previous-pw").await);
    test_secret(&pending).await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_alternating_users_copies_accounts_grants_and_tls_then_toggles_back() {
    let mut cleanup = Cleanup::default();
    let mut conn = admin().await;
    let db = create_database(&mut conn, &mut cleanup).await;
    let (master_user, master_pw) = create_master(&mut conn, &mut cleanup).await;
    let user = unique("ctapp");
    let clone = format!("{user}_clone");
    // Two accounts: the login from 127.0.0.1 matches the more specific one; the other requires
    // TLS (which this server does not offer, so only the grants show it).
    create_user(&mut conn, &mut cleanup, &user, "127.0.0.1", "first-pw", &db).await;
    create_user(&mut conn, &mut cleanup, &user, "%", "first-pw", &db).await;
    let role = unique("ctrole");
    cleanup.role(&role);
    conn.query_drop(format!(
        "ALTER USER {any} REQUIRE SSL;
         GRANT INSERT ON `{db}`.t TO {local} WITH GRANT OPTION;
         CREATE ROLE `{role}`; GRANT SELECT ON `{db}`.t_role TO `{role}`;
         GRANT `{role}` TO {local}; SET DEFAULT ROLE `{role}` FOR {local};
         GRANT `{role}` TO {master} WITH ADMIN OPTION",
        any = account(&user, "%"),
        local = account(&user, "127.0.0.1"),
        master = account(&master_user, "%"),
    ))
    .await
    .unwrap();

    let current_json = json_for(
        &user,
        "first-pw",
        json!({"dbname": db, "masterarn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:m"}),
    );
    let current = parse_secret(&current_json).unwrap();
    let master = master_secret(&master_user, &master_pw, &current);
    let pending_json = pending_value(
        &current_json,
        Strategy::AlternatingUsers,
        &password("second-pw"),
    )
    .unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();
    assert_eq!(pending.username(), clone);

    let started = Instant::now();
    set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&master),
    )
    .await
    .unwrap();
    eprintln!(
        "alternating setSecret (creating the clone) took {:?}",
        started.elapsed()
    );

    // The clone has an account on every host of the original, with the same grants and TLS
    // requirements.
    assert_eq!(
        hosts(&mut conn, &clone).await,
        hosts(&mut conn, &user).await
    );
    for host in ["%", "127.0.0.1"] {
        assert_eq!(
            normalized_grants(&mut conn, &clone, host).await,
            normalized_grants(&mut conn, &user, host).await,
            "grants of the clone at {host}"
        );
    }
    let ssl: Vec<(String, String)> = conn
        .exec(
            "SELECT Host, CAST(ssl_type AS CHAR) FROM mysql.user WHERE User = ? ORDER BY Host",
            (&clone,),
        )
        .await
        .unwrap();
    assert_eq!(
        ssl,
        vec![
            ("%".to_owned(), "ANY".to_owned()),
            ("127.0.0.1".to_owned(), String::new())
        ]
    );

    assert!(
        can_login(&clone, "second-pw").await,
        "the clone logs in with the pending password"
    );
    assert!(
        can_read(&clone, "second-pw", &format!("`{db}`.t")).await,
        "the clone reads what the original reads"
    );
    assert!(
        can_read(&clone, "second-pw", &format!("`{db}`.t_role")).await,
        "including through the default role"
    );
    assert!(
        !can_read(&clone, "second-pw", &format!("`{db}`.t_secret")).await,
        "and nothing more"
    );
    assert!(
        can_login(&user, "first-pw").await,
        "the original keeps its password until the next rotation"
    );
    test_secret(&pending).await.unwrap();
    set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&master),
    )
    .await
    .unwrap();
    assert!(
        can_login(&clone, "second-pw").await,
        "a retried step is harmless"
    );

    // Second rotation: back to the original, whose password changes on all its accounts.
    let third_json = pending_value(
        pending_json.expose(),
        Strategy::AlternatingUsers,
        &password("third-pw"),
    )
    .unwrap();
    let third = parse_secret(third_json.expose()).unwrap();
    assert_eq!(third.username(), user);
    set_secret(
        Strategy::AlternatingUsers,
        &pending,
        &third,
        None,
        Some(&master_secret(&master_user, &master_pw, &pending)),
    )
    .await
    .unwrap();
    assert!(can_login(&user, "third-pw").await);
    assert!(!can_login(&user, "first-pw").await);
    assert!(
        can_login(&clone, "second-pw").await,
        "the clone keeps working until the next rotation"
    );
    let hashes: Vec<String> = conn
        .exec(
            "SELECT DISTINCT authentication_string FROM mysql.user WHERE User = ?",
            (&user,),
        )
        .await
        .unwrap();
    assert_eq!(
        hashes.len(),
        1,
        "both accounts of the original have the new password"
    );
    test_secret(&third).await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_hostile_user_names_and_passwords_are_quoted() {
    let mut cleanup = Cleanup::default();
    let mut conn = admin().await;
    let db = create_database(&mut conn, &mut cleanup).await;
    let (master_user, master_pw) = create_master(&mut conn, &mut cleanup).await;
    let hostile = [
        "it's \"quoted\" \\ back\\slash; DROP USER root; -- `tick`",
        "ünïcødé 🔑 % _ \\' \\\\ '' \\0 \\n",
        "'; SET PASSWORD FOR root@localhost = PASSWORD('x'); --",
        "/* comment */ # hash \\",
    ];

    // The quoting round-trips through the server's parser in both SQL modes.
    for mode in ["", "NO_BACKSLASH_ESCAPES"] {
        conn.query_drop(format!("SET SESSION sql_mode = '{mode}'"))
            .await
            .unwrap();
        for s in hostile {
            let literal = mysql_quote_string(s, !mode.is_empty());
            let back: Option<String> = conn.query_first(format!("SELECT {literal}")).await.unwrap();
            assert_eq!(back.as_deref(), Some(s), "mode {mode:?}: {literal}");
        }
    }
    conn.query_drop("SET SESSION sql_mode = DEFAULT")
        .await
        .unwrap();

    // Single user: a hostile name, a series of hostile passwords.
    let user = format!("{}'\"\\;%`ü", unique("ct"));
    create_user(&mut conn, &mut cleanup, &user, "%", "plain-start", &db).await;
    let mut current_json = json_for(&user, "plain-start", json!({}));
    for pw in hostile {
        let pending_json =
            pending_value(&current_json, Strategy::SingleUser, &password(pw)).unwrap();
        let current = parse_secret(&current_json).unwrap();
        let pending = parse_secret(pending_json.expose()).unwrap();
        set_secret(Strategy::SingleUser, &current, &pending, None, None)
            .await
            .unwrap();
        assert!(can_login(&user, pw).await, "logs in with {pw:?}");
        test_secret(&pending).await.unwrap();
        current_json = pending_json.expose().to_vec();
    }

    // Alternating users: a hostile original name, so a hostile clone name, and hostile passwords.
    let user = format!("{}`'\"\\;%ü", unique("ca"));
    create_user(&mut conn, &mut cleanup, &user, "%", hostile[0], &db).await;
    let current_json = json_for(&user, hostile[0], json!({"masterarn": "arn:m"}));
    let current = parse_secret(&current_json).unwrap();
    let master = master_secret(&master_user, &master_pw, &current);
    let pending_json = pending_value(
        &current_json,
        Strategy::AlternatingUsers,
        &password(hostile[2]),
    )
    .unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();
    set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&master),
    )
    .await
    .unwrap();
    let clone = format!("{user}_clone");
    assert!(can_login(&clone, hostile[2]).await);
    assert!(can_read(&clone, hostile[2], &format!("`{db}`.t")).await);
    let back_json = pending_value(
        pending_json.expose(),
        Strategy::AlternatingUsers,
        &password(hostile[3]),
    )
    .unwrap();
    let back = parse_secret(back_json.expose()).unwrap();
    set_secret(
        Strategy::AlternatingUsers,
        &pending,
        &back,
        None,
        Some(&master),
    )
    .await
    .unwrap();
    assert!(can_login(&user, hostile[3]).await);

    // Nothing was injected: root still logs in as before, and no stray users appeared.
    drop(admin().await);
    let stray: Vec<String> = conn
        .query("SELECT User FROM mysql.user WHERE User = 'x' OR User LIKE 'DROP%'")
        .await
        .unwrap();
    assert!(stray.is_empty());
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_refuses_secrets_that_do_not_describe_one_rotation() {
    let mut cleanup = Cleanup::default();
    let mut conn = admin().await;
    let db = create_database(&mut conn, &mut cleanup).await;
    let (master_user, master_pw) = create_master(&mut conn, &mut cleanup).await;
    let user = unique("ctapp");
    create_user(&mut conn, &mut cleanup, &user, "%", "pw-1", &db).await;
    let current = parse_secret(&json_for(&user, "pw-1", json!({"masterarn": "arn:m"}))).unwrap();
    let master = master_secret(&master_user, &master_pw, &current);
    let clone = format!("{user}_clone");
    let pending = secret(&clone, "pw-2");

    let err = set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &secret(&user, "pw-2"),
        None,
        Some(&master),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");
    let stale = secret(&user, "stale-pw");
    let err = set_secret(
        Strategy::AlternatingUsers,
        &stale,
        &pending,
        None,
        Some(&master),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused, "{err}");
    let bad_master = master_secret(&master_user, "wrong-master-pw", &current);
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&bad_master),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused, "{err}");
    assert!(!err.to_string().contains("wrong-master-pw"), "{err}");

    // A master without the privilege to create users: what failed and what to check.
    let weak = unique("ctweak");
    create_user(&mut conn, &mut cleanup, &weak, "%", "weak-pw", &db).await;
    conn.query_drop(format!(
        "GRANT SELECT ON mysql.* TO {}",
        account(&weak, "%")
    ))
    .await
    .unwrap();
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&master_secret(&weak, "weak-pw", &current)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Statement, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("creating '{clone}'@'%'")) && msg.contains("CREATE USER"),
        "{msg}"
    );
    assert!(!msg.contains("pw-2"), "{msg}");
    assert!(
        hosts(&mut conn, &clone).await.is_empty(),
        "nothing was created"
    );
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn mysql_unreachable_servers_fail_with_a_clear_error_within_the_timeout() {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret_at = |port: u16| {
        parse_secret(
            &serde_json::to_vec(&json!({"engine": "mysql", "host": "127.0.0.1", "port": port, "username": "app", "password": "pw"})).unwrap(),
        )
        .unwrap()
    };
    let started = Instant::now();
    let err = test_secret(&secret_at(closed)).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Connect, "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // "ssl": true against a server that offers no TLS (this MariaDB): refused, and said so.
    let (host, port) = server();
    let required = parse_secret(
        &serde_json::to_vec(&json!({"engine": "mariadb", "host": host, "port": port, "username": "root", "password": "", "ssl": true})).unwrap(),
    )
    .unwrap();
    let mut conn = admin().await;
    let have_ssl: Option<String> = conn.query_first("SELECT @@have_ssl").await.unwrap();
    conn.disconnect().await.unwrap();
    if have_ssl.as_deref() != Some("YES") {
        let err = test_secret(&required).await.unwrap_err();
        assert_eq!(err.kind(), DbErrorKind::Connect, "{err}");
        assert!(err.to_string().contains("does not offer TLS"), "{err}");
    }

    // Accepts, never answers; no 'ssl' key, so TLS is tried first, and the timeout is not doubled.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = secret_at(listener.local_addr().unwrap().port());
    let started = Instant::now();
    let err = set_secret(Strategy::SingleUser, &silent, &silent, None, None)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.kind(), DbErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("no answer within 5 s"), "{err}");
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );
    drop(listener);
}
