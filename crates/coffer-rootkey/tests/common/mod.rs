//! Shared by every provider's tests: the whole life of a store (create, open, seal, tamper,
//! rotate, finish), with provider-specific checks of where the key material is.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use coffer_crypto::envelope_key_id;
use coffer_rootkey::{
    DESCRIPTOR_FILE, RootKeyError, RootKeys, Unlock, begin_rotation, finish_rotation, open,
    provider_of,
};

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn descriptor_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join(DESCRIPTOR_FILE)).unwrap()).unwrap()
}

/// (generation, label, state) of every listed generation.
pub fn listed(dir: &Path) -> Vec<(u64, String, String)> {
    descriptor_json(dir)["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["generation"].as_u64().unwrap(),
                g["label"].as_str().unwrap().to_string(),
                g["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every single-bit flip, truncation and AAD change must be refused.
pub fn assert_tamper_refused(keys: &RootKeys, blob: &[u8], aad: &[u8]) {
    assert!(matches!(
        keys.open(blob, b"other row"),
        Err(RootKeyError::Open)
    ));
    assert!(keys.open(blob, &[aad, b"x"].concat()).is_err());
    for i in 0..blob.len() {
        let mut t = blob.to_vec();
        t[i] ^= 0x01;
        assert!(
            keys.open(&t, aad).is_err(),
            "flip at byte {i} went unnoticed"
        );
    }
    assert!(keys.open(&blob[..blob.len() - 1], aad).is_err());
    assert!(keys.open(&[], aad).is_err());
}

/// Drives a freshly created store through its whole life. `material_exists(n)` says whether
/// generation n's key material (file, sealed blob, token object) is still there.
pub fn lifecycle(
    dir: &Path,
    unlock: &Unlock,
    created: RootKeys,
    first_label: &str,
    material_exists: &dyn Fn(u32) -> bool,
) {
    let kind = unlock.kind();
    assert_eq!(created.provider(), kind);
    assert_eq!(provider_of(dir).unwrap(), Some(kind));
    assert_eq!(mode(&dir.join(DESCRIPTOR_FILE)), 0o600);
    assert_eq!(created.current().generation(), 1);
    assert_eq!(created.current().label(), first_label);
    assert!(!created.rotation_in_progress());
    assert!(material_exists(1));
    assert_eq!(
        listed(dir),
        [(1, first_label.to_string(), "current".into())]
    );

    // Seal with the created set, open with a set opened from disk.
    let blob1 = created.seal(b"gen-one secret", b"row-1").unwrap();
    assert_eq!(envelope_key_id(&blob1).unwrap(), first_label);
    assert!(created.is_current(&blob1));
    assert!(!contains(&blob1, b"gen-one"));
    assert_ne!(blob1, created.seal(b"gen-one secret", b"row-1").unwrap());
    let reopened = open(dir, unlock).unwrap();
    assert_eq!(
        reopened.open(&blob1, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    assert_eq!(
        reopened.current().open(&blob1, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    let direct = reopened.current().seal(b"direct", b"").unwrap();
    assert_eq!(created.open(&direct, b"").unwrap().expose(), b"direct");
    assert_eq!(
        created
            .open(&created.seal(b"", b"").unwrap(), b"")
            .unwrap()
            .len(),
        0
    );
    assert_tamper_refused(&reopened, &blob1, b"row-1");

    // Begin: generation 2 seals, generation 1 still opens.
    let rotating = begin_rotation(dir, &reopened).unwrap();
    assert!(rotating.rotation_in_progress());
    assert_eq!(rotating.provider(), kind);
    assert_eq!(rotating.current().generation(), 2);
    assert_eq!(rotating.current().label(), "root/2");
    assert!(material_exists(1) && material_exists(2));
    assert_eq!(
        listed(dir),
        [
            (1, first_label.to_string(), "retiring".into()),
            (2, "root/2".to_string(), "current".into())
        ]
    );
    assert_eq!(mode(&dir.join(DESCRIPTOR_FILE)), 0o600);
    assert_eq!(
        rotating.open(&blob1, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    assert!(!rotating.is_current(&blob1));
    let blob2 = rotating.seal(b"gen-two secret", b"row-2").unwrap();
    assert_eq!(envelope_key_id(&blob2).unwrap(), "root/2");
    assert!(rotating.is_current(&blob2));
    assert!(!rotating.is_current(b"not an envelope"));
    assert_tamper_refused(&rotating, &blob2, b"row-2");
    // The set from before the rotation cannot open what generation 2 sealed.
    assert!(matches!(
        reopened.open(&blob2, b"row-2"),
        Err(RootKeyError::UnknownGeneration { .. })
    ));

    // Begin again resumes; a set from before the rotation is stale and refused.
    let again = begin_rotation(dir, &rotating).unwrap();
    assert_eq!(again.current().generation(), 2);
    assert_eq!(listed(dir).len(), 2);
    let err = begin_rotation(dir, &reopened).unwrap_err();
    assert!(matches!(err, RootKeyError::Stale { .. }), "{err}");

    // A restart in the middle of the rotation sees both generations.
    let mid = open(dir, unlock).unwrap();
    assert!(mid.rotation_in_progress());
    assert_eq!(mid.current().label(), "root/2");
    assert_eq!(
        mid.open(&blob1, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    assert_eq!(
        mid.open(&blob2, b"row-2").unwrap().expose(),
        b"gen-two secret"
    );
    assert!(mid.is_current(&blob2) && !mid.is_current(&blob1));

    // The caller re-seals, then finishes: generation 1 and its material are gone.
    let plain = rotating.open(&blob1, b"row-1").unwrap();
    let resealed = rotating.seal(plain.expose(), b"row-1").unwrap();
    let done = finish_rotation(dir, &rotating).unwrap();
    assert!(!done.rotation_in_progress());
    assert_eq!(done.current().generation(), 2);
    assert!(
        !material_exists(1),
        "generation 1 material survived finish_rotation"
    );
    assert!(material_exists(2));
    assert_eq!(listed(dir), [(2, "root/2".to_string(), "current".into())]);
    assert!(matches!(
        done.open(&blob1, b"row-1"),
        Err(RootKeyError::UnknownGeneration { .. })
    ));
    assert_eq!(
        done.open(&resealed, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    assert_eq!(
        done.open(&blob2, b"row-2").unwrap().expose(),
        b"gen-two secret"
    );

    let after = open(dir, unlock).unwrap();
    assert!(!after.rotation_in_progress());
    let err = after.open(&blob1, b"row-1").unwrap_err();
    assert!(matches!(err, RootKeyError::UnknownGeneration { .. }));
    assert!(err.to_string().contains(first_label), "{err}");
    assert_eq!(
        after.open(&resealed, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );

    // Finishing again (with the new set, or resuming with the old one) changes nothing.
    let same = finish_rotation(dir, &done).unwrap();
    assert_eq!(same.current().generation(), 2);
    let resumed = finish_rotation(dir, &rotating).unwrap();
    assert!(!resumed.rotation_in_progress());
    assert!(!material_exists(1) && material_exists(2));
    assert_eq!(listed(dir).len(), 1);

    // A second rotation from the finished set works the same way.
    let third = begin_rotation(dir, &after).unwrap();
    assert_eq!(third.current().label(), "root/3");
    assert_eq!(
        third.open(&resealed, b"row-1").unwrap().expose(),
        b"gen-one secret"
    );
    let third = finish_rotation(dir, &third).unwrap();
    assert!(!material_exists(2) && material_exists(3));
    assert!(third.open(&resealed, b"row-1").is_err());

    for keys in [&created, &rotating, &done, &third] {
        let printed = format!("{keys:?} {:?}", keys.current());
        assert!(printed.contains("root"), "{printed}");
        assert!(!printed.contains("secret"), "{printed}");
    }
}
