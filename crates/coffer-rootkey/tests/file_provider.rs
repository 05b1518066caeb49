#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use coffer_crypto::{ROOT_KEY_FILE, SymmetricKey, hex};
use coffer_rootkey::{
    DESCRIPTOR_FILE, ProviderKind, RootKeyError, Unlock, begin_rotation, create, finish_rotation,
    open, provider_of,
};
use common::{descriptor_json, lifecycle, listed, mode};
use zeroize::Zeroizing;

#[test]
fn file_store_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let keys = create(dir.path(), &Unlock::File).unwrap();
    assert_eq!(mode(&dir.path().join(ROOT_KEY_FILE)), 0o600);
    let key_file = |generation: u32| {
        dir.path().join(if generation == 1 {
            ROOT_KEY_FILE.to_string()
        } else {
            format!("root-{generation}.key")
        })
    };
    lifecycle(dir.path(), &Unlock::File, keys, "root", &|g| {
        key_file(g).exists()
    });
    assert_eq!(mode(&key_file(3)), 0o600);
    assert_eq!(
        descriptor_json(dir.path())["generations"][0]["key"],
        serde_json::json!({"type": "file", "file": "root-3.key"})
    );
}

#[test]
fn legacy_root_key_only_dir_opens_and_gets_a_descriptor_when_rotating() {
    let dir = tempfile::tempdir().unwrap();
    // A data dir made by coffer before this crate existed, and a value sealed the old way.
    let legacy = SymmetricKey::create_root_key_file(&dir.path().join(ROOT_KEY_FILE)).unwrap();
    let old_blob = legacy.seal("root", b"account key", b"acct-1").unwrap();

    assert_eq!(provider_of(dir.path()).unwrap(), Some(ProviderKind::File));
    let keys = open(dir.path(), &Unlock::File).unwrap();
    assert_eq!(keys.current().label(), "root");
    assert_eq!(keys.current().generation(), 1);
    assert_eq!(
        keys.open(&old_blob, b"acct-1").unwrap().expose(),
        b"account key"
    );
    assert!(keys.is_current(&old_blob));
    // Blobs sealed through the crate open the old way too: nothing about the format changed.
    let new_blob = keys.seal(b"v", b"ctx").unwrap();
    assert_eq!(legacy.open(&new_blob, b"ctx").unwrap().expose(), b"v");
    assert!(
        !dir.path().join(DESCRIPTOR_FILE).exists(),
        "opening must not write a descriptor"
    );
    for other in [
        Unlock::Passphrase(Zeroizing::new("pw".into())),
        Unlock::Pkcs11(coffer_rootkey::Pkcs11Config {
            module: "/nonexistent.so".into(),
            token_label: "t".into(),
            pin: Zeroizing::new("1".into()),
        }),
    ] {
        let err = open(dir.path(), &other).unwrap_err();
        assert!(err.to_string().contains("--root-key file"), "{err}");
    }
    assert!(matches!(
        create(dir.path(), &Unlock::File),
        Err(RootKeyError::AlreadyInitialised { .. })
    ));

    let rotating = begin_rotation(dir.path(), &keys).unwrap();
    assert_eq!(mode(&dir.path().join(DESCRIPTOR_FILE)), 0o600);
    assert_eq!(
        listed(dir.path()),
        [
            (1, "root".to_string(), "retiring".to_string()),
            (2, "root/2".to_string(), "current".to_string())
        ]
    );
    // The descriptor written for the legacy generation carries a working check blob.
    let reopened = open(dir.path(), &Unlock::File).unwrap();
    assert!(reopened.rotation_in_progress());
    assert_eq!(
        reopened.open(&old_blob, b"acct-1").unwrap().expose(),
        b"account key"
    );

    let done = finish_rotation(dir.path(), &rotating).unwrap();
    assert!(!dir.path().join(ROOT_KEY_FILE).exists());
    assert!(done.open(&old_blob, b"acct-1").is_err());
    assert_eq!(provider_of(dir.path()).unwrap(), Some(ProviderKind::File));
}

#[test]
fn a_different_root_key_file_is_named_as_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), &Unlock::File).unwrap();
    let path = dir.path().join(ROOT_KEY_FILE);
    fs::remove_file(&path).unwrap();
    SymmetricKey::create_root_key_file(&path).unwrap();
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(
        matches!(err, RootKeyError::WrongKey { generation: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("restore"), "{err}");

    fs::remove_file(&path).unwrap();
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(matches!(err, RootKeyError::KeyFile(_)), "{err:?}");
}

#[test]
fn loose_permissions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), &Unlock::File).unwrap();
    let descriptor = dir.path().join(DESCRIPTOR_FILE);
    fs::set_permissions(&descriptor, fs::Permissions::from_mode(0o644)).unwrap();
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(matches!(err, RootKeyError::Permissions { .. }), "{err:?}");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    assert!(provider_of(dir.path()).is_err());
    fs::set_permissions(&descriptor, fs::Permissions::from_mode(0o600)).unwrap();

    let key = dir.path().join(ROOT_KEY_FILE);
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn uninitialised_and_already_initialised_dirs() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(provider_of(dir.path()).unwrap(), None);
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(matches!(err, RootKeyError::NotInitialised { .. }));
    assert!(err.to_string().contains("coffer init"), "{err}");

    create(dir.path(), &Unlock::File).unwrap();
    for unlock in [
        Unlock::File,
        Unlock::Passphrase(Zeroizing::new("pw".into())),
    ] {
        assert!(matches!(
            create(dir.path(), &unlock),
            Err(RootKeyError::AlreadyInitialised { .. })
        ));
    }
    let err = open(dir.path(), &Unlock::Passphrase(Zeroizing::new("pw".into()))).unwrap_err();
    assert!(
        matches!(
            err,
            RootKeyError::WrongProvider {
                store: ProviderKind::File,
                given: ProviderKind::Passphrase
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("--root-key file"), "{err}");
}

#[test]
fn damaged_or_foreign_descriptors_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    create(dir.path(), &Unlock::File).unwrap();
    let path = dir.path().join(DESCRIPTOR_FILE);
    let good = fs::read_to_string(&path).unwrap();
    let write = |text: &str| fs::write(&path, text).unwrap();

    write(&good[..good.len() / 2]);
    assert!(matches!(
        open(dir.path(), &Unlock::File),
        Err(RootKeyError::Corrupt { .. })
    ));

    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["format"] = 2.into();
    write(&v.to_string());
    let err = open(dir.path(), &Unlock::File).unwrap_err();
    assert!(
        matches!(err, RootKeyError::NewerFormat { found: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade coffer"), "{err}");

    // The descriptor must not be able to point coffer at any other file.
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["generations"][0]["key"]["file"] = "../../etc/passwd".into();
    write(&v.to_string());
    assert!(matches!(
        open(dir.path(), &Unlock::File),
        Err(RootKeyError::Corrupt { .. })
    ));

    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["generations"][0]["state"] = "retiring".into();
    write(&v.to_string());
    assert!(matches!(
        open(dir.path(), &Unlock::File),
        Err(RootKeyError::Corrupt { .. })
    ));

    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v["generations"][0]["check"] = hex(b"not a sealed check blob at all, no").into();
    write(&v.to_string());
    assert!(matches!(
        open(dir.path(), &Unlock::File),
        Err(RootKeyError::WrongKey { .. })
    ));

    write(&good);
    open(dir.path(), &Unlock::File).unwrap();
}

#[test]
fn debug_output_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = create(dir.path(), &Unlock::File).unwrap();
    let begun = begin_rotation(dir.path(), &keys).unwrap();
    let printed = format!(
        "{keys:?} {begun:?} {:?} {:?}",
        keys.current(),
        begun.current()
    );
    for name in [ROOT_KEY_FILE, "root-2.key"] {
        let hex_key = fs::read_to_string(dir.path().join(name)).unwrap();
        let hex_key = hex_key.trim();
        assert_eq!(hex_key.len(), 64);
        assert!(!printed.contains(hex_key), "{printed}");
        assert!(!printed.contains(&hex_key[..16]), "{printed}");
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex_key[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let as_debug = format!("{:?}", &bytes[..6]);
        assert!(
            !printed.contains(as_debug.trim_end_matches(']')),
            "{printed}"
        );
    }
    assert!(printed.contains("<redacted>"), "{printed}");
}
