//! AWS's documented SigV4 examples: the signing-key derivation example, the IAM `ListUsers`
//! walk-through ("Create a signed AWS API request"), and cases from the AWS SigV4 test suite
//! (service `service`, host `example.amazonaws.com`), all signed with the documentation key at
//! 20150830T123600Z.

use coffer_crypto::hex;
use coffer_sigv4::canonical::{
    CanonicalParts, canonical_request, credential_scope, signature, string_to_sign,
};
use coffer_sigv4::{Credentials, SigningParams, derive_signing_key, parse_claim, sign_request};

use crate::{AKID, SECRET, T0, authenticate, request};

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn signing_key_derivation_example() {
    // AWS "Examples of how to derive a signing key for Signature Version 4": 20120215, us-east-1, iam.
    let key = derive_signing_key(SECRET.as_bytes(), "20120215", "us-east-1", "iam");
    assert_eq!(
        hex(key.expose()),
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
    );
    // The IAM walk-through's key, 20150830.
    let key = derive_signing_key(SECRET.as_bytes(), "20150830", "us-east-1", "iam");
    assert_eq!(
        hex(key.expose()),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
}

fn list_users_unsigned() -> http::Request<Vec<u8>> {
    request(
        "GET",
        "/?Action=ListUsers&Version=2010-05-08",
        &[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"",
    )
}

const LIST_USERS_SIGNATURE: &str =
    "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";

#[test]
fn iam_list_users_canonical_request_string_to_sign_and_signature() {
    let (parts, _) = list_users_unsigned().into_parts();
    let signed_headers: Vec<String> = ["content-type", "host", "x-amz-date"]
        .map(String::from)
        .to_vec();
    let canonical = canonical_request(&CanonicalParts {
        method: "GET",
        uri: &parts.uri,
        headers: &parts.headers,
        signed_headers: &signed_headers,
        payload_hash: EMPTY_SHA256.as_bytes(),
        presigned: false,
    });
    let expected_canonical = format!(
        "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\n\
         host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n{EMPTY_SHA256}"
    );
    assert_eq!(
        String::from_utf8(canonical.clone()).unwrap(),
        expected_canonical
    );

    let scope = credential_scope("20150830", "us-east-1", "iam");
    let to_sign = string_to_sign("20150830T123600Z", &scope, &canonical);
    assert_eq!(
        to_sign,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n\
         f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
    );
    let key = derive_signing_key(SECRET.as_bytes(), "20150830", "us-east-1", "iam");
    assert_eq!(signature(&key, &to_sign), LIST_USERS_SIGNATURE);
}

#[test]
fn iam_list_users_documented_authorization_verifies() {
    let mut req = list_users_unsigned();
    req.headers_mut().insert(
        "authorization",
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={LIST_USERS_SIGNATURE}"
        )
        .parse()
        .unwrap(),
    );
    let claim = parse_claim(&req.clone().into_parts().0).unwrap();
    assert_eq!(
        (
            claim.access_key_id.as_str(),
            claim.date.as_str(),
            claim.region.as_str(),
            claim.service.as_str()
        ),
        (AKID, "20150830", "us-east-1", "iam")
    );
    assert_eq!(claim.signed_headers, ["content-type", "host", "x-amz-date"]);
    assert_eq!(claim.amz_date, "20150830T123600Z");
    assert_eq!(authenticate(&req, T0, Some("iam")), Ok(()));
}

#[test]
fn iam_list_users_our_signer_writes_the_documented_header() {
    let mut req = list_users_unsigned();
    let credentials = Credentials::new(AKID, SECRET, None);
    sign_request(
        &mut req,
        &SigningParams::new(&credentials, "us-east-1", "iam"),
        T0,
    )
    .unwrap();
    assert_eq!(
        req.headers()["authorization"],
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature={LIST_USERS_SIGNATURE}"
        )
        .as_str()
    );
}

/// AWS SigV4 test suite cases: (name, method, uri, headers, body, signed headers, signature).
type SuiteCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [u8],
    &'static str,
    &'static str,
);

const SUITE: &[SuiteCase] = &[
    (
        "get-vanilla",
        "GET",
        "/",
        &[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET",
        "/?Param2=value2&Param1=value1",
        &[
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-header-value-trim",
        "GET",
        "/",
        &[
            ("host", "example.amazonaws.com"),
            ("my-header1", " value1"),
            ("my-header2", " \"a   b   c\""),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"",
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "post-x-www-form-urlencoded",
        "POST",
        "/",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "example.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ],
        b"Param1=value1",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
];

#[test]
fn aws_test_suite_signatures_verify_and_are_reproduced() {
    let credentials = Credentials::new(AKID, SECRET, None);
    for (name, method, uri, headers, body, signed_headers, sig) in SUITE {
        let unsigned = request(method, uri, headers, body);

        let mut documented = unsigned.clone();
        documented.headers_mut().insert(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={signed_headers}, Signature={sig}"
            )
            .parse()
            .unwrap(),
        );
        assert_eq!(
            authenticate(&documented, T0, Some("service")),
            Ok(()),
            "{name}"
        );

        let mut ours = unsigned.clone();
        sign_request(
            &mut ours,
            &SigningParams::new(&credentials, "us-east-1", "service"),
            T0,
        )
        .unwrap();
        assert_eq!(
            ours.headers()["authorization"],
            documented.headers()["authorization"],
            "{name}"
        );
    }
}
