#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rotation functions run as local programs: `/bin/sh -c` scripts, and the Python glue for
//! AWS-shaped rotation functions when the repository's `.venv` has boto3.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coffer_crypto::SecretBytes;
use coffer_rotation::invoke::{
    CallbackCredentials, Executable, FunctionTarget, InvokeErrorKind, OutcomeDetail, RotationEvent,
    RotationFunction, Step, invoke_executable,
};

const SECRET_ACCESS_KEY: &str = "sak-canary-5a1f9e2b7c44d0e1";
const SESSION_TOKEN: &str = "st-canary-0d3e8f71aa92b6c5e4";
const ROTATION_TOKEN: &str = "rot-canary-77f0c1d2e3";
const ARN: &str = "arn:aws:lambda:eu-west-1:111122223333:function:rotate-db";

/// Set in the environment of a re-run of this test binary, never in coffer's callback env.
const PLANTED: &str = "COFFER_TEST_PLANTED_SECRET";
const PLANTED_VALUE: &str = "planted-canary-5e1b";

fn event(step: Step) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf".into(),
        client_request_token: "c0ffee00-1111-4222-8333-944445555666".into(),
        rotation_token: ROTATION_TOKEN.into(),
    }
}

fn creds() -> CallbackCredentials {
    CallbackCredentials {
        endpoint_url: "http://127.0.0.1:4566".into(),
        region: "eu-west-1".into(),
        access_key_id: "ASIACOFFERTEST000001".into(),
        secret_access_key: SecretBytes::from(SECRET_ACCESS_KEY.to_owned()),
        session_token: SESSION_TOKEN.into(),
    }
}

/// `/bin/sh -c SCRIPT` with a 10 s timeout.
fn sh(script: &str) -> Executable {
    Executable {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        timeout: Duration::from_secs(10),
        working_dir: None,
        env: Vec::new(),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// `KEY=VALUE` lines into pairs.
fn env_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_program_gets_the_event_on_stdin_and_the_callback_env() {
    let dir = tempfile::tempdir().unwrap();
    let mut exe = sh("cat > stdin.json; env > env.txt; pwd > pwd.txt; echo done");
    exe.working_dir = Some(dir.path().to_path_buf());
    exe.env = vec![
        ("EXCLUDE_CHARACTERS".into(), "/@".into()),
        // The callback variables win over an operator's variable of the same name.
        ("AWS_REGION".into(), "overridden".into()),
    ];
    let event = event(Step::CreateSecret);

    let outcome = invoke_executable(&exe, &event, &creds()).await.unwrap();

    assert_eq!(
        read(&dir.path().join("stdin.json")),
        format!("{}\n", event.to_json())
    );
    let env = env_lines(&read(&dir.path().join("env.txt")));
    let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(get("AWS_ENDPOINT_URL"), Some("http://127.0.0.1:4566"));
    assert_eq!(
        get("AWS_ENDPOINT_URL_SECRETSMANAGER"),
        Some("http://127.0.0.1:4566")
    );
    assert_eq!(
        get("SECRETS_MANAGER_ENDPOINT"),
        Some("http://127.0.0.1:4566")
    );
    assert_eq!(get("AWS_REGION"), Some("eu-west-1"));
    assert_eq!(get("AWS_DEFAULT_REGION"), Some("eu-west-1"));
    assert_eq!(get("AWS_ACCESS_KEY_ID"), Some("ASIACOFFERTEST000001"));
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), Some(SECRET_ACCESS_KEY));
    assert_eq!(get("AWS_SESSION_TOKEN"), Some(SESSION_TOKEN));
    assert_eq!(get("EXCLUDE_CHARACTERS"), Some("/@"));
    assert!(get("PATH").is_some());
    // Nothing of the parent's environment but PATH, HOME and LANG (cargo and nextest set
    // plenty of variables in it); the shell adds PWD, SHLVL and `_` itself.
    let allowed = [
        "PATH",
        "HOME",
        "LANG",
        "EXCLUDE_CHARACTERS",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ];
    for (name, _) in &env {
        assert!(
            allowed.contains(&name.as_str())
                || name.starts_with("AWS_")
                || name == "SECRETS_MANAGER_ENDPOINT",
            "{name} leaked into the function's environment"
        );
    }
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert_eq!(get("CARGO_MANIFEST_DIR"), None);
    assert_eq!(
        PathBuf::from(read(&dir.path().join("pwd.txt")).trim())
            .canonicalize()
            .unwrap(),
        dir.path().canonicalize().unwrap()
    );
    assert_eq!(
        outcome.detail,
        OutcomeDetail::Exited {
            stdout: "done".into(),
            stderr: String::new()
        }
    );
}

/// Re-runs this test binary with a secret planted in its environment (the workspace
/// forbids the `unsafe` that `std::env::set_var` needs); the re-run invokes a script that
/// reports whether it sees it.
#[test]
fn a_secret_in_coffers_environment_does_not_reach_the_function() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "planted_secret_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PLANTED, PLANTED_VALUE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}\n{stderr}"
    );
}

#[tokio::test]
#[ignore = "run by a_secret_in_coffers_environment_does_not_reach_the_function"]
async fn planted_secret_child() {
    if std::env::var(PLANTED).as_deref() != Ok(PLANTED_VALUE) {
        eprintln!(
            "SKIPPED: runs only inside a_secret_in_coffers_environment_does_not_reach_the_function"
        );
        return;
    }
    let script = format!("env; echo \"planted=${{{PLANTED}:-absent}}\"");
    let outcome = invoke_executable(&sh(&script), &event(Step::SetSecret), &creds())
        .await
        .unwrap();
    let OutcomeDetail::Exited { stdout, .. } = outcome.detail else {
        panic!("expected an exit outcome");
    };
    assert!(stdout.contains("planted=absent"), "{stdout}");
    assert!(!stdout.contains(PLANTED_VALUE), "{stdout}");
    assert!(!stdout.contains(PLANTED), "{stdout}");
    // What the function printed of its own credentials is redacted in the outcome.
    assert!(
        stdout.contains("AWS_SECRET_ACCESS_KEY=<redacted>"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET_ACCESS_KEY), "{stdout}");
}

#[tokio::test]
async fn a_non_zero_exit_fails_with_the_tail_of_stderr() {
    // Lots of noise first, so only the tail is kept; the last lines matter.
    let script = "i=0; while [ $i -lt 500 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; \
         echo \"Traceback: key=$AWS_SECRET_ACCESS_KEY token=$AWS_SESSION_TOKEN\" >&2; \
         printf 'ValueError: Secret version has no AWSPENDING stage\\033[0m\\n' >&2; exit 3";
    let function = RotationFunction {
        arn: ARN.into(),
        target: FunctionTarget::Executable(sh(script)),
    };
    let err = function
        .invoke(&event(Step::TestSecret), &creds())
        .await
        .unwrap_err();

    let InvokeErrorKind::Exited {
        code,
        signal,
        stderr,
        ..
    } = &err.kind
    else {
        panic!("expected an exit error, got {err:?}");
    };
    assert_eq!((*code, *signal), (Some(3), None));
    assert!(stderr.len() <= 4096 + 16, "{}", stderr.len());
    assert!(stderr.starts_with("[…]"), "{stderr}");
    assert!(
        stderr.ends_with("ValueError: Secret version has no AWSPENDING stage?[0m"),
        "{stderr}"
    );
    assert!(
        stderr.contains("key=<redacted> token=<redacted>"),
        "{stderr}"
    );
    assert!(!stderr.contains("noise line 0\n"), "{stderr}");
    let text = err.to_string();
    println!("{text}");
    assert!(text.contains(ARN), "{text}");
    assert!(text.contains("step testSecret"), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("AWSPENDING"), "{text}");
    // Display quotes the last 20 lines; the field keeps the last 4 KB.
    assert!(text.contains("noise line 482\n") && !text.contains("noise line 481\n"));
    assert!(stderr.contains("noise line 450\n"));
    for canary in [SECRET_ACCESS_KEY, SESSION_TOKEN, ROTATION_TOKEN, "\x1b"] {
        assert!(!text.contains(canary), "{canary:?} in {text}");
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: dead all the same).
#[cfg(target_os = "linux")]
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn the_timeout_kills_the_program_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let mut exe = sh("sleep 60 & echo $! > child.pid; echo $$ > parent.pid; \
         echo 'waiting for the database' >&2; sleep 60");
    exe.working_dir = Some(dir.path().to_path_buf());
    exe.timeout = Duration::from_secs(1);

    let started = Instant::now();
    let err = invoke_executable(&exe, &event(Step::SetSecret), &creds())
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert!(err.is_timeout(), "{err:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    let InvokeErrorKind::Timeout { after, output } = &err.kind else {
        unreachable!()
    };
    assert_eq!(*after, Duration::from_secs(1));
    assert_eq!(output, "waiting for the database");
    let text = err.to_string();
    assert!(text.contains("timeout of 1 s"), "{text}");
    assert!(text.contains("process group"), "{text}");

    #[cfg(target_os = "linux")]
    {
        let parent: u32 = read(&dir.path().join("parent.pid")).trim().parse().unwrap();
        let child: u32 = read(&dir.path().join("child.pid")).trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(dead(parent) && dead(child)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dead(parent), "the program survived its timeout");
        assert!(dead(child), "the program's child survived the timeout");
    }
}

#[tokio::test]
async fn dropping_the_invocation_kills_the_program_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let mut exe = sh("sleep 60 & echo $! > child.pid; echo $$ > parent.pid; sleep 60");
    exe.working_dir = Some(dir.path().to_path_buf());
    exe.timeout = Duration::from_secs(60);
    // The engine gives up (shutdown, a cancelled rotation): the future is dropped.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        invoke_executable(&exe, &event(Step::SetSecret), &creds()),
    )
    .await;
    assert!(abandoned.is_err());
    #[cfg(target_os = "linux")]
    {
        let parent: u32 = read(&dir.path().join("parent.pid")).trim().parse().unwrap();
        let child: u32 = read(&dir.path().join("child.pid")).trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !(dead(parent) && dead(child)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dead(parent), "the program outlived its invocation");
        assert!(dead(child), "the program's child outlived its invocation");
    }
}

#[tokio::test]
async fn a_background_leftover_does_not_hold_up_a_finished_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut exe = sh("sleep 30 & echo $! > child.pid; echo finished");
    exe.working_dir = Some(dir.path().to_path_buf());
    let started = Instant::now();
    let outcome = invoke_executable(&exe, &event(Step::FinishSecret), &creds())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{outcome:?}");
    assert!(matches!(
        &outcome.detail,
        OutcomeDetail::Exited { stdout, .. } if stdout == "finished"
    ));
    #[cfg(target_os = "linux")]
    {
        let child: u32 = read(&dir.path().join("child.pid")).trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !dead(child) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(dead(child), "the leftover child still runs");
    }
}

#[tokio::test]
async fn a_chatty_program_does_not_deadlock() {
    // 2 MB on each stream, far beyond a pipe's buffer, interleaved; stdin never read.
    let script = "i=0; while [ $i -lt 64 ]; do \
           head -c 32768 /dev/zero | tr '\\0' o; head -c 32768 /dev/zero | tr '\\0' e >&2; \
           i=$((i+1)); done; echo; echo end-of-stdout; echo end-of-stderr >&2";
    let mut exe = sh(script);
    exe.timeout = Duration::from_secs(20);
    let started = Instant::now();
    let outcome = invoke_executable(&exe, &event(Step::CreateSecret), &creds())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(15));
    let OutcomeDetail::Exited { stdout, stderr } = outcome.detail else {
        panic!("expected an exit outcome");
    };
    assert!(stdout.ends_with("end-of-stdout") && stdout.len() <= 4096 + 16);
    assert!(stderr.ends_with("end-of-stderr") && stderr.len() <= 4096 + 16);
}

#[tokio::test]
async fn a_program_that_cannot_start_is_a_spawn_error() {
    let mut exe = sh("true");
    exe.program = "/nonexistent/rotate-fn".into();
    let err = invoke_executable(&exe, &event(Step::CreateSecret), &creds())
        .await
        .unwrap_err();
    assert!(matches!(err.kind, InvokeErrorKind::Spawn { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("/nonexistent/rotate-fn"), "{text}");
    assert!(text.contains("could not start"), "{text}");
}

#[tokio::test]
async fn a_program_killed_by_a_signal_is_reported_as_such() {
    let err = invoke_executable(&sh("kill -TERM $$"), &event(Step::SetSecret), &creds())
        .await
        .unwrap_err();
    let InvokeErrorKind::Exited { code, signal, .. } = &err.kind else {
        panic!("expected an exit error, got {err:?}");
    };
    assert_eq!((*code, *signal), (None, Some(15)));
    assert!(err.to_string().contains("killed by signal 15"), "{err}");
}

/// The repository's Python with boto3 (`scripts/setup-python`), if there is one.
fn venv_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    let has_boto3 = std::process::Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .is_ok_and(|o| o.status.success());
    has_boto3.then_some(python)
}

fn glue() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/rotation/aws_lambda_glue.py")
}

#[tokio::test]
async fn the_python_glue_runs_an_aws_shaped_handler() {
    let Some(python) = venv_python() else {
        eprintln!("SKIPPED: no .venv/bin/python with boto3 (run scripts/setup-python)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.json");
    let handler = dir.path().join("recording_rotation.py");
    std::fs::write(
        &handler,
        r#"import json, logging, os
import boto3

logger = logging.getLogger()
logger.setLevel(logging.INFO)

def lambda_handler(event, context):
    session = boto3.session.Session()
    creds = session.get_credentials().get_frozen_credentials()
    client = boto3.client("secretsmanager")
    logger.info("rotating %s at step %s", event["SecretId"], event["Step"])
    with open(os.environ["RECORD"], "w") as f:
        json.dump({
            "event": event,
            "region": session.region_name,
            "endpoint": client.meta.endpoint_url,
            "access_key": creds.access_key,
            "secret_key": creds.secret_key,
            "token": creds.token,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
        }, f)
    if event["Step"] == "testSecret":
        raise ValueError("the new password does not log in (for the test)")
"#,
    )
    .unwrap();
    let exe = Executable {
        program: python,
        args: vec![
            glue().to_string_lossy().into_owned(),
            handler.to_string_lossy().into_owned(),
        ],
        timeout: Duration::from_secs(30),
        working_dir: Some(dir.path().to_path_buf()),
        env: vec![("RECORD".into(), record.to_string_lossy().into_owned())],
    };

    let event = event(Step::CreateSecret);
    let outcome = invoke_executable(&exe, &event, &creds()).await.unwrap();
    let seen: serde_json::Value = serde_json::from_str(&read(&record)).unwrap();
    assert_eq!(
        seen["event"],
        serde_json::from_str::<serde_json::Value>(&event.to_json()).unwrap()
    );
    assert_eq!(seen["region"], "eu-west-1");
    assert_eq!(seen["endpoint"], "http://127.0.0.1:4566");
    assert_eq!(seen["access_key"], "ASIACOFFERTEST000001");
    assert_eq!(seen["secret_key"], SECRET_ACCESS_KEY);
    assert_eq!(seen["token"], SESSION_TOKEN);
    assert_eq!(seen["function_name"], "recording_rotation");
    assert!(seen["remaining_ms"].as_i64().unwrap() > 0);
    let OutcomeDetail::Exited { stderr, .. } = outcome.detail else {
        panic!("expected an exit outcome");
    };
    assert!(stderr.contains("at step createSecret"), "{stderr}");

    // A handler that raises: exit status 1, the exception at the end of stderr.
    let err = invoke_executable(
        &exe,
        &RotationEvent {
            step: Step::TestSecret,
            ..event
        },
        &creds(),
    )
    .await
    .unwrap_err();
    let InvokeErrorKind::Exited { code, stderr, .. } = &err.kind else {
        panic!("expected an exit error, got {err:?}");
    };
    assert_eq!(*code, Some(1));
    assert!(
        stderr.contains("ValueError: the new password does not log in (for the test)"),
        "{stderr}"
    );
}
