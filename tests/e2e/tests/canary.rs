//! No plaintext at rest or in logs (architecture invariant 3), tested from outside.
//!
//! A server on a real data directory, logging as verbosely as it can (`RUST_LOG=trace`), stores
//! distinctive canary values through every path that carries a value: create, put, update,
//! reads, batch reads, stage reads, failing writes (whose bodies an error path might log), and
//! delete/restore. We then search every byte under the data directory (database, `-wal`,
//! `-shm`, keys, anything) and everything the server printed, for each canary in raw, base64
//! and hex form: once while it runs (the WAL is hot) and again after it shut down.
//!
//! Temporary credentials are secrets too: the SecretAccessKey and SessionToken that
//! GetSessionToken and AssumeRole hand out are used to sign requests (successful, denied and
//! tampered ones) and must appear nowhere either; an IAM user's secret access key neither.
//!
//! Positive controls keep the test honest: the canaries do come back from GetSecretValue, and
//! the scanner does find a canary that was planted on purpose.
//!
//! Needs `cargo build -p coffer-cli` first (or `COFFER_BIN`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test by panicking"
)]

mod common;

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use coffer_e2e::sm::Client;
use coffer_e2e::sm::operation::create_secret::CreateSecretError;
use coffer_e2e::sm::operation::put_secret_value::PutSecretValueError;
use coffer_e2e::sm::primitives::Blob;
use coffer_e2e::{Server, files_under, find_bytes, random_hex, random_token, service_error};

/// The canary values, and every encoding of them that must never appear.
struct Canaries {
    core_text: String,
    core_bytes: Vec<u8>,
    texts: Vec<String>,
    binaries: Vec<Vec<u8>>,
    /// Credentials (secret access keys, session tokens) that must never be written or logged.
    credentials: Vec<(String, String)>,
}

impl Canaries {
    fn new() -> Canaries {
        let core_text = format!("CANARY-text-{}", random_hex(32));
        let mut core_bytes = vec![0x00, 0xff, 0xfe];
        core_bytes.extend(
            random_hex(64)
                .as_bytes()
                .chunks(2)
                .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap()),
        );
        Canaries {
            core_text,
            core_bytes,
            texts: Vec::new(),
            binaries: Vec::new(),
            credentials: Vec::new(),
        }
    }

    fn text(&mut self, variant: &str) -> String {
        let t = format!(r#"{{"password":"{}-{variant}"}}"#, self.core_text);
        self.texts.push(t.clone());
        t
    }

    fn binary(&mut self, variant: u8) -> Vec<u8> {
        let mut b = self.core_bytes.clone();
        b.push(variant);
        self.binaries.push(b.clone());
        b
    }

    /// A credential string that must never appear (raw, or percent-encoded as in a query string).
    fn credential(&mut self, what: &str, value: &str) {
        assert!(
            value.len() >= 16,
            "{what} is too short to be a credential: {value:?}"
        );
        self.credentials.push((what.to_owned(), value.to_owned()));
    }

    /// (what, bytes) pairs to search for.
    fn needles(&self) -> Vec<(String, Vec<u8>)> {
        let mut n = vec![
            ("text core".to_owned(), self.core_text.as_bytes().to_vec()),
            ("binary core".to_owned(), self.core_bytes.clone()),
            (
                "binary core, hex".to_owned(),
                hex(&self.core_bytes).into_bytes(),
            ),
            (
                "binary core, HEX".to_owned(),
                hex(&self.core_bytes).to_uppercase().into_bytes(),
            ),
        ];
        for t in &self.texts {
            n.push((format!("base64 of {t}"), STANDARD.encode(t).into_bytes()));
            n.push((
                format!("base64url of {t}"),
                URL_SAFE_NO_PAD.encode(t).into_bytes(),
            ));
        }
        for (i, b) in self.binaries.iter().enumerate() {
            n.push((
                format!("binary {i}, base64"),
                STANDARD.encode(b).into_bytes(),
            ));
            n.push((
                format!("binary {i}, base64url"),
                URL_SAFE_NO_PAD.encode(b).into_bytes(),
            ));
            // What a `{:?}` of the bytes would print.
            n.push((format!("binary {i}, Debug"), format!("{b:?}").into_bytes()));
        }
        for (what, value) in &self.credentials {
            n.push((what.clone(), value.clone().into_bytes()));
            let encoded = common::form_encode(value);
            if encoded != *value {
                n.push((format!("{what}, percent-encoded"), encoded.into_bytes()));
            }
        }
        n
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every (place, needle, offset) where a canary shows up.
fn scan(dir: &Path, output: &[u8], canaries: &Canaries) -> Vec<String> {
    let needles = canaries.needles();
    let mut hits = Vec::new();
    let mut sources: Vec<(String, Vec<u8>)> = vec![("server output".to_owned(), output.to_vec())];
    for file in files_under(dir).unwrap() {
        // A file can vanish between listing and reading (-shm, -journal): that is fine.
        if let Ok(bytes) = std::fs::read(&file) {
            sources.push((file.display().to_string(), bytes));
        }
    }
    for (place, bytes) in &sources {
        for (what, needle) in &needles {
            if let Some(at) = find_bytes(bytes, needle) {
                hits.push(format!("{what} in {place} at byte {at}"));
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_never_reach_disk_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let init = coffer_e2e::init_data_dir(dir.path()).expect("coffer init");
    let server =
        Server::data_dir(dir.path(), &init, &[("RUST_LOG", "trace")]).expect("start coffer server");
    let c = server.client();
    let mut canaries = Canaries::new();

    exercise_every_value_path(&c, &mut canaries).await;
    exercise_kms(&server, &c, &mut canaries).await;
    exercise_sts(&server, &mut canaries).await;
    exercise_mfa(&server, &mut canaries).await;

    let hits = scan(dir.path(), &server.output(), &canaries);
    assert!(
        hits.is_empty(),
        "plaintext found while running:\n{}",
        hits.join("\n")
    );
    assert!(
        !coffer_e2e::sqlite_files_under(dir.path())
            .unwrap()
            .is_empty(),
        "no SQLite store under the data dir: the scan looked at the wrong place"
    );

    let output = server.stop().expect("stop coffer");

    // Secret access keys are stored sealed under the root key (SigV4 needs them back), never
    // in the clear: the account's root key from `init` must not appear in any file.
    let access_secret = init.credentials.secret_access_key.as_bytes().to_vec();
    for file in coffer_e2e::files_under(dir.path()).unwrap() {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            coffer_e2e::find_bytes(&bytes, &access_secret).is_none(),
            "the secret access key is readable in {}",
            file.display()
        );
    }
    let hits = scan(dir.path(), &output, &canaries);
    assert!(
        hits.is_empty(),
        "plaintext found after shutdown:\n{}",
        hits.join("\n")
    );
    let scanned: u64 = files_under(dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    eprintln!(
        "scanned {scanned} bytes under the data dir and {} bytes of output for {} needles",
        output.len(),
        canaries.needles().len()
    );

    // The scanner itself finds a planted canary (raw and base64).
    let planted = tempfile::tempdir().unwrap();
    std::fs::write(
        planted.path().join("leak.log"),
        format!(
            "x {} y {} z {}",
            canaries.texts[0],
            STANDARD.encode(&canaries.binaries[0]),
            canaries.credentials[0].1
        ),
    )
    .unwrap();
    assert!(
        scan(planted.path(), b"", &canaries).len() >= 3,
        "the scanner misses a planted canary"
    );
}

/// Stores, reads, updates and fails to store canaries; asserts the reads return them.
async fn exercise_every_value_path(c: &Client, canaries: &mut Canaries) {
    let s1 = canaries.text("create");
    let b1 = canaries.binary(1);
    c.create_secret()
        .name("canary/text")
        .secret_string(&s1)
        .send()
        .await
        .unwrap();
    c.create_secret()
        .name("canary/binary")
        .secret_binary(Blob::new(b1.clone()))
        .send()
        .await
        .unwrap();

    let s2 = canaries.text("put");
    let token = random_token();
    c.put_secret_value()
        .secret_id("canary/text")
        .secret_string(&s2)
        .client_request_token(&token)
        .send()
        .await
        .unwrap();
    let b2 = canaries.binary(2);
    c.put_secret_value()
        .secret_id("canary/binary")
        .secret_binary(Blob::new(b2.clone()))
        .send()
        .await
        .unwrap();
    let s3 = canaries.text("pending");
    c.put_secret_value()
        .secret_id("canary/text")
        .secret_string(&s3)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();

    // Positive control: the values are really there.
    let get = |id: &'static str| c.get_secret_value().secret_id(id);
    assert_eq!(
        get("canary/text").send().await.unwrap().secret_string(),
        Some(s2.as_str())
    );
    assert_eq!(
        get("canary/text")
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some(s1.as_str())
    );
    assert_eq!(
        get("canary/text")
            .version_stage("AWSPENDING")
            .send()
            .await
            .unwrap()
            .secret_string(),
        Some(s3.as_str())
    );
    let got = get("canary/binary").send().await.unwrap();
    assert_eq!(got.secret_binary().map(|b| b.as_ref()), Some(&b2[..]));
    let batch = c
        .batch_get_secret_value()
        .secret_id_list("canary/text")
        .secret_id_list("canary/binary")
        .send()
        .await
        .unwrap();
    assert_eq!(batch.secret_values().len(), 2);

    // Updates carrying values.
    let s4 = canaries.text("update");
    c.update_secret()
        .secret_id("canary/text")
        .secret_string(&s4)
        .send()
        .await
        .unwrap();
    assert_eq!(
        get("canary/text").send().await.unwrap().secret_string(),
        Some(s4.as_str())
    );

    // Failing writes: the request bodies carry canaries into error paths.
    let s5 = canaries.text("put-missing");
    service_error(
        c.put_secret_value()
            .secret_id("canary/missing")
            .secret_string(&s5)
            .send()
            .await,
    );
    let s6 = canaries.text("create-existing");
    let e = service_error(
        c.create_secret()
            .name("canary/text")
            .secret_string(&s6)
            .send()
            .await,
    );
    assert!(matches!(e, CreateSecretError::ResourceExistsException(_)));
    let s7 = canaries.text("token-reuse");
    let e = service_error(
        c.put_secret_value()
            .secret_id("canary/text")
            .secret_string(&s7)
            .client_request_token(&token)
            .send()
            .await,
    );
    assert!(matches!(e, PutSecretValueError::ResourceExistsException(_)));
    let b3 = canaries.binary(3);
    service_error(
        c.put_secret_value()
            .secret_id("canary/missing")
            .secret_binary(Blob::new(b3))
            .send()
            .await,
    );

    // Delete and restore re-touch the rows.
    c.delete_secret()
        .secret_id("canary/binary")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    c.restore_secret()
        .secret_id("canary/binary")
        .send()
        .await
        .unwrap();
    let got = get("canary/binary").send().await.unwrap();
    assert_eq!(got.secret_binary().map(|b| b.as_ref()), Some(&b2[..]));
}

/// KMS plaintexts and data keys: Encrypt/Decrypt/ReEncrypt of a canary, a data key (its
/// plaintext becomes a canary), a failing Decrypt, and a secret under a customer managed key.
async fn exercise_kms(server: &Server, sm: &Client, canaries: &mut Canaries) {
    use aws_sdk_kms::primitives::Blob as KmsBlob;
    use aws_sdk_kms::types::DataKeySpec;
    let kms = common::kms_client(server);
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let plain = canaries.binary(7);
    let ct = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(KmsBlob::new(plain.clone()))
        .encryption_context("purpose", "canary")
        .send()
        .await
        .unwrap();
    let blob = ct.ciphertext_blob().unwrap().clone();
    let back = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", "canary")
        .send()
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), plain.as_slice());
    assert!(
        kms.decrypt()
            .ciphertext_blob(blob.clone())
            .send()
            .await
            .is_err(),
        "a missing encryption context must fail"
    );
    kms.re_encrypt()
        .ciphertext_blob(blob)
        .source_encryption_context("purpose", "canary")
        .destination_key_id(&key_id)
        .send()
        .await
        .unwrap();
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    canaries
        .binaries
        .push(data_key.plaintext().unwrap().as_ref().to_vec());
    let text = canaries.text("cmk");
    sm.create_secret()
        .name("canary/cmk")
        .kms_key_id(&key_id)
        .secret_string(&text)
        .send()
        .await
        .unwrap();
    let got = sm
        .get_secret_value()
        .secret_id("canary/cmk")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some(text.as_str()));
}

/// Temporary credentials from GetSessionToken (root) and AssumeRole (an IAM user), used for
/// successful, denied and tampered requests to Secrets Manager, STS and IAM; their secrets and
/// session tokens (and the IAM user's secret access key) become canaries.
async fn exercise_sts(server: &Server, canaries: &mut Canaries) {
    use common::{
        Iam, allow, long_term, policy, root_credentials, sm_client, sts_client, temporary,
    };

    // The root user's session: creates and reads a secret, asks who it is.
    let root_session = sts_client(server, root_credentials(server))
        .get_session_token()
        .send()
        .await
        .unwrap();
    let root_temp = root_session.credentials().unwrap().clone();
    canaries.credential(
        "root session secret access key",
        root_temp.secret_access_key(),
    );
    canaries.credential("root session token", root_temp.session_token());
    let sm = sm_client(server, temporary(&root_temp));
    let value = canaries.text("root-session");
    let arn = sm
        .create_secret()
        .name("canary/sts")
        .secret_string(&value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let got = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_eq!(got.secret_string(), Some(value.as_str()));
    sts_client(server, temporary(&root_temp))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    // A session may not chain GetSessionToken (an error path that sees the token).
    assert!(
        sts_client(server, temporary(&root_temp))
            .get_session_token()
            .send()
            .await
            .is_err()
    );

    // An IAM user assumes a role that may read that one secret.
    let iam = Iam::root(server);
    let user = iam.user(&[]).await;
    canaries.credential("IAM user secret access key", &user.key.secret_access_key);
    let role = iam
        .role(
            &common::trust(&user.arn, None),
            &[policy(&[allow("secretsmanager:GetSecretValue", &arn)])],
            None,
        )
        .await;
    let assumed = sts_client(server, long_term(&user.key))
        .assume_role()
        .role_arn(&role.arn)
        .role_session_name("canary")
        .policy(policy(&[allow("*", "*")]))
        .send()
        .await
        .unwrap();
    let role_temp = assumed.credentials().unwrap().clone();
    canaries.credential(
        "role session secret access key",
        role_temp.secret_access_key(),
    );
    canaries.credential("role session token", role_temp.session_token());
    let sm = sm_client(server, temporary(&role_temp));
    let got = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_eq!(got.secret_string(), Some(value.as_str()));
    // Denied (another secret), and IAM (not allowed to sessions without a role policy for it).
    assert!(
        sm.get_secret_value()
            .secret_id("canary/text")
            .send()
            .await
            .is_err()
    );
    assert!(
        Iam::with(server, temporary(&role_temp))
            .call("ListUsers", &[])
            .await
            .is_err()
    );
    sts_client(server, temporary(&role_temp))
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    // Tampered: one bit of the token flipped, and a wrong secret with the right token.
    let mut raw = STANDARD.decode(role_temp.session_token()).unwrap();
    let mid = raw.len() / 2;
    raw[mid] ^= 0x01;
    let tampered = STANDARD.encode(raw);
    let bad_token = common::sdk_credentials(
        role_temp.access_key_id(),
        role_temp.secret_access_key(),
        Some(&tampered),
    );
    assert!(
        sm_client(server, bad_token)
            .get_secret_value()
            .secret_id(&arn)
            .send()
            .await
            .is_err()
    );
    let wrong_secret = common::sdk_credentials(
        role_temp.access_key_id(),
        &"w".repeat(40),
        Some(role_temp.session_token()),
    );
    assert!(
        sts_client(server, wrong_secret)
            .get_caller_identity()
            .send()
            .await
            .is_err()
    );
}

/// A virtual MFA device: its seed comes back once from CreateVirtualMFADevice (Base32, inside
/// base64 on the wire, and inside the QR code) and is opened again to check codes (a wrong
/// pair here); neither the seed nor any encoding of it may appear anywhere.
async fn exercise_mfa(server: &Server, canaries: &mut Canaries) {
    use common::{Iam, xml_text};

    let iam = Iam::root(server);
    let user = iam.user(&[]).await;
    let created = iam
        .ok(
            "CreateVirtualMFADevice",
            &[("VirtualMFADeviceName", "canary-phone")],
        )
        .await;
    let serial = xml_text(&created, "SerialNumber").unwrap();
    let on_wire = xml_text(&created, "Base32StringSeed").unwrap();
    let base32 = String::from_utf8(STANDARD.decode(&on_wire).unwrap()).unwrap();
    assert_eq!(base32.len(), 64, "AWS's seeds are 64 Base32 characters");
    canaries.credential("MFA seed, Base32", &base32);
    canaries.credential("MFA seed, Base32 in base64", &on_wire);
    canaries.binaries.push(base32_decode(&base32));
    let refused = iam
        .call(
            "EnableMFADevice",
            &[
                ("UserName", &user.name),
                ("SerialNumber", &serial),
                ("AuthenticationCode1", "000000"),
                ("AuthenticationCode2", "000000"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_deref(), Some("InvalidAuthenticationCode"));
    let listed = iam.ok("ListVirtualMFADevices", &[]).await;
    assert!(listed.contains(&serial) && !listed.contains("Base32StringSeed"));
}

/// RFC 4648 Base32 without padding, for the seed the scan looks for in its raw form.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u64;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
