//! Virtual MFA devices through `Coffer` over a real SQLite store, with a manual clock: the
//! IAM operations with AWS's errors, and `verify_mfa_code` (the check STS makes): the ±1 step
//! window, no replay (also under concurrency), resync drift, and what deletes are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use coffer_core::clock::{Clock, ManualClock};
use coffer_core::*;
use coffer_crypto::otp;
use coffer_store::MfaStore;

const ACCOUNT: &str = "111122223333";
/// One second into a TOTP step, so that a test knows which step "now" is.
const START_MS: i64 = 1_700_000_010_000 + 1_000;
const STEP_MS: i64 = 30_000;

struct Fixture {
    dir: tempfile::TempDir,
    coffer: Arc<Coffer>,
    clock: Arc<ManualClock>,
    root: Caller,
}

fn caller(principal_arn: &str, principal_type: PrincipalType) -> Caller {
    Caller {
        account_id: ACCOUNT.into(),
        principal_arn: principal_arn.into(),
        principal_type,
        access_key_id: "AKIAEXAMPLE".into(),
        region: "us-east-1".into(),
        source_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        secure_transport: false,
        session: None,
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Coffer::init(
        dir.path(),
        &InitOptions {
            account_id: Some(ACCOUNT.into()),
        },
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at(START_MS));
    let coffer = Arc::new(Coffer::open(dir.path(), clock.clone()).unwrap());
    let root = caller(&format!("arn:aws:iam::{ACCOUNT}:root"), PrincipalType::Root);
    Fixture {
        dir,
        coffer,
        clock,
        root,
    }
}

/// A created device: its serial number and decoded seed.
struct Device {
    serial: String,
    seed: Vec<u8>,
}

impl Fixture {
    fn step(&self) -> i64 {
        self.clock.now_millis().div_euclid(STEP_MS)
    }

    fn advance_steps(&self, steps: i64) {
        self.clock.advance(steps * STEP_MS);
    }

    async fn user(&self, name: &str) {
        self.coffer
            .create_user(&self.root, name, None, vec![])
            .await
            .unwrap();
    }

    async fn device(&self, name: &str) -> Device {
        let d = self
            .coffer
            .create_virtual_mfa_device(&self.root, name, None, vec![])
            .await
            .unwrap();
        Device {
            seed: otp::base32_decode(d.base32_seed.as_str().unwrap()).unwrap(),
            serial: d.serial_number,
        }
    }

    /// A user with `device` enabled by the codes of the previous and the current step.
    async fn enabled(&self, user: &str, device: &str) -> Device {
        self.user(user).await;
        let d = self.device(device).await;
        let now = self.step();
        self.coffer
            .enable_mfa_device(
                &self.root,
                user,
                &d.serial,
                &code(&d, now - 1),
                &code(&d, now),
            )
            .await
            .unwrap();
        d
    }

    async fn verify(&self, user: &str, d: &Device, code: &str) -> Result<(), CoreError> {
        self.coffer
            .verify_mfa_code(ACCOUNT, user, &d.serial, code)
            .await
    }
}

fn code(d: &Device, step: i64) -> String {
    otp::hotp(&d.seed, u64::try_from(step).unwrap(), 6)
}

fn invalid_code() -> CoreError {
    CoreError::AccessDenied(
        "MultiFactorAuthentication failed with invalid MFA one time pass code.".into(),
    )
}

fn unvalidated() -> CoreError {
    CoreError::AccessDenied("MultiFactorAuthentication failed, unable to validate MFA code.  Please verify your MFA serial number is valid and associated with this user.".into())
}

fn bad_codes() -> CoreError {
    CoreError::InvalidAuthenticationCode("Authentication code for device is not valid.".into())
}

#[tokio::test]
async fn create_returns_a_seed_and_a_qr_code_once() {
    let f = fixture();
    let d = f
        .coffer
        .create_virtual_mfa_device(
            &f.root,
            "phone",
            Some("/team/"),
            vec![("owner".into(), "alice".into())],
        )
        .await
        .unwrap();
    assert_eq!(
        d.serial_number,
        format!("arn:aws:iam::{ACCOUNT}:mfa/team/phone")
    );
    let seed_text = d.base32_seed.as_str().unwrap();
    assert_eq!(seed_text.len(), 64, "40 bytes in Base32, as AWS gives");
    assert!(
        seed_text
            .bytes()
            .all(|b| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".contains(&b))
    );
    assert!(d.qr_code_png.expose().starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(d.tags, vec![("owner".to_string(), "alice".to_string())]);
    // Debug never shows the seed.
    assert!(!format!("{d:?}").contains(seed_text));

    // The stored record holds the seed sealed, never in the clear.
    let stored = f
        .coffer
        .store()
        .get_mfa_device(ACCOUNT, "/TEAM/PHONE")
        .await
        .unwrap()
        .unwrap();
    let seed = otp::base32_decode(seed_text).unwrap();
    assert!(!stored.sealed_seed.windows(seed.len()).any(|w| w == seed));
    assert!(
        !stored
            .sealed_seed
            .windows(64)
            .any(|w| w == seed_text.as_bytes())
    );
    assert!(!format!("{stored:?}").contains(seed_text));

    // Another device gets another seed.
    let other = f.device("other").await;
    assert_ne!(other.seed, seed);
}

#[tokio::test]
async fn create_refuses_duplicates_and_malformed_input() {
    let f = fixture();
    f.device("phone").await;
    let exists = CoreError::ResourceExists(
        "MFADevice entity at the same path and name already exists.".into(),
    );
    for name in ["phone", "PHONE"] {
        let e = f
            .coffer
            .create_virtual_mfa_device(&f.root, name, None, vec![])
            .await
            .unwrap_err();
        assert_eq!(e, exists, "{name}");
    }
    // The same name on another path is another device.
    f.coffer
        .create_virtual_mfa_device(&f.root, "phone", Some("/other/"), vec![])
        .await
        .unwrap();
    for (name, path) in [
        ("has space", None),
        ("", None),
        ("semi;colon", None),
        ("ok", Some("no-slashes")),
        ("ok", Some("/a b/")),
    ] {
        let e = f
            .coffer
            .create_virtual_mfa_device(&f.root, name, path, vec![])
            .await
            .unwrap_err();
        assert!(
            matches!(e, CoreError::Validation(_)),
            "{name:?} {path:?}: {e:?}"
        );
    }
    let e = f
        .coffer
        .create_virtual_mfa_device(&f.root, &"x".repeat(129), None, vec![])
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Validation(_)));
    let e = f
        .coffer
        .create_virtual_mfa_device(&f.root, "t", None, vec![("aws:x".into(), "v".into())])
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::InvalidParameter(_)), "{e:?}");
}

#[tokio::test]
async fn enable_needs_two_consecutive_codes_within_the_window() {
    let f = fixture();
    f.user("alice").await;
    let d = f.device("phone").await;
    let now = f.step();
    let enable = |c1: String, c2: String| {
        let (coffer, root, serial) = (f.coffer.clone(), f.root.clone(), d.serial.clone());
        async move {
            coffer
                .enable_mfa_device(&root, "alice", &serial, &c1, &c2)
                .await
        }
    };
    // Wrong pairs: reversed, not consecutive, the same code twice, too old, too new, random.
    for (a, b) in [
        (now, now - 1),
        (now - 1, now + 1),
        (now, now),
        (now - 3, now - 2),
        (now + 1, now + 2),
    ] {
        assert_eq!(
            enable(code(&d, a), code(&d, b)).await.unwrap_err(),
            bad_codes(),
            "steps {a}, {b}"
        );
    }
    let wrong = if code(&d, now) == "000000" {
        "000001"
    } else {
        "000000"
    };
    assert_eq!(
        enable(code(&d, now - 1), wrong.into()).await.unwrap_err(),
        bad_codes()
    );
    // Malformed codes are the model's validation errors.
    for (a, b) in [
        ("12345", "123456"),
        ("123456", "1234567"),
        ("12345a", "123456"),
    ] {
        let e = enable(a.into(), b.into()).await.unwrap_err();
        assert!(matches!(e, CoreError::Validation(_)), "{a} {b}: {e:?}");
    }
    // The current code and the next one (the device a little ahead) are accepted.
    enable(code(&d, now), code(&d, now + 1)).await.unwrap();
    assert_eq!(
        enable(code(&d, now), code(&d, now + 1)).await.unwrap_err(),
        CoreError::ResourceExists("MFA Device is already in use.".into())
    );

    let listed = f
        .coffer
        .list_mfa_devices(&f.root, Some("ALICE"))
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![MfaDevice {
            user_name: "alice".into(),
            serial_number: d.serial.clone(),
            enable_date_ms: START_MS,
        }]
    );
    // The codes that enabled the device are used up.
    assert_eq!(
        f.verify("alice", &d, &code(&d, now + 1)).await.unwrap_err(),
        invalid_code()
    );
}

#[tokio::test]
async fn enable_names_what_does_not_exist() {
    let f = fixture();
    f.user("alice").await;
    let d = f.device("phone").await;
    let now = f.step();
    let e = f
        .coffer
        .enable_mfa_device(
            &f.root,
            "nobody",
            &d.serial,
            &code(&d, now - 1),
            &code(&d, now),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CoreError::NotFound("The user with name nobody cannot be found.".into())
    );
    for serial in [
        format!("arn:aws:iam::{ACCOUNT}:mfa/missing"),
        "arn:aws:iam::444455556666:mfa/phone".to_string(),
        "GAHT12345678".to_string(),
    ] {
        let e = f
            .coffer
            .enable_mfa_device(&f.root, "alice", &serial, "123456", "654321")
            .await
            .unwrap_err();
        assert_eq!(
            e,
            CoreError::NotFound(format!(
                "VirtualMFADevice with serial number {serial} does not exist."
            ))
        );
    }
    let e = f
        .coffer
        .enable_mfa_device(&f.root, "alice", "short", "123456", "654321")
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Validation(_)));
}

#[tokio::test]
async fn a_code_is_accepted_within_one_step_and_only_once() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    f.advance_steps(10);
    let now = f.step();
    // Two steps away either side: refused.
    for s in [now - 2, now + 2] {
        assert_eq!(
            f.verify("alice", &d, &code(&d, s)).await.unwrap_err(),
            invalid_code(),
            "step {s}"
        );
    }
    // The previous step's code, then the current one.
    f.verify("alice", &d, &code(&d, now - 1)).await.unwrap();
    f.verify("alice", &d, &code(&d, now)).await.unwrap();
    // Neither again, nor the older one any more (its step is not after the last accepted).
    for s in [now, now - 1] {
        assert_eq!(
            f.verify("alice", &d, &code(&d, s)).await.unwrap_err(),
            invalid_code()
        );
    }
    // The next step's code (a device slightly ahead) is accepted now, and then not later.
    f.verify("alice", &d, &code(&d, now + 1)).await.unwrap();
    f.advance_steps(1);
    assert_eq!(
        f.verify("alice", &d, &code(&d, now + 1)).await.unwrap_err(),
        invalid_code()
    );
    f.advance_steps(1);
    f.verify("alice", &d, &code(&d, now + 2)).await.unwrap();
    // Malformed codes are simply wrong.
    for bad in ["", "12345", "1234567", "abcdef"] {
        assert_eq!(
            f.verify("alice", &d, bad).await.unwrap_err(),
            invalid_code()
        );
    }
}

#[tokio::test]
async fn only_the_users_enabled_device_validates() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    f.user("bob").await;
    f.advance_steps(5);
    let now = f.step();
    let c = code(&d, now);
    assert_eq!(f.verify("bob", &d, &c).await.unwrap_err(), unvalidated());
    assert_eq!(f.verify("nobody", &d, &c).await.unwrap_err(), unvalidated());
    let elsewhere = Device {
        serial: "arn:aws:iam::444455556666:mfa/phone".into(),
        seed: d.seed.clone(),
    };
    assert_eq!(
        f.verify("alice", &elsewhere, &c).await.unwrap_err(),
        unvalidated()
    );
    let user_arn = Device {
        serial: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        seed: d.seed.clone(),
    };
    assert_eq!(
        f.verify("alice", &user_arn, &c).await.unwrap_err(),
        unvalidated()
    );
    // A device that exists but is not enabled.
    let idle = f.device("idle").await;
    assert_eq!(
        f.verify("alice", &idle, &code(&idle, now))
            .await
            .unwrap_err(),
        unvalidated()
    );
    // User names compare without regard to case, and nothing was consumed above.
    f.verify("ALICE", &d, &c).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_presented_concurrently_is_accepted_once() {
    let f = fixture();
    let d = Arc::new(f.enabled("alice", "phone").await);
    for round in 0..5 {
        f.advance_steps(2);
        let c = code(&d, f.step());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (coffer, d, c) = (f.coffer.clone(), d.clone(), c.clone());
                tokio::spawn(async move {
                    coffer
                        .verify_mfa_code(ACCOUNT, "alice", &d.serial, &c)
                        .await
                })
            })
            .collect();
        let mut accepted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => accepted += 1,
                Err(e) => assert_eq!(e, invalid_code()),
            }
        }
        assert_eq!(accepted, 1, "round {round}");
    }
}

#[tokio::test]
async fn resync_measures_the_drift_later_checks_apply() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    f.advance_steps(3);
    // The device's clock now runs five steps (2.5 minutes) ahead.
    let device_now = |f: &Fixture| f.step() + 5;
    assert_eq!(
        f.verify("alice", &d, &code(&d, device_now(&f)))
            .await
            .unwrap_err(),
        invalid_code()
    );
    let resync = |c1: String, c2: String| {
        let (coffer, root, serial) = (f.coffer.clone(), f.root.clone(), d.serial.clone());
        async move {
            coffer
                .resync_mfa_device(&root, "alice", &serial, &c1, &c2)
                .await
        }
    };
    // Outside ±10 minutes: not found.
    let far = f.step() + 25;
    assert_eq!(
        resync(code(&d, far - 1), code(&d, far)).await.unwrap_err(),
        bad_codes()
    );
    assert_eq!(
        resync(code(&d, device_now(&f)), code(&d, device_now(&f) - 1))
            .await
            .unwrap_err(),
        bad_codes()
    );
    let dn = device_now(&f);
    resync(code(&d, dn - 1), code(&d, dn)).await.unwrap();
    // The resync's codes are used up; the device's next code, at our next step, is good.
    assert_eq!(
        f.verify("alice", &d, &code(&d, dn)).await.unwrap_err(),
        invalid_code()
    );
    f.advance_steps(1);
    f.verify("alice", &d, &code(&d, device_now(&f)))
        .await
        .unwrap();
    // The window is now centred on the device's clock: our own step's code is too old.
    f.advance_steps(1);
    assert_eq!(
        f.verify("alice", &d, &code(&d, f.step()))
            .await
            .unwrap_err(),
        invalid_code()
    );
    f.verify("alice", &d, &code(&d, device_now(&f) + 1))
        .await
        .unwrap();

    // Resync is for the user's own enabled device.
    f.user("bob").await;
    let n = f.step() + 40;
    let e = f
        .coffer
        .resync_mfa_device(&f.root, "bob", &d.serial, &code(&d, n), &code(&d, n + 1))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CoreError::NotFound("MFA Device invalid for user.".into())
    );
}

#[tokio::test]
async fn deactivate_then_delete() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    f.user("bob").await;
    let in_use =
        CoreError::DeleteConflict("MFA VirtualDevice in use. Must deactivate first.".into());
    assert_eq!(
        f.coffer
            .delete_virtual_mfa_device(&f.root, &d.serial)
            .await
            .unwrap_err(),
        in_use
    );
    assert_eq!(
        f.coffer
            .deactivate_mfa_device(&f.root, Some("bob"), &d.serial)
            .await
            .unwrap_err(),
        CoreError::NotFound("MFA Device invalid for user.".into())
    );
    // The root user has no MFA device of its own here, and must name the user.
    assert!(matches!(
        f.coffer
            .deactivate_mfa_device(&f.root, None, &d.serial)
            .await
            .unwrap_err(),
        CoreError::Validation(_)
    ));
    f.coffer
        .deactivate_mfa_device(&f.root, Some("alice"), &d.serial)
        .await
        .unwrap();
    assert!(
        f.coffer
            .list_mfa_devices(&f.root, Some("alice"))
            .await
            .unwrap()
            .is_empty()
    );
    f.advance_steps(2);
    assert_eq!(
        f.verify("alice", &d, &code(&d, f.step()))
            .await
            .unwrap_err(),
        unvalidated()
    );
    assert_eq!(
        f.coffer
            .deactivate_mfa_device(&f.root, Some("alice"), &d.serial)
            .await
            .unwrap_err(),
        CoreError::NotFound("MFA Device invalid for user.".into())
    );
    // It can be enabled again, for another user, with fresh codes.
    let now = f.step();
    f.coffer
        .enable_mfa_device(
            &f.root,
            "bob",
            &d.serial,
            &code(&d, now - 1),
            &code(&d, now),
        )
        .await
        .unwrap();
    f.coffer
        .deactivate_mfa_device(&f.root, Some("bob"), &d.serial)
        .await
        .unwrap();
    f.coffer
        .delete_virtual_mfa_device(&f.root, &d.serial)
        .await
        .unwrap();
    let gone = CoreError::NotFound(format!(
        "VirtualMFADevice with serial number {} does not exist.",
        d.serial
    ));
    assert_eq!(
        f.coffer
            .delete_virtual_mfa_device(&f.root, &d.serial)
            .await
            .unwrap_err(),
        gone
    );
}

#[tokio::test]
async fn delete_user_is_refused_while_a_device_is_enabled() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    let e = f
        .coffer
        .delete_principal(&f.root, PrincipalKind::User, "alice")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        CoreError::DeleteConflict("Cannot delete entity, must delete MFA device first.".into())
    );
    f.coffer
        .deactivate_mfa_device(&f.root, Some("alice"), &d.serial)
        .await
        .unwrap();
    f.coffer
        .delete_principal(&f.root, PrincipalKind::User, "alice")
        .await
        .unwrap();
    // The device outlives the user, unassigned.
    let all = f
        .coffer
        .list_virtual_mfa_devices(&f.root, AssignmentStatus::Unassigned)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].user.is_none());
}

#[tokio::test]
async fn a_renamed_user_keeps_its_device() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    f.coffer
        .update_principal(&f.root, PrincipalKind::User, "alice", Some("alicia"), None)
        .await
        .unwrap();
    let listed = f
        .coffer
        .list_mfa_devices(&f.root, Some("alicia"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].user_name, "alicia");
    f.advance_steps(2);
    let c = code(&d, f.step());
    assert_eq!(f.verify("alice", &d, &c).await.unwrap_err(), unvalidated());
    f.verify("alicia", &d, &c).await.unwrap();
}

#[tokio::test]
async fn list_virtual_devices_by_assignment() {
    let f = fixture();
    let enabled = f.enabled("alice", "b-phone").await;
    let idle = f.device("a-spare").await;
    let serials = |list: Vec<VirtualMfaDevice>| {
        list.into_iter()
            .map(|d| d.serial_number)
            .collect::<Vec<_>>()
    };
    let any = f
        .coffer
        .list_virtual_mfa_devices(&f.root, AssignmentStatus::Any)
        .await
        .unwrap();
    let alice = any[1].user.as_ref().unwrap();
    assert_eq!(alice.name, "alice");
    assert_eq!(any[1].enable_date_ms, Some(START_MS));
    assert_eq!(
        serials(any),
        vec![idle.serial.clone(), enabled.serial.clone()]
    );
    assert_eq!(
        serials(
            f.coffer
                .list_virtual_mfa_devices(&f.root, AssignmentStatus::Assigned)
                .await
                .unwrap()
        ),
        vec![enabled.serial.clone()]
    );
    assert_eq!(
        serials(
            f.coffer
                .list_virtual_mfa_devices(&f.root, AssignmentStatus::Unassigned)
                .await
                .unwrap()
        ),
        vec![idle.serial.clone()]
    );
    assert!(matches!(
        AssignmentStatus::parse("Some"),
        Err(CoreError::Validation(_))
    ));
}

#[tokio::test]
async fn device_tags() {
    let f = fixture();
    let d = f.device("phone").await;
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    f.coffer
        .tag_mfa_device(&f.root, &d.serial, vec![pair("a", "1"), pair("b", "2")])
        .await
        .unwrap();
    f.coffer
        .tag_mfa_device(&f.root, &d.serial, vec![pair("A", "3")])
        .await
        .unwrap();
    assert_eq!(
        f.coffer
            .list_mfa_device_tags(&f.root, &d.serial)
            .await
            .unwrap(),
        vec![pair("A", "3"), pair("b", "2")]
    );
    f.coffer
        .untag_mfa_device(&f.root, &d.serial, &["a".to_string()])
        .await
        .unwrap();
    assert_eq!(
        f.coffer
            .list_mfa_device_tags(&f.root, &d.serial)
            .await
            .unwrap(),
        vec![pair("b", "2")]
    );
    let missing = format!("arn:aws:iam::{ACCOUNT}:mfa/missing");
    assert!(matches!(
        f.coffer
            .list_mfa_device_tags(&f.root, &missing)
            .await
            .unwrap_err(),
        CoreError::NotFound(_)
    ));
    let many = (0..51).map(|i| pair(&format!("k{i}"), "v")).collect();
    assert!(matches!(
        f.coffer
            .tag_mfa_device(&f.root, &d.serial, many)
            .await
            .unwrap_err(),
        CoreError::LimitExceeded(_)
    ));
}

#[tokio::test]
async fn every_operation_is_authorized() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    let alice = caller(
        &format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        PrincipalType::IamUser,
    );
    let denied = |r: Result<(), CoreError>| {
        assert!(matches!(r, Err(CoreError::AccessDenied(_))), "{r:?}");
    };
    denied(
        f.coffer
            .create_virtual_mfa_device(&alice, "mine", None, vec![])
            .await
            .map(|_| ()),
    );
    denied(f.coffer.list_mfa_devices(&alice, None).await.map(|_| ()));
    denied(
        f.coffer
            .list_virtual_mfa_devices(&alice, AssignmentStatus::Any)
            .await
            .map(|_| ()),
    );
    denied(
        f.coffer
            .deactivate_mfa_device(&alice, None, &d.serial)
            .await,
    );
    denied(f.coffer.delete_virtual_mfa_device(&alice, &d.serial).await);
    // A denied caller cannot tell a missing device from an existing one.
    denied(
        f.coffer
            .delete_virtual_mfa_device(&alice, &format!("arn:aws:iam::{ACCOUNT}:mfa/missing"))
            .await,
    );

    // The IAM user guide's self-service policy: devices named after the user, own user only.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["iam:CreateVirtualMFADevice","iam:DeleteVirtualMFADevice"],"Resource":"arn:aws:iam::*:mfa/${aws:username}"},
        {"Effect":"Allow","Action":["iam:EnableMFADevice","iam:ListMFADevices","iam:ResyncMFADevice","iam:DeactivateMFADevice"],"Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#;
    f.coffer
        .put_inline_policy(&f.root, PrincipalKind::User, "alice", "mfa", policy)
        .await
        .unwrap();
    assert_eq!(
        f.coffer.list_mfa_devices(&alice, None).await.unwrap().len(),
        1
    );
    denied(
        f.coffer
            .create_virtual_mfa_device(&alice, "other-name", None, vec![])
            .await
            .map(|_| ()),
    );
    let own = f
        .coffer
        .create_virtual_mfa_device(&alice, "alice", None, vec![])
        .await
        .unwrap();
    f.coffer
        .delete_virtual_mfa_device(&alice, &own.serial_number)
        .await
        .unwrap();
    f.user("bob").await;
    denied(
        f.coffer
            .list_mfa_devices(&alice, Some("bob"))
            .await
            .map(|_| ()),
    );
    f.coffer
        .deactivate_mfa_device(&alice, None, &d.serial)
        .await
        .unwrap();
}

#[tokio::test]
async fn seeds_survive_a_root_key_rotation() {
    let f = fixture();
    let d = f.enabled("alice", "phone").await;
    let outcome = f.coffer.rotate_root_key(|_, _| {}).await.unwrap();
    assert!(outcome.finished);
    let Fixture {
        dir, coffer, clock, ..
    } = f;
    drop(coffer);
    clock.advance(2 * STEP_MS);
    let coffer = Coffer::open(dir.path(), clock.clone()).unwrap();
    let now = clock.now_millis().div_euclid(STEP_MS);
    coffer
        .verify_mfa_code(ACCOUNT, "alice", &d.serial, &code(&d, now))
        .await
        .unwrap();
}
