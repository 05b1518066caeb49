//! Tables of requests that must be refused, each with AWS's exact error code and message.

use coffer_sigv4::canonical::{
    CanonicalParts, canonical_request, credential_scope, signature, string_to_sign,
};
use coffer_sigv4::{
    Credentials, SigV4Error, SigningParams, check_region, derive_signing_key, parse_claim,
    sign_request,
};

use crate::{AKID, SECRET, T0, authenticate, authenticate_with, request};

const SERVICE: &str = "secretsmanager";
const HOST: &str = "secretsmanager.us-east-1.amazonaws.com";
const SECOND_KEY: (&str, &str) = ("AKIDSECOND", "another/secret/key/EXAMPLEKEY0000000000000");
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS \
                        Secret Access Key and signing method. Consult the service documentation for details.";

fn secret_for(id: &str) -> Option<&'static str> {
    match id {
        AKID => Some(SECRET),
        id if id == SECOND_KEY.0 => Some(SECOND_KEY.1),
        _ => None,
    }
}

/// A JSON 1.1 `GetSecretValue` signed by our signer (proven equal to `aws-sigv4` by `oracle`).
fn signed(content_sha256_header: bool) -> http::Request<Vec<u8>> {
    let mut req = request(
        "POST",
        "/some/path?a=1",
        &[
            ("host", HOST),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "secretsmanager.GetSecretValue"),
        ],
        br#"{"SecretId":"prod/db"}"#,
    );
    let credentials = Credentials::new(AKID, SECRET, None);
    let params = SigningParams {
        content_sha256_header,
        ..SigningParams::new(&credentials, "us-east-1", SERVICE)
    };
    sign_request(&mut req, &params, T0).unwrap();
    req
}

fn authorization(req: &http::Request<Vec<u8>>) -> String {
    req.headers()["authorization"].to_str().unwrap().to_owned()
}

fn set(req: &mut http::Request<Vec<u8>>, name: &'static str, value: &str) {
    req.headers_mut().insert(name, value.parse().unwrap());
}

fn check(result: Result<(), SigV4Error>, code: &str, message: &str, label: &str) {
    let err = result.expect_err(label);
    assert_eq!(err.aws_code(), code, "{label}: {err:?}");
    assert_eq!(err.message(), message, "{label}");
    assert_eq!(err.to_string(), message, "{label}");
    assert_eq!(err.http_status(), 400, "{label}");
}

fn check_mismatch(result: Result<(), SigV4Error>, label: &str) {
    let err = result.expect_err(label);
    assert_eq!(
        err.aws_code(),
        "InvalidSignatureException",
        "{label}: {err:?}"
    );
    let message = err.message();
    assert!(message.starts_with(MISMATCH), "{label}: {message}");
    assert!(
        message.contains("\n\nThe Canonical String for this request should have been\n'"),
        "{label}"
    );
    assert!(
        message.contains("'\n\nThe String-to-Sign should have been\n'AWS4-HMAC-SHA256\n"),
        "{label}"
    );
    assert!(message.ends_with("'\n"), "{label}");
}

#[test]
fn the_unmodified_request_verifies() {
    assert_eq!(authenticate(&signed(false), T0, Some(SERVICE)), Ok(()));
    assert_eq!(authenticate(&signed(true), T0, Some(SERVICE)), Ok(()));
    assert_eq!(authenticate(&signed(false), T0, None), Ok(()));
    // Headers that were not signed may be added or changed on the way (proxies do).
    let mut req = signed(false);
    set(&mut req, "x-forwarded-for", "10.0.0.1");
    set(&mut req, "user-agent", "changed by a proxy");
    assert_eq!(authenticate(&req, T0, Some(SERVICE)), Ok(()));
    // Trailing slashes after the credential are ignored.
    let mut req = signed(false);
    let value = authorization(&req).replace("aws4_request,", "aws4_request//,");
    set(&mut req, "authorization", &value);
    assert_eq!(authenticate(&req, T0, Some(SERVICE)), Ok(()));
}

#[test]
fn each_mutated_field_is_a_signature_mismatch() {
    type Mutation = (&'static str, fn(&mut http::Request<Vec<u8>>));
    let mutations: &[Mutation] = &[
        ("method", |r| *r.method_mut() = http::Method::PUT),
        ("path", |r| {
            *r.uri_mut() = "/some/other?a=1".parse().unwrap()
        }),
        ("path case", |r| {
            *r.uri_mut() = "/Some/path?a=1".parse().unwrap()
        }),
        ("query value", |r| {
            *r.uri_mut() = "/some/path?a=2".parse().unwrap()
        }),
        ("query added", |r| {
            *r.uri_mut() = "/some/path?a=1&b=2".parse().unwrap()
        }),
        ("query removed", |r| {
            *r.uri_mut() = "/some/path".parse().unwrap()
        }),
        ("signed header value", |r| {
            set(r, "x-amz-target", "secretsmanager.DeleteSecret")
        }),
        ("signed header removed", |r| {
            drop(r.headers_mut().remove("content-type"))
        }),
        ("signed header repeated", |r| {
            r.headers_mut().append("x-amz-target", "x".parse().unwrap());
        }),
        ("host", |r| set(r, "host", "evil.example.com")),
        ("body", |r| {
            *r.body_mut() = br#"{"SecretId":"prod/other"}"#.to_vec()
        }),
        ("empty body", |r| r.body_mut().clear()),
        ("timestamp, same day", |r| {
            set(r, "x-amz-date", "20150830T123601Z")
        }),
        ("region", |r| {
            let value = authorization(r).replace("/us-east-1/", "/us-west-2/");
            set(r, "authorization", &value);
        }),
        ("access key", |r| {
            let value = authorization(r).replace(AKID, SECOND_KEY.0);
            set(r, "authorization", &value);
        }),
        ("signed header list", |r| {
            let value = authorization(r).replace("SignedHeaders=content-type;", "SignedHeaders=");
            set(r, "authorization", &value);
        }),
        ("signature last digit", |r| {
            let mut value = authorization(r);
            let last = if value.ends_with('0') { "1" } else { "0" };
            value.pop();
            value.push_str(last);
            set(r, "authorization", &value);
        }),
        ("signature upper case", |r| {
            let value = authorization(r);
            let (head, sig) = value.split_once("Signature=").unwrap();
            set(
                r,
                "authorization",
                &format!("{head}Signature={}", sig.to_ascii_uppercase()),
            );
        }),
        ("signature truncated", |r| {
            let mut value = authorization(r);
            value.truncate(value.len() - 2);
            set(r, "authorization", &value);
        }),
        ("signature not hex", |r| {
            let value = authorization(r);
            let (head, _) = value.split_once("Signature=").unwrap();
            set(r, "authorization", &format!("{head}Signature=zz"));
        }),
    ];
    for (label, mutate) in mutations {
        let mut req = signed(false);
        mutate(&mut req);
        check_mismatch(
            authenticate_with(&req, T0, Some(SERVICE), secret_for),
            label,
        );
    }
}

#[test]
fn a_body_that_does_not_match_x_amz_content_sha256_is_refused() {
    let mut req = signed(true);
    *req.body_mut() = b"{}".to_vec();
    check(
        authenticate(&req, T0, Some(SERVICE)),
        "InvalidSignatureException",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        "body swapped",
    );
    // UNSIGNED-PAYLOAD only binds nothing in a presigned URL; on a header-signed request it is refused.
    let mut req = signed(false);
    set(&mut req, "x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    check(
        authenticate(&req, T0, Some(SERVICE)),
        "InvalidSignatureException",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        "unsigned payload",
    );
}

#[test]
fn scope_mismatches_name_every_problem_in_aws_order() {
    let cases: &[(&str, &str, &str, Option<&str>, &str)] = &[
        (
            "wrong service",
            "/us-east-1/secretsmanager/",
            "/us-east-1/kms/",
            Some(SERVICE),
            "Credential should be scoped to correct service: 'secretsmanager'. ",
        ),
        (
            "wrong terminator",
            "aws4_request,",
            "aws5_request,",
            Some(SERVICE),
            "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws5_request'. ",
        ),
        (
            "wrong date",
            "/20150830/",
            "/20150831/",
            Some(SERVICE),
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != \
             '20150830', from '20150830T123600Z'. ",
        ),
        (
            "service, terminator and date",
            "/20150830/us-east-1/secretsmanager/aws4_request,",
            "/2015-08-30/us-east-1/sts/aws4,",
            Some(SERVICE),
            "Credential should be scoped to correct service: 'secretsmanager'. Credential should be scoped with a valid \
             terminator: 'aws4_request', not 'aws4'. Date in Credential scope does not match YYYYMMDD from ISO-8601 \
             version of date from HTTP: '2015-08-30' != '20150830', from '20150830T123600Z'. ",
        ),
    ];
    for (label, from, to, service, message) in cases {
        let mut req = signed(false);
        let value = authorization(&req).replace(from, to);
        assert_ne!(value, authorization(&req), "{label}");
        set(&mut req, "authorization", &value);
        check(
            authenticate(&req, T0, *service),
            "InvalidSignatureException",
            message,
            label,
        );
    }

    // Only the date moved: the scope no longer matches the request's day.
    let mut req = signed(false);
    set(&mut req, "x-amz-date", "20150831T000001Z");
    check(
        authenticate(&req, T0 + 86_400, Some(SERVICE)),
        "InvalidSignatureException",
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20150830' != \
         '20150831', from '20150831T000001Z'. ",
        "timestamp, next day",
    );
}

#[test]
fn a_region_the_endpoint_does_not_serve_is_refused_by_check_region() {
    let mut req = signed(false);
    let value = authorization(&req).replace("/us-east-1/", "/wrong-region/");
    set(&mut req, "authorization", &value);
    let claim = parse_claim(&req.into_parts().0).unwrap();
    check(
        check_region(&claim, "us-east-1"),
        "InvalidSignatureException",
        "Credential should be scoped to a valid region, not 'wrong-region'. ",
        "region",
    );
    assert_eq!(check_region(&claim, "wrong-region"), Ok(()));
}

#[test]
fn clock_skew_of_five_minutes_is_accepted_either_way_and_no_more() {
    let req = signed(false);
    for now in [T0, T0 + 300, T0 - 300] {
        assert_eq!(authenticate(&req, now, Some(SERVICE)), Ok(()), "{now}");
    }
    let cases = [
        (
            T0 + 301,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z (20150830T124101Z - 5 min.)",
        ),
        (
            T0 + 601,
            "Signature expired: 20150830T123600Z is now earlier than 20150830T124101Z (20150830T124601Z - 5 min.)",
        ),
        (
            T0 - 301,
            "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z (20150830T123059Z + 5 min.)",
        ),
        (
            T0 - 86_400,
            "Signature not yet current: 20150830T123600Z is still later than 20150829T124100Z (20150829T123600Z + 5 min.)",
        ),
    ];
    for (now, message) in cases {
        check(
            authenticate(&req, now, Some(SERVICE)),
            "InvalidSignatureException",
            message,
            &now.to_string(),
        );
    }
    // A clock at the ends of i64 does not overflow.
    for now in [i64::MIN, i64::MAX] {
        assert_eq!(
            authenticate(&req, now, Some(SERVICE))
                .unwrap_err()
                .aws_code(),
            "InvalidSignatureException"
        );
    }
}

#[test]
fn a_date_header_stands_in_for_x_amz_date() {
    let unsigned = request(
        "GET",
        "/",
        &[("host", HOST), ("date", "Sun, 30 Aug 2015 12:36:00 GMT")],
        b"",
    );
    let (parts, _) = unsigned.clone().into_parts();
    let signed_headers = ["date".to_owned(), "host".to_owned()];
    let canonical = canonical_request(&CanonicalParts {
        method: "GET",
        uri: &parts.uri,
        headers: &parts.headers,
        signed_headers: &signed_headers,
        payload_hash: b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        presigned: false,
    });
    let to_sign = string_to_sign(
        "20150830T123600Z",
        &credential_scope("20150830", "us-east-1", SERVICE),
        &canonical,
    );
    let sig = signature(
        &derive_signing_key(SECRET.as_bytes(), "20150830", "us-east-1", SERVICE),
        &to_sign,
    );
    let mut req = unsigned;
    set(
        &mut req,
        "authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/{SERVICE}/aws4_request, SignedHeaders=date;host, Signature={sig}"
        ),
    );
    assert_eq!(
        parse_claim(&req.clone().into_parts().0).unwrap().amz_date,
        "20150830T123600Z"
    );
    assert_eq!(authenticate(&req, T0, Some(SERVICE)), Ok(()));

    set(&mut req, "date", "Sun, 30 Aug 2015 12:36:01 GMT");
    check_mismatch(authenticate(&req, T0, Some(SERVICE)), "date header changed");

    // With both, X-Amz-Date is the one that counts.
    let mut both = signed(false);
    set(&mut both, "date", "Mon, 01 Jan 2001 00:00:00 GMT");
    assert_eq!(authenticate(&both, T0, Some(SERVICE)), Ok(()));
}

const CREDENTIAL: &str = "Credential=AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request";
const ALL_MISSING: &str = "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' \
                           parameter. Authorization header requires 'SignedHeaders' parameter. ";
const DATE_MISSING: &str =
    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ";

#[test]
fn malformed_authorization_headers_are_incomplete_signatures() {
    let full =
        format!("AWS4-HMAC-SHA256 {CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=abc");
    let incomplete = "IncompleteSignatureException";
    let cases: Vec<(String, bool, &str, String)> = vec![
        (String::new(), true, incomplete, format!("{ALL_MISSING}Authorization=")),
        ("   ".to_owned(), true, incomplete, format!("{ALL_MISSING}Authorization=   ")),
        (
            "AWS AKIDEXAMPLE:qaNdqGsI6bq4Hi+9Gzovwyjbh0E=".to_owned(),
            true,
            incomplete,
            format!("{ALL_MISSING}Authorization=AWS AKIDEXAMPLE:qaNdqGsI6bq4Hi+9Gzovwyjbh0E="),
        ),
        ("Bearer eyJhbGciOiJIUzI1NiJ9".to_owned(), true, incomplete, format!("{ALL_MISSING}Authorization=Bearer eyJhbGciOiJIUzI1NiJ9")),
        ("AWS4-HMAC-SHA256".to_owned(), true, incomplete, format!("{ALL_MISSING}Authorization=AWS4-HMAC-SHA256")),
        (
            format!("AWS4-HMAC-SHA256 {CREDENTIAL}, Signature=abc"),
            true,
            incomplete,
            format!("Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 {CREDENTIAL}, Signature=abc"),
        ),
        (
            "AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=".to_owned(),
            true,
            incomplete,
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. \
             Authorization=AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature="
                .to_owned(),
        ),
        (full.clone(), false, incomplete, format!("{DATE_MISSING}Authorization={full}")),
        ("AWS4-HMAC-SHA256".to_owned(), false, incomplete, format!("{ALL_MISSING}{DATE_MISSING}Authorization=AWS4-HMAC-SHA256")),
        (
            "AWS4-HMAC-SHA256 Credential= AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, SignedHeaders=host, Signature=abc"
                .to_owned(),
            true,
            incomplete,
            "'AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request' not a valid key=value pair (missing equal-sign) in \
             Authorization header: 'AWS4-HMAC-SHA256 Credential= AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request, \
             SignedHeaders=host, Signature=abc'."
                .to_owned(),
        ),
        (
            format!("AWS4-HMAC-SHA512 {CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=abc"),
            true,
            incomplete,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ".to_owned(),
        ),
        (
            "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20150830/secretsmanager/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-region-set, Signature=3045"
                .to_owned(),
            true,
            incomplete,
            "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256' (only AWS4-HMAC-SHA256 for now). ".to_owned(),
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, SignedHeaders=host, Signature=abc".to_owned(),
            true,
            incomplete,
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got \
             'AKIDEXAMPLE/20150830/us-east-1/aws4_request'"
                .to_owned(),
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/x/y/aws4_request, SignedHeaders=host, Signature=abc".to_owned(),
            true,
            incomplete,
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got \
             'AKIDEXAMPLE/20150830/us-east-1/x/y/aws4_request'"
                .to_owned(),
        ),
        (
            format!("AWS4-HMAC-SHA256 {CREDENTIAL}, SignedHeaders=content-type;x-amz-date;x-amz-target, Signature=abc"),
            true,
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ),
    ];
    for (value, with_date, code, message) in cases {
        let mut req = request("POST", "/", &[("host", HOST)], b"{}");
        if with_date {
            set(&mut req, "x-amz-date", "20150830T123600Z");
        }
        set(&mut req, "authorization", &value);
        check(
            authenticate(&req, T0, Some(SERVICE)),
            code,
            &message,
            &value,
        );
    }
}

#[test]
fn malformed_dates_are_incomplete_signatures() {
    for (name, value) in [
        ("x-amz-date", "2015-08-30T12:36:00Z"),
        ("x-amz-date", "20150830"),
        ("x-amz-date", "20150230T123600Z"),
        ("date", "yesterday"),
        ("date", "Sun, 30 Aug 2015 12:36:00 +0000"),
    ] {
        let mut req = request("POST", "/", &[("host", HOST)], b"{}");
        set(&mut req, name, value);
        set(
            &mut req,
            "authorization",
            &format!("AWS4-HMAC-SHA256 {CREDENTIAL}, SignedHeaders=host;x-amz-date, Signature=abc"),
        );
        check(
            authenticate(&req, T0, Some(SERVICE)),
            "IncompleteSignatureException",
            &format!(
                "Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
            ),
            value,
        );
    }
}

#[test]
fn no_authentication_at_all() {
    for uri in [
        "/",
        "/?X-Amz-Signature=abc",
        "/?x-amz-algorithm=AWS4-HMAC-SHA256",
    ] {
        let req = request(
            "POST",
            uri,
            &[("host", HOST), ("x-amz-date", "20150830T123600Z")],
            b"{}",
        );
        check(
            authenticate(&req, T0, Some(SERVICE)),
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
            uri,
        );
    }
}

#[test]
fn header_and_query_authentication_together_are_refused() {
    let mut req = signed(false);
    *req.uri_mut() = "/some/path?a=1&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        .parse()
        .unwrap();
    check(
        authenticate(&req, T0, Some(SERVICE)),
        "InvalidSignatureException",
        "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        "both",
    );
}

#[test]
fn incomplete_presigned_queries() {
    let all = "AWS query-string parameters must include 'X-Amz-Algorithm'. AWS query-string parameters must include \
               'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters \
               must include 'X-Amz-SignedHeaders'. AWS query-string parameters must include 'X-Amz-Date'. Re-examine the \
               query-string parameters.";
    let valid = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsecretsmanager%2Faws4_request\
                 &X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Signature=abc";
    let cases = [
        ("X-Amz-Algorithm".to_owned(), "IncompleteSignatureException", all.to_owned()),
        (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20150830T123600Z".to_owned(),
            "IncompleteSignatureException",
            "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include \
             'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. Re-examine the \
             query-string parameters."
                .to_owned(),
        ),
        (
            valid.replace("20150830T123600Z", "2015"),
            "IncompleteSignatureException",
            "Date must be in ISO-8601 'basic format'. Got '2015'. See http://en.wikipedia.org/wiki/ISO_8601".to_owned(),
        ),
        (
            valid.replace("SignedHeaders=host", "SignedHeaders=x-amz-date"),
            "InvalidSignatureException",
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ),
        (
            valid.replace("HMAC-SHA256", "HMAC-SHA1"),
            "IncompleteSignatureException",
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA1' (only AWS4-HMAC-SHA256 for now). ".to_owned(),
        ),
        (
            valid.replace("%2Faws4_request", ""),
            "IncompleteSignatureException",
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got \
             'AKIDEXAMPLE/20150830/us-east-1/secretsmanager'"
                .to_owned(),
        ),
        (format!("{valid}&X-Amz-Expires=soon"), "IncompleteSignatureException", "X-Amz-Expires should be a number".to_owned()),
        (format!("{valid}&X-Amz-Expires=-1"), "IncompleteSignatureException", "X-Amz-Expires must be non-negative".to_owned()),
        (
            format!("{valid}&X-Amz-Expires=604801"),
            "IncompleteSignatureException",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
        ),
        (
            format!("{valid}&X-Amz-Expires=99999999999999999999999"),
            "IncompleteSignatureException",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800".to_owned(),
        ),
    ];
    for (query, code, message) in cases {
        let req = request("GET", &format!("/?{query}"), &[("host", HOST)], b"");
        check(
            authenticate(&req, T0, Some(SERVICE)),
            code,
            &message,
            &query,
        );
    }
    let req = request(
        "GET",
        &format!("/?{valid}&X-Amz-Expires=604800"),
        &[("host", HOST)],
        b"",
    );
    let claim = parse_claim(&req.into_parts().0).unwrap();
    assert_eq!((claim.expires, claim.presigned), (Some(604_800), true));
}

#[test]
fn the_session_token_is_reported_for_the_caller_to_check() {
    let mut req = signed(false);
    set(&mut req, "x-amz-security-token", "FwoGZXIvYXdzEXAMPLE");
    let claim = parse_claim(&req.into_parts().0).unwrap();
    assert_eq!(claim.security_token.as_deref(), Some("FwoGZXIvYXdzEXAMPLE"));
    assert!(!format!("{claim:?}").contains("FwoGZXIvYXdzEXAMPLE"));
}
