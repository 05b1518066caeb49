//! The `coffer` binary as users and scripts see it: help, exit codes, error lines, the
//! `init` output and the dev server's `export` lines.
//!
//! Tests marked "needs a real Coffer::init" start a store; the others stop before one is
//! opened.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions: a failure is a panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;

/// `coffer ARGS` with the environment it reads cleared, so the caller's shell cannot leak in.
fn coffer(args: &[&str]) -> assert_cmd::Command {
    let mut cmd = cargo_bin_cmd!("coffer");
    cmd.args(args)
        .env_remove("COFFER_DATA_DIR")
        .env_remove("COFFER_LISTEN")
        .env_remove("COFFER_ROTATION_FUNCTIONS")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs `coffer ARGS`, asserts the exit code, returns (stdout, stderr).
fn run(args: &[&str], code: i32) -> (String, String) {
    let assert = coffer(args)
        .timeout(Duration::from_secs(30))
        .assert()
        .code(code);
    let output = assert.get_output();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn help_lists_subcommands_with_examples() {
    let (out, _) = run(&["--help"], 0);
    for expected in ["init", "server", "Examples:", "coffer server --dev"] {
        assert!(out.contains(expected), "--help lacks {expected:?}:\n{out}");
    }
    let (out, _) = run(&["server", "--help"], 0);
    for expected in [
        "--data-dir",
        "--listen",
        "--insecure-http",
        "--allow-insecure-non-loopback",
        "--dev",
        "--account-id",
        "--accept-any-credentials",
        "--manual-clock",
        "--purge-interval",
        "Examples:",
    ] {
        assert!(
            out.contains(expected),
            "server --help lacks {expected:?}:\n{out}"
        );
    }
    let (out, _) = run(&["init", "--help"], 0);
    for expected in [
        "--data-dir",
        "--format",
        "--account-id",
        "--tls-san",
        "Examples:",
    ] {
        assert!(
            out.contains(expected),
            "init --help lacks {expected:?}:\n{out}"
        );
    }
}

#[test]
fn usage_errors_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let cases: &[(&[&str], &str)] = &[
        (
            &["server", "--data-dir", d, "--accept-any-credentials"],
            "--accept-any-credentials only works with --dev",
        ),
        (
            &["server", "--accept-any-credentials"],
            "--accept-any-credentials only works with --dev",
        ),
        (
            &["server", "--data-dir", d, "--manual-clock"],
            "--manual-clock only works with --dev",
        ),
        (
            &["server", "--dev", "--data-dir", d],
            "cannot be combined with --data-dir",
        ),
        (
            &["server", "--data-dir", d, "--account-id", "111122223333"],
            "--account-id only works with --dev",
        ),
        (&["server"], "needs --data-dir DIR"),
        (
            &["server", "--dev", "--listen", "0.0.0.0:0"],
            "loopback only",
        ),
        (
            &[
                "server",
                "--data-dir",
                d,
                "--insecure-http",
                "--listen",
                "0.0.0.0:0",
            ],
            "clear text",
        ),
        (&["server", "--no-such-flag"], "unexpected argument"),
        (&["server", "--listen", "not-an-address"], "invalid"),
        (&["server", "--dev", "--account-id", "123"], "12 digits"),
        (&["init"], "--data-dir"),
        (
            &["init", "--data-dir", d, "--format", "yaml"],
            "invalid value",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
    ];
    for (args, fragment) in cases {
        let (_, err) = run(args, 2);
        assert!(
            err.contains(fragment),
            "{args:?}: stderr lacks {fragment:?}:\n{err}"
        );
        assert!(err.starts_with("error: "), "{args:?}: {err}");
    }
}

#[test]
fn an_uninitialised_data_dir_says_to_run_init() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let (_, err) = run(&["server", "--data-dir", d], 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: data directory {d} is not initialised; run `coffer init --data-dir {d}` first"
        )
    );

    // The same through the environment.
    let assert = coffer(&["server"])
        .env("COFFER_DATA_DIR", d)
        .assert()
        .code(1);
    assert!(
        String::from_utf8_lossy(&assert.get_output().stderr)
            .contains("run `coffer init --data-dir")
    );
}

#[test]
fn a_port_in_use_says_to_choose_another() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_, err) = run(&["server", "--dev", "--listen", &addr], 1);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: cannot listen on {addr}: address already in use; choose another with --listen"
        )
    );
}

#[test]
fn an_exported_data_dir_does_not_conflict_with_dev() {
    // COFFER_DATA_DIR in the environment is ignored by --dev rather than a usage error: the
    // run gets as far as binding (which fails here, on purpose, before any store is made).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let assert = coffer(&["server", "--dev", "--listen", &addr])
        .env("COFFER_DATA_DIR", "/nonexistent")
        .assert()
        .code(1);
    assert!(
        String::from_utf8_lossy(&assert.get_output().stderr).contains("address already in use")
    );
}

#[test]
fn insecure_http_on_a_public_address_warns_loudly_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "server",
        "--data-dir",
        path_str(dir.path()),
        "--insecure-http",
        "--allow-insecure-non-loopback",
        "--listen",
        "0.0.0.0:0",
    ];
    // Fails afterwards because the directory is not initialised; the warning comes first.
    let (_, err) = run(&args, 1);
    assert!(
        err.contains("WARNING: serving PLAIN HTTP on 0.0.0.0:0"),
        "{err}"
    );
}

// Needs a real Coffer::init.
#[test]
fn init_prints_json_credentials_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("new").join("data");
    let d = path_str(&dir);
    let (out, _) = run(
        &[
            "init",
            "--data-dir",
            d,
            "--format",
            "json",
            "--account-id",
            "111122223333",
        ],
        0,
    );
    let line = out.trim_end();
    assert_eq!(out.lines().count(), 1, "{out}");
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    let object = value.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_key_id", "account_id", "secret_access_key"]);
    assert!(
        line.starts_with(r#"{"account_id":"111122223333","access_key_id":""#),
        "{line}"
    );
    assert!(!object["secret_access_key"].as_str().unwrap().is_empty());

    assert!(dir.join("root.key").exists());
    assert!(dir.join("tls").join("cert.pem").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("tls").join("key.pem")), 0o600);
    }

    // A second init refuses and does not print credentials.
    let (out, err) = run(&["init", "--data-dir", d, "--format", "json"], 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("already initialised"), "{err}");
}

// Needs a real Coffer::init.
#[test]
fn init_text_tells_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let (out, _) = run(
        &["init", "--data-dir", d, "--tls-san", "coffer.internal"],
        0,
    );
    for expected in [
        "AWS_ACCESS_KEY_ID=",
        "AWS_SECRET_ACCESS_KEY=",
        "they are not shown again",
        &format!("coffer server --data-dir {d}"),
    ] {
        assert!(out.contains(expected), "lacks {expected:?}:\n{out}");
    }
}

struct DevServer {
    child: Child,
    lines: Vec<String>,
}

impl DevServer {
    /// SIGTERM, then the exit status (SIGKILL after 15 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        // SIGTERM first, so the server removes its temporary data directory.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn start_dev_server(extra: &[&str]) -> DevServer {
    start_dev_server_with_env(extra, &[])
}

fn start_dev_server_with_env(extra: &[&str], env: &[(&str, &str)]) -> DevServer {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin!("coffer"))
        .args(["server", "--dev", "--listen", "127.0.0.1:0"])
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("COFFER_DATA_DIR")
        .env_remove("COFFER_LISTEN")
        .env_remove("COFFER_ROTATION_FUNCTIONS")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while lines.len() < 7 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(line)) => lines.push(line),
            other => panic!("dev server stopped printing after {lines:?}: {other:?}"),
        }
    }
    DevServer { child, lines }
}

fn get_health(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

// Needs a real Coffer::init.
#[test]
fn dev_server_prints_exports_serves_and_stops_on_sigterm() {
    let mut server = start_dev_server(&[]);
    let first = &server.lines[0];
    let url = first
        .strip_prefix("coffer dev server listening on ")
        .and_then(|rest| rest.strip_suffix(" (account 000000000000, region us-east-1)"))
        .unwrap_or_else(|| panic!("first line: {first}"));
    let addr: SocketAddr = url
        .strip_prefix("http://127.0.0.1:")
        .map(|port| format!("127.0.0.1:{port}"))
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(server.lines[1], format!("export AWS_ENDPOINT_URL={url}"));
    assert!(
        server.lines[2].starts_with("export AWS_ACCESS_KEY_ID=") && server.lines[2].len() > 25,
        "{}",
        server.lines[2]
    );
    assert!(
        server.lines[3].starts_with("export AWS_SECRET_ACCESS_KEY=") && server.lines[3].len() > 29,
        "{}",
        server.lines[3]
    );
    assert_eq!(server.lines[4], "export AWS_REGION=us-east-1");
    assert_eq!(server.lines[5], "export AWS_DEFAULT_REGION=us-east-1");
    // Added last, after the lines harnesses parse by position: the throw-away data directory,
    // with the admin socket that `coffer account create` uses.
    let data_dir = server.lines[6]
        .strip_prefix("export COFFER_DATA_DIR=")
        .unwrap_or_else(|| panic!("seventh line: {}", server.lines[6]));
    assert!(
        Path::new(data_dir).join("admin.sock").exists(),
        "{data_dir}"
    );

    let response = get_health(addr);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");

    assert_eq!(server.terminate().code(), Some(0));
}

// Needs a real Coffer::init.
#[test]
fn dev_admin_routes_follow_manual_clock() {
    for (extra, expected) in [
        (&[][..], "HTTP/1.1 404"),
        (&["--manual-clock"][..], "HTTP/1.1 200"),
    ] {
        let mut server = start_dev_server(extra);
        let addr: SocketAddr = server.lines[1]
            .trim_start_matches("export AWS_ENDPOINT_URL=http://")
            .parse()
            .unwrap();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(b"POST /_coffer/tasks/run HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with(expected), "{extra:?}: {response}");
        assert_eq!(server.terminate().code(), Some(0));
    }
}

#[test]
fn account_help_has_examples() {
    for args in [
        &["account", "--help"][..],
        &["account", "create", "--help"][..],
        &["account", "list", "--help"][..],
    ] {
        let (out, _) = run(args, 0);
        for expected in [
            "--data-dir",
            "--output",
            "Examples:",
            "coffer account create",
        ] {
            assert!(
                out.contains(expected),
                "{args:?} lacks {expected:?}:\n{out}"
            );
        }
    }
    let (out, _) = run(&["account", "create", "--help"], 0);
    assert!(
        out.contains("--account-id") && out.contains("only this once"),
        "{out}"
    );
    let (out, _) = run(&["--help"], 0);
    assert!(out.contains("account"), "{out}");
}

/// `coffer account create --output json` on `dir`: (account id, access key id, secret).
fn create_account_json(dir: &str, extra: &[&str]) -> (String, String, String) {
    let mut args = vec!["account", "create", "--data-dir", dir, "--output", "json"];
    args.extend_from_slice(extra);
    let (out, _) = run(&args, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with(r#"{"account_id":""#), "{out}");
    let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    let field = |k: &str| value[k].as_str().unwrap().to_owned();
    (
        field("account_id"),
        field("access_key_id"),
        field("secret_access_key"),
    )
}

fn listed_accounts(dir: &str) -> Vec<String> {
    let (out, _) = run(
        &["account", "list", "--data-dir", dir, "--output", "json"],
        0,
    );
    let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    value["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap().to_owned())
        .collect()
}

// Needs a real Coffer::init.
#[test]
fn accounts_are_created_and_listed_without_a_server() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let d = path_str(&dir);
    run(
        &["init", "--data-dir", d, "--account-id", "111111111111"],
        0,
    );
    let (id, key, secret) = create_account_json(d, &["--account-id", "222222222222"]);
    assert_eq!(id, "222222222222");
    assert!(key.starts_with("AKIA") && key.len() == 20, "{key}");
    assert_eq!(secret.len(), 40);
    let (random, _, _) = create_account_json(d, &[]);
    assert!(random.len() == 12 && random.bytes().all(|b| b.is_ascii_digit()));
    let mut expected = vec!["111111111111".to_owned(), "222222222222".to_owned(), random];
    expected.sort();
    assert_eq!(listed_accounts(d), expected);

    let (out, _) = run(&["account", "create", "--data-dir", d], 0);
    assert!(out.contains("shown only this once"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("export AWS_ACCESS_KEY_ID=AKIA")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("export AWS_SECRET_ACCESS_KEY=")),
        "{out}"
    );
    let (table, _) = run(&["account", "list", "--data-dir", d], 0);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ACCOUNT", "ID", "CREATED"]
    );
    assert_eq!(lines.len(), 5, "{table}");
    assert!(lines[1].starts_with("111111111111  "), "{table}");

    let (out, err) = run(
        &[
            "account",
            "create",
            "--data-dir",
            d,
            "--account-id",
            "222222222222",
        ],
        1,
    );
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("account 222222222222 already exists"), "{err}");
    let (_, err) = run(
        &["account", "create", "--data-dir", d, "--account-id", "2222"],
        2,
    );
    assert!(err.contains("12 digits"), "{err}");
    let (_, err) = run(&["account", "list", "--data-dir", d, "--output", "yaml"], 2);
    assert!(err.contains("--output"), "{err}");
    let elsewhere = root.path().join("nothing-here");
    let (_, err) = run(&["account", "list", "--data-dir", path_str(&elsewhere)], 1);
    assert!(err.contains("coffer init --data-dir"), "{err}");
}

// Needs a real Coffer::init.
#[test]
fn accounts_are_created_through_a_running_dev_server() {
    let mut server = start_dev_server(&[]);
    let dir = server.lines[6]
        .strip_prefix("export COFFER_DATA_DIR=")
        .unwrap()
        .to_owned();
    // The server owns the store (a second opener would be refused): the CLI asks it.
    let (id, _, _) = create_account_json(&dir, &["--account-id", "333333333333"]);
    assert_eq!(id, "333333333333");
    assert_eq!(listed_accounts(&dir), ["000000000000", "333333333333"]);
    let (_, err) = run(
        &[
            "account",
            "create",
            "--data-dir",
            &dir,
            "--account-id",
            "333333333333",
        ],
        1,
    );
    assert!(err.contains("account 333333333333 already exists"), "{err}");
    assert_eq!(server.terminate().code(), Some(0));
}

#[test]
fn rotation_help_has_examples() {
    for args in [
        &["rotation", "--help"][..],
        &["rotation", "status", "--help"][..],
        &["rotation", "retry", "--help"][..],
        &["rotation", "cancel", "--help"][..],
    ] {
        let (out, _) = run(args, 0);
        for expected in [
            "Examples:",
            "coffer rotation status",
            "coffer rotation retry",
        ] {
            assert!(
                out.contains(expected),
                "{args:?} lacks {expected:?}:\n{out}"
            );
        }
    }
    for args in [
        &["rotation", "function", "--help"][..],
        &["rotation", "function", "register", "--help"][..],
        &["rotation", "function", "list", "--help"][..],
        &["rotation", "function", "remove", "--help"][..],
    ] {
        let (out, _) = run(args, 0);
        for expected in [
            "Examples:",
            "--builtin postgres --strategy",
            "--signing-secret-env",
            "coffer rotation function list --account",
        ] {
            assert!(
                out.contains(expected),
                "{args:?} lacks {expected:?}:\n{out}"
            );
        }
    }
    let (out, _) = run(&["rotation", "function", "register", "--help"], 0);
    for expected in [
        "--arn",
        "--builtin",
        "--strategy",
        "--webhook",
        "--executable",
        "--arg",
        "--timeout",
        "--data-dir",
        "--output",
    ] {
        assert!(out.contains(expected), "register --help lacks {expected}");
    }
    let (out, _) = run(&["server", "--help"], 0);
    assert!(out.contains("--rotation-functions"), "{out}");
    let (out, _) = run(&["--help"], 0);
    assert!(out.contains("rotation"), "{out}");
}

const PG_ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:pg";
const HOOK_ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:hook";
const SCRIPT_ARN: &str = "arn:aws:lambda:us-east-1:111111111111:function:script";

/// `coffer rotation function list --output json` on `dir`: the functions.
fn listed_functions(dir: &str, account: &str) -> Vec<serde_json::Value> {
    let (out, _) = run(
        &[
            "rotation",
            "function",
            "list",
            "--account",
            account,
            "--data-dir",
            dir,
            "--output",
            "json",
        ],
        0,
    );
    let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    value["functions"].as_array().unwrap().clone()
}

// Needs a real Coffer::init.
#[test]
fn rotation_functions_are_registered_listed_and_removed_without_a_server() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let d = path_str(&dir);
    run(
        &["init", "--data-dir", d, "--account-id", "111111111111"],
        0,
    );
    let register = |extra: &[&str], code: i32| {
        let mut args = vec!["rotation", "function", "register", "--data-dir", d];
        args.extend_from_slice(extra);
        run(&args, code)
    };

    let (out, _) = register(
        &[
            "--arn",
            PG_ARN,
            "--builtin",
            "postgres",
            "--strategy",
            "alternating-users",
        ],
        0,
    );
    assert!(
        out.starts_with(&format!(
            "Registered the rotation function {PG_ARN}: built-in postgres rotator, alternating-users."
        )),
        "{out}"
    );
    assert!(out.contains("--rotation-lambda-arn"), "{out}");

    // The signing secret comes from the environment and is never shown again.
    let assert = coffer(&[
        "rotation",
        "function",
        "register",
        "--data-dir",
        d,
        "--arn",
        HOOK_ARN,
        "--webhook",
        "https://rotator.example/rotate",
        "--signing-secret-env",
        "HOOK_SECRET",
        "--timeout",
        "60",
        "--output",
        "json",
    ])
    .env("HOOK_SECRET", "canary-hook-5e1f")
    .assert()
    .code(0);
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert!(!out.contains("canary-hook-5e1f"), "{out}");
    let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(value["replaced"], false, "{out}");
    assert_eq!(value["function"]["kind"], "webhook");
    assert_eq!(value["function"]["signing_secret_set"], true);
    assert_eq!(value["function"]["timeout_secs"], 60);
    assert_eq!(value["function"]["account"], "111111111111");

    register(
        &[
            "--arn",
            SCRIPT_ARN,
            "--executable",
            "/usr/local/bin/rotate",
            "--arg",
            "--verbose",
            "--arg",
            "db",
        ],
        0,
    );
    // Registering the same ARN again replaces it.
    let (out, _) = register(
        &[
            "--arn",
            PG_ARN,
            "--builtin",
            "mysql",
            "--strategy",
            "single-user",
        ],
        0,
    );
    assert!(out.starts_with("Replaced the rotation function"), "{out}");

    let functions = listed_functions(d, "111111111111");
    let arns: Vec<&str> = functions
        .iter()
        .map(|f| f["arn"].as_str().unwrap())
        .collect();
    assert_eq!(arns, [HOOK_ARN, PG_ARN, SCRIPT_ARN]);
    assert_eq!(functions[1]["engine"], "mysql");
    assert_eq!(functions[1]["strategy"], "single-user");
    assert_eq!(functions[2]["program"], "/usr/local/bin/rotate");
    assert_eq!(functions[2]["args"], serde_json::json!(["--verbose", "db"]));
    assert_eq!(functions[2]["timeout_secs"], 30);
    assert!(functions[0].get("signing_secret").is_none());
    assert!(functions[0]["created"].as_str().unwrap().ends_with('Z'));

    let (table, _) = run(
        &[
            "rotation",
            "function",
            "list",
            "--account",
            "111111111111",
            "--data-dir",
            d,
        ],
        0,
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ARN", "KIND", "CREATED", "DETAILS"],
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].starts_with(HOOK_ARN)
            && lines[1].contains("webhook https://rotator.example/rotate, signed, timeout 60s"),
        "{table}"
    );
    assert!(
        lines[3].contains("executable /usr/local/bin/rotate --verbose db, timeout 30s"),
        "{table}"
    );
    assert!(!table.contains("canary-hook-5e1f"));

    let (out, _) = run(
        &[
            "rotation",
            "function",
            "remove",
            "--arn",
            HOOK_ARN,
            "--data-dir",
            d,
        ],
        0,
    );
    assert_eq!(
        out.trim_end(),
        format!("Removed the rotation function {HOOK_ARN}.")
    );
    let (out, err) = run(
        &[
            "rotation",
            "function",
            "remove",
            "--arn",
            HOOK_ARN,
            "--data-dir",
            d,
            "--output",
            "json",
        ],
        1,
    );
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("no rotation function is registered under")
            && err.contains("coffer rotation function list"),
        "{err}"
    );
    let (out, _) = run(
        &[
            "rotation",
            "function",
            "remove",
            "--arn",
            PG_ARN,
            "--data-dir",
            d,
            "--output",
            "json",
        ],
        0,
    );
    let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!(value["removed"], true);
    assert_eq!(value["used_by"], serde_json::json!([]));
    let arns: Vec<String> = listed_functions(d, "111111111111")
        .iter()
        .map(|f| f["arn"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(arns, [SCRIPT_ARN]);

    // An account that does not exist, in the ARN or for the list.
    let (_, err) = register(
        &[
            "--arn",
            "arn:aws:lambda:us-east-1:222222222222:function:pg",
            "--builtin",
            "postgres",
            "--strategy",
            "single-user",
        ],
        1,
    );
    assert!(err.contains("account 222222222222 does not exist"), "{err}");
    let (out, err) = run(
        &[
            "rotation",
            "function",
            "list",
            "--account",
            "222222222222",
            "--data-dir",
            d,
        ],
        1,
    );
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("account 222222222222 does not exist") && err.contains("coffer account list"),
        "{err}"
    );
    let (out, _) = run(
        &[
            "rotation",
            "function",
            "list",
            "--account",
            "111111111111",
            "--data-dir",
            d,
        ],
        0,
    );
    assert!(out.contains(SCRIPT_ARN), "{out}");
}

// Needs a real Coffer::init.
#[test]
fn rotation_status_of_a_store_without_rotating_secrets() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let d = path_str(&dir);
    run(
        &["init", "--data-dir", d, "--account-id", "111111111111"],
        0,
    );
    let (out, _) = run(&["rotation", "status", "--data-dir", d], 0);
    assert!(out.starts_with("No secret has rotation settings."), "{out}");
    assert!(out.contains("rotate-secret"), "{out}");
    let (out, _) = run(
        &["rotation", "status", "--data-dir", d, "--output", "json"],
        0,
    );
    assert_eq!(out.trim_end(), r#"{"secrets":[]}"#);

    let missing = "arn:aws:secretsmanager:us-east-1:111111111111:secret:nope-AbCdEf";
    for args in [
        &["rotation", "status", missing, "--data-dir", d][..],
        &["rotation", "retry", missing, "--data-dir", d][..],
        &["rotation", "cancel", missing, "--data-dir", d][..],
    ] {
        let (out, err) = run(args, 1);
        assert!(out.is_empty(), "{out}");
        assert!(
            err.starts_with("error: ") && err.contains(&format!("no secret {missing}")),
            "{args:?}: {err}"
        );
        assert!(err.contains("coffer rotation status"), "{args:?}: {err}");
    }
    // Through the environment, as a dev server's `export COFFER_DATA_DIR=...` sets it.
    let assert = coffer(&["rotation", "status", "--output", "json"])
        .env("COFFER_DATA_DIR", d)
        .assert()
        .code(0);
    assert_eq!(
        String::from_utf8_lossy(&assert.get_output().stdout).trim_end(),
        r#"{"secrets":[]}"#
    );
}

#[test]
fn rotation_mistakes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = path_str(dir.path());
    let register = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec!["rotation", "function", "register", "--data-dir", d];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            register(&[
                "--arn",
                "arn:aws:lambda:us-east-1:1111:function:pg",
                "--builtin",
                "postgres",
                "--strategy",
                "single-user",
            ]),
            "arn:aws:lambda:us-east-1:111111111111:function:NAME",
        ),
        (
            register(&["--arn", "pg", "--webhook", "https://x"]),
            "a rotation function ARN looks like",
        ),
        (
            register(&["--arn", PG_ARN, "--executable", "bin/rotate"]),
            "the executable must be an absolute path, like /usr/local/bin/rotate",
        ),
        (
            register(&["--arn", PG_ARN, "--builtin", "postgres"]),
            "--strategy <STRATEGY>",
        ),
        (
            register(&[
                "--arn",
                PG_ARN,
                "--builtin",
                "oracle",
                "--strategy",
                "single-user",
            ]),
            "invalid value 'oracle'",
        ),
        (register(&["--arn", PG_ARN]), "--builtin"),
        (
            register(&[
                "--arn",
                PG_ARN,
                "--webhook",
                "https://x",
                "--executable",
                "/bin/x",
            ]),
            "cannot be used with",
        ),
        (
            register(&["--arn", PG_ARN, "--webhook", "https://x", "--timeout", "0"]),
            "--timeout",
        ),
        (
            register(&[
                "--arn",
                PG_ARN,
                "--builtin",
                "postgres",
                "--strategy",
                "single-user",
                "--timeout",
                "5",
            ]),
            "cannot be used with",
        ),
        (
            register(&[
                "--arn",
                PG_ARN,
                "--webhook",
                "https://x",
                "--strategy",
                "single-user",
            ]),
            "cannot be used with",
        ),
        (
            register(&[
                "--arn",
                PG_ARN,
                "--executable",
                "/bin/x",
                "--signing-secret-env",
                "V",
            ]),
            "cannot be used with",
        ),
        (
            register(&["--arn", PG_ARN, "--webhook", "https://x", "--arg", "a"]),
            "cannot be used with",
        ),
        (
            vec!["rotation", "status", "prod/db", "--data-dir", d],
            "give the secret's full ARN",
        ),
        (
            vec![
                "rotation",
                "function",
                "list",
                "--account",
                "12",
                "--data-dir",
                d,
            ],
            "12 digits",
        ),
    ];
    for (args, fragment) in &cases {
        let (out, err) = run(args, 2);
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(
            err.starts_with("error: ") && err.contains(fragment),
            "{args:?}: stderr lacks {fragment:?}:\n{err}"
        );
    }
    // The signing secret only from the environment: a missing variable says so.
    let (_, err) = run(
        &register(&[
            "--arn",
            HOOK_ARN,
            "--webhook",
            "https://x",
            "--signing-secret-env",
            "COFFER_TEST_UNSET_VARIABLE",
        ]),
        1,
    );
    assert!(
        err.contains("COFFER_TEST_UNSET_VARIABLE (--signing-secret-env) is not set"),
        "{err}"
    );
    // An uninitialised data directory says to run init.
    let (_, err) = run(&register(&["--arn", PG_ARN, "--webhook", "https://x"]), 1);
    assert!(err.contains("coffer init --data-dir"), "{err}");
}

#[test]
fn a_bad_rotation_functions_file_stops_the_server_before_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("functions.json");
    let f = path_str(&file);
    let start = |contents: Option<&str>| {
        if let Some(contents) = contents {
            std::fs::write(&file, contents).unwrap();
        }
        run(
            &[
                "server",
                "--dev",
                "--listen",
                "127.0.0.1:0",
                "--rotation-functions",
                f,
            ],
            1,
        )
    };

    // Missing, not JSON, not a list: before anything is opened.
    let (out, err) = start(None);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&format!("cannot read {f}")), "{err}");
    let (_, err) = start(Some("[{\"arn\": "));
    assert!(
        err.contains(&format!("{f}: not valid JSON")) && err.contains("--rotation-functions"),
        "{err}"
    );
    let (_, err) = start(Some(r#"{"arn": "x"}"#));
    assert!(err.contains("must hold a JSON list"), "{err}");
    let (_, err) = start(Some(
        r#"[{"arn": "arn:aws:lambda:us-east-1:000000000000:function:ok", "kind": "executable", "program": "/bin/true"},
            {"arn": "arn:aws:lambda:us-east-1:000000000000:function:pg", "kind": "builtin", "engine": "postgres"}]"#,
    ));
    assert!(
        err.contains(
            "entry 2 (arn:aws:lambda:us-east-1:000000000000:function:pg): \"strategy\" is missing"
        ),
        "{err}"
    );
    let (_, err) = start(Some(
        r#"[{"arn": "arn:aws:lambda:us-east-1:000000000000:function:hook", "kind": "webhook", "url": "https://x", "signing_secret": "canary-file-9b2c"}]"#,
    ));
    assert!(err.contains("must not hold the signing secret"), "{err}");
    assert!(!err.contains("canary-file-9b2c"), "{err}");

    // Wrong only for the store (the account, the path): after it opens, before serving.
    let (out, err) = start(Some(
        r#"[{"arn": "arn:aws:lambda:us-east-1:123456789012:function:pg", "kind": "builtin", "engine": "postgres", "strategy": "single-user"}]"#,
    ));
    assert!(
        out.is_empty(),
        "no dev exports before a failed start: {out}"
    );
    assert!(
        err.contains("cannot register the rotation function arn:aws:lambda:us-east-1:123456789012:function:pg: account 123456789012 does not exist"),
        "{err}"
    );
    assert!(err.contains("--rotation-functions"), "{err}");
    let (_, err) = start(Some(
        r#"[{"arn": "arn:aws:lambda:us-east-1:000000000000:function:script", "kind": "executable", "program": "rotate.sh"}]"#,
    ));
    assert!(
        err.contains("arn:aws:lambda:us-east-1:000000000000:function:script")
            && err.contains("absolute path"),
        "{err}"
    );
}

// Needs a real Coffer::init.
#[test]
fn rotation_functions_file_and_commands_through_a_running_dev_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("functions.json");
    std::fs::write(
        &file,
        r#"[{"arn": "arn:aws:lambda:us-east-1:000000000000:function:pg", "kind": "builtin",
             "engine": "postgres", "strategy": "single-user"},
            {"arn": "arn:aws:lambda:us-east-1:000000000000:function:hook", "kind": "webhook",
             "url": "http://127.0.0.1:9/rotate", "signing_secret_env": "COFFER_TEST_HOOK_SECRET",
             "timeout_secs": 5}]"#,
    )
    .unwrap();
    let mut server = start_dev_server_with_env(
        &["--rotation-functions", path_str(&file)],
        &[("COFFER_TEST_HOOK_SECRET", "canary-env-71d0")],
    );
    let d = server.lines[6]
        .strip_prefix("export COFFER_DATA_DIR=")
        .unwrap()
        .to_owned();
    // The server binds its admin socket just after printing the exports.
    let socket = Path::new(&d).join("admin.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let functions = listed_functions(&d, "000000000000");
    let arns: Vec<&str> = functions
        .iter()
        .map(|f| f["arn"].as_str().unwrap())
        .collect();
    assert_eq!(
        arns,
        [
            "arn:aws:lambda:us-east-1:000000000000:function:hook",
            "arn:aws:lambda:us-east-1:000000000000:function:pg"
        ]
    );
    assert_eq!(functions[0]["signing_secret_set"], true);
    assert_eq!(functions[0]["timeout_secs"], 5);

    // Register and remove through the admin socket (the server owns the store).
    let (out, _) = run(
        &[
            "rotation",
            "function",
            "register",
            "--data-dir",
            &d,
            "--arn",
            "arn:aws:lambda:us-east-1:000000000000:function:script",
            "--executable",
            "/bin/true",
        ],
        0,
    );
    assert!(out.starts_with("Registered"), "{out}");
    assert_eq!(listed_functions(&d, "000000000000").len(), 3);
    run(
        &[
            "rotation",
            "function",
            "remove",
            "--data-dir",
            &d,
            "--arn",
            "arn:aws:lambda:us-east-1:000000000000:function:script",
        ],
        0,
    );
    let (out, _) = run(
        &["rotation", "status", "--data-dir", &d, "--output", "json"],
        0,
    );
    assert_eq!(out.trim_end(), r#"{"secrets":[]}"#);
    let (_, err) = run(
        &[
            "rotation",
            "retry",
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:nope-AbCdEf",
            "--data-dir",
            &d,
        ],
        1,
    );
    assert!(err.contains("no secret"), "{err}");
    assert_eq!(server.terminate().code(), Some(0));
}
