//! The root of trust, end to end through the `coffer` binary:
//! - `coffer root-key rotate` on a running server: readers hammering GetSecretValue see no
//!   error during the rotation, and after a restart every value reads back under the new key;
//! - a store whose root key lives in a PKCS#11 token (SoftHSM2): init, serve, restart, read;
//!   and the key-file mode cannot open that store.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`), and for the PKCS#11 test the
//! Debian package softhsm2 (`scripts/setup-system` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use coffer_e2e::{Server, coffer_bin, init_data_dir, init_data_dir_with};

const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Long and unusual, so that "the descriptor does not contain it" cannot fail by a random hex
/// or base64 check blob happening to hold it (a 4-digit PIN did, about once in a few hundred runs).
const TOKEN_PIN: &str = "coffer-e2e-pin-7f3a";

async fn create(server: &Server, name: &str, value: &str) {
    server
        .client()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn read(server: &Server, name: &str) -> Option<String> {
    server
        .client()
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .ok()
        .and_then(|o| o.secret_string().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_the_root_key_under_load_loses_no_read() {
    let dir = tempfile::tempdir().unwrap();
    let init = init_data_dir(dir.path()).unwrap();
    let server = Arc::new(Server::data_dir(dir.path(), &init, &[]).unwrap());
    let secrets: Vec<(String, String)> = (0..20)
        .map(|i| (format!("app/{i}"), format!("value-{i}")))
        .collect();
    for (name, value) in &secrets {
        create(&server, name, value).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (server, stop, reads, failures) = (
            server.clone(),
            stop.clone(),
            reads.clone(),
            failures.clone(),
        );
        let secrets = secrets.clone();
        readers.push(tokio::spawn(async move {
            let client = server.client();
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let (name, value) = &secrets[i % secrets.len()];
                match client.get_secret_value().secret_id(name).send().await {
                    Ok(o) if o.secret_string() == Some(value.as_str()) => {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("read of {name} during rotation failed: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before = reads.load(Ordering::Relaxed);
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(coffer_bin().unwrap())
            .args(["root-key", "rotate", "--data-dir"])
            .arg(&dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rotate failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("generation 2 is in use"), "{stdout}");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads failed during the rotation"
    );
    assert!(
        reads.load(Ordering::Relaxed) > before,
        "the readers made no progress while the rotation ran"
    );
    assert!(
        !dir.path().join("root.key").exists(),
        "the old root key is destroyed"
    );
    assert!(dir.path().join("root-2.key").exists());

    let server = Arc::try_unwrap(server).ok().expect("readers are done");
    server.stop().unwrap();
    let server = Server::data_dir(dir.path(), &init, &[]).unwrap();
    for (name, value) in &secrets {
        assert_eq!(
            read(&server, name).await.as_deref(),
            Some(value.as_str()),
            "{name}"
        );
    }
}

/// A SoftHSM token in `dir`, and the environment that points SoftHSM and coffer at it.
fn softhsm_token(dir: &Path) -> Vec<(String, String)> {
    assert!(
        Path::new(SOFTHSM_MODULE).exists(),
        "{SOFTHSM_MODULE} is missing: install softhsm2 (scripts/setup-system)"
    );
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let env = vec![
        ("SOFTHSM2_CONF".to_owned(), conf.display().to_string()),
        ("COFFER_PKCS11_MODULE".to_owned(), SOFTHSM_MODULE.to_owned()),
        ("COFFER_PKCS11_PIN".to_owned(), TOKEN_PIN.to_owned()),
    ];
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "coffer-e2e",
            "--pin",
            TOKEN_PIN,
            "--so-pin",
            "8765",
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs (install softhsm2: scripts/setup-system)");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    env
}

#[tokio::test]
async fn a_pkcs11_root_key_serves_across_restarts_and_the_key_file_mode_cannot_open_it() {
    let hsm = tempfile::tempdir().unwrap();
    let env = softhsm_token(hsm.path());
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("store");
    let init = init_data_dir_with(
        &dir,
        &["--root-key", "pkcs11", "--pkcs11-token-label", "coffer-e2e"],
        &env_refs,
    )
    .unwrap();
    assert!(
        !dir.join("root.key").exists(),
        "no key file for a PKCS#11 store"
    );
    let descriptor = std::fs::read_to_string(dir.join("root-key.json")).unwrap();
    assert!(descriptor.contains("\"pkcs11\""), "{descriptor}");
    assert!(!descriptor.contains(TOKEN_PIN), "the PIN is never stored");

    let server = Server::data_dir(&dir, &init, &env_refs).unwrap();
    create(&server, "hsm/secret", "sealed-by-the-token").await;
    server.stop().unwrap();

    // Restarted (the provider comes from the store's descriptor): the value reads back.
    let server = Server::data_dir(&dir, &init, &env_refs).unwrap();
    assert_eq!(
        read(&server, "hsm/secret").await.as_deref(),
        Some("sealed-by-the-token")
    );
    // Rotation inside the token works too.
    let out = Command::new(coffer_bin().unwrap())
        .args(["root-key", "rotate", "--data-dir"])
        .arg(&dir)
        .envs(env_refs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(&server, "hsm/secret").await.as_deref(),
        Some("sealed-by-the-token")
    );
    server.stop().unwrap();

    // The key-file mode refuses the store, saying what to do.
    let out = Command::new(coffer_bin().unwrap())
        .args([
            "server",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--root-key",
            "file",
            "--data-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("PKCS#11"), "{stderr}");
    // And a wrong PIN does not open it either.
    let out = Command::new(coffer_bin().unwrap())
        .args([
            "server",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir)
        .envs(env_refs.iter().copied())
        .env("COFFER_PKCS11_PIN", "0000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("pin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_passphrase_root_key_opens_only_with_its_passphrase() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("store");
    // Cheap Argon2 settings for the test; production stores record 64 MiB, t=3.
    let env = [
        ("COFFER_ROOT_PASSPHRASE", "correct horse battery staple"),
        ("COFFER_ARGON2_TEST_PARAMS", "1"),
    ];
    let init = init_data_dir_with(&dir, &["--root-key", "passphrase"], &env).unwrap();
    assert!(
        !dir.join("root.key").exists(),
        "no key file for a passphrase store"
    );
    let descriptor = std::fs::read_to_string(dir.join("root-key.json")).unwrap();
    assert!(descriptor.contains("\"passphrase\""), "{descriptor}");
    assert!(
        !descriptor.contains("correct horse"),
        "the passphrase is never stored"
    );

    let server = Server::data_dir(&dir, &init, &env).unwrap();
    create(&server, "pp/secret", "behind-a-passphrase").await;
    server.stop().unwrap();
    let server = Server::data_dir(&dir, &init, &env).unwrap();
    assert_eq!(
        read(&server, "pp/secret").await.as_deref(),
        Some("behind-a-passphrase")
    );
    server.stop().unwrap();

    for (passphrase, expect) in [("wrong passphrase", "passphrase does not unlock"), ("", "")] {
        let mut cmd = Command::new(coffer_bin().unwrap());
        cmd.args([
            "server",
            "--insecure-http",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&dir)
        .env_remove("COFFER_ROOT_PASSPHRASE");
        if !passphrase.is_empty() {
            cmd.env("COFFER_ROOT_PASSPHRASE", passphrase);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        if expect.is_empty() {
            assert!(stderr.contains("COFFER_ROOT_PASSPHRASE"), "{stderr}");
        } else {
            assert!(stderr.contains(expect), "{stderr}");
        }
    }
}
