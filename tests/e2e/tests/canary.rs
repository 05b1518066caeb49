//! No plaintext at rest or in logs (architecture invariant 3), tested from outside.
//!
//! A server on a real data directory, logging as verbosely as it can (`RUST_LOG=trace`), stores
//! distinctive canary values through every path that carries a value: create, put, update,
//! reads, batch reads, stage reads, failing writes (whose bodies an error path might log), and
//! delete/restore. We then search every byte under the data directory (database, `-wal`,
//! `-shm`, keys, anything) and everything the server printed, for each canary in raw, base64
//! and hex form: once while it runs (the WAL is hot) and again after it shut down.
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
            "x {} y {}",
            canaries.texts[0],
            STANDARD.encode(&canaries.binaries[0])
        ),
    )
    .unwrap();
    assert!(
        scan(planted.path(), b"", &canaries).len() >= 2,
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
