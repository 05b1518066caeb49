#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use coffer_rootkey::{
    DESCRIPTOR_FILE, ProviderKind, RootKeyError, Unlock, begin_rotation, create,
    create_insecure_for_tests, open,
};
use common::{descriptor_json, lifecycle};
use zeroize::Zeroizing;

const PASSPHRASE: &str = "canary passphrase 7f3a";

fn unlock(p: &str) -> Unlock {
    Unlock::Passphrase(Zeroizing::new(p.to_string()))
}

#[test]
fn passphrase_store_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let keys = create_insecure_for_tests(dir.path(), &unlock(PASSPHRASE)).unwrap();
    let listed = |g: u32| {
        descriptor_json(dir.path())["generations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["generation"] == g && e["key"]["sealed_key"].is_string())
    };
    lifecycle(dir.path(), &unlock(PASSPHRASE), keys, "root/1", &listed);
    // A passphrase store keeps everything in the descriptor: no key files.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [DESCRIPTOR_FILE]);
}

#[test]
fn wrong_or_empty_passphrase_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        create_insecure_for_tests(dir.path(), &unlock("")),
        Err(RootKeyError::EmptyPassphrase)
    ));
    assert!(!dir.path().join(DESCRIPTOR_FILE).exists());

    let keys = create_insecure_for_tests(dir.path(), &unlock(PASSPHRASE)).unwrap();
    let blob = keys.seal(b"v", b"").unwrap();
    for wrong in ["canary passphrase 7f3b", "", "Canary passphrase 7f3a"] {
        let err = open(dir.path(), &unlock(wrong)).unwrap_err();
        assert!(matches!(err, RootKeyError::WrongPassphrase), "{err:?}");
        assert!(
            err.to_string()
                .contains("the passphrase does not unlock this store"),
            "{err}"
        );
    }
    // Still wrong in the middle of a rotation (two generations, both refused).
    let rotating = begin_rotation(dir.path(), &keys).unwrap();
    assert!(matches!(
        open(dir.path(), &unlock("nope")),
        Err(RootKeyError::WrongPassphrase)
    ));
    let ok = open(dir.path(), &unlock(PASSPHRASE)).unwrap();
    assert_eq!(ok.open(&blob, b"").unwrap().expose(), b"v");
    drop(rotating);
}

#[test]
fn a_damaged_sealed_key_is_corruption_not_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let keys = create_insecure_for_tests(dir.path(), &unlock(PASSPHRASE)).unwrap();
    begin_rotation(dir.path(), &keys).unwrap();
    let path = dir.path().join(DESCRIPTOR_FILE);
    let mut v = descriptor_json(dir.path());
    let sealed = v["generations"][0]["key"]["sealed_key"]
        .as_str()
        .unwrap()
        .to_string();
    let flipped = format!(
        "{}{}",
        &sealed[..sealed.len() - 1],
        if sealed.ends_with('0') { '1' } else { '0' }
    );
    v["generations"][0]["key"]["sealed_key"] = flipped.into();
    fs::write(&path, v.to_string()).unwrap();
    let err = open(dir.path(), &unlock(PASSPHRASE)).unwrap_err();
    assert!(matches!(err, RootKeyError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("generation 1"), "{err}");
}

#[test]
fn wrong_provider_kind_is_refused_with_the_way_to_start() {
    let dir = tempfile::tempdir().unwrap();
    create_insecure_for_tests(dir.path(), &unlock(PASSPHRASE)).unwrap();
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(
        matches!(
            err,
            RootKeyError::WrongProvider {
                store: ProviderKind::Passphrase,
                given: ProviderKind::File
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("start coffer with --root-key passphrase and COFFER_ROOT_PASSPHRASE"),
        "{err}"
    );
}

#[test]
fn secrets_never_reach_disk_debug_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let u = unlock(PASSPHRASE);
    let keys = create_insecure_for_tests(dir.path(), &u).unwrap();
    let text = fs::read_to_string(dir.path().join(DESCRIPTOR_FILE)).unwrap();
    assert!(!text.contains("canary"), "{text}");
    let errs = [
        open(dir.path(), &unlock("canary wrong 1"))
            .unwrap_err()
            .to_string(),
        open(dir.path(), &Unlock::File).unwrap_err().to_string(),
    ];
    let printed = format!("{u:?} {keys:?} {:?} {errs:?}", keys.current());
    assert!(!printed.contains("canary"), "{printed}");
    assert!(printed.contains("<redacted>"), "{printed}");
}

#[test]
fn create_uses_production_argon2_parameters_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    create(dir.path(), &unlock(PASSPHRASE)).unwrap();
    eprintln!("Argon2id create took {:?}", started.elapsed());
    let kdf = &descriptor_json(dir.path())["generations"][0]["key"]["kdf"];
    let cheap = std::env::var("COFFER_ARGON2_TEST_PARAMS").is_ok_and(|v| v == "1");
    let want = if cheap { (64, 1, 1) } else { (65536, 3, 1) };
    assert_eq!(kdf["algorithm"], "argon2id");
    assert_eq!(
        (
            kdf["m_kib"].as_u64().unwrap(),
            kdf["t"].as_u64().unwrap(),
            kdf["p"].as_u64().unwrap()
        ),
        want
    );
    assert_eq!(kdf["salt"].as_str().unwrap().len(), 32);

    // The salt is random per store.
    let other = tempfile::tempdir().unwrap();
    create_insecure_for_tests(other.path(), &unlock(PASSPHRASE)).unwrap();
    assert_ne!(
        descriptor_json(other.path())["generations"][0]["key"]["kdf"]["salt"],
        kdf["salt"]
    );
}
