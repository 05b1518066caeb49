#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What needs no database: reading secrets, the pending value, names, quoting, SHOW GRANTS
//! rewriting. The rotations themselves are tested against real servers in
//! `tests/db_postgres.rs` and `tests/db_mysql.rs`.

use coffer_crypto::SecretBytes;
use serde_json::{Value, json};

use super::mysql::{quote_string, rewrite_grant};
use super::*;

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn pw(s: &str) -> SecretBytes {
    SecretBytes::from(s.to_owned())
}

fn base() -> Value {
    json!({"engine": "postgres", "host": "db.example", "port": 6543, "username": "app", "password": "canary-pw-1"})
}

#[test]
fn reads_aws_shaped_secrets() {
    let s = parse_secret(&bytes(&base())).unwrap();
    assert_eq!(s.engine(), Engine::Postgres);
    assert_eq!(s.engine_name(), "postgres");
    assert_eq!(
        (s.host(), s.port(), s.username()),
        ("db.example", 6543, "app")
    );
    assert_eq!(s.password().expose(), b"canary-pw-1");
    assert_eq!(s.dbname(), None);
    assert_eq!(s.master_arn(), None);
    assert_eq!(s.tls(), TlsMode::Preferred);

    let s = parse_secret(&bytes(&json!({
        "engine": "mariadb", "host": "h", "port": "3307", "username": "u", "password": "",
        "dbname": "app", "masterarn": "arn:aws:secretsmanager:us-east-1:1:secret:m", "ssl": "TRUE", "extra": [1]
    })))
    .unwrap();
    assert_eq!(
        (s.engine(), s.port(), s.dbname()),
        (Engine::MySql, 3307, Some("app"))
    );
    assert_eq!(
        s.master_arn(),
        Some("arn:aws:secretsmanager:us-east-1:1:secret:m")
    );
    assert_eq!(s.tls(), TlsMode::Required);
    assert!(
        s.password().is_empty(),
        "an empty password is a password (root on a test server)"
    );

    let default_port = |engine: &str| {
        parse_secret(&bytes(
            &json!({"engine": engine, "host": "h", "username": "u", "password": "p"}),
        ))
        .unwrap()
        .port()
    };
    assert_eq!(default_port("postgres"), 5432);
    assert_eq!(default_port("aurora-postgresql"), 5432);
    for engine in ["mysql", "mariadb", "aurora-mysql", "aurora"] {
        assert_eq!(default_port(engine), 3306, "{engine}");
    }

    let tls = |ssl: Value| {
        let mut v = base();
        v["ssl"] = ssl;
        parse_secret(&bytes(&v)).unwrap().tls()
    };
    assert_eq!(tls(json!(true)), TlsMode::Required);
    assert_eq!(tls(json!(false)), TlsMode::Disabled);
    assert_eq!(tls(json!("False")), TlsMode::Disabled);
    assert_eq!(tls(json!("maybe")), TlsMode::Preferred);
    assert_eq!(tls(json!(1)), TlsMode::Preferred);

    let mut v = base();
    v["dbname"] = Value::Null;
    assert_eq!(parse_secret(&bytes(&v)).unwrap().dbname(), None);
    v["dbname"] = json!("");
    assert_eq!(parse_secret(&bytes(&v)).unwrap().dbname(), None);
}

#[test]
fn refuses_unusable_secrets_naming_the_key_and_never_the_password() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"host": "h", "username": "u", "password": "canary-pw-1"}),
            "'engine' is missing",
        ),
        (
            json!({"engine": "oracle", "host": "h", "username": "u", "password": "canary-pw-1"}),
            "engine 'oracle'",
        ),
        (
            json!({"engine": "postgres", "username": "u", "password": "canary-pw-1"}),
            "'host' is missing",
        ),
        (
            json!({"engine": "postgres", "host": "", "username": "u", "password": "canary-pw-1"}),
            "'host' is empty",
        ),
        (
            json!({"engine": "postgres", "host": "h", "password": "canary-pw-1"}),
            "'username' is missing",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": 7, "password": "canary-pw-1"}),
            "'username' is not a string",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": "u"}),
            "'password' is missing",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": "u", "password": ["canary-pw-1"]}),
            "'password' is not a string",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": "u", "password": "canary\u{0}pw-1"}),
            "NUL",
        ),
        (
            json!({"engine": "postgres", "host": "h", "username": "u\u{0}", "password": "canary-pw-1"}),
            "NUL",
        ),
        (
            json!({"engine": "postgres", "host": "h", "port": 70000, "username": "u", "password": "canary-pw-1"}),
            "'port'",
        ),
        (
            json!({"engine": "postgres", "host": "h", "port": "x", "username": "u", "password": "canary-pw-1"}),
            "'port'",
        ),
        (
            json!({"engine": "postgres", "host": "h", "port": 0, "username": "u", "password": "canary-pw-1"}),
            "'port'",
        ),
        (
            json!({"engine": "postgres", "host": "h", "dbname": 1, "username": "u", "password": "canary-pw-1"}),
            "'dbname'",
        ),
        (json!(["canary-pw-1"]), "not an object"),
    ];
    for (value, expected) in cases {
        let err = parse_secret(&bytes(&value)).unwrap_err();
        assert_eq!(err.kind(), DbErrorKind::InvalidSecret);
        let msg = err.to_string();
        assert!(msg.contains(expected), "{value}: {msg}");
        assert!(!msg.contains("canary"), "{msg}");
    }
    let err = parse_secret(b"{\"password\": \"canary-pw-1\", oops").unwrap_err();
    assert!(
        err.to_string().contains("not JSON") && !err.to_string().contains("canary"),
        "{err}"
    );
}

#[test]
fn debug_never_shows_the_password() {
    let s = parse_secret(&bytes(&base())).unwrap();
    let printed = format!("{s:?}");
    assert!(
        printed.contains("app") && printed.contains("db.example"),
        "{printed}"
    );
    assert!(!printed.contains("canary"), "{printed}");
}

#[test]
fn master_secrets_borrow_what_they_lack_from_the_user_secret() {
    let mut v = base();
    v["dbname"] = json!("appdb");
    v["ssl"] = json!(false);
    let user = parse_secret(&bytes(&v)).unwrap();
    let m = parse_master_secret(
        &bytes(&json!({"username": "admin", "password": "m"})),
        &user,
    )
    .unwrap();
    assert_eq!(
        (m.engine(), m.host(), m.port(), m.dbname()),
        (Engine::Postgres, "db.example", 6543, Some("appdb"))
    );
    assert_eq!(m.tls(), TlsMode::Disabled);
    assert_eq!(m.username(), "admin");

    let m = parse_master_secret(
        &bytes(&json!({"engine": "aurora-postgresql", "host": "other", "username": "admin", "password": "m", "dbname": "x", "ssl": true})),
        &user,
    )
    .unwrap();
    assert_eq!(
        (m.host(), m.port(), m.dbname(), m.tls()),
        ("other", 5432, Some("appdb"), TlsMode::Required)
    );

    let err = parse_master_secret(
        &bytes(&json!({"engine": "mysql", "username": "a", "password": "m"})),
        &user,
    )
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::InvalidSecret);
    let err = parse_master_secret(&bytes(&json!({"username": "a"})), &user).unwrap_err();
    assert!(err.to_string().contains("'password' is missing"), "{err}");
}

#[test]
fn alternate_names_toggle_within_the_engine_limits() {
    assert_eq!(
        alternate_username(Engine::Postgres, "app").unwrap(),
        "app_clone"
    );
    assert_eq!(
        alternate_username(Engine::Postgres, "app_clone").unwrap(),
        "app"
    );
    assert_eq!(
        alternate_username(Engine::MySql, "_clone").unwrap(),
        "_clone_clone"
    );
    // PostgreSQL: 63 bytes (it would truncate silently); 57 bytes + "_clone" fit, 58 do not.
    assert!(alternate_username(Engine::Postgres, &"a".repeat(57)).is_ok());
    let err = alternate_username(Engine::Postgres, &"a".repeat(58)).unwrap_err();
    assert!(err.to_string().contains("63 bytes"), "{err}");
    assert!(
        alternate_username(Engine::Postgres, &"é".repeat(29)).is_err(),
        "bytes, not characters"
    );
    // MySQL/MariaDB: 80 characters.
    assert!(alternate_username(Engine::MySql, &"é".repeat(74)).is_ok());
    assert!(alternate_username(Engine::MySql, &"é".repeat(75)).is_err());
}

#[test]
fn pending_values_keep_every_other_key() {
    let current = json!({
        "engine": "mysql", "host": "h", "port": "3306", "username": "app", "password": "canary-pw-1",
        "masterarn": "arn:m", "dbClusterIdentifier": "c1", "nested": {"k": [1, null, "s"]}, "flag": true
    });
    let single =
        pending_value(&bytes(&current), Strategy::SingleUser, &pw("n'e\"w\\pw ü")).unwrap();
    let single: Value = serde_json::from_slice(single.expose()).unwrap();
    let mut expected = current.clone();
    expected["password"] = json!("n'e\"w\\pw ü");
    assert_eq!(single, expected);

    let alt = pending_value(&bytes(&current), Strategy::AlternatingUsers, &pw("second")).unwrap();
    let alt_value: Value = serde_json::from_slice(alt.expose()).unwrap();
    expected["password"] = json!("second");
    expected["username"] = json!("app_clone");
    assert_eq!(alt_value, expected);
    let back = pending_value(alt.expose(), Strategy::AlternatingUsers, &pw("third")).unwrap();
    let back: Value = serde_json::from_slice(back.expose()).unwrap();
    assert_eq!(back["username"], "app");
    assert_eq!(back["password"], "third");
    assert!(
        !String::from_utf8_lossy(alt.expose()).contains("canary"),
        "the old password is gone"
    );

    for bad in [pw("a\u{0}b"), SecretBytes::new(vec![0xff, 0xfe])] {
        let err = pending_value(&bytes(&current), Strategy::SingleUser, &bad).unwrap_err();
        assert_eq!(err.kind(), DbErrorKind::InvalidSecret);
    }
    let err = pending_value(b"not json", Strategy::SingleUser, &pw("x")).unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::InvalidSecret);
}

#[test]
fn mysql_quoting_doubles_quotes_and_backslashes_as_the_mode_requires() {
    assert_eq!(quote_string("plain", false), "'plain'");
    assert_eq!(quote_string("it's", false), "'it''s'");
    assert_eq!(quote_string("a\\b", false), "'a\\\\b'");
    assert_eq!(quote_string("a\\b", true), "'a\\b'");
    assert_eq!(quote_string("\\'", false), "'\\\\'''");
    assert_eq!(quote_string("\\'", true), "'\\'''");
    assert_eq!(quote_string("\"%;`ü🔑", false), "'\"%;`ü🔑'");
    assert_eq!(quote_string("a\0b", false), "'a\\0b'");
}

#[test]
fn show_grants_lines_are_rewritten_for_the_clone() {
    let to = "'app_clone'@'%'";
    let cases = [
        // MariaDB: the password hash and TLS clause that follow the grantee are dropped.
        (
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*667F407DE7C6AD07358FA38DAED7828A72014B4E' REQUIRE SSL",
            Some("GRANT USAGE ON *.* TO 'app_clone'@'%'"),
        ),
        (
            "GRANT SELECT ON `db`.`t` TO `app`@`%`",
            Some("GRANT SELECT ON `db`.`t` TO 'app_clone'@'%'"),
        ),
        (
            "GRANT INSERT ON `db`.* TO `app`@`%` WITH GRANT OPTION",
            Some("GRANT INSERT ON `db`.* TO 'app_clone'@'%' WITH GRANT OPTION"),
        ),
        (
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION MAX_QUERIES_PER_HOUR 5",
            Some("GRANT USAGE ON *.* TO 'app_clone'@'%' WITH GRANT OPTION"),
        ),
        (
            "GRANT `role` TO `app`@`%`",
            Some("GRANT `role` TO 'app_clone'@'%'"),
        ),
        (
            "GRANT `role` TO `app`@`%` WITH ADMIN OPTION",
            Some("GRANT `role` TO 'app_clone'@'%' WITH ADMIN OPTION"),
        ),
        (
            "SET DEFAULT ROLE `role` FOR `app`@`%`",
            Some("SET DEFAULT ROLE `role` FOR 'app_clone'@'%'"),
        ),
        // MySQL 5.7 quoting, MySQL 8 partial revokes.
        (
            "GRANT SELECT ON `db`.* TO 'app'@'%'",
            Some("GRANT SELECT ON `db`.* TO 'app_clone'@'%'"),
        ),
        (
            "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
            Some("REVOKE INSERT ON `mysql`.* FROM 'app_clone'@'%'"),
        ),
        // A database whose name holds the grantee text: the last occurrence is the grantee.
        (
            "GRANT SELECT ON `x TO ``app``@``%`` y`.* TO `app`@`%`",
            Some("GRANT SELECT ON `x TO ``app``@``%`` y`.* TO 'app_clone'@'%'"),
        ),
        // A keyword inside a quoted name is not a clause.
        (
            "GRANT USAGE ON *.* TO `app`@`%` REQUIRE SUBJECT '/CN= WITH GRANT OPTION'",
            Some("GRANT USAGE ON *.* TO 'app_clone'@'%'"),
        ),
        ("GRANT SELECT ON `db`.* TO `other`@`%`", None),
        ("GRANT SELECT ON `db`.* TO `app`@`%x`", None),
        ("SOMETHING ELSE TO `app`@`%`", None),
    ];
    for (line, expected) in cases {
        assert_eq!(
            rewrite_grant(line, "app", "%", to).as_deref(),
            expected,
            "{line}"
        );
    }
    // Names holding quotes and backquotes, as MariaDB prints them.
    let user = "a`b'c\\d";
    let line = "GRANT SELECT ON `db`.* TO `a``b'c\\d`@`10.0.%`";
    assert_eq!(
        rewrite_grant(line, user, "10.0.%", "X").as_deref(),
        Some("GRANT SELECT ON `db`.* TO X")
    );
    let line = "GRANT PROXY ON ''@'%' TO 'a`b''c\\d'@'10.0.%' WITH GRANT OPTION";
    assert_eq!(
        rewrite_grant(line, user, "10.0.%", "X").as_deref(),
        Some("GRANT PROXY ON ''@'%' TO X WITH GRANT OPTION")
    );
}

#[test]
fn rotation_futures_are_send() {
    // The engine runs rotations on a multi-threaded runtime.
    fn assert_send<T: Send>(_: &T) {}
    let s = parse_secret(&bytes(&base())).unwrap();
    let fut = set_secret(Strategy::AlternatingUsers, &s, &s, Some(&s), Some(&s));
    assert_send(&fut);
    let fut = test_secret(&s);
    assert_send(&fut);
}

#[test]
fn engines_by_name() {
    assert_eq!(Engine::from_name("postgres"), Some(Engine::Postgres));
    assert_eq!(
        Engine::from_name("aurora-postgresql"),
        Some(Engine::Postgres)
    );
    assert_eq!(Engine::from_name("mariadb"), Some(Engine::MySql));
    assert_eq!(Engine::from_name("sqlserver"), None);
    assert_eq!(Engine::MySql.display_name(), "MySQL/MariaDB");
}
