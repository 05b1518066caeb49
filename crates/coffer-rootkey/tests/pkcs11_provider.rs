//! PKCS#11 against SoftHSM2. SoftHSM reads `SOFTHSM2_CONF` when the module is initialised,
//! which happens once per process, and setting environment variables in a running test
//! process needs `unsafe`. So the one test here builds a private token directory, then runs
//! itself again as a child process with `SOFTHSM2_CONF` set, where the scenarios run in order.
//! Works the same under `cargo test` and cargo-nextest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use coffer_crypto::envelope_key_id;
use coffer_rootkey::{
    Pkcs11Config, ProviderKind, RootKeyError, Unlock, begin_rotation, create, finish_rotation,
    open, provider_of,
};
use common::{assert_tamper_refused, descriptor_json, lifecycle};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "pin-canary-4711";
const SO_PIN: &str = "so-pin-5678";
/// Tokens the child finds initialised: one per scenario that counts objects, plus spares.
const TOKENS: [&str; 3] = ["coffer-life", "coffer-test", "coffer-other"];
const CHILD_ENV: &str = "COFFER_ROOTKEY_SOFTHSM_CHILD";

#[test]
fn softhsm2() {
    if std::env::var_os(CHILD_ENV).is_some() {
        scenarios();
        return;
    }
    assert!(
        Path::new(MODULE).exists(),
        "SoftHSM2 module {MODULE} is missing: install softhsm2: scripts/setup-system"
    );
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    for label in TOKENS {
        let out = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label, "--pin", PIN])
            .args(["--so-pin", SO_PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run softhsm2-util ({e}): install softhsm2: scripts/setup-system")
            });
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["softhsm2", "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SoftHSM2 scenarios failed:\n{stdout}\n{stderr}"
    );
    // Guard against the child silently running nothing.
    assert!(
        stderr.contains("all SoftHSM2 scenarios passed"),
        "{stdout}\n{stderr}"
    );
}

fn scenarios() {
    let run = |name: &str, f: fn()| {
        eprintln!("scenario: {name}");
        f();
    };
    run("lifecycle in a token", lifecycle_in_a_token);
    run(
        "keys are generated inside the token and never leave it",
        key_objects_are_sensitive,
    );
    run(
        "wrong PIN, token, module or provider",
        wrong_credentials_are_refused,
    );
    run(
        "two stores share a token without sharing keys",
        stores_sharing_a_token,
    );
    run("a deleted key object is reported", missing_key_object);
    run("sessions are shared safely across threads", concurrent_use);
    run("the PIN never shows", pin_never_shows);
    eprintln!("all SoftHSM2 scenarios passed");
}

fn config(token: &str, pin: &str) -> Pkcs11Config {
    Pkcs11Config {
        module: MODULE.into(),
        token_label: token.to_string(),
        pin: Zeroizing::new(pin.to_string()),
    }
}

fn unlock(token: &str) -> Unlock {
    Unlock::Pkcs11(config(token, PIN))
}

/// An independent session to inspect a token, as another application would.
fn probe(token: &str) -> Session {
    let ctx = Pkcs11::new(std::fs::canonicalize(MODULE).unwrap()).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == token)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(PIN))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    session
}

fn objects_labelled(token: &str, label: &str) -> Vec<ObjectHandle> {
    probe(token)
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()
}

fn lifecycle_in_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = TOKENS[0];
    let keys = create(dir.path(), &unlock(token)).unwrap();
    assert_eq!(provider_of(dir.path()).unwrap(), Some(ProviderKind::Pkcs11));
    let d = descriptor_json(dir.path());
    assert_eq!(d["pkcs11"]["token_label"], token);
    assert_eq!(d["pkcs11"]["module"], MODULE);
    assert_eq!(d["generations"][0]["key"]["key_label"], "coffer-root-1");
    assert_eq!(
        d["generations"][0]["key"]["key_id"].as_str().unwrap().len(),
        32
    );
    lifecycle(
        dir.path(),
        &unlock(token),
        keys,
        "root/1",
        &|g| match objects_labelled(token, &format!("coffer-root-{g}")).len() {
            0 => false,
            1 => true,
            n => panic!("{n} objects for generation {g}"),
        },
    );
}

fn key_objects_are_sensitive() {
    let dir = tempfile::tempdir().unwrap();
    let token = TOKENS[1];
    let keys = create(dir.path(), &unlock(token)).unwrap();
    let id = coffer_hex_decode(
        descriptor_json(dir.path())["generations"][0]["key"]["key_id"]
            .as_str()
            .unwrap(),
    );
    let session = probe(token);
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(b"coffer-root-1".to_vec()),
            Attribute::Id(id),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let attrs = session
        .get_attributes(
            found[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    let mut seen = 0;
    for a in attrs {
        match a {
            Attribute::Token(v)
            | Attribute::Sensitive(v)
            | Attribute::Encrypt(v)
            | Attribute::Decrypt(v) => {
                assert!(v);
                seen += 1;
            }
            Attribute::Extractable(v) => {
                assert!(!v);
                seen += 1;
            }
            Attribute::ValueLen(n) => {
                assert_eq!(u64::from(n), 32);
                seen += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, 6);
    // The value cannot be read out.
    assert!(
        session
            .get_attributes(found[0], &[AttributeType::Value])
            .map_or(true, |v| v.is_empty())
    );

    // Same envelope as coffer-crypto: the header names the generation, and it round-trips.
    let blob = keys.seal(b"in the token", b"aad").unwrap();
    assert_eq!(envelope_key_id(&blob).unwrap(), "root/1");
    assert_eq!(blob.len(), 2 + 6 + 12 + 12 + 16);
    assert_tamper_refused(&keys, &blob, b"aad");
}

fn coffer_hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn wrong_credentials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = TOKENS[2];
    let keys = create(dir.path(), &unlock(token)).unwrap();

    // While this process is logged in (the token would not check again) and after logout.
    let err = open(dir.path(), &Unlock::Pkcs11(config(token, "0000"))).unwrap_err();
    assert!(matches!(err, RootKeyError::WrongPin { .. }), "{err:?}");
    assert!(err.to_string().contains("COFFER_PKCS11_PIN"), "{err}");
    drop(keys);
    let err = open(dir.path(), &Unlock::Pkcs11(config(token, "0000"))).unwrap_err();
    assert!(matches!(err, RootKeyError::WrongPin { .. }), "{err:?}");
    let keys = open(dir.path(), &unlock(token)).unwrap();

    let err = open(dir.path(), &Unlock::Pkcs11(config("coffer-test", PIN))).unwrap_err();
    assert!(matches!(err, RootKeyError::TokenMismatch { .. }), "{err:?}");
    // An empty token label means "the one the descriptor names".
    open(dir.path(), &Unlock::Pkcs11(config("", PIN))).unwrap();

    let mut missing = config(token, PIN);
    missing.module = PathBuf::from("/nonexistent/libpkcs11.so");
    let err = open(dir.path(), &Unlock::Pkcs11(missing)).unwrap_err();
    assert!(matches!(err, RootKeyError::Module { .. }), "{err:?}");

    let other = tempfile::tempdir().unwrap();
    let err = create(other.path(), &unlock("no-such-token")).unwrap_err();
    assert!(matches!(err, RootKeyError::TokenNotFound { .. }), "{err:?}");
    assert_eq!(provider_of(other.path()).unwrap(), None);

    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert_eq!(
        err.to_string(),
        "this store's root key is held in a PKCS#11 token; start coffer with --root-key pkcs11 and COFFER_PKCS11_PIN"
    );
    let err = open(dir.path(), &Unlock::Passphrase(Zeroizing::new(PIN.into()))).unwrap_err();
    assert!(matches!(
        err,
        RootKeyError::WrongProvider {
            store: ProviderKind::Pkcs11,
            ..
        }
    ));
    drop(keys);
}

fn stores_sharing_a_token() {
    let token = TOKENS[1];
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = create(a_dir.path(), &unlock(token)).unwrap();
    let b = create(b_dir.path(), &unlock(token)).unwrap();
    // Same label "root/1" in both headers, different keys: the random CKA_ID keeps them apart.
    let blob = a.seal(b"a's", b"").unwrap();
    assert!(matches!(b.open(&blob, b""), Err(RootKeyError::Open)));
    assert_eq!(
        open(a_dir.path(), &unlock(token))
            .unwrap()
            .open(&blob, b"")
            .unwrap()
            .expose(),
        b"a's"
    );
    // Rotating and finishing b destroys only b's generation 1.
    let b2 = finish_rotation(b_dir.path(), &begin_rotation(b_dir.path(), &b).unwrap()).unwrap();
    assert!(b2.current().generation() == 2);
    assert_eq!(
        open(a_dir.path(), &unlock(token))
            .unwrap()
            .open(&blob, b"")
            .unwrap()
            .expose(),
        b"a's"
    );
}

fn missing_key_object() {
    let dir = tempfile::tempdir().unwrap();
    let token = TOKENS[2];
    let keys = create(dir.path(), &unlock(token)).unwrap();
    let rotating = begin_rotation(dir.path(), &keys).unwrap();
    drop((keys, rotating));
    let id = coffer_hex_decode(
        descriptor_json(dir.path())["generations"][1]["key"]["key_id"]
            .as_str()
            .unwrap(),
    );
    let session = probe(token);
    let found = session
        .find_objects(&[
            Attribute::Label(b"coffer-root-2".to_vec()),
            Attribute::Id(id),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    session.destroy_object(found[0]).unwrap();
    drop(session);
    let err = open(dir.path(), &unlock(token)).unwrap_err();
    assert!(
        matches!(err, RootKeyError::KeyObjectMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("coffer-root-2"), "{err}");
}

fn concurrent_use() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(create(dir.path(), &unlock(TOKENS[1])).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let keys = keys.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let aad = format!("{t}/{i}");
                    let blob = keys.seal(aad.as_bytes(), aad.as_bytes()).unwrap();
                    assert_eq!(
                        keys.open(&blob, aad.as_bytes()).unwrap().expose(),
                        aad.as_bytes()
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn pin_never_shows() {
    let dir = tempfile::tempdir().unwrap();
    let u = unlock(TOKENS[1]);
    let keys = create(dir.path(), &u).unwrap();
    let descriptor =
        std::fs::read_to_string(dir.path().join(coffer_rootkey::DESCRIPTOR_FILE)).unwrap();
    let errors = [
        open(
            dir.path(),
            &Unlock::Pkcs11(config(TOKENS[1], "pin-canary-wrong")),
        )
        .unwrap_err(),
        open(dir.path(), &Unlock::File).unwrap_err(),
    ];
    let printed = format!(
        "{u:?} {keys:?} {:?} {errors:?} {} {}",
        keys.current(),
        errors[0],
        errors[1]
    );
    assert!(!printed.contains("canary"), "{printed}");
    assert!(!descriptor.contains("canary"), "{descriptor}");
    assert!(printed.contains("<redacted>"), "{printed}");
}
