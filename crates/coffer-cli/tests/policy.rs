//! `coffer policy validate|simulate`: offline, through the binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use assert_cmd::cargo::cargo_bin_cmd;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const PROD_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ProdRead","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:*:*:secret:prod/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;

#[test]
fn validate_accepts_good_and_explains_bad_documents() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.json", PROD_READ);
    let out = cargo_bin_cmd!("coffer")
        .args(["policy", "validate", &good])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (1 statement(s))"));

    let bad = write(&dir, "bad.json", r#"{"Statement":[{"Effect":"Allow"}]}"#);
    let out = cargo_bin_cmd!("coffer")
        .args(["policy", "validate", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MalformedPolicyDocument: Policy statement must contain actions."),
        "{err}"
    );

    // an identity policy must not name a principal; a resource policy must
    let with_principal = write(
        &dir,
        "rp.json",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"secretsmanager:*","Resource":"*"}]}"#,
    );
    assert_eq!(
        cargo_bin_cmd!("coffer")
            .args(["policy", "validate", &with_principal])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    assert!(
        cargo_bin_cmd!("coffer")
            .args(["policy", "validate", "--kind", "resource", &with_principal])
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn simulate_shows_decisions_and_deciding_statements() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(&dir, "p.json", PROD_READ);
    let prod = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-AbCdEf";
    let dev = "arn:aws:secretsmanager:us-east-1:111122223333:secret:dev/db-AbCdEf";
    let out = cargo_bin_cmd!("coffer")
        .args([
            "policy",
            "simulate",
            "--policy",
            &policy,
            "--action",
            "secretsmanager:GetSecretValue",
        ])
        .args([
            "--resource",
            prod,
            "--resource",
            dev,
            "--context",
            "aws:SourceIp=10.1.2.3",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["decision"], "allowed");
    assert!(
        rows[0]["statements"][0]
            .as_str()
            .unwrap()
            .starts_with("statement ProdRead")
    );
    assert_eq!(rows[1]["decision"], "implicitDeny");

    // outside the condition's network the statement does not apply
    let out = cargo_bin_cmd!("coffer")
        .args([
            "policy",
            "simulate",
            "--policy",
            &policy,
            "--action",
            "secretsmanager:GetSecretValue",
            "--resource",
            prod,
        ])
        .args(["--context", "aws:SourceIp=192.168.1.1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("implicitDeny"));

    let out = cargo_bin_cmd!("coffer")
        .args([
            "policy",
            "simulate",
            "--policy",
            &policy,
            "--action",
            "a:b",
            "--context",
            "no-equals",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
