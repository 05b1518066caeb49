#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The PostgreSQL rotators against a real server: a throw-away cluster per test (initdb with
//! scram-sha-256 authentication in a temporary directory, on a free port), because the
//! machine's own server trusts every local login and so cannot tell passwords apart.
//!
//! Needs the PostgreSQL server binaries (`initdb`, `pg_ctl`): `apt-get install postgresql`, or
//! `scripts/setup-system`; `COFFER_TEST_PG_BINDIR` names their directory if they are elsewhere.
//! As root, the cluster runs as the `postgres` user (initdb refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use coffer_crypto::SecretBytes;
use coffer_rotation::db::{
    DbErrorKind, DbSecret, Strategy, parse_master_secret, parse_secret, pending_value, set_secret,
    test_secret,
};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

const SUPERUSER_PASSWORD: &str = "super'pw\\\"1";

/// A PostgreSQL cluster of its own, stopped and deleted on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    run_as: Option<String>,
    port: u16,
}

fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The directory holding initdb and pg_ctl.
fn pg_bindir() -> PathBuf {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Ok(dir) = std::env::var("COFFER_TEST_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        assert!(
            has_tools(&dir),
            "COFFER_TEST_PG_BINDIR={} holds no initdb and pg_ctl",
            dir.display()
        );
        return dir;
    }
    let mut candidates = Vec::new();
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output()
        && o.status.success()
    {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    }
    // Debian/Ubuntu keep the server binaries per major version; newest first.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versions.into_iter().map(|(_, p)| p));
    candidates.extend(["/usr/local/pgsql/bin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    candidates.into_iter().find(|d| has_tools(d)).unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in pg_config --bindir, /usr/lib/postgresql/*/bin, /usr/local/pgsql/bin, /usr/local/bin or /usr/bin. \
             Install them (Debian/Ubuntu: apt-get install postgresql, or run scripts/setup-system) or set COFFER_TEST_PG_BINDIR"
        )
    })
}

fn id(args: &[&str]) -> Option<u32> {
    let o = Command::new("id").args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// With `tls`, the server also offers TLS with a self-signed certificate for 127.0.0.1.
    fn start_with(tls: bool) -> Self {
        let bindir = pg_bindir();
        let run_as = if id(&["-u"]) == Some(0) {
            let (Some(uid), Some(gid)) = (id(&["-u", "postgres"]), id(&["-g", "postgres"])) else {
                panic!(
                    "running as root, and initdb refuses root: create a 'postgres' user (apt-get install postgresql does) or run the tests as an ordinary user"
                );
            };
            Some((uid, gid))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("coffer-pg-")
            .tempdir()
            .unwrap();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, SUPERUSER_PASSWORD).unwrap();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let mut cluster = Self {
            dir,
            bindir,
            run_as: run_as.map(|_| "postgres".to_owned()),
            port: 0,
        };
        let data = cluster.data();
        let o = cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--no-sync",
                "--no-instructions",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        assert!(o.status.success(), "initdb failed:\n{}", output_text(&o));
        let mut tls_options = String::new();
        if tls {
            let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
            let (crt, key) = (
                cluster.dir.path().join("server.crt"),
                cluster.dir.path().join("server.key"),
            );
            std::fs::write(&crt, certified.cert.pem()).unwrap();
            std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(&crt, Some(uid), Some(gid)).unwrap();
                std::os::unix::fs::chown(&key, Some(uid), Some(gid)).unwrap();
            }
            tls_options = format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                crt.display(),
                key.display()
            );
        }
        // A free port can be taken by another test between the probe and the start: retry.
        for _ in 0..5 {
            cluster.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=40{tls_options}",
                cluster.port,
                cluster.dir.path().display()
            );
            let log = cluster.dir.path().join("log");
            let o = cluster.run(
                "pg_ctl",
                &[
                    "-D",
                    &data,
                    "-l",
                    &log.display().to_string(),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    &options,
                    "start",
                ],
            );
            if o.status.success() {
                return cluster;
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            if !log_text.contains("could not bind") && !log_text.contains("could not create") {
                panic!("pg_ctl start failed:\n{}\n{log_text}", output_text(&o));
            }
        }
        panic!("pg_ctl start failed five times on a busy port");
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let bin = self.bindir.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C");
        cmd.output()
            .unwrap_or_else(|e| panic!("could not run {}: {e}", bin.display()))
    }

    /// A secret value for this cluster.
    fn json(&self, user: &str, password: &str, extra: Value) -> Vec<u8> {
        let mut v = json!({
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": self.port,
            "username": user,
            "password": password,
            "dbname": "postgres",
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn secret(&self, user: &str, password: &str, extra: Value) -> DbSecret {
        parse_secret(&self.json(user, password, extra)).unwrap()
    }

    /// The superuser, as an RDS-style master secret holding only credentials.
    fn master_for(&self, user: &DbSecret) -> DbSecret {
        let json =
            serde_json::to_vec(&json!({"username": "postgres", "password": SUPERUSER_PASSWORD}))
                .unwrap();
        parse_master_secret(&json, user).unwrap()
    }

    async fn connect(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    async fn admin(&self) -> tokio_postgres::Client {
        self.connect("postgres", SUPERUSER_PASSWORD)
            .await
            .expect("superuser login")
    }

    async fn can_login(&self, user: &str, password: &str) -> bool {
        self.connect(user, password).await.is_ok()
    }

    async fn can_read(&self, user: &str, password: &str, table: &str) -> bool {
        let client = self.connect(user, password).await.expect("login");
        client
            .simple_query(&format!("SELECT count(*) FROM {table}"))
            .await
            .is_ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data();
            let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn password(s: &str) -> SecretBytes {
    SecretBytes::from(s.to_owned())
}

/// Creates a login role that can read table `t` but not table `t_secret`.
async fn create_app_user(cluster: &Cluster, user: &str, pw: &str) {
    let admin = cluster.admin().await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS t (x int); CREATE TABLE IF NOT EXISTS t_secret (x int);
             CREATE ROLE {u} LOGIN PASSWORD {p}; GRANT SELECT ON t TO {u};",
            u = ident(user),
            p = lit(pw)
        ))
        .await
        .unwrap();
}

async fn stored_verifier(cluster: &Cluster, user: &str) -> String {
    let admin = cluster.admin().await;
    let row = admin
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn pg_single_user_sets_the_new_password_and_retires_the_old() {
    let cluster = Cluster::start();
    create_app_user(&cluster, "app", "old-pw").await;
    let current_json = cluster.json(
        "app",
        "old-pw",
        json!({"note": "kept", "nested": {"a": [1, 2]}}),
    );
    let pending_json =
        pending_value(&current_json, Strategy::SingleUser, &password("new-pw")).unwrap();
    let pending_map: Value = serde_json::from_slice(pending_json.expose()).unwrap();
    assert_eq!(pending_map["username"], "app");
    assert_eq!(pending_map["password"], "new-pw");
    assert_eq!(pending_map["note"], "kept");
    assert_eq!(pending_map["nested"], json!({"a": [1, 2]}));
    assert_eq!(pending_map["port"], cluster.port);

    let current = parse_secret(&current_json).unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();
    let started = Instant::now();
    set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap();
    eprintln!("single-user setSecret took {:?}", started.elapsed());

    assert!(
        cluster.can_login("app", "new-pw").await,
        "the pending password logs in"
    );
    assert!(
        !cluster.can_login("app", "old-pw").await,
        "the old password no longer logs in"
    );
    assert!(cluster.can_read("app", "new-pw", "t").await);
    // The server got a SCRAM verifier, not the plaintext.
    let verifier = stored_verifier(&cluster, "app").await;
    assert!(verifier.starts_with("SCRAM-SHA-256$4096:"), "{verifier}");
    assert!(!verifier.contains("new-pw"));

    test_secret(&pending).await.unwrap();
    // A retried step is harmless: the pending password already logs in.
    set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap();
    assert!(cluster.can_login("app", "new-pw").await);
    assert_eq!(
        stored_verifier(&cluster, "app").await,
        verifier,
        "the retry changed nothing"
    );

    // testSecret with credentials that do not work names the user and server, never the password.
    let err = test_secret(&current).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused);
    let msg = err.to_string();
    assert!(
        msg.contains("'app'") && msg.contains(&format!("127.0.0.1:{}", cluster.port)),
        "{msg}"
    );
    assert!(!msg.contains("old-pw") && !msg.contains("new-pw"), "{msg}");
}

#[tokio::test]
async fn pg_single_user_falls_back_to_the_previous_password() {
    let cluster = Cluster::start();
    // The database still has the previous password: the current version never reached it.
    create_app_user(&cluster, "app", "previous-pw").await;
    let current = cluster.secret("app", "current-pw", json!({}));
    let previous = cluster.secret("app", "previous-pw", json!({}));
    let pending = cluster.secret("app", "pending-pw", json!({}));

    let err = set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::LoginRefused);
    let msg = err.to_string();
    assert!(msg.contains("'app'") && msg.contains("by hand"), "{msg}");
    for pw in ["previous-pw", "current-pw", "pending-pw"] {
        assert!(!msg.contains(pw), "{msg}");
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
    assert!(cluster.can_login("app", "pending-pw").await);
    assert!(!cluster.can_login("app", "previous-pw").await);
    test_secret(&pending).await.unwrap();
}

#[tokio::test]
async fn pg_alternating_users_creates_the_clone_then_toggles_back() {
    let cluster = Cluster::start();
    create_app_user(&cluster, "app", "first-pw").await;
    let current_json = cluster.json(
        "app",
        "first-pw",
        json!({"masterarn": "arn:aws:secretsmanager:us-east-1:111122223333:secret:master-AbCdEf"}),
    );
    let current = parse_secret(&current_json).unwrap();
    let master = cluster.master_for(&current);
    assert_eq!(
        master.port(),
        cluster.port,
        "the master secret's missing host and port come from the user secret"
    );

    // First rotation: app → app_clone, created with app's privileges.
    let pending_json = pending_value(
        &current_json,
        Strategy::AlternatingUsers,
        &password("second-pw"),
    )
    .unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();
    assert_eq!(pending.username(), "app_clone");
    assert_eq!(
        pending.master_arn(),
        current.master_arn(),
        "masterarn is kept"
    );
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
        cluster.can_login("app_clone", "second-pw").await,
        "the clone logs in with the pending password"
    );
    assert!(
        cluster.can_read("app_clone", "second-pw", "t").await,
        "the clone reads what the original reads"
    );
    assert!(
        !cluster.can_read("app_clone", "second-pw", "t_secret").await,
        "and nothing more"
    );
    assert!(
        cluster.can_login("app", "first-pw").await,
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
        cluster.can_login("app_clone", "second-pw").await,
        "a retried step is harmless"
    );

    // Second rotation: app_clone → app, whose password changes; the clone keeps working.
    let third_json = pending_value(
        pending_json.expose(),
        Strategy::AlternatingUsers,
        &password("third-pw"),
    )
    .unwrap();
    let third = parse_secret(third_json.expose()).unwrap();
    assert_eq!(third.username(), "app");
    let master = cluster.master_for(&pending);
    set_secret(
        Strategy::AlternatingUsers,
        &pending,
        &third,
        None,
        Some(&master),
    )
    .await
    .unwrap();
    assert!(cluster.can_login("app", "third-pw").await);
    assert!(!cluster.can_login("app", "first-pw").await);
    assert!(cluster.can_login("app_clone", "second-pw").await);
    assert!(cluster.can_read("app", "third-pw", "t").await);
    test_secret(&third).await.unwrap();

    // Third rotation: back to the existing clone, whose password changes.
    let fourth_json = pending_value(
        third_json.expose(),
        Strategy::AlternatingUsers,
        &password("fourth-pw"),
    )
    .unwrap();
    let fourth = parse_secret(fourth_json.expose()).unwrap();
    set_secret(
        Strategy::AlternatingUsers,
        &third,
        &fourth,
        None,
        Some(&cluster.master_for(&third)),
    )
    .await
    .unwrap();
    assert!(cluster.can_login("app_clone", "fourth-pw").await);
    assert!(!cluster.can_login("app_clone", "second-pw").await);
    assert!(cluster.can_login("app", "third-pw").await);
    let admin = cluster.admin().await;
    let roles: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'app%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 2);
}

#[tokio::test]
async fn pg_hostile_user_names_and_passwords_are_quoted() {
    let cluster = Cluster::start();
    let hostile_passwords = [
        "it's \"quoted\" \\ back\\slash; DROP ROLE postgres; --",
        "ünïcødé 🔑 $$ $1 % _ \\' \\\\ ''",
        "'; ALTER ROLE postgres PASSWORD 'x'; --",
    ];
    // Single user, a hostile name and a series of hostile passwords.
    let user = "we\"ird 'name\\; %ü";
    create_app_user(&cluster, user, "plain-start").await;
    let mut current_json = cluster.json(user, "plain-start", json!({}));
    for pw in hostile_passwords {
        let pending_json =
            pending_value(&current_json, Strategy::SingleUser, &password(pw)).unwrap();
        let current = parse_secret(&current_json).unwrap();
        let pending = parse_secret(pending_json.expose()).unwrap();
        set_secret(Strategy::SingleUser, &current, &pending, None, None)
            .await
            .unwrap();
        assert!(cluster.can_login(user, pw).await, "logs in with {pw:?}");
        test_secret(&pending).await.unwrap();
        current_json = pending_json.expose().to_vec();
    }
    assert!(
        cluster.can_login("postgres", SUPERUSER_PASSWORD).await,
        "nothing was injected"
    );

    // Alternating users with a hostile name: the clone's name is quoted too.
    let user = "alt\"'\\;% ü";
    create_app_user(&cluster, user, hostile_passwords[0]).await;
    let current_json = cluster.json(
        user,
        hostile_passwords[0],
        json!({"masterarn": "arn:master"}),
    );
    let current = parse_secret(&current_json).unwrap();
    let pending_json = pending_value(
        &current_json,
        Strategy::AlternatingUsers,
        &password(hostile_passwords[1]),
    )
    .unwrap();
    let pending = parse_secret(pending_json.expose()).unwrap();
    assert_eq!(pending.username(), format!("{user}_clone"));
    set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&cluster.master_for(&current)),
    )
    .await
    .unwrap();
    assert!(
        cluster
            .can_login(&format!("{user}_clone"), hostile_passwords[1])
            .await
    );
    assert!(
        cluster
            .can_read(&format!("{user}_clone"), hostile_passwords[1], "t")
            .await
    );
    assert!(cluster.can_login("postgres", SUPERUSER_PASSWORD).await);
}

#[tokio::test]
async fn pg_refuses_secrets_that_do_not_describe_one_rotation() {
    let cluster = Cluster::start();
    create_app_user(&cluster, "app", "pw-1").await;
    create_app_user(&cluster, "other", "pw-o").await;
    let current = cluster.secret("app", "pw-1", json!({"masterarn": "arn:master"}));
    let master = cluster.master_for(&current);

    // Single user: another user, another server.
    let err = set_secret(
        Strategy::SingleUser,
        &current,
        &cluster.secret("other", "x", json!({})),
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");
    let elsewhere = parse_secret(
        &serde_json::to_vec(&json!({"engine": "postgres", "host": "localhost", "port": cluster.port, "username": "app", "password": "x"})).unwrap(),
    )
    .unwrap();
    let err = set_secret(Strategy::SingleUser, &current, &elsewhere, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");

    // Alternating: the pending user must be the clone; the master must administer this server;
    // the current credentials must work; a master is required.
    let not_clone = cluster.secret("other", "x", json!({}));
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &not_clone,
        None,
        Some(&master),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("'app_clone'"), "{err}");
    let pending = cluster.secret("app_clone", "pw-2", json!({}));
    let err = set_secret(Strategy::AlternatingUsers, &current, &pending, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::InvalidSecret, "{err}");
    let other_master = parse_master_secret(
        &serde_json::to_vec(&json!({"username": "postgres", "password": SUPERUSER_PASSWORD, "host": "127.0.0.1", "port": 1})).unwrap(),
        &current,
    )
    .unwrap();
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&other_master),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Refused, "{err}");
    let stale = cluster.secret("app", "stale-pw", json!({}));
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
    assert!(!err.to_string().contains("stale-pw"), "{err}");
    let bad_master = parse_master_secret(
        &serde_json::to_vec(&json!({"username": "postgres", "password": "wrong-master-pw"}))
            .unwrap(),
        &current,
    )
    .unwrap();
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
    assert!(
        err.to_string().contains("master credentials")
            && !err.to_string().contains("wrong-master-pw"),
        "{err}"
    );
    assert!(
        !cluster.can_login("app_clone", "pw-2").await,
        "nothing was created"
    );

    // A master that may not create roles: a statement error naming what to check.
    let admin = cluster.admin().await;
    admin
        .batch_execute("CREATE ROLE weak LOGIN PASSWORD 'weak-pw'")
        .await
        .unwrap();
    let weak = parse_master_secret(
        &serde_json::to_vec(&json!({"username": "weak", "password": "weak-pw"})).unwrap(),
        &current,
    )
    .unwrap();
    let err = set_secret(
        Strategy::AlternatingUsers,
        &current,
        &pending,
        None,
        Some(&weak),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Statement, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("creating role 'app_clone'")
            && msg.contains("CREATEROLE")
            && !msg.contains("pw-2"),
        "{msg}"
    );
    assert!(!cluster.can_login("app_clone", "pw-2").await);
}

#[tokio::test]
async fn pg_unreachable_servers_fail_with_a_clear_error_within_the_timeout() {
    // Nothing listens: refused at once.
    let port = free_port();
    let secret = parse_secret(
        &serde_json::to_vec(&json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": "app", "password": "pw"})).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let err = test_secret(&secret).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Connect, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("running"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Something accepts and never answers: bounded by the connect timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let secret = parse_secret(
        &serde_json::to_vec(&json!({"engine": "postgres", "host": "127.0.0.1", "port": port, "username": "app", "password": "pw", "ssl": false})).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let err = set_secret(Strategy::SingleUser, &secret, &secret, None, None)
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

#[tokio::test]
async fn pg_tls_is_verified_and_preferred_falls_back_to_plain() {
    let cluster = Cluster::start_with(true);
    create_app_user(&cluster, "app", "old-pw").await;
    // "ssl": true requires a certificate that verifies; a self-signed one does not.
    let required = cluster.secret("app", "old-pw", json!({"ssl": true}));
    let err = test_secret(&required).await.unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
    // No "ssl" key: TLS is tried, fails verification, and the plain connection works (the
    // AWS templates' fallback).
    let current = cluster.secret("app", "old-pw", json!({}));
    let pending = cluster.secret("app", "new-pw", json!({}));
    set_secret(Strategy::SingleUser, &current, &pending, None, None)
        .await
        .unwrap();
    test_secret(&pending).await.unwrap();
    assert!(cluster.can_login("app", "new-pw").await);
    // "ssl": false never tries TLS.
    test_secret(&cluster.secret("app", "new-pw", json!({"ssl": "false"})))
        .await
        .unwrap();
}
